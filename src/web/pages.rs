//! The page models: what each template shows, already formatted.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

use super::PageError;

/// Renders a template into a response.
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => PageError::internal(e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
    pub advice: Option<String>,
    pub link: Option<(String, String)>,
    pub request_id: Option<String>,
}

impl ErrorPage {
    pub fn new(
        title: &str,
        message: &str,
        advice: Option<String>,
        link: Option<(&str, &str)>,
    ) -> Self {
        Self {
            title: title.into(),
            message: message.into(),
            advice,
            link: link.map(|(a, b)| (a.to_string(), b.to_string())),
            request_id: None,
        }
    }
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub orgs: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub org_name: String,
    pub reauth: bool,
    pub notice: Option<String>,
    pub sso_configured: bool,
    pub start_url: String,
    /// Only for a visitor on the server's own machine, with no SSO.
    pub local_help: Option<super::setup::LocalHelp>,
}

pub struct SessionLine {
    pub handle: String,
    pub created: String,
    pub last_seen: String,
    pub ip: String,
    pub user_agent: String,
    pub current: bool,
}

pub struct DeviceLine {
    pub id: String,
    pub name: String,
    pub created: String,
    pub last_seen: String,
    pub state: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    /// The org's own concepts and what tags them.
    pub org_concepts: Vec<OrgConceptLine>,
    pub devices: Vec<DeviceLine>,
    /// A pairing code just created: (code, expiry), shown once.
    pub new_code: Option<(String, String)>,
    pub public_url: String,
    pub org_slug: String,
    pub org_name: String,
    pub name: String,
    pub user_name: String,
    pub email: String,
    pub role: String,
    pub groups: Vec<String>,
    pub is_admin: bool,
    /// Admins and viewers: the org dashboard is linked.
    pub sees_dashboard: bool,
    pub csrf: String,
    pub sessions: Vec<SessionLine>,
}

pub struct OrgConceptLine {
    pub slug: String,
    pub title: String,
    pub retired: bool,
    /// What the kernel tags it from, as text.
    pub matchers: String,
}

pub struct MemberLine {
    pub id: String,
    pub user_name: String,
    pub display_name: String,
    pub role: String,
    pub via_group: bool,
    pub granted: bool,
    /// Holds the viewer role by a direct grant (not through a group).
    pub viewer_granted: bool,
    /// A viewer through one of `viewer_groups` (the role cannot be taken
    /// away here).
    pub viewer_via_group: bool,
    pub active: bool,
}

/// One SCIM token on the admin page (never its secret).
pub struct TokenLine {
    pub id: String,
    pub name: String,
    pub created: String,
    pub created_by: String,
    /// The expiry date, or `never` (tokens the operator made without one).
    pub expires: String,
    pub last_used: String,
    /// `active`, `revoked …` or `expired …`.
    pub state: String,
    pub live: bool,
}

#[derive(Template)]
#[template(path = "admin.html")]
pub struct AdminPage {
    pub org_slug: String,
    pub org_name: String,
    pub admin_groups: Vec<String>,
    pub viewer_groups: Vec<String>,
    pub members: Vec<MemberLine>,
    /// More members than the first page: the members page has them.
    pub more_members: bool,
    pub scim_tokens: Vec<TokenLine>,
    /// A token just created: its name and secret, shown this once.
    pub new_token: Option<(String, String)>,
    /// Where the identity provider sends SCIM requests.
    pub scim_url: String,
    /// How long a token made here lives (`tokens.scim_expiry_days`).
    pub token_expiry_days: i64,
    pub csrf: String,
    pub notice: Option<String>,
    /// The setup checklist (`crate::setup::checklist`).
    pub checklist: Vec<crate::setup::checklist::Item>,
    /// Whether the test sign-in can run (the org has an identity provider).
    pub can_test_sign_in: bool,
}

#[derive(Template)]
#[template(path = "break_glass.html")]
pub struct BreakGlassPage {
    pub org_name: String,
}

/// One week's bar in a trend: CSS classes for its height (`h0`..`h8`) and
/// demonstrated share (`f0`..`f8`), or `sup` when suppressed.
pub struct Bar {
    pub class: String,
    pub label: String,
}

pub struct AggregateLine {
    pub slug: String,
    pub title: String,
    pub retired: bool,
    pub suppressed: bool,
    pub n_seen: String,
    pub n_demonstrated: String,
    pub observed: String,
    pub predicted: String,
    pub bars: Vec<Bar>,
    /// The trend as text, week by week (for screen readers and tooltips).
    pub summary: String,
}

pub struct DomainSection {
    pub title: String,
    pub rows: Vec<AggregateLine>,
}

#[derive(Template)]
#[template(path = "aggregates.html")]
pub struct AggregatesPage {
    pub org_slug: String,
    pub org_name: String,
    pub csrf: String,
    /// Every team, and whether it is the one shown.
    pub teams: Vec<(String, bool)>,
    pub team: Option<String>,
    pub min_cohort: usize,
    /// How the figures are protected (docs/privacy.md).
    pub protection: crate::privacy::Protection,
    /// The ISO week of the release shown.
    pub period: String,
    pub first_week: String,
    pub last_week: String,
    /// Why there are no figures (an unknown team, or one the privacy rules refuse).
    pub notice: Option<String>,
    /// Concepts suppressed in this release (not listed).
    pub hidden: usize,
    pub domains: Vec<DomainSection>,
}
