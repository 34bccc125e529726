//! Org administration: members and roles, and the SCIM tokens the identity
//! provider uses. Viewing needs the admin role; every change needs a fresh
//! sign-in (`AdminSession`) and is audited.

use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::PageError;
use super::extract::{AdminSession, AdminViewer, check_csrf};
use super::pages::{AdminPage, MemberLine, TokenLine, render};
use crate::http::AppState;
use crate::tokens::{self, TokenError, TokenInfo, TokenKind};
use crate::users::{self, Role};

#[derive(Debug, Deserialize)]
pub struct AdminQuery {
    done: Option<String>,
}

pub async fn get_admin(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    Query(q): Query<AdminQuery>,
    me: AdminViewer,
) -> Result<Response, PageError> {
    let notice = q.done.map(|d| {
        match d.as_str() {
            "granted" => "Admin role granted.",
            "revoked" => "Admin role revoked.",
            "viewer-granted" => "Viewer role granted: they now see the organisation dashboard.",
            "viewer-revoked" => "Viewer role revoked.",
            "token-revoked" => "SCIM token revoked; the identity provider can no longer use it.",
            "welcome" => "Welcome: you are this installation's first administrator. The setup checklist below shows what is left.",
            _ => "Sessions ended.",
        }
        .to_string()
    });
    admin_page(&state, &me, notice, None).await
}

/// The administration page, with a token just created shown once.
async fn admin_page(
    state: &AppState,
    admin: &AdminViewer,
    notice: Option<String>,
    new_token: Option<(String, String)>,
) -> Result<Response, PageError> {
    let who = &admin.who;
    let st = state.clone();
    let slug = who.org.slug.to_string();
    let now = state.clock.now();
    let org_settings = who.org.clone();
    let (members, more, held, facts) = tokio::task::spawn_blocking(move || {
        let org = st.store.org(&slug)?;
        // The first page of the directory; the members page searches and
        // pages the rest (an org may hold 100,000 people).
        let page =
            users::directory::search(org, &org_settings, &users::directory::Query::default())?;
        let (members, more) = (page.members, page.next.is_some());
        let held = tokens::list(org)?;
        let facts = crate::setup::checklist::facts(&st.settings, org, now)?;
        Ok::<_, PageError>((members, more, held, facts))
    })
    .await
    .map_err(PageError::internal)??;
    let names: std::collections::HashMap<String, String> = members
        .iter()
        .map(|u| (format!("user:{}", u.id), u.user_name.clone()))
        .collect();
    let lines = members
        .into_iter()
        .map(|u| {
            let role = u.role(&who.org);
            MemberLine {
                via_group: role == Role::Admin && !u.admin_granted,
                granted: u.admin_granted,
                viewer_granted: u.viewer_granted,
                viewer_via_group: role == Role::Viewer && !u.viewer_granted,
                role: role.as_str().into(),
                id: u.id,
                user_name: u.user_name,
                display_name: u.display_name,
                active: u.active,
            }
        })
        .collect();
    let scim_tokens = held
        .into_iter()
        .filter(|t| t.kind == TokenKind::Scim)
        .map(|mut t| {
            if let Some(name) = names.get(&t.created_by) {
                t.created_by.clone_from(name);
            }
            token_line(t, now)
        })
        .collect();
    let base = state
        .settings
        .server
        .public_url
        .as_str()
        .trim_end_matches('/');
    Ok(render(&AdminPage {
        org_slug: who.org.slug.to_string(),
        org_name: who.org.name.clone(),
        admin_groups: who.org.admin_groups.clone(),
        viewer_groups: who.org.viewer_groups.clone(),
        members: lines,
        more_members: more,
        scim_tokens,
        new_token,
        scim_url: format!("{base}/scim/v2"),
        token_expiry_days: state.settings.scim_token_expiry.num_days(),
        csrf: who.session.csrf.clone(),
        notice,
        checklist: crate::setup::checklist::items(&state.settings, &who.org, Some(&facts)),
        can_test_sign_in: who.org.oidc.is_some(),
    }))
}

fn token_line(t: TokenInfo, now: chrono::DateTime<chrono::Utc>) -> TokenLine {
    let day = |d: chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%d %H:%M UTC").to_string();
    let state = match (t.revoked_at, t.expires_at) {
        (Some(r), _) => format!("revoked {}", day(r)),
        (None, Some(e)) if e <= now => format!("expired {}", day(e)),
        (None, Some(e)) => format!("active until {}", day(e)),
        (None, None) => "active".into(),
    };
    TokenLine {
        live: t.is_live(now),
        id: t.id.to_string(),
        name: t.name,
        created: day(t.created_at),
        created_by: t.created_by,
        expires: t.expires_at.map_or_else(|| "never".into(), day),
        last_used: t.last_used_at.map_or_else(|| "never".into(), day),
        state,
    }
}

