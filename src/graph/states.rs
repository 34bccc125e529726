//! Each engineer's stored state per concept (`concept_states`), kept by
//! every push inside the push's transaction. A state is the fold of the
//! engineer's facts about the concept (`state::fold`); the row holds the
//! whole fold (level, first times, counters, the memory model's card) and
//! its cursor, the (`at`, `id`) of the last fact folded in. A push whose new
//! facts about a concept all sort after that cursor folds in only those
//! facts; a device's backlog arrives oldest first, so that is the common
//! case. A fact that arrives out of order (another device synced later, a
//! clock was off) has the concept folded again from all its deltas, read
//! in one pass over the engineer's deltas for every such concept of the
//! push. Either way the row equals the fold of every fact held (property
//! test below), so the convergence of `state::fold` carries over. Rows written before
//! migration 0010 have no cursor and are folded again on their next push.
//!
//! Every (engineer, concept) with a delta has a row: both are written in
//! the same transaction, and both go together (sweep, user deletion).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use crate::clock::{from_millis, to_millis};
use crate::skill::fsrs::{self, Card, MemoryState};
use crate::skill::state::{self, ConceptState, Fact, Level};
use crate::skill::{Delta, Transition};

/// Every delta of one engineer, for folds from scratch (through the index
/// on (user_id, seq); there is none per concept, see migration 0011).
const FACTS: &str = "SELECT concept, id, transition, at, grade FROM deltas WHERE user_id = ?1";

/// The stored states of user `?1` for the concepts in the JSON array `?2`.
const LOAD: &str = "SELECT concept, level, first_seen_at, first_demonstrated, checks_passed,
            checks_failed, late_checks, late_passed, stability, difficulty, last_review, reps,
            lapses, last_at, last_id
     FROM concept_states WHERE user_id = ?1 AND concept IN (SELECT value FROM json_each(?2))";

const UPSERT: &str = "INSERT INTO concept_states
     (user_id, concept, level, first_seen_at, first_demonstrated, recall_30d, late_checks,
      late_passed, updated_at, checks_passed, checks_failed, stability, difficulty,
      last_review, reps, lapses, last_at, last_id)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
     ON CONFLICT (user_id, concept) DO UPDATE SET level = excluded.level,
       first_seen_at = excluded.first_seen_at, first_demonstrated = excluded.first_demonstrated,
       recall_30d = excluded.recall_30d, late_checks = excluded.late_checks,
       late_passed = excluded.late_passed, updated_at = excluded.updated_at,
       checks_passed = excluded.checks_passed, checks_failed = excluded.checks_failed,
       stability = excluded.stability, difficulty = excluded.difficulty,
       last_review = excluded.last_review, reps = excluded.reps, lapses = excluded.lapses,
       last_at = excluded.last_at, last_id = excluded.last_id";

/// The last fact folded into a stored state: (`at` in Unix ms, `id`).
type Cursor = (i64, String);

/// A stored state, and its cursor when the row has one.
type Stored = (ConceptState, Option<Cursor>);

fn level_number(level: Level) -> Option<i64> {
    match level {
        Level::Unseen => None,
        Level::Seen => Some(1),
        Level::Explained => Some(2),
        Level::Demonstrated => Some(3),
        Level::Retained => Some(4),
    }
}

fn level_of(n: i64) -> Level {
    match n {
        1 => Level::Seen,
        2 => Level::Explained,
        3 => Level::Demonstrated,
        _ => Level::Retained,
    }
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A stored state from a row of [`LOAD`] (column 0 is the concept).
fn stored_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    let card = match (
        r.get::<_, Option<f64>>(8)?,
        r.get::<_, Option<f64>>(9)?,
        r.get::<_, Option<i64>>(10)?,
    ) {
        (Some(stability_days), Some(difficulty), Some(last_review)) => Some(Card {
            memory: MemoryState {
                stability_days,
                difficulty,
            },
            last_review: from_millis(last_review),
            reps: count(r.get::<_, Option<i64>>(11)?.unwrap_or(0)),
            lapses: count(r.get::<_, Option<i64>>(12)?.unwrap_or(0)),
        }),
        _ => None,
    };
    let last_at: Option<i64> = r.get(13)?;
    let cursor = match (last_at, r.get::<_, Option<String>>(14)?) {
        (Some(at), Some(id)) => Some((at, id)),
        _ => None,
    };
    let state = ConceptState {
        level: level_of(r.get(1)?),
        first_seen: Some(from_millis(r.get(2)?)),
        first_demonstrated: r.get::<_, Option<i64>>(3)?.map(from_millis),
        last_activity: last_at.map(from_millis),
        card,
        checks_passed: count(r.get(4)?),
        checks_failed: count(r.get(5)?),
        late_checks: count(r.get(6)?),
        late_passed: count(r.get(7)?),
    };
    Ok((state, cursor))
}

