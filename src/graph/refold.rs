//! The refold worker: concepts whose refold was deeper than a push may do
//! (`super::states::INLINE_REFOLD`) wait in `refold_queue` (migrations
//! 0023 and 0024) with the checkpoint they restart from, their new facts
//! waiting in `fold_pending`, and are folded here in slices of at most
//! [`SLICE`] facts, each its own short transaction. So a device returning
//! with last week's backlog, or one sending facts dated anywhere in the
//! past, holds the org's writer for one slice at a time, and other
//! engineers' pushes keep their latency (issue 23); and a backlog sent
//! oldest first folds each concept once, however many pushes it takes,
//! since the pushes after the first only leave their facts (or move the
//! restart point back).
//!
//! While a concept waits, its stored state is the fold before the late
//! facts (the engineer's own pages fold those concepts from their facts
//! instead: `super::me::stored_states`, [`waiting`]); once the worker
//! reaches the last fact the row, and every checkpoint, equal the fold of
//! all the concept's facts, as a push's own fold does (property test in
//! `super::states`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use tokio::sync::watch;

use super::checkpoints::{self, Cursor};
use crate::clock::Clock;
use crate::store::{OrgDb, Store, StoreError};

/// The most facts one transaction of the worker folds: a few
/// milliseconds of the writer, about what a push of 200 facts holds it
/// (with 4,096 a slice, other pushes waited behind the worker: p95 304 ms
/// against 146 while a week-old backlog was folded, sustained-ingest run
/// 6).
pub const SLICE: usize = 1024;

/// How often an idle worker looks for queued concepts.
const IDLE: Duration = Duration::from_millis(500);

/// The queued start of each of `concepts` of `user_id` that waits.
///
/// # Errors
/// SQLite errors.
pub fn queued(
    conn: &Connection,
    user_id: &str,
    concepts: &[&str],
) -> rusqlite::Result<BTreeMap<String, Cursor>> {
    let json = serde_json::to_string(concepts)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.prepare_cached(
        "SELECT concept, from_at, from_id FROM refold_queue
         WHERE user_id = ?1 AND concept IN (SELECT value FROM json_each(?2))",
    )?
    .query_map(params![user_id, json], |r| {
        Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))
    })?
    .collect()
}

/// Queues (`user_id`, `concept`) to be folded again from `from`, or moves
/// its queued start back to `from` if that is earlier.
///
/// # Errors
/// SQLite errors.
pub fn queue(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    from: &Cursor,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO refold_queue (user_id, concept, from_at, from_id, queued_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (user_id, concept) DO UPDATE SET
             from_at = excluded.from_at, from_id = excluded.from_id
         WHERE (excluded.from_at, excluded.from_id) < (refold_queue.from_at, refold_queue.from_id)",
    )?
    .execute(params![user_id, concept, from.0, from.1, now_ms])?;
    Ok(())
}

/// The concepts of `user_id` that wait for the worker (their stored state
/// does not hold their latest facts yet).
///
/// # Errors
/// SQLite errors.
pub fn waiting(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT concept FROM refold_queue WHERE user_id = ?1 ORDER BY concept")?
        .query_map([user_id], |r| r.get(0))?
        .collect()
}

/// What one slice did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Worked {
    /// Facts folded.
    pub facts: usize,
    /// Concepts whose refold reached their last fact (their row is
    /// current and they left the queue).
    pub finished: usize,
    /// Concepts still queued after the slice.
    pub left: usize,
}

