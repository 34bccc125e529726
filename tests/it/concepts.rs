//! An org's own concepts: the admin API and its guards (P10, P16), the
//! checks on every field and on prerequisite cycles, isolation between
//! orgs in the catalogue, the admin API and sync (P18), retirement without
//! data loss, and the operator CLI.

use std::process::Output;

use aiworklab::AppState;
use aiworklab::clock::Clock;
use aiworklab::store::StoreError;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Duration;
use serde_json::{Value, json};

use crate::support::{Answer, Env, cli, manual_clock, send, signed_in};

/// A signed-in person: their session cookie and user id.
struct Person {
    cookie: String,
    id: String,
}

fn person(state: &AppState, org: &str, name: &str, admin: bool) -> Person {
    let (cookie, id) = signed_in(state, org, name, admin);
    Person { cookie, id }
}

fn req(
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    csrf: Option<&str>,
    body: Option<&Value>,
) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    if let Some(t) = csrf {
        r = r.header("x-csrf-token", t);
    }
    r.body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .expect("request")
}

/// The CSRF token the admin API hands out with the list of concepts.
async fn csrf(state: &AppState, admin: &Person) -> String {
    let a = send(
        state,
        req(
            "GET",
            "/api/v1/org/concepts",
            Some(&admin.cookie),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    a.header("x-csrf-token").expect("a CSRF token").to_string()
}

/// Sends an admin change with the session's CSRF token.
async fn change(state: &AppState, admin: &Person, method: &str, uri: &str, body: Value) -> Answer {
    let token = csrf(state, admin).await;
    send(
        state,
        req(method, uri, Some(&admin.cookie), Some(&token), Some(&body)),
    )
    .await
}

fn ledger() -> Value {
    json!({
        "slug": "x-billing-ledger",
        "title": "The billing ledger",
        "domain": "x-payments",
        "summary": "Double-entry ledger behind every invoice; postings are immutable.",
        "prerequisites": ["db-mvcc"],
        "related": ["db-optimistic-locking"],
        "matchers": {"imports": ["acme_ledger"], "extensions": [".ledger"]},
    })
}

fn audit(state: &AppState, org: &str) -> Vec<(String, String, Option<String>)> {
    crate::support::audit_rows(state, org)
        .into_iter()
        .map(|r| (r.action, r.actor, r.target))
        .collect()
}

fn concept_actions(state: &AppState, org: &str) -> Vec<String> {
    audit(state, org)
        .into_iter()
        .map(|(a, _, _)| a)
        .filter(|a| a.starts_with("concept."))
        .collect()
}

fn stored_concepts(state: &AppState, org: &str) -> i64 {
    state
        .store
        .org(org)
        .expect("org")
        .db
        .read(|c| {
            c.query_row("SELECT count(*) FROM custom_concepts", [], |r| r.get(0))
                .map_err(StoreError::from)
        })
        .expect("count")
}

async fn listing(state: &AppState, p: &Person) -> Value {
    let a = send(
        state,
        req("GET", "/api/v1/concepts", Some(&p.cookie), None, None),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    a.json()
}

fn find<'a>(listing: &'a Value, slug: &str) -> Option<&'a Value> {
    listing["concepts"]
        .as_array()
        .expect("concepts")
        .iter()
        .find(|c| c["slug"] == slug)
}

#[tokio::test]
async fn admins_add_edit_retire_and_restore_concepts_and_every_change_is_audited() {
    let env = Env::new(&["acme"]);
    let state = env.state_with_clock(manual_clock());
    let admin = person(&state, "acme", "admin", true);
    let member = person(&state, "acme", "member", false);

    let created = change(&state, &admin, "POST", "/api/v1/org/concepts", ledger()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let c = created.json();
    assert_eq!(c["slug"], "x-billing-ledger");
    assert_eq!(c["created_by"], format!("user:{}", admin.id));
    assert!(c["retired_at"].is_null());

    // Everyone in the org sees it beside the shipped catalogue.
    let all = listing(&state, &member).await;
    let mine = find(&all, "x-billing-ledger").expect("listed");
    assert_eq!(mine["custom"], true);
    assert_eq!(mine["retired"], false);
    assert_eq!(mine["prerequisites"], json!(["db-mvcc"]));
    assert_eq!(
        find(&all, "rust-lifetimes").expect("shipped")["custom"],
        false
    );
    assert!(
        all["domains"]
            .as_array()
            .expect("domains")
            .iter()
            .any(|d| d["slug"] == "x-payments" && d["custom"] == true),
        "the org's own domain is listed"
    );

    // Edit: only what changed is recorded.
    let edited = change(
        &state,
        &admin,
        "PATCH",
        "/api/v1/org/concepts/x-billing-ledger",
        json!({"title": "Billing ledger", "related": []}),
    )
    .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text());
    assert_eq!(edited.json()["title"], "Billing ledger");
    assert_eq!(edited.json()["summary"], ledger()["summary"]);

    let retired = change(
        &state,
        &admin,
        "POST",
        "/api/v1/org/concepts/x-billing-ledger/retire",
        json!({}),
    )
    .await;
    assert_eq!(retired.status, StatusCode::OK, "{}", retired.text());
    assert!(retired.json()["retired_at"].is_string());
    let mine = listing(&state, &member).await;
    assert_eq!(
        find(&mine, "x-billing-ledger").expect("still listed")["retired"],
        true
    );
    let again = change(
        &state,
        &admin,
        "POST",
        "/api/v1/org/concepts/x-billing-ledger/retire",
        json!({}),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    assert!(again.text().contains("retired already"), "{}", again.text());

    let restored = change(
        &state,
        &admin,
        "POST",
        "/api/v1/org/concepts/x-billing-ledger/restore",
        json!({}),
    )
    .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text());
    assert!(restored.json()["retired_at"].is_null());

    let one = send(
        &state,
        req(
            "GET",
            "/api/v1/org/concepts/x-billing-ledger",
            Some(&admin.cookie),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(one.json()["title"], "Billing ledger");

    let rows: Vec<_> = audit(&state, "acme")
        .into_iter()
        .filter(|(a, _, _)| a.starts_with("concept."))
        .collect();
    let actions: Vec<&str> = rows.iter().rev().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "concept.create",
            "concept.update",
            "concept.retire",
            "concept.restore"
        ],
        "one row per change, none for the refused second retirement"
    );
    for (_, actor, target) in &rows {
        assert_eq!(actor, &format!("user:{}", admin.id));
        assert_eq!(target.as_deref(), Some("x-billing-ledger"));
    }
}

#[tokio::test]
async fn the_admin_api_refuses_members_devices_stale_sign_ins_and_forged_requests() {
    let mut env = Env::new(&["acme"]);
    env.raw.sso.rotate_after_secs = 3600;
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let admin = person(&state, "acme", "admin", true);
    let member = person(&state, "acme", "member", false);
    let token = csrf(&state, &admin).await;
    let post = |cookie: Option<String>, csrf: Option<String>| {
        req(
            "POST",
            "/api/v1/org/concepts",
            cookie.as_deref(),
            csrf.as_deref(),
            Some(&ledger()),
        )
    };

    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "nobody signed in",
            post(None, Some(token.clone())),
            StatusCode::UNAUTHORIZED,
            "sign in",
        ),
        (
            "a member",
            post(Some(member.cookie.clone()), Some(token.clone())),
            StatusCode::FORBIDDEN,
            "administrators",
        ),
        (
            "no CSRF token",
            post(Some(admin.cookie.clone()), None),
            StatusCode::FORBIDDEN,
            "x-csrf-token",
        ),
        (
            "another session's token",
            post(Some(admin.cookie.clone()), Some("aiwl_sess_forged".into())),
            StatusCode::FORBIDDEN,
            "x-csrf-token",
        ),
        (
            "a device token",
            Request::post("/api/v1/org/concepts")
                .header("authorization", "Bearer aiwl_at_anything")
                .header("cookie", &admin.cookie)
                .header("x-csrf-token", &token)
                .body(Body::from(ledger().to_string()))
                .expect("request"),
            StatusCode::FORBIDDEN,
            "not a device",
        ),
        (
            "another site",
            Request::post("/api/v1/org/concepts")
                .header("cookie", &admin.cookie)
                .header("x-csrf-token", &token)
                .header("origin", "https://evil.example")
                .body(Body::from(ledger().to_string()))
                .expect("request"),
            StatusCode::FORBIDDEN,
            "another site",
        ),
    ];
    for (what, request, status, says) in cases {
        let a = send(&state, request).await;
        assert_eq!(a.status, status, "{what}: {}", a.text());
        assert!(a.text().contains(says), "{what}: {}", a.text());
    }
    // Members cannot even read the admin list.
    let a = send(
        &state,
        req(
            "GET",
            "/api/v1/org/concepts",
            Some(&member.cookie),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // A sign-in older than sso.reauth_max_age (300 s) must be renewed.
    clock.advance(Duration::seconds(301));
    let stale = send(
        &state,
        post(Some(admin.cookie.clone()), Some(token.clone())),
    )
    .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "{}", stale.text());
    assert!(
        stale.text().contains("/o/acme/login?reauth=1"),
        "{}",
        stale.text()
    );
    // Reading still works: only changes need a fresh sign-in.
    assert_eq!(csrf(&state, &admin).await, token);

    assert_eq!(stored_concepts(&state, "acme"), 0, "something was written");
    assert!(concept_actions(&state, "acme").is_empty());
}

