//! The JSON API of devices and sync under `/api/v1`. Handlers are thin:
//! extract, call one domain function, map the result.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::PushError;
use super::wire::{self, MAX_BODY};
use crate::catalogue::{KnownIds, OrgConcepts};
use crate::devices::{self, DeviceError};
use crate::error::AppError;
use crate::http::extract::{ApiCaller, Meta, session_layer};
use crate::http::ratelimit::{Caller, RouteClass, admit_caller, admit_refold, enforce};
use crate::http::{AppState, blocking};

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = |class| from_fn_with_state((state.clone(), class), enforce);
    let sync = Router::new()
        .route("/api/v1/sync/deltas", post(post_deltas).get(get_deltas))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .route_layer(limited(RouteClass::Sync));
    let pairing = Router::new()
        .route("/api/v1/devices/pair", post(post_pair))
        .route("/api/v1/me/pairing-codes", post(post_pairing_code))
        .route_layer(limited(RouteClass::Pairing));
    let refresh = Router::new()
        .route("/api/v1/devices/token", post(post_token))
        .route_layer(limited(RouteClass::Refresh));
    let general = Router::new()
        .route("/api/v1/concepts", get(get_concepts))
        .route("/api/v1/me/devices", get(get_devices))
        .route(
            "/api/v1/me/devices/{id}",
            delete(delete_device).patch(patch_device),
        )
        .route_layer(limited(RouteClass::General));
    sync.merge(pairing)
        .merge(refresh)
        .merge(general)
        .route_layer(from_fn_with_state(state.clone(), session_layer))
}

impl From<DeviceError> for AppError {
    fn from(e: DeviceError) -> Self {
        match e {
            DeviceError::Store(s) => s.into(),
            DeviceError::Invalid(m) => AppError::BadRequest(m),
            DeviceError::NotFound => AppError::Missing(DeviceError::NotFound.to_string()),
            other => AppError::Unauthorized(other.to_string()),
        }
    }
}

async fn post_deltas(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let who = Caller::of_api(&caller);
    admit_caller(&state, RouteClass::Sync, &who)?;
    // A device whose out-of-order facts made the server fold too much
    // again waits for its own budget (docs/skill-graph.md).
    admit_refold(&state, &who)?;
    let now = state.clock.now();
    let st = state.clone();
    let pushed = blocking(move || {
        let org = st.store.org(&caller.org)?;
        let known = KnownIds::load(&st.catalogue, org)?;
        let deltas = wire::parse_push(&body, &known, now).map_err(schema)?;
        super::push(
            org,
            &caller.user_id,
            caller.device_id.as_deref(),
            &deltas,
            now,
        )
        .map_err(|e| match e {
            PushError::Retired(w) => schema(w),
            PushError::Store(s) => s.into(),
        })
    })
    .await?;
    state
        .limits
        .charge_refold(&who, u64::try_from(pushed.refolded).unwrap_or(u64::MAX));
    Ok(Json(json!(pushed)))
}

fn schema(e: wire::WireError) -> AppError {
    AppError::Schema {
        pointer: e.pointer,
        message: e.message,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PullQuery {
    since: Option<i64>,
    limit: Option<u32>,
}

async fn get_deltas(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<PullQuery>,
) -> Result<Json<Value>, AppError> {
    admit_caller(&state, RouteClass::Sync, &Caller::of_api(&caller))?;
    let since = q.since.unwrap_or(0);
    if since < 0 {
        return Err(AppError::BadRequest(
            "since must be 0 or a cursor returned by a previous pull".into(),
        ));
    }
    let limit = q.limit.unwrap_or(1000).clamp(1, 5000);
    let st = state.clone();
    let pulled = blocking(move || {
        Ok(super::pull(
            st.store.org(&caller.org)?,
            &caller.user_id,
            since,
            limit,
        )?)
    })
    .await?;
    Ok(Json(json!(pulled)))
}

/// The shipped catalogue and the caller's org's own concepts (never
/// another org's).
async fn get_concepts(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, AppError> {
    let st = state.clone();
    blocking(move || {
        let org = st.store.org(&caller.org)?;
        Ok(Json(OrgConcepts::load(&st.catalogue, org)?.listing()))
    })
    .await
}

async fn post_pairing_code(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, AppError> {
    if caller.device_id.is_some() {
        return Err(AppError::Forbidden(
            "pairing codes are created by a signed-in person, not by a device".into(),
        ));
    }
    let now = state.clock.now();
    let st = state.clone();
    let (code, expires) = blocking(move || {
        let org = st.store.org(&caller.org)?;
        Ok(devices::create_pairing_code(
            org,
            &caller.user_id,
            &caller.audit,
            now,
        )?)
    })
    .await?;
    Ok(Json(
        json!({ "code": code.expose(), "expires_at": expires }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PairBody {
    code: String,
    device_name: String,
}

async fn post_pair(
    State(state): State<AppState>,
    Meta(meta): Meta,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let b: PairBody = serde_json::from_slice(&body).map_err(|e| {
        AppError::BadRequest(format!(
            "expected {{\"code\": ..., \"device_name\": ...}}: {e}"
        ))
    })?;
    let now = state.clock.now();
    let st = state.clone();
    let grant =
        blocking(move || Ok(devices::pair(&st.store, &b.code, &b.device_name, &meta, now)?.1))
            .await?;
    Ok(Json(json!(grant)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    refresh_token: String,
}

async fn post_token(
    State(state): State<AppState>,
    Meta(meta): Meta,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let b: TokenBody = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("expected {{\"refresh_token\": ...}}: {e}")))?;
    let now = state.clock.now();
    let st = state.clone();
    let grant = blocking(move || {
        // The device's own budget, once the token says which device it is.
        if let Some((org, id)) = devices::device_of(&st.store, &b.refresh_token)? {
            admit_caller(&st, RouteClass::Refresh, &Caller::Device { org, id })?;
        }
        Ok(devices::refresh(&st.store, &b.refresh_token, &meta, now)?)
    })
    .await?;
    Ok(Json(json!(grant)))
}

async fn get_devices(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, AppError> {
    let st = state.clone();
    let list =
        blocking(move || Ok(devices::list(st.store.org(&caller.org)?, &caller.user_id)?)).await?;
    Ok(Json(json!({ "devices": list })))
}

async fn delete_device(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let now = state.clock.now();
    let st = state.clone();
    blocking(move || {
        Ok(devices::revoke(
            st.store.org(&caller.org)?,
            &caller.user_id,
            &id,
            &caller.audit,
            now,
        )?)
    })
    .await?;
    Ok(Json(json!({ "revoked": true })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

/// `PATCH /api/v1/me/devices/{id}` `{"name": "..."}`: renames one of the
/// caller's own devices.
async fn patch_device(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let b: Rename = serde_json::from_slice(&body).map_err(|e| {
        AppError::BadRequest(format!(
            "expected {{\"name\": \"...\"}}, the device's new name: {e}"
        ))
    })?;
    let now = state.clock.now();
    let st = state.clone();
    let device = blocking(move || {
        Ok(devices::rename(
            st.store.org(&caller.org)?,
            &caller.user_id,
            &id,
            &b.name,
            &caller.audit,
            now,
        )?)
    })
    .await?;
    Ok(Json(json!({ "device": device })))
}
