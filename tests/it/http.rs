//! The HTTP edge without a socket: security headers (P13), rate limits
//! (P17), request ids and logs (P24), metrics access, readiness, and plain
//! HTTP on a public bind (P2).

use std::sync::Arc;
use std::time::Duration;

use aiworklab::config::RawRateLimit;
use aiworklab::http::SECURITY_HEADERS;
use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::support::{Answer, Env, Logs, get, get_with_cookie, send, send_from, signed_in};

fn assert_security_headers(a: &Answer, what: &str) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(a.header(name), Some(value), "{what}: header {name}");
    }
    let csp = a.header("content-security-policy").expect("csp");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("http"),
        "{what}: CSP allows more than self"
    );
    assert!(
        a.header("set-cookie").is_none(),
        "{what}: anonymous responses set no cookie"
    );
}

#[tokio::test]
async fn security_headers_are_on_every_kind_of_response() {
    let mut env = Env::new(&["acme"]);
    env.raw.server.max_body_bytes = 1024;
    env.raw.rate_limits.general = RawRateLimit::new(5, 3600);
    let state = env.state();

    let ok = send(&state, get("/healthz")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_security_headers(&ok, "200");

    let missing = send(&state, get("/no/such/page")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(missing.json()["status"], 404);
    assert_security_headers(&missing, "404");

    let wrong_method = send(
        &state,
        Request::post("/healthz").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        wrong_method.header("content-type"),
        Some("application/problem+json")
    );
    assert_security_headers(&wrong_method, "405");

    let big = Request::post("/healthz")
        .header("content-length", "4096")
        .body(Body::from(vec![b'x'; 4096]))
        .expect("req");
    let too_big = send(&state, big).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        too_big.header("content-type"),
        Some("application/problem+json")
    );
    assert_security_headers(&too_big, "413");

    let far = "203.0.113.5:1234".parse().expect("addr");
    let forbidden = send_from(&state, far, get("/metrics")).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_security_headers(&forbidden, "403");

    let mut limited = None;
    for _ in 0..10 {
        let a = send(&state, get("/healthz")).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(a);
            break;
        }
    }
    let limited = limited.expect("the general budget of 5 ran out");
    assert_security_headers(&limited, "429");
}

