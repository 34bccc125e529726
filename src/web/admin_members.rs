//! The members directory and one member's page (admins only). Thin: the
//! search, the member's view and the actions are `crate::users::directory`'s
//! and `crate::devices::revoke_as_admin`.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::PageError;
use super::account::CsrfOnly;
use super::extract::{AdminSession, AdminViewer, check_csrf};
use super::pages::{DeviceLine, SessionLine, render};
use crate::http::AppState;
use crate::users::directory::{self, RawQuery};
use crate::users::{Role, User, UserError};

/// One member in the directory.
pub struct DirectoryLine {
    pub id: String,
    pub user_name: String,
    pub display_name: String,
    pub email: String,
    pub role: String,
    pub via_group: bool,
    pub active: bool,
    pub groups: String,
}

#[derive(Template)]
#[template(path = "admin_members.html")]
pub struct MembersPage {
    pub org_slug: String,
    pub org_name: String,
    pub csrf: String,
    pub raw: RawQuery,
    pub error: Option<String>,
    pub roles: Vec<(&'static str, &'static str)>,
    pub statuses: Vec<(&'static str, &'static str)>,
    pub groups: Vec<(String, bool)>,
    pub members: Vec<DirectoryLine>,
    pub paged: bool,
    pub first_url: String,
    pub next_url: Option<String>,
}

fn query_string(raw: &RawQuery, after: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("q", &raw.q),
        ("role", &raw.role),
        ("status", &raw.status),
        ("group", &raw.group),
    ] {
        if !v.trim().is_empty() {
            q.append_pair(k, v.trim());
        }
    }
    if let Some(a) = after {
        q.append_pair("after", a);
    }
    q.finish()
}

fn line(u: User, org: &crate::config::OrgSettings) -> DirectoryLine {
    let role = u.role(org);
    DirectoryLine {
        via_group: (role == Role::Admin && !u.admin_granted)
            || (role == Role::Viewer && !u.viewer_granted),
        role: role.as_str().into(),
        email: u.email().unwrap_or_default().to_string(),
        groups: u.groups.join(", "),
        id: u.id,
        user_name: u.user_name,
        display_name: u.display_name,
        active: u.active,
    }
}

