//! The engineer's own pages (`/me`): their graph by domain and state, each
//! concept's predicted recall over time (the memory model's forgetting
//! curve, from the stored card: stability, difficulty, last review) and
//! when it is due, their history by week, their devices (rename, revoke) and their privacy
//! controls (SECURITY.md P19, P21, P22): exclude me from org aggregates,
//! download my data, delete my data (a 30-day hold, cancellable).
//!
//! Only ever the signed-in person's own data: no route here takes a user
//! id, every read is keyed by the session's user (an org's admin or viewer
//! opening `/me` sees their own). The handlers are thin: each form checks
//! the CSRF token and calls the same plain function the JSON API calls
//! (`crate::graph::me`, `crate::devices`).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Datelike, Duration, Utc};
use serde::Deserialize;

use super::PageError;
use super::account::{CsrfOnly, act, revoke_own_device};
use super::charts::{self, BarChart, LineChart, RecallCurve};
use super::dashboard::Table;
use super::extract::SignedInUser;
use super::pages::render;
use crate::catalogue::OrgConcepts;
use crate::devices::Device;
use crate::graph::me::{self, Privacy, Week};
use crate::graph::trend;
use crate::http::AppState;
use crate::http::ratelimit::{Caller, RouteClass, admit_caller};
use crate::skill::fsrs;
use crate::skill::state::ConceptState;
use crate::users::Role;

/// Weeks of history drawn.
pub const HISTORY_WEEKS: u32 = 12;
/// Forgetting curves drawn (the soonest due first); the table lists all.
pub const MAX_CURVES: usize = 24;

/// The states in the order they are shown, with what each means.
const STATES: [(&str, &str); 5] = [
    ("seen", "met in your work"),
    ("explained", "explained to you"),
    ("demonstrated", "you used it or passed a check"),
    (
        "retained",
        "passed a check a week or more after first demonstrating it",
    ),
    (
        "decaying",
        "the memory model predicts recall below 70 % now: time for a check",
    ),
];

/// One concept of the graph, as the page shows it.
pub struct ConceptLine {
    pub slug: String,
    pub title: String,
    pub state: &'static str,
    pub recall: String,
    pub due: String,
    pub last_activity: String,
    pub checks: String,
}

/// A domain's concepts.
pub struct DomainGroup {
    pub title: String,
    pub summary: String,
    pub concepts: Vec<ConceptLine>,
}

/// One concept's forgetting curve.
pub struct CurveView {
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub curve: RecallCurve,
}

pub struct DeviceView {
    pub id: String,
    pub name: String,
    pub created: String,
    pub last_seen: String,
    pub state: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "me.html")]
pub struct MePage {
    pub org_slug: String,
    pub name: String,
    pub csrf: String,
    pub sees_dashboard: bool,
    pub is_admin: bool,
    pub notice: Option<&'static str>,
    pub met: usize,
    pub states: Option<BarChart>,
    pub states_table: Table,
    pub domains: Vec<DomainGroup>,
    pub curves: Vec<CurveView>,
    pub more_curves: usize,
    pub unchecked: usize,
    pub history: LineChart,
    pub history_summary: String,
    pub history_table: Table,
    pub devices: Vec<DeviceView>,
    pub opted_out: bool,
    /// What "at once" means this week (see [`opt_out_effect`]).
    pub effect: String,
    pub deletion_due: Option<String>,
    pub min_cohort: u32,
}

/// Everything the page shows, read for the signed-in user only.
pub struct Mine {
    pub states: BTreeMap<String, ConceptState>,
    pub history: Vec<Week>,
    pub devices: Vec<Device>,
    pub privacy: Privacy,
}

/// Reads the user's own data (nothing keyed by anything but `user_id`).
///
/// # Errors
/// Store and device errors.
pub fn read(
    org: &crate::store::OrgDb,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<Mine, PageError> {
    Ok(Mine {
        states: me::stored_states(org, user_id)?,
        history: me::history(org, user_id, now, HISTORY_WEEKS)?,
        devices: crate::devices::list(org, user_id)?,
        privacy: me::privacy(org, user_id)?,
    })
}

#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// The sentence a finished action leaves on the page.
fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "opted-out" => "You are excluded from your organisation’s aggregates from now on.",
        "opted-in" => "You are counted in your organisation’s aggregates again from now on.",
        "deletion" => {
            "Deletion requested: your data is deleted when the 30-day hold ends unless you cancel."
        }
        "cancelled" => "Deletion cancelled: your data is kept.",
        "renamed" => "Device renamed.",
        "revoked" => "Device revoked: it can no longer sync until it is paired again.",
        _ => return None,
    })
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn percent(r: f64) -> String {
    format!("{:.0} %", r * 100.0)
}

