//! The admin page of org aggregates over real HTTP: admins only, of their
//! own org (P18); the week's noisy release with its ±bound explained,
//! suppressed concepts counted, new teams and teams below `min_cohort`
//! refused (P19, docs/privacy.md); escaped output, no script or inline style,
//! and every table cell labelled for the phone layout (P13, P16).

use aiworklab::AppState;
use aiworklab::catalogue::custom;
use aiworklab::http::server;
use aiworklab::skill::Concept;
use aiworklab::store::StoreError;
use aiworklab::users::AdminCtx;
use chrono::{DateTime, TimeZone, Utc};
use reqwest::StatusCode;

use crate::support::{Env, manual_clock, signed_in};

/// A server on loopback and a client that follows no redirect.
pub(crate) struct Served {
    pub(crate) base: String,
    pub(crate) state: AppState,
    pub(crate) clock: std::sync::Arc<aiworklab::clock::ManualClock>,
    pub(crate) running: server::Running,
    pub(crate) http: reqwest::Client,
}

impl Served {
    /// A member of `acme` signed in and made a viewer by the operator:
    /// their session cookie and user id.
    pub(crate) fn viewer(&self, name: &str) -> (String, String) {
        let state = &self.state;
        let (cookie, id) = signed_in(state, "acme", name, false);
        aiworklab::users::set_viewer(
            state.store.org("acme").expect("org"),
            &AdminCtx::operator(),
            &id,
            true,
            state.clock.now(),
        )
        .expect("grant");
        (cookie, id)
    }

    pub(crate) async fn start(env: &mut Env) -> Self {
        let listener = server::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        env.raw.server.public_url = base.clone();
        let clock = manual_clock();
        let state = env.state_with_clock(clock.clone());
        let running = server::start(state.clone(), listener)
            .await
            .expect("server starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            base,
            state,
            clock,
            running,
            http,
        }
    }

    /// GET `path` with the session cookie (if any): status, Location, body.
    pub(crate) async fn page(
        &self,
        path: &str,
        cookie: Option<&str>,
    ) -> (StatusCode, String, String) {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        answer(r.send().await.expect("request")).await
    }

    /// POST a form with `csrf` as its token (the session's own is
    /// `support::csrf_of`) and the session cookie, from this site's
    /// origin: status, Location, body.
    pub(crate) async fn post_form(
        &self,
        path: &str,
        cookie: &str,
        csrf: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String, String) {
        let mut form: Vec<(&str, &str)> = vec![("csrf", csrf)];
        form.extend_from_slice(fields);
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .header("origin", self.base.as_str())
            .form(&form)
            .send()
            .await
            .expect("request");
        answer(res).await
    }
}

/// A response's status, Location and body.
async fn answer(res: reqwest::Response) -> (StatusCode, String, String) {
    let status = res.status();
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, location, res.text().await.expect("body"))
}

pub(crate) fn t(m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, 10, 0, 0)
        .single()
        .expect("valid")
}

pub(crate) fn push(state: &AppState, user: &str, concept: &str, facts: &[(&str, DateTime<Utc>)]) {
    use aiworklab::skill::{Delta, Transition};
    let deltas: Vec<Delta> = facts
        .iter()
        .map(|(tr, at)| Delta {
            id: uuid::Uuid::new_v4(),
            concept: concept.into(),
            transition: Transition::parse(tr).expect("transition"),
            at: *at,
            grade: (*tr == "check_passed").then_some(3),
        })
        .collect();
    aiworklab::sync::push(
        state.store.org("acme").expect("org"),
        user,
        None,
        &deltas,
        state.clock.now(),
    )
    .expect("push");
}

pub(crate) fn team(state: &AppState, name: &str, members: &[String]) {
    state
        .store
        .org("acme")
        .expect("org")
        .db
        .write(|tx| {
            let g = aiworklab::store::users::ensure_group(
                tx,
                &uuid::Uuid::new_v4().to_string(),
                name,
                0,
            )?;
            for m in members {
                aiworklab::store::users::set_memberships(tx, m, std::slice::from_ref(&g))?;
            }
            Ok::<_, StoreError>(())
        })
        .expect("team");
}

/// The `<tr>` of a concept, as text.
fn row<'a>(html: &'a str, slug: &str) -> &'a str {
    let start = html
        .find(&format!("<tr id=\"concept-{slug}\""))
        .unwrap_or_else(|| panic!("no row for {slug}"));
    let len = html[start..].find("</tr>").expect("row end");
    &html[start..start + len]
}

fn cell<'a>(row: &'a str, label: &str) -> &'a str {
    let at = row
        .find(&format!("data-label=\"{label}\""))
        .unwrap_or_else(|| panic!("no {label} cell in {row}"));
    let rest = &row[at..];
    let open = rest.find('>').expect("tag end") + 1;
    let close = rest.find("</td>").expect("cell end");
    rest[open..close].trim()
}

