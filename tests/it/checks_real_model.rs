//! The question service against the real model server
//! (`model_server.rs`: llama.cpp's `llama-server` with SmolLM2-135M-Instruct,
//! built by `tests/model/install`), configured as an operator would: the
//! `/v1` base URL, `model.api_key_file`, and a server that requires the
//! key. What `checks_service.rs` proves with a scripted server is proved
//! here once with a real one: a check the model wrote is stored with its
//! provenance and served again from the store, a free-text answer is
//! graded by the model, the key it requires is the key sent (and another
//! is refused, naming the key file), and a server stopped mid-way makes
//! the service fall back with a clear reason.
//!
//! The model is small, and the client samples at temperature 0.7 with no
//! seed, so what it writes differs from run to run. Structured output (the
//! server turns the JSON schema into a grammar) keeps it to the schema; a
//! check that still breaks one of the service's own rules (two options
//! alike, say) is refused and the bank answers. So each request's outcome
//! is read from `/metrics` and its source, and the assertions follow them:
//! the test fails when the service and its metrics disagree, or when the
//! model's checks are refused far more often than they are accepted.
//! Filling a concept's GENERATE_UNTIL checks is left to the scripted
//! tests: on CI's shared cores one generation takes 25 to 75 s
//! (docs/model-server.md).

use std::collections::BTreeSet;

use aiworklab::AppState;
use aiworklab::config::RawModel;
use aiworklab::question::service;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::checks_service::{device, grade, metrics, next};
use crate::model_server::{MODEL, ModelOpts, ModelServer};
use crate::support::{Env, Logs};

const KEY: &str = "sk-llama-KEY-51d0e8b7";
const CONCEPT: &str = "git-branches";
/// Requests the model may take to write a check (or a verdict) the
/// service accepts before the test gives up on it (about half of
/// SmolLM2-135M's pass: all twelve refused is a chance of 1 in 4,096).
const MAX_ASKED: usize = 12;

/// Configures `[model]` for the real server at `base_url`, with `key` in a
/// 0600 file; a generous timeout, since CI's cores are shared (one answer
/// takes up to a minute or two there), and a request timeout that leaves
/// the bank its margin after it, as the settings require
/// (`model.timeout_secs` at most `server.request_timeout_secs` - 5; a
/// request still waiting for the model when the request timeout ends
/// would be answered 408, not from the bank; docs/operations.md). The
/// appliance is air-gapped (P25): a model server on the host is all it
/// needs.
fn configure(env: &mut Env, base_url: &str, key: &str) -> String {
    env.raw.air_gapped = true;
    env.raw.server.request_timeout_secs = 600;
    use std::os::unix::fs::PermissionsExt;
    let file = env.dir.path().join("model.key");
    std::fs::write(&file, format!("{key}\n")).expect("key file");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    env.raw.model = Some(RawModel {
        base_url: base_url.to_string(),
        model: MODEL.into(),
        api_key_file: file.display().to_string(),
        timeout_secs: 300,
        // Each request waits for the model's answer (which this test is
        // about) instead of being served the bank after 10 s.
        generate_wait_secs: Some(300),
        max_concurrency: 1,
        ..RawModel::default()
    });
    file.display().to_string()
}

/// `aiworklab_model_calls_total` for this purpose and outcome.
fn calls(state: &AppState, purpose: &str, outcome: &str) -> u64 {
    let prefix =
        format!("aiworklab_model_calls_total{{purpose=\"{purpose}\",outcome=\"{outcome}\"}} ");
    metrics(state)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().expect("count"))
}

/// Every call of this purpose, whatever its outcome.
fn all_calls(state: &AppState, purpose: &str) -> u64 {
    let prefix = format!("aiworklab_model_calls_total{{purpose=\"{purpose}\",");
    metrics(state)
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next())
        .map(|n| n.trim().parse::<u64>().expect("count"))
        .sum()
}

