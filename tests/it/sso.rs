//! Sign-in through the real OpenID Provider over real HTTP (P7, P8, P10,
//! P14, P16, P18): the flow, cookie attributes, session rotation, sign-out
//! and timeouts, every refused callback, org isolation, re-authentication
//! for admin actions, MFA, and break-glass links.

use std::sync::Arc;

use aiworklab::clock::{Clock, ManualClock, SystemClock};
use aiworklab::store::StoreError;
use aiworklab::users::{self, AdminCtx};
use chrono::{Duration, Utc};
use reqwest::StatusCode;

use crate::idp::{Browser, Site};

const COOKIE: &str = "__Host-aiwl_session";

/// Whether the browser holds a session (not merely the pre-sign-in value
/// a started sign-in leaves in the same cookie).
fn has_session(b: &Browser, site: &Site) -> bool {
    b.cookie(&site.base, COOKIE)
        .is_some_and(|c| c.starts_with("aiwl_sess_"))
}

fn audit_actions(site: &Site, org: &str) -> Vec<(String, String)> {
    crate::support::audit_rows(&site.state, org)
        .into_iter()
        .map(|r| (r.action, r.details.to_string()))
        .collect()
}

#[tokio::test]
async fn sign_in_through_the_real_idp_lands_on_the_account_page_with_a_host_only_cookie() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |_| {}).await;
    let mut b = Browser::new();
    let landing = b.get(&format!("{}/o/acme/login", site.base)).await;
    assert_eq!(landing.status, StatusCode::OK);
    assert!(
        landing.set_cookies().is_empty(),
        "anonymous pages set no cookie"
    );
    // Starting the sign-in puts a pre-sign-in value in the same one cookie
    // (it binds the callback to this browser), for ten minutes at most.
    let start = b.get(&format!("{}/o/acme/login/start", site.base)).await;
    let cookies = start.set_cookies();
    assert_eq!(cookies.len(), 1, "one cookie only: {cookies:?}");
    let c = &cookies[0];
    assert!(c.starts_with(&format!("{COOKIE}=aiwl_signin_")), "{c}");
    for attr in [
        "Path=/",
        "Max-Age=600",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
    ] {
        assert!(c.contains(attr), "{attr} missing: {c}");
    }
    assert!(!c.contains("Domain="), "{c}");
    let done = b.sign_in(&site, "acme", "alice", false).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location().as_deref(), Some("/account"));
    let cookies = done.set_cookies();
    assert_eq!(cookies.len(), 1, "one cookie only: {cookies:?}");
    let c = &cookies[0];
    assert!(c.starts_with(&format!("{COOKIE}=aiwl_sess_")), "{c}");
    assert!(
        !c.contains("Max-Age"),
        "the session replaces the value: {c}"
    );
    for attr in ["Path=/", "HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(c.contains(attr), "{attr} missing: {c}");
    }
    assert!(
        !c.contains("Domain="),
        "a __Host- cookie has no Domain: {c}"
    );
    let account = b.get(&format!("{}/account", site.base)).await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert!(
        account.body.contains("Alice Admin") && account.body.contains("alice"),
        "{}",
        account.body
    );
    assert!(
        account.body.contains("Administrator"),
        "alice is in aiwl-admins"
    );
    let actions: Vec<String> = audit_actions(&site, "acme")
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert!(
        actions.contains(&"user.jit_create".into()) && actions.contains(&"session.create".into()),
        "{actions:?}"
    );
    site.stop().await;
}

