//! Org aggregates (SECURITY.md P19): per concept, and per team, how many
//! engineers have seen and demonstrated it and how well it is retained.
//! Read from `concept_states` (one row per engineer and concept, refreshed
//! on every push), never from raw deltas. Opted-out engineers and those
//! awaiting deletion are never counted; a cohort smaller than
//! `privacy.min_cohort` is suppressed. Each concept carries its weekly
//! trend (`trend`), counted and suppressed by the same rules. There is no
//! way to ask for one engineer's graph here.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::fsrs;
use super::state::{self, Fact, Level};
use super::trend::{self, WeekCount};
use crate::catalogue::Catalogue;
use crate::catalogue::custom::OrgConcepts;
use crate::clock::{from_millis, to_millis};
use crate::store::{OrgDb, StoreError};
use crate::sync::wire::Transition;

const FACTS: &str =
    "SELECT id, transition, at, grade FROM deltas WHERE user_id = ?1 AND concept = ?2";

const UPSERT: &str = "INSERT INTO concept_states
     (user_id, concept, level, first_seen_at, first_demonstrated, recall_30d, late_checks, late_passed, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT (user_id, concept) DO UPDATE SET level = excluded.level,
       first_seen_at = excluded.first_seen_at, first_demonstrated = excluded.first_demonstrated,
       recall_30d = excluded.recall_30d, late_checks = excluded.late_checks,
       late_passed = excluded.late_passed, updated_at = excluded.updated_at";

/// Recomputes the user's state for `concepts` from their deltas (inside
/// the push's transaction).
///
/// # Errors
/// SQLite errors.
pub fn refresh_states(
    conn: &Connection,
    user_id: &str,
    concepts: &BTreeSet<&str>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let mut facts_stmt = conn.prepare_cached(FACTS)?;
    let mut upsert = conn.prepare_cached(UPSERT)?;
    for concept in concepts {
        let facts: Vec<Fact> = facts_stmt
            .query_map(params![user_id, concept], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })?
            .filter_map(|row| {
                let (id, tr, at, grade) = row.ok()?;
                Some(Fact {
                    id,
                    transition: Transition::parse(&tr)?,
                    at: from_millis(at),
                    grade: grade.and_then(|g| u8::try_from(g).ok()),
                })
            })
            .collect();
        let s = state::fold(&facts);
        let level = match s.level {
            Level::Unseen => continue,
            Level::Seen => 1,
            Level::Explained => 2,
            Level::Demonstrated => 3,
            Level::Retained => 4,
        };
        upsert.execute(params![
            user_id,
            concept,
            level,
            s.first_seen.map(to_millis),
            s.first_demonstrated.map(to_millis),
            s.card.as_ref().map(|c| fsrs::recall_at(c, 30.0)),
            s.late_checks,
            s.late_passed,
            to_millis(now),
        ])?;
    }
    Ok(())
}

/// One concept's aggregate in a cohort. Suppressed rows carry no numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConceptAggregate {
    pub concept: String,
    pub title: String,
    pub domain: String,
    /// An org concept that no longer takes new facts (its data still counts).
    pub retired: bool,
    pub suppressed: bool,
    pub n_seen: Option<i64>,
    pub n_demonstrated: Option<i64>,
    /// Pass rate of checks taken 30 days or more after first demonstration.
    pub retention_30d_observed: Option<f64>,
    /// Mean predicted recall 30 days after the last check (FSRS).
    pub retention_30d_predicted: Option<f64>,
    /// The last weeks, oldest first (see `trend`).
    pub trend: Vec<WeekCount>,
}

/// Engineers counted: active, not opted out, not awaiting deletion, and (for
/// a team) members of it.
const COUNTED: &str = counted_engineers!();

const AGGREGATE: &str = concat!(
    "WITH counted AS (",
    counted_engineers!(),
    ") SELECT s.concept, count(*), sum(s.level >= 3),
            sum(s.late_checks), sum(s.late_passed), sum(s.late_checks > 0),
            avg(s.recall_30d), count(s.recall_30d)
     FROM concept_states s JOIN counted c ON c.id = s.user_id
     GROUP BY s.concept ORDER BY s.concept"
);

/// Why an aggregate cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("no team named `{0}` in this org")]
    UnknownTeam(String),
    #[error("the team has fewer than {0} counted engineers, so its figures are suppressed")]
    TeamTooSmall(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AggregateError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// What to aggregate: the whole org or one team, and how many weeks of
/// trend up to the week holding `now`.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub team: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub weeks: u32,
    pub min_cohort: usize,
}

/// Aggregates for the whole org, or for the team (group) named in `scope`.
///
/// # Errors
/// [`AggregateError`].
pub fn org_aggregates(
    org: &OrgDb,
    catalogue: &Catalogue,
    scope: Scope<'_>,
) -> Result<Vec<ConceptAggregate>, AggregateError> {
    let Scope {
        team,
        now,
        weeks,
        min_cohort,
    } = scope;
    let concepts = OrgConcepts::load(catalogue, org)?;
    org.db.read(|c| {
        let group_id: Option<String> = match team {
            None => None,
            Some(name) => Some(
                c.prepare_cached("SELECT id FROM groups WHERE display_name = ?1 COLLATE NOCASE")?
                    .query_row([name], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| AggregateError::UnknownTeam(name.chars().take(64).collect()))?,
            ),
        };
        if group_id.is_some() {
            let members = c
                .prepare_cached(COUNTED)?
                .query_map([&group_id], |_| Ok(()))?
                .count();
            if members < min_cohort {
                return Err(AggregateError::TeamTooSmall(min_cohort));
            }
        }
        let mut stmt = c.prepare_cached(AGGREGATE)?;
        let rows = stmt.query_map([&group_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<f64>>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })?;
        let mut trends = trend::weekly(c, group_id.as_deref(), now, weeks, min_cohort)?;
        let cohort = i64::try_from(min_cohort).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        for row in rows {
            let (concept, seen, demonstrated, late, late_passed, late_people, recall, with_card) =
                row?;
            let meta = concepts.get(&concept);
            let suppressed = seen < cohort;
            let series = trends
                .remove(&concept)
                .unwrap_or_else(|| trend::empty(now, weeks));
            out.push(ConceptAggregate {
                trend: series,
                title: meta.map(|m| m.title.clone()).unwrap_or_default(),
                domain: meta.map(|m| m.domain.clone()).unwrap_or_default(),
                retired: concepts.retired_at(&concept).is_some(),
                concept,
                suppressed,
                n_seen: (!suppressed).then_some(seen),
                n_demonstrated: (!suppressed).then_some(demonstrated),
                retention_30d_observed: (!suppressed && late_people >= cohort && late > 0)
                    .then(|| late_passed as f64 / late as f64),
                retention_30d_predicted: (!suppressed && with_card >= cohort)
                    .then_some(recall)
                    .flatten(),
            });
        }
        Ok(out)
    })
}
