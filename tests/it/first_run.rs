//! First run (issue 22): the setup link that creates the first admin, the
//! sign-in page that tells only the server's own machine about the ways in,
//! the setup checklist (and `config check` saying the same), and the test
//! sign-in against the real test IdP. Browser steps are small functions so
//! they can move to another WebDriver client unchanged in intent.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiworklab::clock::{Clock, SystemClock};
use aiworklab::secrets::SecretHash;
use aiworklab::setup::link;
use aiworklab::store::setup as setup_sql;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

use crate::browser::{Browser as Chromium, ChromeDriver};
use crate::idp::{Browser, Site};
use crate::support::{Env, LOOPBACK, get, get_with_cookie, manual_clock, send, send_from};

const COOKIE: &str = "__Host-aiwl_session";

fn post_form(uri: &str, form: &[(&str, &str)]) -> Request<Body> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("request")
}

/// The path of a setup URL (`/setup/<secret>`).
fn path_of(url: &url::Url) -> String {
    url.path().to_string()
}

fn secret_of(url: &url::Url) -> String {
    url.path().trim_start_matches("/setup/").to_string()
}

fn count(state: &aiworklab::AppState, org: &str, sql: &str) -> i64 {
    let db = state.store.org(org).expect("org");
    db.db
        .read(|c| {
            c.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map_err(aiworklab::store::StoreError::from)
        })
        .expect("count")
}

fn audit_rows(state: &aiworklab::AppState, org: &str, action: &str) -> Vec<(String, String)> {
    let db = state.store.org(org).expect("org");
    db.db
        .read(|c| {
            let mut st = c
                .prepare("SELECT actor, details FROM audit_log WHERE action = ?1 ORDER BY id")
                .map_err(aiworklab::store::StoreError::from)?;
            let rows = st
                .query_map([action], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(aiworklab::store::StoreError::from)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(aiworklab::store::StoreError::from)?;
            Ok::<_, aiworklab::store::StoreError>(rows)
        })
        .expect("audit")
}

fn first_admin_form<'a>(user: &'a str, email: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("org", "default"), ("user_name", user), ("email", email)]
}

#[tokio::test]
async fn setup_link_creates_the_first_admin_once_and_then_is_dead() {
    let env = Env::new(&["default"]);
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let issued = link::at_start(&state.store, &state.settings, clock.now())
        .expect("at start")
        .expect("no admin yet: a link");
    let file = env.data_dir().join(link::FILE_NAME);
    assert_eq!(issued.file, file);
    assert_eq!(
        std::fs::metadata(&file).expect("file").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("read").trim(),
        issued.url.as_str()
    );
    // Only the hash is stored.
    let secret = secret_of(&issued.url);
    assert!(secret.starts_with("aiwl_setup_"), "{secret}");
    let row = state
        .store
        .system()
        .read(|c| setup_sql::get_secret(c).map_err(aiworklab::store::StoreError::from))
        .expect("read")
        .expect("row");
    assert_eq!(row.secret_hash, SecretHash::of(&secret).0.to_vec());
    assert_eq!(row.expires_at - row.created_at, 24 * 3600 * 1000);

    let page = send(&state, get(&path_of(&issued.url))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("Set up aiworklab"), "{}", page.text());

    // A typo does not spend the link.
    let bad = send(
        &state,
        post_form(
            &path_of(&issued.url),
            &first_admin_form("priya", "not-an-email"),
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.text().contains("not an email address"),
        "{}",
        bad.text()
    );

    let done = send(
        &state,
        post_form(
            &path_of(&issued.url),
            &first_admin_form("priya", "priya@example.com"),
        ),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(
        done.header("location"),
        Some("/o/default/admin?done=welcome")
    );
    let cookie = done
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    assert!(cookie.starts_with(COOKIE));
    let admin = send(&state, get_with_cookie("/o/default/admin", &cookie)).await;
    assert_eq!(admin.status, StatusCode::OK);
    assert!(admin.text().contains("Setup checklist"), "{}", admin.text());

    // Audited as the operator's setup; the file is gone; the link is dead.
    let rows = audit_rows(&state, "default", "setup.first_admin");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, link::ACTOR);
    assert_eq!(
        audit_rows(&state, "default", "user.create")[0].0,
        link::ACTOR
    );
    assert!(!file.exists(), "the link's file is removed once used");
    for req in [
        get(&path_of(&issued.url)),
        post_form(
            &path_of(&issued.url),
            &first_admin_form("mallory", "m@example.com"),
        ),
    ] {
        let again = send(&state, req).await;
        assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.text());
        assert!(again.text().contains("setup link has expired"));
    }
    assert_eq!(count(&state, "default", "SELECT count(*) FROM users"), 1);

    // A start with an admin present makes no link.
    assert!(
        link::at_start(&state.store, &state.settings, clock.now())
            .expect("at start")
            .is_none()
    );
    assert!(!file.exists());
}

