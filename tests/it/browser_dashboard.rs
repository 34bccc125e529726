//! The org dashboard in headless Chromium, signed in through the real test
//! IdP: a viewer (through `viewer_groups`) and an admin see it, a member
//! and another org's admin are refused; axe-core (injected from
//! `tests/browser/node_modules`) finds no violation on it, in light and
//! dark colour schemes, nor on the sign-in, account, admin and aggregates
//! pages; nothing scrolls sideways at 390 px; the charts' numbers open by
//! keyboard; and the screenshots in `docs/img/` are taken here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aiworklab::AppState;
use aiworklab::clock::SystemClock;
use aiworklab::skill::{Delta, Transition};
use aiworklab::users::{self, AdminCtx};
use chrono::{DateTime, Duration, Utc};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use serde_json::{Value, json};

use crate::browser::{Browser, ChromeDriver, Chromium, DESKTOP, PHONE, focused, inspect};
use crate::idp::{PASSWORD, Site};

const AXE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/browser/node_modules/axe-core/axe.min.js"
);

pub(crate) fn docs_img(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img");
    std::fs::create_dir_all(&dir).expect("docs/img");
    dir.join(name)
}

/// Runs axe-core on the page in front of the browser and fails with every
/// violation it reports (rule, impact, the first nodes and why).
pub(crate) async fn axe(b: &Browser, page: &str) {
    let source = std::fs::read_to_string(AXE)
        .unwrap_or_else(|e| panic!("{AXE}: {e}: run ./tests/run (or `npm ci` in tests/browser)"));
    let loaded = b
        .execute(&format!("{source}\n;return typeof window.axe;"))
        .await;
    assert_eq!(loaded, json!("object"), "axe-core did not load on {page}");
    let found = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             window.axe.run(document, { resultTypes: ['violations'] }) \
               .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, \
                   nodes: v.nodes.slice(0, 4).map(n => n.target.join(' ') + ': ' + n.failureSummary) })))) \
               .catch(e => done([{ id: 'axe-error', help: String(e) }]));",
            Vec::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("axe on {page}: {e}"));
    let violations = found.as_array().cloned().unwrap_or_default();
    assert!(
        violations.is_empty(),
        "axe-core found {} violations on {page}:\n{}",
        violations.len(),
        serde_json::to_string_pretty(&violations).unwrap_or_default()
    );
}

/// The page's colour scheme as `prefers-color-scheme` says.
pub(crate) async fn color_scheme(b: &Browser, scheme: &str) {
    b.client
        .issue_cmd(Chromium {
            path: "goog/cdp/execute",
            body: json!({ "cmd": "Emulation.setEmulatedMedia", "params": {
                "features": [{ "name": "prefers-color-scheme", "value": scheme }],
            }}),
        })
        .await
        .expect("emulate the colour scheme");
}

/// A fresh Chromium (its own profile, so no IdP session is shared) signed
/// in to `org` as `login`, on the account page.
pub(crate) async fn signed_in(site: &Site, org: &str, login: &str) -> (ChromeDriver, Browser) {
    let driver = ChromeDriver::start().await;
    let b = driver.session().await;
    b.goto(&format!("{}/o/{org}/login", site.base)).await;
    b.click("#sso-start").await;
    let issuer = site.idp.issuer.clone();
    b.wait_for_url("the IdP's login form", |u| u.starts_with(&issuer))
        .await;
    b.fill("input[name=login]", login).await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("#submit").await;
    let account = format!("{}/account", site.base);
    b.wait_for_url("the account page", |u| u == account).await;
    (driver, b)
}

pub(crate) fn delta(concept: &str, transition: Transition, at: DateTime<Utc>) -> Delta {
    Delta {
        id: uuid::Uuid::new_v4(),
        concept: concept.into(),
        transition,
        at,
        grade: matches!(
            transition,
            Transition::CheckPassed | Transition::CheckFailed
        )
        .then_some(3),
    }
}

