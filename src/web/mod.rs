//! The web shell: server-rendered pages (askama, auto-escaped) for signing
//! in, the account, and org administration, plus the one stylesheet. No
//! script, no third-party asset, so the CSP of SECURITY.md P13 holds; every
//! state-changing form carries the session's CSRF token (P16).

mod account;
mod admin;
mod admin_audit;
mod admin_backups;
mod admin_concepts;
mod admin_members;
mod admin_settings;
mod aggregates;
mod charts;
mod concepts;
mod dashboard;
mod error;
mod extract;
mod me;
mod pages;
mod setup;
mod signin;
mod teams;
mod test_signin;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};

pub use error::PageError;

use crate::http::AppState;
use crate::http::extract::session_layer;
use crate::http::ratelimit::{RouteClass, enforce};

const CSS: &str = include_str!("static/app.css");

/// The pages, behind the session middleware. Sign-in routes spend the
/// sign-in rate budget; the rest the general one.
pub fn router(state: &AppState) -> Router<AppState> {
    let sign_in = Router::new()
        .route("/o/{org}/login/start", get(signin::get_login_start))
        .route("/o/{org}/oidc/callback", get(signin::get_callback))
        .route(
            "/o/{org}/break-glass/{secret}",
            get(signin::get_break_glass).post(signin::post_break_glass),
        )
        .route(
            "/setup/{secret}",
            get(setup::get_setup).post(setup::post_setup),
        )
        .route(
            "/o/{org}/admin/test-sign-in",
            get(test_signin::get_test_sign_in),
        )
        .route_layer(from_fn_with_state(
            (state.clone(), RouteClass::SignIn),
            enforce,
        ));
    let pages = Router::new()
        .route("/", get(signin::get_index))
        .route("/o/{org}/login", get(signin::get_login))
        .route("/account", get(account::get_account))
        .route("/account/logout", post(account::post_logout))
        .route(
            "/account/logout-everywhere",
            post(account::post_logout_everywhere),
        )
        .route(
            "/account/sessions/{handle}/revoke",
            post(account::post_revoke_session),
        )
        .route("/account/pairing-code", post(account::post_pairing_code))
        .route(
            "/account/devices/{id}/revoke",
            post(account::post_revoke_device),
        )
        .route("/me", get(me::get_me))
        .route("/me/opt-out", post(me::post_opt_out))
        .route("/me/deletion", post(me::post_deletion))
        .route("/me/deletion/cancel", post(me::post_cancel_deletion))
        .route("/me/devices/{id}/rename", post(me::post_rename_device))
        .route("/me/devices/{id}/revoke", post(me::post_revoke_device))
        .route("/o/{org}/admin", get(admin::get_admin))
        .route("/o/{org}/admin/aggregates", get(aggregates::get_aggregates))
        .route("/o/{org}/admin/audit", get(admin_audit::get_audit))
        .route("/o/{org}/admin/members", get(admin_members::get_members))
        .route("/o/{org}/admin/backups", get(admin_backups::get_backups))
        .route("/o/{org}/admin/settings", get(admin_settings::get_settings))
        .route(
            "/o/{org}/admin/concepts",
            get(admin_concepts::get_concepts).post(admin_concepts::post_concept),
        )
        .route(
            "/o/{org}/admin/concepts/{slug}",
            get(admin_concepts::get_concept).post(admin_concepts::post_update),
        )
        .route(
            "/o/{org}/admin/concepts/{slug}/retire",
            post(admin_concepts::post_retire),
        )
        .route(
            "/o/{org}/admin/concepts/{slug}/restore",
            post(admin_concepts::post_restore),
        )
        .route(
            "/o/{org}/admin/members/{id}",
            get(admin_members::get_member),
        )
        .route(
            "/o/{org}/admin/members/{id}/sessions/{handle}/end",
            post(admin_members::post_end_session),
        )
        .route(
            "/o/{org}/admin/members/{id}/devices/{device}/revoke",
            post(admin_members::post_revoke_device),
        )
        .route(
            "/o/{org}/admin/audit/export",
            post(admin_audit::post_export),
        )
        .route(
            "/o/{org}/admin/users/{id}/admin",
            post(admin::post_set_admin),
        )
        .route(
            "/o/{org}/admin/users/{id}/viewer",
            post(admin::post_set_viewer),
        )
        .route("/o/{org}/dashboard", get(dashboard::get_dashboard))
        .route("/o/{org}/concepts/{slug}", get(concepts::get_concept))
        .route("/o/{org}/teams", get(teams::get_teams))
        .route("/o/{org}/teams/{team}", get(teams::get_team))
        .route(
            "/o/{org}/admin/users/{id}/sessions/revoke",
            post(admin::post_revoke_sessions),
        )
        .route("/o/{org}/admin/scim-tokens", post(admin::post_scim_token))
        .route(
            "/o/{org}/admin/scim-tokens/{id}/revoke",
            post(admin::post_revoke_scim_token),
        )
        .route_layer(from_fn_with_state(
            (state.clone(), RouteClass::General),
            enforce,
        ));
    // Downloading one's data spends the export budget, as the API does.
    let export = Router::new()
        .route("/me/export", post(me::post_export))
        .route_layer(from_fn_with_state(
            (state.clone(), RouteClass::Export),
            enforce,
        ));
    sign_in
        .merge(pages)
        .merge(export)
        .route_layer(from_fn_with_state(state.clone(), session_layer))
        .route("/static/app.css", get(get_css))
}

async fn get_css() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        CSS,
    )
}

/// A path inside this site to return to after signing in; anything else
/// (absolute URLs, `//host`, backslashes) becomes `/account`, so the
/// parameter cannot send people to another site.
pub fn safe_return(to: Option<&str>) -> String {
    match to {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= 512
                && !p.chars().any(char::is_control) =>
        {
            p.to_string()
        }
        _ => "/account".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_return;

    #[test]
    fn return_targets_stay_on_this_site() {
        assert_eq!(safe_return(Some("/o/acme/admin")), "/o/acme/admin");
        for hostile in [
            "https://evil.test/",
            "//evil.test",
            "/\\evil.test",
            "javascript:alert(1)",
            "",
            "/a\nb",
        ] {
            assert_eq!(safe_return(Some(hostile)), "/account", "{hostile}");
        }
        assert_eq!(safe_return(None), "/account");
    }
}
