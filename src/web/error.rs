//! Errors on the page surface: an HTML page that says what happened and
//! what to do, or a redirect to sign in. Internals are logged, never shown.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::pages::ErrorPage;
use crate::sso::SsoError;

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// 303 to the org's sign-in page (or the org list).
    #[error("sign-in required")]
    SignInRequired {
        org: Option<String>,
        return_to: String,
    },
    /// 303 to sign in again at the IdP before an admin action (P10).
    #[error("re-authentication required")]
    ReauthRequired { org: String, return_to: String },
    /// 403 page.
    #[error("{0}")]
    Forbidden(String),
    /// 404 page.
    #[error("not found")]
    NotFound,
    /// 404 page that says what was not found and where to look instead.
    #[error("{0}")]
    Missing(String),
    /// 400 page: what in the form was wrong and how to fix it.
    #[error("{0}")]
    BadRequest(String),
    /// A failed sign-in: the page says why; status by cause.
    #[error("{err}")]
    SignIn { org: String, err: Box<SsoError> },
    /// 503 page with `Retry-After`: every read connection of the database
    /// stayed busy.
    #[error("the server is busy; retry after {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// 500 page; the cause is logged.
    #[error("internal error: {0}")]
    Internal(String),
}

impl PageError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::ReadersBusy { .. } => {
                tracing::warn!(error = %e, "database busy; the browser is asked to retry");
                Self::Busy {
                    retry_after_secs: crate::error::BUSY_RETRY_AFTER_SECS,
                }
            }
            other => Self::internal(other),
        }
    }
}

impl From<crate::users::UserError> for PageError {
    fn from(e: crate::users::UserError) -> Self {
        match e {
            crate::users::UserError::NotFound => Self::NotFound,
            crate::users::UserError::Store(s) => s.into(),
            other => Self::internal(other),
        }
    }
}

impl From<crate::tokens::TokenError> for PageError {
    fn from(e: crate::tokens::TokenError) -> Self {
        match e {
            crate::tokens::TokenError::Store(s) => s.into(),
            other => Self::internal(other),
        }
    }
}

impl From<crate::devices::DeviceError> for PageError {
    fn from(e: crate::devices::DeviceError) -> Self {
        match e {
            crate::devices::DeviceError::Store(s) => s.into(),
            crate::devices::DeviceError::NotFound => Self::NotFound,
            crate::devices::DeviceError::Invalid(m) => Self::BadRequest(m),
            other => Self::internal(other),
        }
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn page(status: StatusCode, p: ErrorPage) -> Response {
    match p.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "error page failed to render");
            (status, p.message).into_response()
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::SignInRequired { org, return_to } => {
                let to = match org {
                    Some(o) => format!("/o/{}/login?return_to={}", encode(&o), encode(&return_to)),
                    None => "/".into(),
                };
                Redirect::to(&to).into_response()
            }
            Self::ReauthRequired { org, return_to } => Redirect::to(&format!(
                "/o/{}/login?reauth=1&return_to={}",
                encode(&org),
                encode(&return_to)
            ))
            .into_response(),
            Self::Forbidden(msg) => page(
                StatusCode::FORBIDDEN,
                ErrorPage::new("Not allowed", &msg, None, None),
            ),
            Self::BadRequest(msg) => page(
                StatusCode::BAD_REQUEST,
                ErrorPage::new(
                    "Please check the form",
                    &msg,
                    Some("Go back, correct the field and send it again.".into()),
                    None,
                ),
            ),
            Self::Missing(msg) => page(
                StatusCode::NOT_FOUND,
                ErrorPage::new("Not found", &msg, None, None),
            ),
            Self::NotFound => page(
                StatusCode::NOT_FOUND,
                ErrorPage::new(
                    "Page not found",
                    "There is nothing at this address.",
                    None,
                    Some(("/", "Go to the start page")),
                ),
            ),
            Self::SignIn { org, err } => {
                let status = match err.as_ref() {
                    SsoError::IdpUnavailable(_) | SsoError::EgressRefused(_) => {
                        StatusCode::BAD_GATEWAY
                    }
                    e if e.is_internal() => StatusCode::INTERNAL_SERVER_ERROR,
                    SsoError::Refused(_) | SsoError::MfaRequired => StatusCode::FORBIDDEN,
                    SsoError::TooManySignIns(_) => StatusCode::TOO_MANY_REQUESTS,
                    _ => StatusCode::BAD_REQUEST,
                };
                let retry_after = match err.as_ref() {
                    SsoError::TooManySignIns(secs) => Some(*secs),
                    _ => None,
                };
                if err.is_internal() {
                    tracing::error!(error = %err, "sign-in failed");
                } else {
                    tracing::warn!(reason = err.code(), error = %err, "sign-in failed");
                }
                let message = match err.as_ref() {
                    e if e.is_internal() => "Sign-in did not complete.".to_string(),
                    SsoError::Refused(_) => "Sign-in did not complete.".to_string(),
                    other => format!("Sign-in did not complete: {other}."),
                };
                let again = format!("/o/{org}/login");
                let mut res = page(
                    status,
                    ErrorPage::new(
                        "Sign-in failed",
                        &message,
                        Some(err.advice()),
                        Some((&again, "Back to sign-in")),
                    ),
                );
                if let Some(secs) = retry_after {
                    res.headers_mut()
                        .insert(axum::http::header::RETRY_AFTER, secs.into());
                }
                res
            }
            Self::Busy { retry_after_secs } => {
                let mut res = page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorPage::new(
                        "The appliance is busy",
                        "Too many requests are being served right now.",
                        Some(format!(
                            "Reload the page in {retry_after_secs} s; if this keeps happening, tell your administrator (the server log says why)."
                        )),
                        None,
                    ),
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_secs.into());
                res
            }
            Self::Internal(e) => {
                tracing::error!(error = %e, "page failed");
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorPage::new(
                        "Something went wrong",
                        "The appliance could not complete this request; the server log has the details.",
                        None,
                        None,
                    ),
                )
            }
        }
    }
}

/// 303 See Other to `to`, setting or clearing the session cookie.
pub fn redirect_with_cookie(to: &str, cookie: HeaderValue) -> Response {
    let mut res = Redirect::to(to).into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn busy() -> StoreError {
        StoreError::ReadersBusy {
            path: "org-acme.db".into(),
            size: 8,
            waited: std::time::Duration::from_secs(5),
        }
    }

    /// A busy database is a page that says so, with `Retry-After`, on every
    /// path a store error reaches a page by; anything else stays a 500.
    #[test]
    fn a_busy_database_is_503_with_retry_after_on_pages() {
        let through_users = PageError::from(crate::users::UserError::Store(busy()));
        let through_tokens = PageError::from(crate::tokens::TokenError::Store(busy()));
        let through_devices = PageError::from(crate::devices::DeviceError::Store(busy()));
        for e in [
            PageError::from(busy()),
            through_users,
            through_tokens,
            through_devices,
        ] {
            let res = e.into_response();
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        }
        let other = PageError::from(StoreError::Sqlite(rusqlite::Error::InvalidQuery));
        let res = other.into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!res.headers().contains_key(header::RETRY_AFTER));
    }
}
