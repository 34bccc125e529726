//! What can go wrong in a SCIM request, with the HTTP status and `scimType`
//! of RFC 7644 §3.12. The HTTP edge (`routes`) renders it as a SCIM error
//! document; internals are logged there and never shown.

use crate::store::StoreError;

/// A SCIM error. `status` is the HTTP status code.
#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    /// A client error: status, `scimType` (if the RFC names one), detail.
    #[error("{detail}")]
    Client {
        status: u16,
        scim_type: Option<&'static str>,
        detail: String,
    },
    /// 503 with `Retry-After`: every read connection of the database stayed
    /// busy; the client should retry after that many seconds.
    #[error("the server is busy; retry after {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// 500: logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ScimError {
    /// 400 with a `scimType`.
    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::Client {
            status: 400,
            scim_type: Some(scim_type),
            detail: detail.into(),
        }
    }

    /// 400 `invalidValue`.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad("invalidValue", detail)
    }

    /// 400 `invalidSyntax`.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad("invalidSyntax", detail)
    }

    /// 400 `invalidPath`.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad("invalidPath", detail)
    }

    /// 400 `mutability`.
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad("mutability", detail)
    }

    /// A status without a `scimType`.
    pub fn status(status: u16, detail: impl Into<String>) -> Self {
        Self::Client {
            status,
            scim_type: None,
            detail: detail.into(),
        }
    }

    /// 404: no such resource in this org (also for other orgs' resources).
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::status(404, format!("no {what} with id {id:?}"))
    }

    /// 409 `uniqueness`.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::Client {
            status: 409,
            scim_type: Some("uniqueness"),
            detail: detail.into(),
        }
    }

    /// 412: the `If-Match` version is not the current one.
    pub fn precondition(current: i64) -> Self {
        Self::status(
            412,
            format!("the resource has changed; its current version is W/\"{current}\""),
        )
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ReadersBusy { .. } => {
                tracing::warn!(error = %e, "database busy; the SCIM client is asked to retry");
                Self::Busy {
                    retry_after_secs: crate::error::BUSY_RETRY_AFTER_SECS,
                }
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl From<crate::tokens::TokenError> for ScimError {
    fn from(e: crate::tokens::TokenError) -> Self {
        match e {
            crate::tokens::TokenError::Store(s) => s.into(),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<rusqlite::Error> for ScimError {
    fn from(e: rusqlite::Error) -> Self {
        Self::from(StoreError::from(e))
    }
}
