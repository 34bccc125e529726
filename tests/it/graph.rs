//! The engineer's own data and org aggregates: suppression below
//! `min_cohort`, opt-out and deletion taking effect at once (P19), export
//! with its rate limit (P21), the 30-day deletion hold (P22), and admins
//! never reading one engineer's graph (P18).

use aiworklab::AppState;
use aiworklab::clock::Clock;
use aiworklab::store::StoreError;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Duration;
use serde_json::{Value, json};

use crate::support::{Answer, Env, csrf_of, manual_clock, send, signed_in};

struct Person {
    id: String,
    cookie: String,
    csrf: String,
}

fn person(state: &AppState, org: &str, name: &str, admin: bool) -> Person {
    let (cookie, id) = signed_in(state, org, name, admin);
    let csrf = csrf_of(state, &cookie);
    Person { id, cookie, csrf }
}

/// A new session for `p` (sessions expire within a day; tests that move
/// the clock a week sign in again).
fn renew(state: &AppState, p: &Person) -> Person {
    let db = state.store.org("acme").expect("org");
    let now = state.clock.now();
    let s = aiworklab::sessions::create(
        db,
        &p.id,
        now,
        &[],
        &aiworklab::audit::Context::system(),
        now,
    )
    .expect("session");
    let cookie = format!("__Host-aiwl_session={}", s.expose());
    let csrf = csrf_of(state, &cookie);
    Person {
        id: p.id.clone(),
        cookie,
        csrf,
    }
}

fn req(method: &str, uri: &str, p: &Person, body: Option<Value>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("cookie", &p.cookie)
        .header("x-csrf-token", &p.csrf)
        .header("content-type", "application/json")
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .expect("request")
}

/// Pushes deltas for `p` straight through the sync domain (devices are
/// covered in sync.rs).
fn learn(
    state: &AppState,
    org: &str,
    p: &Person,
    concept: &str,
    transitions: &[(&str, i64, Option<u8>)],
) {
    let base = state.clock.now() - Duration::days(60);
    let deltas: Vec<_> = transitions
        .iter()
        .map(|(t, day, grade)| aiworklab::skill::Delta {
            id: uuid::Uuid::new_v4(),
            concept: concept.into(),
            transition: aiworklab::skill::Transition::parse(t).expect("transition"),
            at: base + Duration::days(*day),
            grade: *grade,
        })
        .collect();
    aiworklab::sync::push(
        state.store.org(org).expect("org"),
        &p.id,
        None,
        &deltas,
        state.clock.now(),
    )
    .expect("push");
}

async fn aggregates(state: &AppState, admin: &Person, query: &str) -> Answer {
    send(
        state,
        req(
            "GET",
            &format!("/api/v1/org/aggregates{query}"),
            admin,
            None,
        ),
    )
    .await
}

fn row<'a>(v: &'a Value, concept: &str) -> &'a Value {
    v["concepts"]
        .as_array()
        .expect("concepts")
        .iter()
        .find(|c| c["concept"] == concept)
        .expect("row")
}

/// Within 20 of `want`: released counts carry noise, and at the default
/// ε = 0.5 a count is off by more than 20 with probability below 3·10⁻⁵,
/// so this does not fail by chance.
fn near(v: &Value, want: i64) -> bool {
    v.as_i64().is_some_and(|n| (n - want).abs() <= 20)
}

