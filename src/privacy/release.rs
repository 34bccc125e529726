//! Making and keeping releases (docs/privacy.md, "What is released"). A
//! release of a scope in a period is made at the first read of that scope
//! in the period, from the totals `graph::aggregates` keeps, and stored;
//! later reads in the period are served the stored figures. The org is
//! always released first in a period (and sights every team's membership);
//! a team is then checked against the scope rules before its release is
//! made. Closed weeks of a trend are released once per scope and kept for
//! good. Every read, refused or not, writes an audit row with its scope in
//! the same transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::noise::{self, Draw, NoiseKey};
use super::{Params, Protection};
use crate::audit::Context;
use crate::catalogue::OrgConcepts;
use crate::clock::to_millis;
use crate::graph::aggregates::{ConceptAggregate, TOTALS};
use crate::graph::trend::{self, WeekCount};
use crate::skill::Catalogue;
use crate::store::{OrgDb, StoreError};

/// The most late checks (checks 30 days or more after first
/// demonstration) one engineer is assumed to add to a concept's totals:
/// the sensitivity the noise of observed retention is calibrated to
/// (docs/privacy.md, "Limits").
pub const LATE_CAP: f64 = 8.0;

/// What to release: the org or one team (by name), as of `now`, with
/// `weeks` closed weeks of trend.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub team: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub weeks: u32,
}

/// Whether a read made the release or was served a kept one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Made by this read.
    Made,
    /// Made earlier in the period; the same figures again.
    Kept,
    /// The team's engineers are exactly those of a scope already released
    /// this period: that release is served.
    SameAs,
}

/// A release, as the API and page show it.
#[derive(Debug, Clone, Serialize)]
pub struct Release {
    /// The ISO week of the period, e.g. `2026-W03`.
    pub period: String,
    pub period_starts: NaiveDate,
    /// `org`, or the team's name.
    pub scope: String,
    pub outcome: Outcome,
    pub released_at: DateTime<Utc>,
    pub params: Params,
    pub protection: Protection,
    /// Engineers counted in the release, with noise; `None` below
    /// `min_cohort` (after noise).
    pub n_counted: Option<i64>,
    /// Of them, those with a device that synced in the 30 days before the
    /// release was made, with noise; `None` below `min_cohort` (after
    /// noise), for a team, and for a release made before it was kept.
    pub n_syncing: Option<i64>,
    pub concepts: Vec<ConceptAggregate>,
}

/// Why a release is refused. Each message says what the admin can do.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("no team named `{0}` in this org")]
    UnknownTeam(String),
    #[error("the team has fewer than {0} counted engineers, so its figures are suppressed")]
    TeamTooSmall(u32),
    #[error(
        "the team's membership changed this period, so its figures are not released yet; if it stays as it is, they are released from the week starting {0}"
    )]
    Unstable(NaiveDate),
    #[error(
        "the team differs from a scope already released this week (or from the rest of the org beside one) by fewer than {0} engineers, so releasing it would single people out; ask again next week, or choose a team that differs by more"
    )]
    TooClose(u32),
    #[error(
        "some of the team's engineers are already in {0} releases this week, the most one engineer may be in; ask again next week"
    )]
    BudgetSpent(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ReleaseError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// A kept release or week that does not parse (or serialise) is a column
/// that does not convert.
impl From<serde_json::Error> for ReleaseError {
    fn from(e: serde_json::Error) -> Self {
        Self::Store(
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
                .into(),
        )
    }
}

/// One concept's released figures, as kept. `None` is suppressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Figure {
    pub(super) concept: String,
    n_seen: Option<i64>,
    n_demonstrated: Option<i64>,
    /// Rates in millionths, so that a kept release reads back exactly
    /// what was made (a float through JSON may not).
    observed: Option<i64>,
    pub(super) predicted: Option<i64>,
}

/// A rate in [0, 1] as millionths.
fn micros(rate: f64) -> i64 {
    (rate.clamp(0.0, 1.0) * 1e6).round() as i64
}

const PERIOD_PARAMS: &str =
    "SELECT min_cohort, epsilon_milli, budget FROM privacy_periods WHERE period = ?1";
const LAST_PARAMS: &str = "SELECT min_cohort, epsilon_milli, budget FROM privacy_periods
     WHERE period < ?1 ORDER BY period DESC LIMIT 1";
