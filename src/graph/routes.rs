//! The JSON API of an engineer's own data and of org aggregates.

use axum::extract::{Query, State};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::me;
use super::trend;
use crate::error::AppError;
use crate::http::extract::{ApiAdmin, ApiCaller, ApiChange, session_layer};
use crate::http::ratelimit::{Caller, RouteClass, admit_caller, enforce};
use crate::http::{AppState, blocking};
use crate::privacy;

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = |class| from_fn_with_state((state.clone(), class), enforce);
    let export = Router::new()
        .route("/api/v1/me/export", get(get_export))
        .route_layer(limited(RouteClass::Export));
    let general = Router::new()
        .route("/api/v1/me/graph", get(get_graph))
        .route("/api/v1/me/privacy", get(get_privacy))
        .route("/api/v1/me/opt-out", post(post_opt_out))
        .route(
            "/api/v1/me/deletion",
            post(post_deletion).delete(delete_deletion),
        )
        .route("/api/v1/org/aggregates", get(get_aggregates))
        .route_layer(limited(RouteClass::General));
    export
        .merge(general)
        .route_layer(from_fn_with_state(state.clone(), session_layer))
}

/// Destructive or bulk actions on one's data need a person, not a device.
fn person(caller: &ApiCaller) -> Result<(), AppError> {
    if caller.device_id.is_some() {
        return Err(AppError::Forbidden(
            "sign in on the web to do this; devices cannot".into(),
        ));
    }
    Ok(())
}

async fn get_graph(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, AppError> {
    let now = state.clock.now();
    let st = state.clone();
    let graph = blocking(move || {
        Ok(me::graph(
            st.store.org(&caller.org)?,
            &st.catalogue,
            &caller.user_id,
            now,
        )?)
    })
    .await?;
    Ok(Json(json!({ "concepts": graph })))
}

async fn get_privacy(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, AppError> {
    let st = state.clone();
    let p = blocking(move || Ok(me::privacy(st.store.org(&caller.org)?, &caller.user_id)?)).await?;
    Ok(Json(json!(p)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptOut {
    opted_out: bool,
}

async fn post_opt_out(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AppError> {
    person(&caller)?;
    let b: OptOut = serde_json::from_slice(&body).map_err(|e| {
        AppError::BadRequest(format!("expected {{\"opted_out\": true|false}}: {e}"))
    })?;
    let now = state.clock.now();
    let st = state.clone();
    blocking(move || {
        Ok(me::set_opt_out(
            st.store.org(&caller.org)?,
            &caller.user_id,
            b.opted_out,
            &caller.audit,
            now,
        )?)
    })
    .await?;
    Ok(Json(json!({ "opted_out": b.opted_out })))
}

async fn get_export(
    State(state): State<AppState>,
    ApiChange(caller): ApiChange,
) -> Result<Json<Value>, AppError> {
    person(&caller)?;
    admit_caller(&state, RouteClass::Export, &Caller::person_of_api(&caller))?;
    let now = state.clock.now();
    let st = state.clone();
    let doc = blocking(move || {
        me::export(
            st.store.org(&caller.org)?,
            &st.catalogue,
            &caller.user_id,
            &caller.audit,
            now,
        )
        .map_err(|e| match e {
            me::ExportError::Store(e) => e.into(),
            other => AppError::Internal(other.into()),
        })
    })
    .await?;
    Ok(Json(doc))
}

async fn post_deletion(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, AppError> {
    person(&caller)?;
    let now = state.clock.now();
    let st = state.clone();
    let due = blocking(move || {
        Ok(me::request_deletion(
            st.store.org(&caller.org)?,
            &caller.user_id,
            &caller.audit,
            now,
        )?)
    })
    .await?;
    Ok(Json(
        json!({ "deletion_due_at": due, "counted_in_aggregates": false }),
    ))
}

async fn delete_deletion(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, AppError> {
    person(&caller)?;
    let now = state.clock.now();
    let st = state.clone();
    blocking(move || {
        Ok(me::cancel_deletion(
            st.store.org(&caller.org)?,
            &caller.user_id,
            &caller.audit,
            now,
        )?)
    })
    .await?;
    Ok(Json(json!({ "deletion_due_at": null })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateQuery {
    team: Option<String>,
    /// Weeks of trend, 1 to `trend::MAX_WEEKS` (default 12).
    weeks: Option<u32>,
}

async fn get_aggregates(
    State(state): State<AppState>,
    admin: ApiAdmin,
    Query(q): Query<AggregateQuery>,
) -> Result<Json<Value>, AppError> {
    let weeks = q.weeks.unwrap_or(trend::DEFAULT_WEEKS);
    if !(1..=trend::MAX_WEEKS).contains(&weeks) {
        return Err(AppError::BadRequest(format!(
            "weeks must be 1 to {}; it is how many weeks of trend to show",
            trend::MAX_WEEKS
        )));
    }
    let now = state.clock.now();
    let st = state.clone();
    let rows = blocking(move || {
        let org = st.store.org(admin.who.org.slug.as_str())?;
        let req = privacy::Request {
            team: q.team.as_deref(),
            now,
            weeks,
        };
        Ok(privacy::release(
            org,
            &st.catalogue,
            &req,
            st.settings.privacy,
            &admin.audit,
        )?)
    })
    .await?;
    Ok(Json(json!(rows)))
}
