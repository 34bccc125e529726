//! Each engineer's stored state per concept (`concept_states`), kept by
//! every push inside the push's transaction. A state is the fold of the
//! engineer's facts about the concept (`state::fold`); the row holds the
//! whole fold (level, first times, counters, the memory model's card), its
//! cursor, the (`at`, `id`) of the last fact folded in, and how many facts
//! it folded. A push whose new facts about a concept all sort after that
//! cursor folds in only those facts; a device's backlog arrives oldest
//! first, so that is the common case. A fact that arrives out of order
//! (another device synced later, a clock was off, a random id fell before
//! the cursor's in the same second) has the concept folded again from the
//! last fold checkpoint before it (`super::checkpoints`), reading only
//! that concept's facts from there on, kept with the checkpoints after it
//! and in the row's tail. Either way the row and every checkpoint equal
//! the fold of the facts they cover (property test below), so the
//! convergence of `state::fold` carries over. Rows written before
//! migration 0018 have no fact count; migration 0024 queues them for the
//! refold worker, which folds them again from their first fact.
//!
//! Every (engineer, concept) with a delta has a row: both are written in
//! the same transaction, and both go together (sweep, user deletion).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::checkpoints::{self, Position, cursor_of, level_number};
use crate::clock::{from_millis, to_millis};
use crate::skill::Delta;
use crate::skill::fsrs;
use crate::skill::state::{self, Fact};

/// The stored states of user `?1` for the concepts in the JSON array `?2`.
fn load_sql() -> String {
    format!(
        "SELECT concept, {}, tail FROM concept_states
         WHERE user_id = ?1 AND concept IN (SELECT value FROM json_each(?2))",
        checkpoints::FOLD_COLUMNS
    )
}

const UPSERT: &str = "INSERT INTO concept_states
     (user_id, concept, level, first_seen_at, first_demonstrated, recall_30d, late_checks,
      late_passed, updated_at, checks_passed, checks_failed, stability, difficulty,
      last_review, reps, lapses, last_at, last_id, facts, tail)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
             ?20)
     ON CONFLICT (user_id, concept) DO UPDATE SET level = excluded.level,
       first_seen_at = excluded.first_seen_at, first_demonstrated = excluded.first_demonstrated,
       recall_30d = excluded.recall_30d, late_checks = excluded.late_checks,
       late_passed = excluded.late_passed, updated_at = excluded.updated_at,
       checks_passed = excluded.checks_passed, checks_failed = excluded.checks_failed,
       stability = excluded.stability, difficulty = excluded.difficulty,
       last_review = excluded.last_review, reps = excluded.reps, lapses = excluded.lapses,
       last_at = excluded.last_at, last_id = excluded.last_id, facts = excluded.facts,
       tail = excluded.tail";

/// A stored state, and its fact count when it has one (rows from before
/// migration 0018 have none).
pub type Stored = (Position, Option<u64>);

/// The stored states of `user_id` for `concepts`, by concept.
fn load_many(
    conn: &Connection,
    user_id: &str,
    concepts: &[&str],
) -> rusqlite::Result<BTreeMap<String, Stored>> {
    let json = serde_json::to_string(concepts)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.prepare_cached(&load_sql())?
        .query_map(params![user_id, json], |r| Ok((r.get(0)?, with_tail(r)?)))?
        .collect()
}

/// A stored state from a row of `concept`, [`checkpoints::FOLD_COLUMNS`]
/// and `tail`.
fn with_tail(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    let (mut at, facts) = checkpoints::fold_row(r)?;
    at.tail = checkpoints::unpacked(r.get_ref(16)?.as_blob_or_null()?)?;
    Ok((at, facts))
}

/// Every stored state of `user_id`, by concept, with its fact count
/// (`None` for rows from before migration 0018).
///
/// # Errors
/// SQLite errors.
pub fn of_user(conn: &Connection, user_id: &str) -> rusqlite::Result<BTreeMap<String, Stored>> {
    conn.prepare_cached(&format!(
        "SELECT concept, {}, tail FROM concept_states WHERE user_id = ?1",
        checkpoints::FOLD_COLUMNS
    ))?
    .query_map([user_id], |r| Ok((r.get(0)?, with_tail(r)?)))?
    .collect()
}

