//! The org overview (`/o/<org>/dashboard`) for viewers and admins:
//! headline figures, the weekly trend, coverage by domain and team, the
//! concepts whose predicted retention is rising or fading, and the most
//! demonstrated ones. Every number on it is a figure of a privacy release
//! (`crate::privacy`: noisy, fixed for the week, suppressed below
//! `min_cohort`, refused when it would single people out) or arithmetic on
//! such figures; no query here reads one engineer's rows. Each chart is
//! SVG drawn from `charts`, with the same numbers in a table beside it.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::PageError;
use super::charts::{self, BarChart, Coverage, HeatMap, LineChart};
use super::extract::DashboardViewer;
use super::pages::render;
use crate::audit::Context;
use crate::graph::aggregates::ConceptAggregate;
use crate::graph::trend;
use crate::http::AppState;
use crate::privacy::{self, EarlierRelease, Release, ReleaseError};
use crate::skill::Catalogue;
use crate::store::OrgDb;
use crate::users::{self, Role};

/// Teams drawn in the coverage heat map (in name order); the page says
/// how many more there are.
pub const MAX_TEAMS: usize = 12;
/// Closed weeks that stand for "the last 30 days" (the week in progress is
/// never released).
const RECENT_WEEKS: usize = 4;
/// Concepts in each of the rising, fading and most-demonstrated charts.
const TOP: usize = 8;

/// One headline figure.
pub struct Headline {
    pub id: &'static str,
    pub label: &'static str,
    pub value: String,
    pub note: String,
}

/// One line of a chart's table: (column, value) per cell, the first the
/// row's header.
pub struct Line {
    pub cells: Vec<(String, String)>,
    /// Where the row's header links to (a concept's or team's page).
    pub href: Option<String>,
}

/// A chart's numbers as a table.
pub struct Table {
    pub caption: String,
    pub head: Vec<String>,
    pub rows: Vec<Line>,
}

impl Table {
    pub(super) fn new(caption: &str, head: &[&str], rows: Vec<Vec<String>>) -> Self {
        let head: Vec<String> = head.iter().map(|h| (*h).to_string()).collect();
        Self::with_head(caption, head, rows)
    }

    /// A table whose rows' headers link to `href`.
    pub(super) fn linked(
        caption: &str,
        head: &[&str],
        rows: Vec<(Option<String>, Vec<String>)>,
    ) -> Self {
        let head: Vec<String> = head.iter().map(|h| (*h).to_string()).collect();
        let rows = rows
            .into_iter()
            .map(|(href, r)| Line {
                cells: head.iter().cloned().zip(r).collect(),
                href,
            })
            .collect();
        Self {
            caption: caption.to_string(),
            head,
            rows,
        }
    }

    pub(super) fn with_head(caption: &str, head: Vec<String>, rows: Vec<Vec<String>>) -> Self {
        let rows = rows
            .into_iter()
            .map(|r| Line {
                cells: head.iter().cloned().zip(r).collect(),
                href: None,
            })
            .collect();
        Self {
            caption: caption.to_string(),
            head,
            rows,
        }
    }
}

/// A team the privacy rules did not release this week, and why.
pub struct Refused {
    pub team: String,
    pub why: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub org_slug: String,
    pub org_name: String,
    pub csrf: String,
    pub is_admin: bool,
    pub period: String,
    pub min_cohort: u32,
    pub protection: privacy::Protection,
    pub headlines: Vec<Headline>,
    pub trend: LineChart,
    pub trend_summary: String,
    pub trend_table: Table,
    pub heat: HeatMap,
    pub heat_summary: String,
    pub heat_table: Table,
    pub refused: Vec<Refused>,
    pub more_teams: usize,
    /// Each drawn team's page: (name, link).
    pub team_links: Vec<(String, String)>,
    /// The earlier release the movers are measured against.
    pub since: Option<String>,
    pub rising: Option<BarChart>,
    pub rising_table: Table,
    pub fading: Option<BarChart>,
    pub fading_table: Table,
    pub top: Option<BarChart>,
    pub top_table: Table,
}