#[derive(Debug, Deserialize)]
pub struct NewTokenForm {
    csrf: String,
    name: String,
}

/// Creates a SCIM token and shows its secret once, on the page itself
/// (never in a URL). A bad name is a 400 page that says what to change.
pub async fn post_scim_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(org): Path<String>,
    admin: AdminSession,
    Form(form): Form<NewTokenForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, &admin.who, &form.csrf)?;
    let st = state.clone();
    let now = state.clock.now();
    let name = form.name.trim().to_string();
    let ctx = admin.ctx.clone();
    let (info, secret) = tokio::task::spawn_blocking(move || {
        let expires = now + st.settings.scim_token_expiry;
        tokens::create(
            st.store.org(&org)?,
            TokenKind::Scim,
            &name,
            Some(expires),
            &ctx,
            now,
        )
        .map_err(token_error)
    })
    .await
    .map_err(PageError::internal)??;
    let notice = format!("SCIM token {} created.", info.name);
    admin_page(
        &state,
        &admin.viewer(),
        Some(notice),
        Some((info.name, secret.expose().to_string())),
    )
    .await
}

pub async fn post_revoke_scim_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, id)): Path<(String, String)>,
    admin: AdminSession,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, &admin.who, &form.csrf)?;
    let st = state.clone();
    let now = state.clock.now();
    let slug = org.clone();
    let ctx = admin.ctx.clone();
    tokio::task::spawn_blocking(move || {
        let db = st.store.org(&slug)?;
        // Only SCIM tokens are managed here.
        let held = tokens::list(db).map_err(token_error)?;
        if !held
            .iter()
            .any(|t| t.kind == TokenKind::Scim && t.id.to_string() == id)
        {
            return Err(PageError::NotFound);
        }
        tokens::revoke(db, &id, &ctx, now).map_err(token_error)
    })
    .await
    .map_err(PageError::internal)??;
    Ok(Redirect::to(&format!("/o/{org}/admin?done=token-revoked#scim")).into_response())
}

fn token_error(e: TokenError) -> PageError {
    match e {
        TokenError::Invalid(why) => {
            PageError::BadRequest(format!("The token was not created: {why}."))
        }
        TokenError::NotFound(_) => PageError::NotFound,
        other => PageError::internal(other),
    }
}

#[derive(Debug, Deserialize)]
pub struct SetAdminForm {
    csrf: String,
    grant: String,
}

pub async fn post_set_admin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, id)): Path<(String, String)>,
    admin: AdminSession,
    Form(form): Form<SetAdminForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, &admin.who, &form.csrf)?;
    let grant = form.grant == "1";
    let st = state.clone();
    let now = state.clock.now();
    let slug = org.clone();
    let settings = admin.who.org.clone();
    tokio::task::spawn_blocking(move || {
        let db = st.store.org(&slug)?;
        users::set_admin(db, &admin.ctx, &id, grant, now)?;
        // A demoted admin's SCIM tokens go with the role.
        tokens::revoke_for_lost_admins(db, &settings, admin.ctx.audit(), now)
            .map(|_| ())
            .map_err(PageError::internal)
    })
    .await
    .map_err(PageError::internal)??;
    let done = if grant { "granted" } else { "revoked" };
    Ok(Redirect::to(&format!("/o/{org}/admin?done={done}")).into_response())
}

/// Grants or revokes the directly granted viewer role (the org
/// dashboard, nothing to administer). Needs a fresh admin sign-in; audited.
pub async fn post_set_viewer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, id)): Path<(String, String)>,
    admin: AdminSession,
    Form(form): Form<SetAdminForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, &admin.who, &form.csrf)?;
    let grant = form.grant == "1";
    let st = state.clone();
    let now = state.clock.now();
    let slug = org.clone();
    tokio::task::spawn_blocking(move || {
        users::set_viewer(st.store.org(&slug)?, &admin.ctx, &id, grant, now).map(|_| ())
    })
    .await
    .map_err(PageError::internal)??;
    let done = if grant {
        "viewer-granted"
    } else {
        "viewer-revoked"
    };
    Ok(Redirect::to(&format!("/o/{org}/admin?done={done}")).into_response())
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn post_revoke_sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, id)): Path<(String, String)>,
    admin: AdminSession,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, &admin.who, &form.csrf)?;
    let st = state.clone();
    let now = state.clock.now();
    let slug = org.clone();
    tokio::task::spawn_blocking(move || {
        users::revoke_sessions(st.store.org(&slug)?, &admin.ctx, &id, now).map(|_| ())
    })
    .await
    .map_err(PageError::internal)??;
    Ok(Redirect::to(&format!("/o/{org}/admin?done=sessions")).into_response())
}
