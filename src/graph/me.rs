//! What engineers do with their own data (SECURITY.md P19, P21, P22): see
//! their graph, opt out of org aggregates (at once), export everything held
//! about them, and delete it (a 30-day hold, then the sweeper deletes).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::trend;
use crate::audit::Context;
use crate::catalogue::OrgConcepts;
use crate::clock::{from_millis, to_millis};
use crate::skill::Catalogue;
use crate::skill::Transition;
use crate::skill::state::{self, ConceptState, Fact};
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
    let states = states(org, user_id)?;
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

/// The engineer's state per concept they have met: the fold of their own
/// deltas (equal to their stored `concept_states`, `super::states`), with
/// the memory model's card (stability, difficulty, last review) once a
/// check was graded.
///
/// # Errors
/// Store errors.
pub fn states(org: &OrgDb, user_id: &str) -> Result<BTreeMap<String, ConceptState>, StoreError> {
    Ok(state::fold_all(facts(org, user_id)?))
}

/// The engineer's state per concept as stored (`concept_states`, kept by
/// every push in its transaction: the level, counters and the memory
/// model's card with its stability and difficulty), equal to [`states`]
/// (`super::states`' property test) without folding every delta. Rows
/// from before migration 0018 are queued by migration 0024 and folded
/// again by the refold worker; while the engineer has any, this folds
/// their deltas instead. Concepts that
/// wait for the refold worker (`super::refold`) are folded from their
/// facts here, so the engineer's own pages never show a state behind
/// their deltas.
///
/// # Errors
/// Store errors.
pub fn stored_states(
    org: &OrgDb,
    user_id: &str,
) -> Result<BTreeMap<String, ConceptState>, StoreError> {
    let (rows, waiting) = org.db.read(|c| {
        let rows = super::states::of_user(c, user_id)?;
        let mut waiting = BTreeMap::new();
        for concept in super::refold::waiting(c, user_id)? {
            let facts = super::checkpoints::all_facts(c, user_id, &concept)?;
            waiting.insert(concept, state::fold(&facts));
        }
        Ok::<_, StoreError>((rows, waiting))
    })?;
    if rows.values().any(|(_, facts)| facts.is_none()) {
        return states(org, user_id);
    }
    let mut out: BTreeMap<String, ConceptState> =
        rows.into_iter().map(|(c, (p, _))| (c, p.state)).collect();
    out.extend(waiting);
    Ok(out)
}

/// One ISO week of an engineer's own history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Week {
    /// `2026-W03`.
    pub week: String,
    /// Concepts with any fact that week.
    pub met: u32,
    /// Concepts demonstrated, or with a check passed, that week.
    pub demonstrated: u32,
    pub checks_passed: u32,
    pub checks_failed: u32,
}

/// The engineer's last `weeks` ISO weeks up to and including the one
/// holding `now`, oldest first, every week present (a quiet week is zeros).
///
/// # Errors
/// Store errors.
pub fn history(
    org: &OrgDb,
    user_id: &str,
    now: DateTime<Utc>,
    weeks: u32,
) -> Result<Vec<Week>, StoreError> {
    Ok(weekly(&facts(org, user_id)?, now, weeks))
}

/// [`history`] of `facts` (concept, fact), without the store.
pub fn weekly(facts: &[(String, Fact)], now: DateTime<Utc>, weeks: u32) -> Vec<Week> {
    use std::collections::BTreeSet;
    let last = trend::week_of(now);
    let first = last - 7 * i64::from(weeks.max(1) - 1);
    let mut met: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
    let mut shown: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
    let mut checks: BTreeMap<i64, (u32, u32)> = BTreeMap::new();
    for (concept, f) in facts {
        let w = trend::week_of(f.at);
        if w < first || w > last {
            continue;
        }
        met.entry(w).or_default().insert(concept);
        match f.transition {
            Transition::Demonstrated => {
                shown.entry(w).or_default().insert(concept);
            }
            Transition::CheckPassed => {
                shown.entry(w).or_default().insert(concept);
                checks.entry(w).or_default().0 += 1;
            }
            Transition::CheckFailed => checks.entry(w).or_default().1 += 1,
            Transition::Seen | Transition::Explained => {}
        }
    }
    let count = |m: &BTreeMap<i64, BTreeSet<&str>>, w| {
        m.get(&w)
            .map_or(0, |s| u32::try_from(s.len()).unwrap_or(u32::MAX))
    };
    (0..weeks.max(1))
        .map(|i| {
            let w = first + 7 * i64::from(i);
            let (passed, failed) = checks.get(&w).copied().unwrap_or_default();
            Week {
                week: trend::label(w),
                met: count(&met, w),
                demonstrated: count(&shown, w),
                checks_passed: passed,
                checks_failed: failed,
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fact(concept: &str, transition: Transition, at: DateTime<Utc>) -> (String, Fact) {
        (
            concept.into(),
            Fact {
                id: uuid::Uuid::new_v4().to_string(),
                transition,
                at,
                grade: None,
            },
        )
    }

    #[test]
    fn the_history_has_every_week_and_counts_concepts_once_a_week() {
        // Wednesday 2026-01-21 is in 2026-W04.
        let now = Utc
            .with_ymd_and_hms(2026, 1, 21, 12, 0, 0)
            .single()
            .expect("valid");
        let day = |d: i64| now - Duration::days(d);
        let facts = vec![
            fact("a", Transition::Seen, day(15)),
            fact("a", Transition::Demonstrated, day(15)),
            fact("a", Transition::CheckPassed, day(1)),
            fact("a", Transition::CheckPassed, day(0)),
            fact("b", Transition::Seen, day(1)),
            fact("b", Transition::CheckFailed, day(0)),
            // Before the window: not counted.
            fact("c", Transition::Seen, day(60)),
        ];
        let h = weekly(&facts, now, 4);
        let weeks: Vec<&str> = h.iter().map(|w| w.week.as_str()).collect();
        assert_eq!(weeks, ["2026-W01", "2026-W02", "2026-W03", "2026-W04"]);
        assert_eq!((h[1].met, h[1].demonstrated), (1, 1), "W02: a");
        assert_eq!(
            h[2],
            Week {
                week: "2026-W03".into(),
                met: 0,
                demonstrated: 0,
                checks_passed: 0,
                checks_failed: 0
            }
        );
        assert_eq!(
            (
                h[3].met,
                h[3].demonstrated,
                h[3].checks_passed,
                h[3].checks_failed
            ),
            (2, 1, 2, 1),
            "W04: a twice passed (one concept), b failed"
        );
        assert_eq!(h[0].met, 0);
        // Zero weeks asked still gives the current one.
        assert_eq!(weekly(&facts, now, 0).len(), 1);
    }
}