/// The org's release and the drawn teams' releases (or refusals) of this
/// week: what the dashboard, the concept pages and the teams page are
/// drawn from.
pub(super) struct Scopes {
    pub org: Release,
    pub teams: Vec<(String, Result<Release, ReleaseError>)>,
    pub all_teams: usize,
    /// Every team's name, in order.
    pub names: Vec<String>,
}

/// Reads the org's release (with `weeks` closed weeks of trend) and the
/// releases of the teams `chosen` (at most [`MAX_TEAMS`], each an existing
/// team, as named), or of the first [`MAX_TEAMS`] by name when none is
/// chosen; one week of trend for the teams: only their figures are drawn.
/// Every read is audited and counts as the privacy rules say; a second
/// read in the week is served the kept release.
///
/// # Errors
/// [`PageError::BadRequest`] naming a chosen team that does not exist or
/// too many chosen; the release's errors.
pub(super) fn org_and_teams(
    org: &OrgDb,
    catalogue: &Catalogue,
    params: privacy::Params,
    audit: &Context,
    now: DateTime<Utc>,
    weeks: u32,
    chosen: &[String],
) -> Result<Scopes, PageError> {
    let ask = |team: Option<&str>, weeks| {
        let req = privacy::Request { team, now, weeks };
        privacy::release(org, catalogue, &req, params, audit)
    };
    let names = users::teams(org)?;
    let drawn = drawn_teams(&names, chosen)?;
    let released = ask(None, weeks).map_err(release_error)?;
    let all_teams = names.len();
    let mut teams = Vec::new();
    for name in drawn {
        let r = ask(Some(&name), 1);
        if let Err(ReleaseError::Store(e)) = r {
            return Err(e.into());
        }
        teams.push((name, r));
    }
    Ok(Scopes {
        org: released,
        teams,
        all_teams,
        names,
    })
}

/// The teams to draw: those `chosen` (in their order, each once), or the
/// first [`MAX_TEAMS`] of `names` when none is.
fn drawn_teams(names: &[String], chosen: &[String]) -> Result<Vec<String>, PageError> {
    if chosen.is_empty() {
        return Ok(names.iter().take(MAX_TEAMS).cloned().collect());
    }
    let mut drawn: Vec<String> = Vec::new();
    for c in chosen {
        let Some(name) = names.iter().find(|n| n.to_lowercase() == c.to_lowercase()) else {
            let shown: String = c.chars().filter(|ch| !ch.is_control()).take(64).collect();
            return Err(PageError::BadRequest(format!(
                "there is no team `{shown}` to compare; choose among the teams listed on the page"
            )));
        };
        if !drawn.contains(name) {
            drawn.push(name.clone());
        }
    }
    if drawn.len() > MAX_TEAMS {
        return Err(PageError::BadRequest(format!(
            "{} teams were chosen; compare at most {MAX_TEAMS} at a time",
            drawn.len()
        )));
    }
    Ok(drawn)
}

/// A path segment with everything but unreserved characters
/// percent-encoded (team names may hold spaces, slashes, anything).
pub(super) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The page of a concept.
pub(super) fn concept_href(org: &str, slug: &str) -> String {
    format!("/o/{}/concepts/{}", segment(org), segment(slug))
}

/// The page of a team.
pub(super) fn team_href(org: &str, team: &str) -> String {
    format!("/o/{}/teams/{}", segment(org), segment(team))
}

/// What the page is made from: the org's release, each shown team's
/// release or refusal, the org's previous release.
struct Found {
    scopes: Scopes,
    earlier: Option<EarlierRelease>,
}