#[tokio::test]
async fn aggregates_are_weekly_noisy_releases_and_opt_out_or_deletion_counts_from_the_next_week() {
    let env = Env::new(&["acme"]);
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let admin = person(&state, "acme", "admin", true);
    let engineers: Vec<Person> = (0..40)
        .map(|i| person(&state, "acme", &format!("eng{i}"), false))
        .collect();
    for e in &engineers {
        learn(
            &state,
            "acme",
            e,
            "rust-lifetimes",
            &[
                ("seen", 0, None),
                ("demonstrated", 1, None),
                ("check_passed", 40, Some(3)),
            ],
        );
    }
    let a = aggregates(&state, &admin, "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(v["period"], "2026-W03");
    assert_eq!(v["protection"]["count_bound_95"], 6);
    let lifetimes = row(&v, "rust-lifetimes");
    assert!(near(&lifetimes["n_seen"], 40), "{lifetimes}");
    assert!(near(&lifetimes["n_demonstrated"], 40), "{lifetimes}");
    assert!(lifetimes["n_demonstrated"].as_i64() <= lifetimes["n_seen"].as_i64());
    for rate in ["retention_30d_observed", "retention_30d_predicted"] {
        let r = &lifetimes[rate];
        assert!(
            r.is_null() || r.as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)),
            "{rate}: {r}"
        );
    }
    // Every concept of the catalogue is in the release (whether anybody
    // met it is itself a figure, so it is not left out when nobody did).
    assert_eq!(
        v["concepts"].as_array().map(Vec::len),
        Some(state.catalogue.len())
    );

    // Most engineers opt out or ask for deletion: this week's release
    // stays as it was (changing it would show exactly who left).
    for e in &engineers[..30] {
        let out = send(
            &state,
            req(
                "POST",
                "/api/v1/me/opt-out",
                e,
                Some(json!({"opted_out": true})),
            ),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK, "{}", out.text());
    }
    for e in &engineers[30..35] {
        let del = send(&state, req("POST", "/api/v1/me/deletion", e, None)).await;
        assert_eq!(del.status, StatusCode::OK, "{}", del.text());
    }
    assert_eq!(
        aggregates(&state, &admin, "").await.json()["concepts"],
        v["concepts"]
    );
    // From next week on they are not counted: five are left.
    clock.advance(Duration::days(7));
    let admin = renew(&state, &admin);
    let engineers: Vec<Person> = engineers.iter().map(|e| renew(&state, e)).collect();
    let next = aggregates(&state, &admin, "").await.json();
    assert_eq!(next["period"], "2026-W04");
    let r = row(&next, "rust-lifetimes");
    assert!(
        r["suppressed"] == true || r["n_seen"].as_i64().is_some_and(|n| n <= 25),
        "{r}"
    );
    // Opting back in counts again the week after.
    for e in &engineers[..30] {
        send(
            &state,
            req(
                "POST",
                "/api/v1/me/opt-out",
                e,
                Some(json!({"opted_out": false})),
            ),
        )
        .await;
    }
    clock.advance(Duration::days(7));
    let admin = renew(&state, &admin);
    let back = aggregates(&state, &admin, "").await.json();
    assert!(near(&row(&back, "rust-lifetimes")["n_seen"], 35), "{back}");
}

#[tokio::test]
async fn teams_below_min_cohort_are_suppressed_and_no_route_gives_an_admin_one_engineers_graph() {
    let env = Env::new(&["acme"]);
    let state = env.state_with_clock(manual_clock());
    let admin = person(&state, "acme", "admin", true);
    let member = person(&state, "acme", "member", false);
    let lone = person(&state, "acme", "lone", false);
    learn(
        &state,
        "acme",
        &lone,
        "rust-lifetimes",
        &[("seen", 0, None)],
    );
    // A team of one.
    let db = state.store.org("acme").expect("org");
    db.db
        .write(|tx| {
            let g = aiworklab::store::users::ensure_group(
                tx,
                &uuid::Uuid::new_v4().to_string(),
                "solo",
                0,
            )?;
            aiworklab::store::users::set_memberships(tx, &lone.id, &[g])?;
            Ok::<_, StoreError>(())
        })
        .expect("group");
    let team = aggregates(&state, &admin, "?team=solo").await;
    assert_eq!(team.status, StatusCode::FORBIDDEN, "{}", team.text());
    assert!(team.text().contains("suppressed"));
    // Members cannot read aggregates at all.
    assert_eq!(
        aggregates(&state, &member, "").await.status,
        StatusCode::FORBIDDEN
    );
    // Asking for a person is not a thing the API understands.
    for q in [
        format!("?user={}", lone.id),
        format!("?user_id={}", lone.id),
        "?engineer=lone".to_string(),
    ] {
        let a = aggregates(&state, &admin, &q).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}: {}", a.text());
    }
    // The graph routes only ever show the caller's own graph.
    let mine = send(
        &state,
        req(
            "GET",
            &format!("/api/v1/me/graph?user={}", lone.id),
            &admin,
            None,
        ),
    )
    .await;
    assert!(
        mine.status == StatusCode::BAD_REQUEST
            || mine.json()["concepts"]
                .as_array()
                .is_some_and(Vec::is_empty),
        "{}",
        mine.text()
    );
    let lone_graph = send(&state, req("GET", "/api/v1/me/graph", &lone, None))
        .await
        .json();
    assert_eq!(
        lone_graph["concepts"][0]["concept"]
            .as_str()
            .or(lone_graph["concepts"][0]["slug"].as_str()),
        Some("rust-lifetimes")
    );
}

