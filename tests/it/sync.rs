//! Devices and sync over the HTTP API: the privacy boundary (P1), pairing
//! and refresh-token theft detection (P11), idempotency and paging, and
//! isolation between engineers and orgs (P18).

use aiworklab::AppState;
use aiworklab::clock::Clock;
use aiworklab::store::StoreError;
use aiworklab::users::{self, AdminCtx};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Duration;
use serde_json::{Value, json};

use crate::support::{Answer, Env, manual_clock, send, signed_in, with_csrf};

fn json_req(
    method: &str,
    uri: &str,
    auth: Option<&str>,
    cookie: Option<&str>,
    body: &Value,
) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(a) = auth {
        r = r.header("authorization", format!("Bearer {a}"));
    }
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    r.body(Body::from(body.to_string())).expect("request")
}

/// Pairs a device for a new user; returns (cookie, user id, grant).
async fn paired(state: &AppState, org: &str, user: &str) -> (String, String, Value) {
    let (cookie, uid) = signed_in(state, org, user, false);
    let code = send(
        state,
        with_csrf(
            state,
            json_req(
                "POST",
                "/api/v1/me/pairing-codes",
                None,
                Some(&cookie),
                &json!({}),
            ),
            &cookie,
        ),
    )
    .await;
    assert_eq!(code.status, StatusCode::OK, "{}", code.text());
    let code = code.json()["code"].as_str().expect("code").to_string();
    assert!(code.starts_with("aiwl_pair_"));
    let grant = send(
        state,
        json_req(
            "POST",
            "/api/v1/devices/pair",
            None,
            None,
            &json!({"code": code, "device_name": "laptop"}),
        ),
    )
    .await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.text());
    (cookie, uid, grant.json())
}

fn delta(concept: &str, transition: &str, at: &str) -> Value {
    json!({"id": uuid::Uuid::new_v4().to_string(), "concept": concept, "transition": transition, "at": at})
}

fn stored(state: &AppState, org: &str) -> i64 {
    state
        .store
        .org(org)
        .expect("org")
        .db
        .read(|c| {
            c.query_row("SELECT count(*) FROM deltas", [], |r| r.get(0))
                .map_err(StoreError::from)
        })
        .expect("count")
}

async fn push(state: &AppState, token: &str, body: &Value) -> Answer {
    send(
        state,
        json_req("POST", "/api/v1/sync/deltas", Some(token), None, body),
    )
    .await
}

