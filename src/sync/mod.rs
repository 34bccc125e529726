//! Sync: devices push concept-level deltas and pull the engineer's deltas
//! from all their devices. Deltas are append-only facts, idempotent by
//! (engineer, id); a push is one transaction, so a refused batch leaves
//! nothing behind.

pub mod routes;
pub mod wire;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{from_millis, to_millis};
use crate::store::deltas as sql;
use crate::store::{OrgDb, StoreError};
use wire::Delta;

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pushed {
    pub accepted: usize,
    pub duplicates: usize,
    /// The engineer's newest cursor after the push.
    pub cursor: i64,
}

/// Stores `deltas` for `user_id` in one transaction.
///
/// # Errors
/// Store errors; then nothing was stored.
pub fn push(
    org: &OrgDb,
    user_id: &str,
    device_id: Option<&str>,
    deltas: &[Delta],
    now: DateTime<Utc>,
) -> Result<Pushed, StoreError> {
    let now_ms = to_millis(now);
    org.db.write(|tx| {
        let mut accepted = 0;
        let mut touched = std::collections::BTreeSet::new();
        for d in deltas {
            let id = d.id.to_string();
            if sql::insert(
                tx,
                user_id,
                device_id,
                &id,
                &d.concept,
                d.transition.as_str(),
                to_millis(d.at),
                d.grade,
                now_ms,
            )? {
                accepted += 1;
                touched.insert(d.concept.as_str());
            }
        }
        crate::graph::aggregates::refresh_states(tx, user_id, &touched, now)?;
        Ok(Pushed {
            accepted,
            duplicates: deltas.len() - accepted,
            cursor: sql::last_seq(tx, user_id)?,
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