#[tokio::test]
async fn signed_out_rotated_away_idle_and_expired_cookies_are_refused() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let site = Site::start(&["acme"], clock.clone(), |env| {
        env.raw.sso.rotate_after_secs = 60;
        env.raw.sso.idle_timeout_secs = 600;
        env.raw.sso.absolute_timeout_secs = 3600;
    })
    .await;
    let account = format!("{}/account", site.base);
    let mut b = Browser::new();
    b.sign_in(&site, "acme", "bob", false).await;
    let first = b.cookie(&site.base, COOKIE).expect("signed in");

    // Rotation: after rotate_after, a use returns a new id.
    clock.advance(Duration::seconds(61));
    let page = b.get(&account).await;
    assert_eq!(page.status, StatusCode::OK);
    let second = b.cookie(&site.base, COOKIE).expect("cookie");
    assert_ne!(first, second, "the id rotated");
    // The old id works during the grace period (requests in flight) ...
    let mut old = Browser::new();
    old.set_cookie(&site.base, COOKIE, &first);
    assert_eq!(old.get(&account).await.status, StatusCode::OK);
    // ... and not after it.
    clock.advance(Duration::seconds(31));
    let stale = old.get(&account).await;
    assert_eq!(
        stale.status,
        StatusCode::SEE_OTHER,
        "a rotated-away cookie still works"
    );
    assert!(
        stale
            .location()
            .is_some_and(|l| l == "/" || l.starts_with("/o/acme/login"))
    );
    assert_eq!(
        b.get(&account).await.status,
        StatusCode::OK,
        "the new id works"
    );

    // Sign-out kills the session server-side: a copy of the cookie is useless.
    let current = b.cookie(&site.base, COOKIE).expect("cookie");
    let csrf = csrf_of(&b.get(&account).await.body);
    let out = b
        .post(&format!("{}/account/logout", site.base), &[("csrf", &csrf)])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.set_cookies().iter().any(|c| c.contains("Max-Age=0")),
        "the cookie is cleared"
    );
    let mut thief = Browser::new();
    thief.set_cookie(&site.base, COOKIE, &current);
    assert_eq!(
        thief.get(&account).await.status,
        StatusCode::SEE_OTHER,
        "a signed-out cookie still works"
    );

    // Idle timeout.
    b.sign_in(&site, "acme", "bob", false).await;
    clock.advance(Duration::seconds(601));
    assert_eq!(
        b.get(&account).await.status,
        StatusCode::SEE_OTHER,
        "an idle session still works"
    );

    // Absolute timeout, even when used all along.
    b.sign_in(&site, "acme", "bob", false).await;
    for _ in 0..7 {
        clock.advance(Duration::seconds(500));
        b.get(&account).await;
    }
    assert_eq!(
        b.get(&account).await.status,
        StatusCode::SEE_OTHER,
        "a session outlived its absolute lifetime"
    );
    site.stop().await;
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a csrf field")
        .to_string()
}

#[tokio::test]
async fn tampered_state_replayed_code_wrong_nonce_and_denied_consent_are_refused_and_audited() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |_| {}).await;
    let start = format!("{}/o/acme/login/start", site.base);
    let mut b = Browser::new();

    // Tampered state.
    let callback = b.idp_login(&start, "bob", false).await;
    let tampered = callback.replace("state=", "state=x");
    let page = b.get(&tampered).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body.contains("expired or was already used"),
        "{}",
        page.body
    );
    assert!(!has_session(&b, &site));

    // Replayed code: the first use signs in, the second is refused.
    let mut b = Browser::new();
    let callback = b.idp_login(&start, "bob", false).await;
    assert_eq!(b.get(&callback).await.status, StatusCode::SEE_OTHER);
    let mut replay = Browser::new();
    let page = replay.get(&callback).await;
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "a replayed callback was accepted"
    );
    assert!(!has_session(&replay, &site));

    // Wrong nonce: the stored nonce no longer matches the token's.
    let mut b = Browser::new();
    let callback = b.idp_login(&start, "bob", false).await;
    site.state
        .store
        .org("acme")
        .expect("org")
        .db
        .write(|tx| {
            tx.execute("UPDATE oidc_logins SET nonce = 'forged'", [])
                .map_err(StoreError::from)
        })
        .expect("tamper");
    let page = b.get(&callback).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.to_lowercase().contains("nonce"), "{}", page.body);

    // A code from another sign-in (code injection): PKCE makes it useless.
    let mut victim = Browser::new();
    let victim_cb = victim.idp_login(&start, "bob", false).await;
    let mut attacker = Browser::new();
    let attacker_cb = attacker.idp_login(&start, "mallory", false).await;
    let code = attacker_cb
        .split("code=")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .expect("code");
    let state = victim_cb
        .split("state=")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .expect("state");
    let injected = format!(
        "{}/o/acme/oidc/callback?code={code}&state={state}",
        site.base
    );
    let page = victim.get(&injected).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);

    // The person cancels at the IdP.
    let mut b = Browser::new();
    let page = b
        .get(&format!(
            "{}/o/acme/oidc/callback?error=access_denied&error_description=cancelled",
            site.base
        ))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("refused"), "{}", page.body);

    let failures: Vec<String> = audit_actions(&site, "acme")
        .into_iter()
        .filter(|(a, _)| a == "sign_in.failed")
        .map(|(_, d)| d)
        .collect();
    for reason in ["bad_state", "invalid_token", "code_rejected", "denied"] {
        assert!(
            failures.iter().any(|d| d.contains(reason)),
            "{reason} not audited: {failures:?}"
        );
    }
    site.stop().await;
}