#[tokio::test]
async fn the_graph_shows_state_recall_and_the_next_check() {
    let env = Env::new(&["acme"]);
    let state = env.state_with_clock(manual_clock());
    let eng = person(&state, "acme", "eng", false);
    learn(
        &state,
        "acme",
        &eng,
        "rust-borrowing",
        &[
            ("seen", 0, None),
            ("explained", 0, None),
            ("demonstrated", 1, None),
            ("check_passed", 10, Some(3)),
        ],
    );
    learn(
        &state,
        "acme",
        &eng,
        "sql-joins",
        &[("check_failed", 0, Some(1))],
    );
    let v = send(&state, req("GET", "/api/v1/me/graph", &eng, None))
        .await
        .json();
    let c = v["concepts"].as_array().expect("concepts");
    let borrowing = c
        .iter()
        .find(|x| x["slug"] == "rust-borrowing")
        .expect("borrowing");
    assert!(
        ["retained", "demonstrated", "decaying"]
            .contains(&borrowing["state"].as_str().expect("state")),
        "{borrowing}"
    );
    assert!(borrowing["recall"].as_f64().is_some() && !borrowing["due"].is_null());
    let joins = c.iter().find(|x| x["slug"] == "sql-joins").expect("joins");
    assert_eq!(joins["checks_failed"], 1);
}