/// The stored states of `user_id` for `concepts`, by concept.
fn load_many(
    conn: &Connection,
    user_id: &str,
    concepts: &[&str],
) -> rusqlite::Result<BTreeMap<String, Stored>> {
    let json = serde_json::to_string(concepts)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.prepare_cached(LOAD)?
        .query_map(params![user_id, json], |r| Ok((r.get(0)?, stored_row(r)?)))?
        .collect()
}

/// The facts of `user_id` about each of `concepts`, from one read of all
/// their deltas.
fn facts_of<'c>(
    conn: &Connection,
    user_id: &str,
    concepts: &BTreeSet<&'c str>,
) -> rusqlite::Result<BTreeMap<&'c str, Vec<Fact>>> {
    let mut out: BTreeMap<&str, Vec<Fact>> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(FACTS)?;
    let mut rows = stmt.query([user_id])?;
    while let Some(r) = rows.next()? {
        let concept: String = r.get(0)?;
        let Some(&concept) = concepts.get(concept.as_str()) else {
            continue;
        };
        // The table's CHECK admits only known transitions.
        let Some(transition) = Transition::parse(&r.get::<_, String>(2)?) else {
            continue;
        };
        out.entry(concept).or_default().push(Fact {
            id: r.get(1)?,
            transition,
            at: from_millis(r.get(3)?),
            grade: r
                .get::<_, Option<i64>>(4)?
                .and_then(|g| u8::try_from(g).ok()),
        });
    }
    Ok(out)
}

/// Whether fact `f` sorts after `cursor`.
fn after(f: &Fact, cursor: &Cursor) -> bool {
    match to_millis(f.at).cmp(&cursor.0) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => f.id.as_str() > cursor.1.as_str(),
    }
}

/// A state folded on over `new` (sorted), with the cursor of its last fact.
fn folded_on(mut s: ConceptState, new: &[Fact]) -> (ConceptState, Option<Cursor>) {
    for f in new {
        s.apply(f);
    }
    (s, new.last().map(|f| (to_millis(f.at), f.id.clone())))
}

/// The new state of each concept of `new` (its newly accepted facts,
/// sorted): folded on from the stored row when they all follow its
/// cursor, else folded again from every delta held (the new ones are
/// already in the table), with one read of the engineer's deltas for all
/// such concepts together.
fn next_states<'c>(
    conn: &Connection,
    user_id: &str,
    new: &BTreeMap<&'c str, Vec<Fact>>,
) -> rusqlite::Result<Vec<(&'c str, ConceptState, Option<Cursor>)>> {
    let mut out = Vec::with_capacity(new.len());
    let mut again = BTreeSet::new();
    let concepts: Vec<&str> = new.keys().copied().collect();
    let mut stored = load_many(conn, user_id, &concepts)?;
    for (&concept, facts) in new {
        match stored.remove(concept) {
            // Nothing was held about the concept before this push.
            None => {
                let (s, cursor) = folded_on(ConceptState::unseen(), facts);
                out.push((concept, s, cursor));
            }
            Some((s, Some(cursor))) if facts.first().is_none_or(|f| after(f, &cursor)) => {
                let (s, cursor) = folded_on(s, facts);
                out.push((concept, s, cursor));
            }
            Some(_) => {
                again.insert(concept);
            }
        }
    }
    if !again.is_empty() {
        for (concept, mut facts) in facts_of(conn, user_id, &again)? {
            facts.sort_by(state::fact_order);
            let s = state::fold(&facts);
            let cursor = facts.pop().map(|f| (to_millis(f.at), f.id));
            out.push((concept, s, cursor));
        }
    }
    Ok(out)
}

