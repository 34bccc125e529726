//! First-run pages: the setup link's form, which creates the first admin
//! and signs them in, and what the sign-in page tells a visitor on the
//! server's own machine when single sign-on is not configured.

use axum::extract::{Extension, Form, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::PageError;
use super::error::redirect_with_cookie;
use super::pages::render;
use crate::http::AppState;
use crate::http::extract::{Meta, session_cookie};
use crate::http::forwarded::ClientInfo;
use crate::setup::link::{self, FirstAdmin, Refused};

const DEAD: &str = "This setup link has expired, was already used, or an administrator exists already. An operator can sign in with `aiworklab admin login-link`, or restart the server while no administrator exists to get a new setup link.";

/// The setup form.
#[derive(askama::Template)]
#[template(path = "setup.html")]
pub struct SetupPage {
    /// `(slug, name)` of every org.
    pub orgs: Vec<(String, String)>,
    pub expires: String,
    /// What was wrong with the last submission, and what was typed.
    pub problem: Option<String>,
    pub form: SetupForm,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    pub org: String,
    #[serde(default)]
    pub user_name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub display_name: String,
}

fn page(
    state: &AppState,
    expires: Option<chrono::DateTime<chrono::Utc>>,
    problem: Option<String>,
    form: SetupForm,
) -> Response {
    render(&SetupPage {
        orgs: state
            .settings
            .orgs
            .iter()
            .map(|o| (o.slug.to_string(), o.name.clone()))
            .collect(),
        expires: expires.map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
        problem,
        form,
    })
}

pub async fn get_setup(
    State(state): State<AppState>,
    Path(secret): Path<String>,
) -> Result<Response, PageError> {
    let st = state.clone();
    let now = state.clock.now();
    let expires = tokio::task::spawn_blocking(move || {
        if link::is_valid(&st.store, &st.settings, &secret, now)? {
            link::expiry(&st.store, now)
        } else {
            Ok(None)
        }
    })
    .await
    .map_err(PageError::internal)??;
    match expires {
        Some(t) => Ok(page(&state, Some(t), None, SetupForm::default())),
        None => Err(PageError::Forbidden(DEAD.into())),
    }
}

pub async fn post_setup(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    Meta(meta): Meta,
    Form(form): Form<SetupForm>,
) -> Result<Response, PageError> {
    let st = state.clone();
    let now = state.clock.now();
    let typed = form.clone();
    let first = FirstAdmin {
        org: if form.org.is_empty() {
            state
                .settings
                .orgs
                .first()
                .map(|o| o.slug.to_string())
                .unwrap_or_default()
        } else {
            form.org.trim().to_string()
        },
        user_name: form.user_name.trim().to_string(),
        email: form.email.trim().to_string(),
        display_name: form.display_name.trim().to_string(),
    };
    let outcome = tokio::task::spawn_blocking(move || {
        let out = link::redeem(&st.store, &st.settings, &secret, &first, &meta, now);
        let expires = link::expiry(&st.store, now).ok().flatten();
        (out, expires)
    })
    .await
    .map_err(PageError::internal)?;
    match outcome {
        (Ok(Ok((org, session))), _) => Ok(redirect_with_cookie(
            &format!("/o/{org}/admin?done=welcome"),
            session_cookie(session.expose()),
        )),
        (Ok(Err(Refused::Dead)), _) => Err(PageError::Forbidden(DEAD.into())),
        (Ok(Err(Refused::Invalid(why))), expires) => {
            let mut res = page(&state, expires, Some(why), typed);
            *res.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            Ok(res)
        }
        (Err(e), _) => Err(PageError::internal(e)),
    }
}

/// What the sign-in page may tell a visitor on the server's own machine
/// about the ways in that need the operator.
pub struct LocalHelp {
    /// A setup link is waiting: where the operator finds it.
    pub setup_file: Option<String>,
    /// The break-glass command for this org.
    pub login_link: String,
}

/// Whether the request comes from the server's own machine: a loopback
/// client address, and not a proxy's forwarded request (an untrusted
/// proxy on loopback would otherwise make every visitor look local).
pub fn is_local(client: Option<&ClientInfo>, headers: &HeaderMap) -> bool {
    client.is_some_and(|c| {
        c.ip.is_loopback()
            && (c.ip != c.peer.to_canonical() || !headers.contains_key("x-forwarded-for"))
    })
}

/// The help for a local visitor of `org`'s sign-in page; `None` for
/// everyone else. Never contains the setup secret.
///
/// # Errors
/// Store errors.
pub async fn local_help(
    state: &AppState,
    client: Option<Extension<ClientInfo>>,
    headers: &HeaderMap,
    org: &str,
) -> Result<Option<LocalHelp>, PageError> {
    if !is_local(client.as_ref().map(|c| &c.0), headers) {
        return Ok(None);
    }
    let st = state.clone();
    let now = state.clock.now();
    let pending = tokio::task::spawn_blocking(move || link::pending(&st.store, now))
        .await
        .map_err(PageError::internal)??;
    Ok(Some(LocalHelp {
        setup_file: pending.then(|| {
            link::file_path(state.store.data_dir())
                .display()
                .to_string()
        }),
        login_link: format!("aiworklab admin login-link --org {org} --user <user name>"),
    }))
}
