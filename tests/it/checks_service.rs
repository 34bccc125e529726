//! The question service against a scripted OpenAI-compatible server on
//! loopback (`scripted_model.rs`): generated checks stored with their
//! provenance and reused, every way the model can fail falling back to the
//! bank, the API key kept out of logs, errors and `/metrics` (P6), graded
//! answers leaving no trace, and who may call (paired devices of the org,
//! within their budget; admins for the generated checks).

use std::time::Duration;

use aiworklab::AppState;
use aiworklab::config::RawModel;
use aiworklab::question::service;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use crate::scripted_model::{Scripted, Step};
use crate::support::{Answer, Env, Logs, send, signed_in, table_values, with_csrf};

pub const KEY: &str = "sk-test-KEY-7f3a9c51";
pub const CONCEPT: &str = "git-branches";
const MODEL: &str = "scripted-model";

/// Configures `[model]` at `base_url` with the test key in a 0600 file.
pub fn configure_model(env: &mut Env, base_url: &str, timeout_secs: u64) {
    use std::os::unix::fs::PermissionsExt;
    let key = env.dir.path().join("model.key");
    std::fs::write(&key, format!("{KEY}\n")).expect("key file");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    env.raw.model = Some(RawModel {
        base_url: base_url.to_string(),
        model: MODEL.into(),
        api_key_file: key.display().to_string(),
        timeout_secs,
        ..RawModel::default()
    });
}

/// An installation of org `acme` whose model is a fresh scripted server.
async fn with_scripted(timeout_secs: u64) -> (Env, AppState, Scripted) {
    let model = Scripted::start().await;
    let mut env = Env::new(&["acme", "globex"]);
    configure_model(&mut env, &model.base_url(), timeout_secs);
    let state = env.state();
    (env, state, model)
}

fn json_req(method: &str, uri: &str, token: Option<&str>, body: Option<&Value>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            r = r.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    r.body(body).expect("request")
}

/// Pairs a device for a new member of `org`; its access token.
pub async fn device(state: &AppState, org: &str, name: &str) -> String {
    let (cookie, _) = signed_in(state, org, name, false);
    let code = send(
        state,
        with_csrf(
            state,
            Request::post("/api/v1/me/pairing-codes")
                .header("cookie", &cookie)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .expect("request"),
            &cookie,
        ),
    )
    .await;
    assert_eq!(code.status, StatusCode::OK, "{}", code.text());
    let grant = send(
        state,
        json_req(
            "POST",
            "/api/v1/devices/pair",
            None,
            Some(&json!({"code": code.json()["code"], "device_name": "laptop"})),
        ),
    )
    .await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.text());
    grant.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

pub async fn next(state: &AppState, token: &str, concept: &str) -> Answer {
    let uri = format!("/api/v1/checks/next?concept={concept}");
    send(state, json_req("GET", &uri, Some(token), None)).await
}

pub async fn grade(state: &AppState, token: &str, body: &Value) -> Answer {
    send(
        state,
        json_req("POST", "/api/v1/checks/grade", Some(token), Some(body)),
    )
    .await
}

pub fn good_check(concept: &str, n: usize) -> Value {
    json!({
        "concept": concept,
        "prompt": format!("Question {n}: what does creating a branch in Git actually create?"),
        "options": ["A movable pointer to a commit", "A copy of the working tree",
                    "A new repository", "A tag signed by the author"],
        "correct": 0,
        "explanation": "A branch is a name for a commit that moves as you commit on it.",
    })
}

fn stored(state: &AppState, org: &str) -> Vec<service::GeneratedCheck> {
    service::list_generated(state.store.org(org).expect("org"), None).expect("list")
}

pub fn metrics(state: &AppState) -> String {
    state.metrics.render(&state.store)
}

fn calls(state: &AppState, outcome: &str) -> u64 {
    let prefix =
        format!("aiworklab_model_calls_total{{purpose=\"generate\",outcome=\"{outcome}\"}} ");
    metrics(state)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().expect("count"))
}

