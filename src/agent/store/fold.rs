//! The folded state per concept: `skill::state::fold` over every delta of
//! the concept this install holds (own and pulled), refreshed in the
//! transaction that adds deltas, so devices holding the same deltas hold
//! the same state whatever order they arrived in.
//!
//! Each stored state keeps the point it was folded up to (the last delta
//! in the fold's order, `folded_at` and `folded_id`, migration 0003). New
//! deltas that all sort after it are folded on from the stored state
//! (`ConceptState::apply`), which gives what folding every delta again
//! gives; any other write refolds the concept from all its deltas. A hook
//! records facts of now, so recording costs the same with a month of
//! history as with none.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::super::error::AgentError;
use super::LocalStore;
use crate::skill::delta::Transition;
use crate::skill::fsrs::{Card, MemoryState};
use crate::skill::state::{ConceptState, Fact, Level, fact_order, fold};

const FACTS: &str = "SELECT id, transition, at, grade FROM deltas WHERE concept = ?1";
const UPSERT: &str = "INSERT INTO states (concept, level, first_seen, first_demonstrated,
         last_activity, stability_days, difficulty, last_review, reps, lapses,
         checks_passed, checks_failed, late_checks, late_passed, folded_at, folded_id)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
     ON CONFLICT (concept) DO UPDATE SET level = excluded.level,
         first_seen = excluded.first_seen, first_demonstrated = excluded.first_demonstrated,
         last_activity = excluded.last_activity, stability_days = excluded.stability_days,
         difficulty = excluded.difficulty, last_review = excluded.last_review,
         reps = excluded.reps, lapses = excluded.lapses,
         checks_passed = excluded.checks_passed, checks_failed = excluded.checks_failed,
         late_checks = excluded.late_checks, late_passed = excluded.late_passed,
         folded_at = excluded.folded_at, folded_id = excluded.folded_id";
/// The state columns, in the order [`state_of`] reads them from 1 on.
const COLUMNS: &str = "level, first_seen, first_demonstrated, last_activity,
         stability_days, difficulty, last_review, reps, lapses, checks_passed, checks_failed,
         late_checks, late_passed";

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

/// A delta as the fold reads it back from the store (times in whole
/// milliseconds, as stored).
pub(super) fn fact(id: &str, transition: Transition, at_ms: i64, grade: Option<u8>) -> Fact {
    Fact {
        id: id.to_string(),
        transition,
        at: from_ms(at_ms),
        grade,
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
    let last = facts.iter().max_by(|a, b| fact_order(a, b));
    save(tx, concept, &fold(&facts), last)
}

/// Folds `new`, deltas of `concept` just stored in this transaction,
/// into its stored state: on from it when they all sort after the delta
/// it was folded up to, else by refolding every delta of the concept.
pub(super) fn fold_in(
    tx: &Connection,
    concept: &str,
    mut new: Vec<Fact>,
) -> Result<(), AgentError> {
    new.sort_by(fact_order);
    let Some(first) = new.first() else {
        return Ok(());
    };
    let stored = tx
        .prepare_cached(&format!(
            "SELECT folded_at, folded_id, {COLUMNS} FROM states WHERE concept = ?1"
        ))?
        .query_row([concept], |r| {
            let at: Option<i64> = r.get(0)?;
            let id: Option<String> = r.get(1)?;
            Ok((at.zip(id), state_of(r, 2)?))
        })
        .optional()?;
    match stored {
        Some((Some((at, id)), mut state))
            if (first.at.timestamp_millis(), first.id.as_str()) > (at, id.as_str()) =>
        {
            for f in &new {
                state.apply(f);
            }
            save(tx, concept, &state, new.last())
        }
        _ => refresh(tx, concept),
    }
}

fn save(
    tx: &Connection,
    concept: &str,
    s: &ConceptState,
    last: Option<&Fact>,
) -> Result<(), AgentError> {
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
        s.late_checks,
        s.late_passed,
        last.map(|f| ms(f.at)),
        last.map(|f| f.id.as_str()),
    ])?;
    Ok(())
}

/// The state in the [`COLUMNS`] of `r`, from column `from` on.
fn state_of(r: &rusqlite::Row<'_>, from: usize) -> rusqlite::Result<ConceptState> {
    let level: String = r.get(from)?;
    let stability: Option<f64> = r.get(from + 4)?;
    let difficulty: Option<f64> = r.get(from + 5)?;
    let last_review: Option<i64> = r.get(from + 6)?;
    let card = match (stability, difficulty, last_review) {
        (Some(stability_days), Some(difficulty), Some(last)) => Some(Card {
            memory: MemoryState {
                stability_days,
                difficulty,
            },
            last_review: from_ms(last),
            reps: r.get::<_, Option<u32>>(from + 7)?.unwrap_or(0),
            lapses: r.get::<_, Option<u32>>(from + 8)?.unwrap_or(0),
        }),
        _ => None,
    };
    let mut state = ConceptState::unseen();
    state.level = level_of(&level);
    state.first_seen = r.get::<_, Option<i64>>(from + 1)?.map(from_ms);
    state.first_demonstrated = r.get::<_, Option<i64>>(from + 2)?.map(from_ms);
    state.last_activity = r.get::<_, Option<i64>>(from + 3)?.map(from_ms);
    state.card = card;
    state.checks_passed = r.get(from + 9)?;
    state.checks_failed = r.get(from + 10)?;
    state.late_checks = r.get(from + 11)?;
    state.late_passed = r.get(from + 12)?;
    Ok(state)
}

/// One concept's stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRow {
    pub concept: String,
    pub state: ConceptState,
}

impl LocalStore {
    /// The folded state of every concept this install holds a delta of.
    ///
    /// # Errors
    /// Store errors.
    pub fn states(&self) -> Result<Vec<StateRow>, AgentError> {
        let rows = self
            .conn
            .prepare_cached(&format!(
                "SELECT concept, {COLUMNS} FROM states ORDER BY concept"
            ))?
            .query_map([], |r| {
                Ok(StateRow {
                    concept: r.get(0)?,
                    state: state_of(r, 1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}
