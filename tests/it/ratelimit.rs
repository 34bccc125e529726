//! Rate limits keyed beyond the client address (P17, P21): export per
//! user, sync and refresh per device, with each address's budget as an
//! outer ceiling. Behind one shared (NAT) address, one engineer cannot
//! spend another's budget; one engineer with many addresses is still
//! limited. (Sign-in per account: `sso_forged.rs`; SCIM per token:
//! `scim.rs`.)

use std::net::SocketAddr;

use aiworklab::AppState;
use aiworklab::config::RawRateLimit;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use crate::support::{Answer, Env, send, send_from, signed_in, with_csrf};

/// The corporate NAT address everyone shares.
const NAT: &str = "198.51.100.7:40000";

fn nat() -> SocketAddr {
    NAT.parse().expect("addr")
}

/// The `n`th address of a client that has many.
fn roaming(n: u8) -> SocketAddr {
    SocketAddr::from(([203, 0, 113, n], 40000))
}

fn json_req(
    method: &str,
    uri: &str,
    bearer: Option<&str>,
    cookie: Option<&str>,
    body: &Value,
) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = bearer {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    r.body(Body::from(body.to_string())).expect("request")
}

/// The export with the session cookie, and its CSRF token as the session
/// JSON API requires.
fn export(state: &AppState, cookie: &str) -> Request<Body> {
    let r = Request::get("/api/v1/me/export")
        .header("cookie", cookie)
        .body(Body::empty())
        .expect("request");
    with_csrf(state, r, cookie)
}

fn assert_limited(a: &Answer, what: &str) {
    assert_eq!(
        a.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{what}: {}",
        a.text()
    );
    assert!(
        a.header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)),
        "{what}: no Retry-After"
    );
}

/// A new engineer with a paired device: (access token, refresh token).
async fn device(state: &AppState, user: &str) -> (String, String) {
    let (cookie, _) = signed_in(state, "acme", user, false);
    pair(state, &cookie).await
}

/// A device paired by the engineer signed in with `cookie`.
async fn pair(state: &AppState, cookie: &str) -> (String, String) {
    let cookie = cookie.to_string();
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
    let g = grant.json();
    (
        g["access_token"].as_str().expect("access").to_string(),
        g["refresh_token"].as_str().expect("refresh").to_string(),
    )
}

fn push(token: &str) -> Request<Body> {
    json_req(
        "POST",
        "/api/v1/sync/deltas",
        Some(token),
        None,
        &json!({"deltas": []}),
    )
}

#[tokio::test]
async fn export_is_three_an_hour_per_engineer_not_per_address() {
    let env = Env::new(&["acme"]);
    let state = env.state();
    let (alice, _) = signed_in(&state, "acme", "alice", false);
    let (bob, _) = signed_in(&state, "acme", "bob", false);
    // Alice spends her three exports from the office address...
    for _ in 0..3 {
        let a = send_from(&state, nat(), export(&state, &alice)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    }
    assert_limited(
        &send_from(&state, nat(), export(&state, &alice)).await,
        "alice's fourth",
    );
    // ...which leaves Bob, behind the same address, his own three.
    for _ in 0..3 {
        let a = send_from(&state, nat(), export(&state, &bob)).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "bob was limited by alice: {}",
            a.text()
        );
    }
    // And Alice gains nothing by moving to other addresses.
    for n in 1..=3 {
        assert_limited(
            &send_from(&state, roaming(n), export(&state, &alice)).await,
            "alice elsewhere",
        );
    }
}

#[tokio::test]
async fn sync_is_limited_per_device_under_each_addresss_ceiling() {
    let mut env = Env::new(&["acme"]);
    env.raw.rate_limits.sync = RawRateLimit {
        ip_requests: Some(6),
        ..RawRateLimit::new(3, 3600)
    };
    let state = env.state();
    let (a, _) = device(&state, "alice").await;
    let (b, _) = device(&state, "bob").await;
    let (c, _) = device(&state, "carol").await;
    // One device, many addresses: still three.
    for n in 1..=3 {
        assert_eq!(
            send_from(&state, roaming(n), push(&a)).await.status,
            StatusCode::OK
        );
    }
    assert_limited(
        &send_from(&state, roaming(4), push(&a)).await,
        "a from a fourth address",
    );
    // Pulls count against the same per-device budget.
    let pull = Request::get("/api/v1/sync/deltas")
        .header("authorization", format!("Bearer {a}"))
        .body(Body::empty())
        .expect("request");
    assert_limited(&send_from(&state, roaming(5), pull).await, "a pulling");
    // Behind one address: Alice, out of budget, leaves Bob his three.
    assert_limited(
        &send_from(&state, nat(), push(&a)).await,
        "a behind the NAT",
    );
    for _ in 0..3 {
        let r = send_from(&state, nat(), push(&b)).await;
        assert_eq!(r.status, StatusCode::OK, "b was limited by a: {}", r.text());
    }
    // The address's ceiling (6 here) still holds across every device
    // behind it: 4 spent, so Carol gets 2 and then the ceiling stops her
    // with budget to spare, which she can spend from elsewhere.
    for _ in 0..2 {
        assert_eq!(
            send_from(&state, nat(), push(&c)).await.status,
            StatusCode::OK
        );
    }
    assert_limited(
        &send_from(&state, nat(), push(&c)).await,
        "the address's ceiling",
    );
    assert_eq!(
        send_from(&state, roaming(6), push(&c)).await.status,
        StatusCode::OK,
        "carol's own budget had one left"
    );
}