#[tokio::test]
async fn bad_concepts_are_refused_with_the_field_named_and_nothing_is_written() {
    let env = Env::new(&["acme"]);
    let state = env.state_with_clock(manual_clock());
    let admin = person(&state, "acme", "admin", true);
    let with = |field: &str, v: Value| {
        let mut c = ledger();
        c[field] = v;
        c
    };
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "no x- prefix",
            with("slug", json!("billing-ledger")),
            "/slug",
            "x-billing-ledger",
        ),
        (
            "a shipped slug",
            with("slug", json!("rust-lifetimes")),
            "/slug",
            "shipped concept already",
        ),
        (
            "a path",
            with("slug", json!("x-../../etc/passwd")),
            "/slug",
            "lower-case letters",
        ),
        (
            "an empty title",
            with("title", json!("  ")),
            "/title",
            "required",
        ),
        (
            "a long summary",
            with("summary", json!("s".repeat(201))),
            "/summary",
            "at most 200",
        ),
        (
            "an unknown domain",
            with("domain", json!("cooking")),
            "/domain",
            "x-payments",
        ),
        (
            "an unknown prerequisite",
            with("prerequisites", json!(["db-mvcc", "x-nowhere"])),
            "/prerequisites/1",
            "x-nowhere",
        ),
        (
            "itself as a prerequisite",
            with("prerequisites", json!(["x-billing-ledger"])),
            "/prerequisites/0",
            "itself",
        ),
        (
            "a bad extension",
            with("matchers", json!({"extensions": ["ledger"]})),
            "/matchers/extensions/0",
            ".proto",
        ),
    ];
    for (what, body, pointer, says) in cases {
        let a = change(&state, &admin, "POST", "/api/v1/org/concepts", body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {}", a.text());
        assert_eq!(a.json()["pointer"], pointer, "{what}: {}", a.text());
        assert!(a.text().contains(says), "{what}: {}", a.text());
    }
    let unknown = change(
        &state,
        &admin,
        "POST",
        "/api/v1/org/concepts",
        with("owner", json!("alice")),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown.text().contains("unknown field `owner`"),
        "{}",
        unknown.text()
    );
    assert_eq!(stored_concepts(&state, "acme"), 0);

    // A chain x-a <- x-b <- x-c, then an edit that would close the loop.
    for (slug, pre) in [
        ("x-a", json!([])),
        ("x-b", json!(["x-a"])),
        ("x-c", json!(["x-b"])),
    ] {
        let mut c = with("slug", json!(slug));
        c["prerequisites"] = pre;
        c["related"] = json!([]);
        let a = change(&state, &admin, "POST", "/api/v1/org/concepts", c).await;
        assert_eq!(a.status, StatusCode::CREATED, "{slug}: {}", a.text());
    }
    let taken = change(
        &state,
        &admin,
        "POST",
        "/api/v1/org/concepts",
        with("slug", json!("x-a")),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text());
    let cycle = change(
        &state,
        &admin,
        "PATCH",
        "/api/v1/org/concepts/x-a",
        json!({"prerequisites": ["x-c"]}),
    )
    .await;
    assert_eq!(cycle.status, StatusCode::BAD_REQUEST, "{}", cycle.text());
    assert_eq!(cycle.json()["pointer"], "/prerequisites");
    assert!(
        cycle.text().contains("x-a -> x-c -> x-b -> x-a"),
        "the cycle is named: {}",
        cycle.text()
    );
    let renamed = change(
        &state,
        &admin,
        "PATCH",
        "/api/v1/org/concepts/x-a",
        json!({"slug": "x-z"}),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::BAD_REQUEST);
    assert!(
        renamed.text().contains("slug never changes"),
        "{}",
        renamed.text()
    );
    let a = state
        .store
        .org("acme")
        .expect("org")
        .db
        .read(|c| {
            c.query_row(
                "SELECT prerequisites FROM custom_concepts WHERE slug = 'x-a'",
                [],
                |r| r.get::<_, String>(0),
            )
            .map_err(StoreError::from)
        })
        .expect("x-a");
    assert_eq!(a, "[]", "the refused edit changed x-a");
    assert_eq!(
        concept_actions(&state, "acme"),
        ["concept.create"; 3],
        "refusals are not audited as changes"
    );
}

