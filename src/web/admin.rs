//! Org administration: members and roles. Viewing needs the admin role;
//! every change needs a fresh sign-in (`AdminSession`) and is audited.

use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::PageError;
use super::pages::{AdminPage, MemberLine, render};
use crate::http::AppState;
use crate::http::extract::{AdminSession, SignedInUser, check_csrf};
use crate::users::{self, Role};

#[derive(Debug, Deserialize)]
pub struct AdminQuery {
    done: Option<String>,
}

pub async fn get_admin(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    Query(q): Query<AdminQuery>,
    me: SignedInUser,
) -> Result<Response, PageError> {
    let who = me.who;
    if who.role() != Role::Admin {
        return Err(PageError::Forbidden(
            "This page is for administrators of the organisation.".into(),
        ));
    }
    let st = state.clone();
    let slug = who.org.slug.to_string();
    let members = tokio::task::spawn_blocking(move || users::list(st.store.org(&slug)?))
        .await
        .map_err(PageError::internal)??;
    let lines = members
        .into_iter()
        .map(|u| {
            let role = u.role(&who.org);
            MemberLine {
                via_group: role == Role::Admin && !u.admin_granted,
                granted: u.admin_granted,
                role: if role == Role::Admin {
                    "admin"
                } else {
                    "member"
                }
                .into(),
                id: u.id,
                user_name: u.user_name,
                display_name: u.display_name,
                active: u.active,
            }
        })
        .collect();
    Ok(render(&AdminPage {
        org_slug: who.org.slug.to_string(),
        org_name: who.org.name.clone(),
        admin_groups: who.org.admin_groups.clone(),
        members: lines,
        csrf: who.session.csrf.clone(),
        notice: q.done.map(|d| match d.as_str() {
            "granted" => "Admin role granted.".to_string(),
            "revoked" => "Admin role revoked.".to_string(),
            _ => "Sessions ended.".to_string(),
        }),
    }))
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
    tokio::task::spawn_blocking(move || {
        users::set_admin(st.store.org(&slug)?, &admin.ctx, &id, grant, now).map(|_| ())
    })
    .await
    .map_err(PageError::internal)??;
    let done = if grant { "granted" } else { "revoked" };
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