/// Folds queued concepts, oldest queued first, until about `max_facts`
/// facts are folded, with checkpoints every `every` facts.
///
/// A queued concept restarts from its checkpoint `from`. Its facts after
/// that are in three places, each fact in one: the intervals of the
/// checkpoints after `from` (a fold that no longer holds, but their facts
/// do), the facts waiting in `fold_pending` (new ones, and those a slice
/// read but did not fold into a checkpoint), and the stored state's tail.
/// A slice reads about `max_facts` of the first two, folds the facts up to
/// the first point where it has read all of both, lays checkpoints over
/// them, puts what follows the last one back into `fold_pending`, and
/// moves `from` to that checkpoint; the slice that has read everything
/// takes the tail too, stores the state and leaves the queue.
///
/// # Errors
/// SQLite errors, a damaged span.
pub fn work(
    conn: &Connection,
    now: DateTime<Utc>,
    max_facts: usize,
    every: u64,
) -> rusqlite::Result<Worked> {
    let waiting: Vec<(String, String, Cursor)> = conn
        .prepare_cached(
            "SELECT user_id, concept, from_at, from_id FROM refold_queue
             ORDER BY queued_at, user_id, concept LIMIT 64",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, (r.get(2)?, r.get(3)?))))?
        .collect::<rusqlite::Result<_>>()?;
    let step = usize::try_from(every.max(1)).unwrap_or(usize::MAX);
    let mut budget = max_facts.max(1);
    let mut worked = Worked::default();
    for (user_id, concept, from) in waiting {
        if budget == 0 {
            break;
        }
        // Whole checkpoint intervals, so a slice lays at least one.
        let n = budget.div_ceil(step).saturating_mul(step);
        let done = slice_of(conn, &user_id, &concept, &from, n, every, now)?;
        worked.facts += done.facts;
        worked.finished += done.finished;
        budget = budget.saturating_sub(done.facts.max(1));
    }
    let left: i64 = conn
        .prepare_cached("SELECT count(*) FROM refold_queue")?
        .query_row([], |r| r.get(0))?;
    worked.left = usize::try_from(left).unwrap_or(0);
    Ok(worked)
}

/// One slice of (`user_id`, `concept`), queued from `from`: see [`work`].
fn slice_of(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    from: &Cursor,
    n: usize,
    every: u64,
    now: DateTime<Utc>,
) -> rusqlite::Result<Worked> {
    let start = checkpoints::checkpoint_at(conn, user_id, concept, from)?;
    let after = checkpoints::cursor_or_start(&start);
    let (spans, more_spans) = checkpoints::spans_after(conn, user_id, concept, &after, n)?;
    let mut read = checkpoints::pending_after(conn, user_id, concept, &after, n.saturating_add(1))?;
    let more_pending = read.len() > n;
    if more_pending {
        read.pop();
    }
    // Every fact up to `upto` has been read: beyond the last checkpoint
    // read lie only later checkpoints' facts and the tail, beyond the last
    // waiting fact read only later waiting ones.
    let last_span = spans.last().map(|(c, _)| c.clone());
    let pending_end = read.last().map(checkpoints::cursor_of);
    let upto = match (more_spans, more_pending) {
        (false, false) => None,
        (true, false) => last_span.clone(),
        (false, true) => pending_end,
        (true, true) => last_span.clone().min(pending_end),
    };
    for (_, facts) in spans {
        read.extend(facts);
    }
    // The stored state's tail follows every checkpoint's facts: once
    // those are all read it is read too (and, unless this slice finishes,
    // its facts wait with the others from now on).
    if !more_spans {
        read.extend(checkpoints::stored_tail(conn, user_id, concept)?);
    }
    read.sort_by(crate::skill::state::fact_order);
    // Up to `upto`, and no more than `n` facts a slice (both sources can
    // give `n`).
    let cut = upto
        .as_ref()
        .map_or(read.len(), |u| {
            read.partition_point(|f| checkpoints::cursor_of(f) <= *u)
        })
        .min(n);
    let finish = cut == read.len() && upto.is_none();
    let (folded, beyond) = read.split_at(cut);
    // The checkpoints read go (those past the cut too: their facts wait
    // again), and so do the waiting facts folded; a tail read but not
    // folded whole waits with the others.
    if let Some(last) = &last_span {
        checkpoints::forget_between(conn, user_id, concept, &after, last)?;
    }
    if let Some(u) = folded.last().map(checkpoints::cursor_of) {
        checkpoints::drop_pending_through(conn, user_id, concept, &u)?;
    }
    if !more_spans && !finish {
        conn.prepare_cached(
            "UPDATE concept_states SET tail = NULL WHERE user_id = ?1 AND concept = ?2",
        )?
        .execute(params![user_id, concept])?;
    }
    let at = checkpoints::fold_on(conn, user_id, concept, start, folded, every)?;
    let worked = Worked {
        facts: folded.len(),
        ..Worked::default()
    };
    if finish {
        super::states::store(conn, user_id, concept, &at, now)?;
        conn.prepare_cached("DELETE FROM refold_queue WHERE user_id = ?1 AND concept = ?2")?
            .execute(params![user_id, concept])?;
        return Ok(Worked {
            finished: 1,
            ..worked
        });
    }
    // What follows the last checkpoint laid waits for the next slice,
    // which starts from that checkpoint.
    checkpoints::put_pending(conn, user_id, concept, &at.tail)?;
    checkpoints::put_pending(conn, user_id, concept, beyond)?;
    let laid = folded.len() - at.tail.len();
    if laid > 0 {
        let restart = checkpoints::cursor_of(&folded[laid - 1]);
        conn.prepare_cached(
            "UPDATE refold_queue SET from_at = ?3, from_id = ?4
             WHERE user_id = ?1 AND concept = ?2",
        )?
        .execute(params![user_id, concept, restart.0, restart.1])?;
    }
    Ok(worked)
}

/// One slice of `org`'s queue, if it has one, in its own transaction.
///
/// # Errors
/// Store errors.
pub fn slice(org: &OrgDb, now: DateTime<Utc>) -> Result<Worked, StoreError> {
    let waiting = org.db.read(|c| {
        c.query_row("SELECT EXISTS (SELECT 1 FROM refold_queue)", [], |r| {
            r.get::<_, bool>(0)
        })
        .map_err(StoreError::from)
    })?;
    if !waiting {
        return Ok(Worked::default());
    }
    org.db
        .write(|tx| work(tx, now, SLICE, checkpoints::EVERY).map_err(StoreError::from))
}

/// Works every org's queue until `shutdown` turns true. Between two
/// slices it pauses twice as long as the slice took, so it holds an
/// org's writer at most about a third of the time and pushes waiting for
/// it go first.
pub async fn run(store: Arc<Store>, clock: Arc<dyn Clock>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let started = Instant::now();
        let (s, now) = (Arc::clone(&store), clock.now());
        let left = tokio::task::spawn_blocking(move || {
            let mut left = 0;
            for org in s.orgs() {
                match slice(org, now) {
                    Ok(w) => left += w.left,
                    Err(e) => {
                        tracing::error!(org = %org.slug, error = %e, "refold failed; retrying");
                    }
                }
            }
            left
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "refold task panicked; retrying");
            0
        });
        let pause = if left > 0 {
            started.elapsed() * 2
        } else {
            IDLE
        };
        tokio::select! {
            () = tokio::time::sleep(pause.max(Duration::from_millis(1))) => {}
            _ = shutdown.changed() => return,
        }
    }
}
