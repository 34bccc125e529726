//! The admin page's test sign-in: starting it, and the callback's report
//! (claims, what they map to, the verdict). It signs nobody in; see
//! `sso::test_signin`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};

use super::PageError;
use super::pages::render;
use super::signin::callback_url;
use crate::audit::Context;
use crate::http::AppState;
use crate::http::extract::{SessionState, SignedIn, SignedInUser};
use crate::sso::test_signin::{self, Callback, Report};
use crate::users::Role;

/// The report page.
#[derive(askama::Template)]
#[template(path = "test_signin.html")]
pub struct TestSignInPage {
    pub org_slug: String,
    pub org_name: String,
    pub report: Report,
}

fn admin_only(who: &SignedIn) -> Result<(), PageError> {
    if who.role() == Role::Admin {
        Ok(())
    } else {
        Err(PageError::Forbidden(
            "This page is for administrators of the organisation.".into(),
        ))
    }
}

/// Starts a test sign-in (opened in a new tab from the checklist). Any
/// admin of the org may; it changes nothing but is audited when it ends.
pub async fn get_test_sign_in(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    me: SignedInUser,
) -> Result<Response, PageError> {
    admin_only(&me.who)?;
    let slug = me.who.org.slug.to_string();
    let db = state.store.org(&slug)?;
    if me.who.org.oidc.is_none() {
        return Err(PageError::BadRequest(
            "Single sign-on is not configured for this organisation yet: set its [orgs.oidc] table first (the checklist names the keys).".into(),
        ));
    }
    let redirect = callback_url(&state, &slug)?;
    let now = state.clock.now();
    match test_signin::start(&state.sso, db, &me.who.org, &redirect, &me.who.user.id, now).await {
        Ok(url) => Ok(Redirect::to(url.as_str()).into_response()),
        Err(e) => Ok(page(
            &me.who,
            Report::failed(
                e.to_string(),
                Some(format!(
                    "check orgs.{}.oidc.issuer and that this host can reach it",
                    org_index(&state, &slug)
                )),
            ),
        )),
    }
}

fn org_index(state: &AppState, slug: &str) -> usize {
    state
        .settings
        .orgs
        .iter()
        .position(|o| o.slug.as_str() == slug)
        .unwrap_or(0)
}

fn page(who: &SignedIn, report: Report) -> Response {
    render(&TestSignInPage {
        org_slug: who.org.slug.to_string(),
        org_name: who.org.name.clone(),
        report,
    })
}

/// The callback's hook: when `state` belongs to a test sign-in of `org`,
/// the report page (the admin's session must be the one that started it);
/// otherwise `None`, and the callback goes on as a real sign-in.
///
/// # Errors
/// Store errors, and a test callback without an admin session of this org.
pub async fn intercept(
    state: &AppState,
    org: &str,
    cb: Callback,
    session: &SessionState,
    meta: &Context,
) -> Option<Result<Response, PageError>> {
    let db = state.store.org(org).ok()?;
    if !test_signin::is_test(db, &cb.state).unwrap_or(false) {
        return None;
    }
    Some(report(state, org, cb, session, meta).await)
}

async fn report(
    state: &AppState,
    org: &str,
    cb: Callback,
    session: &SessionState,
    meta: &Context,
) -> Result<Response, PageError> {
    let SessionState::Valid(who) = session else {
        return Err(PageError::Forbidden(
            "A test sign-in ends in the browser of the admin who started it, signed in to this organisation.".into(),
        ));
    };
    if who.org.slug.as_str() != org {
        return Err(PageError::Forbidden(
            "This test sign-in belongs to another organisation.".into(),
        ));
    }
    admin_only(who)?;
    let db = state.store.org(org)?;
    let redirect = callback_url(state, org)?;
    let ctx = Context {
        actor: format!("user:{}", who.user.id),
        ..meta.clone()
    };
    let key = format!("orgs.{}", org_index(state, org));
    let now = state.clock.now();
    let report = test_signin::finish(
        &state.sso,
        db,
        &who.org,
        &key,
        &redirect,
        &cb,
        &ctx,
        &who.user.id,
        now,
    )
    .await?;
    Ok(page(who, report))
}
