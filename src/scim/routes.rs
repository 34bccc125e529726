//! The SCIM 2.0 endpoints under `/scim/v2` (RFC 7644): bearer-token
//! authentication (the token names the org), `application/scim+json` in and
//! out, SCIM error documents (§3.12) for every failure including 401, 413,
//! 415 and 429, ETags (§3.14) and the discovery endpoints (§4). Handlers
//! are thin: extract, call one `service` function, map the result.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value as Json, json};

use super::discovery;
use super::error::ScimError;
use super::extract::{ScimBearer, ScimBody, ScimPresented, with_scim};
use super::list::{Kind, Listing};
use super::patch;
use super::path::{CORE_GROUP_URN, CORE_USER_URN, ENTERPRISE_USER_URN};
use super::query::{ListQuery, list_query, project, search_query};
use super::resource;
use super::service::IfMatch;
use crate::error::AppError;
use crate::http::AppState;
use crate::http::ratelimit::{RouteClass, admit};

/// The SCIM media type (RFC 7644 §3.1).
pub const SCIM_JSON: &str = "application/scim+json";
/// The largest request body accepted (the configuration also advertises it).
pub const MAX_BODY: usize = 1024 * 1024;

const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/scim/v2/Users",
            get(list_users)
                .post(create_user)
                .fallback(not_allowed("GET, POST")),
        )
        .route(
            "/scim/v2/Users/.search",
            post(search_users).fallback(not_allowed("POST")),
        )
        .route(
            "/scim/v2/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user)
                .fallback(not_allowed("GET, PUT, PATCH, DELETE")),
        )
        .route(
            "/scim/v2/Groups",
            get(list_groups)
                .post(create_group)
                .fallback(not_allowed("GET, POST")),
        )
        .route(
            "/scim/v2/Groups/.search",
            post(search_groups).fallback(not_allowed("POST")),
        )
        .route(
            "/scim/v2/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group)
                .fallback(not_allowed("GET, PUT, PATCH, DELETE")),
        )
        .route(
            "/scim/v2/.search",
            post(search_all).fallback(not_allowed("POST")),
        )
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(get_config).fallback(not_allowed("GET")),
        )
        .route(
            "/scim/v2/ResourceTypes",
            get(get_resource_types).fallback(not_allowed("GET")),
        )
        .route(
            "/scim/v2/ResourceTypes/{id}",
            get(get_resource_type).fallback(not_allowed("GET")),
        )
        .route(
            "/scim/v2/Schemas",
            get(get_schemas).fallback(not_allowed("GET")),
        )
        .route(
            "/scim/v2/Schemas/{id}",
            get(get_schema).fallback(not_allowed("GET")),
        )
        // The base URL itself, Bulk, /Me and anything else: a
        // SCIM 404, after the token.
        .route("/scim/v2", any(unknown_endpoint))
        .route("/scim/v2/", any(unknown_endpoint))
        .route("/scim/v2/{*rest}", any(unknown_endpoint))
        .route_layer(from_fn_with_state(
            state.clone(),
            super::demotion::after_changes,
        ))
        .route_layer(from_fn_with_state(state.clone(), limit))
}

/// Whether `path` is under the SCIM base URL.
fn is_scim_path(path: &str) -> bool {
    path.strip_prefix("/scim/v2")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The largest SCIM request body: [`MAX_BODY`], or the server's
/// `max_body_bytes` when that is smaller.
pub(super) fn body_limit(state: &AppState) -> usize {
    MAX_BODY.min(state.settings.server.max_body_bytes)
}

/// Layered by `crate::app` outside the server-wide body limit, timeout and
/// client checks: an error those layers (or the router) answer for a path
/// under `/scim/v2` becomes a SCIM error document (RFC 7644 §3.12), as SCIM
/// clients expect, instead of a problem document. Headers such as `Allow`
/// and `Retry-After` are kept.
pub async fn scim_errors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !is_scim_path(req.uri().path()) {
        return next.run(req).await;
    }
    let res = next.run(req).await;
    let status = res.status();
    let scim_typed = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(SCIM_JSON));
    if scim_typed || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the body is larger than {} bytes", body_limit(&state))
        }
        StatusCode::REQUEST_TIMEOUT => format!(
            "the request took longer than {} s",
            state.settings.server.request_timeout.as_secs()
        ),
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed on this endpoint".into(),
        StatusCode::NOT_FOUND => NO_SUCH_ENDPOINT.into(),
        other => other.canonical_reason().unwrap_or("error").to_string(),
    };
    let mut fresh = error_response(status.as_u16(), None, &detail);
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}