#[tokio::test]
async fn an_expired_id_token_is_refused_and_a_rotated_signing_key_is_fetched() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let site = Site::start(&["acme"], clock.clone(), |_| {}).await;
    let start = format!("{}/o/acme/login/start", site.base);
    // The token is issued for ten minutes; our clock says two hours later.
    let mut b = Browser::new();
    let callback = b.idp_login(&start, "bob", false).await;
    clock.advance(Duration::hours(2));
    // Two hours also expire the pending sign-in (ten minutes), which is
    // refused first; keep it alive so that the token's own `exp` is tested.
    site.state
        .store
        .org("acme")
        .expect("org")
        .db
        .write(|tx| {
            tx.execute(
                "UPDATE oidc_logins SET expires_at = expires_at + 86400000",
                [],
            )
            .map_err(StoreError::from)
        })
        .expect("extend");
    let page = b.get(&callback).await;
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "an expired ID token was accepted"
    );
    assert!(
        page.body.contains("Expired"),
        "{}",
        page.body.split("<main").nth(1).unwrap_or_default()
    );
    clock.set(Utc::now());

    // The IdP rotates its keys after our discovery was cached: the unknown
    // kid makes us fetch the JWKS again, and the sign-in succeeds.
    let mut b = Browser::new();
    b.sign_in(&site, "acme", "bob", false).await;
    site.idp.rotate_keys().await;
    let mut b = Browser::new();
    let done = b.sign_in(&site, "acme", "alice", false).await;
    assert_eq!(
        done.location().as_deref(),
        Some("/account"),
        "{}",
        done.body
    );
    site.stop().await;
}

