//! The team pages for viewers and admins: `/o/<org>/teams` compares the
//! teams side by side by domain, `/o/<org>/teams/<team>` shows one team.
//! Every figure is a team's privacy release of this week (or the org's,
//! beside them); a team the rules refuse (fewer than `min_cohort` counted
//! engineers, membership new this week, too close to a released scope,
//! budget spent) shows its reason and nothing else.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;

use super::PageError;
use super::charts::{self, BarChart, Coverage, HeatMap, LineChart};
use super::dashboard::{
    Headline, MAX_TEAMS, Refused, Table, concept_href, coverage, domains, most_demonstrated,
    org_and_teams, percent, refusal, team_href, trend_summary, trend_table, weekly_totals,
    weighted,
};
use super::extract::DashboardViewer;
use super::pages::render;
use crate::graph::aggregates::ConceptAggregate;
use crate::graph::trend;
use crate::http::AppState;
use crate::privacy::{self, Release, ReleaseError};
use crate::skill::Catalogue;
use crate::users::{self, Role};

#[derive(Template)]
#[template(path = "teams.html")]
pub struct TeamsPage {
    pub org_slug: String,
    pub org_name: String,
    pub csrf: String,
    pub is_admin: bool,
    pub period: String,
    pub min_cohort: u32,
    pub protection: privacy::Protection,
    pub heat: HeatMap,
    pub heat_summary: String,
    pub heat_table: Table,
    pub compare: Table,
    pub refused: Vec<Refused>,
    pub more_teams: usize,
    pub no_teams: bool,
    /// Every team, and whether it is drawn: the chooser's checkboxes.
    pub choices: Vec<(String, bool)>,
    /// Whether the teams drawn were chosen (not the first by name).
    pub chosen: bool,
    pub max_teams: usize,
}

/// The teams asked for in `?team=A&team=B`; any other parameter is named
/// as the mistake it is.
fn chosen_teams(query: Option<&str>) -> Result<Vec<String>, PageError> {
    let mut teams = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k != "team" {
            let shown: String = k.chars().filter(|c| !c.is_control()).take(64).collect();
            return Err(PageError::BadRequest(format!(
                "`{shown}` is not something this page takes; it takes only team=NAME, once for each team to compare"
            )));
        }
        if !v.trim().is_empty() {
            teams.push(v.trim().to_string());
        }
    }
    Ok(teams)
}

/// A released team's figures.
pub struct TeamFigures {
    pub headlines: Vec<Headline>,
    pub trend: LineChart,
    pub trend_summary: String,
    pub trend_table: Table,
    pub domains: Option<BarChart>,
    pub domains_table: Table,
    pub top: Option<BarChart>,
    pub top_table: Table,
}

#[derive(Template)]
#[template(path = "team.html")]
pub struct TeamPage {
    pub org_slug: String,
    pub org_name: String,
    pub csrf: String,
    pub is_admin: bool,
    pub team: String,
    pub period: String,
    pub min_cohort: u32,
    pub protection: privacy::Protection,
    /// Why the team has no figures this week.
    pub refused: Option<String>,
    pub figures: Option<TeamFigures>,
}

pub async fn get_teams(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    me: DashboardViewer,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let who = me.who;
    let chosen = chosen_teams(query.as_deref())?;
    let (st, slug, audit) = (state.clone(), who.org.slug.to_string(), me.audit);
    let now = state.clock.now();
    let asked = chosen.clone();
    let scopes = tokio::task::spawn_blocking(move || {
        let org = st.store.org(&slug)?;
        // One week of the org's trend: the page draws no trend.
        org_and_teams(
            org,
            &st.catalogue,
            st.settings.privacy,
            &audit,
            now,
            1,
            &asked,
        )
    })
    .await
    .map_err(PageError::internal)??;
    let org = who.org.slug.as_str();
    let min = scopes.org.params.min_cohort;
    let (heat, heat_table, refused) = coverage(&scopes, &state.catalogue, min);
    let mut rows = vec![(None, compare_row("Whole org", &scopes.org))];
    for (team, r) in &scopes.teams {
        let href = Some(team_href(org, team));
        rows.push(match r {
            Ok(r) => (href, compare_row(team, r)),
            Err(_) => {
                let not = "not released this week".to_string();
                (href, vec![team.clone(), not.clone(), not.clone(), not])
            }
        });
    }
    Ok(render(&TeamsPage {
        org_slug: org.to_string(),
        org_name: who.org.name.clone(),
        csrf: who.session.csrf.clone(),
        is_admin: who.role() == Role::Admin,
        period: scopes.org.period.clone(),
        min_cohort: min,
        protection: scopes.org.protection.clone(),
        heat,
        heat_summary: format!(
            "Coverage by domain (rows) for the whole org and each team (columns): the share of each domain's concepts that at least {min} engineers of the team have demonstrated. Hatched cells are suppressed."
        ),
        heat_table,
        compare: Table::linked(
            "Teams side by side",
            &[
                "Team",
                "Engineers counted",
                "Concepts demonstrated",
                "Retention predicted",
            ],
            rows,
        ),
        refused,
        more_teams: scopes.all_teams.saturating_sub(scopes.teams.len()),
        no_teams: scopes.names.is_empty(),
        choices: scopes
            .names
            .iter()
            .map(|n| (n.clone(), scopes.teams.iter().any(|(t, _)| t == n)))
            .collect(),
        chosen: !chosen.is_empty(),
        max_teams: MAX_TEAMS,
    }))
}