/// The fact a delta is once stored: in whole milliseconds, so that a
/// fold of it is what a fold from the table sees.
fn stored_fact(d: &Delta) -> Fact {
    Fact {
        id: d.id.to_string(),
        transition: d.transition,
        at: from_millis(to_millis(d.at)),
        grade: d.grade,
    }
}

/// What a refresh did beyond folding in the push's own facts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Concepts folded again because a fact arrived out of order.
    pub refolded_concepts: usize,
    /// Facts held before the push that those refolds read and folded
    /// again: the work an out-of-order push costs beyond its own facts.
    pub refolded_facts: usize,
    /// What the device is charged for them (`rate_limits.refold`): per
    /// concept, the facts beyond one checkpoint interval. A fact late by
    /// less than that (a second's tie, a clock a little behind) costs a
    /// bounded amount like the push's own facts; only deep refolds, which
    /// grow with the history after the late fact, are charged, whether
    /// the push folds them or queues them.
    pub charged_facts: usize,
    /// Concepts this push queued for the refold worker (or moved back in
    /// its queue) instead of folding them: their refold was deeper than
    /// a push does itself ([`INLINE_REFOLD`]).
    pub queued_concepts: usize,
}

/// The deepest refold of one concept that a push does itself, in facts
/// held before the push that it folds again (16 checkpoint intervals). A
/// second's tie or a clock a few seconds off costs about one interval per
/// concept and stays well inside; a week-old backlog or a far-past fact
/// does not, and its concept is queued for the refold worker
/// (`super::refold`), which folds it in slices.
pub const INLINE_REFOLD: usize = 256;

/// The most a push folds again in all, in multiples of its per-concept
/// limit: 16,384 facts at [`INLINE_REFOLD`], so a push of 1,000 facts
/// each a little late stays bounded too.
const PUSH_REFOLDS: usize = 64;

/// The new fold of each concept of `new` (its newly accepted facts,
/// sorted): folded on from the stored row when they all follow its cursor,
/// else from the last checkpoint before the first of them, with the facts
/// held after that checkpoint (its successors' intervals and the row's
/// tail), laying checkpoints every `every` facts; unless the concept is
/// queued for the refold worker, or its refold would fold more than
/// `inline` facts again, or take the push past [`PUSH_REFOLDS`] times
/// that: then its new facts wait for the worker (`fold_pending`), the
/// concept is queued from that checkpoint, and it is left out.
fn next_states<'c>(
    conn: &Connection,
    user_id: &str,
    new: &BTreeMap<&'c str, Vec<Fact>>,
    every: u64,
    inline: usize,
    now_ms: i64,
    cost: &mut Refreshed,
) -> rusqlite::Result<Vec<(&'c str, Position)>> {
    let mut out = Vec::with_capacity(new.len());
    let concepts: Vec<&str> = new.keys().copied().collect();
    let mut stored = load_many(conn, user_id, &concepts)?;
    let queued = super::refold::queued(conn, user_id, &concepts)?;
    let every_facts = usize::try_from(every).unwrap_or(usize::MAX);
    let mut folded_again = 0usize;
    for (&concept, facts) in new {
        let Some(first) = facts.first() else {
            continue;
        };
        let first_cursor = cursor_of(first);
        if let Some(from) = queued.get(concept) {
            // The worker folds these facts with the rest; one before its
            // restart point moves that back, and the device pays for the
            // facts between the two.
            checkpoints::put_pending(conn, user_id, concept, facts)?;
            if first_cursor <= *from {
                let was = checkpoints::checkpoint_at(conn, user_id, concept, from)?.facts;
                let now = checkpoints::checkpoint_before(conn, user_id, concept, &first_cursor)?;
                let more = usize::try_from(was.saturating_sub(now.facts)).unwrap_or(usize::MAX);
                cost.charged_facts += more;
                cost.queued_concepts += 1;
                let start = checkpoints::cursor_or_start(&now);
                super::refold::queue(conn, user_id, concept, &start, now_ms)?;
            }
            continue;
        }
        let (start, tail) = match stored.remove(concept) {
            // Nothing was held about the concept before this push.
            None => {
                let at =
                    checkpoints::fold_on(conn, user_id, concept, Position::start(), facts, every)?;
                out.push((concept, at));
                continue;
            }
            Some((at, Some(_))) if at.cursor.as_ref().is_some_and(|c| first_cursor > *c) => {
                let at = checkpoints::fold_on(conn, user_id, concept, at, facts, every)?;
                out.push((concept, at));
                continue;
            }
            // Out of order: from the last checkpoint before the first new
            // fact, here if the push may still fold that much again.
            Some((at, Some(count))) => {
                let start = checkpoints::checkpoint_before(conn, user_id, concept, &first_cursor)?;
                let again =
                    usize::try_from(count.saturating_sub(start.facts)).unwrap_or(usize::MAX);
                if again > inline
                    || folded_again.saturating_add(again) > inline.saturating_mul(PUSH_REFOLDS)
                {
                    cost.charged_facts += again.saturating_sub(every_facts);
                    cost.queued_concepts += 1;
                    checkpoints::put_pending(conn, user_id, concept, facts)?;
                    let from = checkpoints::cursor_or_start(&start);
                    super::refold::queue(conn, user_id, concept, &from, now_ms)?;
                    continue;
                }
                folded_again += again;
                (start, at.tail)
            }
            // A row without a fact count (from before migration 0018) is
            // queued by migration 0024 with its facts; should one appear,
            // the worker folds it from its first fact all the same.
            Some((_, None)) => {
                cost.queued_concepts += 1;
                checkpoints::put_pending(conn, user_id, concept, facts)?;
                let from = checkpoints::before_all();
                super::refold::queue(conn, user_id, concept, &from, now_ms)?;
                continue;
            }
        };
        let mut all = checkpoints::held_after(conn, user_id, concept, &start, &tail)?;
        checkpoints::forget_after(conn, user_id, concept, &start)?;
        cost.refolded_concepts += 1;
        cost.refolded_facts += all.len();
        cost.charged_facts += all.len().saturating_sub(every_facts);
        all.extend_from_slice(facts);
        all.sort_by(state::fact_order);
        let at = checkpoints::fold_on(conn, user_id, concept, start, &all, every)?;
        out.push((concept, at));
    }
    Ok(out)
}