#[tokio::test]
async fn hostile_payloads_are_refused_with_the_field_named_and_nothing_is_stored() {
    let env = Env::new(&["acme"]);
    let state = env.state_with_clock(manual_clock());
    let (_, _, grant) = paired(&state, "acme", "eng").await;
    let token = grant["access_token"].as_str().expect("token");
    let now = state.clock.now().to_rfc3339();
    let good = delta("rust-lifetimes", "seen", &now);
    let with = |field: &str, v: Value| {
        let mut d = delta("rust-lifetimes", "seen", &now);
        d[field] = v;
        json!({"deltas": [good.clone(), d]})
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "code in a field",
            with("concept", json!("fn main() { println!(\"hi\"); }")),
            "/deltas/1/concept",
        ),
        (
            "a diff",
            with(
                "concept",
                json!("--- a/src/x.rs\n+++ b/src/x.rs\n@@ -1 +1 @@"),
            ),
            "/deltas/1/concept",
        ),
        (
            "a file path",
            with("concept", json!("/home/me/src/x.rs")),
            "/deltas/1/concept",
        ),
        (
            "prompt text",
            with("concept", json!("explain how lifetimes work in my parser")),
            "/deltas/1/concept",
        ),
        (
            "an unknown concept",
            with("concept", json!("not-a-real-concept")),
            "/deltas/1/concept",
        ),
        (
            "an extra field",
            with("file", json!("src/main.rs")),
            "/deltas/1/file",
        ),
        (
            "a nested object",
            with("concept", json!({"slug": "rust-lifetimes"})),
            "/deltas/1/concept",
        ),
        ("a bad UUID", with("id", json!("1234")), "/deltas/1/id"),
        (
            "a future timestamp",
            with("at", json!("2999-01-01T00:00:00Z")),
            "/deltas/1/at",
        ),
        (
            "before 2020",
            with("at", json!("2019-12-31T23:59:59Z")),
            "/deltas/1/at",
        ),
        (
            "not a timestamp",
            with("at", json!("yesterday")),
            "/deltas/1/at",
        ),
        (
            "an unknown transition",
            with("transition", json!("mastered")),
            "/deltas/1/transition",
        ),
        (
            "a grade where none belongs",
            with("grade", json!(3)),
            "/deltas/1/grade",
        ),
        (
            "a grade out of range",
            json!({"deltas": [{"id": uuid::Uuid::new_v4().to_string(), "concept": "rust-lifetimes", "transition": "check_passed", "at": now, "grade": 9}]}),
            "/deltas/0/grade",
        ),
        (
            "an extra top-level field",
            json!({"deltas": [good.clone()], "repo": "acme/secret"}),
            "/repo",
        ),
        (
            "a long string",
            with("concept", json!("x".repeat(10_000))),
            "/deltas/1/concept",
        ),
        (
            "1,001 deltas",
            json!({"deltas": (0..1001).map(|_| delta("rust-lifetimes", "seen", &now)).collect::<Vec<_>>()}),
            "/deltas",
        ),
    ];
    for (what, body, pointer) in cases {
        let a = push(&state, token, &body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {}", a.text());
        assert_eq!(
            a.header("content-type"),
            Some("application/problem+json"),
            "{what}"
        );
        assert_eq!(a.json()["pointer"], pointer, "{what}: {}", a.text());
        assert_eq!(
            stored(&state, "acme"),
            0,
            "{what}: part of a refused batch was stored"
        );
    }
    // A body over 1 MiB (a 10 MB string) is refused before it is parsed.
    let huge = json!({"deltas": [{"id": uuid::Uuid::new_v4().to_string(), "concept": "x".repeat(10 << 20), "transition": "seen", "at": now}]});
    let a = push(&state, token, &huge).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());
    assert_eq!(stored(&state, "acme"), 0);
    // Not JSON at all.
    let raw = Request::post("/api/v1/sync/deltas")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from("concept=rust-lifetimes"))
        .expect("request");
    assert_eq!(send(&state, raw).await.status, StatusCode::BAD_REQUEST);
    // The good delta alone is accepted.
    let ok = push(&state, token, &json!({"deltas": [good]})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(stored(&state, "acme"), 1);
}

#[tokio::test]
async fn pushes_are_idempotent_and_pulls_page_through_every_device() {
    let env = Env::new(&["acme"]);
    let state = env.state_with_clock(manual_clock());
    let (cookie, _, laptop) = paired(&state, "acme", "eng").await;
    let now = state.clock.now().to_rfc3339();
    let batch = json!({"deltas": (0..30).map(|i| delta(if i % 2 == 0 { "rust-lifetimes" } else { "rust-borrowing" }, "seen", &now)).collect::<Vec<_>>()});
    let t1 = laptop["access_token"].as_str().expect("token");
    let first = push(&state, t1, &batch).await.json();
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicates"].as_u64()),
        (Some(30), Some(0))
    );
    let again = push(&state, t1, &batch).await.json();
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(30))
    );
    // A second device of the same engineer.
    let code = send(
        &state,
        with_csrf(
            &state,
            json_req(
                "POST",
                "/api/v1/me/pairing-codes",
                None,
                Some(&cookie),
                &json!({}),
            ),
            &cookie,
        ),
    )
    .await
    .json()["code"]
        .clone();
    let desktop = send(
        &state,
        json_req(
            "POST",
            "/api/v1/devices/pair",
            None,
            None,
            &json!({"code": code, "device_name": "desktop"}),
        ),
    )
    .await
    .json();
    let t2 = desktop["access_token"].as_str().expect("token");
    push(
        &state,
        t2,
        &json!({"deltas": [delta("rust-ownership", "demonstrated", &now)]}),
    )
    .await;
    // Pull everything from the desktop, 7 at a time.
    let mut since = 0;
    let mut seen = Vec::new();
    loop {
        let page = send(
            &state,
            json_req(
                "GET",
                &format!("/api/v1/sync/deltas?since={since}&limit=7"),
                Some(t2),
                None,
                &json!(null),
            ),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let v = page.json();
        for d in v["deltas"].as_array().expect("deltas") {
            seen.push(d["id"].as_str().expect("id").to_string());
        }
        since = v["cursor"].as_i64().expect("cursor");
        if !v["more"].as_bool().expect("more") {
            break;
        }
    }
    assert_eq!(seen.len(), 31, "every delta from both devices, once");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 31);
}