/// A [`ScimError`] as an HTTP response: a SCIM error document.
#[derive(Debug)]
pub enum Failure {
    Scim(ScimError),
    /// An answer already made: a refused token, or a rate limit with its
    /// `Retry-After`.
    Answer(Box<Response>),
}

impl From<ScimError> for Failure {
    fn from(e: ScimError) -> Self {
        Self::Scim(e)
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Scim(e.into())
    }
}

fn error_response(status: u16, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body =
        json!({ "schemas": [ERROR_URN], "status": status.to_string(), "detail": detail });
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut res = scim_json(code, &body);
    if code == StatusCode::UNAUTHORIZED {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let e = match self {
            Self::Scim(e) => e,
            Self::Answer(res) => return *res,
        };
        match e {
            ScimError::Client {
                status,
                scim_type,
                detail,
            } => error_response(status, scim_type, &detail),
            ScimError::Busy { retry_after_secs } => {
                let mut res = error_response(
                    503,
                    None,
                    &format!("the server is busy; retry after {retry_after_secs} s"),
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_secs.into());
                res
            }
            ScimError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                error_response(
                    500,
                    None,
                    "an internal error occurred; the request id identifies it in the server log",
                )
            }
        }
    }
}

fn scim_json(status: StatusCode, body: &Json) -> Response {
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    res
}

/// A resource with its ETag (and, when created, its Location).
fn resource_response(status: StatusCode, body: &Json) -> Response {
    let mut res = scim_json(status, body);
    if let Some(v) = body["meta"]["version"]
        .as_str()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        res.headers_mut().insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED
        && let Some(l) = body["meta"]["location"]
            .as_str()
            .and_then(|l| HeaderValue::from_str(l).ok())
    {
        res.headers_mut().insert(header::LOCATION, l);
    }
    res
}

/// A SCIM 429 with `Retry-After`.
pub(super) fn too_many(retry_after_secs: u64) -> Response {
    let mut res = error_response(
        429,
        None,
        &format!("rate limit exceeded; retry after {retry_after_secs} s"),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    res
}

/// Route layer: the SCIM rate-limit class, answered in SCIM format.
async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match admit(&state, RouteClass::Scim, &req) {
        Ok(()) => next.run(req).await,
        Err(AppError::TooManyRequests { retry_after_secs }) => too_many(retry_after_secs),
        Err(e) => e.into_response(),
    }
}

pub(super) fn base(state: &AppState) -> String {
    format!(
        "{}/scim/v2",
        state
            .settings
            .server
            .public_url
            .as_str()
            .trim_end_matches('/')
    )
}

fn if_match(headers: &HeaderMap) -> IfMatch {
    let tags: Vec<String> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    IfMatch(if tags.is_empty() { None } else { Some(tags) })
}

fn list_response(listing: Listing, q: &ListQuery) -> Response {
    let page: Vec<Json> = listing
        .resources
        .into_iter()
        .map(|r| project(r, &q.attributes, &q.excluded))
        .collect();
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_URN],
            "totalResults": listing.total,
            "startIndex": q.page.start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    )
}

async fn list_users(
    State(state): State<AppState>,
    caller: ScimPresented,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    // A bad query is answered after the token is checked, like any other
    // request: nobody learns anything from the appliance without one.
    let parsed = list_query(&q, Kind::User);
    let (listing, q) = with_scim(&state, caller, move |s| {
        let q = parsed?;
        Ok((s.list_users(q.filter.as_ref(), q.sort, q.page)?, q))
    })
    .await?;
    Ok(list_response(listing, &q))
}

/// `POST /Users/.search` (RFC 7644 §3.4.3): a list whose query is the body.
async fn search_users(
    State(state): State<AppState>,
    caller: ScimBearer,
    ScimBody(body): ScimBody,
) -> Result<Response, Failure> {
    let q = list_query(&search_query(&body)?, Kind::User)?;
    let (filter, sort, page) = (q.filter.clone(), q.sort, q.page);
    let listing = with_scim(&state, caller, move |s| {
        s.list_users(filter.as_ref(), sort, page)
    })
    .await?;
    Ok(list_response(listing, &q))
}