#[tokio::test]
async fn admins_see_aggregates_by_domain_with_trend_bars_protection_and_suppression_explained() {
    let mut env = Env::new(&["acme", "other"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (admin, admin_id) = signed_in(state, "acme", "admin", true);
    let (member, _) = signed_in(state, "acme", "member", false);
    let (other_admin, _) = signed_in(state, "other", "boss", true);
    let engineers: Vec<String> = (0..30)
        .map(|i| signed_in(state, "acme", &format!("eng{i}"), false).1)
        .collect();
    // An org concept whose title an admin typed with markup in it.
    let hostile = Concept {
        slug: "x-ledger".into(),
        title: "<script>alert(1)</script> ledger".into(),
        domain: "x-payments".into(),
        summary: "The ledger.".into(),
        prerequisites: vec![],
        related: vec![],
        matchers: Default::default(),
    };
    custom::add(
        state.store.org("acme").expect("org"),
        &state.catalogue,
        &AdminCtx::operator(),
        hostile,
        state.clock.now(),
    )
    .expect("custom concept");
    for (i, e) in engineers.iter().enumerate() {
        // 2026-W02: thirty see rust-lifetimes, twenty-five demonstrate it.
        let mut facts = vec![("seen", t(1, 6))];
        if i < 25 {
            facts.push(("demonstrated", t(1, 7)));
        }
        push(state, e, "rust-lifetimes", &facts);
        push(state, e, "x-ledger", &[("seen", t(1, 8))]);
        if i < 3 {
            push(state, e, "go-goroutines", &[("seen", t(1, 6))]);
        }
    }
    team(state, "core", &engineers[5..]);
    team(state, "solo", &engineers[..1]);
    let url = "/o/acme/admin/aggregates";

    // Who may see it.
    let (status, location, _) = site.page(url, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with("/o/acme/login"), "{location}");
    let (status, _, body) = site.page(url, Some(&member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a member saw aggregates");
    assert!(body.contains("administrators"), "{body}");
    let (status, location, _) = site.page(url, Some(&other_admin)).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "another org's admin opened this org's aggregates"
    );
    assert!(location.starts_with("/o/acme/login"), "{location}");

    // The whole org: this week's release, with how it is protected.
    let (status, _, html) = site.page(url, Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("release of week 2026-W03"), "{html}");
    assert!(html.contains("within <strong>±6</strong> of the truth 95 % of the time"));
    assert!(html.contains("within ±10 % from 60 engineers on"));
    assert!(html.contains(">Rust</h2>"), "domains");
    assert!(html.contains(">x-payments</h2>"), "the org's own domain");
    let lifetimes = row(&html, "rust-lifetimes");
    let seen: i64 = cell(lifetimes, "Seen").parse().expect("a number");
    assert!((seen - 30).abs() <= 20, "{lifetimes}");
    let shown: i64 = cell(lifetimes, "Demonstrated").parse().expect("a number");
    assert!(shown <= seen && (shown - 25).abs() <= 20, "{lifetimes}");
    let observed = cell(lifetimes, "Retention observed");
    assert!(
        observed == "too few" || observed.ends_with(" %"),
        "{observed}"
    );
    assert!(
        lifetimes.contains("title=\"2026-W02: "),
        "the last closed week: {lifetimes}"
    );
    assert!(
        !lifetimes.contains("2026-W03:"),
        "the week in progress is not shown: {lifetimes}"
    );
    assert_eq!(
        lifetimes.matches("<i class=").count(),
        12,
        "twelve weeks of bars"
    );
    // Concepts under min_cohort (after noise) are not listed, only counted.
    assert!(html.contains("id=\"hidden\""), "{html}");
    assert!(html.contains("concepts are not listed: fewer than 5 engineers"));
    // Escaped, script-free, style-free, every cell labelled for phones.
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62; ledger"),
        "{}",
        row(&html, "x-ledger")
    );
    assert!(!html.contains("<script"), "markup got through");
    assert!(!html.contains(" style="), "inline style breaks the CSP");
    assert_eq!(
        html.matches("<td ").count(),
        html.matches("<td data-label=").count(),
        "a cell without its label would be unreadable as a card on a phone"
    );
    assert!(html.contains("<option value=\"core\">core</option>"));

    // One team: not while its membership is new; a week later, with its
    // own numbers. A team too small is refused.
    let (status, _, html) = site.page(&format!("{url}?team=core"), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("membership changed this period"), "{html}");
    assert!(
        !html.contains("concept-rust-lifetimes"),
        "a new team's figures were shown"
    );
    site.clock.advance(chrono::Duration::days(7));
    // Sessions last less than a week: the admin signs in again.
    let admin = {
        let db = state.store.org("acme").expect("org");
        let now = state.clock.now();
        let s = aiworklab::sessions::create(
            db,
            &admin_id,
            now,
            &[],
            &aiworklab::audit::Context::system(),
            now,
        )
        .expect("session");
        format!("__Host-aiwl_session={}", s.expose())
    };
    let (status, _, html) = site.page(&format!("{url}?team=core"), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<option value=\"core\" selected>core</option>"),
        "{html}"
    );
    let seen: i64 = cell(row(&html, "rust-lifetimes"), "Seen")
        .parse()
        .expect("a number");
    assert!((seen - 25).abs() <= 20, "{seen}");
    let (status, _, html) = site.page(&format!("{url}?team=solo"), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("fewer than 5 counted engineers"), "{html}");
    assert!(
        !html.contains("concept-rust-lifetimes"),
        "a tiny team's figures were shown"
    );
    let (_, _, html) = site.page(&format!("{url}?team=nobody"), Some(&admin)).await;
    assert!(html.contains("No team is named “nobody”"), "{html}");

    // The admin page links here.
    let (_, _, admin_page) = site.page("/o/acme/admin", Some(&admin)).await;
    assert!(admin_page.contains("href=\"/o/acme/admin/aggregates\""));
    site.running.shutdown().await.expect("shutdown");
}
