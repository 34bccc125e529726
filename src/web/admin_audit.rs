//! The audit log page and its export (admins only). Thin: the filters,
//! paging and export are `crate::audit::log`'s.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::PageError;
use super::extract::{AdminSession, AdminViewer, check_csrf};
use super::pages::render;
use crate::audit::log::{self, Filter, Format, LogError, RawFilter};
use crate::http::AppState;

/// One row as the page shows it.
pub struct AuditLine {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub actor_name: Option<String>,
    pub action: String,
    pub target: String,
    pub target_name: Option<String>,
    pub ip: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
pub struct AuditPage {
    pub org_slug: String,
    pub org_name: String,
    pub csrf: String,
    pub raw: RawFilter,
    pub error: Option<String>,
    pub rows: Vec<AuditLine>,
    pub paged: bool,
    pub first_url: String,
    pub next_url: Option<String>,
    pub retention_days: u32,
    pub max_export: usize,
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(flatten)]
    filter: RawFilter,
    #[serde(default)]
    before: String,
}

fn query_string(raw: &RawFilter, before: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("actor", &raw.actor),
        ("action", &raw.action),
        ("target", &raw.target),
        ("from", &raw.from),
        ("to", &raw.to),
    ] {
        if !v.trim().is_empty() {
            q.append_pair(k, v.trim());
        }
    }
    if let Some(b) = before {
        q.append_pair("before", b);
    }
    q.finish()
}

pub async fn get_audit(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Query(q): Query<AuditQuery>,
    admin: AdminViewer,
) -> Result<Response, PageError> {
    let who = &admin.who;
    let parsed = Filter::parse(&q.filter).and_then(|f| {
        let before = match q.before.trim() {
            "" => None,
            b => Some(log::parse_cursor(b)?),
        };
        Ok((f, before))
    });
    let base = format!("/o/{org}/admin/audit");
    let mut page = AuditPage {
        org_slug: who.org.slug.to_string(),
        org_name: who.org.name.clone(),
        csrf: who.session.csrf.clone(),
        raw: q.filter.clone(),
        error: None,
        rows: vec![],
        paged: !q.before.trim().is_empty(),
        first_url: format!("{base}?{}", query_string(&q.filter, None)),
        next_url: None,
        retention_days: state.settings.audit.retention_days,
        max_export: log::MAX_EXPORT_ROWS,
    };
    let (filter, before) = match parsed {
        Ok(p) => p,
        Err(LogError::Invalid(why)) => {
            page.error = Some(format!("The filter was not applied: {why}."));
            let mut res = render(&page);
            *res.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(res);
        }
        Err(e) => return Err(PageError::internal(e)),
    };
    let st = state.clone();
    let result =
        tokio::task::spawn_blocking(move || log::page(st.store.org(&org)?, &filter, before))
            .await
            .map_err(PageError::internal)?
            .map_err(log_error)?;
    page.next_url = result
        .next
        .as_deref()
        .map(|n| format!("{base}?{}", query_string(&q.filter, Some(n))));
    page.rows = result
        .rows
        .into_iter()
        .map(|r| AuditLine {
            id: r.id,
            at: r.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            actor_name: result.names.get(&r.actor).cloned(),
            target_name: r.target.as_ref().and_then(|t| result.names.get(t).cloned()),
            actor: r.actor,
            action: r.action,
            target: r.target.unwrap_or_default(),
            ip: r.ip.unwrap_or_default(),
            details: r.details.to_string(),
        })
        .collect();
    Ok(render(&page))
}

fn log_error(e: LogError) -> PageError {
    match e {
        LogError::Invalid(why) => PageError::BadRequest(format!("The export was not made: {why}.")),
        LogError::TooMany => PageError::BadRequest(format!("The export was not made: {e}.")),
        LogError::Store(s) => s.into(),
    }
}

#[derive(Debug, Deserialize)]
pub struct ExportForm {
    csrf: String,
    format: String,
    #[serde(flatten)]
    filter: RawFilter,
}

/// The filtered log as a CSV or JSON Lines attachment (`no-store`),
/// audited as `audit.export`. Needs a recent sign-in and the form's CSRF
/// token, like every admin action.
pub async fn post_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(org): Path<String>,
    admin: AdminSession,
    Form(form): Form<ExportForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, &admin.who, &form.csrf)?;
    let format = Format::parse(&form.format).map_err(log_error)?;
    let filter = Filter::parse(&form.filter).map_err(log_error)?;
    let st = state.clone();
    let now = state.clock.now();
    let ctx = admin.ctx.audit().clone();
    let export = tokio::task::spawn_blocking(move || {
        log::export(st.store.org(&org)?, &ctx, &filter, format, now)
    })
    .await
    .map_err(PageError::internal)?
    .map_err(log_error)?;
    let disposition = format!("attachment; filename=\"{}\"", export.file_name);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).map_err(PageError::internal)?,
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        export.body,
    )
        .into_response())
}
