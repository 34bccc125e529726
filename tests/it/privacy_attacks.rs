//! The differencing attacks of docs/privacy.md, each scripted as an org
//! admin would run it: groups made and changed over SCIM with the org's
//! own SCIM token, engineers deactivated, deleted and reactivated over
//! SCIM, and the aggregates read over the API as the admin, again and
//! again. Fifteen engineers are seeded with known facts; the target has
//! seen a known half of the catalogue. Each test either checks that the
//! release that would single the target out is refused, or computes the
//! attacker's best estimate of which concepts the target has seen and
//! checks that it is no better than the model allows: with ε per figure
//! and k figures that move with the target, no test can tell "seen" from
//! "not seen" with accuracy above e^(kε) / (1 + e^(kε)) (SECURITY.md P18,
//! P19).

use aiworklab::AppState;
use aiworklab::audit::Context;
use aiworklab::clock::ManualClock;
use aiworklab::tokens::{self, TokenKind};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::support::{Answer, Env, manual_clock, send, signed_in, with_csrf};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const OTHERS: usize = 14;

/// The org under attack: the admin's session, the SCIM token, the
/// engineers' SCIM ids (the target last) and which concepts the target has
/// seen.
struct Org {
    state: AppState,
    clock: Arc<ManualClock>,
    /// The admin's session cookie, renewed when time passes (sessions
    /// expire within a day).
    admin: std::sync::Mutex<String>,
    admin_id: String,
    scim: String,
    others: Vec<String>,
    target: String,
    target_cookie: std::sync::Mutex<String>,
    /// Every concept of the catalogue, and whether the target has seen it.
    truth: Vec<(String, bool)>,
    /// When the facts were made.
    made_at: DateTime<Utc>,
}

/// A fixed pseudo-random choice, so the test is the same on every run.
fn coin(i: usize) -> bool {
    (i.wrapping_mul(2_654_435_761) >> 7).is_multiple_of(2)
}