/// Folds the newly accepted `deltas` of `user_id` into their concepts'
/// stored states (inside the push's transaction, after the deltas were
/// inserted), with checkpoints every [`checkpoints::EVERY`] facts, and
/// refolds deeper than [`INLINE_REFOLD`] queued.
///
/// # Errors
/// SQLite errors.
pub fn refresh(
    conn: &Connection,
    user_id: &str,
    deltas: &[&Delta],
    now: DateTime<Utc>,
) -> rusqlite::Result<Refreshed> {
    refresh_with(
        conn,
        user_id,
        deltas,
        now,
        checkpoints::EVERY,
        INLINE_REFOLD,
    )
}

/// [`refresh`] with checkpoints every `every` facts and refolds deeper
/// than `inline` facts queued (tests lay checkpoints at every boundary
/// and queue every refold).
///
/// # Errors
/// SQLite errors.
pub fn refresh_with(
    conn: &Connection,
    user_id: &str,
    deltas: &[&Delta],
    now: DateTime<Utc>,
    every: u64,
    inline: usize,
) -> rusqlite::Result<Refreshed> {
    let mut new: BTreeMap<&str, Vec<Fact>> = BTreeMap::new();
    for d in deltas {
        new.entry(d.concept.as_str())
            .or_default()
            .push(stored_fact(d));
    }
    for facts in new.values_mut() {
        facts.sort_by(state::fact_order);
    }
    let mut cost = Refreshed::default();
    for (concept, at) in next_states(
        conn,
        user_id,
        &new,
        every,
        inline,
        to_millis(now),
        &mut cost,
    )? {
        store(conn, user_id, concept, &at, now)?;
    }
    Ok(cost)
}

