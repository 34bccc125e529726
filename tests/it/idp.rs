//! The real OpenID Provider (`tests/idp/server.mjs`, oidc-provider) as a
//! child process, and a small cookie-keeping client that walks redirects
//! the way a browser does, filling the IdP's login form like a person.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use aiworklab::clock::Clock;
use aiworklab::config::RawOidc;
use aiworklab::http::server;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::support::Env;

pub const PASSWORD: &str = "correct horse";

/// A running test IdP.
pub struct Idp {
    child: Child,
    pub issuer: String,
    _dir: tempfile::TempDir,
}

impl Idp {
    /// Starts the IdP with one confidential client per `(client_id, redirect_uri)`.
    pub fn start(clients: &[(String, String)]) -> Self {
        let root = env!("CARGO_MANIFEST_DIR");
        assert!(
            std::path::Path::new(&format!("{root}/tests/idp/node_modules/oidc-provider")).exists(),
            "the test IdP is not installed: run ./tests/run (or `npm ci` in tests/idp)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("idp.json");
        let clients: Vec<_> = clients
            .iter()
            .map(|(id, uri)| json!({ "client_id": id, "client_secret": format!("secret-{id}"), "redirect_uris": [uri] }))
            .collect();
        std::fs::write(
            &config,
            json!({ "port": 0, "clients": clients }).to_string(),
        )
        .expect("config");
        let mut child = Command::new("node")
            .arg(format!("{root}/tests/idp/server.mjs"))
            .arg("--config")
            .arg(&config)
            .args(["--exit-with-stdin", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs the test IdP");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("readiness line");
        let ready: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("IdP said {line:?}: {e}"));
        let issuer = ready["issuer"].as_str().expect("issuer").to_string();
        Self {
            child,
            issuer,
            _dir: dir,
        }
    }

    pub fn oidc(&self, client_id: &str) -> RawOidc {
        RawOidc {
            issuer: self.issuer.clone(),
            client_id: client_id.into(),
            client_secret: format!("secret-{client_id}"),
            scopes: vec![
                "openid".into(),
                "profile".into(),
                "email".into(),
                "groups".into(),
            ],
            ..RawOidc::default()
        }
    }

    pub async fn rotate_keys(&self) {
        let r = reqwest::Client::new()
            .post(format!("{}/__test/rotate-keys", self.issuer))
            .send()
            .await
            .expect("rotate");
        assert!(r.status().is_success());
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An appliance with SSO against a running IdP, served on loopback.
pub struct Site {
    /// Keeps the data directory alive while the site runs.
    _env: Env,
    pub idp: Idp,
    pub base: String,
    pub state: aiworklab::AppState,
    running: Option<server::Running>,
}

impl Site {
    /// Orgs `slugs`, each with its own client at the IdP; `tweak` adjusts
    /// the raw configuration before start.
    pub async fn start(
        slugs: &[&str],
        clock: Arc<dyn Clock>,
        tweak: impl FnOnce(&mut Env),
    ) -> Self {
        let listener = server::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let clients: Vec<(String, String)> = slugs
            .iter()
            .map(|s| (format!("aiwl-{s}"), format!("{base}/o/{s}/oidc/callback")))
            .collect();
        let idp = Idp::start(&clients);
        let mut env = Env::new(slugs);
        env.raw.server.public_url = base.clone();
        for (i, s) in slugs.iter().enumerate() {
            env.raw.orgs[i].oidc = Some(idp.oidc(&format!("aiwl-{s}")));
            env.raw.orgs[i].admin_groups = vec!["aiwl-admins".into()];
        }
        env.raw.rate_limits.sign_in.requests = 1000;
        tweak(&mut env);
        let state = env.state_with_clock(clock);
        let running = server::start(state.clone(), listener)
            .await
            .expect("server starts");
        Self {
            _env: env,
            idp,
            base,
            state,
            running: Some(running),
        }
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("shutdown");
        }
    }
}

/// A client that keeps cookies per host (ignoring paths, which is enough
/// for one sign-in at a time) and follows redirects by hand.
pub struct Browser {
    http: reqwest::Client,
    jars: HashMap<String, HashMap<String, String>>,
    pub user_agent: &'static str,
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub url: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<String> {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }
}

fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or(""),
                u.port_or_known_default().unwrap_or(0)
            )
        })
        .unwrap_or_default()
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            jars: HashMap::new(),
            user_agent: "it-browser/1.0",
        }
    }

    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        self.jars
            .get(&host_of(url))
            .and_then(|j| j.get(name))
            .cloned()
    }

    pub fn set_cookie(&mut self, url: &str, name: &str, value: &str) {
        self.jars
            .entry(host_of(url))
            .or_default()
            .insert(name.into(), value.into());
    }

    fn absorb(&mut self, url: &str, page: &Page) {
        for sc in page.set_cookies() {
            let first = sc.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let jar = self.jars.entry(host_of(url)).or_default();
            if value.is_empty()
                || sc.to_ascii_lowercase().contains("max-age=0")
                || sc.contains("1970")
            {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_string(), value.to_string());
            }
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, url: &str) -> Page {
        let cookies = self
            .jars
            .get(&host_of(url))
            .map(|j| {
                j.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        let mut req = req.header("user-agent", self.user_agent);
        if !cookies.is_empty() {
            req = req.header(COOKIE, cookies);
        }
        let res = req.send().await.expect("request");
        let page = Page {
            status: res.status(),
            url: url.to_string(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap_or_default(),
        };
        self.absorb(url, &page);
        page
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let r = self.http.get(url);
        self.send(r, url).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let r = self.http.post(url).form(form);
        self.send(r, url).await
    }

    /// Starts sign-in at `start_url` on the appliance, logs in at the IdP
    /// as `login`, and stops at the appliance's callback redirect (not
    /// followed), returning the callback URL the IdP sent us to.
    pub async fn idp_login(&mut self, start_url: &str, login: &str, mfa: bool) -> String {
        let start = self.get(start_url).await;
        assert_eq!(start.status, StatusCode::SEE_OTHER, "start: {}", start.body);
        let auth = start.location().expect("to the IdP");
        let mut page = self.get(&auth).await;
        // Follow to the login form (or straight back, with an IdP session).
        for _ in 0..5 {
            if page.status == StatusCode::OK {
                break;
            }
            let loc = page.location().expect("redirect");
            let next = reqwest::Url::parse(&page.url)
                .and_then(|u| u.join(&loc))
                .expect("url")
                .to_string();
            if next.contains("/oidc/callback") {
                return next;
            }
            page = self.get(&next).await;
        }
        assert!(
            page.body.contains("name=\"login\""),
            "not the login form: {}",
            page.body
        );
        let action = page
            .body
            .split("action=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("form action")
            .replace("&amp;", "&");
        let action = reqwest::Url::parse(&page.url)
            .and_then(|u| u.join(&action))
            .expect("action")
            .to_string();
        let mut form = vec![("login", login), ("password", PASSWORD)];
        if mfa {
            form.push(("mfa", "1"));
        }
        let mut page = self.post(&action, &form).await;
        for _ in 0..5 {
            let loc = page
                .location()
                .unwrap_or_else(|| panic!("login did not redirect: {} {}", page.status, page.body));
            let next = reqwest::Url::parse(&page.url)
                .and_then(|u| u.join(&loc))
                .expect("url")
                .to_string();
            if next.contains("/oidc/callback") {
                return next;
            }
            page = self.get(&next).await;
        }
        panic!("the IdP never redirected back");
    }

    /// The whole sign-in; returns the page the callback redirected to.
    pub async fn sign_in(&mut self, site: &Site, org: &str, login: &str, mfa: bool) -> Page {
        let callback = self
            .idp_login(&format!("{}/o/{org}/login/start", site.base), login, mfa)
            .await;
        self.get(&callback).await
    }
}