#[tokio::test]
async fn refresh_is_limited_per_device_not_per_address() {
    let mut env = Env::new(&["acme"]);
    env.raw.rate_limits.refresh = RawRateLimit::new(2, 3600);
    let state = env.state();
    let (_, mut ra) = device(&state, "alice").await;
    let (_, mut rb) = device(&state, "bob").await;
    let refresh = |r: &str| {
        json_req(
            "POST",
            "/api/v1/devices/token",
            None,
            None,
            &json!({"refresh_token": r}),
        )
    };
    for n in 1..=2 {
        let a = send_from(&state, roaming(n), refresh(&ra)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        ra = a.json()["refresh_token"].as_str().expect("r").to_string();
    }
    assert_limited(
        &send_from(&state, roaming(3), refresh(&ra)).await,
        "a third refresh",
    );
    // Another device, from the address just refused, has its own budget.
    for _ in 0..2 {
        let b = send_from(&state, roaming(3), refresh(&rb)).await;
        assert_eq!(b.status, StatusCode::OK, "{}", b.text());
        rb = b.json()["refresh_token"].as_str().expect("r").to_string();
    }
    // A made-up token is charged to the address only.
    let junk = send_from(&state, roaming(3), refresh("aiwl_dev_e30.AAAA")).await;
    assert_eq!(junk.status, StatusCode::UNAUTHORIZED, "{}", junk.text());
}

/// `n` facts about one concept, an hour apart from `start`, ids in order.
fn facts(start: chrono::DateTime<chrono::Utc>, n: i64) -> Value {
    let deltas: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "id": uuid::Uuid::now_v7().to_string(),
                "concept": "rust-lifetimes",
                "transition": "seen",
                "at": (start + chrono::Duration::hours(i)).to_rfc3339(),
            })
        })
        .collect();
    json!({ "deltas": deltas })
}

fn push_body(token: &str, body: &Value) -> Request<Body> {
    json_req("POST", "/api/v1/sync/deltas", Some(token), None, body)
}

/// P17 for sync's work, not only its requests: a device that keeps sending
/// facts dated far in the past makes the server fold the engineer's history
/// of those concepts again, and pays for it from its own refold budget
/// (`rate_limits.refold`, facts folded again per window). Once in debt,
/// its pushes are refused before any work, while another engineer's device,
/// and the same engineer's other device, keep pushing, in order or a
/// little out of order.
#[tokio::test]
async fn a_device_sending_far_past_facts_is_limited_by_its_own_refold_budget() {
    let mut env = Env::new(&["acme"]);
    env.raw.rate_limits.refold = RawRateLimit::new(150, 3600);
    let state = env.state();
    let (cookie, _) = signed_in(&state, "acme", "mallory", false);
    let (mallory, _) = pair(&state, &cookie).await;
    let (mallory_phone, _) = pair(&state, &cookie).await;
    let (bob, _) = device(&state, "bob").await;
    let now = chrono::Utc::now();
    let ok = |a: &Answer, what: &str| assert_eq!(a.status, StatusCode::OK, "{what}: {}", a.text());
    // A history of 100 facts over the last days, in order: no refold.
    let history = send(
        &state,
        push_body(&mallory, &facts(now - chrono::Duration::days(5), 100)),
    )
    .await;
    ok(&history, "history");
    let bob_history = send(
        &state,
        push_body(&bob, &facts(now - chrono::Duration::days(5), 100)),
    )
    .await;
    ok(&bob_history, "bob's history");
    // Each fact from last year sorts before all 100: the first push folds
    // them again and is charged those beyond one checkpoint interval (84
    // of 150), the second (85) leaves the device in debt.
    let year_ago = now - chrono::Duration::days(365);
    ok(
        &send(&state, push_body(&mallory, &facts(year_ago, 1))).await,
        "first far-past push",
    );
    ok(
        &send(&state, push_body(&mallory, &facts(year_ago, 1))).await,
        "second far-past push",
    );
    let stored_before = count_deltas(&state);
    let refused = send(&state, push_body(&mallory, &facts(year_ago, 1))).await;
    assert_limited(&refused, "the third far-past push");
    assert!(
        refused.text().contains("retry after"),
        "the refusal says when: {}",
        refused.text()
    );
    assert_eq!(
        count_deltas(&state),
        stored_before,
        "a refused push stores nothing"
    );
    // In-order pushes of that device wait too: its budget is spent.
    assert_limited(
        &send(&state, push_body(&mallory, &facts(now, 1))).await,
        "the device in debt, in order",
    );
    // Meanwhile another engineer's device pushes, in order and late.
    for i in 0..5 {
        ok(
            &send(
                &state,
                push_body(&bob, &facts(now + chrono::Duration::seconds(i), 1)),
            )
            .await,
            "bob in order",
        );
    }
    ok(
        &send(
            &state,
            push_body(&bob, &facts(now - chrono::Duration::hours(1), 1)),
        )
        .await,
        "bob a little late",
    );
    // And the same engineer's other device has its own budget.
    ok(
        &send(&state, push_body(&mallory_phone, &facts(now, 3))).await,
        "mallory's other device",
    );
}