/// The reasons the service logged for refused model calls.
fn refusals(logs: &Logs) -> Vec<String> {
    logs.text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "model call failed")
        .map(|v| v["error"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn the_real_model_writes_a_check_that_is_stored_and_reused_grades_and_when_stopped_the_bank_answers()
 {
    let mut server = ModelServer::start(ModelOpts {
        api_key: Some(KEY.into()),
        ..ModelOpts::default()
    })
    .await;
    let mut env = Env::new(&["acme"]);
    configure(&mut env, &server.base_url(), KEY);
    let state = env.state();
    let token = device(&state, "acme", "priya").await;
    let (logs, _guard, _anchor) = Logs::capture();
    let bank: BTreeSet<String> = state
        .bank
        .for_concept(CONCEPT)
        .iter()
        .map(|c| c.id.clone())
        .collect();

    // The concept has no generated check, so each `next` asks the model,
    // until the service accepts a check it wrote.
    let mut written: Option<Value> = None;
    for asked in 1.. {
        assert!(
            asked <= MAX_ASKED,
            "the service refused all {MAX_ASKED} checks the model wrote: {:?}; the server's log:\n{}",
            refusals(&logs),
            server.log()
        );
        let (ok, bad) = (
            calls(&state, "generate", "ok"),
            calls(&state, "generate", "bad_answer"),
        );
        let a = next(&state, &token, CONCEPT).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        let c = a.json();
        if calls(&state, "generate", "ok") == ok + 1 {
            written = Some(c);
            break;
        }
        // Refused by the service's own rules: counted, and the bank
        // answered instead.
        assert_eq!(
            calls(&state, "generate", "bad_answer"),
            bad + 1,
            "neither accepted nor refused as a bad answer: {:?}\n{}",
            refusals(&logs),
            metrics(&state)
        );
        assert_eq!(c["source"], "bank", "{c}");
        assert!(bank.contains(c["id"].as_str().expect("id")), "{c}");
    }
    // A check the real model wrote, served as written, with its provenance.
    let c = written.expect("accepted");
    let id = c["id"].as_str().expect("id").to_string();
    assert_eq!(c["source"], "generated", "{c}");
    assert_eq!(c["model"], MODEL, "{c}");
    assert_eq!(c["concept"], CONCEPT, "{c}");
    assert_eq!(c["kind"], "choice", "{c}");
    assert_eq!(
        c["prompt_sha256"],
        aiworklab::model::generate::prompt_sha256()
    );
    assert!(id.starts_with("gen-"), "{c}");
    let options = c["options"].as_array().expect("options");
    assert!((4..=5).contains(&options.len()), "{c}");
    let right = c["answer"]["correct"].as_u64().expect("correct");
    assert!(usize::try_from(right).expect("index") < options.len());
    assert!(c["prompt"].as_str().expect("prompt").chars().count() >= 15);
    // Stored in the org's database, as served.
    let stored = service::list_generated(state.store.org("acme").expect("org"), Some(CONCEPT))
        .expect("list");
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].id.as_str(), stored[0].model.as_str()),
        (id.as_str(), MODEL)
    );
    assert_eq!(json!(stored[0].options), c["options"]);
    assert_eq!(stored[0].prompt, c["prompt"].as_str().expect("prompt"));

    // Its key grades a choice, with no model...
    let g = grade(&state, &token, &json!({"check_id": id, "choice": right})).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text());
    assert_eq!(
        (g.json()["grade"].as_u64(), g.json()["graded_by"].as_str()),
        (Some(3), Some("key"))
    );
    assert_eq!(all_calls(&state, "grade"), 0, "no model for a keyed grade");
    // ...and the real model grades an answer in the engineer's own words.
    // Grading has no fallback: a verdict the service refuses (one the
    // schema allows but the service does not) is a 503 saying so, counted
    // as `bad_answer`; the engineer may send it again, and so does the test.
    let answer = json!({"check_id": id, "answer": "A branch is a movable name for a commit; committing moves it forward, and HEAD names the branch."});
    let mut graded = None;
    for sent in 1..=MAX_ASKED {
        let bad = calls(&state, "grade", "bad_answer");
        let g = grade(&state, &token, &answer).await;
        if g.status == StatusCode::OK {
            assert_eq!(calls(&state, "grade", "ok"), 1);
            graded = Some(g.json());
            break;
        }
        assert_eq!(g.status, StatusCode::SERVICE_UNAVAILABLE, "{}", g.text());
        let detail = g.json()["detail"].as_str().expect("detail").to_string();
        assert!(
            detail.starts_with("the model's answer was refused: "),
            "{detail}"
        );
        assert_eq!(calls(&state, "grade", "bad_answer"), bad + 1);
        assert!(
            sent < MAX_ASKED,
            "the service refused all {MAX_ASKED} verdicts the model wrote: {:?}",
            refusals(&logs)
        );
    }
    let v = graded.expect("graded");
    assert_eq!(v["graded_by"], "model", "{v}");
    assert!(
        (1..=4).contains(&v["grade"].as_u64().expect("grade")),
        "{v}"
    );
    let feedback = v["feedback"].as_str().expect("feedback");
    assert!(
        !feedback.trim().is_empty() && feedback.chars().count() <= 400,
        "{v}"
    );

    // The model server stops mid-way. Each `next` still asks it (the
    // concept has fewer than GENERATE_UNTIL checks), is refused the
    // connection, logs why, and draws from the bank and the stored check:
    // the model's check is served again, as stored, without the model.
    server.stop();
    let generated_before = all_calls(&state, "generate");
    let mut draws = 0;
    loop {
        draws += 1;
        assert!(draws <= 40, "the stored check was not drawn in 40 requests");
        let a = next(&state, &token, CONCEPT).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_eq!(calls(&state, "generate", "unreachable"), draws);
        let again = a.json();
        if again["id"] == id {
            assert_eq!(again, c, "reused as stored");
            break;
        }
        assert_eq!(again["source"], "bank", "{again}");
        assert!(bank.contains(again["id"].as_str().expect("id")), "{again}");
    }
    assert_eq!(all_calls(&state, "generate"), generated_before + draws);
    let reasons = refusals(&logs);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("cannot be reached") && r.contains("model.base_url")),
        "{reasons:?}"
    );
    assert_eq!(
        service::list_generated(state.store.org("acme").expect("org"), None)
            .expect("list")
            .len(),
        1,
        "nothing new stored"
    );
    // Free text now has no model to grade it: a clear 503, no crash.
    let g = grade(&state, &token, &answer).await;
    assert_eq!(g.status, StatusCode::SERVICE_UNAVAILABLE, "{}", g.text());
    let detail = g.json()["detail"].as_str().expect("detail").to_string();
    assert!(
        detail.contains("cannot be reached") && detail.contains("model.base_url"),
        "{detail}"
    );
    assert_eq!(calls(&state, "grade", "unreachable"), 1);

    // P6: the server required the key and it was sent (the calls above
    // succeeded); it is nowhere the service shows.
    for (place, text) in [("logs", logs.text()), ("/metrics", metrics(&state))] {
        assert!(!text.contains(KEY), "the key is in {place}");
    }
}

