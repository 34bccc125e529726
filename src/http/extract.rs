//! Our own extractors. The session middleware reads the one cookie, checks
//! it, and leaves the outcome in the request (absent / valid / invalid,
//! never an `Option` that hides an error); after the handler it sets the
//! rotated cookie or clears an invalid one. Handlers then ask for
//! [`SignedIn`] or [`AdminSession`], whose construction is the check.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use subtle::ConstantTimeEq;

use super::AppState;
use super::forwarded::ClientInfo;
use super::middleware::RequestId;
use crate::audit::Context;
use crate::config::OrgSettings;
use crate::sessions::{self, COOKIE, Session};
use crate::users::{self, AdminCtx, Role, User};
use crate::web::PageError;

/// The outcome of checking the session cookie.
#[derive(Debug, Clone)]
pub enum SessionState {
    /// No cookie.
    Absent,
    /// A live session.
    Valid(Arc<SignedIn>),
    /// A cookie that is not (or no longer) a session: signed out, rotated
    /// away past its grace period, expired, or forged.
    Invalid,
    /// No session, but the pre-sign-in value of a sign-in this browser
    /// started (`aiwl_signin_...`, see `web::signin`): not a session, and
    /// left in place.
    SigningIn(String),
}

/// A signed-in person and their session.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub org: OrgSettings,
    pub user: User,
    pub session: Session,
}

impl SignedIn {
    pub fn role(&self) -> Role {
        self.user.role(&self.org)
    }
}

/// `Set-Cookie` for a session id: the `__Host-` prefix pins it to this
/// host and path `/`, over HTTPS only; not readable by scripts.
pub fn session_cookie(value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Lax"
    ))
    .unwrap_or_else(|_| {
        HeaderValue::from_static(
            "__Host-aiwl_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax",
        )
    })
}

/// How long a pre-sign-in value stays in the browser: as long as a started
/// sign-in may take.
pub const SIGNING_IN_MAX_AGE_SECS: i64 = 600;

/// `Set-Cookie` for the pre-sign-in value: the same one cookie as the
/// session (so the browser never holds two), gone after ten minutes, and
/// replaced by the session id when the sign-in completes.
pub fn signing_in_cookie(value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Max-Age={SIGNING_IN_MAX_AGE_SECS}; HttpOnly; Secure; SameSite=Lax"
    ))
    .unwrap_or_else(|_| clear_cookie())
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-aiwl_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax",
    )
}

/// The session cookie's value, if the request carries one.
pub fn cookie_value(parts: &axum::http::HeaderMap) -> Option<String> {
    parts
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Middleware on every page and API that knows people: checks the cookie,
/// records org and actor in the request span, and after the handler sets a
/// rotated cookie or clears an invalid one.
pub async fn session_layer(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = cookie_value(req.headers());
    let mut rotated = None;
    let outcome = match presented {
        None => SessionState::Absent,
        Some(value) if crate::secrets::well_formed(&value, crate::secrets::SecretKind::SignIn) => {
            SessionState::SigningIn(value)
        }
        Some(value) => match check(&state, value).await {
            Ok(Some((signed_in, new_id))) => {
                rotated = new_id;
                let span = tracing::Span::current();
                span.record("org", signed_in.org.slug.as_str());
                span.record("actor", format!("user:{}", signed_in.user.id).as_str());
                SessionState::Valid(Arc::new(signed_in))
            }
            Ok(None) => SessionState::Invalid,
            Err(e) => return e.into_response(),
        },
    };
    let invalid = matches!(outcome, SessionState::Invalid);
    // A script of this site calling the JSON API with the session learns
    // the CSRF token its changes must send back from any answer.
    let api_csrf = match &outcome {
        SessionState::Valid(who) if req.uri().path().starts_with("/api/") => {
            HeaderValue::from_str(&who.session.csrf).ok()
        }
        _ => None,
    };
    req.extensions_mut().insert(outcome);
    let mut res = next.run(req).await;
    if let Some(v) = api_csrf
        && !res.headers().contains_key(CSRF_HEADER)
    {
        res.headers_mut().insert(CSRF_HEADER, v);
    }
    // A handler that set its own cookie (sign-in, sign-out) wins.
    if !res.headers().contains_key(header::SET_COOKIE) {
        if let Some(id) = rotated {
            res.headers_mut()
                .append(header::SET_COOKIE, session_cookie(&id));
        } else if invalid {
            res.headers_mut().append(header::SET_COOKIE, clear_cookie());
        }
    }
    res
}

async fn check(
    state: &AppState,
    value: String,
) -> Result<Option<(SignedIn, Option<String>)>, PageError> {
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let now = st.clock.now();
        let Some(auth) = sessions::authenticate(&st.store, &value, &st.settings.sso, now)? else {
            return Ok(None);
        };
        let Some(org) = st.settings.org(&auth.org.slug).cloned() else {
            return Ok(None);
        };
        let user = match users::get(auth.org, &auth.session.user_id) {
            Ok(u) => u,
            Err(users::UserError::NotFound) => return Ok(None),
            Err(e) => return Err(PageError::internal(e)),
        };
        let rotated = auth.rotated.map(|s| s.expose().to_string());
        Ok(Some((
            SignedIn {
                org,
                user,
                session: auth.session,
            },
            rotated,
        )))
    })
    .await
    .map_err(PageError::internal)?
}