/// Pairs a device for `p`; returns its access token.
async fn device(state: &AppState, p: &Person) -> String {
    let code = send(
        state,
        req(
            "POST",
            "/api/v1/me/pairing-codes",
            Some(&p.cookie),
            Some(&crate::support::csrf_of(state, &p.cookie)),
            Some(&json!({})),
        ),
    )
    .await
    .json()["code"]
        .as_str()
        .expect("code")
        .to_string();
    let grant = send(
        state,
        req(
            "POST",
            "/api/v1/devices/pair",
            None,
            None,
            Some(&json!({"code": code, "device_name": "laptop"})),
        ),
    )
    .await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.text());
    grant.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

async fn push(
    state: &AppState,
    token: &str,
    concept: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Answer {
    let body = json!({"deltas": [
        {"id": uuid::Uuid::new_v4().to_string(), "concept": "rust-lifetimes", "transition": "seen", "at": at.to_rfc3339()},
        {"id": uuid::Uuid::new_v4().to_string(), "concept": concept, "transition": "seen", "at": at.to_rfc3339()},
    ]});
    send(
        state,
        Request::post("/api/v1/sync/deltas")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request"),
    )
    .await
}

fn deltas_of(state: &AppState, org: &str, user: &str) -> i64 {
    state
        .store
        .org(org)
        .expect("org")
        .db
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM deltas WHERE user_id = ?1",
                [user],
                |r| r.get(0),
            )
            .map_err(StoreError::from)
        })
        .expect("count")
}