#[tokio::test]
async fn setup_link_dies_after_24_hours_and_a_restart_replaces_it() {
    let env = Env::new(&["default"]);
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let first = link::at_start(&state.store, &state.settings, clock.now())
        .expect("at start")
        .expect("link");
    clock.advance(chrono::Duration::hours(23));
    assert_eq!(
        send(&state, get(&path_of(&first.url))).await.status,
        StatusCode::OK
    );
    clock.advance(chrono::Duration::hours(1));
    for req in [
        get(&path_of(&first.url)),
        post_form(
            &path_of(&first.url),
            &first_admin_form("priya", "p@example.com"),
        ),
    ] {
        assert_eq!(send(&state, req).await.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(count(&state, "default", "SELECT count(*) FROM users"), 0);

    // Renewed at the next start while no admin exists; the old one stays dead.
    let second = link::at_start(&state.store, &state.settings, clock.now())
        .expect("at start")
        .expect("a new link");
    assert_ne!(first.url, second.url);
    assert_eq!(
        send(&state, get(&path_of(&first.url))).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&state, get(&path_of(&second.url))).await.status,
        StatusCode::OK
    );
    // An admin made another way (the CLI) kills the link too.
    aiworklab::users::add(
        state.store.org("default").expect("org"),
        &aiworklab::users::AdminCtx::operator(),
        "ops",
        "Ops",
        None,
        true,
        clock.now(),
    )
    .expect("admin");
    assert_eq!(
        send(&state, get(&path_of(&second.url))).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn sign_in_page_names_the_ways_in_only_to_the_servers_own_machine() {
    let mut env = Env::new(&["default"]);
    env.raw.server.trusted_proxies = vec!["10.0.0.5".into()];
    let state = env.state();
    let issued = link::at_start(&state.store, &state.settings, state.clock.now())
        .expect("at start")
        .expect("link");
    let secret = secret_of(&issued.url);

    let local = send(&state, get("/o/default/login")).await;
    let text = local.text();
    assert!(text.contains("not configured"), "{text}");
    assert!(text.contains("help-setup-link"), "{text}");
    assert!(text.contains(&issued.file.display().to_string()), "{text}");
    assert!(
        text.contains("aiworklab admin login-link --org default"),
        "{text}"
    );
    assert!(!text.contains(&secret), "the page reveals the setup secret");

    let proxy: SocketAddr = "10.0.0.5:41000".parse().expect("addr");
    let through_proxy = |xff: &str| {
        Request::get("/o/default/login")
            .header("x-forwarded-for", xff)
            .header("x-forwarded-proto", "https")
            .body(Body::empty())
            .expect("request")
    };
    // A colleague through the trusted proxy; an untrusted proxy on loopback.
    for (peer, req) in [
        (proxy, through_proxy("203.0.113.9")),
        (LOOPBACK, through_proxy("203.0.113.9")),
    ] {
        let remote = send_from(&state, peer, req).await;
        let text = remote.text();
        assert_eq!(remote.status, StatusCode::OK);
        assert!(text.contains("not configured"), "{text}");
        for hidden in [
            "local-help",
            "setup link",
            "login-link",
            "setup-url",
            &secret,
        ] {
            assert!(!text.contains(hidden), "{peer} was told {hidden}: {text}");
        }
    }
}

#[tokio::test]
async fn setup_page_on_a_public_bind_works_only_over_tls_or_from_the_trusted_proxy() {
    let mut env = Env::new(&["default"]);
    env.raw.server.bind = "0.0.0.0:8080".into();
    env.raw.server.public_url = "https://skills.example.com".into();
    env.raw.server.trusted_proxies = vec!["10.0.0.5".into()];
    let state = env.state();
    let issued = link::at_start(&state.store, &state.settings, state.clock.now())
        .expect("at start")
        .expect("link");
    assert!(
        issued
            .url
            .as_str()
            .starts_with("https://skills.example.com/setup/aiwl_setup_")
    );
    let stranger: SocketAddr = "203.0.113.9:5000".parse().expect("addr");
    let direct = send_from(&state, stranger, get(&path_of(&issued.url))).await;
    assert_eq!(direct.status, StatusCode::FORBIDDEN);
    assert!(!direct.text().contains("Set up aiworklab"));
    let proxy: SocketAddr = "10.0.0.5:5000".parse().expect("addr");
    let via = send_from(
        &state,
        proxy,
        Request::get(path_of(&issued.url))
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-forwarded-proto", "https")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(via.status, StatusCode::OK);
    assert!(via.text().contains("Set up aiworklab"));
}

/// `serve` as an operator runs it, logging JSON to a pipe.
struct Served {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Served {
    fn start(dir: &Path, bind: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aiworklab"))
            .current_dir(dir)
            .arg("serve")
            .env_remove("AIWORKLAB_CONFIG")
            .env("AIWORKLAB_SERVER__BIND", bind)
            .env("AIWORKLAB_LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let err = child.stderr.take().expect("stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Log lines up to and including the start-up summary.
    fn until_ready(&self) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no start-up summary; saw {seen:#?}"));
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::String(line));
            let ready = v["message"] == "aiworklab is ready";
            seen.push(v);
            if ready {
                // The setup link, when there is one, comes right after,
                // though a background job's line (the backup schedule's)
                // may come first: read until the log is quiet.
                while let Ok(next) = self.lines.recv_timeout(Duration::from_millis(500)) {
                    seen.push(serde_json::from_str(&next).unwrap_or(Value::String(next)));
                }
                return seen;
            }
        }
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("exits");
        assert!(status.success(), "serve exited with {status}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test]
async fn serve_prints_where_it_is_and_the_setup_link_once_then_none_with_an_admin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bind = format!("127.0.0.1:{}", free_port());
    let served = Served::start(dir.path(), &bind);
    let lines = served.until_ready();
    let summary = lines
        .iter()
        .find(|v| v["message"] == "aiworklab is ready")
        .expect("summary");
    assert_eq!(summary["url"], format!("http://{bind}/"));
    assert_eq!(summary["orgs"], "default (Default organisation)");
    assert_eq!(summary["sso_configured"], false);
    assert!(
        summary["next_step"]
            .as_str()
            .is_some_and(|s| s.contains("setup link")),
        "{summary}"
    );
    let links: Vec<&Value> = lines
        .iter()
        .filter(|v| v.get("setup_url").is_some())
        .collect();
    assert_eq!(links.len(), 1, "the link is printed once: {lines:#?}");
    let url = links[0]["setup_url"].as_str().expect("url").to_string();
    assert!(
        url.starts_with(&format!("http://{bind}/setup/aiwl_setup_")),
        "{url}"
    );
    let file = dir.path().join("data").join(link::FILE_NAME);
    assert_eq!(links[0]["file"], file.display().to_string());
    assert_eq!(
        std::fs::metadata(&file).expect("file").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&file).expect("read").trim(), url);

    // Opening it in Chromium creates the first admin and lands on the checklist.
    let driver = ChromeDriver::start().await;
    let b = driver.session().await;
    chromium_creates_first_admin(&b, &url, "priya", "priya@example.com").await;
    b.wait_for_url("the admin page", |u| {
        u.starts_with(&format!("http://{bind}/o/default/admin"))
    })
    .await;
    chromium_sees_checklist(&b).await;
    chromium_is_refused(&b, &url).await;
    b.close().await;
    assert!(!file.exists(), "the file is removed once the link is used");
    served.stop();

    // A second start, with an admin present: no link anywhere.
    let served = Served::start(dir.path(), &bind);
    let lines = served.until_ready();
    assert!(
        lines.iter().all(|v| v.get("setup_url").is_none()),
        "{lines:#?}"
    );
    let summary = lines
        .iter()
        .find(|v| v["message"] == "aiworklab is ready")
        .expect("summary");
    assert!(
        summary["next_step"]
            .as_str()
            .is_some_and(|s| s.contains("orgs.0.oidc")),
        "{summary}"
    );
    assert!(!file.exists());
    served.stop();
}

/// Browser step: open the setup link, fill in the first admin, submit.
async fn chromium_creates_first_admin(b: &Chromium, url: &str, user: &str, email: &str) {
    b.goto(url).await;
    assert!(b.text("h1").await.contains("Set up aiworklab"));
    b.fill("#setup-user-name", user).await;
    b.fill("#setup-email", email).await;
    b.click("#setup-submit").await;
}

/// Browser step: the admin page shows the checklist with the IdP to do.
async fn chromium_sees_checklist(b: &Chromium) {
    let idp = b.text("#check-idp").await;
    assert!(idp.contains("Identity provider"), "{idp}");
    assert!(idp.contains("orgs.0.oidc.issuer"), "{idp}");
    assert!(idp.contains("/o/default/oidc/callback"), "{idp}");
    assert!(b.text("#setup").await.contains("privacy.min_cohort"));
}

/// Browser step: the used link is refused.
async fn chromium_is_refused(b: &Chromium, url: &str) {
    b.goto(url).await;
    let body = b.body_text().await;
    assert!(body.contains("setup link has expired"), "{body}");
    assert!(b.try_find("#setup-submit").await.is_none());
}

#[tokio::test]
async fn config_check_prints_the_checklist_the_admin_page_shows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("aiworklab.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\n[privacy]\nmin_cohort = 7\n\n[[orgs]]\nslug = \"default\"\nname = \"Lab\"\nprovisioning = \"scim_only\"\n",
            data.display()
        ),
    )
    .expect("config");
    let (settings, _) = aiworklab::config::load(Some(config.as_path())).expect("valid");
    let settings = Arc::new(settings);
    let store = Arc::new(
        aiworklab::store::Store::open(&settings, aiworklab::store::OpenMode::Create, &SystemClock)
            .expect("store"),
    );
    let state = aiworklab::AppState::new(Arc::clone(&settings), store, Arc::new(SystemClock));
    let (cookie, _) = crate::support::signed_in(&state, "default", "root", true);
    let page = send(&state, get_with_cookie("/o/default/admin", &cookie))
        .await
        .text();
    drop(state);

    let out = Command::new(env!("CARGO_BIN_EXE_aiworklab"))
        .args(["--config"])
        .arg(&config)
        .args(["config", "check"])
        .env_remove("AIWORKLAB_CONFIG")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = [
        ("idp", "Identity provider", "to do"),
        ("test_sign_in", "Test sign-in", "to do"),
        ("scim", "SCIM provisioning", "to do"),
        ("backups", "Backups", "to do"),
        ("privacy", "Privacy", "done"),
        ("transport", "TLS or trusted proxy", "to do"),
    ];
    for (id, title, status) in expected {
        assert!(
            text.contains(&format!("[{status}] {title}:")),
            "config check: {title} is not {status}:\n{text}"
        );
        assert!(
            page.contains(&format!("id=\"check-{id}\" data-status=\"{status}\"")),
            "admin page: {id} is not {status}:\n{page}"
        );
    }
    for key in [
        "orgs.0.oidc.client_secret_file",
        "privacy.min_cohort = 7",
        "backup.recipients",
        "server.trusted_proxies",
        "scim_only",
    ] {
        assert!(text.contains(key), "config check lacks {key}:\n{text}");
        assert!(page.contains(key), "admin page lacks {key}");
    }
}

/// An admin of `org` on `site`, signed in within the cookie-keeping client.
fn admin_browser(site: &Site, org: &str) -> Browser {
    let (cookie, _) = crate::support::signed_in(&site.state, org, "root", true);
    let mut b = Browser::new();
    let value = cookie.split_once('=').expect("cookie").1.to_string();
    b.set_cookie(&site.base, COOKIE, &value);
    b
}

#[tokio::test]
async fn test_sign_in_shows_claims_and_verdict_and_signs_nobody_in() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |_| {}).await;
    let mut b = admin_browser(&site, "acme");
    let users = count(&site.state, "acme", "SELECT count(*) FROM users");
    let sessions = count(&site.state, "acme", "SELECT count(*) FROM sessions");

    let start = format!("{}/o/acme/admin/test-sign-in", site.base);
    let callback = b.idp_login(&start, "alice", false).await;
    let report = b.get(&callback).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let body = report.body;
    assert!(body.contains("data-verdict=\"would_sign_in\""), "{body}");
    assert!(body.contains("id=\"claim-groups\""), "{body}");
    assert!(body.contains("aiwl-admins"), "{body}");
    assert!(
        body.contains("admin (through a group in admin_groups"),
        "{body}"
    );
    assert!(body.contains("id=\"claim-amr\""), "{body}");
    assert!(body.contains("a new account alice"), "{body}");
    assert!(
        b.cookie(&site.base, COOKIE).is_some(),
        "the admin's own session is untouched"
    );

    // bob is a member; nothing was created for either.
    let callback = b.idp_login(&start, "bob", false).await;
    let body = b.get(&callback).await.body;
    assert!(body.contains("data-verdict=\"would_sign_in\""), "{body}");
    assert!(body.contains("member (in none of admin_groups"), "{body}");
    assert_eq!(
        count(&site.state, "acme", "SELECT count(*) FROM users"),
        users
    );
    assert_eq!(
        count(&site.state, "acme", "SELECT count(*) FROM sessions"),
        sessions
    );
    assert_eq!(count(&site.state, "acme", "SELECT count(*) FROM groups"), 0);

    // The callback's state works once: a replay is an unknown sign-in.
    let again = b.get(&callback).await;
    assert!(
        again.body.contains("expired or was already used"),
        "{}",
        again.body
    );
    assert!(!again.body.contains("data-verdict"), "{}", again.body);
    let rows = audit_rows(&site.state, "acme", "sso.test_sign_in");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].1.contains("would_sign_in") && rows[0].1.contains("alice"));
    assert!(rows[0].0.starts_with("user:"));

    // The checklist now counts the test as done.
    let admin = b.get(&format!("{}/o/acme/admin", site.base)).await.body;
    assert!(
        admin.contains("id=\"check-test_sign_in\" data-status=\"done\""),
        "{admin}"
    );
    site.stop().await;
}