/// The audit context of a request: who, from where, under which id.
pub fn audit_context(parts: &Parts, actor: String) -> Context {
    Context {
        actor,
        request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        ip: parts.extensions.get::<ClientInfo>().map(|c| c.ip),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// The request's audit context, for anonymous actions (sign-in).
#[derive(Debug, Clone)]
pub struct Meta(pub Context);

impl FromRequestParts<AppState> for Meta {
    type Rejection = PageError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(audit_context(parts, "anonymous".into())))
    }
}

/// The org slug in the path (`/o/{org}/...`), if any.
fn path_org(parts: &Parts) -> Option<String> {
    let mut segs = parts.uri.path().split('/');
    match (segs.next(), segs.next(), segs.next()) {
        (Some(""), Some("o"), Some(org)) if !org.is_empty() => Some(org.to_string()),
        _ => None,
    }
}

/// A signed-in person. On a page under `/o/{org}/`, the session must belong
/// to that org: a session of org A never opens org B's pages (P18).
#[derive(Debug, Clone)]
pub struct SignedInUser {
    pub who: Arc<SignedIn>,
    pub audit: Context,
}

impl FromRequestParts<AppState> for SignedInUser {
    type Rejection = PageError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        let state = parts
            .extensions
            .get::<SessionState>()
            .cloned()
            .unwrap_or(SessionState::Absent);
        let wanted = path_org(parts);
        match state {
            SessionState::Valid(who)
                if wanted.as_deref().is_none_or(|o| o == who.org.slug.as_str()) =>
            {
                let audit = audit_context(parts, format!("user:{}", who.user.id));
                Ok(Self { who, audit })
            }
            _ => Err(PageError::SignInRequired {
                org: wanted,
                return_to: parts.uri.path().to_string(),
            }),
        }
    }
}

/// An admin of the path's org, for admin pages that only read: the role is
/// checked, the age of the sign-in is not (changes take an
/// [`AdminSession`]). Admin-only pages take this, so none can forget the
/// check.
#[derive(Debug, Clone)]
pub struct AdminViewer {
    pub who: Arc<SignedIn>,
    pub audit: Context,
}

impl FromRequestParts<AppState> for AdminViewer {
    type Rejection = PageError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let SignedInUser { who, audit } = SignedInUser::from_request_parts(parts, state).await?;
        if who.role() != Role::Admin {
            return Err(PageError::Forbidden(
                "This page is for administrators of the organisation.".into(),
            ));
        }
        Ok(Self { who, audit })
    }
}

/// An admin of the path's org whose last sign-in at the IdP is recent
/// enough (`sso.reauth_max_age_secs`); carries the [`AdminCtx`] that admin
/// operations require. A stale sign-in is sent to re-authenticate (P10).
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub who: Arc<SignedIn>,
    pub ctx: AdminCtx,
}

impl AdminSession {
    /// The same admin as a reader of admin pages.
    pub fn viewer(&self) -> AdminViewer {
        AdminViewer {
            who: Arc::clone(&self.who),
            audit: self.ctx.audit().clone(),
        }
    }
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = PageError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AdminViewer { who, audit } = AdminViewer::from_request_parts(parts, state).await?;
        let max_age =
            Duration::from_std(state.settings.sso.reauth_max_age).unwrap_or(Duration::zero());
        if who.session.auth_time + max_age < state.clock.now() {
            return Err(PageError::ReauthRequired {
                org: who.org.slug.to_string(),
                return_to: reauth_return(parts),
            });
        }
        let ctx = AdminCtx::for_admin(audit, who.user.id.clone());
        Ok(Self { who, ctx })
    }
}