/// Thirty engineers over the last weeks, four teams (one too small), and
/// last week's release made, so this week's has teams that held still
/// and concepts whose predicted retention moved.
fn seed(state: &AppState) {
    let org = state.store.org("acme").expect("org");
    let now = state.clock.now();
    let day = |d: i64| now - Duration::days(d);
    let mut ids = Vec::new();
    for i in 0..30_i64 {
        let u = users::add(
            org,
            &AdminCtx::operator(),
            &format!("engineer{i}"),
            "",
            None,
            false,
            now,
        )
        .expect("user");
        let mut deltas = vec![
            delta("rust-lifetimes", Transition::Seen, day(70 - i)),
            delta("rust-lifetimes", Transition::Demonstrated, day(60 - i)),
            delta("rust-lifetimes", Transition::CheckPassed, day(40 - i / 2)),
            delta("go-goroutines", Transition::Seen, day(50 - i / 2)),
        ];
        if i % 3 != 0 {
            deltas.push(delta(
                "go-goroutines",
                Transition::Demonstrated,
                day(30 - i / 2),
            ));
            deltas.push(delta(
                "go-goroutines",
                Transition::CheckPassed,
                day(20 - i / 3),
            ));
        }
        if i < 20 {
            deltas.push(delta("sql-joins", Transition::Seen, day(25 - i / 2)));
            deltas.push(delta(
                "sql-joins",
                Transition::Demonstrated,
                day(16 - i / 3),
            ));
        }
        aiworklab::sync::push(org, &u.id, None, &deltas, now).expect("push");
        ids.push(u.id);
    }
    // Teams; an engineer may be in several.
    let guild: Vec<String> = ids[..10].iter().chain(&ids[20..25]).cloned().collect();
    let teams: [(&str, &[String]); 4] = [
        ("backend", &ids[..20]),
        ("frontend", &ids[10..]),
        ("rust-guild", &guild),
        ("tiny", &ids[25..28]),
    ];
    org.db
        .write(|tx| {
            let mut of: std::collections::HashMap<&str, Vec<String>> = Default::default();
            for (name, members) in teams {
                let g = aiworklab::store::users::ensure_group(
                    tx,
                    &uuid::Uuid::new_v4().to_string(),
                    name,
                    0,
                )?;
                for m in members {
                    of.entry(m.as_str()).or_default().push(g.clone());
                }
            }
            for (m, groups) in of {
                aiworklab::store::users::set_memberships(tx, m, &groups)?;
            }
            Ok::<_, aiworklab::store::StoreError>(())
        })
        .expect("teams");
    // Last week's release: the org's figures to compare with, and every
    // team's membership seen a week ago.
    let req = aiworklab::privacy::Request {
        team: None,
        now: now - Duration::days(7),
        weeks: 12,
    };
    aiworklab::privacy::release(
        org,
        &state.catalogue,
        &req,
        state.settings.privacy,
        &aiworklab::audit::Context::system(),
    )
    .expect("last week's release");
    // Since then: Go's checks failed, SQL's passed.
    for (i, id) in ids.iter().enumerate() {
        let recent = day(3 + (i as i64 % 3));
        let mut deltas = vec![delta("go-goroutines", Transition::CheckFailed, recent)];
        if i < 20 {
            deltas.push(delta("sql-joins", Transition::CheckPassed, recent));
        }
        aiworklab::sync::push(org, id, None, &deltas, now).expect("push");
    }
}