/// `POST /.search` at the root (RFC 7644 §3.4.3): users and groups.
async fn search_all(
    State(state): State<AppState>,
    caller: ScimBearer,
    ScimBody(body): ScimBody,
) -> Result<Response, Failure> {
    let query = search_query(&body)?;
    super::search::refuse_sort(&query)?;
    let q = list_query(&query, Kind::User)?;
    let (filter, page) = (q.filter.clone(), q.page);
    let listing = with_scim(&state, caller, move |s| s.search_all(filter.as_ref(), page)).await?;
    Ok(list_response(listing, &q))
}

async fn get_user(
    State(state): State<AppState>,
    caller: ScimPresented,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    let parsed = list_query(&q, Kind::User);
    let (r, q) = with_scim(&state, caller, move |s| {
        let q = parsed?;
        Ok((s.get_user(&id)?, q))
    })
    .await?;
    Ok(resource_response(
        StatusCode::OK,
        &project(r, &q.attributes, &q.excluded),
    ))
}

async fn create_user(
    State(state): State<AppState>,
    caller: ScimBearer,
    ScimBody(body): ScimBody,
) -> Result<Response, Failure> {
    resource::check_schemas(&body, &[CORE_USER_URN, ENTERPRISE_USER_URN])?;
    let f = resource::user_fields(&body)?;
    let now = state.clock.now();
    let r = with_scim(&state, caller, move |s| s.create_user(f, now)).await?;
    Ok(resource_response(StatusCode::CREATED, &r))
}