#[tokio::test]
async fn a_session_of_org_a_never_opens_org_b() {
    let site = Site::start(&["a", "b"], Arc::new(SystemClock), |_| {}).await;
    let mut b = Browser::new();
    b.sign_in(&site, "a", "alice", false).await;
    assert_eq!(
        b.get(&format!("{}/o/a/admin", site.base)).await.status,
        StatusCode::OK
    );
    let page = b.get(&format!("{}/o/b/admin", site.base)).await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "org a's session opened org b's admin page"
    );
    assert!(
        page.location()
            .unwrap_or_default()
            .starts_with("/o/b/login")
    );
    // Posting org b's admin action with org a's session and CSRF token.
    let csrf = csrf_of(&b.get(&format!("{}/account", site.base)).await.body);
    let bob_b = users::add(
        site.state.store.org("b").expect("b"),
        &AdminCtx::operator(),
        "victim",
        "",
        None,
        false,
        Utc::now(),
    )
    .expect("user");
    let page = b
        .post(
            &format!("{}/o/b/admin/users/{}/admin", site.base, bob_b.id),
            &[("csrf", &csrf), ("grant", "1")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let victim = users::get(site.state.store.org("b").expect("b"), &bob_b.id).expect("user");
    assert!(!victim.admin_granted, "org a's admin changed org b");
    // And a's user id is unknown in b.
    assert!(
        users::list(site.state.store.org("b").expect("b"))
            .expect("list")
            .iter()
            .all(|u| u.user_name != "alice")
    );
    site.stop().await;
}

#[tokio::test]
async fn admin_actions_need_a_fresh_sign_in_members_are_kept_out_and_every_action_is_audited() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |env| {
        env.raw.sso.reauth_max_age_secs = 2;
    })
    .await;
    let admin_url = format!("{}/o/acme/admin", site.base);
    let mut bob = Browser::new();
    bob.sign_in(&site, "acme", "bob", false).await;
    assert_eq!(
        bob.get(&admin_url).await.status,
        StatusCode::FORBIDDEN,
        "a member reached the admin page"
    );
    let bob_id = users::find(site.state.store.org("acme").expect("org"), "bob")
        .expect("bob")
        .id;

    let mut alice = Browser::new();
    alice.sign_in(&site, "acme", "alice", false).await;
    let page = alice.get(&admin_url).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = csrf_of(&page.body);
    let grant = format!("{admin_url}/users/{bob_id}/admin");
    // Fresh: the action runs.
    let done = alice.post(&grant, &[("csrf", &csrf), ("grant", "1")]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert!(
        users::get(site.state.store.org("acme").expect("org"), &bob_id)
            .expect("bob")
            .admin_granted
    );

    // Stale: sent to the IdP with prompt=login and max_age=0.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let stale = alice.post(&grant, &[("csrf", &csrf), ("grant", "0")]).await;
    assert_eq!(stale.status, StatusCode::SEE_OTHER);
    let to = stale.location().expect("to re-auth");
    assert!(to.starts_with("/o/acme/login?reauth=1"), "{to}");
    assert!(
        users::get(site.state.store.org("acme").expect("org"), &bob_id)
            .expect("bob")
            .admin_granted,
        "a stale admin acted"
    );
    let login_page = alice.get(&format!("{}{to}", site.base)).await;
    let start = login_page
        .body
        .split("href=\"")
        .find(|s| s.starts_with("/o/acme/login/start"))
        .and_then(|s| s.split('"').next())
        .expect("start link")
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let begin = alice.get(&format!("{}{start}", site.base)).await;
    let auth_url = begin.location().expect("to the IdP");
    assert!(
        auth_url.contains("prompt=login") && auth_url.contains("max_age=0"),
        "{auth_url}"
    );
    // Complete the re-authentication (a new login at the IdP).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let cb = alice
        .idp_login(&format!("{}{start}", site.base), "alice", false)
        .await;
    let before = alice.cookie(&site.base, COOKIE).expect("signed in");
    let back = alice.get(&cb).await;
    assert_eq!(back.location().as_deref(), Some("/o/acme/admin"));
    // A new session id; the one from before the re-authentication is dead.
    let after = alice.cookie(&site.base, COOKIE).expect("signed in");
    assert_ne!(before, after, "re-authentication kept the session id");
    let mut copy = Browser::new();
    copy.set_cookie(&site.base, COOKIE, &before);
    assert_eq!(
        copy.get(&admin_url).await.status,
        StatusCode::SEE_OTHER,
        "the pre-re-authentication id still works"
    );
    let done = alice.post(&grant, &[("csrf", &csrf), ("grant", "0")]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert!(
        !users::get(site.state.store.org("acme").expect("org"), &bob_id)
            .expect("bob")
            .admin_granted
    );

    let actions: Vec<String> = audit_actions(&site, "acme")
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "admin.grant").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "admin.revoke").count(),
        1,
        "{actions:?}"
    );
    assert!(actions.contains(&"session.reauth".into()), "{actions:?}");
    site.stop().await;
}

#[tokio::test]
async fn require_mfa_refuses_a_sign_in_without_a_second_factor() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |env| {
        env.raw.orgs[0].require_mfa = true;
    })
    .await;
    let mut b = Browser::new();
    let page = b.sign_in(&site, "acme", "bob", false).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("multi-factor"), "{}", page.body);
    assert!(!has_session(&b, &site));
    let mut b = Browser::new();
    let page = b.sign_in(&site, "acme", "bob", true).await;
    assert_eq!(
        page.location().as_deref(),
        Some("/account"),
        "{}",
        page.body
    );
    site.stop().await;
}

