//! Sync: devices push concept-level deltas and pull the engineer's deltas
//! from all their devices. Deltas are append-only facts, idempotent by
//! (engineer, id); a push is one transaction, so a refused batch leaves
//! nothing behind.

pub mod routes;
pub mod wire;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{from_millis, to_millis};
use crate::skill::Delta;
use crate::skill::catalogue::CUSTOM_PREFIX;
use crate::store::deltas as sql;
use crate::store::{OrgDb, StoreError, concepts as concept_sql};
use wire::WireError;

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pushed {
    pub accepted: usize,
    pub duplicates: usize,
    /// The engineer's newest cursor after the push.
    pub cursor: i64,
    /// Facts held before the push that it folded again because some of its
    /// facts arrived out of order, beyond one checkpoint interval per
    /// concept: what the device's refold budget is charged
    /// (`rate_limits.refold`).
    #[serde(skip)]
    pub refolded: usize,
}

/// Why a push stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// An org concept was retired after the batch passed the schema and
    /// before it was written; the pointer names the first delta affected.
    #[error(transparent)]
    Retired(WireError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for PushError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Checks, inside the push's transaction, that no org concept of the batch
/// was retired since [`wire::parse_push`] saw it (an admin may retire one
/// at any moment).
fn recheck_retired(tx: &rusqlite::Connection, deltas: &[Delta]) -> Result<(), PushError> {
    for (i, d) in deltas.iter().enumerate() {
        if !d.concept.starts_with(CUSTOM_PREFIX) {
            continue;
        }
        if let Some(Some(since)) = concept_sql::get(tx, &d.concept)?.map(|c| c.retired_at)
            && to_millis(d.at) >= since
        {
            return Err(PushError::Retired(WireError {
                pointer: format!("/deltas/{i}/concept"),
                message: wire::retired_message(&d.concept, from_millis(since)),
            }));
        }
    }
    Ok(())
}

/// Inserts the deltas of a push and returns those that were new: the
/// first of each id the user did not hold yet. (One statement for the
/// whole batch, through `json_each`, measured no faster than one per
/// delta: docs/benchmarks.md.)
///
/// # Errors
/// SQLite errors.
pub fn insert_new<'d>(
    tx: &rusqlite::Connection,
    user_id: &str,
    device_id: Option<&str>,
    deltas: &'d [Delta],
    now_ms: i64,
) -> rusqlite::Result<Vec<&'d Delta>> {
    let mut accepted = Vec::new();
    for d in deltas {
        let id = d.id.to_string();
        let (tr, at) = (d.transition.as_str(), to_millis(d.at));
        if sql::insert(
            tx, user_id, device_id, &id, &d.concept, tr, at, d.grade, now_ms,
        )? {
            accepted.push(d);
        }
    }
    Ok(accepted)
}

/// Stores `deltas` for `user_id` in one transaction.
///
/// # Errors
/// Store errors, or [`PushError::Retired`]; then nothing was stored.
pub fn push(
    org: &OrgDb,
    user_id: &str,
    device_id: Option<&str>,
    deltas: &[Delta],
    now: DateTime<Utc>,
) -> Result<Pushed, PushError> {
    let now_ms = to_millis(now);
    org.db.write(|tx| {
        recheck_retired(tx, deltas)?;
        let accepted = insert_new(tx, user_id, device_id, deltas, now_ms)?;
        let refreshed = crate::graph::states::refresh(tx, user_id, &accepted, now)?;
        crate::graph::trend::record(tx, user_id, &accepted)?;
        Ok(Pushed {
            accepted: accepted.len(),
            duplicates: deltas.len() - accepted.len(),
            cursor: sql::last_seq(tx, user_id)?,
            refolded: refreshed.charged_facts,
        })
    })
}

/// One delta as pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PulledDelta {
    pub id: String,
    pub concept: String,
    pub transition: String,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grade: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

/// A page of pulled deltas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pulled {
    pub deltas: Vec<PulledDelta>,
    /// Pass as `since` to continue.
    pub cursor: i64,
    pub more: bool,
}

/// The engineer's deltas after `since`, at most `limit`.
///
/// # Errors
/// Store errors.
pub fn pull(org: &OrgDb, user_id: &str, since: i64, limit: u32) -> Result<Pulled, StoreError> {
    let rows = org
        .db
        .read(|c| sql::since(c, user_id, since, limit + 1).map_err(StoreError::from))?;
    let more = rows.len() > limit as usize;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let cursor = rows.last().map_or(since, |r| r.seq);
    Ok(Pulled {
        deltas: rows
            .into_iter()
            .map(|r| PulledDelta {
                id: r.id,
                concept: r.concept,
                transition: r.transition,
                at: from_millis(r.at),
                grade: r.grade,
                device_id: r.device_id,
            })
            .collect(),
        cursor,
        more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrations::ORG;
    use chrono::TimeZone;

    fn delta(id: u128, concept: &str) -> Delta {
        Delta {
            id: uuid::Uuid::from_u128(id),
            concept: concept.into(),
            transition: crate::skill::Transition::Seen,
            at: Utc
                .with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
                .single()
                .expect("valid"),
            grade: None,
        }
    }

    /// The insert keeps the batch's order and stores the first delta of each id the user did not hold, whatever repeats.
    #[test]
    fn insert_new_stores_each_new_id_once_in_order() {
        let mut conn = rusqlite::Connection::open_in_memory().expect("memory db");
        ORG.to_latest(&mut conn).expect("migrations");
        conn.execute(
            "INSERT INTO users (id, user_name, provisioned_by, created_at, updated_at)
             VALUES ('u', 'u', 'operator', 0, 0)",
            [],
        )
        .expect("user");
        let first = [delta(3, "a"), delta(1, "b")];
        let new = insert_new(&conn, "u", Some("dev"), &first, 5).expect("insert");
        assert_eq!(new, first.iter().collect::<Vec<_>>());
        // Held already (3), new (2, 4), and 2 again with another concept.
        let second = [delta(3, "a"), delta(2, "c"), delta(2, "d"), delta(4, "e")];
        let new = insert_new(&conn, "u", None, &second, 6).expect("insert");
        assert_eq!(new, vec![&second[1], &second[3]]);
        // In arrival order (a skipped duplicate may leave a gap in `seq`).
        let stored: Vec<(String, String, Option<String>, i64)> = conn
            .prepare("SELECT id, concept, device_id, received_at FROM deltas ORDER BY seq")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let id = |n: u128| uuid::Uuid::from_u128(n).to_string();
        assert_eq!(
            stored,
            vec![
                (id(3), "a".into(), Some("dev".into()), 5),
                (id(1), "b".into(), Some("dev".into()), 5),
                (id(2), "c".into(), None, 6),
                (id(4), "e".into(), None, 6),
            ]
        );
    }
}
