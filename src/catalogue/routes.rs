//! The admin API of an org's own concepts under `/api/v1/org/concepts`.
//! Reading needs an administrator's session; every change also needs a
//! fresh sign-in and the session's CSRF token (`ApiAdminAction`), and is
//! audited by the domain function it calls.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::custom::{self, ConceptChanges, ConceptError};
use crate::error::AppError;
use crate::http::extract::{ApiAdmin, ApiAdminAction, CSRF_HEADER, session_layer};
use crate::http::ratelimit::{RouteClass, enforce};
use crate::http::{AppState, blocking};
use crate::skill::Concept;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/org/concepts", get(get_concepts).post(post_concept))
        .route(
            "/api/v1/org/concepts/{slug}",
            get(get_concept).patch(patch_concept),
        )
        .route("/api/v1/org/concepts/{slug}/retire", post(post_retire))
        .route("/api/v1/org/concepts/{slug}/restore", post(post_restore))
        .route_layer(from_fn_with_state(
            (state.clone(), RouteClass::General),
            enforce,
        ))
        .route_layer(from_fn_with_state(state.clone(), session_layer))
}

impl From<ConceptError> for AppError {
    fn from(e: ConceptError) -> Self {
        match e {
            ConceptError::Invalid { field, message } => AppError::Schema {
                pointer: format!("/{field}"),
                message,
            },
            ConceptError::NotFound(_) => AppError::NotFound,
            ConceptError::Conflict(m) => AppError::Conflict(m),
            ConceptError::Store(s) => s.into(),
        }
    }
}

/// A JSON body of type `T`, or a 400 that says what is wrong with it.
fn body<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, AppError> {
    serde_json::from_slice(bytes)
        .map_err(|e| AppError::BadRequest(format!("the body must be {what}: {e}")))
}

/// The org's concepts, retired ones included. The response carries the
/// session's CSRF token in the header that changes must send back.
async fn get_concepts(
    State(state): State<AppState>,
    admin: ApiAdmin,
) -> Result<Response, AppError> {
    let st = state.clone();
    let slug = admin.who.org.slug.to_string();
    let list = blocking(move || Ok(custom::list(st.store.org(&slug)?)?)).await?;
    let mut res = Json(json!({ "concepts": list })).into_response();
    if let Ok(v) = HeaderValue::from_str(&admin.who.session.csrf) {
        res.headers_mut().insert(CSRF_HEADER, v);
    }
    Ok(res)
}

async fn get_concept(
    State(state): State<AppState>,
    admin: ApiAdmin,
    Path(slug): Path<String>,
) -> Result<Json<custom::CustomConcept>, AppError> {
    let st = state.clone();
    let org = admin.who.org.slug.to_string();
    let c = blocking(move || Ok(custom::get(st.store.org(&org)?, &slug)?)).await?;
    Ok(Json(c))
}

async fn post_concept(
    State(state): State<AppState>,
    admin: ApiAdminAction,
    bytes: Bytes,
) -> Result<Response, AppError> {
    let concept: Concept = body(
        &bytes,
        "a concept {\"slug\", \"title\", \"domain\", \"summary\", \"prerequisites\"?, \"related\"?, \"matchers\"?}",
    )?;
    let now = state.clock.now();
    let st = state.clone();
    let org = admin.who.org.slug.to_string();
    let created = blocking(move || {
        Ok(custom::add(
            st.store.org(&org)?,
            &st.catalogue,
            &admin.ctx,
            concept,
            now,
        )?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn patch_concept(
    State(state): State<AppState>,
    admin: ApiAdminAction,
    Path(slug): Path<String>,
    bytes: Bytes,
) -> Result<Json<custom::CustomConcept>, AppError> {
    let changes: ConceptChanges = body(
        &bytes,
        "the fields to change, among \"title\", \"domain\", \"summary\", \"prerequisites\", \"related\" and \"matchers\" (the slug never changes)",
    )?;
    let now = state.clock.now();
    let st = state.clone();
    let org = admin.who.org.slug.to_string();
    let updated = blocking(move || {
        Ok(custom::update(
            st.store.org(&org)?,
            &st.catalogue,
            &admin.ctx,
            &slug,
            changes,
            now,
        )?)
    })
    .await?;
    Ok(Json(updated))
}

async fn post_retire(
    State(state): State<AppState>,
    admin: ApiAdminAction,
    Path(slug): Path<String>,
) -> Result<Json<custom::CustomConcept>, AppError> {
    let now = state.clock.now();
    let st = state.clone();
    let org = admin.who.org.slug.to_string();
    let c =
        blocking(move || Ok(custom::retire(st.store.org(&org)?, &admin.ctx, &slug, now)?)).await?;
    Ok(Json(c))
}

async fn post_restore(
    State(state): State<AppState>,
    admin: ApiAdminAction,
    Path(slug): Path<String>,
) -> Result<Json<custom::CustomConcept>, AppError> {
    let now = state.clock.now();
    let st = state.clone();
    let org = admin.who.org.slug.to_string();
    let c = blocking(move || {
        Ok(custom::restore(
            st.store.org(&org)?,
            &admin.ctx,
            &slug,
            now,
        )?)
    })
    .await?;
    Ok(Json(c))
}