#[tokio::test]
async fn provisioning_policy_domains_and_deactivation_decide_who_signs_in() {
    let site = Site::start(&["jit", "scim"], Arc::new(SystemClock), |env| {
        env.raw.orgs[0].allowed_email_domains = vec!["acme.test".into()];
        env.raw.orgs[1].provisioning = "scim_only".into();
    })
    .await;
    // jit with an allow-list: carol@other.test is refused, bob@acme.test admitted.
    let mut b = Browser::new();
    let page = b.sign_in(&site, "jit", "carol", false).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("other.test"), "{}", page.body);
    let mut b = Browser::new();
    assert_eq!(
        b.sign_in(&site, "jit", "bob", false)
            .await
            .location()
            .as_deref(),
        Some("/account")
    );

    // Deactivation ends the live session at once and refuses the next sign-in.
    let jit = site.state.store.org("jit").expect("org");
    let bob = users::find(jit, "bob").expect("bob");
    users::set_active(jit, &AdminCtx::operator(), &bob.id, false, Utc::now()).expect("disable");
    assert_eq!(
        b.get(&format!("{}/account", site.base)).await.status,
        StatusCode::SEE_OTHER
    );
    let page = Browser::new().sign_in(&site, "jit", "bob", false).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("deactivated"), "{}", page.body);

    // scim_only: nobody the IdP has not provisioned.
    let page = Browser::new().sign_in(&site, "scim", "alice", false).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("not been set up"), "{}", page.body);
    site.stop().await;
}

#[tokio::test]
async fn a_break_glass_link_signs_in_once_and_expires() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let site = Site::start(&["acme"], clock.clone(), |_| {}).await;
    let db = site.state.store.org("acme").expect("org");
    users::add(
        db,
        &AdminCtx::operator(),
        "ops",
        "Ops",
        None,
        true,
        clock.now(),
    )
    .expect("user");
    let secret = aiworklab::sso::break_glass::mint(db, &AdminCtx::operator(), "ops", clock.now())
        .expect("link");
    let url = format!("{}/o/acme/break-glass/{}", site.base, secret.expose());
    let mut b = Browser::new();
    // Opening it (as a link scanner would) does not use it up.
    assert_eq!(b.get(&url).await.status, StatusCode::OK);
    let used = b.post(&url, &[]).await;
    assert_eq!(used.location().as_deref(), Some("/account"));
    assert!(b.cookie(&site.base, COOKIE).is_some());
    assert_eq!(
        Browser::new().post(&url, &[]).await.status,
        StatusCode::FORBIDDEN,
        "reused"
    );
    // An unused link expires after 15 minutes.
    let late = aiworklab::sso::break_glass::mint(db, &AdminCtx::operator(), "ops", clock.now())
        .expect("link");
    clock.advance(Duration::minutes(16));
    let page = Browser::new()
        .post(
            &format!("{}/o/acme/break-glass/{}", site.base, late.expose()),
            &[],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "an expired link worked");
    let actions: Vec<String> = audit_actions(&site, "acme")
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "break_glass.create")
            .count(),
        2
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "break_glass.use").count(),
        1
    );
    site.stop().await;
}

#[tokio::test]
async fn pages_carry_the_headers_escape_output_and_load_nothing_from_elsewhere() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |env| {
        env.raw.orgs[0].name = "<script>alert(1)</script> Corp".into();
    })
    .await;
    let mut b = Browser::new();
    b.sign_in(&site, "acme", "alice", false).await;
    let mut pages = Vec::new();
    for path in [
        "/o/acme/login",
        "/account",
        "/o/acme/admin",
        "/nope",
        "/static/app.css",
    ] {
        pages.push((path, b.get(&format!("{}{path}", site.base)).await));
    }
    for (path, p) in &pages {
        for (name, value) in aiworklab::http::SECURITY_HEADERS {
            assert_eq!(
                p.headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{path}: {name}"
            );
        }
        assert!(
            !p.body.contains("<script"),
            "{path}: a script tag, or unescaped input"
        );
        for scheme in ["http://", "https://"] {
            for (i, _) in p.body.match_indices(scheme) {
                let rest = &p.body[i..];
                // The admin page's setup checklist names the configured
                // IdP's issuer as text; nothing else may appear.
                assert!(
                    rest.starts_with(&site.base) || rest.starts_with(&site.idp.issuer),
                    "{path}: a third-party URL {}",
                    &rest[..rest.len().min(60)]
                );
            }
        }
        assert!(
            p.set_cookies().iter().all(|c| c.starts_with(COOKIE)),
            "{path}: another cookie"
        );
    }
    let login = Browser::new()
        .get(&format!("{}/o/acme/login", site.base))
        .await;
    let h1 = login
        .body
        .split("<h1>")
        .nth(1)
        .and_then(|r| r.split("</h1>").next())
        .unwrap_or_default();
    assert!(
        h1.contains("alert(1)") && h1.contains("Corp") && !h1.contains('<'),
        "the org name is escaped: {h1}"
    );
    // Every POST form carries the CSRF token, and a forged post is refused.
    let account = &pages[1].1;
    assert_eq!(
        account.body.matches("<form").count(),
        account.body.matches("name=\"csrf\"").count()
    );
    let forged = b
        .post(
            &format!("{}/account/logout", site.base),
            &[("csrf", "forged")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        b.get(&format!("{}/account", site.base)).await.status,
        StatusCode::OK,
        "the forged post signed us out"
    );
    site.stop().await;
}

