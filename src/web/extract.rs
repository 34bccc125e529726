//! The page extractors: who is signed in on a page, and whether they may
//! read or change admin pages. Each is built from the outcome the session
//! middleware (`http::extract::session_layer`) left in the request, and
//! rejects with a [`PageError`]: a redirect to sign in, a 403 page, or a
//! page that says the session could not be checked.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::Duration;

use super::PageError;
use crate::audit::Context;
use crate::http::AppState;
use crate::http::extract::{CsrfProblem, SessionState, SignedIn, audit_context, csrf_problem};
use crate::users::{AdminCtx, Role};

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
            SessionState::Unchecked { busy: true } => Err(PageError::Busy {
                retry_after_secs: crate::error::BUSY_RETRY_AFTER_SECS,
            }),
            SessionState::Unchecked { busy: false } => Err(PageError::internal(
                "the session cookie could not be checked",
            )),
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

/// A viewer or an admin of the path's org, for the org dashboard: figures
/// of the org's privacy releases only, nothing to administer. A member,
/// or anyone of another org, is refused.
#[derive(Debug, Clone)]
pub struct DashboardViewer {
    pub who: Arc<SignedIn>,
    pub audit: Context,
}

impl FromRequestParts<AppState> for DashboardViewer {
    type Rejection = PageError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let SignedInUser { who, audit } = SignedInUser::from_request_parts(parts, state).await?;
        if !who.role().sees_dashboard() {
            return Err(PageError::Forbidden(
                "The organisation dashboard is for viewers and administrators. Ask an administrator for the viewer role.".into(),
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
    // A member's page for its actions; the audit log for its export.
    if let Some((base, rest)) = path.split_once("/admin/members/") {
        let id = rest.split('/').next().unwrap_or_default();
        return format!("{base}/admin/members/{id}");
    }
    if let Some(base) = path.strip_suffix("/audit/export") {
        return format!("{base}/audit");
    }
    if path.contains("/admin/concepts/") {
        for action in ["/retire", "/restore"] {
            if let Some(concept) = path.strip_suffix(action) {
                return concept.to_string();
            }
        }
    }
    path.rsplit_once("/users/")
        .map_or(path, |(base, _)| base)
        .to_string()
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
