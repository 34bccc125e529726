//! SCIM tokens made on the admin page live only as long as their maker's
//! admin role. A SCIM change can take that role away (the maker dropped
//! from an admin group, deactivated or deleted), so after every successful
//! SCIM change the org's tokens are checked again; and a token is checked
//! when it is presented, which covers role changes made any other way
//! (the org's `admin_groups`, groups from a sign-in).

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::audit::Context;
use crate::http::AppState;
use crate::http::extract::audit_context;
use crate::store::OrgDb;
use crate::tokens::{self, TokenError, TokenInfo};

/// Whether `req` may have changed users or groups: a successful write that
/// is not a search.
fn changes(method: &Method, path: &str) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && !path.ends_with("/.search")
}

/// Route layer: after a successful SCIM change, revokes the tokens whose
/// maker is no longer an admin (audited with this request's context).
pub async fn after_changes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let changing = changes(req.method(), req.uri().path());
    let (parts, body) = req.into_parts();
    let ctx = Context {
        actor: "system".into(),
        ..audit_context(&parts, String::new())
    };
    let res = next.run(Request::from_parts(parts, body)).await;
    if changing && res.status().is_success() {
        let st = state.clone();
        let swept = tokio::task::spawn_blocking(move || {
            let now = st.clock.now();
            for org in st.store.orgs() {
                if let Some(settings) = st.settings.org(&org.slug) {
                    tokens::revoke_for_lost_admins(org, settings, &ctx, now)?;
                }
            }
            Ok::<_, TokenError>(())
        })
        .await;
        match swept {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "checking SCIM tokens' makers failed"),
            Err(e) => tracing::error!(error = %e, "checking SCIM tokens' makers failed"),
        }
    }
    res
}

/// Whether a presented token must be refused because its maker has lost
/// the admin role (it is revoked now, if so).
///
/// # Errors
/// Store errors.
pub fn maker_lost_role(
    state: &AppState,
    org: &OrgDb,
    info: &TokenInfo,
    request: &Context,
    now: DateTime<Utc>,
) -> Result<bool, TokenError> {
    let Some(settings) = state.settings.org(&org.slug) else {
        return Ok(false);
    };
    let ctx = Context {
        actor: "system".into(),
        ..request.clone()
    };
    tokens::check_maker(org, settings, info, &ctx, now)
}