#[tokio::test]
async fn a_schema_valid_check_is_stored_with_provenance_and_then_reused() {
    let (_env, state, model) = with_scripted(10).await;
    let token = device(&state, "acme", "priya").await;
    model.then((0..service::GENERATE_UNTIL).map(|n| Step::json(&good_check(CONCEPT, n))));
    for n in 0..service::GENERATE_UNTIL {
        let a = next(&state, &token, CONCEPT).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        let c = a.json();
        assert_eq!(c["source"], "generated", "{c}");
        assert_eq!(c["model"], MODEL);
        assert_eq!(c["concept"], CONCEPT);
        assert_eq!(c["kind"], "choice");
        assert_eq!(c["answer"]["correct"], 0);
        assert!(
            c["prompt"]
                .as_str()
                .expect("prompt")
                .starts_with(&format!("Question {n}"))
        );
        assert_eq!(
            c["prompt_sha256"],
            aiworklab::model::generate::prompt_sha256()
        );
    }
    let kept = stored(&state, "acme");
    assert_eq!(kept.len(), service::GENERATE_UNTIL);
    assert!(
        kept.iter()
            .all(|g| g.model == MODEL && g.id.starts_with("gen-"))
    );

    // What the model was sent: the concept's catalogue entry, the schema,
    // the key as a bearer token; nothing about the engineer.
    let sent = model.received();
    assert_eq!(sent.len(), service::GENERATE_UNTIL);
    let body = &sent[0].body;
    assert_eq!(
        sent[0].authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    let prompt = body["messages"].to_string();
    let title = state.catalogue.get(CONCEPT).expect("shipped").title.clone();
    assert!(
        prompt.contains(&title) && prompt.contains(CONCEPT),
        "{prompt}"
    );
    assert!(
        !prompt.contains("priya") && !prompt.contains("laptop"),
        "{prompt}"
    );
    // The schema's properties arrive in the order the model should write
    // them (a grammar-constrained server keeps it): the question first,
    // the answer after; and max_tokens covers the longest check it allows.
    let raw = &sent[0].raw;
    let props = &raw[raw.find("\"properties\":").expect("properties")..];
    let at = |k: &str| props.find(&format!("\"{k}\":")).expect(k);
    assert!(
        ["concept", "prompt", "options", "correct", "explanation"]
            .windows(2)
            .all(|w| at(w[0]) < at(w[1])),
        "{raw}"
    );
    let schema = &body["response_format"]["json_schema"]["schema"];
    let most = |p: &str| schema["properties"][p]["maxLength"].as_u64().expect(p);
    let longest = most("prompt")
        + most("explanation")
        + schema["properties"]["options"]["maxItems"]
            .as_u64()
            .expect("items")
            * schema["properties"]["options"]["items"]["maxLength"]
                .as_u64()
                .expect("option");
    assert!(
        body["max_tokens"].as_u64().expect("max_tokens") > longest,
        "{body}"
    );

    // Full: no more calls; stored and bank checks are served.
    let mut sources = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let c = next(&state, &token, CONCEPT).await.json();
        sources.insert(c["source"].as_str().expect("source").to_string());
    }
    assert_eq!(
        model.received().len(),
        service::GENERATE_UNTIL,
        "reused, not asked again"
    );
    assert_eq!(
        sources.into_iter().collect::<Vec<_>>(),
        ["bank", "generated"]
    );
    assert_eq!(calls(&state, "ok"), service::GENERATE_UNTIL as u64);
    assert!(
        metrics(&state)
            .contains("aiworklab_model_call_duration_seconds_count{purpose=\"generate\"} 5")
    );
}

#[tokio::test]
async fn invalid_off_schema_and_off_concept_answers_fall_back_to_the_bank() {
    let (_env, state, model) = with_scripted(10).await;
    let token = device(&state, "acme", "priya").await;
    let mut off_schema = good_check(CONCEPT, 1);
    off_schema["options"] = json!(["same", "Same.", "other", "fourth"]);
    let mut out_of_range = good_check(CONCEPT, 2);
    out_of_range["correct"] = json!(4);
    let steps = [
        Step::Content("Sure! Here is a question: what is a branch?".into()),
        Step::json(&json!({"question": "what is a branch?"})),
        Step::json(&off_schema),
        Step::json(&out_of_range),
        Step::json(&good_check("git-object-model", 3)),
    ];
    let n = steps.len();
    model.then(steps);
    for _ in 0..n {
        let a = next(&state, &token, CONCEPT).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_eq!(a.json()["source"], "bank", "{}", a.text());
        assert!(a.json()["id"].as_str().expect("id").starts_with(CONCEPT));
    }
    assert_eq!(model.received().len(), n, "each request asked the model");
    assert!(
        stored(&state, "acme").is_empty(),
        "nothing refused was stored"
    );
    assert_eq!(
        calls(&state, "bad_answer"),
        n as u64,
        "each counted as refused"
    );
    assert_eq!(calls(&state, "ok"), 0);
}

#[tokio::test]
async fn a_slow_model_times_out_and_the_bank_answers() {
    let (_env, state, model) = with_scripted(1).await;
    let token = device(&state, "acme", "priya").await;
    model.then([Step::Slow(
        Duration::from_secs(3),
        good_check(CONCEPT, 0).to_string(),
    )]);
    let a = next(&state, &token, CONCEPT).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["source"], "bank");
    written(&state).await;
    assert_eq!(calls(&state, "timeout"), 1);
    assert!(stored(&state, "acme").is_empty());
}