async fn replace_user(
    State(state): State<AppState>,
    caller: ScimBearer,
    Path(id): Path<String>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, Failure> {
    resource::check_schemas(&body, &[CORE_USER_URN, ENTERPRISE_USER_URN])?;
    let f = resource::user_fields(&body)?;
    let m = if_match(&headers);
    let now = state.clock.now();
    let r = with_scim(&state, caller, move |s| s.replace_user(&id, &m, f, now)).await?;
    Ok(resource_response(StatusCode::OK, &r))
}

async fn patch_user(
    State(state): State<AppState>,
    caller: ScimBearer,
    Path(id): Path<String>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, Failure> {
    let ops = patch::parse_operations(&body)?;
    let m = if_match(&headers);
    let now = state.clock.now();
    let r = with_scim(&state, caller, move |s| s.patch_user(&id, &m, &ops, now)).await?;
    Ok(resource_response(StatusCode::OK, &r))
}

async fn delete_user(
    State(state): State<AppState>,
    caller: ScimPresented,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let m = if_match(&headers);
    let now = state.clock.now();
    with_scim(&state, caller, move |s| s.delete_user(&id, &m, now)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_groups(
    State(state): State<AppState>,
    caller: ScimPresented,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    let parsed = list_query(&q, Kind::Group);
    let (listing, q) = with_scim(&state, caller, move |s| {
        let q = parsed?;
        Ok((s.list_groups(q.filter.as_ref(), q.sort, q.page)?, q))
    })
    .await?;
    Ok(list_response(listing, &q))
}

/// `POST /Groups/.search` (RFC 7644 §3.4.3).
async fn search_groups(
    State(state): State<AppState>,
    caller: ScimBearer,
    ScimBody(body): ScimBody,
) -> Result<Response, Failure> {
    let q = list_query(&search_query(&body)?, Kind::Group)?;
    let (filter, sort, page) = (q.filter.clone(), q.sort, q.page);
    let listing = with_scim(&state, caller, move |s| {
        s.list_groups(filter.as_ref(), sort, page)
    })
    .await?;
    Ok(list_response(listing, &q))
}

async fn get_group(
    State(state): State<AppState>,
    caller: ScimPresented,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    let parsed = list_query(&q, Kind::Group);
    let (r, q) = with_scim(&state, caller, move |s| {
        let q = parsed?;
        Ok((s.get_group(&id)?, q))
    })
    .await?;
    Ok(resource_response(
        StatusCode::OK,
        &project(r, &q.attributes, &q.excluded),
    ))
}

async fn create_group(
    State(state): State<AppState>,
    caller: ScimBearer,
    ScimBody(body): ScimBody,
) -> Result<Response, Failure> {
    resource::check_schemas(&body, &[CORE_GROUP_URN])?;
    let f = resource::group_fields(&body)?;
    let now = state.clock.now();
    let r = with_scim(&state, caller, move |s| s.create_group(f, now)).await?;
    Ok(resource_response(StatusCode::CREATED, &r))
}

async fn replace_group(
    State(state): State<AppState>,
    caller: ScimBearer,
    Path(id): Path<String>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, Failure> {
    resource::check_schemas(&body, &[CORE_GROUP_URN])?;
    let f = resource::group_fields(&body)?;
    let m = if_match(&headers);
    let now = state.clock.now();
    let r = with_scim(&state, caller, move |s| s.replace_group(&id, &m, f, now)).await?;
    Ok(resource_response(StatusCode::OK, &r))
}

async fn patch_group(
    State(state): State<AppState>,
    caller: ScimBearer,
    Path(id): Path<String>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, Failure> {
    let ops = patch::parse_operations(&body)?;
    let m = if_match(&headers);
    let now = state.clock.now();
    let r = with_scim(&state, caller, move |s| s.patch_group(&id, &m, &ops, now)).await?;
    Ok(resource_response(StatusCode::OK, &r))
}

async fn delete_group(
    State(state): State<AppState>,
    caller: ScimPresented,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let m = if_match(&headers);
    let now = state.clock.now();
    with_scim(&state, caller, move |s| s.delete_group(&id, &m, now)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_config(State(state): State<AppState>, _caller: ScimBearer) -> Response {
    scim_json(
        StatusCode::OK,
        &discovery::service_provider_config(&base(&state)),
    )
}

async fn get_resource_types(State(state): State<AppState>, _caller: ScimBearer) -> Response {
    list_response(
        Listing::whole(discovery::resource_types(&base(&state))),
        &ListQuery::default(),
    )
}

async fn get_resource_type(
    State(state): State<AppState>,
    _caller: ScimBearer,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    discovery::resource_types(&base(&state))
        .into_iter()
        .find(|r| {
            r["id"]
                .as_str()
                .is_some_and(|i| i.eq_ignore_ascii_case(&id))
        })
        .map(|r| scim_json(StatusCode::OK, &r))
        .ok_or_else(|| Failure::Scim(ScimError::not_found("resource type", &id)))
}

async fn get_schemas(State(state): State<AppState>, _caller: ScimBearer) -> Response {
    list_response(
        Listing::whole(discovery::schemas(&base(&state))),
        &ListQuery::default(),
    )
}

async fn get_schema(
    State(state): State<AppState>,
    _caller: ScimBearer,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    discovery::schemas(&base(&state))
        .into_iter()
        .find(|r| {
            r["id"]
                .as_str()
                .is_some_and(|i| i.eq_ignore_ascii_case(&id))
        })
        .map(|r| scim_json(StatusCode::OK, &r))
        .ok_or_else(|| Failure::Scim(ScimError::not_found("schema", &id)))
}

const NO_SUCH_ENDPOINT: &str = "no such SCIM endpoint; /Users, /Groups, /ServiceProviderConfig, /ResourceTypes and /Schemas are served and searched with POST /Users/.search, /Groups/.search and /.search (no /Bulk or /Me)";

async fn unknown_endpoint(_caller: ScimBearer) -> Failure {
    Failure::Scim(ScimError::status(404, NO_SUCH_ENDPOINT))
}

/// The fallback of a route for the methods it does not serve: 405 with
/// `Allow` (RFC 9110 §15.5.6), after the token.
fn not_allowed(
    allow: &'static str,
) -> impl Fn(ScimBearer) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move |_caller: ScimBearer| {
        let mut res = Failure::Scim(ScimError::status(
            405,
            "this method is not allowed on this endpoint",
        ))
        .into_response();
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        std::future::ready(res)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;

    use super::Failure;
    use crate::scim::error::ScimError;
    use crate::store::StoreError;

    /// A busy database answers SCIM clients 503 with `Retry-After` (which
    /// Okta and Entra ID honour), whether it was met in a SCIM query or
    /// while checking the bearer token; other store failures stay 500.
    #[tokio::test]
    async fn a_busy_database_is_503_with_retry_after_for_scim_clients() {
        let busy = || StoreError::ReadersBusy {
            path: "org-acme.db".into(),
            size: 8,
            waited: std::time::Duration::from_secs(5),
        };
        for e in [
            ScimError::from(busy()),
            ScimError::from(crate::tokens::TokenError::Store(busy())),
        ] {
            let res = Failure::Scim(e).into_response();
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(res.headers()[header::RETRY_AFTER], "1");
            let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
            let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(doc["status"], "503", "{doc}");
        }
        let other = ScimError::from(StoreError::Sqlite(rusqlite::Error::InvalidQuery));
        let res = Failure::Scim(other).into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