#[tokio::test]
async fn an_unreachable_idp_ends_on_a_clear_page_and_is_audited() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let site = Site::start(&["acme"], Arc::new(SystemClock), |env| {
        if let Some(oidc) = env.raw.orgs[0].oidc.as_mut() {
            oidc.issuer = dead.clone();
        }
    })
    .await;
    let page = Browser::new()
        .get(&format!("{}/o/acme/login/start", site.base))
        .await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY);
    assert!(page.body.contains("did not answer"), "{}", page.body);
    assert!(
        audit_actions(&site, "acme")
            .iter()
            .any(|(a, d)| a == "sign_in.failed" && d.contains("idp_unavailable")),
        "not audited"
    );
    site.stop().await;
}

// Login CSRF: Mallory starts a sign-in in her browser, signs in at the IdP
// and sends the callback URL, unused, to a victim. Opened in any other
// browser it must sign nobody in, and must not end the victim's session.
#[tokio::test]
async fn a_callback_made_in_another_browser_signs_nobody_in_and_ends_no_session() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |_| {}).await;
    let start = format!("{}/o/acme/login/start", site.base);
    let account = format!("{}/account", site.base);

    // A victim with no session.
    let mut mallory = Browser::new();
    let planted = mallory.idp_login(&start, "mallory", false).await;
    let mut victim = Browser::new();
    let page = victim.get(&planted).await;
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "the attacker's callback signed the victim in: {:?}",
        page.location()
    );
    assert!(page.body.contains("another browser"), "{}", page.body);
    assert!(!has_session(&victim, &site));

    // A victim signed in as bob keeps bob's session.
    let mut bob = Browser::new();
    bob.sign_in(&site, "acme", "bob", false).await;
    let planted = mallory.idp_login(&start, "mallory", false).await;
    let page = bob.get(&planted).await;
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        page.location()
    );
    let mine = bob.get(&account).await;
    assert_eq!(mine.status, StatusCode::OK, "the victim's session ended");
    assert!(mine.body.contains("Bob Builder"), "{}", mine.body);
    assert!(!mine.body.contains("Mallory"), "{}", mine.body);

    // A forged pre-sign-in value does not pass for Mallory's.
    let planted = mallory.idp_login(&start, "mallory", false).await;
    let mut forger = Browser::new();
    forger.set_cookie(
        &site.base,
        COOKIE,
        &format!("aiwl_signin_{}", "A".repeat(43)),
    );
    assert_eq!(forger.get(&planted).await.status, StatusCode::BAD_REQUEST);

    // In her own browser the same kind of URL works (the control).
    let own = mallory.idp_login(&start, "mallory", false).await;
    let page = mallory.get(&own).await;
    assert_eq!(
        page.location().as_deref(),
        Some("/account"),
        "{}",
        page.body
    );
    let reasons: Vec<String> = audit_actions(&site, "acme")
        .into_iter()
        .filter(|(a, _)| a == "sign_in.failed")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|d| d.contains("other_browser"))
            .count(),
        3,
        "{reasons:?}"
    );
    site.stop().await;
}

