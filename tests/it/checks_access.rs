//! Who may use the question service, and how much: paired devices of the
//! org only (no browser session, no other org's device or concepts), each
//! within its own `rate_limits.checks` budget; admins see, retire and
//! restore the generated checks, audited, and members may not. And the
//! air-gapped rule on the model's connections (P25).

use std::sync::Arc;

use aiworklab::AppState;
use aiworklab::catalogue::custom;
use aiworklab::config::RawRateLimit;
use aiworklab::model::generate::Draft;
use aiworklab::question::service;
use aiworklab::skill::Concept;
use aiworklab::users::AdminCtx;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use crate::checks_service::{CONCEPT, configure_model, device, grade, metrics, next};
use crate::support::{Env, audit_rows, cli, get, get_with_cookie, send, signed_in, with_csrf};

fn own_concept(state: &AppState, org: &str, slug: &str) {
    let concept: Concept = serde_json::from_value(json!({
        "slug": slug, "title": "Billing ledger", "domain": "databases",
        "summary": "How the billing ledger records money movements.",
    }))
    .expect("concept");
    custom::add(
        state.store.org(org).expect("org"),
        &state.catalogue,
        &AdminCtx::operator(),
        concept,
        state.clock.now(),
    )
    .expect("added");
}

fn generated(state: &AppState, org: &str) -> String {
    let draft = Draft {
        concept: CONCEPT.into(),
        prompt: "What does creating a branch create?".into(),
        options: vec![
            "A pointer".into(),
            "A copy".into(),
            "A repo".into(),
            "A tag".into(),
        ],
        correct: 0,
        explanation: "A branch is a movable name for a commit.".into(),
    };
    let org = state.store.org(org).expect("org");
    service::store_generated(org, draft, "scripted-model", state.clock.now())
        .expect("stored")
        .check
        .id
}