/// Writes the fold `at` as the stored state of (`user_id`, `concept`).
///
/// # Errors
/// SQLite errors.
pub(super) fn store(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    at: &Position,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let s = &at.state;
    let (Some(level), Some(first_seen)) = (level_number(s.level), s.first_seen) else {
        return Ok(());
    };
    let card = s.card.as_ref();
    conn.prepare_cached(UPSERT)?.execute(params![
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
        at.cursor.as_ref().map(|c| c.0),
        at.cursor.as_ref().map(|c| c.1.as_str()),
        i64::try_from(at.facts).unwrap_or(i64::MAX),
        crate::skill::packed::pack(&at.tail),
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skill::Transition;
    use crate::skill::state::Level;
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

    /// Inserts `batch` as a push does and refreshes the states, with
    /// checkpoints every `every` facts.
    fn push(conn: &Connection, batch: &[Delta], every: u64) -> Refreshed {
        push_with(conn, batch, every, INLINE_REFOLD)
    }

    /// [`push`], queuing refolds deeper than `inline` facts.
    fn push_with(conn: &Connection, batch: &[Delta], every: u64, inline: usize) -> Refreshed {
        let accepted = crate::sync::insert_new(conn, USER, None, batch, 0).expect("insert");
        refresh_with(conn, USER, &accepted, t(0), every, inline).expect("refresh")
    }

    /// Runs the refold worker in slices of `slice` facts until nothing
    /// waits; returns how many slices it took.
    fn drain(conn: &Connection, slice: usize, every: u64) -> usize {
        let mut slices = 0;
        loop {
            let w = super::super::refold::work(conn, t(0), slice, every).expect("work");
            slices += 1;
            if w.left == 0 {
                return slices;
            }
            assert!(slices < 100_000, "the worker makes no progress");
        }
    }

    /// The concepts that wait for the refold worker.
    fn waiting(conn: &Connection) -> Vec<String> {
        conn.prepare("SELECT concept FROM refold_queue")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// Every stored row, and every checkpoint, next to the fold of the
    /// concept's deltas they cover: a row folds all of them, and there is
    /// a checkpoint after each multiple of `every` facts and nowhere else;
    /// concepts waiting for the refold worker are left out (their row and
    /// checkpoints are those of an earlier fold until it is done).
    fn check(conn: &Connection, every: u64) -> Result<(), TestCaseError> {
        let waiting = waiting(conn);
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
        let mut all_checkpoints = 0;
        for c in &concepts {
            // Every fact is held once, in a checkpoint's span, a row's
            // tail or waiting for the worker, whatever has been folded.
            prop_assert_eq!(
                checkpoints::all_facts(conn, USER, c).expect("held facts"),
                deltas_of(conn, c),
                "facts held of {}",
                c
            );
            if waiting.contains(c) {
                let kept: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM fold_checkpoints WHERE concept = ?1",
                        [c],
                        |r| r.get(0),
                    )
                    .expect("count");
                all_checkpoints += usize::try_from(kept).expect("small");
                continue;
            }
            let facts = deltas_of(conn, c);
            let (stored, count) = load_many(conn, USER, &[c.as_str()])
                .expect("load")
                .remove(c)
                .expect("a row");
            prop_assert_eq!(&stored.state, &state::fold(&facts), "concept {}", c);
            let last = facts.last().expect("a fact");
            prop_assert_eq!(stored.cursor, Some(cursor_of(last)));
            prop_assert_eq!(count, Some(facts.len() as u64));
            let kept: Vec<(Position, Option<u64>)> = conn
                .prepare(&format!(
                    "SELECT concept, {} FROM fold_checkpoints WHERE user_id = ?1 AND concept = ?2
                     ORDER BY last_at, last_id",
                    checkpoints::FOLD_COLUMNS
                ))
                .expect("prepare")
                .query_map(params![USER, c], checkpoints::fold_row)
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            let wanted: Vec<usize> = (1..=facts.len())
                .filter(|m| (*m as u64).is_multiple_of(every))
                .collect();
            prop_assert_eq!(kept.len(), wanted.len(), "checkpoints of {}", c);
            for ((p, n), m) in kept.iter().zip(&wanted) {
                prop_assert_eq!(*n, Some(*m as u64));
                prop_assert_eq!(
                    &p.state,
                    &state::fold(&facts[..*m]),
                    "checkpoint {} of {}",
                    m,
                    c
                );
                prop_assert_eq!(p.cursor.clone(), Some(cursor_of(&facts[m - 1])));
            }
            // Each checkpoint holds its interval's facts, the row the rest.
            let (spans, _) =
                checkpoints::spans_after(conn, USER, c, &checkpoints::before_all(), usize::MAX)
                    .expect("spans");
            let mut from = 0;
            for ((_, span), m) in spans.iter().zip(&wanted) {
                prop_assert_eq!(
                    span.as_slice(),
                    &facts[from..*m],
                    "span up to {} of {}",
                    m,
                    c
                );
                from = *m;
            }
            prop_assert_eq!(stored.tail.as_slice(), &facts[from..], "tail of {}", c);
            all_checkpoints += kept.len();
        }
        let stray: i64 = conn
            .query_row("SELECT count(*) FROM fold_checkpoints", [], |r| r.get(0))
            .expect("count");
        prop_assert_eq!(
            stray,
            all_checkpoints as i64,
            "no checkpoint without its concept"
        );
        let unqueued: i64 = conn
            .query_row(
                "SELECT count(*) FROM fold_pending p WHERE NOT EXISTS
                 (SELECT 1 FROM refold_queue q WHERE q.user_id = p.user_id AND q.concept = p.concept)",
                [],
                |r| r.get(0),
            )
            .expect("count");
        prop_assert_eq!(unqueued, 0, "facts wait only for a queued refold");
        // The sweep relies on it: deleting the states takes the rest.
        let orphans: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM refold_queue q WHERE NOT EXISTS
                   (SELECT 1 FROM concept_states s WHERE s.user_id = q.user_id AND s.concept = q.concept))
                 + (SELECT count(*) FROM fold_checkpoints k WHERE NOT EXISTS
                   (SELECT 1 FROM concept_states s WHERE s.user_id = k.user_id AND s.concept = k.concept))",
                [],
                |r| r.get(0),
            )
            .expect("count");
        prop_assert_eq!(
            orphans,
            0,
            "every queued refold and checkpoint has its state row"
        );
        Ok(())
    }

    /// The deltas of `concept`, in fold order: what every fold must equal.
    fn deltas_of(conn: &Connection, concept: &str) -> Vec<Fact> {
        conn.prepare(
            "SELECT id, transition, at, grade FROM deltas
             WHERE user_id = ?1 AND concept = ?2 ORDER BY at, id",
        )
        .expect("prepare")
        .query_map(params![USER, concept], |r| {
            Ok(checkpoints::fact_of(r)?.expect("a known transition"))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("deltas")
    }

    fn delta_at(id: u128, concept: usize, tr: usize, at: DateTime<Utc>, grade: u8) -> Delta {
        let transition = Transition::ALL[tr];
        Delta {
            id: uuid::Uuid::from_u128(id),
            concept: format!("c{concept}"),
            transition,
            at,
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
    }

    fn arb_delta() -> impl Strategy<Value = Delta> {
        // Few concepts and coarse times, so batches mix facts that follow a
        // concept's cursor, precede it and tie with it on `at`.
        (0usize..3, 0usize..5, 0i64..200, any::<u128>(), 1u8..=4).prop_map(
            |(concept, tr, hours, id, grade)| {
                let at = t(hours / 8 * 8) + Duration::microseconds(hours % 3);
                delta_at(id, concept, tr, at, grade)
            },
        )
    }

    /// A fact dated up to a year before every other one.
    fn arb_far_past() -> impl Strategy<Value = Delta> {
        (
            0usize..3,
            0usize..5,
            1i64..(365 * 24),
            any::<u128>(),
            1u8..=4,
        )
            .prop_map(|(concept, tr, hours, id, grade)| delta_at(id, concept, tr, t(-hours), grade))
    }

    /// How a device's facts arrive.
    #[derive(Debug, Clone, Copy)]
    enum Arrival {
        /// Oldest first: every push folds on.
        InOrder,
        /// In any order.
        Shuffled,
        /// Oldest first, but some facts held back and sent at the end.
        Late,
        /// Newest first: each push sorts before everything held.
        NewestFirst,
    }

    fn arb_arrival() -> impl Strategy<Value = Arrival> {
        prop_oneof![
            Just(Arrival::InOrder),
            Just(Arrival::Shuffled),
            Just(Arrival::Late),
            Just(Arrival::NewestFirst),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(192))]
        #[test]
        fn stored_states_equal_the_fold_of_every_delta_whatever_the_batches(
            deltas in proptest::collection::vec(arb_delta(), 1..60),
            arrival in arb_arrival(),
            held_back in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
            far_past in proptest::collection::vec((arb_far_past(), any::<proptest::sample::Index>()), 0..6),
            dups in proptest::collection::vec((any::<proptest::sample::Index>(), any::<proptest::sample::Index>(), 0usize..3), 0..6),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
            every in prop_oneof![1u64..=5, Just(checkpoints::EVERY)],
            replay in any::<proptest::sample::Index>(),
            inline in prop_oneof![Just(INLINE_REFOLD), 0usize..12],
            slice in 1usize..40,
            drain_after in proptest::collection::vec(any::<bool>(), 0..8),
        ) {
            let conn = db();
            let mut deltas = deltas;
            match arrival {
                Arrival::InOrder | Arrival::Late => {
                    deltas.sort_by_key(|d| (d.at.timestamp_millis(), d.id));
                }
                Arrival::NewestFirst => {
                    deltas.sort_by_key(|d| std::cmp::Reverse((d.at.timestamp_millis(), d.id)));
                }
                Arrival::Shuffled => {}
            }
            if matches!(arrival, Arrival::Late) {
                let mut late = Vec::new();
                for i in &held_back {
                    if !deltas.is_empty() {
                        late.push(deltas.remove(i.index(deltas.len())));
                    }
                }
                deltas.extend(late);
            }
            // Facts from far in the past, arriving anywhere.
            for (d, at) in far_past {
                let i = at.index(deltas.len() + 1);
                deltas.insert(i, d);
            }
            // Ids sent again later, some with other contents: the same id
            // at the same time is stored once whatever else it carries,
            // at another time it is another fact (migration 0022).
            for (from, to, change) in dups {
                let i = from.index(deltas.len());
                let mut d = deltas[i].clone();
                match change {
                    0 => {}
                    1 => d.at -= Duration::days(400),
                    _ => d.concept = "c9".into(),
                }
                let j = i + 1 + to.index(deltas.len() - i);
                deltas.insert(j, d);
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(deltas.len() + 1)).collect();
            cuts.push(0);
            cuts.push(deltas.len());
            cuts.sort_unstable();
            // Deep refolds queued (a small `inline`) are worked in slices,
            // after some pushes or only at the end.
            for (k, w) in cuts.windows(2).enumerate() {
                push_with(&conn, &deltas[w[0]..w[1]], every, inline);
                if drain_after.get(k).copied().unwrap_or(false) {
                    drain(&conn, slice, every);
                }
                check(&conn, every)?;
            }
            drain(&conn, slice, every);
            check(&conn, every)?;
            prop_assert!(waiting(&conn).is_empty());
            // A batch sent again changes nothing and costs nothing.
            let again = replay.index(deltas.len());
            prop_assert_eq!(
                push_with(&conn, &deltas[again..], every, inline),
                Refreshed::default()
            );
            check(&conn, every)?;
        }
    }

    fn fact(id: u128, transition: Transition, hours: i64) -> Delta {
        delta_at(
            id,
            0,
            Transition::ALL
                .iter()
                .position(|t| *t == transition)
                .expect("a transition"),
            t(hours),
            3,
        )
    }

    #[test]
    fn a_late_fact_folds_again_from_the_last_checkpoint_before_it() {
        let conn = db();
        // 100 facts in order, one an hour: checkpoints after 4, 8, ... 100.
        let batch: Vec<Delta> = (0..100)
            .map(|i| fact(1000 + i, Transition::Seen, i as i64))
            .collect();
        assert_eq!(push(&conn, &batch, 4), Refreshed::default());
        // One dated with the 97th fact but sorting before it (a smaller id
        // in the same second): folded again from the checkpoint after the
        // 96th, reading the 4 facts after it again.
        let late = fact(1, Transition::Explained, 96);
        let cost = push(&conn, &[late], 4);
        assert_eq!(
            cost,
            Refreshed {
                refolded_concepts: 1,
                refolded_facts: 4,
                charged_facts: 0,
                queued_concepts: 0,
            }
        );
        // One from before everything: the whole history again.
        let far = fact(2, Transition::Demonstrated, -24 * 300);
        let cost = push(&conn, &[far], 4);
        assert_eq!((cost.refolded_facts, cost.charged_facts), (101, 97));
        check(&conn, 4).expect("checkpoints and rows hold the fold");
    }

    /// A refold deeper than a push may do is queued from the last
    /// checkpoint before its first late fact: the push keeps its facts
    /// for the worker and charges the device, the row keeps the earlier
    /// fold until the worker has folded the concept in slices, later
    /// pushes after that checkpoint only leave their facts, and one
    /// before it moves the restart back (and is charged for what that
    /// adds).
    #[test]
    fn a_deep_refold_is_queued_and_worked_in_slices() {
        let conn = db();
        let refold = |c: &Connection, u: &str| super::super::refold::waiting(c, u).map(|w| w.len());
        let waiting_facts = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM fold_pending", [], |r| r.get(0))
                .expect("count")
        };
        let batch: Vec<Delta> = (0..100)
            .map(|i| fact(1000 + i, Transition::Seen, i as i64))
            .collect();
        push_with(&conn, &batch, 4, 10);
        let before = load_many(&conn, USER, &["c0"]).expect("load");
        // Dated with the 50th fact, sorting before it: 52 facts to fold
        // again from the checkpoint after the 48th, more than 10.
        let cost = push_with(&conn, &[fact(1, Transition::Demonstrated, 49)], 4, 10);
        assert_eq!(
            cost,
            Refreshed {
                refolded_concepts: 0,
                refolded_facts: 0,
                charged_facts: 48,
                queued_concepts: 1,
            }
        );
        assert_eq!(refold(&conn, USER).expect("pending"), 1);
        assert_eq!(load_many(&conn, USER, &["c0"]).expect("load"), before);
        assert_eq!(waiting_facts(&conn), 1);
        let cost = push_with(&conn, &[fact(2, Transition::Explained, 60)], 4, 10);
        assert_eq!(cost, Refreshed::default(), "the queued refold covers it");
        // Before the restart point: back to the checkpoint after the
        // 16th fact, and the 32 facts between the two are charged.
        let cost = push_with(&conn, &[fact(3, Transition::Seen, 19)], 4, 10);
        assert_eq!((cost.queued_concepts, cost.charged_facts), (1, 32));
        // A week old: back to the first fact, 16 more.
        let cost = push_with(&conn, &[fact(4, Transition::Seen, -24 * 7)], 4, 10);
        assert_eq!((cost.queued_concepts, cost.charged_facts), (1, 16));
        assert_eq!(waiting_facts(&conn), 4);
        // Five facts a slice, rounded up to whole checkpoint intervals of
        // 4: 8 a slice, so the 104 facts take 13 slices.
        let slices = drain(&conn, 5, 4);
        assert_eq!(slices, 13);
        assert_eq!(refold(&conn, USER).expect("pending"), 0);
        assert_eq!(waiting_facts(&conn), 0);
        check(&conn, 4).expect("the row and the checkpoints hold the fold of every fact");
        let (at, count) = load_many(&conn, USER, &["c0"])
            .expect("load")
            .remove("c0")
            .expect("row");
        assert_eq!(count, Some(104));
        assert_eq!(at.state.level, Level::Demonstrated);
    }

    /// Writes `facts` of `concept` as a database at migration 0023 held
    /// them: the deltas, a stored state folding the first `folded` of them
    /// (with its fact count unless `counted` is false), and a checkpoint,
    /// without its facts, at every multiple of `every` of those.
    fn held_before_0024(
        conn: &Connection,
        concept: &str,
        facts: &[Fact],
        folded: usize,
        counted: bool,
        every: usize,
    ) {
        for f in facts {
            conn.execute(
                "INSERT INTO deltas (id, user_id, concept, transition, at, grade, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
                params![
                    f.id,
                    USER,
                    concept,
                    f.transition.as_str(),
                    to_millis(f.at),
                    f.grade
                ],
            )
            .expect("delta");
        }
        let row = |table: &str, n: usize| {
            let s = state::fold(&facts[..n]);
            let card = s.card.as_ref();
            let last = &facts[n - 1];
            let extra = if table == "concept_states" {
                ", updated_at"
            } else {
                ""
            };
            conn.execute(
                &format!(
                    "INSERT INTO {table} (user_id, concept, level, first_seen_at,
                     first_demonstrated, checks_passed, checks_failed, late_checks, late_passed,
                     stability, difficulty, last_review, reps, lapses, last_at, last_id, facts{extra})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                             ?17{})",
                    if extra.is_empty() { "" } else { ", 0" }
                ),
                params![
                    USER,
                    concept,
                    level_number(s.level),
                    s.first_seen.map(to_millis),
                    s.first_demonstrated.map(to_millis),
                    s.checks_passed,
                    s.checks_failed,
                    s.late_checks,
                    s.late_passed,
                    card.map(|c| c.memory.stability_days),
                    card.map(|c| c.memory.difficulty),
                    card.map(|c| to_millis(c.last_review)),
                    card.map(|c| c.reps),
                    card.map(|c| c.lapses),
                    to_millis(last.at),
                    last.id,
                    (counted || table != "concept_states").then_some(n as i64),
                ],
            )
            .expect("row");
        };
        row("concept_states", folded);
        for m in (every..=folded).step_by(every) {
            row("fold_checkpoints", m);
        }
    }

    fn facts(first_id: u128, n: usize) -> Vec<Fact> {
        let mut out: Vec<Fact> = (0..n)
            .map(|i| {
                stored_fact(&fact(
                    first_id + i as u128,
                    Transition::ALL[i % 5],
                    i as i64,
                ))
            })
            .collect();
        out.sort_by(state::fact_order);
        out
    }

    /// Migration 0024 keeps each concept's facts with its folds: a
    /// concept whose stored fold covers its deltas gets its spans and
    /// tail and is not folded again; one queued for the worker, or stored
    /// before fact counts, waits for the worker with all its facts; the
    /// per-concept index of deltas goes; and pushes and the worker then
    /// keep every fold equal to the fold of every delta.
    #[test]
    fn migration_0024_keeps_the_facts_with_their_folds_and_drops_the_index() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        ORG.to_version(&mut conn, 23).expect("to 23");
        conn.execute(
            "INSERT INTO users (id, user_name, provisioned_by, created_at, updated_at)
             VALUES (?1, ?1, 'operator', 0, 0)",
            [USER],
        )
        .expect("user");
        let every = checkpoints::EVERY as usize;
        // Folded whole: 40 facts, checkpoints after 16 and 32.
        held_before_0024(&conn, "c0", &facts(1000, 40), 40, true, every);
        // Stored before fact counts (migration 0018).
        held_before_0024(&conn, "c1", &facts(2000, 5), 5, false, every);
        // Queued: the row folds 20 of its 30 facts.
        let c2 = facts(3000, 30);
        held_before_0024(&conn, "c2", &c2, 20, true, every);
        conn.execute(
            "INSERT INTO refold_queue (user_id, concept, from_at, from_id, queued_at)
             VALUES (?1, 'c2', ?2, ?3, 0)",
            params![USER, to_millis(c2[10].at), c2[10].id],
        )
        .expect("queued");
        ORG.to_latest(&mut conn).expect("to latest");

        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'deltas_user_concept'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(index, 0, "the per-concept index is gone");
        let mut queued = waiting(&conn);
        queued.sort();
        assert_eq!(queued, ["c1", "c2"]);
        let pending: Vec<(String, i64)> = conn
            .prepare("SELECT concept, count(*) FROM fold_pending GROUP BY concept ORDER BY concept")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(pending, [("c1".to_owned(), 5), ("c2".to_owned(), 30)]);
        check(&conn, checkpoints::EVERY).expect("c0 filled, c1 and c2 held once each");

        // A late fact in c0 folds again from the checkpoint after the
        // 32nd fact, reading the 8 after it from the row's tail.
        let late = fact(1, Transition::Explained, 36);
        let cost = push(&conn, &[late], checkpoints::EVERY);
        assert_eq!((cost.refolded_concepts, cost.refolded_facts), (1, 8));
        drain(&conn, 1024, checkpoints::EVERY);
        check(&conn, checkpoints::EVERY).expect("every fold holds");
        let (c2_state, count) = load_many(&conn, USER, &["c2"])
            .expect("load")
            .remove("c2")
            .expect("row");
        assert_eq!(count, Some(30));
        assert_eq!(c2_state.state, state::fold(&c2));

        // A state's checkpoints and waiting facts go with it (the deletion
        // sweep, a user's removal).
        push_with(
            &conn,
            &[fact(2, Transition::Seen, -24 * 300)],
            checkpoints::EVERY,
            0,
        );
        conn.execute("DELETE FROM concept_states", [])
            .expect("delete");
        for table in ["fold_checkpoints", "fold_pending", "refold_queue"] {
            let left: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .expect("count");
            assert_eq!(left, 0, "{table} goes with its state");
        }
    }
}