/// Where to come back to after re-authenticating: the page for a GET, and
/// for a POST the page the form was on (its action shown again to confirm).
fn reauth_return(parts: &Parts) -> String {
    let path = parts.uri.path();
    if parts.method == axum::http::Method::GET {
        return parts
            .uri
            .path_and_query()
            .map_or(path, |p| p.as_str())
            .to_string();
    }
    path.rsplit_once("/users/")
        .map_or(path, |(base, _)| base)
        .to_string()
}

/// What can be wrong with a state-changing request from a browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CsrfProblem {
    /// The token is missing or is not the session's.
    Token,
    /// The browser says the request comes from another site.
    Origin,
}

/// What is wrong with a state-changing request's CSRF token and origin,
/// if anything: the token must equal the session's (compared in constant
/// time) and the browser's `Origin`, when sent, must be this site.
fn csrf_problem(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    who: &SignedIn,
    token: &str,
) -> Option<CsrfProblem> {
    let ok: bool = token.as_bytes().ct_eq(who.session.csrf.as_bytes()).into();
    if !ok {
        return Some(CsrfProblem::Token);
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let Some(origin) = origin {
        let ours = state
            .settings
            .server
            .public_url
            .origin()
            .ascii_serialization();
        if origin != ours && origin != "null" {
            return Some(CsrfProblem::Origin);
        }
    }
    None
}

/// Checks a form's CSRF token against the session's, in constant time, and
/// that the request comes from our own origin when the browser says.
///
/// # Errors
/// [`PageError::Forbidden`] on any mismatch.
pub fn check_csrf(
    state: &AppState,
    parts_headers: &axum::http::HeaderMap,
    who: &SignedIn,
    token: &str,
) -> Result<(), PageError> {
    match csrf_problem(state, parts_headers, who, token) {
        None => Ok(()),
        Some(CsrfProblem::Token) => Err(PageError::Forbidden(
            "This form has expired. Go back, reload the page and try again.".into(),
        )),
        Some(CsrfProblem::Origin) => Err(PageError::Forbidden(
            "This form was sent from another site.".into(),
        )),
    }
}

/// The header that carries the session's CSRF token on admin API changes;
/// `GET /api/v1/org/concepts` returns the value in the same header.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An administrator of their org calling the JSON API with their browser
/// session. A device token is refused: devices act for an engineer, never
/// as an admin.
#[derive(Debug, Clone)]
pub struct ApiAdmin {
    pub who: Arc<SignedIn>,
    pub audit: Context,
}

impl FromRequestParts<AppState> for ApiAdmin {
    type Rejection = crate::error::AppError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        use crate::error::AppError;
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(AppError::Forbidden(
                "the admin API takes an administrator's signed-in session, not a device or API token".into(),
            ));
        }
        let who = match parts.extensions.get::<SessionState>() {
            Some(SessionState::Valid(who)) => who.clone(),
            _ => {
                return Err(AppError::Unauthorized(
                    "sign in as an administrator of the organisation".into(),
                ));
            }
        };
        if who.role() != Role::Admin {
            return Err(AppError::Forbidden(
                "this is for administrators of the organisation".into(),
            ));
        }
        let audit = audit_context(parts, format!("user:{}", who.user.id));
        Ok(Self { who, audit })
    }
}

/// An admin change over the JSON API: an [`ApiAdmin`] whose last sign-in at
/// the IdP is recent enough (P10), sending the session's CSRF token in
/// [`CSRF_HEADER`] from this site's origin (P16). Carries the [`AdminCtx`]
/// that admin operations require.
#[derive(Debug, Clone)]
pub struct ApiAdminAction {
    pub who: Arc<SignedIn>,
    pub ctx: AdminCtx,
}