const FIX_PARAMS: &str =
    "INSERT INTO privacy_periods (period, min_cohort, epsilon_milli, budget, fixed_at)
     VALUES (?1, ?2, ?3, ?4, ?5)";
const PRUNE_MEMBERS: &str = "DELETE FROM release_members WHERE period < ?1";
const GET_RELEASE: &str = "SELECT alias_of, figures, released_at, n_members, n_syncing
     FROM releases WHERE period = ?1 AND scope = ?2";
const PUT_RELEASE: &str =
    "INSERT INTO releases (period, scope, n_members, alias_of, figures, released_at, n_syncing)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
/// Counted engineers with a live device seen since ?1 (each once).
const SYNCING: &str = "SELECT count(DISTINCT d.user_id) FROM devices d
     JOIN counted_users c ON c.id = d.user_id
     WHERE d.revoked_at IS NULL AND d.last_seen_at >= ?1";
/// How long after its last sync a device still counts as active.
const SYNCING_DAYS: i64 = 30;
const PUT_MEMBER: &str = "INSERT INTO release_members (period, scope, user_id) VALUES (?1, ?2, ?3)";
const PERIOD_MEMBERS: &str = "SELECT scope, user_id FROM release_members WHERE period = ?1";
const RELEASES_OF: &str = "SELECT count(*) FROM release_members WHERE period = ?1 AND user_id = ?2";
const COUNTED: &str = "SELECT id FROM counted_users ORDER BY id";
const TEAM_ID: &str = "SELECT id FROM groups WHERE display_name = ?1 COLLATE NOCASE";
const TEAM_MEMBERS: &str = "SELECT m.user_id FROM group_members m
     JOIN counted_users c ON c.id = m.user_id WHERE m.group_id = ?1 ORDER BY m.user_id";
const ALL_TEAM_MEMBERS: &str = "SELECT m.group_id, m.user_id FROM group_members m
     JOIN counted_users c ON c.id = m.user_id ORDER BY m.group_id, m.user_id";
const SIGHTING: &str = "SELECT members_hash, since_period FROM scope_sightings WHERE scope = ?1";
const SIGHT: &str =
    "INSERT INTO scope_sightings (scope, members_hash, since_period) VALUES (?1, ?2, ?3)
     ON CONFLICT (scope) DO UPDATE SET members_hash = excluded.members_hash,
         since_period = excluded.since_period
     WHERE members_hash <> excluded.members_hash";
const GET_WEEK: &str = "SELECT cells FROM release_weeks WHERE scope = ?1 AND week = ?2";
const PUT_WEEK: &str =
    "INSERT INTO release_weeks (scope, week, cells, released_at) VALUES (?1, ?2, ?3, ?4)";
const WEEK_TOTALS: &str =
    "SELECT concept, n_seen, n_demonstrated FROM week_totals WHERE scope = ?1 AND week = ?2";

/// The release of the org or of one team for the period holding
/// `req.now`, made now if this is the first read of it in the period.
///
/// # Errors
/// [`ReleaseError`]: the refusals say why and what to do.
pub fn release(
    org: &OrgDb,
    catalogue: &Catalogue,
    req: &Request<'_>,
    configured: Params,
    audit: &Context,
) -> Result<Release, ReleaseError> {
    let concepts = OrgConcepts::load(catalogue, org)?;
    let mut slugs: Vec<String> = catalogue
        .concepts()
        .map(|c| c.slug.clone())
        .chain(concepts.custom.keys().cloned())
        .collect();
    slugs.sort();
    slugs.dedup();
    let made = org
        .db
        .write(|tx| release_in(tx, org.noise_key.bytes(), &slugs, req, configured, audit))?;
    let Made {
        found,
        mut trends,
        params,
        headline: (n_counted, n_syncing),
    } = made?;
    let period = trend::week_of(req.now);
    let rows = found
        .figures
        .into_iter()
        .map(|f| {
            let meta = concepts.get(&f.concept);
            let suppressed = f.n_seen.is_none();
            ConceptAggregate {
                trend: trends.remove(&f.concept).unwrap_or_default(),
                title: meta.map(|m| m.title.clone()).unwrap_or_default(),
                domain: meta.map(|m| m.domain.clone()).unwrap_or_default(),
                retired: concepts.retired_at(&f.concept).is_some(),
                suppressed,
                n_seen: f.n_seen,
                n_demonstrated: f.n_demonstrated,
                retention_30d_observed: f.observed.map(|m| m as f64 / 1e6),
                retention_30d_predicted: f.predicted.map(|m| m as f64 / 1e6),
                concept: f.concept,
            }
        })
        .collect();
    Ok(Release {
        period: trend::label(period),
        period_starts: trend::monday(period),
        scope: req.team.unwrap_or("org").to_string(),
        outcome: found.outcome,
        released_at: crate::clock::from_millis(found.released_at),
        params,
        protection: params.protection(),
        n_counted,
        n_syncing,
        concepts: rows,
    })
}

