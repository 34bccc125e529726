//! A concept's page (`/o/<org>/concepts/<slug>`) for viewers and admins:
//! the concept from the catalogue (shipped, or the org's own live one),
//! its prerequisites and related concepts as a small graph, the org's
//! weekly trend for it, and each team's figures; admins also see the
//! checks the question bank and the org's model hold for it. Every figure
//! is one of this week's privacy releases (the org's, with its kept week
//! cells, and the teams' the dashboard draws), never a row of one
//! engineer: a suppressed cell shows as suppressed, a refused team as its
//! reason.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use super::PageError;
use super::charts::{self, BarChart, ConceptGraph, LineChart, Neighbour};
use super::dashboard::{
    Headline, MAX_TEAMS, Refused, Scopes, Table, concept_href, org_and_teams, percent, refusal,
    team_href,
};
use super::extract::DashboardViewer;
use super::pages::render;
use crate::catalogue::OrgConcepts;
use crate::checks::{Answer, Check};
use crate::graph::aggregates::ConceptAggregate;
use crate::graph::trend;
use crate::http::AppState;
use crate::privacy;
use crate::question::ServiceError;
use crate::question::service::{GeneratedCheck, list_generated};
use crate::users::Role;

/// One check of the bank or of the org's model, as an admin reads it.
pub struct CheckLine {
    pub id: String,
    pub source: String,
    pub kind: &'static str,
    pub prompt: String,
    pub answer: String,
}

#[derive(Template)]
#[template(path = "concept.html")]
pub struct ConceptPage {
    pub org_slug: String,
    pub org_name: String,
    pub csrf: String,
    pub is_admin: bool,
    pub period: String,
    pub min_cohort: u32,
    pub protection: privacy::Protection,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub domain: String,
    /// The org's own concept rather than a shipped one.
    pub own: bool,
    pub figures: Vec<Headline>,
    pub graph: ConceptGraph,
    pub graph_summary: String,
    pub graph_table: Table,
    /// Neighbours beyond what the graph draws.
    pub graph_more: usize,
    pub trend: LineChart,
    pub trend_summary: String,
    pub trend_table: Table,
    pub teams: Option<BarChart>,
    pub teams_table: Table,
    pub refused: Vec<Refused>,
    pub more_teams: usize,
    /// Admins only: the bank's checks, then the model's.
    pub checks: Option<Vec<CheckLine>>,
}

/// What the page is made from.
struct Found {
    scopes: Scopes,
    generated: Vec<GeneratedCheck>,
    concept: crate::skill::Concept,
    own: bool,
    domain: String,
    /// (title, slug if the org has it live) of each neighbour.
    needs: Vec<(String, Option<String>)>,
    related: Vec<(String, Option<String>)>,
}

/// A slug as the page may quote it back.
fn shown(slug: &str) -> String {
    slug.chars().filter(|c| !c.is_control()).take(64).collect()
}

pub async fn get_concept(
    State(state): State<AppState>,
    Path((_org, slug)): Path<(String, String)>,
    me: DashboardViewer,
) -> Result<Response, PageError> {
    let who = me.who;
    let is_admin = who.role() == Role::Admin;
    let (st, org_slug, audit) = (state.clone(), who.org.slug.to_string(), me.audit);
    let now = state.clock.now();
    let found = tokio::task::spawn_blocking(move || {
        let org = st.store.org(&org_slug)?;
        let concepts = OrgConcepts::load(&st.catalogue, org)?;
        let live = |s: &str| concepts.get(s).is_some() && concepts.retired_at(s).is_none();
        let Some(concept) = concepts.get(&slug).filter(|_| live(&slug)).cloned() else {
            let what = if concepts.get(&slug).is_some() {
                format!(
                    "The concept `{}` is retired in this organisation, so it has no page. An administrator can restore it.",
                    shown(&slug)
                )
            } else {
                format!(
                    "There is no concept `{}` in this organisation's catalogue. The dashboard links to every concept it shows; `GET /api/v1/concepts` lists them all.",
                    shown(&slug)
                )
            };
            return Err(PageError::Missing(what));
        };
        let neighbour = |s: &String| {
            let title = concepts.get(s).map_or_else(|| s.clone(), |c| c.title.clone());
            (title, live(s).then(|| s.clone()))
        };
        let needs = concept.prerequisites.iter().map(neighbour).collect();
        let related = concept.related.iter().map(neighbour).collect();
        let scopes = org_and_teams(
            org,
            &st.catalogue,
            st.settings.privacy,
            &audit,
            now,
            trend::DEFAULT_WEEKS,
            &[],
        )?;
        let generated = if is_admin {
            list_generated(org, Some(&slug)).map_err(|e| match e {
                ServiceError::Store(s) => PageError::from(s),
                other => PageError::internal(other),
            })?
        } else {
            Vec::new()
        };
        Ok::<_, PageError>(Found {
            scopes,
            generated,
            own: concepts.custom.contains_key(&slug),
            domain: concepts.domain_title(&concept.domain),
            concept,
            needs,
            related,
        })
    })
    .await
    .map_err(PageError::internal)??;
    let slug = who.org.slug.to_string();
    let checks = is_admin.then(|| check_lines(&state, &found));
    Ok(render(&page(
        found,
        &slug,
        &who.org.name,
        &who.session.csrf,
        is_admin,
        checks,
    )))
}

