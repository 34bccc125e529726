//! The JSON API with the session cookie (P16): every call that changes
//! something (`/api/v1/me/*`, pairing codes, sync pushed from the browser,
//! the export) needs the session's CSRF token in `x-csrf-token` and, when
//! the browser sends one, this site's `Origin`. SameSite=Lax alone lets a
//! sibling subdomain (same site, another origin) send the cookie along.

use aiworklab::AppState;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::support::{Env, csrf_of, send, signed_in};

/// Every state-changing call a signed-in person can make with the cookie.
fn calls() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    vec![
        ("POST", "/api/v1/me/opt-out", json!({ "opted_out": true })),
        ("POST", "/api/v1/me/pairing-codes", json!({})),
        (
            "POST",
            "/api/v1/sync/deltas",
            json!({ "deltas": [{
                "id": "7d8f5f0e-3a51-4d8e-9a43-2f1f0c6b9e01",
                "concept": "rust-lifetimes",
                "transition": "seen",
                "at": "2026-01-15T11:00:00Z"
            }]}),
        ),
        ("DELETE", "/api/v1/me/devices/no-such-device", json!(null)),
        ("POST", "/api/v1/me/deletion", json!(null)),
        ("DELETE", "/api/v1/me/deletion", json!(null)),
        ("GET", "/api/v1/me/export", json!(null)),
    ]
}

fn call(
    method: &str,
    uri: &str,
    body: &serde_json::Value,
    cookie: &str,
    csrf: Option<&str>,
    origin: Option<&str>,
) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri(uri)
        .header("cookie", cookie)
        .header("content-type", "application/json");
    if let Some(t) = csrf {
        r = r.header("x-csrf-token", t);
    }
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    let body = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    r.body(body).expect("request")
}

/// What the org's audit log holds, as action names.
fn actions(state: &AppState) -> Vec<String> {
    state
        .store
        .org("acme")
        .expect("org")
        .db
        .read(|c| {
            aiworklab::store::audit::recent(c, 500).map_err(aiworklab::store::StoreError::from)
        })
        .expect("audit")
        .into_iter()
        .map(|r| r.action)
        .collect()
}

#[tokio::test]
async fn json_calls_with_the_session_cookie_need_the_csrf_header_and_this_origin() {
    let mut env = Env::new(&["acme"]);
    env.raw.server.public_url = "https://skills.acme.test".into();
    // The refused exports below are counted too (the budget is spent
    // before the call is checked); room for all of them.
    env.raw.rate_limits.export.requests = 100;
    let state = env.state();
    let (cookie, _) = signed_in(&state, "acme", "eng", false);
    let token = csrf_of(&state, &cookie);
    let before = actions(&state);

    for (method, uri, body) in calls() {
        // From a sibling subdomain without the token (it cannot read it).
        let forged = send(
            &state,
            call(
                method,
                uri,
                &body,
                &cookie,
                None,
                Some("https://evil.acme.test"),
            ),
        )
        .await;
        assert_eq!(
            forged.status,
            StatusCode::FORBIDDEN,
            "{method} {uri} without the token: {}",
            forged.text()
        );
        assert!(forged.text().contains("x-csrf-token"), "{}", forged.text());
        // A wrong token, with no Origin at all.
        let wrong = send(
            &state,
            call(method, uri, &body, &cookie, Some("forged"), None),
        )
        .await;
        assert_eq!(
            wrong.status,
            StatusCode::FORBIDDEN,
            "{method} {uri} with a wrong token"
        );
        // The right token, sent from another origin.
        let other = send(
            &state,
            call(
                method,
                uri,
                &body,
                &cookie,
                Some(&token),
                Some("https://evil.acme.test"),
            ),
        )
        .await;
        assert_eq!(
            other.status,
            StatusCode::FORBIDDEN,
            "{method} {uri} from another origin"
        );
        assert!(other.text().contains("another site"), "{}", other.text());
    }
    assert_eq!(actions(&state), before, "a refused call changed something");

    // The token and this site's origin: each call goes through.
    for (method, uri, body) in calls() {
        let ok = send(
            &state,
            call(
                method,
                uri,
                &body,
                &cookie,
                Some(&token),
                Some("https://skills.acme.test"),
            ),
        )
        .await;
        // Past the CSRF check: done, or (the made-up device) not found.
        assert!(
            ok.status.is_success() || ok.text().contains("no such device"),
            "{method} {uri}: {} {}",
            ok.status,
            ok.text()
        );
    }
}

#[tokio::test]
async fn every_api_answer_to_a_session_carries_its_csrf_token_and_reads_need_none() {
    let env = Env::new(&["acme"]);
    let state = env.state();
    let (cookie, _) = signed_in(&state, "acme", "eng", false);
    let token = csrf_of(&state, &cookie);
    for uri in [
        "/api/v1/me/graph",
        "/api/v1/me/privacy",
        "/api/v1/me/devices",
    ] {
        let a = send(&state, call("GET", uri, &json!(null), &cookie, None, None)).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.text());
        assert_eq!(a.header("x-csrf-token"), Some(token.as_str()), "{uri}");
    }
}
