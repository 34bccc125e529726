//! Middleware on every route: security headers, request ids with a tracing
//! span, metrics, problem documents for bare errors, and client context.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use tracing::field::Empty;

use super::forwarded::{self, ClientInfo};
use super::ratelimit::{RouteClass, admit};
use super::{AppState, SECURITY_HEADERS};
use crate::error::{AppError, PROBLEM_JSON, Problem};
use crate::metrics::RequestLabels;

/// The request id header, accepted from clients when well formed.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Where the router writes the matched route template for `observe`.
#[derive(Debug, Clone, Default)]
struct RouteSlot(Arc<OnceLock<String>>);

/// Sets the headers of SECURITY.md P13 on every response, and `no-store`
/// unless a handler chose a cache policy.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// A client-supplied id is kept when it is 1 to 64 of `[A-Za-z0-9._-]`
/// (safe in logs); otherwise a UUID is made.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

/// Request id, tracing span (request id, method, route, org, actor), one log
/// line per request, and the request metrics. Never logs paths, query
/// strings, headers or bodies: they may carry codes, tokens or user content.
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = request_id(req.headers());
    req.extensions_mut().insert(RequestId(id.clone()));
    let slot = RouteSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().as_str().to_string();
    let method_label = crate::metrics::method_label(req.method());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = Empty,
        org = Empty,
        actor = Empty,
    );
    let started = Instant::now();
    let mut res = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let route = slot.0.get().map_or("unmatched", String::as_str).to_string();
    let status = res.status().as_u16();
    span.record("route", route.as_str());
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1e3,
            "request answered"
        );
    });
    let labels = RequestLabels {
        method: method_label,
        route,
        status,
    };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .latency
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    res
}

/// Route layer: records the matched route template for [`observe`].
pub async fn record_route(req: Request, next: Next) -> Response {
    if let (Some(path), Some(slot)) = (
        req.extensions().get::<MatchedPath>(),
        req.extensions().get::<RouteSlot>(),
    ) {
        let _ = slot.0.set(path.as_str().to_string());
    }
    next.run(req).await
}

/// Errors produced below the handlers (405, 408, 413 from layers) come
/// without a problem body; give them one, so every API error is RFC 9457.
pub async fn problem_fallback(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let typed = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with(PROBLEM_JSON)
                || ct.starts_with("application/scim+json")
                || ct.starts_with("text/html")
        });
    if status.is_client_error() || status.is_server_error() {
        if typed {
            return res;
        }
        let mut fresh = Problem::new(status, None).into_response_with(status);
        for (name, value) in res.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                fresh.headers_mut().insert(name.clone(), value.clone());
            }
        }
        return fresh;
    }
    res
}

/// Works out the client (trusting forwarded headers only from configured
/// proxies) and refuses plain HTTP from anyone but loopback and those
/// proxies when bound to a non-loopback address.
pub async fn client_context(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let s = &state.settings.server;
    // Without connection info (never the case when served) nothing is trusted.
    let peer = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let headers = req.headers();
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok());
    let tls = s.tls.is_some();
    let info = ClientInfo {
        ip: forwarded::client_ip(peer, &xff, &s.trusted_proxies),
        peer,
        https: forwarded::client_https(tls, peer, proto, &s.trusted_proxies),
    };
    if !tls && !forwarded::plain_http_allowed(s.bind.ip().is_loopback(), peer, &s.trusted_proxies) {
        return AppError::Forbidden(
            "plain HTTP is accepted only from the configured reverse proxy; connect through it over HTTPS".into(),
        )
        .into_response();
    }
    req.extensions_mut().insert(info);
    next.run(req).await
}

/// The fallback for unknown routes: 404 problem, charged to the general
/// budget so scanning is rate limited too.
pub async fn not_found(State(state): State<AppState>, req: Request) -> Response {
    match admit(&state, RouteClass::General, &req) {
        Ok(()) => AppError::NotFound.into_response(),
        Err(e) => e.into_response(),
    }
}
