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
//! The WebDriver client is `fantoccini`, over a plain `hyper-util`
//! connector (chromedriver listens on loopback HTTP). The two
//! Chromium-specific commands it has no method for (a full-page screenshot
//! through the DevTools protocol, the performance log) go through its
//! `issue_cmd`.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiworklab::clock::SystemClock;
use base64::Engine;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::idp::{PASSWORD, Site};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const COOKIE: &str = "__Host-aiwl_session";
pub(crate) const DESKTOP: (u32, u32) = (1280, 900);
pub(crate) const PHONE: (u32, u32) = (390, 844);
const WAIT: Duration = Duration::from_secs(10);

/// A chromedriver on a free loopback port, in its own process group so
/// that dropping it also ends the Chromium it started, even when an
/// assertion fails half-way.
pub(crate) struct ChromeDriver {
    child: Child,
    url: String,
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
            profile: tempfile::tempdir().expect("profile dir"),
        };
        // Before a session exists there is no fantoccini client: ask
        // chromedriver's status endpoint directly.
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
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
        let Value::Object(caps) = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            "goog:loggingPrefs": { "performance": "ALL" },
        }) else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("Chromium did not start: {e}"));
        Browser { client }
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

/// A Chromium command that fantoccini has no method for:
/// `POST <session>/<path>` with a JSON body.
#[derive(Debug)]
pub(crate) struct Chromium {
    pub(crate) path: &'static str,
    pub(crate) body: Value,
}

impl WebDriverCompatibleCommand for Chromium {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let id = session_id.unwrap_or_default();
        base_url.join(&format!("session/{id}/{}", self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(self.body.to_string()))
    }
}

/// One WebDriver session, with the few steps the test needs; each panics
/// with what it tried when the browser refuses.
pub(crate) struct Browser {
    pub(crate) client: Client,
}

impl Browser {
    pub(crate) async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    async fn current_url(&self) -> String {
        self.client.current_url().await.expect("url").to_string()
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

    pub(crate) async fn try_find(&self, css: &str) -> Option<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find")
            .into_iter()
            .next()
    }

    async fn find(&self, css: &str) -> Element {
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
        e.click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        e.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        e.text().await.unwrap_or_default()
    }

    pub(crate) async fn body_text(&self) -> String {
        self.execute("return document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub(crate) async fn execute(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    pub(crate) async fn set_window_size(&self, (width, height): (u32, u32)) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("window size");
        let inner = self.execute("return window.innerWidth").await;
        assert_eq!(inner, json!(width), "the viewport is {width} px wide");
    }

    async fn back(&self) {
        self.client.back().await.expect("back");
    }

    pub(crate) async fn press_tab(&self) {
        let tab = char::from(Key::Tab);
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: tab })
            .then(KeyAction::Up { value: tab });
        self.client.perform_actions(keys).await.expect("Tab");
    }

    /// The cookie `name` as WebDriver describes it, if the browser holds it.
    async fn cookie(&self, name: &str) -> Option<Value> {
        match self.client.get_named_cookie(name).await {
            Ok(c) => Some(json!({
                "name": c.name(),
                "secure": c.secure(),
                "httpOnly": c.http_only(),
                "path": c.path(),
                "sameSite": c.same_site().map(|s| s.to_string()),
            })),
            Err(CmdError::Standard(e)) if e.error == ErrorStatus::NoSuchCookie => None,
            Err(e) => panic!("cookie {name}: {e}"),
        }
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
            .client
            .issue_cmd(Chromium {
                path: "goog/cdp/execute",
                body: json!({ "cmd": "Page.captureScreenshot", "params": {
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1 },
                }}),
            })
            .await
            .expect("screenshot");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png["data"].as_str().expect("png data"))
            .expect("base64");
        std::fs::write(path, bytes).expect("write screenshot");
    }

    /// Every URL the browser requested since the last call (Chromium's
    /// performance log of network events).
    async fn requested_urls(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(Chromium {
                path: "se/log",
                body: json!({ "type": "performance" }),
            })
            .await
            .expect("performance log");
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
        self.client.close().await.expect("close the session");
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
pub(crate) async fn focused(b: &Browser) -> String {
    b.execute(
        "const e = document.activeElement; \
         return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') \
           + (e.getAttribute('class') ? '.' + e.getAttribute('class').split(' ').join('.') : '')",
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Thirty engineers who met `rust-lifetimes` last week, so the aggregates
/// page has a row above `min_cohort` whatever the noise (docs/privacy.md).
fn seed_aggregates(state: &aiworklab::AppState) {
    use aiworklab::skill::{Delta, Transition};
    let org = state.store.org("acme").expect("org");
    let now = state.clock.now();
    for i in 0..30 {
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
    // Thirty engineers, with noise: a number within 20 of 30.
    let near_thirty = |v: &serde_json::Value| {
        v[1].as_str()
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|n| (n - 30).abs() <= 20)
    };
    let phone = b.execute(seen_cell).await;
    assert_eq!(
        phone[0], "block",
        "on a phone each cell is a line of its card"
    );
    assert!(near_thirty(&phone), "{phone}");
    inspect(&b, "aggregates-phone", &allowed).await;
    b.set_window_size(DESKTOP).await;
    let desktop = b.execute(seen_cell).await;
    assert_eq!(desktop[0], "table-cell");
    assert!(near_thirty(&desktop), "{desktop}");
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
