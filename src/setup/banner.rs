//! What `serve` says once at start, after it listens: the URL it answers
//! at, its orgs, whether each has single sign-on, and the next step; and,
//! while there is no admin, the setup link. These are log events with
//! structured fields, so `log.format = "json"` keeps them as fields.

use super::link::Issued;
use crate::config::Settings;

/// The start-up summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    pub url: String,
    /// `slug (name)` of each org.
    pub orgs: Vec<String>,
    /// Slugs of orgs without an identity provider.
    pub sso_missing: Vec<String>,
    pub next_step: String,
}

/// The summary for this configuration; `setup` is the link made at this
/// start, if there is no admin yet.
pub fn build(settings: &Settings, setup: Option<&Issued>) -> Banner {
    let url = settings.server.public_url.to_string();
    let orgs = settings
        .orgs
        .iter()
        .map(|o| format!("{} ({})", o.slug, o.name))
        .collect();
    let missing: Vec<(usize, String)> = settings
        .orgs
        .iter()
        .enumerate()
        .filter(|(_, o)| o.oidc.is_none())
        .map(|(i, o)| (i, o.slug.to_string()))
        .collect();
    let first = settings.orgs.first().map_or("default", |o| o.slug.as_str());
    let next_step = if setup.is_some() {
        "open the setup link below in a browser to create the first admin; the admin page then lists what is left to configure".to_string()
    } else if let Some((i, slug)) = missing.first() {
        format!(
            "configure single sign-on for org `{slug}`: set orgs.{i}.oidc (issuer, client_id, client_secret_file) and register the redirect URI {url}o/{slug}/oidc/callback at the identity provider; the checklist at {url}o/{slug}/admin shows each step"
        )
    } else {
        format!(
            "sign in at {url}o/{first}/login; the checklist at {url}o/{first}/admin shows what is left"
        )
    };
    Banner {
        url,
        orgs,
        sso_missing: missing.into_iter().map(|(_, s)| s).collect(),
        next_step,
    }
}

/// Logs the summary, and the setup link when one was made.
pub fn log(banner: &Banner, setup: Option<&Issued>) {
    let sso = if banner.sso_missing.is_empty() {
        "configured".to_string()
    } else {
        format!("not configured for {}", banner.sso_missing.join(", "))
    };
    tracing::info!(
        url = %banner.url,
        orgs = %banner.orgs.join(", "),
        sso_configured = banner.sso_missing.is_empty(),
        sso = %sso,
        next_step = %banner.next_step,
        "aiworklab is ready"
    );
    if let Some(s) = setup {
        tracing::warn!(
            setup_url = %s.url,
            file = %s.file.display(),
            expires_at = %s.expires_at.to_rfc3339(),
            "no admin yet: open setup_url (single use, 24 hours; also in file) to create the first admin"
        );
    }
}