#[tokio::test]
async fn export_holds_everything_about_me_three_times_an_hour() {
    let env = Env::new(&["acme"]);
    let state = env.state_with_clock(manual_clock());
    let eng = person(&state, "acme", "eng", false);
    learn(&state, "acme", &eng, "rust-lifetimes", &[("seen", 0, None)]);
    for i in 0..3 {
        let a = send(&state, req("GET", "/api/v1/me/export", &eng, None)).await;
        assert_eq!(a.status, StatusCode::OK, "export {i}: {}", a.text());
        let v = a.json();
        assert_eq!(v["profile"]["user_name"], "eng");
        assert_eq!(v["deltas"].as_array().map(Vec::len), Some(1));
        assert!(v["sessions"].as_array().is_some_and(|s| !s.is_empty()));
    }
    let fourth = send(&state, req("GET", "/api/v1/me/export", &eng, None)).await;
    assert_eq!(fourth.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(fourth.header("retry-after").is_some());
}

#[tokio::test]
async fn deleted_data_is_held_thirty_days_then_swept() {
    let env = Env::new(&["acme"]);
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let eng = person(&state, "acme", "eng", false);
    // 300 facts (their checkpoints hold them), then one from before all of
    // them: its refold is queued and it waits for the worker.
    let history: Vec<(&str, i64, Option<u8>)> = (0..300).map(|i| ("seen", i % 60, None)).collect();
    learn(&state, "acme", &eng, "rust-lifetimes", &history);
    learn(
        &state,
        "acme",
        &eng,
        "rust-lifetimes",
        &[("seen", -300, None)],
    );
    let rows = |sql: &str| {
        state
            .store
            .org("acme")
            .expect("org")
            .db
            .read(|c| {
                c.query_row(sql, [], |r| r.get::<_, i64>(0))
                    .map_err(StoreError::from)
            })
            .expect("count")
    };
    let count = || rows("SELECT count(*) FROM deltas");
    // Everything kept from an engineer's facts besides the deltas.
    const DERIVED: &str = "SELECT (SELECT count(*) FROM concept_states)
        + (SELECT count(*) FROM concept_weeks) + (SELECT count(*) FROM fold_checkpoints)
        + (SELECT count(*) FROM fold_pending) + (SELECT count(*) FROM refold_queue)";
    assert!(rows("SELECT count(*) FROM fold_checkpoints") > 0);
    assert_eq!(rows("SELECT count(*) FROM fold_pending"), 1);
    let due = send(&state, req("POST", "/api/v1/me/deletion", &eng, None))
        .await
        .json();
    assert!(due["deletion_due_at"].is_string());
    clock.advance(Duration::days(29));
    aiworklab::sweeper::sweep_once(&state.store, &state.settings, clock.now());
    assert_eq!(count(), 301, "deleted before the hold ended");
    clock.advance(Duration::days(2));
    aiworklab::sweeper::sweep_once(&state.store, &state.settings, clock.now());
    assert_eq!(count(), 0, "still held after 30 days");
    assert_eq!(
        rows(DERIVED),
        0,
        "the swept engineer's concept states, weeks, checkpoints (with their facts) or \
         waiting facts survived (and would count in aggregates again)"
    );
    let audit: Vec<String> = state
        .store
        .org("acme")
        .expect("org")
        .db
        .read(|c| aiworklab::store::audit::recent(c, 20).map_err(StoreError::from))
        .expect("audit")
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert!(
        audit.contains(&"data.delete_request".into()) && audit.contains(&"data.deleted".into()),
        "{audit:?}"
    );
}

/// Pushes facts at explicit instants for `p` (through the sync domain).
fn facts_at(
    state: &AppState,
    p: &Person,
    concept: &str,
    facts: &[(&str, chrono::DateTime<chrono::Utc>)],
) {
    let deltas: Vec<_> = facts
        .iter()
        .map(|(t, at)| aiworklab::skill::Delta {
            id: uuid::Uuid::new_v4(),
            concept: concept.into(),
            transition: aiworklab::skill::Transition::parse(t).expect("transition"),
            at: *at,
            grade: (*t == "check_passed").then_some(3),
        })
        .collect();
    aiworklab::sync::push(
        state.store.org("acme").expect("org"),
        &p.id,
        None,
        &deltas,
        state.clock.now(),
    )
    .expect("push");
}

fn week<'a>(row: &'a Value, name: &str) -> &'a Value {
    row["trend"]
        .as_array()
        .expect("trend")
        .iter()
        .find(|w| w["week"] == name)
        .unwrap_or_else(|| panic!("no week {name} in {row}"))
}

