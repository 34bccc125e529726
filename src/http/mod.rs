//! The HTTP edge: the state handlers share, our extractors, and the layers
//! every response passes through, so security headers, request ids,
//! metrics and problem documents apply to every route, 404s included.
//! Each capability owns its router; `crate::app` mounts them and wraps them
//! in these layers, and this module imports no capability's routes.

pub mod cost;
pub mod extract;
pub mod forwarded;
pub mod middleware;
pub mod ops;
pub mod ratelimit;
pub mod server;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::clock::Clock;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::store::Store;
use ratelimit::RateLimiters;

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<RateLimiters>,
    pub clock: Arc<dyn Clock>,
    pub sso: Arc<crate::sso::Sso>,
    pub catalogue: Arc<crate::skill::Catalogue>,
    /// The question bank, validated against the catalogue.
    pub bank: Arc<crate::checks::Bank>,
    /// The org's model, when `[model]` is configured.
    pub model: Option<Arc<crate::model::ModelClient>>,
    /// The concepts the model is writing a check for right now.
    pub writing: Arc<crate::question::Writing>,
}

impl AppState {
    /// # Panics
    /// Never in practice: building the OIDC or model HTTP client fails only
    /// when the TLS stack has no root certificates at all (a model CA file
    /// was parsed when the configuration was loaded); the shipped catalogue
    /// and question bank are checked by their tests.
    pub fn new(settings: Arc<Settings>, store: Arc<Store>, clock: Arc<dyn Clock>) -> Self {
        let limits = Arc::new(RateLimiters::new(&settings.rate_limits));
        let sso = crate::sso::Sso::new(&settings.egress)
            .expect("the OIDC HTTP client builds with the bundled TLS roots");
        let metrics = Arc::new(Metrics::new());
        let model = settings.model.clone().map(|m| {
            Arc::new(
                crate::model::ModelClient::new(m, &settings.egress, Arc::clone(&metrics))
                    .expect("the model HTTP client builds with a CA file checked at load"),
            )
        });
        let catalogue = crate::skill::Catalogue::builtin()
            .expect("the shipped catalogue is checked by its tests");
        let bank = crate::checks::Bank::builtin(&catalogue)
            .expect("the shipped question bank is checked by its tests");
        Self {
            settings,
            store,
            metrics,
            limits,
            clock,
            sso: Arc::new(sso),
            catalogue: Arc::new(catalogue),
            bank: Arc::new(bank),
            model,
            writing: Arc::default(),
        }
    }

    /// The question service over this state's parts.
    pub fn checks(&self) -> crate::question::Checks {
        crate::question::Checks {
            store: Arc::clone(&self.store),
            catalogue: Arc::clone(&self.catalogue),
            bank: Arc::clone(&self.bank),
            model: self.model.clone(),
            writing: Arc::clone(&self.writing),
        }
    }
}

/// Runs blocking work (database access) off the async threads.
///
/// # Errors
/// The error `f` returns, or an internal error if the task panicked.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::error::AppError> + Send + 'static,
) -> Result<T, crate::error::AppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::error::AppError::Internal(e.into()))?
}

/// The security headers of SECURITY.md P13, on every response.
pub const SECURITY_HEADERS: [(&str, &str); 7] = [
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains; preload",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    ),
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    ("cross-origin-opener-policy", "same-origin"),
];

/// The layers between the router and the request's own checks: the
/// route label for metrics, the 404 fallback, the body limit, the request
/// timeout and the client context (address, HTTPS, plain-HTTP refusal).
/// `crate::app` puts the surface's error rendering (SCIM) around these.
pub fn request_layers(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    let s = &state.settings.server;
    // Router::layer wraps everything added before it: the last layer is the
    // outermost.
    routes
        .route_layer(from_fn(middleware::record_route))
        .fallback(middleware::not_found)
        .layer(RequestBodyLimitLayer::new(s.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            s.request_timeout,
        ))
        .layer(from_fn_with_state(
            state.clone(),
            middleware::client_context,
        ))
}

/// The outermost layers, which every response passes through: problem
/// documents for bare errors, request ids, tracing and metrics, and the
/// security headers (last, so they cover even errors from other layers).
pub fn response_layers(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .layer(from_fn(middleware::problem_fallback))
        .layer(from_fn_with_state(state.clone(), middleware::observe))
        .layer(from_fn(middleware::security_headers))
        .with_state(state)
}
