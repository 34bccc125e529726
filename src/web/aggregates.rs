//! The org aggregates page for admins: per domain and concept, how many
//! engineers have seen and demonstrated it, retention observed and
//! predicted, and a weekly trend drawn with CSS bars (no script), for the
//! whole org or one team. The numbers are a release of `crate::privacy`
//! (noisy, fixed for the week, refused when it would single people out);
//! this module lays them out and says how they are protected.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::PageError;
use super::pages::{AggregateLine, AggregatesPage, Bar, DomainSection, render};
use crate::graph::aggregates::ConceptAggregate;
use crate::graph::trend::{self, WeekCount};
use crate::http::AppState;
use crate::http::extract::AdminViewer;
use crate::privacy::{self, Release, ReleaseError};
use crate::skill::Catalogue;
use crate::users;

/// Bar heights run from 0 to this many steps (`.h0` to `.h8` in the CSS).
const STEPS: i64 = 8;

#[derive(Debug, Deserialize)]
pub struct AggregatesQuery {
    team: Option<String>,
}

pub async fn get_aggregates(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    Query(q): Query<AggregatesQuery>,
    me: AdminViewer,
) -> Result<Response, PageError> {
    let who = me.who;
    let team = q.team.filter(|t| !t.trim().is_empty());
    let (st, slug, asked) = (state.clone(), who.org.slug.to_string(), team.clone());
    let now = state.clock.now();
    let audit = me.audit;
    let (teams, found) = tokio::task::spawn_blocking(move || {
        let org = st.store.org(&slug)?;
        let req = privacy::Request {
            team: asked.as_deref(),
            now,
            weeks: trend::DEFAULT_WEEKS,
        };
        let found = privacy::release(org, &st.catalogue, &req, st.settings.privacy, &audit);
        Ok::<_, PageError>((users::teams(org)?, found))
    })
    .await
    .map_err(PageError::internal)??;
    let params = found.as_ref().map_or(state.settings.privacy, |r| r.params);
    let period = found.as_ref().map(|r| r.period.clone()).unwrap_or_default();
    let (domains, hidden, notice) = figures(found, &state.catalogue)?;
    let last_closed = now - chrono::Duration::days(7);
    let weeks = trend::empty(last_closed, trend::DEFAULT_WEEKS);
    Ok(render(&AggregatesPage {
        org_slug: who.org.slug.to_string(),
        org_name: who.org.name.clone(),
        csrf: who.session.csrf.clone(),
        teams: teams
            .into_iter()
            .map(|t| {
                let selected = team.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(&t));
                (t, selected)
            })
            .collect(),
        team,
        min_cohort: params.min_cohort as usize,
        protection: params.protection(),
        period,
        first_week: weeks.first().map(|w| w.week.clone()).unwrap_or_default(),
        last_week: weeks.last().map(|w| w.week.clone()).unwrap_or_default(),
        notice,
        hidden,
        domains,
    }))
}

/// The tables to show and how many concepts are suppressed, or why there
/// is no release: an unknown team, or one the privacy rules refuse.
fn figures(
    found: Result<Release, ReleaseError>,
    catalogue: &Catalogue,
) -> Result<(Vec<DomainSection>, usize, Option<String>), PageError> {
    match found {
        Ok(r) => {
            let hidden = r.concepts.iter().filter(|c| c.suppressed).count();
            let shown = r.concepts.into_iter().filter(|c| !c.suppressed).collect();
            Ok((sections(shown, catalogue), hidden, None))
        }
        Err(ReleaseError::UnknownTeam(name)) => Ok((
            Vec::new(),
            0,
            Some(format!(
                "No team is named “{name}”. Choose one from the list."
            )),
        )),
        Err(ReleaseError::TeamTooSmall(n)) => Ok((
            Vec::new(),
            0,
            Some(format!(
                "This team has fewer than {n} counted engineers, so none of its figures are shown: they would single people out."
            )),
        )),
        Err(ReleaseError::Store(e)) => Err(e.into()),
        Err(refused) => Ok((Vec::new(), 0, Some(format!("Not shown: {refused}.")))),
    }
}