/// A release found or made, with its trend and the period's parameters.
pub(crate) struct Made {
    found: Found,
    trends: HashMap<String, Vec<WeekCount>>,
    params: Params,
    /// Engineers counted and engineers syncing, with noise (see
    /// [`headline`]).
    headline: (Option<i64>, Option<i64>),
}

impl Made {
    /// The parameters of the period.
    #[cfg(test)]
    pub(crate) fn params(&self) -> Params {
        self.params
    }

    /// Engineers counted and engineers syncing, as shown.
    #[cfg(test)]
    pub(crate) fn headline(&self) -> (Option<i64>, Option<i64>) {
        self.headline
    }

    /// The figures, as kept: (concept, n_seen, n_demonstrated) per concept.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> Vec<(String, Option<i64>, Option<i64>)> {
        self.found
            .figures
            .iter()
            .map(|f| (f.concept.clone(), f.n_seen, f.n_demonstrated))
            .collect()
    }
}

/// The release of `req` on `conn` (the write transaction), over the
/// concepts `slugs`, with noise under `key`. The outer error is a store
/// failure; the inner one a refusal (audited like any read).
///
/// # Errors
/// Store errors.
pub(crate) fn release_in(
    conn: &Connection,
    key: &[u8; 32],
    slugs: &[String],
    req: &Request<'_>,
    configured: Params,
    audit: &Context,
) -> Result<Result<Made, ReleaseError>, ReleaseError> {
    let period = trend::week_of(req.now);
    let params = fix_period(conn, period, configured, audit, req.now)?;
    let ctx = Ctx {
        conn,
        key: NoiseKey::new(key),
        period,
        params,
        slugs,
        now: req.now,
    };
    let org_release = ensure_org(&ctx)?;
    let found = match req.team {
        None => Ok(org_release),
        Some(name) => team_release(&ctx, name)?,
    };
    let scope = req
        .team
        .map_or_else(|| "org".to_string(), |t| format!("team:{t}"));
    let details = match &found {
        Ok(r) => json!({ "period": trend::label(period), "outcome": r.outcome }),
        Err(e) => json!({ "period": trend::label(period), "refused": e.to_string() }),
    };
    audit.record(conn, "aggregates.read", Some(&scope), &details, req.now)?;
    Ok(match found {
        Ok(found) => {
            let trends = weeks(&ctx, &found.key, req.weeks)?;
            let headline = headline(&ctx, &found);
            Ok(Made {
                found,
                trends,
                params,
                headline,
            })
        }
        Err(e) => Err(e),
    })
}

/// What one transaction works with.
struct Ctx<'a> {
    conn: &'a Connection,
    key: NoiseKey,
    period: i64,
    params: Params,
    slugs: &'a [String],
    now: DateTime<Utc>,
}

/// A release found or made: the scope whose figures and weeks it serves.
struct Found {
    key: String,
    figures: Vec<Figure>,
    outcome: Outcome,
    released_at: i64,
    /// Engineers counted when it was made (never shown without noise).
    n_members: i64,
    /// Engineers syncing when it was made (the org's release only).
    n_syncing: Option<i64>,
}