#[tokio::test]
async fn over_budget_answers_429_with_retry_after_and_recovers_after_it() {
    let mut env = Env::new(&["acme"]);
    env.raw.rate_limits.general = RawRateLimit::new(2, 2);
    let state = env.state();
    assert_eq!(send(&state, get("/healthz")).await.status, StatusCode::OK);
    assert_eq!(send(&state, get("/readyz")).await.status, StatusCode::OK);
    let refused = send(&state, get("/healthz")).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry), "retry after {retry}");
    assert_eq!(refused.json()["status"], 429);
    // Unknown routes spend the same budget, so scanning is limited too.
    assert_eq!(
        send(&state, get("/nope")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client is not affected.
    let other = "192.0.2.44:1".parse().expect("addr");
    assert_eq!(
        send_from(&state, other, get("/healthz")).await.status,
        StatusCode::OK
    );
    // Waiting as told restores the budget.
    tokio::time::sleep(Duration::from_secs(retry) + Duration::from_millis(50)).await;
    assert_eq!(send(&state, get("/healthz")).await.status, StatusCode::OK);
    // Rejections are counted in the metrics (read from another loopback
    // address, which has its own budget).
    let scraper = "127.0.0.2:9".parse().expect("addr");
    let m = send_from(&state, scraper, get("/metrics")).await;
    assert!(
        m.text()
            .contains("aiworklab_rate_limited_requests_total{class=\"general\"} 2"),
        "{}",
        m.text()
    );
}

#[tokio::test]
async fn request_ids_are_generated_or_accepted_only_when_safe() {
    let env = Env::new(&["acme"]);
    let state = env.state();
    let a = send(&state, get("/healthz")).await;
    let generated = a.header("x-request-id").expect("generated id");
    assert_eq!(generated.len(), 36, "{generated}");

    let given = Request::get("/healthz")
        .header("x-request-id", "lb-1234.abc_DEF")
        .body(Body::empty())
        .expect("req");
    assert_eq!(
        send(&state, given).await.header("x-request-id"),
        Some("lb-1234.abc_DEF")
    );

    for hostile in ["a b", "x\"y", &"z".repeat(65), "id<script>", "a\tb"] {
        let req = Request::get("/healthz")
            .header("x-request-id", hostile.as_bytes())
            .body(Body::empty())
            .expect("req");
        let id = send(&state, req)
            .await
            .header("x-request-id")
            .expect("id")
            .to_string();
        assert_ne!(id, hostile);
        assert_eq!(id.len(), 36);
    }
}

#[tokio::test]
async fn metrics_are_served_only_to_allowed_networks_and_with_the_token() {
    let mut env = Env::new(&["acme"]);
    env.raw.metrics.allow_from = vec!["127.0.0.0/8".into(), "10.9.0.0/16".into()];
    env.raw.metrics.token = "scrape-me".into();
    let state = env.state();
    let inside = "10.9.1.2:999".parse().expect("addr");
    let outside = "10.8.1.2:999".parse().expect("addr");

    let no_token = send_from(&state, inside, get("/metrics")).await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    let with = |t: &str| {
        Request::get("/metrics")
            .header("authorization", format!("Bearer {t}"))
            .body(Body::empty())
            .expect("req")
    };
    assert_eq!(
        send_from(&state, inside, with("wrong")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send_from(&state, outside, with("scrape-me")).await.status,
        StatusCode::FORBIDDEN
    );
    let ok = send_from(&state, inside, with("scrape-me")).await;
    assert_eq!(ok.status, StatusCode::OK);
    let text = ok.text();
    for metric in [
        "aiworklab_http_requests_total{",
        "aiworklab_http_request_duration_seconds_bucket{",
        "aiworklab_database_size_bytes{database=\"org:acme\"}",
        "aiworklab_database_size_bytes{database=\"system\"}",
        "aiworklab_database_read_connections{database=\"org:acme\",state=\"idle\"}",
        "aiworklab_database_read_connections{database=\"system\",state=\"busy\"}",
        "aiworklab_build_info{",
    ] {
        assert!(text.contains(metric), "missing {metric} in\n{text}");
    }
    assert!(
        text.contains("route=\"/metrics\""),
        "requests are labelled by route"
    );
    let gauge = |labels: &str| -> i64 {
        let prefix = format!("aiworklab_database_read_connections{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    // Opening the store read system.db once; nothing holds a connection
    // between requests.
    assert!(gauge("database=\"system\",state=\"idle\"") >= 1, "{text}");
    assert_eq!(gauge("database=\"system\",state=\"busy\""), 0, "{text}");
    assert_eq!(gauge("database=\"org:acme\",state=\"busy\""), 0, "{text}");
}

#[tokio::test]
async fn readiness_reports_every_database() {
    let env = Env::new(&["a", "b"]);
    let state = env.state();
    let a = send(&state, get("/readyz")).await;
    assert_eq!(a.status, StatusCode::OK);
    let names: Vec<String> = a.json()["databases"]
        .as_array()
        .expect("list")
        .iter()
        .map(|d| d["name"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(names, ["system", "org:a", "org:b"]);
}

#[tokio::test]
async fn plain_http_on_a_public_bind_is_served_only_to_the_trusted_proxy() {
    let mut env = Env::new(&["acme"]);
    env.raw.server.bind = "0.0.0.0:8080".into();
    env.raw.server.public_url = "https://skills.example.com".into();
    env.raw.server.trusted_proxies = vec!["10.0.0.5".into()];
    let state = env.state();
    let stranger = "203.0.113.9:5000".parse().expect("addr");
    let proxy = "10.0.0.5:5000".parse().expect("addr");
    let refused = send_from(&state, stranger, get("/healthz")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.json()["detail"]
            .as_str()
            .expect("detail")
            .contains("reverse proxy")
    );
    assert_eq!(
        send_from(&state, proxy, get("/healthz")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logs_carry_request_id_and_route_but_never_paths_bodies_or_credentials() {
    let (buffer, _guard, _anchor) = Logs::capture();
    let env = Env::new(&["acme"]);
    let state = env.state();
    let req = Request::post("/o/acme/secret-path-QPATH?code=QQUERY")
        .header("authorization", "Bearer QBEARER")
        .header("cookie", "__Host-aiwl_session=QCOOKIE")
        .header("x-request-id", "trace-me-1")
        .body(Body::from("QBODY answer text"))
        .expect("req");
    let answer = send(&state, req).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let _ = send(&state, get("/healthz")).await;

    let logs = buffer.text();
    for secret in ["QPATH", "QQUERY", "QBEARER", "QCOOKIE", "QBODY"] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
    let line = logs
        .lines()
        .find(|l| l.contains("trace-me-1"))
        .unwrap_or_else(|| panic!("no line carries the request id:\n{logs}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(v["span"]["request_id"], "trace-me-1", "{line}");
    assert_eq!(v["status"], 404);
    assert!(
        logs.contains("\"route\":\"/healthz\""),
        "route is logged:\n{logs}"
    );
}

/// The request metrics' labels come from bounded sets: a client sending
/// made-up methods (to any path) creates no new series beyond `other`.
#[tokio::test]
async fn made_up_methods_and_paths_create_no_new_metric_series() {
    let env = Env::new(&["acme"]);
    let state = env.state();
    let scraper = "127.0.0.2:9".parse().expect("addr");
    let series = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("aiworklab_http_requests_total{"))
            .map(|l| l.rsplit_once(' ').map_or(l, |(k, _)| k).to_string())
            .collect()
    };
    // Warm up: one of each known kind of answer, then take the baseline.
    send(&state, get("/healthz")).await;
    send(&state, get("/no/such/page")).await;
    let before = series(&send_from(&state, scraper, get("/metrics")).await.text());
    for i in 0..40 {
        let method = format!("X-PROBE{i}");
        let req = Request::builder()
            .method(method.as_str())
            .uri(format!("/made/up/path/{i}"))
            .body(Body::empty())
            .expect("req");
        send(&state, req).await;
        let req = Request::builder()
            .method(method.as_str())
            .uri("/healthz")
            .body(Body::empty())
            .expect("req");
        send(&state, req).await;
    }
    let text = send_from(&state, scraper, get("/metrics")).await.text();
    assert!(
        !text.contains("X-PROBE"),
        "a made-up method became a label:\n{text}"
    );
    assert!(
        !text.contains("/made/up"),
        "a request path became a label:\n{text}"
    );
    let after = series(&text);
    let new: Vec<&String> = after.iter().filter(|s| !before.contains(s)).collect();
    // At most: `other` on the unmatched route and on `/healthz` (405),
    // each with its status, and the scrape's own series.
    assert!(new.len() <= 4, "new series: {new:#?}");
    assert!(
        new.iter()
            .all(|s| s.contains("method=\"other\"") || s.contains("route=\"/metrics\"")),
        "new series: {new:#?}"
    );
    assert!(text.contains("method=\"other\""), "{text}");
}

/// Every read connection of both databases held by someone else: the
/// session cookie cannot be checked, and each surface says "busy, retry"
/// in its own format (503 with `Retry-After`) instead of a 500. Released,
/// the same requests succeed.
#[tokio::test]
async fn a_busy_database_answers_503_with_retry_after_on_every_surface() {
    use std::sync::mpsc;

    let mut env = Env::new(&["acme"]);
    env.raw.storage.read_pool_size = 1;
    env.raw.storage.busy_timeout_ms = 200;
    let state = env.state();
    let (cookie, _) = signed_in(&state, "acme", "ada", false);
    let (_, scim) = aiworklab::tokens::create(
        state.store.org("acme").expect("org"),
        aiworklab::tokens::TokenKind::Scim,
        "okta",
        None,
        &aiworklab::users::AdminCtx::operator(),
        state.clock.now(),
    )
    .expect("token");
    let requests = || {
        vec![
            ("page", get_with_cookie("/account", &cookie), "text/html"),
            (
                "api",
                get_with_cookie("/api/v1/me/graph", &cookie),
                "application/problem+json",
            ),
            (
                "scim",
                Request::get("/scim/v2/Users")
                    .header("authorization", format!("Bearer {}", scim.expose()))
                    .body(Body::empty())
                    .expect("request"),
                "application/scim+json",
            ),
        ]
    };

    // Hold the one read connection of each database until told to let go.
    let (release, held) = (Arc::new(std::sync::Barrier::new(3)), mpsc::channel());
    let mut holders = Vec::new();
    for org in [false, true] {
        let (store, release, held) = (
            Arc::clone(&state.store),
            Arc::clone(&release),
            held.0.clone(),
        );
        holders.push(std::thread::spawn(move || {
            let db = if org {
                &store.org("acme").expect("org").db
            } else {
                store.system()
            };
            db.read(|_| {
                held.send(()).expect("main thread waits");
                release.wait();
                Ok::<_, aiworklab::store::StoreError>(())
            })
            .expect("read");
        }));
    }
    held.1.recv().expect("held");
    held.1.recv().expect("held");
    for (surface, req, content_type) in requests() {
        let res = send(&state, req).await;
        assert_eq!(
            res.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{surface}: {}",
            res.text()
        );
        assert_eq!(res.header("retry-after"), Some("1"), "{surface}");
        let ct = res.header("content-type").unwrap_or_default();
        assert!(ct.starts_with(content_type), "{surface}: {ct}");
    }
    release.wait();
    for h in holders {
        h.join().expect("holder");
    }
    for (surface, req, _) in requests() {
        let res = send(&state, req).await;
        assert_eq!(res.status, StatusCode::OK, "{surface}: {}", res.text());
    }
}
