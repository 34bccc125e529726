//! The folded state per concept: `skill::state::fold` over every delta of
//! the concept this install holds (own and pulled), refreshed in the
//! transaction that adds deltas, so devices holding the same deltas hold
//! the same state whatever order they arrived in.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::super::error::AgentError;
use super::LocalStore;
use crate::skill::delta::Transition;
use crate::skill::fsrs::{Card, MemoryState};
use crate::skill::state::{ConceptState, Fact, Level, fold};

const FACTS: &str = "SELECT id, transition, at, grade FROM deltas WHERE concept = ?1";
const UPSERT: &str = "INSERT INTO states (concept, level, first_seen, first_demonstrated,
         last_activity, stability_days, difficulty, last_review, reps, lapses,
         checks_passed, checks_failed)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
     ON CONFLICT (concept) DO UPDATE SET level = excluded.level,
         first_seen = excluded.first_seen, first_demonstrated = excluded.first_demonstrated,
         last_activity = excluded.last_activity, stability_days = excluded.stability_days,
         difficulty = excluded.difficulty, last_review = excluded.last_review,
         reps = excluded.reps, lapses = excluded.lapses,
         checks_passed = excluded.checks_passed, checks_failed = excluded.checks_failed";
const STATES: &str = "SELECT concept, level, first_seen, first_demonstrated, last_activity,
         stability_days, difficulty, last_review, reps, lapses, checks_passed, checks_failed
     FROM states ORDER BY concept";

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

fn level_str(l: Level) -> &'static str {
    match l {
        Level::Unseen => "unseen",
        Level::Seen => "seen",
        Level::Explained => "explained",
        Level::Demonstrated => "demonstrated",
        Level::Retained => "retained",
    }
}

fn level_of(s: &str) -> Level {
    match s {
        "seen" => Level::Seen,
        "explained" => Level::Explained,
        "demonstrated" => Level::Demonstrated,
        "retained" => Level::Retained,
        _ => Level::Unseen,
    }
}

/// Refolds `concept` from all its deltas and stores the state.
pub(super) fn refresh(tx: &Connection, concept: &str) -> Result<(), AgentError> {
    let facts: Vec<Fact> = tx
        .prepare_cached(FACTS)?
        .query_map([concept], |r| {
            let tr: String = r.get(1)?;
            Ok(Fact {
                id: r.get(0)?,
                transition: Transition::parse(&tr).unwrap_or(Transition::Seen),
                at: from_ms(r.get(2)?),
                grade: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let s = fold(&facts);
    let card = s.card.as_ref();
    tx.prepare_cached(UPSERT)?.execute(params![
        concept,
        level_str(s.level),
        s.first_seen.map(ms),
        s.first_demonstrated.map(ms),
        s.last_activity.map(ms),
        card.map(|c| c.memory.stability_days),
        card.map(|c| c.memory.difficulty),
        card.map(|c| ms(c.last_review)),
        card.map(|c| c.reps),
        card.map(|c| c.lapses),
        s.checks_passed,
        s.checks_failed,
    ])?;
    Ok(())
}

/// One concept's stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRow {
    pub concept: String,
    pub state: ConceptState,
}

impl LocalStore {
    /// The folded state of every concept this install holds a delta of.
    /// (Counts of late checks are not kept: the kernel shows none.)
    ///
    /// # Errors
    /// Store errors.
    pub fn states(&self) -> Result<Vec<StateRow>, AgentError> {
        let rows = self
            .conn
            .prepare_cached(STATES)?
            .query_map([], |r| {
                let level: String = r.get(1)?;
                let stability: Option<f64> = r.get(5)?;
                let difficulty: Option<f64> = r.get(6)?;
                let last_review: Option<i64> = r.get(7)?;
                let card = match (stability, difficulty, last_review) {
                    (Some(stability_days), Some(difficulty), Some(last)) => Some(Card {
                        memory: MemoryState {
                            stability_days,
                            difficulty,
                        },
                        last_review: from_ms(last),
                        reps: r.get::<_, Option<u32>>(8)?.unwrap_or(0),
                        lapses: r.get::<_, Option<u32>>(9)?.unwrap_or(0),
                    }),
                    _ => None,
                };
                let mut state = ConceptState::unseen();
                state.level = level_of(&level);
                state.first_seen = r.get::<_, Option<i64>>(2)?.map(from_ms);
                state.first_demonstrated = r.get::<_, Option<i64>>(3)?.map(from_ms);
                state.last_activity = r.get::<_, Option<i64>>(4)?.map(from_ms);
                state.card = card;
                state.checks_passed = r.get(10)?;
                state.checks_failed = r.get(11)?;
                Ok(StateRow {
                    concept: r.get(0)?,
                    state,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}