/// The release's engineers counted and engineers syncing, each with its
/// own noise (one engineer moves each by at most 1), drawn for the scope
/// whose release this is (so a copy of a team gets the same draw) and
/// suppressed below `min_cohort` after the noise. Both rest on counts
/// kept with the release, so every read of the period gives the same.
fn headline(c: &Ctx<'_>, found: &Found) -> (Option<i64>, Option<i64>) {
    let min = i64::from(c.params.min_cohort);
    let shown = |figure: &str, v: i64| {
        let n = v + noisy(c, &found.key, c.period, "*", figure, 1.0);
        (n >= min).then_some(n)
    };
    (
        shown("n_counted", found.n_members),
        found.n_syncing.and_then(|v| shown("n_syncing", v)),
    )
}

/// The parameters of `period`: those fixed by its first release, else the
/// configured ones (clamped to the floor), fixed now. A change from the
/// previous period's is audited.
fn fix_period(
    conn: &Connection,
    period: i64,
    configured: Params,
    audit: &Context,
    now: DateTime<Utc>,
) -> Result<Params, ReleaseError> {
    let read = |r: &rusqlite::Row<'_>| {
        Ok(Params {
            min_cohort: r.get(0)?,
            epsilon_milli: r.get(1)?,
            budget: r.get(2)?,
        })
    };
    if let Some(p) = conn
        .prepare_cached(PERIOD_PARAMS)?
        .query_row([period], read)
        .optional()?
    {
        // Clamped again: a row is never trusted below the floor.
        return Ok(Params::new(p.min_cohort, p.epsilon(), p.budget));
    }
    let p = Params::new(
        configured.min_cohort,
        configured.epsilon(),
        configured.budget,
    );
    let before = conn
        .prepare_cached(LAST_PARAMS)?
        .query_row([period], read)
        .optional()?;
    conn.prepare_cached(FIX_PARAMS)?.execute(params![
        period,
        p.min_cohort,
        p.epsilon_milli,
        p.budget,
        to_millis(now)
    ])?;
    if let Some(b) = before.filter(|b| *b != p) {
        audit.record(
            conn,
            "privacy.settings_changed",
            Some("aggregates"),
            &json!({ "from": b, "to": p, "from_period": trend::label(period) }),
            now,
        )?;
    }
    // Members are needed for this period's rules only; the last period's
    // are kept for the operator's inspection.
    conn.prepare_cached(PRUNE_MEMBERS)?.execute([period - 7])?;
    Ok(p)
}

fn get_release(c: &Ctx<'_>, scope: &str) -> Result<Option<Found>, ReleaseError> {
    type Kept = (Option<String>, String, i64, i64, Option<i64>);
    let row: Option<Kept> = c
        .conn
        .prepare_cached(GET_RELEASE)?
        .query_row(params![c.period, scope], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    row.map(|(alias, figures, at, n_members, n_syncing)| {
        Ok(Found {
            key: alias.unwrap_or_else(|| scope.to_string()),
            figures: serde_json::from_str(&figures)?,
            outcome: Outcome::Kept,
            released_at: at,
            n_members,
            n_syncing,
        })
    })
    .transpose()
}

fn ids(
    conn: &Connection,
    sql: &str,
    arg: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(sql)?
        .query_map(arg, |r| r.get(0))?
        .collect()
}

/// Stores a release that is not an alias, with who was counted in it.
fn put_release(
    c: &Ctx<'_>,
    scope: &str,
    members: &[String],
    figures: &[Figure],
    n_syncing: Option<i64>,
) -> Result<(), ReleaseError> {
    c.conn.prepare_cached(PUT_RELEASE)?.execute(params![
        c.period,
        scope,
        count_of(members),
        None::<String>,
        serde_json::to_string(figures)?,
        to_millis(c.now),
        n_syncing
    ])?;
    let mut put = c.conn.prepare_cached(PUT_MEMBER)?;
    for m in members {
        put.execute(params![c.period, scope, m])?;
    }
    Ok(())
}

/// The org's release of the period, made (with a sighting of every team)
/// when it is the first read of the period.
fn ensure_org(c: &Ctx<'_>) -> Result<Found, ReleaseError> {
    if let Some(found) = get_release(c, "")? {
        return Ok(found);
    }
    let members = ids(c.conn, COUNTED, &[])?;
    let figures = figures(c, "")?;
    let since = to_millis(c.now - chrono::Duration::days(SYNCING_DAYS));
    let n_syncing: i64 = c
        .conn
        .prepare_cached(SYNCING)?
        .query_row([since], |r| r.get(0))?;
    put_release(c, "", &members, &figures, Some(n_syncing))?;
    sight_all_teams(c.conn, c.period)?;
    Ok(Found {
        key: String::new(),
        figures,
        outcome: Outcome::Made,
        released_at: to_millis(c.now),
        n_members: count_of(&members),
        n_syncing: Some(n_syncing),
    })
}

fn count_of(members: &[String]) -> i64 {
    i64::try_from(members.len()).unwrap_or(i64::MAX)
}

fn members_hash(members: &[String]) -> Vec<u8> {
    let mut h = Sha256::new();
    for m in members {
        h.update((m.len() as u64).to_be_bytes());
        h.update(m.as_bytes());
    }
    h.finalize().to_vec()
}

/// Notes every team's counted membership in every org, as the org's first
/// release of a period does (the daily sweeper calls this): a team is
/// released once its membership has been the same since an earlier period.
///
/// # Errors
/// The first store error; orgs before it are done.
pub fn sight_teams(store: &crate::store::Store, now: DateTime<Utc>) -> Result<(), StoreError> {
    let period = trend::week_of(now);
    for org in store.orgs() {
        org.db
            .write(|tx| sight_all_teams(tx, period).map_err(StoreError::from))?;
    }
    Ok(())
}

/// Records each team's counted membership, and since when it has been so.
fn sight_all_teams(conn: &Connection, period: i64) -> rusqlite::Result<()> {
    let mut by_team: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(ALL_TEAM_MEMBERS)?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (g, u) = row?;
        by_team.entry(g).or_default().push(u);
    }
    let mut sight = conn.prepare_cached(SIGHT)?;
    for (g, members) in by_team {
        sight.execute(params![g, members_hash(&members), period])?;
    }
    Ok(())
}

