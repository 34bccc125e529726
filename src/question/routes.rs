//! The question service's JSON API. `/api/v1/checks/*` is for paired
//! devices only (their bearer access token; a browser session is
//! refused), charged to each device's `rate_limits.checks` budget.
//! `/api/v1/org/checks/generated*` is the admin's view of the checks the
//! model wrote: reading takes an administrator's session, retiring and
//! restoring also a fresh sign-in and the CSRF token, and is audited.
//! Handlers are thin: extract, call one function of [`super::service`],
//! map the result. A graded answer passes through here to the service and
//! is dropped: it is never logged (request bodies are not) nor stored.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::service::{self, GradeRequest, ServiceError};
use crate::error::AppError;
use crate::http::extract::{ApiAdmin, ApiAdminAction, ApiCaller, CSRF_HEADER, session_layer};
use crate::http::ratelimit::{Caller, RouteClass, admit_caller, enforce};
use crate::http::{AppState, blocking};

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = |class| from_fn_with_state((state.clone(), class), enforce);
    let devices = Router::new()
        .route("/api/v1/checks/next", get(get_next))
        .route("/api/v1/checks/grade", post(post_grade))
        .route_layer(limited(RouteClass::Checks));
    let admin = Router::new()
        .route("/api/v1/org/checks/generated", get(get_generated))
        .route(
            "/api/v1/org/checks/generated/{id}/retire",
            post(post_retire),
        )
        .route(
            "/api/v1/org/checks/generated/{id}/restore",
            post(post_restore),
        )
        .route_layer(limited(RouteClass::General));
    devices
        .merge(admin)
        .route_layer(from_fn_with_state(state.clone(), session_layer))
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::UnknownConcept(_)
            | ServiceError::UnknownCheck(_)
            | ServiceError::NoCheck(_) => AppError::Missing(e.to_string()),
            ServiceError::RetiredConcept(_) | ServiceError::Invalid(_) => {
                AppError::BadRequest(e.to_string())
            }
            ServiceError::NoModel | ServiceError::Model(_) => AppError::Unavailable(e.to_string()),
            ServiceError::Conflict(m) => AppError::Conflict(m),
            ServiceError::Store(s) => s.into(),
            ServiceError::Worker(m) => AppError::Internal(anyhow::anyhow!(m)),
        }
    }
}

/// A paired device of the caller's org: the question service is the
/// kernel's, not the browser's.
fn device(state: &AppState, caller: &ApiCaller) -> Result<(), AppError> {
    if caller.device_id.is_none() {
        return Err(AppError::Forbidden(
            "the question service is for paired devices: send the device's access token as `Authorization: Bearer ...` (aiworklab agent pair)".into(),
        ));
    }
    admit_caller(state, RouteClass::Checks, &Caller::of_api(caller))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NextQuery {
    concept: String,
}

/// One check about `concept`: the bank's, or one the model wrote.
async fn get_next(
    State(state): State<AppState>,
    caller: ApiCaller,
    query: Result<Query<NextQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, AppError> {
    device(&state, &caller)?;
    let Query(q) = query.map_err(|_| {
        AppError::BadRequest("give the concept's slug: GET /api/v1/checks/next?concept=SLUG".into())
    })?;
    let served = state
        .checks()
        .next(&caller.org, &q.concept, state.clock.now())
        .await?;
    Ok(Json(served.to_json()))
}

/// Grades `{"check_id", "choice"}` or `{"check_id", "answer"}`. The
/// answer is neither stored nor logged.
async fn post_grade(
    State(state): State<AppState>,
    caller: ApiCaller,
    bytes: Bytes,
) -> Result<Json<service::Grade>, AppError> {
    device(&state, &caller)?;
    let req: GradeRequest = serde_json::from_slice(&bytes).map_err(|e| {
        AppError::BadRequest(format!(
            "the body must be {{\"check_id\", \"choice\"}} or {{\"check_id\", \"answer\"}} (line {} column {})",
            e.line(),
            e.column()
        ))
    })?;
    Ok(Json(state.checks().grade(&caller.org, req).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    concept: Option<String>,
}

/// The org's generated checks, retired ones included, newest first. The
/// response carries the session's CSRF token for retire and restore.
async fn get_generated(
    State(state): State<AppState>,
    admin: ApiAdmin,
    Query(q): Query<ListQuery>,
) -> Result<Response, AppError> {
    let st = state.clone();
    let org = admin.who.org.slug.to_string();
    let list = blocking(move || {
        Ok(service::list_generated(
            st.store.org(&org)?,
            q.concept.as_deref(),
        )?)
    })
    .await?;
    let mut res = Json(json!({ "checks": list })).into_response();
    if let Ok(v) = HeaderValue::from_str(&admin.who.session.csrf) {
        res.headers_mut().insert(CSRF_HEADER, v);
    }
    Ok(res)
}

async fn post_retire(
    State(state): State<AppState>,
    admin: ApiAdminAction,
    Path(id): Path<String>,
) -> Result<Json<service::GeneratedCheck>, AppError> {
    change(&state, admin, id, service::retire).await
}

async fn post_restore(
    State(state): State<AppState>,
    admin: ApiAdminAction,
    Path(id): Path<String>,
) -> Result<Json<service::GeneratedCheck>, AppError> {
    change(&state, admin, id, service::restore).await
}

/// Retires or restores one generated check (`service::retire` or
/// `service::restore`) in the admin's org.
async fn change(
    state: &AppState,
    admin: ApiAdminAction,
    id: String,
    f: fn(
        &crate::store::OrgDb,
        &crate::users::AdminCtx,
        &str,
        chrono::DateTime<chrono::Utc>,
    ) -> Result<service::GeneratedCheck, ServiceError>,
) -> Result<Json<service::GeneratedCheck>, AppError> {
    let now = state.clock.now();
    let st = state.clone();
    let org = admin.who.org.slug.to_string();
    let g = blocking(move || Ok(f(st.store.org(&org)?, &admin.ctx, &id, now)?)).await?;
    Ok(Json(g))
}