/// Issue 23: a push whose late facts would fold more of a concept's
/// history again than a push may (`graph::states::INLINE_REFOLD`) stores
/// its facts and queues the concept; the refold worker folds it in slices,
/// each its own transaction. Meanwhile other devices push, and the
/// engineer's own view of the concept is exact; once the queue is worked
/// the stored state is the fold of every fact.
#[tokio::test]
async fn a_deep_refold_leaves_the_push_and_the_worker_folds_it_in_slices() {
    use aiworklab::graph::{me, refold};
    let mut env = Env::new(&["acme"]);
    env.raw.rate_limits.refold = RawRateLimit::new(1_000_000, 60);
    let state = env.state();
    let (cookie, mallory_id) = signed_in(&state, "acme", "mallory", false);
    let (mallory, _) = pair(&state, &cookie).await;
    let (bob, _) = device(&state, "bob").await;
    let ok = |a: &Answer, what: &str| assert_eq!(a.status, StatusCode::OK, "{what}: {}", a.text());
    let now = chrono::Utc::now();
    // 5,000 facts of one concept, an hour apart, in order.
    let start = now - chrono::Duration::days(300);
    for k in 0..5 {
        let from = start + chrono::Duration::hours(1000 * k);
        ok(
            &send(&state, push_body(&mallory, &facts(from, 1000))).await,
            "history",
        );
    }
    let org = state.store.org("acme").expect("org");
    let stored = |what: &str| -> i64 {
        org.db
            .read(|c| {
                c.query_row(
                    "SELECT facts FROM concept_states WHERE user_id = ?1",
                    [&mallory_id],
                    |r| r.get(0),
                )
                .map_err(aiworklab::store::StoreError::from)
            })
            .expect(what)
    };
    assert_eq!(stored("history"), 5000);
    // One fact from before all of them: accepted, stored, queued.
    let far = send(
        &state,
        push_body(&mallory, &facts(now - chrono::Duration::days(400), 1)),
    )
    .await;
    ok(&far, "the far-past push");
    assert_eq!(far.json()["accepted"], 1);
    assert_eq!(count_deltas(&state), 5001);
    let waiting = org
        .db
        .read(|c| refold::waiting(c, &mallory_id).map_err(aiworklab::store::StoreError::from))
        .expect("queue");
    assert_eq!(waiting, ["rust-lifetimes"]);
    assert_eq!(stored("queued"), 5000, "the row waits for the worker");
    // The engineer's own pages fold the waiting concept from its facts.
    assert_eq!(
        me::stored_states(org, &mallory_id).expect("stored"),
        me::states(org, &mallory_id).expect("folded")
    );
    // Other devices push meanwhile, and so does the same device, in order.
    ok(
        &send(&state, push_body(&bob, &facts(now, 3))).await,
        "bob meanwhile",
    );
    ok(
        &send(
            &state,
            push_body(&mallory, &facts(now - chrono::Duration::hours(2), 2)),
        )
        .await,
        "mallory in order, while queued",
    );
    assert_eq!(
        stored("queued"),
        5000,
        "the queued concept is not folded by pushes"
    );
    // The worker: 5,003 facts from the start, at most `SLICE` a slice.
    let mut slices = 0;
    loop {
        let w = refold::slice(org, now).expect("slice");
        slices += 1;
        assert!(w.facts <= refold::SLICE);
        if w.left == 0 {
            break;
        }
        assert!(slices < 10, "the worker makes progress");
    }
    assert_eq!(slices, 5003usize.div_ceil(refold::SLICE));
    assert_eq!(stored("worked"), 5003);
    assert_eq!(
        me::stored_states(org, &mallory_id).expect("stored"),
        me::states(org, &mallory_id).expect("folded")
    );
}

fn count_deltas(state: &AppState) -> i64 {
    state
        .store
        .org("acme")
        .expect("org")
        .db
        .read(|c| {
            c.query_row("SELECT count(*) FROM deltas", [], |r| r.get(0))
                .map_err(aiworklab::store::StoreError::from)
        })
        .expect("count")
}