/// Presses Tab until a chart's "The numbers" is focused, opens it with
/// Enter, and checks its table shows.
async fn open_numbers_by_keyboard(b: &Browser) {
    let mut order = Vec::new();
    for _ in 0..40 {
        b.press_tab().await;
        order.push(focused(b).await);
        if order.last().is_some_and(|f| f.starts_with("summary")) {
            break;
        }
    }
    assert!(
        order.last().is_some_and(|f| f.starts_with("summary")),
        "Tab never reached a chart's numbers; focus went {order:?}"
    );
    let enter = char::from(Key::Enter);
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: enter })
        .then(KeyAction::Up { value: enter });
    b.client.perform_actions(keys).await.expect("Enter");
    let open: Value = b
        .execute(
            "const d = document.activeElement.closest('details'); \
             return [d.open, d.querySelector('table') !== null && d.querySelector('table').offsetHeight > 0]",
        )
        .await;
    assert_eq!(open, json!([true, true]), "Enter opened the numbers");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_in_chromium_is_for_viewers_and_admins_accessible_and_fits_a_phone() {
    let site = Site::start(&["acme", "other"], Arc::new(SystemClock), |env| {
        env.raw.orgs[0].viewer_groups = vec!["eng".into()];
    })
    .await;
    let allowed = [site.base.as_str(), site.idp.issuer.as_str()];
    seed(&site.state);
    let dashboard = format!("{}/o/acme/dashboard", site.base);

    // Bob, a viewer through the IdP group `eng`.
    let (driver, b) = signed_in(&site, "acme", "bob").await;
    b.click("#dashboard-link").await;
    b.wait_for_url("the dashboard", |u| u == dashboard).await;
    assert!(b.text("h1").await.contains("skills overview"));
    let engineers = b.text("#headline-engineers .figure").await;
    let n: i64 = engineers.parse().unwrap_or_else(|_| panic!("{engineers}"));
    assert!((n - 31).abs() <= 20, "engineers counted: {n}");
    assert!(b.try_find("#coverage-chart").await.is_some());
    assert!(
        b.try_find("#rising-chart, #fading-chart").await.is_some(),
        "{}",
        b.body_text().await
    );
    assert!(b.try_find("a[href='/o/acme/admin']").await.is_none());
    axe(&b, "the dashboard (viewer, light)").await;
    inspect(&b, "dashboard-desktop", &allowed).await;
    b.screenshot(&docs_img("dashboard.png")).await;
    open_numbers_by_keyboard(&b).await;
    b.set_window_size(PHONE).await;
    b.goto(&dashboard).await;
    inspect(&b, "dashboard-phone", &allowed).await;
    b.screenshot(&docs_img("dashboard-phone.png")).await;
    color_scheme(&b, "dark").await;
    let bg = b
        .execute("return getComputedStyle(document.documentElement).backgroundColor")
        .await;
    assert_eq!(bg, json!("rgb(17, 20, 24)"), "the dark scheme applies");
    axe(&b, "the dashboard (viewer, dark, phone)").await;
    inspect(&b, "dashboard-phone-dark", &allowed).await;
    b.set_window_size(DESKTOP).await;
    b.screenshot(&docs_img("dashboard-dark.png")).await;
    b.close().await;
    drop(driver);

    // Alice, an admin: the dashboard too, and the other pages pass axe.
    let (driver, b) = signed_in(&site, "acme", "alice").await;
    axe(&b, "the account page").await;
    b.goto(&dashboard).await;
    assert!(b.text("h1").await.contains("skills overview"));
    assert!(b.try_find("a[href='/o/acme/admin']").await.is_some());
    axe(&b, "the dashboard (admin)").await;
    for (path, name) in [
        ("/o/acme/admin", "the admin page"),
        ("/o/acme/admin/aggregates", "the aggregates page"),
    ] {
        b.goto(&format!("{}{path}", site.base)).await;
        axe(&b, name).await;
        b.set_window_size(PHONE).await;
        inspect(
            &b,
            &format!("{}-phone-axe", path.replace('/', "_")),
            &allowed,
        )
        .await;
        b.set_window_size(DESKTOP).await;
    }
    b.click("#sign-out").await;
    b.wait_for_url("the sign-in page", |u| u.contains("/o/acme/login"))
        .await;
    axe(&b, "the sign-in page").await;
    b.close().await;
    drop(driver);

    // Carol, a member: refused with the reason.
    let (driver, b) = signed_in(&site, "acme", "carol").await;
    assert!(b.try_find("#dashboard-link").await.is_none());
    b.goto(&dashboard).await;
    let body = b.body_text().await;
    assert!(body.contains("viewers and administrators"), "{body}");
    assert!(b.try_find("#trend-chart").await.is_none());
    axe(&b, "the refusal page").await;
    b.close().await;
    drop(driver);

    // Mallory, an admin of the other org: sent to sign in to acme.
    let (driver, b) = signed_in(&site, "other", "mallory").await;
    b.goto(&dashboard).await;
    let at = b
        .wait_for_url("acme's sign-in", |u| u.contains("/o/acme/login"))
        .await;
    assert!(b.try_find("#trend-chart").await.is_none(), "{at}");
    b.close().await;
    drop(driver);
    site.stop().await;
}

/// Presses Enter on whatever has the focus.
async fn press_enter(b: &Browser) {
    let enter = char::from(Key::Enter);
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: enter })
        .then(KeyAction::Up { value: enter });
    b.client.perform_actions(keys).await.expect("Enter");
}