#[tokio::test]
async fn the_real_server_refuses_another_key_and_the_service_names_the_key_file() {
    let server = ModelServer::start(ModelOpts {
        api_key: Some(KEY.into()),
        ..ModelOpts::default()
    })
    .await;
    let mut env = Env::new(&["acme"]);
    let file = configure(&mut env, &server.base_url(), "sk-llama-WRONG-0c4f");
    let state = env.state();
    let token = device(&state, "acme", "priya").await;

    let a = next(&state, &token, CONCEPT).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["source"], "bank");
    assert_eq!(calls(&state, "generate", "unauthorized"), 1);
    let g = grade(
        &state,
        &token,
        &json!({"check_id": "git-branches-1", "answer": "they are left behind, reachable only by their ids"}),
    )
    .await;
    assert_eq!(g.status, StatusCode::SERVICE_UNAVAILABLE, "{}", g.text());
    let detail = g.json()["detail"].as_str().expect("detail").to_string();
    assert!(
        detail.contains("HTTP 401")
            && detail.contains(&file)
            && detail.contains("model.api_key_file"),
        "{detail}"
    );
    assert!(
        !detail.contains("WRONG") && !detail.contains(KEY),
        "{detail}"
    );
    assert_eq!(calls(&state, "grade", "unauthorized"), 1);
}