/// Waits (up to 30 s) until the model is no longer writing a check about
/// `CONCEPT` for acme.
async fn written(state: &AppState) {
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while state.writing.is_writing("acme", CONCEPT) {
        assert!(
            std::time::Instant::now() < until,
            "still writing after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A model slower than `model.generate_wait_secs` (1 s here; its timeout
/// is 10): the engineer gets a bank check after the wait, a second request
/// meanwhile does not ask the model again, and the model's check, when it
/// comes, is stored and served later like any other.
#[tokio::test]
async fn a_check_the_model_is_still_writing_is_kept_for_later_requests() {
    let model = Scripted::start().await;
    let mut env = Env::new(&["acme"]);
    configure_model(&mut env, &model.base_url(), 10);
    if let Some(m) = env.raw.model.as_mut() {
        m.generate_wait_secs = Some(1);
    }
    let state = env.state();
    let token = device(&state, "acme", "priya").await;
    model.then([
        Step::Slow(Duration::from_secs(3), good_check(CONCEPT, 0).to_string()),
        Step::json(&good_check(CONCEPT, 1)),
    ]);
    let a = next(&state, &token, CONCEPT).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["source"], "bank", "served after the wait");
    assert!(state.writing.is_writing("acme", CONCEPT));
    let b = next(&state, &token, CONCEPT).await;
    assert_eq!(b.json()["source"], "bank", "{}", b.text());
    assert_eq!(model.received().len(), 1, "not asked twice at once");
    written(&state).await;
    let kept = stored(&state, "acme");
    assert_eq!(kept.len(), 1, "the late check is stored");
    assert_eq!(calls(&state, "ok"), 1);
    // Fewer than GENERATE_UNTIL: the next request asks again, and gets
    // the model's second check at once.
    let c = next(&state, &token, CONCEPT).await;
    assert_eq!(c.json()["source"], "generated", "{}", c.text());
    assert_ne!(c.json()["id"], json!(kept[0].id), "a new one");
    assert_eq!(stored(&state, "acme").len(), 2);
    assert!(!state.writing.is_writing("acme", CONCEPT));
}

#[tokio::test]
async fn a_stopped_model_falls_back_to_the_bank() {
    // A port that was bound and closed: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut env = Env::new(&["acme"]);
    configure_model(&mut env, &format!("http://127.0.0.1:{port}/v1"), 5);
    let state = env.state();
    let token = device(&state, "acme", "priya").await;
    let (logs, _guard, _anchor) = Logs::capture();
    let a = next(&state, &token, CONCEPT).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["source"], "bank");
    assert_eq!(calls(&state, "unreachable"), 1);
    let logged = logs.text();
    assert!(
        logged.contains("cannot be reached") && logged.contains("model.base_url"),
        "{logged}"
    );
    // Grading free text needs the model: a clear 503.
    let g = grade(
        &state,
        &token,
        &json!({"check_id": "git-branches-1", "answer": "a pointer I think"}),
    )
    .await;
    assert_eq!(g.status, StatusCode::SERVICE_UNAVAILABLE, "{}", g.text());
    assert!(
        g.json()["detail"]
            .as_str()
            .expect("detail")
            .contains("cannot be reached")
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_a_clear_error_naming_the_file_never_the_key() {
    let (env, state, model) = with_scripted(10).await;
    let token = device(&state, "acme", "priya").await;
    let (logs, _guard, _anchor) = Logs::capture();
    model.then([Step::Status(401), Step::Status(403)]);
    let a = next(&state, &token, CONCEPT).await;
    assert_eq!(a.json()["source"], "bank", "{}", a.text());
    let g = grade(
        &state,
        &token,
        &json!({"check_id": "git-branches-1", "answer": "no idea, honestly"}),
    )
    .await;
    assert_eq!(g.status, StatusCode::SERVICE_UNAVAILABLE, "{}", g.text());
    let key_file = env.dir.path().join("model.key").display().to_string();
    let detail = g.json()["detail"].as_str().expect("detail").to_string();
    assert!(
        detail.contains(&key_file) && detail.contains("model.api_key_file"),
        "{detail}"
    );
    assert!(detail.contains("HTTP 403"), "{detail}");
    let logged = logs.text();
    assert!(
        logged.contains(&key_file) && logged.contains("unauthorized"),
        "{logged}"
    );
    let shown = aiworklab::config::render_redacted(&env.raw);
    let text = metrics(&state);
    assert_eq!(calls(&state, "unauthorized"), 1);
    assert!(
        text.contains("purpose=\"grade\",outcome=\"unauthorized\""),
        "{text}"
    );
    for (place, haystack) in [
        ("logs", &logged),
        ("the error", &g.text()),
        ("/metrics", &text),
        ("config show", &shown),
        (
            "settings Debug",
            &format!("{:?} {:?}", state.settings, state.model),
        ),
    ] {
        assert!(!haystack.contains(KEY), "the key leaked into {place}");
        assert!(
            !haystack.contains("7f3a9c51"),
            "part of the key leaked into {place}"
        );
    }
    // It was sent, to the model and nowhere else.
    assert!(
        model
            .received()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&*format!("Bearer {KEY}")))
    );
}

#[tokio::test]
async fn the_key_goes_to_base_url_only_never_where_a_redirect_points() {
    let (_env, state, model) = with_scripted(10).await;
    let elsewhere = Scripted::start().await;
    elsewhere.then([Step::json(&good_check(CONCEPT, 0))]);
    let token = device(&state, "acme", "priya").await;
    model.then([Step::Redirect(format!(
        "{}/chat/completions",
        elsewhere.base_url()
    ))]);
    let a = next(&state, &token, CONCEPT).await;
    assert_eq!(a.json()["source"], "bank", "{}", a.text());
    assert_eq!(model.received().len(), 1);
    assert!(elsewhere.received().is_empty(), "the redirect was followed");
    assert_eq!(calls(&state, "http_error"), 1);
}

#[tokio::test]
async fn a_graded_answer_is_absent_from_the_database_logs_and_metrics() {
    const MARKER: &str = "MARKER-answer-5c1e-its-a-moving-pointer";
    let (env, state, model) = with_scripted(10).await;
    let token = device(&state, "acme", "priya").await;
    let (logs, _guard, _anchor) = Logs::capture();
    model.then([Step::json(
        &json!({"grade": 3, "feedback": "Right: a branch is a movable name."}),
    )]);
    let g = grade(
        &state,
        &token,
        &json!({"check_id": "git-branches-1", "answer": MARKER}),
    )
    .await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text());
    let v = g.json();
    assert_eq!(
        (v["grade"].as_u64(), v["graded_by"].as_str()),
        (Some(3), Some("model"))
    );
    assert!(
        model.received()[0].body.to_string().contains(MARKER),
        "it reached the model"
    );

    let org = state.store.org("acme").expect("org");
    let db = org
        .db
        .read(|c| Ok::<_, aiworklab::store::StoreError>(table_values(c)))
        .expect("decrypted");
    assert!(
        String::from_utf8_lossy(&db).contains("priya"),
        "the database was read decrypted"
    );
    let system = state
        .store
        .system()
        .read(|c| Ok::<_, aiworklab::store::StoreError>(table_values(c)))
        .expect("system");
    for (place, bytes) in [
        ("the org database", db),
        ("the system database", system),
        ("the logs", logs.text().into_bytes()),
        ("/metrics", metrics(&state).into_bytes()),
    ] {
        assert!(
            !crate::support::contains(&bytes, MARKER.as_bytes()),
            "the answer is in {place}"
        );
    }
    for f in crate::support::files_below(&env.data_dir()) {
        let bytes = std::fs::read(&f).expect("read");
        assert!(
            !crate::support::contains(&bytes, MARKER.as_bytes()),
            "in {}",
            f.display()
        );
    }
}