#[tokio::test]
async fn the_weekly_trend_shows_closed_iso_weeks_with_noise_and_keeps_released_weeks() {
    use chrono::TimeZone;
    let t = |m: u32, d: u32, h: u32| {
        let y = if m == 12 { 2025 } else { 2026 };
        chrono::Utc
            .with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("valid")
    };
    let env = Env::new(&["acme"]);
    // 15 January 2026, a Thursday in 2026-W03.
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let admin = person(&state, "acme", "admin", true);
    let engineers: Vec<Person> = (0..30)
        .map(|i| person(&state, "acme", &format!("eng{i}"), false))
        .collect();
    for (i, e) in engineers.iter().enumerate() {
        // 2026-W02: thirty see it; twenty-five demonstrate it, late on the Sunday.
        let mut facts = vec![("seen", t(1, 6, 10))];
        if i < 25 {
            facts.push(("demonstrated", t(1, 11, 23)));
        }
        // 2026-W03 (this week, still open): three pass a check.
        if i < 3 {
            facts.push(("check_passed", t(1, 13, 9)));
        }
        facts_at(&state, e, "rust-lifetimes", &facts);
    }

    let v = aggregates(&state, &admin, "").await.json();
    let r = row(&v, "rust-lifetimes");
    let weeks: Vec<&str> = r["trend"]
        .as_array()
        .expect("trend")
        .iter()
        .map(|w| w["week"].as_str().expect("label"))
        .collect();
    // Twelve closed weeks: the week in progress is not released.
    assert_eq!(weeks.len(), 12, "{weeks:?}");
    assert_eq!(weeks.first(), Some(&"2025-W43"));
    assert_eq!(weeks.last(), Some(&"2026-W02"));
    let w02 = week(r, "2026-W02").clone();
    assert!(near(&w02["n_seen"], 30), "{w02}");
    assert!(near(&w02["n_demonstrated"], 25), "{w02}");
    assert!(w02["n_demonstrated"].as_i64() <= w02["n_seen"].as_i64());
    assert_eq!(w02["starts"], "2026-01-05");
    // A week shown as suppressed carries no numbers.
    for w in r["trend"].as_array().expect("trend") {
        assert_eq!(w["suppressed"] == true, w["n_seen"].is_null(), "{w}");
    }

    // Fewer weeks on request, and only a sensible number.
    let two = aggregates(&state, &admin, "?weeks=2").await.json();
    assert_eq!(
        row(&two, "rust-lifetimes")["trend"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    for bad in ["?weeks=0", "?weeks=53"] {
        let a = aggregates(&state, &admin, bad).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(a.text().contains("weeks must be 1 to 52"), "{}", a.text());
    }

    // A team's trend counts its members only, once its membership has
    // been the same since an earlier week.
    let db = state.store.org("acme").expect("org");
    db.db
        .write(|tx| {
            let g = aiworklab::store::users::ensure_group(
                tx,
                &uuid::Uuid::new_v4().to_string(),
                "core",
                0,
            )?;
            for e in &engineers[..15] {
                aiworklab::store::users::set_memberships(tx, &e.id, std::slice::from_ref(&g))?;
            }
            Ok::<_, StoreError>(())
        })
        .expect("team");
    let early = aggregates(&state, &admin, "?team=core").await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.text());
    assert!(
        early.text().contains("from the week starting 2026-01-19"),
        "{}",
        early.text()
    );

    // Opting out: released weeks are kept as they were, so an opt-out
    // never shows as a change in a week already seen.
    for e in &engineers[20..] {
        let out = req(
            "POST",
            "/api/v1/me/opt-out",
            e,
            Some(json!({"opted_out": true})),
        );
        assert_eq!(send(&state, out).await.status, StatusCode::OK);
    }
    clock.advance(Duration::days(7));
    let admin = renew(&state, &admin);
    let v = aggregates(&state, &admin, "").await.json();
    let r = row(&v, "rust-lifetimes");
    assert_eq!(
        r["trend"]
            .as_array()
            .and_then(|t| t.last())
            .map(|w| w["week"].clone()),
        Some(json!("2026-W03"))
    );
    assert_eq!(week(r, "2026-W02"), &w02, "a released week changed");
    // The team, stable since last week: its fifteen engineers only (and
    // six from the org of twenty-one counted, so not too close to it).
    let team = aggregates(&state, &admin, "?team=core").await;
    assert_eq!(team.status, StatusCode::OK, "{}", team.text());
    let w02 = week(row(&team.json(), "rust-lifetimes"), "2026-W02").clone();
    assert!(near(&w02["n_seen"], 15), "{w02}");
}
