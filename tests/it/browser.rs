//! The web pages in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, which `tests/run` installs). One person signs in through
//! the real test IdP, checks the account, admin and skill aggregates
//! pages, signs out and presses Back; on the way the test proves that
//! Chromium keeps the `__Host-` session cookie on http://127.0.0.1, that
//! the pages fit a
//! 390 px phone without sideways scrolling, that the sign-in button is
//! reachable by keyboard, and that no request leaves loopback. Screenshots
//! of every page at desktop and phone width land in `target/screenshots/`.
//!
//! The WebDriver commands go through the small W3C client below (reqwest
//! and JSON): fantoccini's `ClientBuilder::new` needs a hyper connector,
//! and without its TLS features that means a direct `hyper-util`
//! dev-dependency, which this crate does not have.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiworklab::clock::SystemClock;
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use crate::idp::{PASSWORD, Site};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const COOKIE: &str = "__Host-aiwl_session";
/// The W3C WebDriver key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const TAB: &str = "\u{E004}";
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);
const WAIT: Duration = Duration::from_secs(10);

/// A chromedriver on a free loopback port, in its own process group so
/// that dropping it also ends the Chromium it started, even when an
/// assertion fails half-way.
pub(crate) struct ChromeDriver {
    child: Child,
    url: String,
    http: reqwest::Client,
    /// A fresh Chromium profile; removed after the processes are gone.
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    pub(crate) async fn start() -> Self {
        for (path, what) in [(CHROMEDRIVER, "chromedriver"), (CHROMIUM, "Chromium")] {
            assert!(
                Path::new(path).exists(),
                "{what} is not installed ({path} is missing): run ./tests/run, which installs \
                 chromium and chromium-driver"
            );
        }
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let mut driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            profile: tempfile::tempdir().expect("profile dir"),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == json!(true)
            {
                return driver;
            }
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited with {status} before answering");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on {}",
                driver.url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new headless Chromium session at desktop size.
    pub(crate) async fn session(&self) -> Browser {
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", self.profile.path().display()),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            "goog:loggingPrefs": { "performance": "ALL" },
        }}});
        let r = self
            .http
            .post(format!("{}/session", self.url))
            .json(&caps)
            .send()
            .await
            .expect("new session");
        let v: Value = r.json().await.expect("session answer");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start: {v}"));
        Browser {
            http: self.http.clone(),
            session: format!("{}/session/{id}", self.url),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session, with the few commands the test needs (named as
/// in fantoccini).
pub(crate) struct Browser {
    http: reqwest::Client,
    /// `<driver>/session/<id>`
    session: String,
}

impl Browser {
    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let ok = r.status().is_success();
        let v: Value = r.json().await.expect("WebDriver answers JSON");
        assert!(ok, "{method} {path} failed: {v}");
        v["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub(crate) async fn current_url(&self) -> String {
        self.cmd(Method::GET, "/url", None)
            .await
            .as_str()
            .expect("url")
            .to_string()
    }

    /// Polls until the current URL satisfies `ok`.
    pub(crate) async fn wait_for_url(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.current_url().await;
            if ok(&url) {
                return url;
            }
            assert!(Instant::now() < deadline, "never reached {what}; at {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn try_find(&self, css: &str) -> Option<String> {
        let r = self
            .http
            .post(format!("{}/elements", self.session))
            .json(&json!({ "using": "css selector", "value": css }))
            .send()
            .await
            .expect("find");
        let v: Value = r.json().await.expect("json");
        v["value"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT].as_str())
            .map(str::to_string)
    }

    pub(crate) async fn find(&self, css: &str) -> String {
        match self.try_find(css).await {
            Some(e) => e,
            None => panic!(
                "no {css} on {}:\n{}",
                self.current_url().await,
                self.body_text().await
            ),
        }
    }

    pub(crate) async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(
            Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            Method::POST,
            &format!("/element/{e}/clear"),
            Some(json!({})),
        )
        .await;
        self.cmd(
            Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd(Method::GET, &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub(crate) async fn body_text(&self) -> String {
        self.execute("return document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn execute(&self, script: &str) -> Value {
        self.cmd(
            Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    async fn set_window_size(&self, (width, height): (u32, u32)) {
        self.cmd(
            Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
        let inner = self.execute("return window.innerWidth").await;
        assert_eq!(inner, json!(width), "the viewport is {width} px wide");
    }

    async fn back(&self) {
        self.cmd(Method::POST, "/back", Some(json!({}))).await;
    }

    async fn press_tab(&self) {
        let key = |kind| json!({ "type": kind, "value": TAB });
        self.cmd(
            Method::POST,
            "/actions",
            Some(json!({ "actions": [{
                "type": "key", "id": "keyboard",
                "actions": [key("keyDown"), key("keyUp")],
            }]})),
        )
        .await;
    }

    pub(crate) async fn cookie(&self, name: &str) -> Option<Value> {
        let all = self.cmd(Method::GET, "/cookie", None).await;
        all.as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == json!(name)).cloned())
    }

    /// The whole page (not only the viewport), through the DevTools
    /// protocol, as a PNG.
    pub(crate) async fn screenshot(&self, path: &Path) {
        let size = self
            .execute(
                "const d = document.documentElement; \
                 return [Math.max(d.scrollWidth, window.innerWidth), \
                         Math.max(d.scrollHeight, window.innerHeight)]",
            )
            .await;
        let png = self
            .cmd(
                Method::POST,
                "/goog/cdp/execute",
                Some(json!({ "cmd": "Page.captureScreenshot", "params": {
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1 },
                }})),
            )
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png["data"].as_str().expect("png data"))
            .expect("base64");
        std::fs::write(path, bytes).expect("write screenshot");
    }

    /// Every URL the browser requested since the last call (Chromium's
    /// performance log of network events).
    async fn requested_urls(&self) -> Vec<String> {
        let log = self
            .cmd(
                Method::POST,
                "/se/log",
                Some(json!({ "type": "performance" })),
            )
            .await;
        log.as_array()
            .expect("log entries")
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == json!("Network.requestWillBeSent"))
            .filter_map(|m| {
                m["message"]["params"]["request"]["url"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    }

    pub(crate) async fn close(self) {
        self.cmd(Method::DELETE, "", None).await;
    }
}

fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("target/screenshots");
    dir
}

/// Checks the page in front of the browser: it fits the viewport (no
/// sideways scrolling), everything it loaded came from `allowed`, and it
/// goes into `target/screenshots/<name>.png`.
pub(crate) async fn inspect(b: &Browser, name: &str, allowed: &[&str]) {
    let fit = b
        .execute("return [document.documentElement.scrollWidth, window.innerWidth]")
        .await;
    let (scroll, inner) = (fit[0].as_u64(), fit[1].as_u64());
    assert!(
        scroll.is_some() && scroll <= inner,
        "{name}: the page is {scroll:?} px wide in a {inner:?} px viewport (scrolls sideways)"
    );
    let loaded = b
        .execute(
            "return performance.getEntriesByType('navigation') \
             .concat(performance.getEntriesByType('resource')).map(e => e.name)",
        )
        .await;
    for url in loaded.as_array().expect("entries") {
        let url = url.as_str().unwrap_or_default();
        assert!(
            allowed.iter().any(|a| url.starts_with(&format!("{a}/"))),
            "{name} loaded {url}, which is neither the appliance nor the IdP"
        );
    }
    b.screenshot(&shots_dir().join(format!("{name}.png"))).await;
}

/// What has the keyboard focus, as `tag#id.class`.
async fn focused(b: &Browser) -> String {
    b.execute(
        "const e = document.activeElement; \
         return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') \
           + (e.className ? '.' + e.className.split(' ').join('.') : '')",
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Five engineers who met `rust-lifetimes` last week, so the aggregates
/// page has a row above `min_cohort`.
fn seed_aggregates(state: &aiworklab::AppState) {
    use aiworklab::sync::wire::{Delta, Transition};
    let org = state.store.org("acme").expect("org");
    let now = state.clock.now();
    for i in 0..5 {
        let u = aiworklab::users::add(
            org,
            &aiworklab::users::AdminCtx::operator(),
            &format!("engineer{i}"),
            "",
            None,
            false,
            now,
        )
        .expect("user");
        let delta = |transition, days| Delta {
            id: uuid::Uuid::new_v4(),
            concept: "rust-lifetimes".into(),
            transition,
            at: now - chrono::Duration::days(days),
            grade: None,
        };
        let deltas = [
            delta(Transition::Seen, 8),
            delta(Transition::Demonstrated, 7),
        ];
        aiworklab::sync::push(org, &u.id, None, &deltas, now).expect("push");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_signs_in_through_the_idp_fits_a_phone_and_cannot_go_back_after_sign_out() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |_| {}).await;
    let (base, issuer) = (site.base.clone(), site.idp.issuer.clone());
    let allowed = [base.as_str(), issuer.as_str()];
    let driver = ChromeDriver::start().await;
    let b = driver.session().await;
    let login = format!("{base}/o/acme/login");
    let account = format!("{base}/account");

    // The sign-in page, and its button within a few Tabs from the top.
    b.goto(&login).await;
    assert!(b.text("h1").await.contains("Sign in to Org acme"));
    inspect(&b, "login-desktop", &allowed).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        b.press_tab().await;
        order.push(focused(&b).await);
        let r = b
            .execute(
                "const r = document.activeElement.getBoundingClientRect(); return [r.left, r.top]",
            )
            .await;
        assert!(
            r[0].as_f64() >= Some(0.0) && r[1].as_f64() >= Some(0.0),
            "the focused {:?} is off screen at {r}",
            order.last()
        );
        if order.last().is_some_and(|f| f.starts_with("a#sso-start")) {
            break;
        }
    }
    assert!(
        order.last().is_some_and(|f| f.starts_with("a#sso-start")),
        "Tab never reached the sign-in button; focus went {order:?}"
    );
    assert_eq!(
        order.first().map(String::as_str),
        Some("a.skip"),
        "the skip link comes first"
    );
    b.set_window_size(PHONE).await;
    inspect(&b, "login-phone", &allowed).await;

    // The IdP's form, filled like a person.
    b.click("#sso-start").await;
    b.wait_for_url("the IdP's login form", |u| {
        u.starts_with(&format!("{issuer}/interaction/"))
    })
    .await;
    b.find("form#login-form").await;
    inspect(&b, "idp-login-phone", &allowed).await;
    b.set_window_size(DESKTOP).await;
    inspect(&b, "idp-login-desktop", &allowed).await;
    b.fill("input[name=login]", "alice").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("#submit").await;

    // Signed in: the account page, on the strength of a Secure __Host-
    // cookie that Chromium accepted over http://127.0.0.1.
    b.wait_for_url("the account page", |u| u == account).await;
    assert!(
        b.text("h1").await.contains("Alice Admin"),
        "{}",
        b.body_text().await
    );
    assert_eq!(b.text("#user-name").await, "alice");
    let cookie = b
        .cookie(COOKIE)
        .await
        .expect("Chromium kept the session cookie on http://127.0.0.1");
    assert_eq!(cookie["secure"], json!(true), "{cookie}");
    assert_eq!(cookie["httpOnly"], json!(true), "{cookie}");
    assert_eq!(cookie["path"], json!("/"), "{cookie}");
    assert_eq!(cookie["sameSite"], json!("Lax"), "{cookie}");
    let script_sees = b.execute("return document.cookie").await;
    assert!(
        !script_sees.as_str().unwrap_or_default().contains(COOKIE),
        "HttpOnly: scripts do not see the session cookie"
    );
    inspect(&b, "account-desktop", &allowed).await;

    b.goto(&format!("{base}/o/acme/admin")).await;
    assert!(b.text("h1").await.contains("Members of Org acme"));
    b.find("#member-alice").await;
    inspect(&b, "admin-desktop", &allowed).await;
    b.set_window_size(PHONE).await;
    inspect(&b, "admin-phone", &allowed).await;

    // Skill aggregates, with enough engineers for numbers and a trend:
    // the table turns into labelled cards on the phone.
    seed_aggregates(&site.state);
    b.click("#aggregates-link").await;
    b.wait_for_url("the aggregates page", |u| {
        u.ends_with("/o/acme/admin/aggregates")
    })
    .await;
    assert!(b.text("h1").await.contains("Skill aggregates"));
    let seen_cell = "const td = document.querySelector('#concept-rust-lifetimes td[data-label=Seen]'); \
                     return [getComputedStyle(td).display, td.textContent.trim()]";
    assert_eq!(
        b.execute(seen_cell).await,
        json!(["block", "5"]),
        "on a phone each cell is a line of its card"
    );
    inspect(&b, "aggregates-phone", &allowed).await;
    b.set_window_size(DESKTOP).await;
    assert_eq!(b.execute(seen_cell).await, json!(["table-cell", "5"]));
    inspect(&b, "aggregates-desktop", &allowed).await;
    b.set_window_size(PHONE).await;
    b.goto(&account).await;
    b.find("#user-name").await;
    inspect(&b, "account-phone", &allowed).await;

    // Sign out, then Back: the account does not come back.
    b.click("#sign-out").await;
    b.wait_for_url("the sign-in page after signing out", |u| {
        u.starts_with(&format!("{login}?"))
    })
    .await;
    assert!(
        b.text(".notice").await.contains("You are signed out"),
        "{}",
        b.body_text().await
    );
    assert!(b.cookie(COOKIE).await.is_none(), "the cookie is cleared");
    inspect(&b, "signed-out-phone", &allowed).await;
    b.back().await;
    let after = b
        .wait_for_url("a page after Back", |u| !u.contains("signed_out"))
        .await;
    let nav = b
        .execute(
            "const n = performance.getEntriesByType('navigation')[0]; \
             return [n.type, n.redirectCount]",
        )
        .await;
    assert!(
        nav[0] == json!("back_forward") && nav[1].as_u64() >= Some(1),
        "Back should fetch /account again (no page from a cache) and be redirected to \
         sign in; the navigation was {nav}"
    );
    assert!(
        b.try_find("#user-name").await.is_none(),
        "Back showed the account page of a signed-out person at {after}"
    );
    assert!(
        after.starts_with(&login) && b.try_find("#sso-start").await.is_some(),
        "Back should end on the sign-in page, not {after}:\n{}",
        b.body_text().await
    );

    // Nothing left loopback: not a page, a redirect, or a subresource.
    // (Chromium's own start page loads chrome:// resources from inside
    // the browser; those never touch the network.)
    let urls = b.requested_urls().await;
    assert!(urls.iter().any(|u| u.starts_with(&issuer)), "{urls:?}");
    for url in &urls {
        let scheme = url.split(':').next().unwrap_or_default();
        let ours = url.starts_with(&format!("{base}/")) || url.starts_with(&format!("{issuer}/"));
        assert!(
            ours || ["chrome", "data", "about"].contains(&scheme),
            "the browser requested {url}"
        );
    }

    b.close().await;
    drop(driver);
    site.stop().await;
}
