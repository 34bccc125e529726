//! The refold worker: concepts whose refold was deeper than a push may do
//! (`super::states::INLINE_REFOLD`) wait in `refold_queue` (migration
//! 0023) from the first fact not yet folded, and are folded here from the
//! last checkpoint before it, in slices of at most [`SLICE`] facts, each
//! its own short transaction. So a device returning with last week's
//! backlog, or one sending facts dated anywhere in the past, holds the
//! org's writer for one slice at a time, and other engineers' pushes keep
//! their latency (issue 23); and a backlog sent oldest first folds each
//! concept once, however many pushes it takes, since the pushes after the
//! first only store their facts (or move the queued start back).
//!
//! While a concept waits, its stored state is the fold before the late
//! facts (the engineer's own pages fold those concepts from their facts
//! instead: `super::me::stored_states`, [`waiting`]); once the worker reaches the last fact the row, and every
//! checkpoint, equal the fold of all the concept's facts, as a push's own
//! fold does (property test in `super::states`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use tokio::sync::watch;

use super::checkpoints::{self, Cursor};
use crate::clock::{Clock, to_millis};
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
/// facts are folded, with checkpoints every `every` facts. A concept not
/// finished keeps its place, its start moved to its first fact not yet
/// folded; the slice stops on a checkpoint, where the next one restarts.
///
/// # Errors
/// SQLite errors.
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
        let start = checkpoints::restart_before(conn, &user_id, &concept, &from)?;
        // Whole checkpoint intervals: the start is on one (or at the
        // first fact), so a slice that stops early ends on one too.
        let n = budget.div_ceil(step).saturating_mul(step);
        let facts = checkpoints::facts_slice(
            conn,
            &user_id,
            &concept,
            start.cursor.as_ref(),
            n.saturating_add(1),
        )?;
        let take = facts.len().min(n);
        let at = checkpoints::fold_on(conn, &user_id, &concept, start, &facts[..take], every)?;
        worked.facts += take;
        budget = budget.saturating_sub(take);
        if let Some(next) = facts.get(take) {
            conn.prepare_cached(
                "UPDATE refold_queue SET from_at = ?3, from_id = ?4
                 WHERE user_id = ?1 AND concept = ?2",
            )?
            .execute(params![user_id, concept, to_millis(next.at), next.id])?;
        } else {
            super::states::store(conn, &user_id, &concept, &at, now)?;
            conn.prepare_cached("DELETE FROM refold_queue WHERE user_id = ?1 AND concept = ?2")?
                .execute(params![user_id, concept])?;
            worked.finished += 1;
        }
    }
    let left: i64 = conn
        .prepare_cached("SELECT count(*) FROM refold_queue")?
        .query_row([], |r| r.get(0))?;
    worked.left = usize::try_from(left).unwrap_or(0);
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