pub async fn get_dashboard(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    me: DashboardViewer,
) -> Result<Response, PageError> {
    let who = me.who;
    let (st, slug, audit) = (state.clone(), who.org.slug.to_string(), me.audit);
    let now = state.clock.now();
    let found = tokio::task::spawn_blocking(move || {
        let org = st.store.org(&slug)?;
        let scopes = org_and_teams(
            org,
            &st.catalogue,
            st.settings.privacy,
            &audit,
            now,
            trend::DEFAULT_WEEKS,
            &[],
        )?;
        let earlier = privacy::earlier_org_release(org, now)?;
        Ok::<_, PageError>(Found { scopes, earlier })
    })
    .await
    .map_err(PageError::internal)??;
    Ok(render(&page(
        found,
        &state.catalogue,
        who.org.slug.as_str(),
        &who.org.name,
        &who.session.csrf,
        who.role() == Role::Admin,
    )))
}

/// The org's own release is never refused; anything but a store failure
/// would be a bug.
pub(super) fn release_error(e: ReleaseError) -> PageError {
    match e {
        ReleaseError::Store(s) => s.into(),
        other => PageError::internal(other),
    }
}

fn page(
    f: Found,
    catalogue: &Catalogue,
    slug: &str,
    name: &str,
    csrf: &str,
    is_admin: bool,
) -> DashboardPage {
    let Found { scopes: f, earlier } = f;
    let min = f.org.params.min_cohort;
    let weeks = weekly_totals(&f.org);
    let (heat, heat_table, refused) = coverage(&f, catalogue, min);
    let (since, rising, fading) = movers(&f.org, earlier.as_ref());
    let top = most_demonstrated(&f.org);
    let link = |c: &str| Some(concept_href(slug, c));
    DashboardPage {
        org_slug: slug.to_string(),
        org_name: name.to_string(),
        csrf: csrf.to_string(),
        is_admin,
        period: f.org.period.clone(),
        min_cohort: min,
        protection: f.org.protection.clone(),
        headlines: headlines(&f.org, &weeks),
        trend: charts::line_chart(&weeks),
        trend_summary: trend_summary(&weeks),
        trend_table: trend_table(&weeks),
        heat_summary: format!(
            "Coverage by domain (rows) and team (columns): the share of each domain's concepts that at least {min} engineers of the team have demonstrated. Hatched cells are suppressed."
        ),
        heat,
        heat_table,
        refused,
        more_teams: f.all_teams.saturating_sub(MAX_TEAMS),
        since,
        team_links: f
            .teams
            .iter()
            .map(|(t, _)| (t.clone(), team_href(slug, t)))
            .collect(),
        rising_table: mover_table("Concepts whose predicted retention rose", &rising, slug),
        rising: chart_of(&rising),
        fading_table: mover_table("Concepts whose predicted retention fell", &fading, slug),
        fading: chart_of(&fading),
        top_table: Table::linked(
            "Concepts by engineers who demonstrated them",
            &["Concept", "Engineers"],
            top.iter()
                .map(|(t, v, c)| (link(c), vec![t.clone(), v.to_string()]))
                .collect(),
        ),
        top: (!top.is_empty()).then(|| {
            charts::bar_chart(
                &top.iter()
                    .map(|(t, v, _)| (t.clone(), *v as f64, v.to_string()))
                    .collect::<Vec<_>>(),
            )
        }),
    }
}

/// Per closed week, the engineer–concept pairs met and demonstrated: the
/// sum of the week's released cells of the concepts this release shows.
/// Suppressed cells add nothing, and neither do concepts the release
/// suppresses: a cell is released when its noisy count reaches
/// `min_cohort`, so among the hundreds of concepts nobody met a few
/// percent pass on noise alone, and summing them would inflate every week
/// (docs/dashboard.md). A concept released *and* with a released cell
/// passes two independent draws, which noise alone rarely does.
pub(super) fn weekly_totals(r: &Release) -> Vec<(String, i64, i64)> {
    let mut weeks: Vec<(String, i64, i64)> = Vec::new();
    for (i, w) in r
        .concepts
        .first()
        .map_or(&[][..], |c| &c.trend[..])
        .iter()
        .enumerate()
    {
        if weeks.len() <= i {
            weeks.push((w.week.clone(), 0, 0));
        }
    }
    for c in r.concepts.iter().filter(|c| !c.suppressed) {
        for (i, w) in c.trend.iter().enumerate() {
            if weeks.len() <= i {
                weeks.push((w.week.clone(), 0, 0));
            }
            weeks[i].1 += w.n_seen.unwrap_or(0);
            weeks[i].2 += w.n_demonstrated.unwrap_or(0);
        }
    }
    weeks
}