/// The release of the team `name`, or why there is none. The outer error
/// is a store failure; the inner one a refusal, which is audited.
fn team_release(c: &Ctx<'_>, name: &str) -> Result<Result<Found, ReleaseError>, ReleaseError> {
    let Some(group): Option<String> = c
        .conn
        .prepare_cached(TEAM_ID)?
        .query_row([name], |r| r.get(0))
        .optional()?
    else {
        return Ok(Err(ReleaseError::UnknownTeam(
            name.chars().take(64).collect(),
        )));
    };
    if let Some(found) = get_release(c, &group)? {
        return Ok(Ok(found));
    }
    let min = c.params.min_cohort;
    let members = ids(c.conn, TEAM_MEMBERS, &[&group as &dyn rusqlite::ToSql])?;
    if members.len() < min as usize {
        return Ok(Err(ReleaseError::TeamTooSmall(min)));
    }
    // Stable since an earlier period, or not released yet.
    let hash = members_hash(&members);
    let seen: Option<(Vec<u8>, i64)> = c
        .conn
        .prepare_cached(SIGHTING)?
        .query_row([&group], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let stable = matches!(&seen, Some((h, since)) if *h == hash && *since < c.period);
    if !stable {
        c.conn
            .prepare_cached(SIGHT)?
            .execute(params![group, hash, c.period])?;
        let next = trend::monday(c.period + 7);
        return Ok(Err(ReleaseError::Unstable(next)));
    }
    let released = period_members(c)?;
    let team: HashSet<&str> = members.iter().map(String::as_str).collect();
    match check_scope(&team, &released, c.params) {
        Check::Same(scope) => {
            let Some(same) = get_release(c, scope)? else {
                return Err(rusqlite::Error::QueryReturnedNoRows.into());
            };
            c.conn.prepare_cached(PUT_RELEASE)?.execute(params![
                c.period,
                group,
                count_of(&members),
                scope,
                serde_json::to_string(&same.figures)?,
                to_millis(c.now),
                same.n_syncing
            ])?;
            return Ok(Ok(Found {
                outcome: Outcome::SameAs,
                released_at: to_millis(c.now),
                ..same
            }));
        }
        Check::TooClose => return Ok(Err(ReleaseError::TooClose(min))),
        Check::Fresh => {}
    }
    let mut releases_of = c.conn.prepare_cached(RELEASES_OF)?;
    for m in &members {
        let n: u32 = releases_of.query_row(params![c.period, m], |r| r.get(0))?;
        if n >= c.params.budget {
            return Ok(Err(ReleaseError::BudgetSpent(c.params.budget)));
        }
    }
    let figures = figures(c, &group)?;
    put_release(c, &group, &members, &figures, None)?;
    Ok(Ok(Found {
        key: group,
        figures,
        outcome: Outcome::Made,
        released_at: to_millis(c.now),
        n_members: count_of(&members),
        n_syncing: None,
    }))
}

/// Who was counted in each release of the period that is not an alias.
fn period_members(c: &Ctx<'_>) -> Result<HashMap<String, HashSet<String>>, ReleaseError> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    let mut stmt = c.conn.prepare_cached(PERIOD_MEMBERS)?;
    for row in stmt.query_map([c.period], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })? {
        let (scope, user) = row?;
        out.entry(scope).or_default().insert(user);
    }
    Ok(out)
}