/// What "effective at once" means for the org's figures, this week: from
/// this moment the engineer is in no release made after it; a release the
/// org already has for the week in progress stays as it was until the
/// week ends (releases are made once per week and kept), and figures
/// released before stay released.
pub fn opt_out_effect(now: DateTime<Utc>) -> String {
    let monday = trend::monday(trend::week_of(now));
    let next = monday + chrono::Days::new(7);
    format!(
        "At once means: from the moment you choose, you are not counted in any release of your organisation’s figures made after it. Figures are released once a week and kept for the week, so a release already made this week ({}) keeps its figures until the week ends; from the week starting Monday {} 00:00 UTC every figure leaves you out. Figures released earlier stay as they were.",
        trend::label(trend::week_of(now)),
        next.format("%Y-%m-%d")
    )
}

/// The page, from the user's data. Pure: testable without HTTP.
pub fn page(
    mine: Mine,
    concepts: &OrgConcepts<'_>,
    now: DateTime<Utc>,
    who: (&str, &str, &str, Role),
    notice_key: Option<&str>,
    min_cohort: u32,
) -> MePage {
    let (org_slug, name, csrf, role) = who;
    let label = |s: &ConceptState| s.label(now);
    let title = |slug: &str| {
        concepts
            .get(slug)
            .map_or_else(|| slug.to_string(), |c| c.title.clone())
    };
    // By state.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in mine.states.values() {
        *counts.entry(label(s)).or_default() += 1;
    }
    let state_rows: Vec<(String, f64, String)> = STATES
        .iter()
        .map(|(s, _)| {
            let n = counts.get(s).copied().unwrap_or(0);
            ((*s).to_string(), n as f64, n.to_string())
        })
        .collect();
    let states_table = Table::new(
        "Your concepts by state",
        &["State", "Concepts", "Meaning"],
        STATES
            .iter()
            .map(|(s, meaning)| {
                vec![
                    (*s).to_string(),
                    counts.get(s).copied().unwrap_or(0).to_string(),
                    (*meaning).to_string(),
                ]
            })
            .collect(),
    );
    // By domain: domains by title, concepts by title.
    let mut by_domain: BTreeMap<String, Vec<ConceptLine>> = BTreeMap::new();
    for (slug, s) in &mine.states {
        let domain = concepts
            .get(slug)
            .map_or_else(|| "Other".to_string(), |c| concepts.domain_title(&c.domain));
        by_domain.entry(domain).or_default().push(ConceptLine {
            slug: slug.clone(),
            title: title(slug),
            state: label(s),
            recall: s.recall(now).map_or_else(|| "no check yet".into(), percent),
            due: s.due().map_or_else(
                || "after your first check".into(),
                |d| {
                    if d <= now {
                        format!("due now (since {})", day(d))
                    } else {
                        day(d)
                    }
                },
            ),
            last_activity: s.last_activity.map_or_else(|| "never".into(), when),
            checks: format!("{} passed, {} failed", s.checks_passed, s.checks_failed),
        });
    }
    let domains = by_domain
        .into_iter()
        .map(|(title, mut concepts)| {
            concepts.sort_by(|a, b| a.title.cmp(&b.title));
            let mut n: BTreeMap<&str, usize> = BTreeMap::new();
            for c in &concepts {
                *n.entry(c.state).or_default() += 1;
            }
            let summary = STATES
                .iter()
                .filter_map(|(s, _)| n.get(s).map(|k| format!("{k} {s}")))
                .collect::<Vec<_>>()
                .join(", ");
            DomainGroup {
                title,
                summary,
                concepts,
            }
        })
        .collect();
    // Forgetting curves, the soonest due first.
    let mut carded: Vec<(&String, &ConceptState, fsrs::Card)> = mine
        .states
        .iter()
        .filter_map(|(slug, s)| s.card.map(|c| (slug, s, c)))
        .collect();
    let unchecked = mine.states.len() - carded.len();
    carded.sort_by_key(|(slug, s, _)| (s.due(), (*slug).clone()));
    let more_curves = carded.len().saturating_sub(MAX_CURVES);
    let curves = carded
        .into_iter()
        .take(MAX_CURVES)
        .map(|(slug, s, card)| curve_view(slug, &title(slug), s, &card, now))
        .collect();
    // History.
    let weeks: Vec<(String, i64, i64)> = mine
        .history
        .iter()
        .map(|w| (w.week.clone(), i64::from(w.met), i64::from(w.demonstrated)))
        .collect();
    let history_summary = match (mine.history.first(), mine.history.last()) {
        (Some(a), Some(b)) => format!(
            "Your weeks from {} to {}: {} concepts met and {} demonstrated this week.",
            a.week, b.week, b.met, b.demonstrated
        ),
        _ => "No weeks yet.".into(),
    };
    let history_table = Table::new(
        "Your concepts met and demonstrated, and your checks, per week",
        &[
            "Week",
            "Met",
            "Demonstrated",
            "Checks passed",
            "Checks failed",
        ],
        mine.history
            .iter()
            .map(|w| {
                vec![
                    w.week.clone(),
                    w.met.to_string(),
                    w.demonstrated.to_string(),
                    w.checks_passed.to_string(),
                    w.checks_failed.to_string(),
                ]
            })
            .collect(),
    );
    let devices = mine
        .devices
        .into_iter()
        .map(|d| DeviceView {
            active: d.revoked_at.is_none(),
            state: match (&d.revoked_at, &d.revoked_reason) {
                (None, _) => "active".into(),
                (Some(at), Some(r)) => format!("revoked {} ({r})", day(*at)),
                (Some(at), None) => format!("revoked {}", day(*at)),
            },
            created: when(d.created_at),
            last_seen: d.last_seen_at.map_or_else(|| "never".into(), when),
            id: d.id,
            name: d.name,
        })
        .collect();
    MePage {
        org_slug: org_slug.to_string(),
        name: name.to_string(),
        csrf: csrf.to_string(),
        sees_dashboard: role.sees_dashboard(),
        is_admin: role == Role::Admin,
        notice: notice(notice_key),
        met: mine.states.len(),
        states: (!mine.states.is_empty()).then(|| charts::bar_chart(&state_rows)),
        states_table,
        domains,
        curves,
        more_curves,
        unchecked,
        history: charts::line_chart(&weeks),
        history_summary,
        history_table,
        devices,
        opted_out: mine.privacy.opted_out,
        effect: opt_out_effect(now),
        deletion_due: mine.privacy.deletion_due_at.map(when),
        min_cohort,
    }
}