#[tokio::test]
async fn an_orgs_concepts_stay_in_that_org_for_listing_admin_and_sync() {
    let env = Env::new(&["a", "b"]);
    let state = env.state_with_clock(manual_clock());
    let now = state.clock.now();
    let admin_a = person(&state, "a", "admin", true);
    let admin_b = person(&state, "b", "admin", true);
    let created = change(&state, &admin_a, "POST", "/api/v1/org/concepts", ledger()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());

    // Org b's people never see it, by listing or by slug.
    assert!(find(&listing(&state, &admin_b).await, "x-billing-ledger").is_none());
    let b_list = send(
        &state,
        req(
            "GET",
            "/api/v1/org/concepts",
            Some(&admin_b.cookie),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(b_list.json()["concepts"], json!([]));
    for (method, uri) in [
        ("GET", "/api/v1/org/concepts/x-billing-ledger"),
        ("PATCH", "/api/v1/org/concepts/x-billing-ledger"),
        ("POST", "/api/v1/org/concepts/x-billing-ledger/retire"),
    ] {
        let a = change(&state, &admin_b, method, uri, json!({"title": "mine now"})).await;
        assert_eq!(
            a.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {}",
            a.text()
        );
    }
    // And the other way round.
    let theirs = change(
        &state,
        &admin_b,
        "POST",
        "/api/v1/org/concepts",
        json!({"slug": "x-only-b", "title": "B's", "domain": "rust", "summary": "Only in b."}),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert!(find(&listing(&state, &admin_a).await, "x-only-b").is_none());

    // Sync: accepted in org a, refused whole in org b.
    let eng_a = person(&state, "a", "eng", false);
    let eng_b = person(&state, "b", "eng", false);
    let token_a = device(&state, &eng_a).await;
    let token_b = device(&state, &eng_b).await;
    let ok = push(&state, &token_a, "x-billing-ledger", now).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["accepted"], 2);
    let refused = push(&state, &token_b, "x-billing-ledger", now).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert_eq!(refused.json()["pointer"], "/deltas/1/concept");
    assert_eq!(
        deltas_of(&state, "b", &eng_b.id),
        0,
        "half a batch was stored"
    );
}

#[tokio::test]
async fn a_retired_concept_keeps_its_data_and_refuses_only_later_facts() {
    let env = Env::new(&["acme"]);
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let admin = person(&state, "acme", "admin", true);
    assert_eq!(
        change(&state, &admin, "POST", "/api/v1/org/concepts", ledger())
            .await
            .status,
        StatusCode::CREATED
    );
    let engineers: Vec<Person> = (0..5)
        .map(|i| person(&state, "acme", &format!("eng{i}"), false))
        .collect();
    let mut tokens = Vec::new();
    for e in &engineers {
        let t = device(&state, e).await;
        let a = push(
            &state,
            &t,
            "x-billing-ledger",
            clock.now() - Duration::days(3),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        tokens.push(t);
    }
    let before = clock.now();
    // Within the admin's fresh sign-in (sso.reauth_max_age_secs = 300).
    clock.advance(Duration::minutes(2));
    let retire = change(
        &state,
        &admin,
        "POST",
        "/api/v1/org/concepts/x-billing-ledger/retire",
        json!({}),
    )
    .await;
    assert_eq!(retire.status, StatusCode::OK, "{}", retire.text());

    // A fact dated after the retirement is refused, naming the concept.
    let late = push(&state, &tokens[0], "x-billing-ledger", clock.now()).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST, "{}", late.text());
    assert_eq!(late.json()["pointer"], "/deltas/1/concept");
    assert!(late.text().contains("retired"), "{}", late.text());
    assert_eq!(deltas_of(&state, "acme", &engineers[0].id), 2);
    // The write itself checks again, for a retirement that lands between
    // the schema check and the transaction.
    let raced = aiworklab::sync::push(
        state.store.org("acme").expect("org"),
        &engineers[0].id,
        None,
        &[aiworklab::skill::Delta {
            id: uuid::Uuid::new_v4(),
            concept: "x-billing-ledger".into(),
            transition: aiworklab::skill::Transition::Seen,
            at: clock.now(),
            grade: None,
        }],
        clock.now(),
    );
    match raced {
        Err(aiworklab::sync::PushError::Retired(w)) => {
            assert_eq!(w.pointer, "/deltas/0/concept");
        }
        other => panic!("a fact after the retirement was stored: {other:?}"),
    }
    assert_eq!(deltas_of(&state, "acme", &engineers[0].id), 2);
    // One that happened before it (a device syncing late) is still taken.
    let queued = push(&state, &tokens[0], "x-billing-ledger", before).await;
    assert_eq!(queued.status, StatusCode::OK, "{}", queued.text());

    // Nothing was lost: the aggregates and the engineer's graph still show it.
    let agg = send(
        &state,
        req(
            "GET",
            "/api/v1/org/aggregates",
            Some(&admin.cookie),
            None,
            None,
        ),
    )
    .await
    .json();
    let row = agg["concepts"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["concept"] == "x-billing-ledger")
        .expect("the retired concept is still in the release");
    // Five engineers: a noisy count near 5, or suppressed (docs/privacy.md).
    assert!(
        row["suppressed"] == true || row["n_seen"].as_i64().is_some_and(|n| (n - 5).abs() <= 20),
        "{row}"
    );
    assert_eq!(row["retired"], true);
    assert_eq!(row["title"], "The billing ledger");
    assert_eq!(row["domain"], "x-payments");
    let graph = send(
        &state,
        req(
            "GET",
            "/api/v1/me/graph",
            Some(&engineers[1].cookie),
            None,
            None,
        ),
    )
    .await
    .json();
    assert!(
        graph["concepts"]
            .as_array()
            .expect("graph")
            .iter()
            .any(|c| c["slug"] == "x-billing-ledger" && c["title"] == "The billing ledger"),
        "{graph}"
    );
}

#[test]
fn the_cli_adds_edits_lists_retires_and_restores_audited_as_the_operator() {
    let env = Env::new(&["acme"]);
    drop(env.store());
    let data = env.data_dir();
    std::fs::write(
        env.dir.path().join("aiworklab.toml"),
        format!(
            "[storage]\ndata_dir = \"{}\"\n\n[[orgs]]\nslug = \"acme\"\nname = \"Org acme\"\n",
            data.display()
        ),
    )
    .expect("config");
    let dir = env.dir.path();
    let ok = |out: &Output| {
        assert!(
            out.status.success(),
            "{}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&cli(
        dir,
        &[
            "concept",
            "add",
            "--org",
            "acme",
            "--slug",
            "x-deploy-train",
            "--title",
            "The deploy train",
            "--domain",
            "ci-cd",
            "--summary",
            "Changes ship twice a day in a train; a red car is pulled, not fixed in place.",
            "--prerequisite",
            "ci-pipelines",
            "--keyword",
            "train board",
            "--extension",
            ".train",
        ],
    ));
    let refused = cli(
        dir,
        &[
            "concept",
            "add",
            "--org",
            "acme",
            "--slug",
            "deploy-train",
            "--title",
            "T",
            "--domain",
            "ci-cd",
            "--summary",
            "S.",
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("slug") && err.contains("x-deploy-train"),
        "{err}"
    );
    let out = ok(&cli(
        dir,
        &[
            "concept",
            "edit",
            "--org",
            "acme",
            "x-deploy-train",
            "--title",
            "Deploy train",
            "--clear",
            "keywords",
        ],
    ));
    assert!(out.contains("updated x-deploy-train"), "{out}");
    ok(&cli(
        dir,
        &["concept", "retire", "--org", "acme", "x-deploy-train"],
    ));
    let listed = ok(&cli(dir, &["concept", "list", "--org", "acme"]));
    assert!(
        listed.contains("x-deploy-train")
            && listed.contains("retired")
            && listed.contains("Deploy train"),
        "{listed}"
    );
    ok(&cli(
        dir,
        &["concept", "restore", "--org", "acme", "x-deploy-train"],
    ));
    let missing = cli(dir, &["concept", "retire", "--org", "acme", "x-nothing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("aiworklab concept list"),
        "the fix is named"
    );

    let state = env.state();
    let c =
        aiworklab::catalogue::custom::get(state.store.org("acme").expect("org"), "x-deploy-train")
            .expect("stored");
    assert_eq!(c.concept.title, "Deploy train");
    assert!(c.concept.matchers.keywords.is_empty());
    assert_eq!(c.concept.matchers.extensions, [".train"]);
    assert!(c.retired_at.is_none());
    let rows = audit(&state, "acme");
    let concept_rows: Vec<_> = rows
        .iter()
        .filter(|(a, _, _)| a.starts_with("concept."))
        .collect();
    assert_eq!(concept_rows.len(), 4, "{concept_rows:?}");
    assert!(
        concept_rows
            .iter()
            .all(|(_, actor, _)| actor.starts_with("operator:"))
    );
}