#[tokio::test]
async fn test_sign_in_reports_a_policy_refusal_and_another_admins_callback_is_refused() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |env| {
        env.raw.orgs[0].require_mfa = true;
    })
    .await;
    let mut b = admin_browser(&site, "acme");
    let start = format!("{}/o/acme/admin/test-sign-in", site.base);
    let callback = b.idp_login(&start, "alice", false).await;
    // Another admin's browser cannot finish it; the attempt spends it.
    let mut other = admin_browser_named(&site, "acme", "root2");
    let stolen = other.get(&callback).await;
    assert!(
        stolen.body.contains("data-verdict=\"failed\""),
        "{}",
        stolen.body
    );
    let body = b.get(&callback).await.body;
    assert!(
        body.contains("expired or was already used"),
        "not spent: {body}"
    );

    let callback = b.idp_login(&start, "alice", false).await;
    let body = b.get(&callback).await.body;
    assert!(body.contains("data-verdict=\"would_be_refused\""), "{body}");
    assert!(body.contains("mfa_required"), "{body}");
    let callback = b.idp_login(&start, "alice", true).await;
    let body = b.get(&callback).await.body;
    assert!(body.contains("data-verdict=\"would_sign_in\""), "{body}");
    site.stop().await;
}

fn admin_browser_named(site: &Site, org: &str, name: &str) -> Browser {
    let (cookie, _) = crate::support::signed_in(&site.state, org, name, true);
    let mut b = Browser::new();
    b.set_cookie(
        &site.base,
        COOKIE,
        cookie.split_once('=').expect("cookie").1,
    );
    b
}

#[tokio::test]
async fn test_sign_in_with_a_wrong_client_secret_shows_the_idps_refusal() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |env| {
        if let Some(o) = env.raw.orgs[0].oidc.as_mut() {
            o.client_secret = "not-the-secret".into();
        }
    })
    .await;
    let mut b = admin_browser(&site, "acme");
    let callback = b
        .idp_login(
            &format!("{}/o/acme/admin/test-sign-in", site.base),
            "alice",
            false,
        )
        .await;
    let page = b.get(&callback).await;
    let body = page.body;
    assert!(body.contains("data-verdict=\"failed\""), "{body}");
    assert!(body.contains("did not accept the sign-in code"), "{body}");
    assert!(body.contains("invalid_client"), "{body}");
    assert!(body.contains("orgs.0.oidc.client_secret_file"), "{body}");
    assert!(!body.contains("not-the-secret"), "the secret is shown");
    let rows = audit_rows(&site.state, "acme", "sso.test_sign_in");
    assert_eq!(rows.len(), 1);
    assert!(rows[0].1.contains("\"failed\""), "{rows:?}");
    site.stop().await;
}