// The IdP's `error_description` is its free text: not shown, not audited.
// The error code is mapped to our own message.
#[tokio::test]
async fn an_idp_error_description_is_never_shown_or_recorded() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |_| {}).await;
    let mut b = Browser::new();
    for (error, shown) in [
        ("access_denied", "access_denied"),
        ("made_up_code_with_words", "`other`"),
    ] {
        let page = b
            .get(&format!(
                "{}/o/acme/oidc/callback?error={error}&error_description=Your+account+is+locked.+Call+%2B1+555+0100+now",
                site.base
            ))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.body.contains(shown), "{}", page.body);
        assert!(!page.body.contains("555"), "{}", page.body);
        assert!(!page.body.contains("locked"), "{}", page.body);
    }
    let rows = audit_actions(&site, "acme");
    assert!(
        rows.iter()
            .all(|(_, d)| !d.contains("555") && !d.contains("locked")),
        "{rows:?}"
    );
    assert_eq!(
        rows.iter()
            .filter(|(a, d)| a == "sign_in.failed" && d.contains("denied"))
            .count(),
        2
    );
    site.stop().await;
}

// Account takeover by linking: an account made by the operator (or SCIM)
// that has not signed in yet is linked only on the org's contract (here: a
// verified email in an allowed domain), never by a matching name, and
// never onto an admin's account, which takes `aiworklab user link`.
#[tokio::test]
async fn an_existing_account_is_linked_only_by_contract_and_never_an_admins() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |env| {
        env.raw.orgs[0].allowed_email_domains = vec!["acme.test".into(), "other.test".into()];
        // Groups from the IdP would make alice an admin anyway; the role
        // here comes from the operator only.
        env.raw.orgs[0].admin_groups = vec![];
    })
    .await;
    let db = site.state.store.org("acme").expect("org");
    let op = AdminCtx::operator();
    let now = Utc::now();
    // The real Carol's account; the IdP's `carol` is someone else
    // (carol@other.test) who merely has the same user name.
    let carol = users::add(
        db,
        &op,
        "carol",
        "Carol",
        Some("carol@acme.test"),
        false,
        now,
    )
    .expect("carol");
    let page = Browser::new().sign_in(&site, "acme", "carol", false).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{:?}", page.location());
    assert!(
        page.body.contains("already uses the name carol"),
        "{}",
        page.body
    );
    assert!(
        users::get(db, &carol.id).expect("carol").identity.is_none(),
        "a name alone linked the account"
    );

    // A member's account is linked on a verified email in an allowed domain.
    let bob = users::add(db, &op, "robert", "Bob", Some("BOB@acme.test"), false, now).expect("bob");
    let page = Browser::new().sign_in(&site, "acme", "bob", false).await;
    assert_eq!(
        page.location().as_deref(),
        Some("/account"),
        "{}",
        page.body
    );
    assert_eq!(
        users::get(db, &bob.id).expect("bob").identity,
        Some((site.idp.issuer.clone(), "sub-bob".into()))
    );

    // An admin's account is not, even on a verified email in an allowed domain.
    let alice = users::add(
        db,
        &op,
        "alice",
        "Alice",
        Some("alice@acme.test"),
        true,
        now,
    )
    .expect("alice");
    let page = Browser::new().sign_in(&site, "acme", "alice", false).await;
    assert_eq!(
        page.status,
        StatusCode::FORBIDDEN,
        "an admin's account was linked"
    );
    assert!(
        page.body.contains("aiworklab user link") && page.body.contains("sub-alice"),
        "{}",
        page.body
    );
    assert!(users::get(db, &alice.id).expect("alice").identity.is_none());
    assert!(
        audit_actions(&site, "acme")
            .iter()
            .any(|(a, d)| a == "sign_in.failed" && d.contains("admin_link_needs_operator")),
    );
    // The operator links it; then alice signs in to her account.
    users::link(db, &op, "alice", &site.idp.issuer, "sub-alice", now).expect("link");
    let mut b = Browser::new();
    let page = b.sign_in(&site, "acme", "alice", false).await;
    assert_eq!(
        page.location().as_deref(),
        Some("/account"),
        "{}",
        page.body
    );
    let account = b.get(&format!("{}/account", site.base)).await;
    assert!(account.body.contains("Administrator"), "{}", account.body);
    assert_eq!(users::list(db).expect("users").len(), 3, "no second alice");
    site.stop().await;
}