impl FromRequestParts<AppState> for ApiAdminAction {
    type Rejection = crate::error::AppError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        use crate::error::AppError;
        let ApiAdmin { who, audit } = ApiAdmin::from_request_parts(parts, state).await?;
        let max_age =
            Duration::from_std(state.settings.sso.reauth_max_age).unwrap_or(Duration::zero());
        if who.session.auth_time + max_age < state.clock.now() {
            let url = state
                .settings
                .server
                .public_url
                .join(&format!("o/{}/login?reauth=1", who.org.slug))
                .map_or_else(|_| String::new(), |u| u.to_string());
            return Err(AppError::Forbidden(format!(
                "administrator changes need a sign-in within the last {} s; sign in again at {url}, then retry",
                max_age.num_seconds()
            )));
        }
        let token = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match csrf_problem(state, &parts.headers, &who, token) {
            None => {}
            Some(CsrfProblem::Token) => {
                return Err(AppError::Forbidden(format!(
                    "send the session's CSRF token in the `{CSRF_HEADER}` header; GET /api/v1/org/concepts returns it in that header"
                )));
            }
            Some(CsrfProblem::Origin) => {
                return Err(AppError::Forbidden(
                    "this request was sent from another site".into(),
                ));
            }
        }
        let ctx = AdminCtx::for_admin(audit, who.user.id.clone());
        Ok(Self { who, ctx })
    }
}

/// Checks a JSON API request made with the session cookie: the session's
/// CSRF token in [`CSRF_HEADER`] and, when the browser sends one, this
/// site's `Origin` (P16). SameSite=Lax alone would let a sibling subdomain
/// (same site, other origin) make these calls with the person's cookie.
fn api_csrf(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    who: &SignedIn,
) -> Result<(), crate::error::AppError> {
    use crate::error::AppError;
    let token = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match csrf_problem(state, headers, who, token) {
        None => Ok(()),
        Some(CsrfProblem::Token) => Err(AppError::Forbidden(format!(
            "with the session cookie, send the session's CSRF token in the `{CSRF_HEADER}` header; every answer of /api/v1 to your session carries it in that header"
        ))),
        Some(CsrfProblem::Origin) => Err(AppError::Forbidden(
            "this request was sent from another site".into(),
        )),
    }
}

/// A caller of the JSON API: a paired device (its bearer access token) or a
/// signed-in person (the session cookie). Anything else is a 401 problem.
/// With the session cookie, every method but GET and HEAD needs the CSRF
/// header and this site's origin ([`api_csrf`]); see [`ApiChange`] for a
/// GET that changes something.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub org: String,
    pub user_id: String,
    pub device_id: Option<String>,
    pub audit: Context,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = crate::error::AppError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        use crate::error::AppError;
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        if let Some(token) = bearer {
            let st = state.clone();
            let now = state.clock.now();
            let caller = tokio::task::spawn_blocking(move || crate::devices::verify_access(&st.store, &token, now))
                .await
                .map_err(|e| AppError::Internal(e.into()))??
                .ok_or_else(|| AppError::Unauthorized("the access token is invalid or expired; get a new one at POST /api/v1/devices/token".into()))?;
            let span = tracing::Span::current();
            span.record("org", caller.org.as_str());
            span.record("actor", format!("device:{}", caller.device_id).as_str());
            let audit = audit_context(parts, format!("device:{}", caller.device_id));
            return Ok(Self {
                org: caller.org,
                user_id: caller.user_id,
                device_id: Some(caller.device_id),
                audit,
            });
        }
        match parts.extensions.get::<SessionState>() {
            Some(SessionState::Valid(who)) => {
                if !matches!(
                    parts.method,
                    axum::http::Method::GET | axum::http::Method::HEAD
                ) {
                    api_csrf(state, &parts.headers, who)?;
                }
                Ok(Self {
                    org: who.org.slug.to_string(),
                    user_id: who.user.id.clone(),
                    device_id: None,
                    audit: audit_context(parts, format!("user:{}", who.user.id)),
                })
            }
            _ => Err(AppError::Unauthorized(
                "sign in, or send a device access token as `Authorization: Bearer ...`".into(),
            )),
        }
    }
}

/// An [`ApiCaller`] for a GET that changes something (the export: audited
/// and counted against a small budget): with the session cookie it needs
/// the CSRF header as a POST does, so another site cannot spend the
/// budget.
#[derive(Debug, Clone)]
pub struct ApiChange(pub ApiCaller);

impl FromRequestParts<AppState> for ApiChange {
    type Rejection = crate::error::AppError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = ApiCaller::from_request_parts(parts, state).await?;
        if caller.device_id.is_none()
            && let Some(SessionState::Valid(who)) = parts.extensions.get::<SessionState>()
        {
            api_csrf(state, &parts.headers, who)?;
        }
        Ok(Self(caller))
    }
}