async fn org() -> (Env, Org) {
    let env = Env::new(&["acme"]);
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let (admin, admin_id) = signed_in(&state, "acme", "admin", true);
    let (_, secret) = tokens::create(
        state.store.org("acme").expect("org"),
        TokenKind::Scim,
        "okta",
        None,
        &aiworklab::users::AdminCtx::operator(),
        state.clock.now(),
    )
    .expect("scim token");
    let scim = secret.expose().to_string();
    let mut ids = Vec::new();
    for i in 0..=OTHERS {
        let a = scim_call(
            &state,
            "POST",
            "/scim/v2/Users",
            &scim,
            Some(&json!({"schemas": [USER], "userName": format!("eng{i}@acme.example"), "active": true})),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
        ids.push(a.json()["id"].as_str().expect("id").to_string());
    }
    let target = ids.pop().expect("target");
    let target_cookie = session(&state, &target);
    let truth: Vec<(String, bool)> = state
        .catalogue
        .concepts()
        .enumerate()
        .map(|(i, c)| (c.slug.clone(), coin(i)))
        .collect();
    // Two weeks ago, everybody met every concept except the target, who
    // met its half.
    let at = state.clock.now() - Duration::days(14);
    for id in &ids {
        let all: Vec<&str> = truth.iter().map(|(c, _)| c.as_str()).collect();
        push(&state, id, &all, at);
    }
    let seen: Vec<&str> = truth
        .iter()
        .filter(|(_, s)| *s)
        .map(|(c, _)| c.as_str())
        .collect();
    push(&state, &target, &seen, at);
    (
        env,
        Org {
            state,
            clock,
            admin: std::sync::Mutex::new(admin),
            admin_id,
            scim,
            others: ids,
            target,
            target_cookie: std::sync::Mutex::new(target_cookie),
            truth,
            made_at: at,
        },
    )
}

fn session(state: &AppState, user_id: &str) -> String {
    let db = state.store.org("acme").expect("org");
    let now = state.clock.now();
    let s = aiworklab::sessions::create(db, user_id, now, &[], &Context::system(), now)
        .expect("session");
    format!("__Host-aiwl_session={}", s.expose())
}

fn push(state: &AppState, user: &str, concepts: &[&str], at: DateTime<Utc>) {
    use aiworklab::skill::{Delta, Transition};
    let deltas: Vec<Delta> = concepts
        .iter()
        .map(|c| Delta {
            id: uuid::Uuid::new_v4(),
            concept: (*c).to_string(),
            transition: Transition::Seen,
            at,
            grade: None,
        })
        .collect();
    for batch in deltas.chunks(400) {
        aiworklab::sync::push(
            state.store.org("acme").expect("org"),
            user,
            None,
            batch,
            state.clock.now(),
        )
        .expect("push");
    }
}

async fn scim_call(
    state: &AppState,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<&Value>,
) -> Answer {
    let r = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/scim+json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    send(state, r).await
}

impl Org {
    /// Creates a group over SCIM with these members; its id.
    async fn group(&self, name: &str, members: &[&String]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let a = scim_call(
            &self.state,
            "POST",
            "/scim/v2/Groups",
            &self.scim,
            Some(&json!({"schemas": [GROUP], "displayName": name, "members": members})),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
        a.json()["id"].as_str().expect("id").to_string()
    }

    async fn set_active(&self, id: &str, active: bool) {
        let a = scim_call(
            &self.state,
            "PATCH",
            &format!("/scim/v2/Users/{id}"),
            &self.scim,
            Some(&json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": active}}]})),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    }

    /// The aggregates API as the admin.
    async fn read(&self, team: Option<&str>) -> Answer {
        let uri = team.map_or_else(
            || "/api/v1/org/aggregates".to_string(),
            |t| format!("/api/v1/org/aggregates?team={t}"),
        );
        let r = Request::builder()
            .uri(uri)
            .header("cookie", self.cookie(&self.admin))
            .body(Body::empty())
            .expect("request");
        send(&self.state, r).await
    }

    async fn figures(&self, team: Option<&str>) -> Figures {
        let a = self.read(team).await;
        assert_eq!(a.status, StatusCode::OK, "{team:?}: {}", a.text());
        Figures::of(&a.json())
    }

    fn cookie(&self, c: &std::sync::Mutex<String>) -> String {
        c.lock().expect("cookie").clone()
    }

    /// A week later, with fresh sessions for the admin and the target.
    fn next_week(&self) {
        self.clock.advance(Duration::days(7));
        *self.admin.lock().expect("cookie") = session(&self.state, &self.admin_id);
        *self.target_cookie.lock().expect("cookie") = session(&self.state, &self.target);
    }

    /// How many `aggregates.read` audit rows name `scope`.
    fn audited(&self, scope: &str) -> i64 {
        self.state
            .store
            .org("acme")
            .expect("org")
            .db
            .read(|c| {
                c.query_row(
                    "SELECT count(*) FROM audit_log WHERE action = 'aggregates.read' AND target = ?1",
                    [scope],
                    |r| r.get(0),
                )
                .map_err(aiworklab::store::StoreError::from)
            })
            .expect("audit")
    }
}

/// Per concept: n_seen (None when suppressed) and the trend's cells by
/// week label.
#[derive(Debug, Clone, PartialEq)]
struct Figures {
    seen: HashMap<String, Option<i64>>,
    weeks: HashMap<String, BTreeMap<String, Option<i64>>>,
    body: Value,
}

impl Figures {
    fn of(v: &Value) -> Self {
        let mut seen = HashMap::new();
        let mut weeks = HashMap::new();
        for c in v["concepts"].as_array().expect("concepts") {
            let slug = c["concept"].as_str().expect("slug").to_string();
            seen.insert(slug.clone(), c["n_seen"].as_i64());
            let cells = c["trend"]
                .as_array()
                .expect("trend")
                .iter()
                .map(|w| {
                    (
                        w["week"].as_str().expect("week").to_string(),
                        w["n_seen"].as_i64(),
                    )
                })
                .collect();
            weeks.insert(slug, cells);
        }
        Self {
            seen,
            weeks,
            body: v["concepts"].clone(),
        }
    }
}

/// The most accuracy any test can reach from `k` figures at `epsilon`
/// each, plus four standard errors of an estimate over `n` concepts.
fn allowed(epsilon: f64, k: f64, n: usize) -> f64 {
    let e = (epsilon * k).exp();
    e / (1.0 + e) + 4.0 * (0.25 / n as f64).sqrt()
}

/// The attacker's best estimate from the difference of two releases, one
/// with the target and one without: "seen" when the one with the target is
/// higher by more than a threshold, the threshold the best of -3 to 3 in
/// hindsight (stronger than any real attacker, who does not know the
/// truth). A suppressed figure tells nothing; the attacker then guesses
/// "not seen". Its accuracy against the truth.
fn accuracy(
    truth: &[(String, bool)],
    with: impl Fn(&str) -> Option<i64>,
    without: impl Fn(&str) -> Option<i64>,
) -> f64 {
    let diffs: Vec<(Option<i64>, bool)> = truth
        .iter()
        .map(|(c, seen)| (with(c).zip(without(c)).map(|(a, b)| a - b), *seen))
        .collect();
    (-3..=3)
        .map(|t| {
            let right = diffs
                .iter()
                .filter(|(d, seen)| d.is_some_and(|d| d > t) == *seen)
                .count();
            right as f64 / truth.len() as f64
        })
        .fold(0.0, f64::max)
}

fn epsilon(body: &Value) -> f64 {
    body["protection"]["epsilon"].as_f64().expect("epsilon")
}

#[tokio::test]
async fn group_differencing_is_refused_and_across_weeks_gains_no_more_than_the_bound() {
    let (_env, o) = org().await;
    // X is eight engineers: X and X + target both differ from the org (16
    // counted) by more than min_cohort, so only their own difference counts.
    let x: Vec<&String> = o.others.iter().take(8).collect();
    let mut x_plus: Vec<&String> = x.clone();
    x_plus.push(&o.target);
    o.group("x", &x).await;
    o.group("x-plus-target", &x_plus).await;
    // Created this week: neither is released until its membership has
    // been the same since an earlier week.
    let a = o.read(Some("x")).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
    assert!(a.text().contains("membership changed"), "{}", a.text());
    o.next_week();
    let a = o.read(Some("x")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let eps = epsilon(&a.json());
    let x_week1 = Figures::of(&a.json());
    // The same team plus the target, in the same week: refused.
    let b = o.read(Some("x-plus-target")).await;
    assert_eq!(b.status, StatusCode::CONFLICT, "{}", b.text());
    assert!(b.text().contains("fewer than 5 engineers"), "{}", b.text());
    // Next week, the admin asks for the bigger team first: it is released,
    // with fresh noise, and now X is refused.
    o.next_week();
    let with = o.figures(Some("x-plus-target")).await;
    assert_eq!(o.read(Some("x")).await.status, StatusCode::CONFLICT);
    // The attacker's best: X-plus-target (week 2) against X (week 1), per
    // concept, on n_seen alone and with the week the facts were made.
    let n = o.truth.len();
    let by_seen = accuracy(&o.truth, |c| with.seen[c], |c| x_week1.seen[c]);
    assert!(by_seen <= allowed(eps, 1.0, n), "n_seen: {by_seen}");
    let made = aiworklab::graph::trend::label(aiworklab::graph::trend::week_of(o.made_at));
    let cell = |f: &Figures, c: &str| {
        let week = f.weeks[c].get(&made).copied().flatten();
        f.seen[c].zip(week).map(|(a, b)| a + b)
    };
    let by_both = accuracy(&o.truth, |c| cell(&with, c), |c| cell(&x_week1, c));
    assert!(
        by_both <= allowed(eps, 2.0, n),
        "n_seen and trend: {by_both}"
    );
    // Every read was audited with its scope, refused ones too.
    assert_eq!(o.audited("team:x"), 3);
    assert_eq!(o.audited("team:x-plus-target"), 2);
}

#[tokio::test]
async fn deactivation_deletion_hold_and_opt_out_change_nothing_within_a_week() {
    let (_env, o) = org().await;
    let before = o.figures(None).await;
    let eps = epsilon(&o.read(None).await.json());
    // Deactivated over SCIM, read again: the same release.
    o.set_active(&o.target, false).await;
    assert_eq!(
        o.figures(None).await,
        before,
        "a deactivation showed in this week's figures"
    );
    o.set_active(&o.target, true).await;
    // (Deactivation ended the target's sessions; they sign in again.)
    *o.target_cookie.lock().expect("cookie") = session(&o.state, &o.target);
    // Deleted over SCIM (a 30-day hold): the same.
    let del = scim_call(
        &o.state,
        "DELETE",
        &format!("/scim/v2/Users/{}", o.others[0]),
        &o.scim,
        None,
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text());
    assert_eq!(
        o.figures(None).await,
        before,
        "a deletion showed in this week's figures"
    );
    // The target opts out: the same, this week.
    let target_cookie = o.cookie(&o.target_cookie);
    let opt_out = Request::builder()
        .method("POST")
        .uri("/api/v1/me/opt-out")
        .header("cookie", target_cookie.clone())
        .header("content-type", "application/json")
        .body(Body::from(json!({"opted_out": true}).to_string()))
        .expect("request");
    let out = send(&o.state, with_csrf(&o.state, opt_out, &target_cookie)).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text());
    assert_eq!(
        o.figures(None).await,
        before,
        "an opt-out showed in this week's figures"
    );
    // Next week the target is out of the figures: the difference between
    // the weeks is the target's only through noise.
    o.next_week();
    let after = o.figures(None).await;
    let n = o.truth.len();
    let acc = accuracy(&o.truth, |c| before.seen[c], |c| after.seen[c]);
    assert!(
        acc <= allowed(eps, 1.0, n),
        "deactivation differencing: {acc}"
    );
    // The closed weeks of the trend were released once and are kept: the
    // opt-out does not rewrite them (that would show what the target did).
    for (c, _) in &o.truth {
        for (week, cell) in &before.weeks[c] {
            if let Some(again) = after.weeks[c].get(week) {
                assert_eq!(again, cell, "{c} {week}: a released week changed");
            }
        }
    }
}

#[tokio::test]
async fn the_complement_of_the_target_is_refused() {
    let (_env, o) = org().await;
    // Everyone counted but the target: the admin and the others.
    let mut everyone_else: Vec<&String> = o.others.iter().collect();
    everyone_else.push(&o.admin_id);
    o.group("all-but-one", &everyone_else).await;
    o.next_week();
    assert_eq!(o.read(None).await.status, StatusCode::OK);
    let a = o.read(Some("all-but-one")).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
    // Asking for the team first in a week does not help: the org is always
    // released first.
    o.next_week();
    let a = o.read(Some("all-but-one")).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
}

#[tokio::test]
async fn a_week_only_the_target_was_active_is_not_shown_and_the_current_week_never_is() {
    let (_env, o) = org().await;
    let team: Vec<&String> = o.others.iter().take(5).chain([&o.target]).collect();
    o.group("small", &team).await;
    // This week only the target works on its half of the concepts.
    let now = o.state.clock.now();
    let seen: Vec<&str> = o
        .truth
        .iter()
        .filter(|(_, s)| *s)
        .map(|(c, _)| c.as_str())
        .collect();
    push(&o.state, &o.target, &seen, now);
    // While the week is open, its cells are not released at all.
    let this_week = o.read(None).await.json();
    let last = this_week["concepts"][0]["trend"]
        .as_array()
        .expect("trend")
        .last()
        .cloned()
        .expect("a week");
    assert_ne!(last["week"], this_week["period"], "the open week was shown");
    let week = aiworklab::graph::trend::label(aiworklab::graph::trend::week_of(now));
    o.next_week();
    let f = o.figures(Some("small")).await;
    let eps = epsilon(&o.read(Some("small")).await.json());
    // The attacker guesses "the target worked on it" when last week's cell
    // shows anybody at all.
    let n = o.truth.len();
    let right = o
        .truth
        .iter()
        .filter(|(c, seen)| {
            let shown = f.weeks[c]
                .get(&week)
                .copied()
                .flatten()
                .is_some_and(|v| v > 0);
            shown == *seen
        })
        .count();
    let acc = right as f64 / n as f64;
    assert!(acc <= allowed(eps, 1.0, n), "time differencing: {acc}");
}

#[tokio::test]
async fn asking_again_or_through_a_copy_of_a_team_gives_the_same_draw() {
    let (_env, o) = org().await;
    let team: Vec<&String> = o.others.iter().take(8).collect();
    for name in ["a", "b", "c", "d"] {
        o.group(name, &team).await;
    }
    // This week's first read notes every team's membership; next week
    // the teams are stable.
    assert_eq!(o.read(None).await.status, StatusCode::OK);
    o.next_week();
    let first = o.figures(Some("a")).await;
    for _ in 0..20 {
        assert_eq!(o.figures(Some("a")).await, first, "a second read differs");
    }
    // Groups with the same engineers are served the same release: no
    // second draw of noise to average.
    for name in ["b", "c", "d"] {
        let a = o.read(Some(name)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_eq!(a.json()["outcome"], "same_as");
        assert_eq!(Figures::of(&a.json()).body, first.body, "{name}");
    }
    // The figures say how they are protected.
    let v = o.read(Some("a")).await.json();
    assert_eq!(v["protection"]["count_bound_95"], 6);
    assert_eq!(v["protection"]["accurate_from"], 60);
    assert_eq!(v["params"]["min_cohort"], 5);
}

#[tokio::test]
async fn org_concepts_and_their_matchers_are_visible_to_every_engineer() {
    let (_env, o) = org().await;
    let concept = aiworklab::skill::catalogue::Concept {
        slug: "x-billing-ledger".into(),
        title: "The billing ledger".into(),
        domain: "x-payments".into(),
        summary: "How invoices post to the ledger.".into(),
        prerequisites: vec![],
        related: vec![],
        matchers: aiworklab::skill::catalogue::Matchers {
            keywords: vec!["ledger_post".into()],
            imports: vec!["acme_billing".into()],
            ..Default::default()
        },
    };
    aiworklab::catalogue::custom::add(
        o.state.store.org("acme").expect("org"),
        &o.state.catalogue,
        &aiworklab::users::AdminCtx::operator(),
        concept,
        o.state.clock.now(),
    )
    .expect("org concept");
    // The target is no admin: the API lists the concept with its matchers.
    let r = Request::builder()
        .uri("/api/v1/concepts")
        .header("cookie", o.cookie(&o.target_cookie))
        .body(Body::empty())
        .expect("request");
    let a = send(&o.state, r).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let listed = a.json();
    let c = listed
        .as_array()
        .or_else(|| listed["concepts"].as_array())
        .expect("a list")
        .iter()
        .find(|c| c["slug"] == "x-billing-ledger")
        .cloned()
        .expect("the org's concept is listed");
    assert_eq!(c["matchers"]["keywords"], json!(["ledger_post"]));
    assert_eq!(c["matchers"]["imports"], json!(["acme_billing"]));
    // And so does the account page.
    let page = send(
        &o.state,
        crate::support::get_with_cookie("/account", &o.cookie(&o.target_cookie)),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    let at = html
        .find("id=\"org-concept-x-billing-ledger\"")
        .expect("listed on the account page");
    let line = &html[at..at + html[at..].find("</tr>").expect("row end")];
    assert!(line.contains("keywords: ledger_post"), "{line}");
    assert!(line.contains("imports: acme_billing"), "{line}");
}