fn detail(a: &crate::support::Answer) -> String {
    a.json()["detail"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn only_paired_devices_of_the_org_are_served_and_errors_name_the_slug() {
    let env = Env::new(&["acme", "globex"]);
    let state = env.state();
    own_concept(&state, "acme", "x-billing-ledger");
    let acme = device(&state, "acme", "priya").await;
    let globex = device(&state, "globex", "mallory").await;

    let anonymous = send(&state, get("/api/v1/checks/next?concept=git-branches")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let (cookie, _) = signed_in(&state, "acme", "sam", false);
    let browser = send(
        &state,
        get_with_cookie("/api/v1/checks/next?concept=git-branches", &cookie),
    )
    .await;
    assert_eq!(browser.status, StatusCode::FORBIDDEN, "{}", browser.text());
    assert!(
        detail(&browser).contains("paired devices"),
        "{}",
        browser.text()
    );
    let forged = next(&state, "aiwl_at_not-a-token", CONCEPT).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);

    let unknown = next(&state, &acme, "no-such-concept").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        detail(&unknown).contains("`no-such-concept`"),
        "{}",
        unknown.text()
    );
    // acme's own concept does not exist for globex's device.
    let other = next(&state, &globex, "x-billing-ledger").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text());
    // For acme it exists, but the bank has no check for it and no model is set.
    let none = next(&state, &acme, "x-billing-ledger").await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert!(
        detail(&none).contains("no check for `x-billing-ledger`"),
        "{}",
        none.text()
    );
    custom::retire(
        state.store.org("acme").expect("org"),
        &AdminCtx::operator(),
        "x-billing-ledger",
        state.clock.now(),
    )
    .expect("retired");
    let retired = next(&state, &acme, "x-billing-ledger").await;
    assert_eq!(retired.status, StatusCode::BAD_REQUEST);
    assert!(
        detail(&retired).contains("`x-billing-ledger` is retired"),
        "{}",
        retired.text()
    );
    let bare = send(
        &state,
        Request::get("/api/v1/checks/next")
            .header("authorization", format!("Bearer {acme}"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(bare.status, StatusCode::BAD_REQUEST);
    assert!(detail(&bare).contains("concept=SLUG"));

    // A check acme's model wrote is not globex's to grade.
    let id = generated(&state, "acme");
    let g = grade(&state, &globex, &json!({"check_id": id, "choice": 0})).await;
    assert_eq!(g.status, StatusCode::NOT_FOUND, "{}", g.text());
    let g = grade(&state, &acme, &json!({"check_id": id, "choice": 0})).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text());
    assert_eq!(g.json()["grade"], 3);
    let g = grade(
        &state,
        &acme,
        &json!({"check_id": id, "choice": 0, "extra": 1}),
    )
    .await;
    assert_eq!(
        g.status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );
}

#[tokio::test]
async fn the_question_service_is_limited_per_device() {
    let mut env = Env::new(&["acme"]);
    env.raw.rate_limits.checks = RawRateLimit::new(3, 3600);
    let state = env.state();
    let laptop = device(&state, "acme", "priya").await;
    let desktop = device(&state, "acme", "sam").await;
    for _ in 0..3 {
        assert_eq!(next(&state, &laptop, CONCEPT).await.status, StatusCode::OK);
    }
    let over = grade(
        &state,
        &laptop,
        &json!({"check_id": "git-branches-1", "choice": 0}),
    )
    .await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(over.header("retry-after").is_some());
    assert_eq!(
        next(&state, &desktop, CONCEPT).await.status,
        StatusCode::OK,
        "another device keeps its budget"
    );
    assert!(metrics(&state).contains("aiworklab_rate_limited_requests_total{class=\"checks\"} 1"));
}

fn admin_req(method: &str, uri: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("cookie", cookie)
        .header("origin", "http://127.0.0.1:8080")
        .body(Body::empty())
        .expect("request")
}

fn actions(state: &AppState) -> Vec<(String, Option<String>, String)> {
    audit_rows(state, "acme")
        .into_iter()
        .filter(|r| r.action.starts_with("check."))
        .map(|r| (r.action, r.target, r.actor))
        .collect()
}

#[tokio::test]
async fn admins_list_retire_and_restore_generated_checks_audited_members_refused() {
    let env = Env::new(&["acme", "globex"]);
    let state = env.state();
    let id = generated(&state, "acme");
    let (admin, admin_id) = signed_in(&state, "acme", "ada", true);
    let (member, _) = signed_in(&state, "acme", "sam", false);
    let (other_admin, _) = signed_in(&state, "globex", "gus", true);
    let token = device(&state, "acme", "priya").await;

    let list = send(
        &state,
        get_with_cookie("/api/v1/org/checks/generated", &admin),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let checks = list.json()["checks"].clone();
    assert_eq!(checks[0]["id"], id.as_str());
    assert_eq!(checks[0]["model"], "scripted-model");
    assert_eq!(
        checks[0]["prompt_sha256"],
        aiworklab::model::generate::prompt_sha256()
    );
    assert!(list.header("x-csrf-token").is_some());
    assert_eq!(
        send(
            &state,
            get_with_cookie("/api/v1/org/checks/generated?concept=git-merges", &admin)
        )
        .await
        .json()["checks"],
        json!([])
    );

    let retire = format!("/api/v1/org/checks/generated/{id}/retire");
    let restore = format!("/api/v1/org/checks/generated/{id}/restore");
    let by_member = send(
        &state,
        with_csrf(&state, admin_req("POST", &retire, &member), &member),
    )
    .await;
    assert_eq!(by_member.status, StatusCode::FORBIDDEN);
    assert_eq!(
        send(
            &state,
            get_with_cookie("/api/v1/org/checks/generated", &member)
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let by_device = send(
        &state,
        Request::post(&retire)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(by_device.status, StatusCode::FORBIDDEN);
    let no_csrf = send(&state, admin_req("POST", &retire, &admin)).await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let elsewhere = send(
        &state,
        with_csrf(
            &state,
            admin_req("POST", &retire, &other_admin),
            &other_admin,
        ),
    )
    .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::NOT_FOUND,
        "another org's admin"
    );
    assert!(actions(&state).is_empty(), "nothing refused was done");

    let done = send(
        &state,
        with_csrf(&state, admin_req("POST", &retire, &admin), &admin),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert!(done.json()["retired_at"].is_string());
    // A retired check is never served (no model: bank and active generated ones).
    for _ in 0..40 {
        let c: Value = next(&state, &token, CONCEPT).await.json();
        assert_ne!(c["id"], id.as_str());
    }
    let again = send(
        &state,
        with_csrf(&state, admin_req("POST", &retire, &admin), &admin),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let back = send(
        &state,
        with_csrf(&state, admin_req("POST", &restore, &admin), &admin),
    )
    .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text());
    assert!(back.json()["retired_at"].is_null());
    let actor = format!("user:{admin_id}");
    assert_eq!(
        actions(&state),
        [
            ("check.restore".to_string(), Some(id.clone()), actor.clone()),
            ("check.retire".to_string(), Some(id.clone()), actor),
        ]
    );
}

#[tokio::test]
async fn an_air_gapped_model_name_resolving_to_a_public_address_is_refused_when_dialled() {
    let mut env = Env::new(&["acme"]);
    configure_model(&mut env, "https://models.corp.example/v1", 5);
    env.raw.air_gapped = true;
    let mut settings = env.settings();
    let lookup: aiworklab::egress::Lookup =
        Arc::new(|_host| Box::pin(async { Ok(vec!["203.0.113.9".parse().expect("ip")]) }));
    settings.egress = settings.egress.clone().with_lookup(lookup);
    let refused = settings
        .check_egress()
        .await
        .expect_err("refused at start-up");
    assert!(refused.to_string().contains("model.base_url"), "{refused}");
    // Started anyway, the connection is refused after name resolution.
    let state = AppState::new(
        Arc::new(settings),
        Arc::new(env.store()),
        Arc::new(aiworklab::clock::SystemClock),
    );
    let token = device(&state, "acme", "priya").await;
    let a = next(&state, &token, CONCEPT).await;
    assert_eq!(a.json()["source"], "bank", "{}", a.text());
    assert!(
        metrics(&state).contains("purpose=\"generate\",outcome=\"refused\"} 1"),
        "{}",
        metrics(&state)
    );
}

#[test]
fn the_cli_lists_retires_and_restores_generated_checks_audited_as_the_operator() {
    let env = Env::new(&["acme"]);
    let id = {
        let state = env.state();
        generated(&state, "acme")
    };
    std::fs::write(
        env.dir.path().join("aiworklab.toml"),
        format!(
            "[storage]\ndata_dir = \"{}\"\n\n[[orgs]]\nslug = \"acme\"\nname = \"Org acme\"\n",
            env.data_dir().display()
        ),
    )
    .expect("config");
    let dir = env.dir.path();
    let run = |args: &[&str]| {
        let out = cli(dir, args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, listed) = run(&["checks", "list", "--org", "acme"]);
    assert!(
        ok && listed.contains(&id)
            && listed.contains("active")
            && listed.contains("scripted-model"),
        "{listed}"
    );
    let (ok, out) = run(&["checks", "retire", "--org", "acme", &id]);
    assert!(ok, "{out}");
    let (ok, listed) = run(&["checks", "list", "--org", "acme", "--concept", CONCEPT]);
    assert!(ok && listed.contains("retired"), "{listed}");
    let (ok, out) = run(&["checks", "retire", "--org", "acme", &id]);
    assert!(!ok && out.contains("retired already"), "{out}");
    let (ok, out) = run(&["checks", "restore", "--org", "acme", "gen-nope"]);
    assert!(
        !ok && out.contains("no check `gen-nope`") && out.contains("checks list"),
        "{out}"
    );
    let (ok, out) = run(&["checks", "restore", "--org", "acme", &id]);
    assert!(ok, "{out}");
    let state = env.state();
    let acts: Vec<_> = audit_rows(&state, "acme")
        .into_iter()
        .filter(|r| r.action.starts_with("check."))
        .map(|r| (r.action, r.actor.starts_with("operator")))
        .collect();
    assert_eq!(
        acts,
        [
            ("check.restore".to_string(), true),
            ("check.retire".to_string(), true)
        ]
    );
}
