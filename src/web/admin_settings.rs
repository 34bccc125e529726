//! The org's effective settings, read-only, secrets redacted (admins
//! only). Thin: the rendering is `crate::config::render_for_org`'s.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::PageError;
use super::extract::AdminViewer;
use super::pages::render;
use crate::http::AppState;

#[derive(Template)]
#[template(path = "admin_settings.html")]
pub struct SettingsPage {
    pub org_slug: String,
    pub org_name: String,
    pub csrf: String,
    pub toml: String,
}

pub async fn get_settings(
    State(state): State<AppState>,
    admin: AdminViewer,
) -> Result<Response, PageError> {
    let who = &admin.who;
    Ok(render(&SettingsPage {
        org_slug: who.org.slug.to_string(),
        org_name: who.org.name.clone(),
        csrf: who.session.csrf.clone(),
        toml: crate::config::render_for_org(&state.settings.shown, who.org.slug.as_str()),
    }))
}