/// The numbers of the weekly trend chart: each closed week's met and
/// demonstrated pairs.
pub(super) fn trend_table(weeks: &[(String, i64, i64)]) -> Table {
    Table::new(
        "Engineer–concept pairs met and demonstrated per closed week",
        &["Week", "Met", "Demonstrated"],
        weeks
            .iter()
            .map(|(w, a, b)| vec![w.clone(), a.to_string(), b.to_string()])
            .collect(),
    )
}

pub(super) fn trend_summary(weeks: &[(String, i64, i64)]) -> String {
    match (weeks.first(), weeks.last()) {
        (Some(first), Some(last)) => format!(
            "Weekly trend from {} to {}: {} concept meetings and {} demonstrations in the last closed week, against {} and {} in the first.",
            first.0, last.0, last.1, last.2, first.1, first.2
        ),
        _ => "No closed week to show yet.".into(),
    }
}

pub(super) fn percent(r: f64) -> String {
    format!("{:.0} %", r * 100.0)
}

/// A retention rate for the whole org: the mean of the released
/// per-concept rates, each weighted by its released `n_seen`.
pub(super) fn weighted(
    r: &Release,
    rate: fn(&ConceptAggregate) -> Option<f64>,
) -> Option<(f64, usize)> {
    let (mut sum, mut weight, mut n) = (0.0, 0.0, 0);
    for c in r.concepts.iter().filter(|c| !c.suppressed) {
        if let (Some(v), Some(w)) = (rate(c), c.n_seen) {
            sum += v * w as f64;
            weight += w as f64;
            n += 1;
        }
    }
    (weight > 0.0).then(|| (sum / weight, n))
}

fn headlines(r: &Release, weeks: &[(String, i64, i64)]) -> Vec<Headline> {
    let min = r.params.min_cohort;
    let few = || format!("fewer than {min}");
    let recent = weeks.len().saturating_sub(RECENT_WEEKS);
    let recent_concepts = r
        .concepts
        .iter()
        .filter(|c| !c.suppressed)
        .filter(|c| {
            c.trend
                .iter()
                .skip(recent)
                .any(|w| w.n_demonstrated.unwrap_or(0) >= i64::from(min))
        })
        .count();
    let demonstrations: i64 = weeks.iter().skip(recent).map(|w| w.2).sum();
    let span = match (weeks.get(recent), weeks.last()) {
        (Some(a), Some(b)) => format!("{} to {}", a.0, b.0),
        _ => "the last closed weeks".into(),
    };
    let rate =
        |label: &'static str, id, f: fn(&ConceptAggregate) -> Option<f64>, what: &str| Headline {
            id,
            label,
            value: weighted(r, f).map_or_else(|| "too few".into(), |(v, _)| percent(v)),
            note: weighted(r, f).map_or_else(
                || format!("no concept has {what} from {min} engineers yet"),
                |(_, n)| format!("{what}, over {n} concepts, weighted by engineers"),
            ),
        };
    vec![
        Headline {
            id: "engineers",
            label: "Engineers counted",
            value: r.n_counted.map_or_else(few, |n| n.to_string()),
            note: "active, not opted out, ±noise".into(),
        },
        Headline {
            id: "recent-concepts",
            label: "Concepts demonstrated, last 4 weeks",
            value: recent_concepts.to_string(),
            note: format!(
                "by at least {min} engineers in a week; {demonstrations} demonstrations in the closed weeks {span}"
            ),
        },
        rate(
            "Retention observed",
            "observed",
            |c| c.retention_30d_observed,
            "late checks passed",
        ),
        rate(
            "Retention predicted",
            "predicted",
            |c| c.retention_30d_predicted,
            "recall in 30 days (model)",
        ),
        Headline {
            id: "syncing",
            label: "Engineers with an active device",
            value: r.n_syncing.map_or_else(few, |n| n.to_string()),
            note: "a device synced in the last 30 days".into(),
        },
    ]
}