/// Concepts at least `min_cohort` engineers of the scope demonstrated, by
/// the released counts.
fn demonstrated_by_cohort(r: &Release) -> usize {
    let min = i64::from(r.params.min_cohort);
    r.concepts
        .iter()
        .filter(|c| !c.suppressed && !c.retired)
        .filter(|c| c.n_demonstrated.unwrap_or(0) >= min)
        .count()
}

fn compare_row(name: &str, r: &Release) -> Vec<String> {
    let min = r.params.min_cohort;
    vec![
        name.to_string(),
        r.n_counted
            .map_or_else(|| format!("fewer than {min}"), |n| n.to_string()),
        demonstrated_by_cohort(r).to_string(),
        weighted(r, |c| c.retention_30d_predicted)
            .map_or_else(|| "too few".into(), |(v, _)| percent(v)),
    ]
}

pub async fn get_team(
    State(state): State<AppState>,
    Path((_org, asked)): Path<(String, String)>,
    me: DashboardViewer,
) -> Result<Response, PageError> {
    let who = me.who;
    let (st, slug, audit) = (state.clone(), who.org.slug.to_string(), me.audit);
    let now = state.clock.now();
    let (team, found) = tokio::task::spawn_blocking(move || {
        let org = st.store.org(&slug)?;
        let Some(team) = users::teams(org)?
            .into_iter()
            .find(|t| t.to_lowercase() == asked.to_lowercase())
        else {
            return Err(PageError::Missing(format!(
                "There is no team `{}` in this organisation. Teams are the identity provider's groups; the teams page lists them.",
                asked.chars().filter(|c| !c.is_control()).take(64).collect::<String>()
            )));
        };
        let req = privacy::Request {
            team: Some(&team),
            now,
            weeks: trend::DEFAULT_WEEKS,
        };
        let found = match privacy::release(org, &st.catalogue, &req, st.settings.privacy, &audit)
        {
            Err(ReleaseError::Store(e)) => return Err(e.into()),
            other => other,
        };
        Ok::<_, PageError>((team, found))
    })
    .await
    .map_err(PageError::internal)??;
    let org = who.org.slug.as_str();
    let params = found.as_ref().map_or(state.settings.privacy, |r| r.params);
    let min = params.min_cohort;
    let period = found
        .as_ref()
        .map_or_else(|_| trend::label(trend::week_of(now)), |r| r.period.clone());
    let (refused, figures) = match found {
        Ok(r) => (None, Some(team_figures(&r, &state.catalogue, org))),
        Err(e) => (Some(refusal(&e, min)), None),
    };
    Ok(render(&TeamPage {
        org_slug: org.to_string(),
        org_name: who.org.name.clone(),
        csrf: who.session.csrf.clone(),
        is_admin: who.role() == Role::Admin,
        team,
        period,
        min_cohort: min,
        protection: params.protection(),
        refused,
        figures,
    }))
}

fn team_figures(r: &Release, catalogue: &Catalogue, org: &str) -> TeamFigures {
    let min = r.params.min_cohort;
    let weeks = weekly_totals(r);
    let few = || format!("fewer than {min}");
    let rate = |f: fn(&ConceptAggregate) -> Option<f64>| {
        weighted(r, f).map_or_else(|| "too few".into(), |(v, _)| percent(v))
    };
    let headlines = vec![
        Headline {
            id: "engineers",
            label: "Engineers counted",
            value: r.n_counted.map_or_else(few, |n| n.to_string()),
            note: "in the team, active, not opted out, ±noise".into(),
        },
        Headline {
            id: "concepts",
            label: "Concepts demonstrated",
            value: demonstrated_by_cohort(r).to_string(),
            note: format!("by at least {min} of the team's engineers"),
        },
        Headline {
            id: "predicted",
            label: "Retention predicted",
            value: rate(|c| c.retention_30d_predicted),
            note: "recall in 30 days (model), weighted by engineers".into(),
        },
        Headline {
            id: "observed",
            label: "Retention observed",
            value: rate(|c| c.retention_30d_observed),
            note: "late checks passed, weighted by engineers".into(),
        },
    ];
    let figures: std::collections::HashMap<&str, &ConceptAggregate> =
        r.concepts.iter().map(|c| (c.concept.as_str(), c)).collect();
    let mut bars = Vec::new();
    let mut rows = Vec::new();
    for (_, title, concepts) in domains(r, catalogue) {
        match super::dashboard::cell(&concepts, &figures, min) {
            Coverage::Share { covered, of } => {
                let (pct, _) = charts::share(covered, of);
                bars.push((title.clone(), f64::from(pct), format!("{pct} %")));
                rows.push(vec![title, format!("{covered} of {of} ({pct} %)")]);
            }
            Coverage::Suppressed(_) => rows.push(vec![title, "suppressed".into()]),
        }
    }
    let top = most_demonstrated(r);
    TeamFigures {
        headlines,
        trend: charts::line_chart(&weeks),
        trend_summary: trend_summary(&weeks),
        trend_table: trend_table(&weeks),
        domains: (!bars.is_empty()).then(|| charts::bar_chart_to(&bars, 100.0)),
        domains_table: Table::new(
            "Concepts demonstrated by domain",
            &["Domain", "Demonstrated"],
            rows,
        ),
        top_table: Table::linked(
            "The team's concepts by engineers who demonstrated them",
            &["Concept", "Engineers"],
            top.iter()
                .map(|(t, v, c)| (Some(concept_href(org, c)), vec![t.clone(), v.to_string()]))
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