/// What the scope rule says of a new team.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check<'a> {
    /// Exactly the engineers of this released scope.
    Same(&'a str),
    /// Within `min_cohort` engineers of a released scope or of the rest of
    /// the org beside one.
    TooClose,
    Fresh,
}

/// The scope rule (docs/privacy.md, guarantee G2): a new scope's counted
/// engineers must equal those of a released scope, or differ by at least
/// `min_cohort` from every released scope `R` and from the org release
/// minus `R`.
pub(crate) fn check_scope<'a>(
    team: &HashSet<&str>,
    released: &'a HashMap<String, HashSet<String>>,
    params: Params,
) -> Check<'a> {
    // Every count below walks the new team or one released scope, never
    // the whole org per scope: a team's first release of a period costs
    // the members of the period's releases once, not once per scope.
    let min = params.min_cohort as usize;
    // |A Δ B| from |A|, |B| and |A ∩ B|.
    let sym = |a: usize, b: usize, both: usize| a + b - 2 * both;
    let mut scopes: Vec<&String> = released.keys().collect();
    scopes.sort();
    let in_team_and = |set: &HashSet<String>| team.iter().filter(|m| set.contains(**m)).count();
    for scope in &scopes {
        let set = &released[*scope];
        if sym(team.len(), set.len(), in_team_and(set)) == 0 {
            return Check::Same(scope.as_str());
        }
    }
    let empty = HashSet::new();
    let org = released.get("").unwrap_or(&empty);
    // The org beside the new team: |org \ team|.
    let org_beside_team = org.len() - in_team_and(org);
    for scope in &scopes {
        let set = &released[*scope];
        if sym(team.len(), set.len(), in_team_and(set)) < min {
            return Check::TooClose;
        }
        if scope.is_empty() {
            continue;
        }
        // The new team against the org beside `set` (d), and `set` against
        // the org beside the new team (d2); the two differ when someone was
        // counted in one release and not in the org's.
        let set_in_org = set.iter().filter(|m| org.contains(*m)).count();
        let rest_len = org.len() - set_in_org;
        let team_in_rest = team
            .iter()
            .filter(|m| org.contains(**m) && !set.contains(**m))
            .count();
        let d = sym(team.len(), rest_len, team_in_rest);
        let set_in_org_beside_team = set
            .iter()
            .filter(|m| org.contains(*m) && !team.contains(m.as_str()))
            .count();
        let d2 = sym(set.len(), org_beside_team, set_in_org_beside_team);
        if (d > 0 && d < min) || (d2 > 0 && d2 < min) {
            return Check::TooClose;
        }
    }
    Check::Fresh
}

/// The noise of one figure.
fn noisy(
    c: &Ctx<'_>,
    scope: &str,
    period: i64,
    concept: &str,
    figure: &str,
    sensitivity: f64,
) -> i64 {
    let scope = if scope.is_empty() { "org" } else { scope };
    noise::two_sided(
        &c.key,
        &Draw {
            scope,
            period,
            concept,
            figure,
        },
        c.params.epsilon(),
        sensitivity,
    )
}

type Totals = (i64, i64, i64, i64, i64, i64, i64);