/// The domains of the release, shipped ones in catalogue order, then the
/// org's own: (slug, title, concepts).
pub(super) fn domains(r: &Release, catalogue: &Catalogue) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = catalogue
        .domains
        .iter()
        .map(|d| (d.slug.clone(), d.title.clone(), Vec::new()))
        .collect();
    for c in r.concepts.iter().filter(|c| !c.retired) {
        match out.iter_mut().find(|d| d.0 == c.domain) {
            Some(d) => d.2.push(c.concept.clone()),
            None => out.push((c.domain.clone(), c.domain.clone(), vec![c.concept.clone()])),
        }
    }
    out.retain(|d| !d.2.is_empty());
    out
}

pub(super) type CoverageParts = (HeatMap, Table, Vec<Refused>);

/// The heat map of domains by the org and each shown team, its table, and
/// the teams refused with their reasons.
pub(super) fn coverage(f: &Scopes, catalogue: &Catalogue, min: u32) -> CoverageParts {
    let doms = domains(&f.org, catalogue);
    let mut columns = vec!["Whole org".to_string()];
    let mut scopes: Vec<Result<&Release, String>> = vec![Ok(&f.org)];
    let mut refused = Vec::new();
    for (team, r) in &f.teams {
        columns.push(team.clone());
        match r {
            Ok(r) => scopes.push(Ok(r)),
            Err(e) => {
                let why = refusal(e, min);
                refused.push(Refused {
                    team: team.clone(),
                    why: why.clone(),
                });
                scopes.push(Err(why));
            }
        }
    }
    let by_concept: Vec<Option<HashMap<&str, &ConceptAggregate>>> = scopes
        .iter()
        .map(|s| {
            s.as_ref()
                .ok()
                .map(|r| r.concepts.iter().map(|c| (c.concept.as_str(), c)).collect())
        })
        .collect();
    let cells: Vec<Vec<Coverage>> = doms
        .iter()
        .map(|(_, _, concepts)| {
            scopes
                .iter()
                .zip(&by_concept)
                .map(|(scope, figures)| match (scope, figures) {
                    (Err(why), _) => Coverage::Suppressed(why.clone()),
                    (Ok(_), Some(figures)) => cell(concepts, figures, min),
                    (Ok(_), None) => Coverage::Suppressed("no figures".into()),
                })
                .collect()
        })
        .collect();
    let rows: Vec<String> = doms.iter().map(|d| d.1.clone()).collect();
    let heat = charts::heat_map(&rows, &columns, &cells);
    let rows = doms
        .iter()
        .zip(&cells)
        .map(|((_, title, _), row)| {
            let mut line = vec![title.clone()];
            line.extend(row.iter().map(|c| match c {
                Coverage::Share { covered, of } => {
                    format!("{covered} of {of} ({} %)", charts::share(*covered, *of).0)
                }
                Coverage::Suppressed(_) => "suppressed".into(),
            }));
            line
        })
        .collect();
    let mut head = vec!["Domain".to_string()];
    head.extend(columns);
    let table = Table::with_head("Concepts demonstrated by domain and team", head, rows);
    (heat, table, refused)
}