pub async fn get_members(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Query(raw): Query<RawQuery>,
    admin: AdminViewer,
) -> Result<Response, PageError> {
    let who = &admin.who;
    let base = format!("/o/{org}/admin/members");
    let parsed = directory::Query::parse(&raw);
    let st = state.clone();
    let settings = who.org.clone();
    let slug = org.clone();
    let (groups, result) = tokio::task::spawn_blocking(move || {
        let db = st.store.org(&slug)?;
        let groups = crate::users::teams(db)?;
        let result = parsed.and_then(|q| directory::search(db, &settings, &q));
        Ok::<_, PageError>((groups, result))
    })
    .await
    .map_err(PageError::internal)??;
    let mut page = MembersPage {
        org_slug: who.org.slug.to_string(),
        org_name: who.org.name.clone(),
        csrf: who.session.csrf.clone(),
        error: None,
        roles: vec![
            ("", "Any role"),
            ("admin", "Admin"),
            ("viewer", "Viewer"),
            ("member", "Member"),
        ],
        statuses: vec![
            ("", "Any status"),
            ("active", "Active"),
            ("deactivated", "Deactivated"),
        ],
        groups: groups
            .into_iter()
            .map(|g| {
                let selected = g.eq_ignore_ascii_case(raw.group.trim());
                (g, selected)
            })
            .collect(),
        members: vec![],
        paged: !raw.after.trim().is_empty(),
        first_url: format!("{base}?{}", query_string(&raw, None)),
        next_url: None,
        raw: raw.clone(),
    };
    match result {
        Ok(found) => {
            page.next_url = found
                .next
                .as_deref()
                .map(|n| format!("{base}?{}", query_string(&raw, Some(n))));
            page.members = found
                .members
                .into_iter()
                .map(|u| line(u, &who.org))
                .collect();
            Ok(render(&page))
        }
        Err(UserError::Invalid(why)) => {
            page.error = Some(format!("The search was not made: {why}."));
            let mut res = render(&page);
            *res.status_mut() = StatusCode::BAD_REQUEST;
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "admin_member.html")]
pub struct MemberPage {
    pub org_slug: String,
    pub org_name: String,
    pub csrf: String,
    pub notice: Option<String>,
    pub id: String,
    pub user_name: String,
    pub display_name: String,
    pub email: String,
    pub role: String,
    pub active: bool,
    pub groups: String,
    pub provisioned_by: String,
    pub created: String,
    pub sessions: Vec<SessionLine>,
    pub devices: Vec<DeviceLine>,
}

#[derive(Debug, Deserialize)]
pub struct MemberQuery {
    done: Option<String>,
}

pub async fn get_member(
    State(state): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    Query(q): Query<MemberQuery>,
    admin: AdminViewer,
) -> Result<Response, PageError> {
    let who = &admin.who;
    let st = state.clone();
    let view = tokio::task::spawn_blocking(move || {
        directory::member(st.store.org(&org)?, &id).map_err(PageError::from)
    })
    .await
    .map_err(PageError::internal)??;
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let u = view.user;
    let notice = q.done.as_deref().map(|d| {
        match d {
            "device" => "Device revoked: it can no longer sync.",
            _ => "Session ended: that browser is signed out.",
        }
        .to_string()
    });
    Ok(render(&MemberPage {
        org_slug: who.org.slug.to_string(),
        org_name: who.org.name.clone(),
        csrf: who.session.csrf.clone(),
        notice,
        role: u.role(&who.org).as_str().into(),
        email: u.email().unwrap_or("none").to_string(),
        groups: if u.groups.is_empty() {
            "none".into()
        } else {
            u.groups.join(", ")
        },
        provisioned_by: u.provisioned_by.clone(),
        created: fmt(u.created_at),
        active: u.active,
        id: u.id,
        user_name: u.user_name,
        display_name: u.display_name,
        sessions: view
            .sessions
            .iter()
            .map(|s| SessionLine {
                handle: s.handle(),
                created: fmt(s.created_at),
                last_seen: fmt(s.last_seen_at),
                ip: s.ip.clone().unwrap_or_default(),
                user_agent: s.user_agent.clone().unwrap_or_default(),
                current: false,
            })
            .collect(),
        devices: view
            .devices
            .into_iter()
            .map(|d| DeviceLine {
                active: d.revoked_at.is_none(),
                state: match d.revoked_at {
                    Some(t) => format!("revoked {}", fmt(t)),
                    None => "active".into(),
                },
                created: fmt(d.created_at),
                last_seen: d.last_seen_at.map_or_else(|| "never".into(), fmt),
                id: d.id,
                name: d.name,
            })
            .collect(),
    }))
}

/// Ends one session of the member. Needs a recent sign-in and the form's
/// CSRF token; audited (`session.end`, `by: admin`).
pub async fn post_end_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, id, handle)): Path<(String, String, String)>,
    admin: AdminSession,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, &admin.who, &form.csrf)?;
    let st = state.clone();
    let now = state.clock.now();
    let (slug, uid) = (org.clone(), id.clone());
    tokio::task::spawn_blocking(move || {
        directory::end_session(st.store.org(&slug)?, &admin.ctx, &uid, &handle, now)
            .map_err(PageError::from)
    })
    .await
    .map_err(PageError::internal)??;
    Ok(Redirect::to(&format!("/o/{org}/admin/members/{id}?done=session")).into_response())
}

/// Revokes one device of the member. Needs a recent sign-in and the
/// form's CSRF token; audited (`device.revoke`, `by: admin`).
pub async fn post_revoke_device(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, id, device)): Path<(String, String, String)>,
    admin: AdminSession,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, &admin.who, &form.csrf)?;
    let st = state.clone();
    let now = state.clock.now();
    let (slug, uid) = (org.clone(), id.clone());
    tokio::task::spawn_blocking(move || {
        crate::devices::revoke_as_admin(st.store.org(&slug)?, &admin.ctx, &uid, &device, now)
            .map_err(PageError::from)
    })
    .await
    .map_err(PageError::internal)??;
    Ok(Redirect::to(&format!("/o/{org}/admin/members/{id}?done=device")).into_response())
}