fn page(
    f: Found,
    org: &str,
    org_name: &str,
    csrf: &str,
    is_admin: bool,
    checks: Option<Vec<CheckLine>>,
) -> ConceptPage {
    let r = &f.scopes.org;
    let min = r.params.min_cohort;
    let c = &f.concept;
    let figures = r.concepts.iter().find(|a| a.concept == c.slug);
    let link = |n: &(String, Option<String>)| -> Neighbour {
        (n.0.clone(), n.1.as_ref().map(|s| concept_href(org, s)))
    };
    let needs: Vec<Neighbour> = f.needs.iter().map(link).collect();
    let related: Vec<Neighbour> = f.related.iter().map(link).collect();
    let graph_more = needs.len().saturating_sub(charts::GRAPH_SIDE)
        + related.len().saturating_sub(charts::GRAPH_SIDE);
    let mut graph_rows: Vec<(Option<String>, Vec<String>)> = Vec::new();
    for (what, list) in [("Prerequisite", &needs), ("Related", &related)] {
        for (t, href) in list {
            graph_rows.push((href.clone(), vec![t.clone(), what.to_string()]));
        }
    }
    let graph_summary = neighbours_summary(&c.title, &f.needs, &f.related);
    let weeks: Vec<(String, Option<i64>, Option<i64>)> = figures
        .map(|a| {
            a.trend
                .iter()
                .map(|w| (w.week.clone(), w.n_seen, w.n_demonstrated))
                .collect()
        })
        .unwrap_or_default();
    let (teams, teams_table, refused) = by_team(&f.scopes, &c.slug, org, min);
    ConceptPage {
        org_slug: org.to_string(),
        org_name: org_name.to_string(),
        csrf: csrf.to_string(),
        is_admin,
        period: r.period.clone(),
        min_cohort: min,
        protection: r.protection.clone(),
        slug: c.slug.clone(),
        title: c.title.clone(),
        summary: c.summary.clone(),
        domain: f.domain.clone(),
        own: f.own,
        figures: concept_figures(figures, min),
        graph: charts::concept_graph(&c.title, &needs, &related),
        graph_summary,
        graph_table: Table::linked(
            "Prerequisites and related concepts",
            &["Concept", "Relation"],
            graph_rows,
        ),
        graph_more,
        trend: charts::line_chart_gaps(&weeks),
        trend_summary: trend_summary(&c.title, &weeks, min),
        trend_table: Table::new(
            "Engineers who met and demonstrated the concept per closed week",
            &["Week", "Met", "Demonstrated"],
            weeks
                .iter()
                .map(|(w, a, b)| vec![w.clone(), count(*a), count(*b)])
                .collect(),
        ),
        teams,
        teams_table,
        refused,
        more_teams: f.scopes.all_teams.saturating_sub(MAX_TEAMS),
        checks,
    }
}

/// A released count, or "suppressed" for a cell below `min_cohort`.
fn count(v: Option<i64>) -> String {
    v.map_or_else(|| "suppressed".into(), |v| v.to_string())
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "suppressed".into(), percent)
}

/// The concept's released figures in this week's org release.
fn concept_figures(a: Option<&ConceptAggregate>, min: u32) -> Vec<Headline> {
    let sup = a.is_none_or(|a| a.suppressed);
    let note = |what: &str| {
        if sup {
            format!("fewer than {min} engineers met it: suppressed")
        } else {
            what.to_string()
        }
    };
    vec![
        Headline {
            id: "met",
            label: "Engineers who met it",
            value: count(a.and_then(|a| a.n_seen)),
            note: note("counted engineers, ±noise"),
        },
        Headline {
            id: "demonstrated",
            label: "Engineers who demonstrated it",
            value: count(a.and_then(|a| a.n_demonstrated)),
            note: note("±noise"),
        },
        Headline {
            id: "predicted",
            label: "Retention predicted",
            value: rate(a.and_then(|a| a.retention_30d_predicted)),
            note: if sup {
                note("")
            } else {
                format!("recall in 30 days (model), when at least {min} engineers have one")
            },
        },
        Headline {
            id: "observed",
            label: "Retention observed",
            value: rate(a.and_then(|a| a.retention_30d_observed)),
            note: if sup {
                note("")
            } else {
                format!("late checks passed, when at least {min} engineers took one")
            },
        },
    ]
}

