//! The extractors of the SCIM endpoints: the org's bearer token (checked
//! before a body is read, or in the same blocking task as the work), and
//! a request body that is SCIM JSON within the size limit.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use serde_json::{Map, Value as Json};

use super::error::ScimError;
use super::routes::{Failure, SCIM_JSON, base, body_limit, too_many};
use super::service::{self, Scim};
use crate::audit::Context;
use crate::error::AppError;
use crate::http::AppState;
use crate::http::extract::audit_context;
use crate::http::ratelimit::admit_scim_token;
use crate::tokens::{self, TokenKind};

/// The SCIM bearer token a request presents, not checked yet, with the
/// request's audit context. Handlers of requests without a body take this
/// and check it in the same blocking task as their work ([`with_scim`]),
/// which saves a trip through the blocking pool; handlers that read a
/// body take [`ScimBearer`], checked before the body is read.
pub struct ScimPresented {
    token: String,
    audit: Context,
}

impl FromRequestParts<AppState> for ScimPresented {
    type Rejection = Failure;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Failure> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split_once(' ')
                    .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
            })
            .map(|(_, t)| t.trim().to_string())
            .ok_or_else(unauthorized)?;
        Ok(Self {
            token,
            audit: audit_context(parts, String::new()),
        })
    }
}

fn unauthorized() -> Failure {
    Failure::Scim(ScimError::status(
        401,
        "send the org's SCIM token as `Authorization: Bearer ...`",
    ))
}

impl ScimPresented {
    /// Checks the token (blocking: it reads the orgs' token tables) and
    /// its own rate budget: the org it belongs to and the audit context
    /// with the token as actor.
    fn check(self, state: &AppState) -> Result<ScimBearer, Failure> {
        let found = tokens::authenticate(
            &state.store,
            TokenKind::Scim,
            &self.token,
            state.clock.now(),
        )
        .map_err(|e| Failure::Scim(ScimError::Internal(e.into())))?
        .ok()
        .ok_or_else(unauthorized)?;
        let (org, info) = found;
        let now = state.clock.now();
        if super::demotion::maker_lost_role(state, org, &info, &self.audit, now)
            .map_err(|e| Failure::Scim(ScimError::Internal(e.into())))?
        {
            return Err(unauthorized());
        }
        // Besides the per-address budget: one budget per token.
        match admit_scim_token(state, info.id) {
            Ok(()) => {}
            Err(AppError::TooManyRequests { retry_after_secs }) => {
                return Err(Failure::Answer(Box::new(too_many(retry_after_secs))));
            }
            Err(e) => return Err(Failure::Answer(Box::new(e.into_response()))),
        }
        let actor = format!("token:scim:{}", info.name);
        Ok(ScimBearer {
            org: org.slug.to_string(),
            audit: Context {
                actor,
                ..self.audit
            },
        })
    }
}

/// An identity provider authenticated by the org's SCIM bearer token.
pub struct ScimBearer {
    org: String,
    audit: Context,
}

impl ScimBearer {
    /// Tags the request's span with the org and the token.
    fn record(&self) {
        let span = tracing::Span::current();
        span.record("org", self.org.as_str());
        span.record("actor", self.audit.actor.as_str());
    }
}

impl FromRequestParts<AppState> for ScimBearer {
    type Rejection = Failure;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let presented = ScimPresented::from_request_parts(parts, state).await?;
        let st = state.clone();
        let caller = tokio::task::spawn_blocking(move || presented.check(&st))
            .await
            .map_err(|e| Failure::Scim(ScimError::Internal(e.into())))??;
        caller.record();
        Ok(caller)
    }
}

/// A request body: `application/scim+json` or `application/json`, at most
/// [`body_limit`] bytes, a JSON object.
pub struct ScimBody(pub Map<String, Json>);

impl FromRequest<AppState> for ScimBody {
    type Rejection = Failure;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Failure> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case(SCIM_JSON) && !mime.eq_ignore_ascii_case("application/json") {
            return Err(Failure::Scim(ScimError::status(
                415,
                "send the body as application/scim+json (or application/json)",
            )));
        }
        let max = body_limit(state);
        let bytes = axum::body::to_bytes(req.into_body(), max)
            .await
            .map_err(|_| {
                Failure::Scim(ScimError::status(
                    413,
                    format!("the body is larger than {max} bytes"),
                ))
            })?;
        Ok(Self(service::object(&bytes)?))
    }
}

/// Who calls: a token already checked, or one to check first, in the
/// same blocking task as the work.
pub enum Caller {
    Checked(ScimBearer),
    Presented(ScimPresented),
}

impl From<ScimBearer> for Caller {
    fn from(c: ScimBearer) -> Self {
        Self::Checked(c)
    }
}

impl From<ScimPresented> for Caller {
    fn from(p: ScimPresented) -> Self {
        Self::Presented(p)
    }
}

/// Runs `f` with the caller's org on a blocking thread, checking the
/// caller's token there first when it is not checked yet.
pub(super) async fn with_scim<T: Send + 'static>(
    state: &AppState,
    caller: impl Into<Caller>,
    f: impl FnOnce(&Scim<'_>) -> Result<T, ScimError> + Send + 'static,
) -> Result<T, Failure> {
    let st = state.clone();
    let base = base(state);
    let caller = caller.into();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let caller = match caller {
            Caller::Checked(c) => c,
            Caller::Presented(p) => {
                let c = p.check(&st)?;
                span.in_scope(|| c.record());
                c
            }
        };
        let org = st.store.org(&caller.org)?;
        let scim = Scim {
            org,
            audit: caller.audit,
            base,
        };
        Ok(f(&scim)?)
    })
    .await
    .map_err(|e| Failure::Scim(ScimError::Internal(e.into())))?
}
