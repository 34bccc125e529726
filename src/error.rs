//! The error type of the JSON API at the HTTP edge. Each variant documents
//! its status. Responses are RFC 9457 problem documents; internals never
//! leak: the real error is logged inside the request span and the client
//! gets a clear, safe message. The other surfaces render their own:
//! `web::PageError` (HTML pages) and `scim::error::ScimError` (RFC 7644
//! §3.12 documents).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Media type of RFC 9457 problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request is malformed; the message names what and the fix.
    #[error("{0}")]
    BadRequest(String),
    /// 400: a request that breaks the schema; `pointer` (RFC 6901) names the
    /// first offending value.
    #[error("{pointer}: {message}")]
    Schema { pointer: String, message: String },
    /// 401: missing, malformed, unknown, expired or revoked credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated (or identified by address) but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource (also for resources of another org).
    #[error("not found")]
    NotFound,
    /// 404 with a message naming what is missing and where to look.
    #[error("{0}")]
    Missing(String),
    /// 409: conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than the endpoint accepts.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 429: over the rate limit for this endpoint class; retry after N s.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// 503: a dependency (database, IdP) is not available right now.
    #[error("{0}")]
    Unavailable(String),
    /// 503: every read connection of the database stayed busy; the client
    /// should retry after N s (`Retry-After`).
    #[error("the server is busy; retry after {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// 500: a bug or an unexpected failure; logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// How long a client should wait after a [`AppError::Busy`] (and its
/// SCIM and page counterparts).
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::ReadersBusy { .. } => {
                tracing::warn!(error = %e, "database busy; the client is asked to retry");
                Self::Busy {
                    retry_after_secs: BUSY_RETRY_AFTER_SECS,
                }
            }
            other => Self::Internal(other.into()),
        }
    }
}

/// A refused release says why (docs/privacy.md): an unknown team is 404,
/// a team too small 403, and the rules that depend on this period's
/// releases (membership not yet stable, too close to a released scope,
/// budget spent) 409.
impl From<crate::privacy::ReleaseError> for AppError {
    fn from(e: crate::privacy::ReleaseError) -> Self {
        use crate::privacy::ReleaseError as R;
        match e {
            R::Store(s) => s.into(),
            R::UnknownTeam(_) => Self::NotFound,
            R::TeamTooSmall(_) => Self::Forbidden(e.to_string()),
            R::Unstable(_) | R::TooClose(_) | R::BudgetSpent(_) => Self::Conflict(e.to_string()),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension member: the JSON pointer of the first offending value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

impl Problem {
    /// A problem for `status` with the standard reason as its title.
    pub fn new(status: StatusCode, detail: Option<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            pointer: None,
        }
    }

    pub fn into_response_with(self, status: StatusCode) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        res
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Schema { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound | Self::Missing(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                Some(
                    "an internal error occurred; the request id identifies it in the server log"
                        .into(),
                )
            }
            Self::Unavailable(msg) => {
                tracing::warn!(reason = %msg, "service unavailable");
                Some(msg.clone())
            }
            Self::NotFound => None,
            Self::TooManyRequests { retry_after_secs } => Some(format!(
                "rate limit exceeded for this endpoint; retry after {retry_after_secs} s"
            )),
            other => Some(other.to_string()),
        };
        let mut problem = Problem::new(status, detail);
        if let Self::Schema { pointer, .. } = &self {
            problem.pointer = Some(pointer.clone());
        }
        let mut res = problem.into_response_with(status);
        if let Self::TooManyRequests { retry_after_secs } | Self::Busy { retry_after_secs } = self {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A busy database is 503 with `Retry-After` on the JSON API; a store
    /// failure of another kind is a 500 without it.
    #[test]
    fn a_busy_database_is_503_with_retry_after_on_the_api() {
        let busy = crate::store::StoreError::ReadersBusy {
            path: "system.db".into(),
            size: 8,
            waited: std::time::Duration::from_secs(5),
        };
        let res = AppError::from(busy).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        let other = crate::store::StoreError::Sqlite(rusqlite::Error::InvalidQuery);
        let res = AppError::from(other).into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!res.headers().contains_key(header::RETRY_AFTER));
    }
}