fn neighbours_summary(
    title: &str,
    needs: &[(String, Option<String>)],
    related: &[(String, Option<String>)],
) -> String {
    let list = |l: &[(String, Option<String>)]| {
        if l.is_empty() {
            "none".to_string()
        } else {
            l.iter()
                .map(|n| n.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    format!(
        "{title}. Prerequisites (arrows into it): {}. Related (dashed lines): {}.",
        list(needs),
        list(related)
    )
}

fn trend_summary(title: &str, weeks: &[(String, Option<i64>, Option<i64>)], min: u32) -> String {
    let shown = weeks.iter().filter(|w| w.1.is_some()).count();
    match (weeks.first(), weeks.last()) {
        (Some(first), Some(last)) => format!(
            "Engineers who met and demonstrated {title} in each closed week from {} to {}: {shown} of {} weeks released; the others had fewer than {min} engineers (after noise) and are left out of the lines.",
            first.0,
            last.0,
            weeks.len()
        ),
        _ => "No closed week to show yet.".into(),
    }
}

/// Each drawn team's figures for the concept: a bar chart of the
/// engineers who demonstrated it (released teams whose figures of the
/// concept are not suppressed), the table of every team, and the teams
/// refused with their reasons.
fn by_team(s: &Scopes, slug: &str, org: &str, min: u32) -> (Option<BarChart>, Table, Vec<Refused>) {
    let mut rows = Vec::new();
    let mut bars = Vec::new();
    let mut refused = Vec::new();
    for (team, r) in &s.teams {
        let href = Some(team_href(org, team));
        match r {
            Ok(r) => {
                let a = r
                    .concepts
                    .iter()
                    .find(|c| c.concept == slug)
                    .filter(|c| !c.suppressed);
                if let Some(d) = a.and_then(|a| a.n_demonstrated) {
                    bars.push((team.clone(), d as f64, d.to_string()));
                }
                rows.push((
                    href,
                    vec![
                        team.clone(),
                        count(a.and_then(|a| a.n_seen)),
                        count(a.and_then(|a| a.n_demonstrated)),
                        rate(a.and_then(|a| a.retention_30d_predicted)),
                    ],
                ));
            }
            Err(e) => {
                refused.push(Refused {
                    team: team.clone(),
                    why: refusal(e, min),
                });
                let not = "not released this week".to_string();
                rows.push((href, vec![team.clone(), not.clone(), not.clone(), not]));
            }
        }
    }
    let table = Table::linked(
        "The concept's figures by team",
        &["Team", "Met", "Demonstrated", "Retention predicted"],
        rows,
    );
    (
        (!bars.is_empty()).then(|| charts::bar_chart(&bars)),
        table,
        refused,
    )
}

/// The checks an admin may review for the concept: the shipped bank's,
/// then those the org's model wrote (retired ones marked).
fn check_lines(state: &AppState, f: &Found) -> Vec<CheckLine> {
    let bank = state.bank.for_concept(&f.concept.slug);
    let mut out: Vec<CheckLine> = bank.iter().map(bank_line).collect();
    out.extend(f.generated.iter().map(|g| {
        CheckLine {
            id: g.id.clone(),
            source: match g.retired_at {
                Some(_) => format!("written by {} (retired)", g.model),
                None => format!("written by {}", g.model),
            },
            kind: "choice",
            prompt: g.prompt.clone(),
            answer: g
                .options
                .get(g.correct)
                .cloned()
                .unwrap_or_else(|| "(no valid key)".into()),
        }
    }));
    out
}

fn bank_line(c: &Check) -> CheckLine {
    let (kind, answer) = match &c.answer {
        Answer::Choice { options, correct } => {
            ("choice", options.get(*correct).cloned().unwrap_or_default())
        }
        Answer::Short { accepted } => ("short answer", accepted.join(" / ")),
    };
    CheckLine {
        id: c.id.clone(),
        source: "question bank".into(),
        kind,
        prompt: c.prompt.clone(),
        answer,
    }
}