/// The released figures of `scope` ('' or a group id): every concept of the
/// org, each count with its own noise, suppressed below `min_cohort`
/// after the noise.
fn figures(c: &Ctx<'_>, scope: &str) -> Result<Vec<Figure>, ReleaseError> {
    let mut totals: HashMap<String, Totals> = HashMap::new();
    let mut stmt = c.conn.prepare_cached(TOTALS)?;
    for row in stmt.query_map([scope], |r| {
        Ok((
            r.get::<_, String>(0)?,
            (
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ),
        ))
    })? {
        let (concept, t) = row?;
        totals.insert(concept, t);
    }
    let min = i64::from(c.params.min_cohort);
    Ok(c.slugs
        .iter()
        .map(|concept| {
            let (seen, shown, late, passed, late_people, recall, with_recall) =
                totals.get(concept).copied().unwrap_or_default();
            let n =
                |figure: &str, v: i64, s: f64| v + noisy(c, scope, c.period, concept, figure, s);
            let seen = n("n_seen", seen, 1.0);
            if seen < min {
                return Figure {
                    concept: concept.clone(),
                    n_seen: None,
                    n_demonstrated: None,
                    observed: None,
                    predicted: None,
                };
            }
            let shown = n("n_demonstrated", shown, 1.0).clamp(0, seen);
            let with_recall = n("n_recall", with_recall, 1.0);
            let recall = n("recall_micros", recall, 1e6);
            let predicted =
                (with_recall >= min).then(|| micros(recall as f64 / 1e6 / with_recall as f64));
            let late_people = n("n_late", late_people, 1.0);
            let late = n("late_checks", late, LATE_CAP);
            let passed = n("late_passed", passed, LATE_CAP);
            let observed =
                (late_people >= min && late > 0).then(|| micros(passed as f64 / late as f64));
            Figure {
                concept: concept.clone(),
                n_seen: Some(seen),
                n_demonstrated: Some(shown),
                observed,
                predicted,
            }
        })
        .collect())
}

/// The closed weeks of the trend of `scope`: `weeks` of them, the last the
/// week before the period. Each week's cells are released once and kept.
fn weeks(
    c: &Ctx<'_>,
    scope: &str,
    weeks: u32,
) -> Result<HashMap<String, Vec<WeekCount>>, ReleaseError> {
    let last = c.period - 7;
    let first = last - 7 * (i64::from(weeks.clamp(1, trend::MAX_WEEKS)) - 1);
    let mut out: HashMap<String, Vec<WeekCount>> = HashMap::new();
    for week in (first..=last).step_by(7) {
        let cells = week_cells(c, scope, week)?;
        for concept in c.slugs {
            let cell = cells.get(concept).copied().flatten();
            out.entry(concept.clone()).or_default().push(WeekCount {
                week: trend::label(week),
                starts: trend::monday(week),
                suppressed: cell.is_none(),
                n_seen: cell.map(|(s, _)| s),
                n_demonstrated: cell.map(|(_, d)| d),
            });
        }
    }
    Ok(out)
}

type Cells = BTreeMap<String, Option<(i64, i64)>>;

fn week_cells(c: &Ctx<'_>, scope: &str, week: i64) -> Result<Cells, ReleaseError> {
    let kept: Option<String> = c
        .conn
        .prepare_cached(GET_WEEK)?
        .query_row(params![scope, week], |r| r.get(0))
        .optional()?;
    if let Some(cells) = kept {
        return Ok(serde_json::from_str(&cells)?);
    }
    let mut totals: HashMap<String, (i64, i64)> = HashMap::new();
    let mut stmt = c.conn.prepare_cached(WEEK_TOTALS)?;
    for row in stmt.query_map(params![scope, week], |r| {
        Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?)))
    })? {
        let (concept, t) = row?;
        totals.insert(concept, t);
    }
    let min = i64::from(c.params.min_cohort);
    let cells: Cells = c
        .slugs
        .iter()
        .map(|concept| {
            let (seen, shown) = totals.get(concept).copied().unwrap_or_default();
            let seen = seen + noisy(c, scope, week, concept, "week_seen", 1.0);
            let cell = (seen >= min).then(|| {
                let shown = shown + noisy(c, scope, week, concept, "week_demonstrated", 1.0);
                (seen, shown.clamp(0, seen))
            });
            (concept.clone(), cell)
        })
        .collect();
    c.conn.prepare_cached(PUT_WEEK)?.execute(params![
        scope,
        week,
        serde_json::to_string(&cells)?,
        to_millis(c.now)
    ])?;
    Ok(cells)
}