/// One cell: how many of `concepts` at least `min` engineers of the scope
/// demonstrated, by the released (noisy) counts; suppressed when the
/// scope's figures of every one of them are.
pub(super) fn cell(
    concepts: &[String],
    figures: &HashMap<&str, &ConceptAggregate>,
    min: u32,
) -> Coverage {
    let shown: Vec<&&ConceptAggregate> = concepts
        .iter()
        .filter_map(|c| figures.get(c.as_str()))
        .filter(|c| !c.suppressed)
        .collect();
    if shown.is_empty() {
        return Coverage::Suppressed(format!(
            "fewer than {min} engineers met any of its concepts"
        ));
    }
    let covered = shown
        .iter()
        .filter(|c| c.n_demonstrated.unwrap_or(0) >= i64::from(min))
        .count();
    Coverage::Share {
        covered,
        of: concepts.len(),
    }
}

/// Why a team has no figures this week, in a sentence.
pub(super) fn refusal(e: &ReleaseError, min: u32) -> String {
    match e {
        ReleaseError::TeamTooSmall(_) => {
            format!("fewer than {min} counted engineers: suppressed so no one is singled out")
        }
        other => other.to_string(),
    }
}

/// A concept whose predicted retention moved: (title, points, then, now,
/// slug).
type Mover = (String, f64, f64, f64, String);

/// Concepts whose released predicted retention rose and fell most since
/// the org's previous kept release.
fn movers(
    r: &Release,
    earlier: Option<&EarlierRelease>,
) -> (Option<String>, Vec<Mover>, Vec<Mover>) {
    let Some(e) = earlier else {
        return (None, Vec::new(), Vec::new());
    };
    let then: HashMap<&str, f64> = e
        .predicted
        .iter()
        .filter_map(|(c, p)| p.map(|p| (c.as_str(), p)))
        .collect();
    let mut moved: Vec<Mover> = r
        .concepts
        .iter()
        .filter(|c| !c.suppressed)
        .filter_map(|c| {
            let now = c.retention_30d_predicted?;
            let before = *then.get(c.concept.as_str())?;
            let points = ((now - before) * 100.0).round();
            (points != 0.0).then(|| (c.title.clone(), points, before, now, c.concept.clone()))
        })
        .collect();
    moved.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let rising: Vec<Mover> = moved
        .iter()
        .filter(|m| m.1 > 0.0)
        .take(TOP)
        .cloned()
        .collect();
    let fading: Vec<Mover> = moved
        .iter()
        .rev()
        .filter(|m| m.1 < 0.0)
        .take(TOP)
        .cloned()
        .collect();
    (Some(e.period.clone()), rising, fading)
}

fn points(p: f64) -> String {
    format!("{p:+.0} pts")
}

fn mover_table(caption: &str, m: &[Mover], org: &str) -> Table {
    Table::linked(
        caption,
        &["Concept", "Change", "Then", "Now"],
        m.iter()
            .map(|(t, p, a, b, c)| {
                (
                    Some(concept_href(org, c)),
                    vec![t.clone(), points(*p), percent(*a), percent(*b)],
                )
            })
            .collect(),
    )
}

fn chart_of(m: &[Mover]) -> Option<BarChart> {
    (!m.is_empty()).then(|| {
        charts::bar_chart(
            &m.iter()
                .map(|(t, p, _, _, _)| (t.clone(), p.abs(), points(*p)))
                .collect::<Vec<_>>(),
        )
    })
}

/// The concepts most engineers have demonstrated, by released count; at
/// least `min_cohort` of them (fewer is too often noise alone).
pub(super) fn most_demonstrated(r: &Release) -> Vec<(String, i64, String)> {
    let min = i64::from(r.params.min_cohort);
    let mut top: Vec<(String, i64, String)> = r
        .concepts
        .iter()
        .filter(|c| !c.suppressed)
        .filter_map(|c| Some((c.title.clone(), c.n_demonstrated?, c.concept.clone())))
        .filter(|c| c.1 >= min)
        .collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(TOP);
    top
}