#[tokio::test]
async fn without_a_model_the_bank_serves_and_free_text_grading_says_how_to_get_one() {
    let env = Env::new(&["acme"]);
    let state = env.state();
    let token = device(&state, "acme", "priya").await;
    let c = next(&state, &token, CONCEPT).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text());
    let c = c.json();
    assert_eq!(c["source"], "bank");
    let id = c["id"].as_str().expect("id");
    let check = state.bank.get(id).expect("a bank check").clone();
    // Keyed grading needs no model.
    let body = match &check.answer {
        aiworklab::checks::Answer::Choice { correct, .. } => {
            json!({"check_id": id, "choice": correct})
        }
        aiworklab::checks::Answer::Short { accepted } => {
            json!({"check_id": id, "answer": accepted[0]})
        }
    };
    let g = grade(&state, &token, &body).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text());
    assert_eq!(
        (g.json()["grade"].as_u64(), g.json()["graded_by"].as_str()),
        (Some(3), Some("key"))
    );
    let g = grade(
        &state,
        &token,
        &json!({"check_id": id, "answer": "something in my own words"}),
    )
    .await;
    assert_eq!(g.status, StatusCode::SERVICE_UNAVAILABLE, "{}", g.text());
    let detail = g.json()["detail"].as_str().expect("detail").to_string();
    assert!(
        detail.contains("model is not configured") && detail.contains("[model]"),
        "{detail}"
    );
}
