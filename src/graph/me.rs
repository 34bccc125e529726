//! What engineers do with their own data (SECURITY.md P19, P21, P22): see
//! their graph, opt out of org aggregates (at once), export everything held
//! about them, and delete it (a 30-day hold, then the sweeper deletes).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::Context;
use crate::catalogue::OrgConcepts;
use crate::clock::{from_millis, to_millis};
use crate::skill::Catalogue;
use crate::skill::Transition;
use crate::skill::state::{self, Fact};
use crate::store::deltas as sql;
use crate::store::{OrgDb, Store, StoreError};

/// How long data is held after a deletion request.
pub const DELETION_HOLD: Duration = Duration::days(30);

/// One concept of an engineer's graph.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub slug: String,
    pub title: String,
    pub domain: String,
    pub state: &'static str,
    pub recall: Option<f64>,
    pub due: Option<DateTime<Utc>>,
    pub last_activity: Option<DateTime<Utc>>,
    pub checks_passed: u32,
    pub checks_failed: u32,
}

fn facts(org: &OrgDb, user_id: &str) -> Result<Vec<(String, Fact)>, StoreError> {
    let rows = org
        .db
        .read(|c| sql::all_for_user(c, user_id).map_err(StoreError::from))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let transition = Transition::parse(&r.transition)?;
            Some((
                r.concept,
                Fact {
                    id: r.id,
                    transition,
                    at: from_millis(r.at),
                    grade: r.grade.and_then(|g| u8::try_from(g).ok()),
                },
            ))
        })
        .collect())
}

/// The engineer's graph: every concept they have met, with state, predicted
/// recall and next due check.
///
/// # Errors
/// Store errors.
pub fn graph(
    org: &OrgDb,
    catalogue: &Catalogue,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Entry>, StoreError> {
    let states = state::fold_all(facts(org, user_id)?);
    let concepts = OrgConcepts::load(catalogue, org)?;
    Ok(states
        .into_iter()
        .map(|(slug, s)| {
            let c = concepts.get(&slug);
            Entry {
                title: c.map(|c| c.title.clone()).unwrap_or_default(),
                domain: c.map(|c| c.domain.clone()).unwrap_or_default(),
                state: s.label(now),
                recall: s.recall(now),
                due: s.due(),
                last_activity: s.last_activity,
                checks_passed: s.checks_passed,
                checks_failed: s.checks_failed,
                slug,
            }
        })
        .collect())
}

/// The engineer's privacy choices.
#[derive(Debug, Clone, Serialize)]
pub struct Privacy {
    pub opted_out: bool,
    pub deletion_requested_at: Option<DateTime<Utc>>,
    pub deletion_due_at: Option<DateTime<Utc>>,
}

/// # Errors
/// Store errors.
pub fn privacy(org: &OrgDb, user_id: &str) -> Result<Privacy, StoreError> {
    let (opted_out, requested) = org
        .db
        .read(|c| sql::privacy(c, user_id).map_err(StoreError::from))?;
    let requested = requested.map(from_millis);
    Ok(Privacy {
        opted_out,
        deletion_requested_at: requested,
        deletion_due_at: requested.map(|r| r + DELETION_HOLD),
    })
}

/// Opts in or out of org aggregates, effective at once. Audited.
///
/// # Errors
/// Store errors.
pub fn set_opt_out(
    org: &OrgDb,
    user_id: &str,
    opted_out: bool,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    org.db.write(|tx| {
        sql::set_opted_out(tx, user_id, opted_out)?;
        ctx.record(
            tx,
            "privacy.opt_out",
            Some(user_id),
            &json!({ "opted_out": opted_out }),
            now,
        )
    })
}

/// Why an export could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read the engineer's profile: {0}")]
    Profile(#[from] crate::users::UserError),
    #[error("cannot read the engineer's devices: {0}")]
    Devices(#[from] crate::devices::DeviceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything held about the engineer, as one JSON document. Audited as
/// `data.export` (the endpoint allows three an hour).
///
/// # Errors
/// Store errors, or the profile or devices that could not be read.
pub fn export(
    org: &OrgDb,
    catalogue: &Catalogue,
    user_id: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Value, ExportError> {
    let user = crate::users::get(org, user_id)?;
    let deltas = org
        .db
        .read(|c| sql::all_for_user(c, user_id).map_err(StoreError::from))?;
    let sessions = crate::sessions::list(org, user_id)?;
    let devices = crate::devices::list(org, user_id)?;
    let doc = json!({
        "exported_at": now,
        "org": org.slug,
        "profile": {
            "id": user.id, "user_name": user.user_name, "display_name": user.display_name,
            "emails": user.emails, "groups": user.groups, "active": user.active,
            "created_at": user.created_at,
        },
        "privacy": privacy(org, user_id)?,
        "devices": devices,
        "sessions": sessions.iter().map(|s| json!({
            "created_at": s.created_at, "last_seen_at": s.last_seen_at, "ip": s.ip, "user_agent": s.user_agent,
        })).collect::<Vec<_>>(),
        "graph": graph(org, catalogue, user_id, now)?,
        "deltas": deltas.iter().map(|d| json!({
            "id": d.id, "concept": d.concept, "transition": d.transition,
            "at": from_millis(d.at), "grade": d.grade, "device_id": d.device_id,
        })).collect::<Vec<_>>(),
    });
    org.db.write(|tx| {
        ctx.record(
            tx,
            "data.export",
            Some(user_id),
            &json!({ "deltas": deltas.len() }),
            now,
        )
    })?;
    Ok(doc)
}

/// Requests deletion: the engineer leaves every aggregate at once and their
/// deltas are deleted when the 30-day hold ends. Audited.
///
/// # Errors
/// Store errors.
pub fn request_deletion(
    org: &OrgDb,
    user_id: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, StoreError> {
    org.db.write(|tx| {
        sql::set_deletion(tx, user_id, Some(to_millis(now)))?;
        ctx.record(
            tx,
            "data.delete_request",
            Some(user_id),
            &json!({ "deletion_due_at": now + DELETION_HOLD }),
            now,
        )
    })?;
    Ok(now + DELETION_HOLD)
}

/// Cancels a pending deletion during the hold. Audited.
///
/// # Errors
/// Store errors.
pub fn cancel_deletion(
    org: &OrgDb,
    user_id: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    org.db.write(|tx| {
        sql::set_deletion(tx, user_id, None)?;
        ctx.record(tx, "data.delete_cancel", Some(user_id), &json!({}), now)
    })
}

/// Deletes the deltas of every engineer whose hold has ended (daily).
///
/// # Errors
/// Store errors.
pub fn sweep_deletions(store: &Store, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let cutoff = to_millis(now - DELETION_HOLD);
    let mut n = 0;
    for org in store.orgs() {
        let users = org.db.write(|tx| {
            let users = sql::sweep_deletions(tx, cutoff)?;
            for u in &users {
                Context::system().record(tx, "data.deleted", Some(u), &json!({}), now)?;
            }
            Ok::<_, StoreError>(users)
        })?;
        n += users.len();
    }
    Ok(n)
}