/// Presses Tab until the focus is on a link to `href` (SVG links
/// included), and fails with where the focus went otherwise.
async fn tab_to(b: &Browser, href: &str) {
    let mut order = Vec::new();
    for _ in 0..40 {
        b.press_tab().await;
        let at = b
            .execute("const e = document.activeElement; return e.getAttribute('href') || e.tagName")
            .await;
        let at = at.as_str().unwrap_or_default().to_string();
        if at == href {
            return;
        }
        order.push(at);
    }
    panic!("Tab never reached {href}; focus went {order:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concept_and_team_pages_in_chromium_are_for_viewers_and_admins_accessible_and_fit_a_phone()
{
    let site = Site::start(&["acme", "other"], Arc::new(SystemClock), |env| {
        env.raw.orgs[0].viewer_groups = vec!["eng".into()];
    })
    .await;
    let allowed = [site.base.as_str(), site.idp.issuer.as_str()];
    seed(&site.state);
    let dashboard = format!("{}/o/acme/dashboard", site.base);
    let concept = format!("{}/o/acme/concepts/rust-lifetimes", site.base);
    let teams = format!("{}/o/acme/teams", site.base);
    let backend = format!("{}/o/acme/teams/backend", site.base);
    let tiny = format!("{}/o/acme/teams/tiny", site.base);

    // Bob, a viewer through the IdP group `eng`.
    let (driver, b) = signed_in(&site, "acme", "bob").await;
    b.goto(&dashboard).await;
    assert!(
        b.try_find("a[href='/o/acme/concepts/rust-lifetimes']")
            .await
            .is_some(),
        "the dashboard links to the concept"
    );
    b.click("#team-links a[href='/o/acme/teams/backend']").await;
    b.wait_for_url("backend's page", |u| u == backend).await;
    assert_eq!(b.text("h1").await, "Team backend");
    assert!(b.try_find("#trend-chart").await.is_some());
    axe(&b, "a team's page (viewer)").await;
    inspect(&b, "team-desktop", &allowed).await;
    b.screenshot(&docs_img("team.png")).await;

    b.goto(&concept).await;
    assert_eq!(b.text("h1").await, "Lifetimes");
    assert!(b.try_find("#graph-chart").await.is_some());
    assert!(b.try_find("#trend-chart").await.is_some());
    assert!(
        b.try_find("#checks").await.is_none(),
        "checks are for admins"
    );
    let refused = b.text("#refused").await;
    assert!(refused.contains("tiny"), "{refused}");
    axe(&b, "a concept's page (viewer, light)").await;
    inspect(&b, "concept-desktop", &allowed).await;
    b.screenshot(&docs_img("concept.png")).await;
    // By keyboard: Tab to the prerequisite's box in the graph, Enter.
    tab_to(&b, "/o/acme/concepts/rust-borrowing").await;
    press_enter(&b).await;
    let borrowing = format!("{}/o/acme/concepts/rust-borrowing", site.base);
    b.wait_for_url("the prerequisite's page", |u| u == borrowing)
        .await;
    assert_eq!(b.text("h1").await, "Borrowing and references");
    b.goto(&concept).await;
    open_numbers_by_keyboard(&b).await;

    b.set_window_size(PHONE).await;
    for (url, name) in [
        (&concept, "concept"),
        (&teams, "teams"),
        (&backend, "team"),
        (&tiny, "team-refused"),
    ] {
        b.goto(url).await;
        inspect(&b, &format!("{name}-phone"), &allowed).await;
    }
    b.goto(&concept).await;
    b.screenshot(&docs_img("concept-phone.png")).await;
    color_scheme(&b, "dark").await;
    axe(&b, "a concept's page (viewer, dark, phone)").await;
    inspect(&b, "concept-phone-dark", &allowed).await;
    b.set_window_size(DESKTOP).await;
    b.screenshot(&docs_img("concept-dark.png")).await;
    b.goto(&teams).await;
    axe(&b, "the teams page (dark)").await;
    color_scheme(&b, "light").await;
    b.goto(&teams).await;
    assert!(b.try_find("#coverage-chart").await.is_some());
    axe(&b, "the teams page (light)").await;
    b.screenshot(&docs_img("teams.png")).await;
    b.goto(&tiny).await;
    let why = b.text("#refused-why").await;
    assert!(why.contains("fewer than 5 counted engineers"), "{why}");
    assert!(b.try_find("#headline-engineers").await.is_none());
    axe(&b, "a refused team's page").await;
    b.close().await;
    drop(driver);

    // Alice, an admin: the same pages, and the concept's checks.
    let (driver, b) = signed_in(&site, "acme", "alice").await;
    b.goto(&concept).await;
    let checks = b.text("#checks").await;
    assert!(checks.contains("rust-lifetimes-1"), "{checks}");
    axe(&b, "a concept's page (admin)").await;
    b.set_window_size(PHONE).await;
    inspect(&b, "concept-admin-phone", &allowed).await;
    b.set_window_size(DESKTOP).await;
    for (url, name) in [
        (&teams, "the teams page (admin)"),
        (&backend, "a team's page (admin)"),
    ] {
        b.goto(url).await;
        axe(&b, name).await;
    }
    b.close().await;
    drop(driver);

    // Carol, a member: refused with the reason, on every page.
    let (driver, b) = signed_in(&site, "acme", "carol").await;
    for url in [&concept, &teams, &backend] {
        b.goto(url).await;
        let body = b.body_text().await;
        assert!(body.contains("viewers and administrators"), "{url}: {body}");
        assert!(b.try_find("#trend-chart, #coverage-chart").await.is_none());
    }
    axe(&b, "the refusal page (concept)").await;
    b.close().await;
    drop(driver);

    // Mallory, an admin of the other org: sent to sign in to acme.
    let (driver, b) = signed_in(&site, "other", "mallory").await;
    for url in [&concept, &teams, &backend] {
        b.goto(url).await;
        let at = b
            .wait_for_url("acme's sign-in", |u| u.contains("/o/acme/login"))
            .await;
        assert!(
            b.try_find("#graph-chart, #coverage-chart").await.is_none(),
            "{at}"
        );
    }
    b.close().await;
    drop(driver);
    site.stop().await;
}