/// Folds the newly accepted `deltas` of `user_id` into their concepts'
/// stored states (inside the push's transaction, after the deltas were
/// inserted).
///
/// # Errors
/// SQLite errors.
pub fn refresh(
    conn: &Connection,
    user_id: &str,
    deltas: &[&Delta],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let mut new: BTreeMap<&str, Vec<Fact>> = BTreeMap::new();
    for d in deltas {
        new.entry(d.concept.as_str()).or_default().push(Fact {
            id: d.id.to_string(),
            transition: d.transition,
            // Stored in whole milliseconds: fold what a fold from the table
            // would see.
            at: from_millis(to_millis(d.at)),
            grade: d.grade,
        });
    }
    for facts in new.values_mut() {
        facts.sort_by(state::fact_order);
    }
    let mut upsert = conn.prepare_cached(UPSERT)?;
    for (concept, s, cursor) in next_states(conn, user_id, &new)? {
        let (Some(level), Some(first_seen)) = (level_number(s.level), s.first_seen) else {
            continue;
        };
        let card = s.card.as_ref();
        upsert.execute(params![
            user_id,
            concept,
            level,
            to_millis(first_seen),
            s.first_demonstrated.map(to_millis),
            card.map(|c| fsrs::recall_at(c, 30.0)),
            s.late_checks,
            s.late_passed,
            to_millis(now),
            s.checks_passed,
            s.checks_failed,
            card.map(|c| c.memory.stability_days),
            card.map(|c| c.memory.difficulty),
            card.map(|c| to_millis(c.last_review)),
            card.map(|c| c.reps),
            card.map(|c| c.lapses),
            cursor.as_ref().map(|c| c.0),
            cursor.as_ref().map(|c| c.1.as_str()),
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrations::ORG;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    const USER: &str = "u1";

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().expect("memory db");
        ORG.to_latest(&mut conn).expect("migrations");
        conn.execute(
            "INSERT INTO users (id, user_name, provisioned_by, created_at, updated_at)
             VALUES (?1, ?1, 'operator', 0, 0)",
            [USER],
        )
        .expect("user");
        conn
    }

    fn t(hours: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0)
            .single()
            .expect("valid")
            + Duration::hours(hours)
    }

    /// Inserts `batch` as a push does and refreshes the states.
    fn push(conn: &Connection, batch: &[Delta]) {
        let accepted = crate::sync::insert_new(conn, USER, None, batch, 0).expect("insert");
        refresh(conn, USER, &accepted, t(0)).expect("refresh");
    }

    /// Every stored row next to the fold of all the concept's deltas.
    fn check(conn: &Connection) -> Result<(), TestCaseError> {
        let concepts: Vec<String> = conn
            .prepare("SELECT DISTINCT concept FROM deltas")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM concept_states", [], |r| r.get(0))
            .expect("count");
        prop_assert_eq!(rows, i64::try_from(concepts.len()).expect("small"));
        let wanted: BTreeSet<&str> = concepts.iter().map(String::as_str).collect();
        let mut all = facts_of(conn, USER, &wanted).expect("facts");
        for c in &concepts {
            let mut facts = all.remove(c.as_str()).expect("facts of a concept held");
            facts.sort_by(state::fact_order);
            let (stored, cursor) = load_many(conn, USER, &[c.as_str()])
                .expect("load")
                .remove(c)
                .expect("a row");
            prop_assert_eq!(&stored, &state::fold(&facts), "concept {}", c);
            let last = facts.last().expect("a fact");
            prop_assert_eq!(cursor, Some((to_millis(last.at), last.id.clone())));
        }
        Ok(())
    }

    fn arb_delta() -> impl Strategy<Value = Delta> {
        // Few concepts and coarse times, so batches mix facts that follow a
        // concept's cursor, precede it and tie with it on `at`.
        (0usize..3, 0usize..5, 0i64..200, any::<u128>(), 1u8..=4).prop_map(
            |(concept, tr, hours, id, grade)| {
                let transition = Transition::ALL[tr];
                Delta {
                    id: uuid::Uuid::from_u128(id),
                    concept: format!("c{concept}"),
                    transition,
                    at: t(hours / 8 * 8) + Duration::microseconds(hours % 3),
                    grade: matches!(
                        transition,
                        Transition::CheckPassed | Transition::CheckFailed
                    )
                    .then_some(if transition == Transition::CheckFailed {
                        1
                    } else {
                        grade.max(2)
                    }),
                }
            },
        )
    }

    proptest! {
        #[test]
        fn stored_states_equal_the_fold_of_every_delta_whatever_the_batches(
            deltas in proptest::collection::vec(arb_delta(), 1..60),
            in_order in any::<bool>(),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..6),
            replay in any::<proptest::sample::Index>(),
        ) {
            let conn = db();
            let mut deltas = deltas;
            if in_order {
                // A device's backlog, oldest first: every push folds on.
                deltas.sort_by_key(|d| (d.at.timestamp_millis(), d.id));
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(deltas.len() + 1)).collect();
            cuts.push(0);
            cuts.push(deltas.len());
            cuts.sort_unstable();
            for w in cuts.windows(2) {
                push(&conn, &deltas[w[0]..w[1]]);
                check(&conn)?;
            }
            // A batch sent again changes nothing.
            let again = replay.index(deltas.len());
            push(&conn, &deltas[again..]);
            check(&conn)?;
        }
    }

    #[test]
    fn a_row_from_before_the_cursor_is_folded_again() {
        let conn = db();
        let first = Delta {
            id: uuid::Uuid::from_u128(1),
            concept: "c0".into(),
            transition: Transition::Demonstrated,
            at: t(0),
            grade: None,
        };
        push(&conn, std::slice::from_ref(&first));
        // What migration 0010 leaves: no cursor, no card, no counters.
        conn.execute(
            "UPDATE concept_states SET level = 1, last_at = NULL, last_id = NULL",
            [],
        )
        .expect("legacy row");
        let check_passed = Delta {
            id: uuid::Uuid::from_u128(2),
            concept: "c0".into(),
            transition: Transition::CheckPassed,
            at: t(24 * 10),
            grade: Some(3),
        };
        push(&conn, &[check_passed]);
        let (s, cursor) = load_many(&conn, USER, &["c0"])
            .expect("load")
            .remove("c0")
            .expect("row");
        assert_eq!(s.level, Level::Retained, "folded from both deltas");
        assert_eq!(s.checks_passed, 1);
        assert!(cursor.is_some());
    }
}
