//! Sign-in pages and the OIDC callback. Every failure ends on a page that
//! says why, and is audited as `sign_in.failed` with its reason.
//!
//! Each sign-in is bound to the browser that starts it (login CSRF, P7): a
//! browser with a live session is known by that session (its CSRF secret,
//! which survives id rotation); any other browser is given a pre-sign-in
//! value in the one session cookie (`aiwl_signin_...`, ten minutes). The
//! hash of that secret is stored with the state, and the callback must
//! present the same secret, so a callback URL made in one browser signs
//! nobody in in another.

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::redirect_with_cookie;
use super::pages::{BreakGlassPage, IndexPage, LoginPage, render};
use super::{PageError, safe_return};
use crate::audit::Context;
use crate::config::OrgSettings;
use crate::http::AppState;
use crate::http::extract::{Meta, SessionState, session_cookie, signing_in_cookie};
use crate::http::forwarded::ClientInfo;
use crate::sso::SsoError;
use crate::store::OrgDb;
use crate::users::signin::resolve;

fn org_of<'a>(state: &'a AppState, slug: &str) -> Result<(&'a OrgSettings, &'a OrgDb), PageError> {
    let db = state.store.org(slug).map_err(|_| PageError::NotFound)?;
    let settings = state.settings.org(&db.slug).ok_or(PageError::NotFound)?;
    Ok((settings, db))
}

pub(super) fn callback_url(state: &AppState, org: &str) -> Result<url::Url, PageError> {
    state
        .settings
        .server
        .public_url
        .join(&format!("o/{org}/oidc/callback"))
        .map_err(PageError::internal)
}

pub async fn get_index(State(state): State<AppState>) -> Response {
    if let [only] = state.settings.orgs.as_slice() {
        return Redirect::to(&format!("/o/{}/login", only.slug)).into_response();
    }
    let orgs = state
        .settings
        .orgs
        .iter()
        .map(|o| (o.slug.to_string(), o.name.clone()))
        .collect();
    render(&IndexPage { orgs })
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
    reauth: Option<String>,
    signed_out: Option<String>,
}

pub async fn get_login(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Query(q): Query<LoginQuery>,
    Extension(session): Extension<SessionState>,
    client: Option<Extension<ClientInfo>>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let (settings, _) = org_of(&state, &org)?;
    let reauth = q.reauth.is_some();
    if let SessionState::Valid(who) = &session
        && who.org.slug == settings.slug
        && !reauth
    {
        return Ok(Redirect::to(&safe_return(q.return_to.as_deref())).into_response());
    }
    let return_to = safe_return(q.return_to.as_deref());
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let start_url = format!(
        "/o/{}/login/start?return_to={}{}",
        settings.slug,
        enc(&return_to),
        if reauth { "&reauth=1" } else { "" }
    );
    let sso_configured = settings.oidc.is_some();
    let local_help = if sso_configured {
        None
    } else {
        super::setup::local_help(&state, client, &headers, settings.slug.as_str()).await?
    };
    Ok(render(&LoginPage {
        org_name: settings.name.clone(),
        reauth,
        notice: q.signed_out.map(|_| "You are signed out.".to_string()),
        sso_configured,
        start_url,
        local_help,
    }))
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
    reauth: Option<String>,
}

/// The secret that identifies this browser to a sign-in it starts or
/// completes: its live session's CSRF secret, or its pre-sign-in value.
fn browser_secret(session: &SessionState) -> Option<String> {
    match session {
        SessionState::Valid(who) => Some(format!("session:{}", who.session.csrf)),
        SessionState::SigningIn(v) => Some(v.clone()),
        SessionState::Absent | SessionState::Invalid => None,
    }
}