/// Groups the rows by domain (shipped domains in catalogue order, then the
/// org's own), most-seen concepts first and suppressed ones last.
fn sections(rows: Vec<ConceptAggregate>, catalogue: &Catalogue) -> Vec<DomainSection> {
    let rank = |domain: &str| {
        catalogue
            .domains
            .iter()
            .position(|d| d.slug == domain)
            .unwrap_or(usize::MAX)
    };
    let mut by_domain: BTreeMap<(usize, String), Vec<ConceptAggregate>> = BTreeMap::new();
    for r in rows {
        by_domain
            .entry((rank(&r.domain), r.domain.clone()))
            .or_default()
            .push(r);
    }
    by_domain
        .into_iter()
        .map(|((_, domain), mut rows)| {
            rows.sort_by(|a, b| {
                a.suppressed
                    .cmp(&b.suppressed)
                    .then(b.n_seen.cmp(&a.n_seen))
                    .then_with(|| a.title.cmp(&b.title))
            });
            DomainSection {
                title: catalogue
                    .domains
                    .iter()
                    .find(|d| d.slug == domain)
                    .map_or_else(|| domain.clone(), |d| d.title.clone()),
                rows: rows.into_iter().map(line).collect(),
            }
        })
        .collect()
}

fn count(n: Option<i64>) -> String {
    n.map_or_else(|| "suppressed".into(), |n| n.to_string())
}

/// A retention figure: a percentage, "suppressed" with the row, or "too
/// few" when it rests on fewer than `min_cohort` engineers.
fn rate(r: Option<f64>, suppressed: bool) -> String {
    match (r, suppressed) {
        (_, true) => "suppressed".into(),
        (Some(r), false) => format!("{:.0} %", r * 100.0),
        (None, false) => "too few".into(),
    }
}

fn line(a: ConceptAggregate) -> AggregateLine {
    let bars = bars(&a.trend);
    let summary = a
        .trend
        .iter()
        .map(|w| format!("{}: {}", w.week, week_text(w)))
        .collect::<Vec<_>>()
        .join("; ");
    AggregateLine {
        n_seen: count(a.n_seen),
        n_demonstrated: count(a.n_demonstrated),
        observed: rate(a.retention_30d_observed, a.suppressed),
        predicted: rate(a.retention_30d_predicted, a.suppressed),
        slug: a.concept,
        title: a.title,
        retired: a.retired,
        suppressed: a.suppressed,
        bars,
        summary,
    }
}

fn week_text(w: &WeekCount) -> String {
    match (w.n_seen, w.n_demonstrated) {
        (Some(s), Some(d)) => format!("{s} seen, {d} demonstrated"),
        _ => "suppressed".into(),
    }
}

/// One bar per week: its height is the week's `n_seen` against the busiest
/// week of the concept, and its darker part the share that demonstrated
/// it. A suppressed week is a hatched stub.
fn bars(trend: &[WeekCount]) -> Vec<Bar> {
    let peak = trend.iter().filter_map(|w| w.n_seen).max().unwrap_or(0);
    trend
        .iter()
        .map(|w| {
            let class = match (w.n_seen, w.n_demonstrated) {
                (Some(s), Some(d)) if s > 0 && peak > 0 => {
                    let h = (s * STEPS + peak - 1) / peak;
                    let f = (d * STEPS + s / 2) / s;
                    format!("h{h} f{f}")
                }
                (Some(_), _) => "h0".to_string(),
                _ => "sup".to_string(),
            };
            Bar {
                class,
                label: format!("{}: {}", w.week, week_text(w)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn week(seen: Option<i64>, demonstrated: Option<i64>) -> WeekCount {
        WeekCount {
            week: "2026-W03".into(),
            starts: chrono::NaiveDate::from_ymd_opt(2026, 1, 12).expect("date"),
            suppressed: seen.is_none(),
            n_seen: seen,
            n_demonstrated: demonstrated,
        }
    }

    #[test]
    fn bars_scale_to_the_busiest_week_and_hatch_suppressed_ones() {
        let b = bars(&[
            week(Some(0), Some(0)),
            week(Some(5), Some(5)),
            week(Some(10), Some(4)),
            week(None, None),
            week(Some(7), Some(0)),
        ]);
        let classes: Vec<&str> = b.iter().map(|b| b.class.as_str()).collect();
        assert_eq!(classes, ["h0", "h4 f8", "h8 f3", "sup", "h6 f0"]);
        assert_eq!(b[2].label, "2026-W03: 10 seen, 4 demonstrated");
        assert_eq!(b[3].label, "2026-W03: suppressed");
        // No activity at all draws empty bars, never a division by zero.
        let none = bars(&[week(Some(0), Some(0)), week(Some(0), Some(0))]);
        assert!(none.iter().all(|b| b.class == "h0"));
    }

    #[test]
    fn rates_say_why_there_is_no_number() {
        assert_eq!(rate(Some(0.834), false), "83 %");
        assert_eq!(rate(None, false), "too few");
        assert_eq!(rate(Some(0.5), true), "suppressed");
    }
}