/// One concept's curve: recall from its last check on, today and the due
/// date (recall falls to the model's target retention) marked.
fn curve_view(
    slug: &str,
    title: &str,
    s: &ConceptState,
    card: &fsrs::Card,
    now: DateTime<Utc>,
) -> CurveView {
    let days = |t: DateTime<Utc>| (t - card.last_review).num_seconds() as f64 / 86_400.0;
    let due = s.due().unwrap_or(now);
    let now_recall = fsrs::retrievability(card, now);
    let in_30 = fsrs::retrievability(card, now + Duration::days(30));
    let due_words = if due <= now {
        format!("due since {}", day(due))
    } else {
        format!("due {}", day(due))
    };
    CurveView {
        slug: slug.to_string(),
        title: title.to_string(),
        summary: format!(
            "Predicted recall {} today, {} in 30 days; last checked {}; {} (when recall falls to {}). Stability {:.1} days, difficulty {:.1} of 10.",
            percent(now_recall),
            percent(in_30),
            day(card.last_review),
            due_words,
            percent(fsrs::DEFAULT_RETENTION),
            card.memory.stability_days,
            card.memory.difficulty,
        ),
        curve: charts::recall_curve(
            |d| fsrs::recall_at(card, d),
            days(now),
            days(due),
            fsrs::DEFAULT_RETENTION,
            &format!("today {}", percent(now_recall)),
            &format!("due {:02}-{:02}", due.month(), due.day()),
        ),
    }
}

pub async fn get_me(
    State(state): State<AppState>,
    me: SignedInUser,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    let (who, st) = (me.who, state.clone());
    let now = state.clock.now();
    let page = tokio::task::spawn_blocking(move || {
        let org = st.store.org(who.org.slug.as_str())?;
        let mine = read(org, &who.user.id, now)?;
        let concepts = OrgConcepts::load(&st.catalogue, org)?;
        Ok::<_, PageError>(page(
            mine,
            &concepts,
            now,
            (
                who.org.slug.as_str(),
                who.user.greeting_name(),
                &who.session.csrf,
                who.role(),
            ),
            q.done.as_deref(),
            st.settings.privacy.min_cohort,
        ))
    })
    .await
    .map_err(PageError::internal)??;
    Ok(render(&page))
}

fn back(done: &str, anchor: &str) -> Response {
    Redirect::to(&format!("/me?done={done}#{anchor}")).into_response()
}

#[derive(Debug, Deserialize)]
pub struct OptOutForm {
    csrf: String,
    /// `yes` to be left out, `no` to be counted again.
    opted_out: String,
}

pub async fn post_opt_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    me: SignedInUser,
    Form(form): Form<OptOutForm>,
) -> Result<Response, PageError> {
    let out = match form.opted_out.as_str() {
        "yes" => true,
        "no" => false,
        other => {
            return Err(PageError::BadRequest(format!(
                "opted_out must be yes or no, not {other:?}; use the buttons on /me"
            )));
        }
    };
    act(
        &state,
        &headers,
        &me,
        &form.csrf,
        move |org, who, ctx, now| Ok(me::set_opt_out(org, &who.user.id, out, ctx, now)?),
    )
    .await?;
    Ok(back(if out { "opted-out" } else { "opted-in" }, "privacy"))
}

