//! Operations endpoints: `/healthz` (the process answers), `/readyz` (every
//! database open and migrated) and `/metrics` (Prometheus text format, for
//! allowed networks and, when configured, a bearer token).

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AppState;
use super::forwarded::ClientInfo;
use super::ratelimit::{RouteClass, enforce};
use crate::error::AppError;

pub fn router(state: &AppState) -> Router<AppState> {
    let general = (state.clone(), RouteClass::General);
    Router::new()
        .route("/healthz", get(get_health))
        .route("/readyz", get(get_ready))
        .route("/metrics", get(get_metrics))
        .route_layer(from_fn_with_state(general, enforce))
}

async fn get_health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn get_ready(State(state): State<AppState>) -> Result<Response, AppError> {
    let store = state.store.clone();
    let statuses = tokio::task::spawn_blocking(move || store.status())
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let ready = statuses.iter().all(crate::store::DbStatus::ok);
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "databases": statuses.iter().map(|s| json!({
            "name": s.name,
            "schema_version": s.version,
            "expected_version": s.expected,
            "ok": s.ok(),
        })).collect::<Vec<_>>(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(body)).into_response())
}

/// Whether the request may read metrics: from an allowed network, and with
/// the bearer token when one is configured.
fn may_scrape(state: &AppState, req: &Request) -> Result<(), AppError> {
    let m = &state.settings.metrics;
    let ip = req.extensions().get::<ClientInfo>().map(|c| c.ip);
    if !ip.is_some_and(|ip| m.allow_from.iter().any(|n| n.contains(&ip))) {
        return Err(AppError::Forbidden(
            "metrics are not served to this address; add its network to metrics.allow_from".into(),
        ));
    }
    if let Some(token) = &m.token {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok: bool = presented.as_bytes().ct_eq(token.expose().as_bytes()).into();
        if !ok {
            return Err(AppError::Unauthorized(
                "send the metrics token as `Authorization: Bearer <token>`".into(),
            ));
        }
    }
    Ok(())
}

async fn get_metrics(State(state): State<AppState>, req: Request) -> Result<Response, AppError> {
    may_scrape(&state, &req)?;
    let s = state.clone();
    let text = tokio::task::spawn_blocking(move || s.metrics.render(&s.store))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let mut res = text.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(res)
}
