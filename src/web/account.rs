//! The account page: profile, active sessions, sign out (here and
//! everywhere), and ending one session.

use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::PageError;
use super::error::redirect_with_cookie;
use super::pages::{AccountPage, DeviceLine, OrgConceptLine, SessionLine, render};
use crate::http::AppState;
use chrono::{DateTime, Utc};

use super::extract::{SignedInUser, check_csrf};
use crate::audit::Context;
use crate::http::extract::{SignedIn, clear_cookie};
use crate::store::OrgDb;
use crate::users::Role;

/// One of the org's own concepts as every engineer sees it: what the
/// kernel tags it from, so nobody is tagged against a keyword they cannot
/// see (docs/privacy.md, "Who may see what").
fn org_concept_line(c: crate::catalogue::custom::CustomConcept) -> OrgConceptLine {
    let m = &c.concept.matchers;
    let list = |what: &str, items: &[String]| {
        (!items.is_empty()).then(|| format!("{what}: {}", items.join(", ")))
    };
    let matchers = [
        list("keywords", &m.keywords),
        list("imports", &m.imports),
        list("APIs", &m.apis),
        list("file extensions", &m.extensions),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("; ");
    OrgConceptLine {
        slug: c.concept.slug,
        title: c.concept.title,
        retired: c.retired_at.is_some(),
        matchers: if matchers.is_empty() {
            "none (tagged only by name)".into()
        } else {
            matchers
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    pub(super) csrf: String,
}

pub async fn get_account(
    State(state): State<AppState>,
    me: SignedInUser,
) -> Result<Response, PageError> {
    account_page(&state, me, None).await
}

/// The account page, with a just-created pairing code when there is one.
async fn account_page(
    state: &AppState,
    me: SignedInUser,
    new_code: Option<(String, String)>,
) -> Result<Response, PageError> {
    let who = me.who;
    let st = state.clone();
    let (slug, user_id) = (who.org.slug.to_string(), who.user.id.clone());
    let (sessions, devices, custom) = tokio::task::spawn_blocking(move || {
        let org = st.store.org(&slug)?;
        let devices = crate::devices::list(org, &user_id)?;
        let custom = crate::catalogue::custom::list(org)?;
        Ok::<_, PageError>((crate::sessions::list(org, &user_id)?, devices, custom))
    })
    .await
    .map_err(PageError::internal)??;
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let lines = sessions
        .into_iter()
        .map(|s| SessionLine {
            current: s.id_hash == who.session.id_hash,
            handle: s.handle(),
            created: fmt(s.created_at),
            last_seen: fmt(s.last_seen_at),
            ip: s.ip.clone().unwrap_or_else(|| "unknown".into()),
            user_agent: s
                .user_agent
                .clone()
                .unwrap_or_else(|| "unknown".into())
                .chars()
                .take(120)
                .collect(),
        })
        .collect();
    let devices = devices
        .into_iter()
        .map(|d| DeviceLine {
            active: d.revoked_at.is_none(),
            state: match (&d.revoked_at, &d.revoked_reason) {
                (None, _) => "active".into(),
                (Some(_), Some(r)) => format!("revoked ({r})"),
                (Some(_), None) => "revoked".into(),
            },
            created: fmt(d.created_at),
            last_seen: d.last_seen_at.map_or_else(|| "never".into(), fmt),
            id: d.id,
            name: d.name,
        })
        .collect();
    let org_concepts = custom.into_iter().map(org_concept_line).collect();
    let role = who.role();
    Ok(render(&AccountPage {
        org_concepts,
        devices,
        new_code,
        public_url: state
            .settings
            .server
            .public_url
            .as_str()
            .trim_end_matches('/')
            .to_string(),
        org_slug: who.org.slug.to_string(),
        org_name: who.org.name.clone(),
        name: who.user.greeting_name().to_string(),
        user_name: who.user.user_name.clone(),
        email: who.user.email().unwrap_or("none").to_string(),
        role: match role {
            Role::Admin => "Administrator",
            Role::Viewer => "Viewer (the organisation dashboard)",
            Role::Member => "Member",
        }
        .into(),
        sees_dashboard: role.sees_dashboard(),
        groups: who.user.groups.clone(),
        is_admin: role == Role::Admin,
        csrf: who.session.csrf.clone(),
        sessions: lines,
    }))
}

/// Checks the form's CSRF token, then runs `f` on a blocking thread with
/// the person's org database, their session, the audit context and now.
pub(super) async fn act<T: Send + 'static>(
    state: &AppState,
    headers: &HeaderMap,
    me: &SignedInUser,
    csrf: &str,
    f: impl FnOnce(&OrgDb, &SignedIn, &Context, DateTime<Utc>) -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    check_csrf(state, headers, &me.who, csrf)?;
    let (st, who, ctx) = (state.clone(), me.who.clone(), me.audit.clone());
    let now = state.clock.now();
    tokio::task::spawn_blocking(move || f(st.store.org(who.org.slug.as_str())?, &who, &ctx, now))
        .await
        .map_err(PageError::internal)?
}

fn signed_out(me: &SignedInUser) -> Response {
    redirect_with_cookie(
        &format!("/o/{}/login?signed_out=1", me.who.org.slug),
        clear_cookie(),
    )
}

pub async fn post_logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    me: SignedInUser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    act(&state, &headers, &me, &form.csrf, |org, who, ctx, now| {
        Ok(crate::sessions::end(org, &who.session, ctx, now)?)
    })
    .await?;
    Ok(signed_out(&me))
}

pub async fn post_logout_everywhere(
    State(state): State<AppState>,
    headers: HeaderMap,
    me: SignedInUser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    act(&state, &headers, &me, &form.csrf, |org, who, ctx, now| {
        Ok(crate::sessions::end_all(org, &who.user.id, ctx, now)?)
    })
    .await?;
    Ok(signed_out(&me))
}

pub async fn post_revoke_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(handle): Path<String>,
    me: SignedInUser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    act(
        &state,
        &headers,
        &me,
        &form.csrf,
        move |org, who, ctx, now| {
            Ok(crate::sessions::end_by_handle(
                org,
                &who.user.id,
                &handle,
                ctx,
                now,
            )?)
        },
    )
    .await?;
    Ok(Redirect::to("/account").into_response())
}

pub async fn post_pairing_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    me: SignedInUser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    let (code, expires) = act(&state, &headers, &me, &form.csrf, |org, who, ctx, now| {
        crate::devices::create_pairing_code(org, &who.user.id, ctx, now)
            .map_err(PageError::internal)
    })
    .await?;
    let shown = (
        code.expose().to_string(),
        expires.format("%Y-%m-%d %H:%M UTC").to_string(),
    );
    account_page(&state, me, Some(shown)).await
}

pub async fn post_revoke_device(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    me: SignedInUser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    revoke_own_device(&state, &headers, &me, id, &form.csrf).await?;
    Ok(Redirect::to("/account#devices").into_response())
}

/// Revokes one of the signed-in person's own devices (the account page's
/// and `/me`'s form); another person's device is not found.
pub(super) async fn revoke_own_device(
    state: &AppState,
    headers: &HeaderMap,
    me: &SignedInUser,
    id: String,
    csrf: &str,
) -> Result<(), PageError> {
    act(state, headers, me, csrf, move |org, who, ctx, now| {
        crate::devices::revoke(org, &who.user.id, &id, ctx, now).map_err(|_| PageError::NotFound)
    })
    .await
}