#[tokio::test]
async fn a_pairing_code_works_once_expires_and_its_reuse_revokes_the_device() {
    let env = Env::new(&["acme"]);
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let (cookie, _) = signed_in(&state, "acme", "eng", false);
    let code = send(
        &state,
        with_csrf(
            &state,
            json_req(
                "POST",
                "/api/v1/me/pairing-codes",
                None,
                Some(&cookie),
                &json!({}),
            ),
            &cookie,
        ),
    )
    .await
    .json()["code"]
        .clone();
    let pair = |c: Value| {
        json_req(
            "POST",
            "/api/v1/devices/pair",
            None,
            None,
            &json!({"code": c, "device_name": "laptop"}),
        )
    };
    let grant = send(&state, pair(code.clone())).await;
    assert_eq!(grant.status, StatusCode::OK);
    let token = grant.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let now = clock.now().to_rfc3339();
    assert_eq!(
        push(
            &state,
            &token,
            &json!({"deltas": [delta("rust-lifetimes", "seen", &now)]})
        )
        .await
        .status,
        StatusCode::OK
    );
    // Reuse: refused, and the device the code paired is revoked at once.
    let reuse = send(&state, pair(code)).await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED, "{}", reuse.text());
    assert_eq!(
        push(&state, &token, &json!({"deltas": []})).await.status,
        StatusCode::UNAUTHORIZED,
        "the revoked device still syncs"
    );
    // Expiry after 30 days.
    let late = send(
        &state,
        with_csrf(
            &state,
            json_req(
                "POST",
                "/api/v1/me/pairing-codes",
                None,
                Some(&cookie),
                &json!({}),
            ),
            &cookie,
        ),
    )
    .await
    .json()["code"]
        .clone();
    clock.advance(Duration::days(30) + Duration::seconds(1));
    let expired = send(&state, pair(late)).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert!(expired.text().contains("expired"), "{}", expired.text());
    // Unknown and malformed codes.
    for bad in [
        json!("aiwl_pair_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        json!("123456"),
        json!(42),
    ] {
        let a = send(&state, pair(bad)).await;
        assert!(
            a.status == StatusCode::UNAUTHORIZED || a.status == StatusCode::BAD_REQUEST,
            "{}",
            a.text()
        );
    }
    let audit: Vec<String> = state
        .store
        .org("acme")
        .expect("org")
        .db
        .read(|c| aiworklab::store::audit::recent(c, 50).map_err(StoreError::from))
        .expect("audit")
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert!(
        audit.contains(&"pairing_code.reuse".into()) && audit.contains(&"device.pair".into()),
        "{audit:?}"
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_stolen_one_revokes_the_device() {
    let env = Env::new(&["acme"]);
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let (_, _, grant) = paired(&state, "acme", "eng").await;
    let r1 = grant["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let refresh = |r: &str| {
        json_req(
            "POST",
            "/api/v1/devices/token",
            None,
            None,
            &json!({"refresh_token": r}),
        )
    };
    // Access tokens live 15 minutes.
    let a1 = grant["access_token"].as_str().expect("token").to_string();
    clock.advance(Duration::minutes(16));
    assert_eq!(
        push(&state, &a1, &json!({"deltas": []})).await.status,
        StatusCode::UNAUTHORIZED,
        "an expired access token worked"
    );
    let g2 = send(&state, refresh(&r1)).await;
    assert_eq!(g2.status, StatusCode::OK, "{}", g2.text());
    let g2 = g2.json();
    let r2 = g2["refresh_token"].as_str().expect("refresh").to_string();
    assert_ne!(r1, r2, "the refresh secret rotates");
    let a2 = g2["access_token"].as_str().expect("token").to_string();
    assert_eq!(
        push(&state, &a2, &json!({"deltas": []})).await.status,
        StatusCode::OK
    );
    // The thief replays r1: refused, and the device is revoked for everyone.
    assert_eq!(
        send(&state, refresh(&r1)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        push(&state, &a2, &json!({"deltas": []})).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&state, refresh(&r2)).await.status,
        StatusCode::UNAUTHORIZED,
        "the revoked device refreshed"
    );
    // A forged access token (signature changed) is refused.
    let mut forged = a2.clone();
    forged.pop();
    forged.push(if a2.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        push(&state, &forged, &json!({"deltas": []})).await.status,
        StatusCode::UNAUTHORIZED
    );
}

fn refresh_req(r: &str) -> Request<Body> {
    json_req(
        "POST",
        "/api/v1/devices/token",
        None,
        None,
        &json!({"refresh_token": r}),
    )
}

fn audit_rows(state: &AppState, org: &str) -> Vec<aiworklab::store::audit::AuditRow> {
    state
        .store
        .org(org)
        .expect("org")
        .db
        .read(|c| aiworklab::store::audit::recent(c, 100).map_err(StoreError::from))
        .expect("audit")
}

/// A thief who copied the device's refresh token uses it first, and
/// refreshes again; the real device then presents the token it holds,
/// two generations old. That superseded token revokes the device (the
/// thief's current tokens die with it) and is audited.
#[tokio::test]
async fn a_refresh_token_superseded_generations_ago_revokes_the_device() {
    let env = Env::new(&["acme"]);
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let (_, _, grant) = paired(&state, "acme", "eng").await;
    let device = grant["device_id"].as_str().expect("device").to_string();
    let stolen = grant["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let take = |a: &Answer| {
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        let j = a.json();
        (
            j["refresh_token"].as_str().expect("refresh").to_string(),
            j["access_token"].as_str().expect("access").to_string(),
        )
    };
    let (thief_r2, _) = take(&send(&state, refresh_req(&stolen)).await);
    clock.advance(Duration::minutes(16));
    let (thief_r3, thief_a3) = take(&send(&state, refresh_req(&thief_r2)).await);
    assert_eq!(
        push(&state, &thief_a3, &json!({"deltas": []})).await.status,
        StatusCode::OK
    );
    // The real device still holds the first token.
    let real = send(&state, refresh_req(&stolen)).await;
    assert_eq!(real.status, StatusCode::UNAUTHORIZED, "{}", real.text());
    assert!(real.text().contains("revoked"), "{}", real.text());
    assert_eq!(
        push(&state, &thief_a3, &json!({"deltas": []})).await.status,
        StatusCode::UNAUTHORIZED,
        "the thief's access token outlived the revocation"
    );
    assert_eq!(
        send(&state, refresh_req(&thief_r3)).await.status,
        StatusCode::UNAUTHORIZED,
        "the thief's current refresh token still works"
    );
    let reuse = audit_rows(&state, "acme")
        .into_iter()
        .find(|r| r.action == "device.refresh_reuse")
        .expect("the reuse is audited");
    assert_eq!(reuse.target.as_deref(), Some(device.as_str()));
    assert_eq!(reuse.details["presented_generation"], 0);
    assert_eq!(reuse.details["current_generation"], 2);
    let listed = aiworklab::devices::list(
        state.store.org("acme").expect("org"),
        reuse.details["user"].as_str().expect("user"),
    )
    .expect("list");
    assert_eq!(
        listed[0].revoked_reason.as_deref(),
        Some("refresh token reused")
    );
}

/// A device paired before refresh tokens were numbered holds a bare random
/// secret: it still refreshes once, onto the numbered form, and its
/// superseded bare secret still revokes the device.
#[tokio::test]
async fn an_unnumbered_refresh_secret_moves_to_generations_and_its_reuse_still_revokes() {
    use aiworklab::secrets::{self, SecretKind};
    let env = Env::new(&["acme"]);
    let state = env.state_with_clock(manual_clock());
    let (_, _, grant) = paired(&state, "acme", "eng").await;
    let device = grant["device_id"].as_str().expect("device").to_string();
    let bare = secrets::generate(SecretKind::DeviceRefresh).expect("rng");
    let hash = bare.hash().0.to_vec();
    state
        .store
        .org("acme")
        .expect("org")
        .db
        .write(|tx| {
            tx.execute(
                "UPDATE devices SET refresh_hash = ?1 WHERE id = ?2",
                rusqlite::params![hash, device],
            )
            .map_err(StoreError::from)
        })
        .expect("an older device");
    let a = send(&state, refresh_req(bare.expose())).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let next = a.json()["refresh_token"].as_str().expect("r").to_string();
    assert!(
        next.starts_with("aiwl_dev_") && next.contains('.'),
        "{next}"
    );
    let after = send(&state, refresh_req(&next)).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text());
    let latest = after.json()["refresh_token"]
        .as_str()
        .expect("r")
        .to_string();
    // Two rotations later, the bare secret is still known as superseded.
    let reuse = send(&state, refresh_req(bare.expose())).await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    assert!(reuse.text().contains("revoked"), "{}", reuse.text());
    assert_eq!(
        send(&state, refresh_req(&latest)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Changes `claim` of a signed token (access or refresh) to `value` and
/// keeps the original MAC.
fn altered(token: &str, prefix: &str, claim: &str, value: Value) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (signed, tag) = token.rsplit_once('.').expect("a signed token");
    let body = signed.strip_prefix(prefix).expect("prefix");
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).expect("base64")).expect("json");
    claims[claim] = value;
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{prefix}{body}.{tag}")
}

/// Forged tokens name real devices and users, with claims altered under a
/// genuine MAC or signed with another key: each is refused, and none can
/// revoke the device it names (which would let anyone who learns a device
/// id cut that device off).
#[tokio::test]
async fn forged_tokens_with_altered_claims_or_another_key_are_refused_and_revoke_nothing() {
    let env = Env::new(&["acme"]);
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let (_, _, mallory) = paired(&state, "acme", "mallory").await;
    let (_, alice_id, alice) = paired(&state, "acme", "alice").await;
    let alice_device = alice["device_id"].as_str().expect("device").to_string();
    // Alice's device refreshes once, so generation 0 is behind it.
    let a = send(
        &state,
        refresh_req(alice["refresh_token"].as_str().expect("r")),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let mut alice_refresh = a.json()["refresh_token"].as_str().expect("r").to_string();
    let alice_access = a.json()["access_token"].as_str().expect("a").to_string();
    let m_access = mallory["access_token"].as_str().expect("a").to_string();
    let m_refresh = mallory["refresh_token"].as_str().expect("r").to_string();

    // Access tokens: Mallory's with Alice's user or device, or a longer life.
    for (claim, value) in [
        ("u", json!(alice_id)),
        ("d", json!(alice_device)),
        ("e", json!(4_102_444_800_i64)),
    ] {
        let forged = altered(&m_access, "aiwl_at_", claim, value);
        let a = push(&state, &forged, &json!({"deltas": []})).await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "access `{claim}` altered: {}",
            a.text()
        );
    }
    // Signed with another key, for Alice, well formed in every other way.
    let other_key = [7u8; 32];
    let now = state.clock.now();
    let forged =
        aiworklab::devices::access_token(&other_key, "acme", &alice_device, &alice_id, now);
    assert_eq!(
        push(&state, &forged, &json!({"deltas": []})).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Refresh tokens: Mallory's, altered to name Alice's device at the
    // superseded generation 0 (what a reuse looks like), or another org.
    let prefix = "aiwl_dev_";
    let mut forgeries = vec![
        altered(&m_refresh, prefix, "d", json!(alice_device)),
        altered(
            &altered(&m_refresh, prefix, "d", json!(alice_device)),
            prefix,
            "g",
            json!(0),
        ),
        altered(&m_refresh, prefix, "g", json!(-1)),
        altered(&m_refresh, prefix, "o", json!("other")),
    ];
    // Signed with another key: Alice's device at generations 0 and 1.
    for g in [0, 1] {
        forgeries.push(
            aiworklab::devices::refresh_token(&other_key, "acme", &alice_device, g).expect("rng"),
        );
    }
    for forged in &forgeries {
        let a = send(&state, refresh_req(forged)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{forged}: {}", a.text());
        assert!(a.text().contains("not valid"), "{}", a.text());
    }
    let actions: Vec<String> = audit_rows(&state, "acme")
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert!(
        !actions.contains(&"device.refresh_reuse".to_string()),
        "a forgery counted as a reuse: {actions:?}"
    );
    // Alice's device is untouched: its access token works and it rotates on.
    assert_eq!(
        push(&state, &alice_access, &json!({"deltas": []}))
            .await
            .status,
        StatusCode::OK
    );
    for _ in 0..2 {
        let a = send(&state, refresh_req(&alice_refresh)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        alice_refresh = a.json()["refresh_token"].as_str().expect("r").to_string();
    }
    // And Mallory's own tokens were never harmed by the attempts.
    assert_eq!(
        send(&state, refresh_req(&m_refresh)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn engineers_and_orgs_never_see_each_others_deltas_and_deactivation_revokes_devices() {
    let env = Env::new(&["a", "b"]);
    let state = env.state_with_clock(manual_clock());
    let now = state.clock.now().to_rfc3339();
    let (_, _, alice) = paired(&state, "a", "alice").await;
    let (bob_cookie, bob_id, bob) = paired(&state, "a", "bob").await;
    let (_, _, carol) = paired(&state, "b", "carol").await;
    let ta = alice["access_token"].as_str().expect("token");
    let tb = bob["access_token"].as_str().expect("token");
    let tc = carol["access_token"].as_str().expect("token");
    push(
        &state,
        ta,
        &json!({"deltas": [delta("rust-lifetimes", "seen", &now)]}),
    )
    .await;
    push(
        &state,
        tc,
        &json!({"deltas": [delta("go-goroutines", "seen", &now)]}),
    )
    .await;
    let pull = |t: &str| {
        json_req(
            "GET",
            "/api/v1/sync/deltas?since=0",
            Some(t),
            None,
            &json!(null),
        )
    };
    for (who, token) in [("bob", tb), ("carol", tc)] {
        let v = send(&state, pull(token)).await.json();
        let concepts: Vec<&str> = v["deltas"]
            .as_array()
            .expect("deltas")
            .iter()
            .filter_map(|d| d["concept"].as_str())
            .collect();
        assert!(
            !concepts.contains(&"rust-lifetimes"),
            "{who} saw alice's delta"
        );
    }
    // Bob's session sees only Bob's (none).
    let v = send(
        &state,
        json_req(
            "GET",
            "/api/v1/sync/deltas?since=0",
            None,
            Some(&bob_cookie),
            &json!(null),
        ),
    )
    .await
    .json();
    assert!(v["deltas"].as_array().expect("deltas").is_empty());
    // A token signed for another org's name does not reach it.
    let cross = aiworklab::devices::access_token(
        state.store.access_token_key(),
        "b",
        alice["device_id"].as_str().expect("id"),
        &bob_id,
        state.clock.now(),
    );
    assert_eq!(
        send(&state, pull(&cross)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Deactivation revokes bob's devices at once.
    users::set_active(
        state.store.org("a").expect("a"),
        &AdminCtx::operator(),
        &bob_id,
        false,
        state.clock.now(),
    )
    .expect("disable");
    assert_eq!(
        send(&state, pull(tb)).await.status,
        StatusCode::UNAUTHORIZED,
        "a deactivated user's device still pulls"
    );
    let refresh = json_req(
        "POST",
        "/api/v1/devices/token",
        None,
        None,
        &json!({"refresh_token": bob["refresh_token"]}),
    );
    assert_eq!(send(&state, refresh).await.status, StatusCode::UNAUTHORIZED);
    // The devices were revoked, not just paused: reactivation does not bring
    // them back (the person pairs again).
    users::set_active(
        state.store.org("a").expect("a"),
        &AdminCtx::operator(),
        &bob_id,
        true,
        state.clock.now(),
    )
    .expect("enable");
    assert_eq!(
        send(&state, pull(tb)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refresh = json_req(
        "POST",
        "/api/v1/devices/token",
        None,
        None,
        &json!({"refresh_token": bob["refresh_token"]}),
    );
    assert_eq!(send(&state, refresh).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_catalogue_is_served_to_signed_in_people_and_devices_only() {
    let env = Env::new(&["acme"]);
    let state = env.state();
    let anonymous = send(
        &state,
        json_req("GET", "/api/v1/concepts", None, None, &json!(null)),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let (_, _, grant) = paired(&state, "acme", "eng").await;
    let a = send(
        &state,
        json_req(
            "GET",
            "/api/v1/concepts",
            grant["access_token"].as_str(),
            None,
            &json!(null),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    let concepts = v["concepts"].as_array().expect("concepts");
    assert!(concepts.len() >= 400);
    let c = concepts
        .iter()
        .find(|c| c["slug"] == "rust-borrowing")
        .expect("rust-borrowing");
    for field in ["slug", "title", "domain", "prerequisites"] {
        assert!(!c[field].is_null(), "{field}");
    }
}

#[tokio::test]
async fn the_account_page_creates_a_pairing_code_shown_once_and_revokes_devices() {
    let env = Env::new(&["acme"]);
    let state = env.state_with_clock(manual_clock());
    let (cookie, uid) = signed_in(&state, "acme", "eng", false);
    let csrf = aiworklab::sessions::list(state.store.org("acme").expect("org"), &uid)
        .expect("sessions")[0]
        .csrf
        .clone();
    let form = |uri: &str| {
        Request::post(uri)
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}")))
            .expect("request")
    };
    let page = send(&state, form("/account/pairing-code")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    let code = html
        .split("id=\"pairing-code\" class=\"secret\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the code is shown")
        .to_string();
    assert!(code.starts_with("aiwl_pair_"));
    // Shown once: the account page does not show it again.
    let again = send(
        &state,
        Request::get("/account")
            .header("cookie", &cookie)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert!(!again.text().contains(&code));
    // It pairs a device, which the page then lists and can revoke.
    let grant = send(
        &state,
        json_req(
            "POST",
            "/api/v1/devices/pair",
            None,
            None,
            &json!({"code": code, "device_name": "work laptop"}),
        ),
    )
    .await
    .json();
    let listed = send(
        &state,
        Request::get("/account")
            .header("cookie", &cookie)
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .text();
    assert!(listed.contains("work laptop"));
    let revoked = send(
        &state,
        form(&format!(
            "/account/devices/{}/revoke",
            grant["device_id"].as_str().expect("id")
        )),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(
        push(
            &state,
            grant["access_token"].as_str().expect("token"),
            &json!({"deltas": []})
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    // Without the CSRF token nothing happens.
    let forged = Request::post("/account/pairing-code")
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("csrf=nope"))
        .expect("request");
    assert_eq!(send(&state, forged).await.status, StatusCode::FORBIDDEN);
}