#[derive(Debug, Deserialize)]
pub struct DeletionForm {
    csrf: String,
    /// The checkbox that says the person understands.
    confirm: Option<String>,
}

pub async fn post_deletion(
    State(state): State<AppState>,
    headers: HeaderMap,
    me: SignedInUser,
    Form(form): Form<DeletionForm>,
) -> Result<Response, PageError> {
    if form.confirm.as_deref() != Some("yes") {
        return Err(PageError::BadRequest(
            "Tick “I understand my skill data will be deleted after 30 days” to request deletion."
                .into(),
        ));
    }
    act(&state, &headers, &me, &form.csrf, |org, who, ctx, now| {
        Ok(me::request_deletion(org, &who.user.id, ctx, now)?)
    })
    .await?;
    Ok(back("deletion", "privacy"))
}

pub async fn post_cancel_deletion(
    State(state): State<AppState>,
    headers: HeaderMap,
    me: SignedInUser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    act(&state, &headers, &me, &form.csrf, |org, who, ctx, now| {
        Ok(me::cancel_deletion(org, &who.user.id, ctx, now)?)
    })
    .await?;
    Ok(back("cancelled", "privacy"))
}

/// Downloads everything held about the person (the same document as
/// `GET /api/v1/me/export`, audited as `data.export`, on the same budget
/// of three an hour, which a refused CSRF token does not spend).
pub async fn post_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    me: SignedInUser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    let caller = Caller::User {
        org: me.who.org.slug.to_string(),
        id: me.who.user.id.clone(),
    };
    super::extract::check_csrf(&state, &headers, &me.who, &form.csrf)?;
    // Over the budget: the same 429 with Retry-After as the API and the
    // per-address ceiling in front of this route.
    if let Err(refused) = admit_caller(&state, RouteClass::Export, &caller) {
        return Ok(refused.into_response());
    }
    let catalogue = state.catalogue.clone();
    let doc = act(
        &state,
        &headers,
        &me,
        &form.csrf,
        move |org, who, ctx, now| {
            me::export(org, &catalogue, &who.user.id, ctx, now).map_err(|e| match e {
                me::ExportError::Store(s) => s.into(),
                other => PageError::internal(other),
            })
        },
    )
    .await?;
    let body = serde_json::to_vec_pretty(&doc).map_err(PageError::internal)?;
    let name = format!(
        "attachment; filename=\"aiworklab-{}-{}.json\"",
        me.who.org.slug,
        state.clock.now().format("%Y%m%d")
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&name).map_err(PageError::internal)?,
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct RenameForm {
    csrf: String,
    name: String,
}

pub async fn post_rename_device(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    me: SignedInUser,
    Form(form): Form<RenameForm>,
) -> Result<Response, PageError> {
    act(
        &state,
        &headers,
        &me,
        &form.csrf,
        move |org, who, ctx, now| {
            Ok(crate::devices::rename(
                org,
                &who.user.id,
                &id,
                &form.name,
                ctx,
                now,
            )?)
        },
    )
    .await?;
    Ok(back("renamed", "devices"))
}

pub async fn post_revoke_device(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    me: SignedInUser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    revoke_own_device(&state, &headers, &me, id, &form.csrf).await?;
    Ok(back("revoked", "devices"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, d, h, 0, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn at_once_names_this_week_and_the_monday_every_figure_leaves_you_out() {
        // Thursday 2026-01-15 is in 2026-W03; the next week starts Monday 19th.
        let s = opt_out_effect(at(15, 12));
        assert!(
            s.contains("(2026-W03)") && s.contains("Monday 2026-01-19 00:00 UTC"),
            "{s}"
        );
        // Sunday late is still W03; Monday 00:00 is W04, whose end is the 26th.
        assert!(opt_out_effect(at(18, 23)).contains("Monday 2026-01-19"));
        let monday = opt_out_effect(at(19, 0));
        assert!(
            monday.contains("(2026-W04)") && monday.contains("Monday 2026-01-26"),
            "{monday}"
        );
    }

    #[test]
    fn only_known_actions_leave_a_status_line() {
        assert!(notice(Some("opted-out")).is_some_and(|n| n.contains("excluded")));
        assert!(notice(Some("cancelled")).is_some_and(|n| n.contains("kept")));
        // Anything else in the query shows nothing (no text from the URL).
        assert_eq!(notice(Some("<script>")), None);
        assert_eq!(notice(None), None);
    }
}