pub async fn get_login_start(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Query(q): Query<StartQuery>,
    Extension(session): Extension<SessionState>,
    Meta(meta): Meta,
) -> Result<Response, PageError> {
    let (settings, db) = org_of(&state, &org)?;
    // Re-authentication only makes sense for a session of this org.
    let reauth = q.reauth.is_some()
        && matches!(&session, SessionState::Valid(w) if w.org.slug == settings.slug);
    let redirect = callback_url(&state, settings.slug.as_str())?;
    let now = state.clock.now();
    let return_to = safe_return(q.return_to.as_deref());
    // A browser without a session gets a pre-sign-in value (kept when it
    // already has one, so sign-ins in two tabs both complete).
    let (browser, cookie) = match browser_secret(&session) {
        Some(b) => (b, None),
        None => {
            let fresh = crate::secrets::generate(crate::secrets::SecretKind::SignIn)
                .map_err(PageError::internal)?;
            let value = fresh.expose().to_string();
            let cookie = signing_in_cookie(&value);
            (value, Some(cookie))
        }
    };
    match state
        .sso
        .begin(
            db,
            settings,
            &redirect,
            crate::sso::Start {
                return_to: &return_to,
                reauth,
                browser: &browser,
            },
            now,
        )
        .await
    {
        Ok(started) => Ok(match cookie {
            Some(c) => redirect_with_cookie(started.authorize_url.as_str(), c),
            None => Redirect::to(started.authorize_url.as_str()).into_response(),
        }),
        Err(err) => Err(failed(&state, org, meta, err, now).await),
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// The IdP's error code. Its `error_description` is not even read: it
    /// is the IdP's free text, and never shown or logged.
    error: Option<String>,
}

fn audit_failure(
    db: &OrgDb,
    meta: &Context,
    details: &serde_json::Value,
    now: chrono::DateTime<chrono::Utc>,
) {
    if let Err(e) = db
        .db
        .write(|tx| meta.record(tx, "sign_in.failed", None, details, now))
    {
        tracing::error!(error = %e, "could not audit a failed sign-in");
    }
}

pub async fn get_callback(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Query(q): Query<CallbackQuery>,
    Extension(session): Extension<SessionState>,
    Meta(meta): Meta,
) -> Result<Response, PageError> {
    let (settings, db) = org_of(&state, &org)?;
    let now = state.clock.now();
    if let Some(st) = &q.state {
        let cb = crate::sso::test_signin::Callback {
            code: q.code.clone(),
            state: st.clone(),
            error: q.error.clone(),
        };
        if let Some(r) = super::test_signin::intercept(&state, &org, cb, &session, &meta).await {
            return r;
        }
    }
    match complete(&state, settings, db, &q, &session, &meta).await {
        Ok(r) => Ok(r),
        Err(err) => Err(failed(&state, org, meta, err, now).await),
    }
}

/// Audits a failed sign-in (`sign_in.failed` with its reason) and turns it
/// into the page that explains it.
async fn failed(
    state: &AppState,
    org: String,
    meta: Context,
    err: SsoError,
    now: chrono::DateTime<chrono::Utc>,
) -> PageError {
    let (slug, st, details) = (org.clone(), state.clone(), err.audit_details());
    let _ = tokio::task::spawn_blocking(move || {
        if let Ok(db) = st.store.org(&slug) {
            audit_failure(db, &meta, &details, now);
        }
    })
    .await;
    PageError::SignIn {
        org,
        err: Box::new(err),
    }
}

async fn complete(
    state: &AppState,
    settings: &OrgSettings,
    db: &OrgDb,
    q: &CallbackQuery,
    session: &SessionState,
    meta: &Context,
) -> Result<Response, SsoError> {
    if let Some(e) = &q.error {
        return Err(crate::sso::denied(e));
    }
    let (Some(code), Some(st)) = (&q.code, &q.state) else {
        return Err(SsoError::BadState);
    };
    let now = state.clock.now();
    let redirect = callback_url(state, settings.slug.as_str())
        .map_err(|e| SsoError::InvalidToken(e.to_string()))?;
    let browser = browser_secret(session);
    let (verified, login) = state
        .sso
        .finish(
            db,
            settings,
            &redirect,
            crate::sso::Callback {
                code,
                state: st,
                browser: browser.as_deref(),
            },
            now,
        )
        .await?;
    let auth_time = verified.session_auth_time(now);
    let return_to = safe_return(Some(&login.return_to));

    // Re-authentication of a live session: same person, fresh auth_time,
    // and a new session id (the old one ends at once).
    if login.reauth
        && let SessionState::Valid(who) = session
        && who.org.slug == settings.slug
    {
        let same = who.user.identity.as_ref()
            == Some(&(verified.issuer.clone(), verified.subject.clone()));
        if !same {
            return Err(SsoError::InvalidToken(
                "re-authentication returned a different person".into(),
            ));
        }
        let (st2, who2, amr, ctx) = (
            state.clone(),
            Arc::clone(who),
            verified.amr.clone(),
            meta.clone(),
        );
        let org_slug = settings.slug.to_string();
        let fresh = tokio::task::spawn_blocking(move || {
            let db = st2.store.org(&org_slug)?;
            let ctx = Context {
                actor: format!("user:{}", who2.user.id),
                ..ctx
            };
            crate::sessions::reauthenticate(db, &who2.session, auth_time, &amr, &ctx, now)
        })
        .await
        .map_err(|e| SsoError::Internal(format!("the sign-in task failed: {e}")))??
        .ok_or(SsoError::BadState)?;
        return Ok(redirect_with_cookie(
            &return_to,
            session_cookie(fresh.expose()),
        ));
    }

    let (st2, org_slug, ctx) = (state.clone(), settings.slug.to_string(), meta.clone());
    let previous = match session {
        SessionState::Valid(w) => Some(Arc::clone(w)),
        _ => None,
    };
    let secret = tokio::task::spawn_blocking(move || -> Result<String, SsoError> {
        let db = st2.store.org(&org_slug)?;
        let settings = st2.settings.org(&db.slug).ok_or(SsoError::NotConfigured)?;
        let user = match resolve(db, settings, &verified.identity(), &ctx, now) {
            Ok(Ok(u)) => u,
            Ok(Err(refusal)) => return Err(SsoError::Refused(refusal)),
            Err(crate::users::UserError::Store(e)) => return Err(SsoError::Store(e)),
            Err(e) => {
                return Err(SsoError::Internal(format!(
                    "the signed-in account could not be written: {e}"
                )));
            }
        };
        // The account's own budget (the address was charged on the way in).
        crate::http::ratelimit::admit_sign_in(&st2, db.slug.as_str(), &user.id)
            .map_err(SsoError::TooManySignIns)?;
        // A new session id at every sign-in; the browser's old one ends.
        if let Some(prev) = previous
            && let Ok(prev_db) = st2.store.org(prev.org.slug.as_str())
        {
            crate::sessions::end(prev_db, &prev.session, &ctx, now)?;
        }
        let ctx = Context {
            actor: format!("user:{}", user.id),
            ..ctx
        };
        let secret = crate::sessions::create(db, &user.id, auth_time, &verified.amr, &ctx, now)?;
        Ok(secret.expose().to_string())
    })
    .await
    .map_err(|e| SsoError::Internal(format!("the sign-in task failed: {e}")))??;
    Ok(redirect_with_cookie(&return_to, session_cookie(&secret)))
}

pub async fn get_break_glass(
    State(state): State<AppState>,
    Path((org, secret)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let (settings, db) = org_of(&state, &org)?;
    let now = state.clock.now();
    let valid = crate::sso::break_glass::is_valid(db, &secret, now)?;
    if !valid {
        return Err(PageError::Forbidden("This emergency sign-in link has expired or was already used. Ask your operator for a new one.".into()));
    }
    Ok(render(&BreakGlassPage {
        org_name: settings.name.clone(),
    }))
}

pub async fn post_break_glass(
    State(state): State<AppState>,
    Path((org, secret)): Path<(String, String)>,
    Meta(meta): Meta,
) -> Result<Response, PageError> {
    let (_, _) = org_of(&state, &org)?;
    let st = state.clone();
    let now = state.clock.now();
    let session = tokio::task::spawn_blocking(move || {
        let db = st.store.org(&org)?;
        crate::sso::break_glass::redeem(db, &secret, &meta, now)
    })
    .await
    .map_err(PageError::internal)??;
    match session {
        Some(secret) => Ok(redirect_with_cookie("/account", session_cookie(secret.expose()))),
        None => Err(PageError::Forbidden("This emergency sign-in link has expired or was already used. Ask your operator for a new one.".into())),
    }
}
