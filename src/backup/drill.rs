//! The restore drill: restore the latest archive into a throwaway data
//! directory under a throwaway master key, start the appliance on it on an
//! ephemeral loopback port, run a smoke test against every primary path
//! that exists, report, and tear everything down. Capabilities add their
//! smoke checks to `smoke` as they land.
//!
//! The drill holds no HTTP state: the caller passes the function that
//! starts the appliance on the restored parts ([`Start`]; the HTTP edge's
//! `crate::http::server::start_on_loopback`), and the smoke test speaks
//! HTTP with `reqwest` like any client.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audit::Context;
use crate::clock::{Clock, SystemClock};
use crate::config::{self, RawConfig, RawOrg, Settings};
use crate::store::{OpenMode, Store};
use crate::tokens::{self, TokenKind};

use super::archive::Manifest;
use super::restore::{self, Target};
use super::signing::OpenKeys;

/// One step of the drill.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub elapsed: Duration,
}

/// What the drill did and found.
#[derive(Debug, Clone)]
pub struct Report {
    pub archive: PathBuf,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    pub fn render(&self) -> String {
        let mut out = format!("restore drill of {}\n", self.archive.display());
        for c in &self.checks {
            out.push_str(&format!(
                "  {:<4}  {:<28} {:>8.3} s  {}\n",
                if c.ok { "ok" } else { "FAIL" },
                c.name,
                c.elapsed.as_secs_f64(),
                c.detail
            ));
        }
        let failed = self.checks.iter().filter(|c| !c.ok).count();
        if self.ok() {
            out.push_str(&format!("result: PASSED ({} checks)\n", self.checks.len()));
        } else {
            out.push_str(&format!(
                "result: FAILED ({failed} of {} checks)\n",
                self.checks.len()
            ));
        }
        out
    }
}

struct Steps(Vec<Check>);

impl Steps {
    fn record<T>(
        &mut self,
        name: &str,
        started: Instant,
        r: Result<(T, String), String>,
    ) -> Option<T> {
        let elapsed = started.elapsed();
        match r {
            Ok((v, detail)) => {
                self.0.push(Check {
                    name: name.into(),
                    ok: true,
                    detail,
                    elapsed,
                });
                Some(v)
            }
            Err(detail) => {
                self.0.push(Check {
                    name: name.into(),
                    ok: false,
                    detail,
                    elapsed,
                });
                None
            }
        }
    }
}

/// Drains and stops a server the drill started.
pub type Stop = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A server the drill is starting: where it listens and how to stop it.
pub type Starting = Pin<Box<dyn Future<Output = Result<(SocketAddr, Stop), String>> + Send>>;

/// Starts the appliance on the given parts on an ephemeral loopback port
/// and answers where it listens and how to stop it.
pub type Start = fn(Arc<Settings>, Arc<Store>, Arc<dyn Clock>) -> Starting;

/// Runs the drill on `archive`, with its scratch data under `scratch`,
/// serving the restored copy with `start`.
pub async fn run(archive: &Path, keys: OpenKeys, scratch: &Path, start: Start) -> Report {
    let mut steps = Steps(Vec::new());
    let dir = match tempfile::Builder::new()
        .prefix("aiworklab-drill-")
        .tempdir_in(scratch)
    {
        Ok(d) => d,
        Err(e) => {
            steps.record::<()>("scratch directory", Instant::now(), Err(e.to_string()));
            return Report {
                archive: archive.to_path_buf(),
                checks: steps.0,
            };
        }
    };
    let data_dir = dir.path().join("data");
    let t = Instant::now();
    let file = archive.to_path_buf();
    let target = Target {
        data_dir: data_dir.clone(),
        master_key_file: data_dir.join("master.key"),
        only_org: None,
        force: false,
    };
    let restored = tokio::task::spawn_blocking(move || {
        restore::restore(&file, &keys, &target, &Context::system(), SystemClock.now())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| format!("{e}; fix: {}", e.fix())))
    .map(|r| {
        let rows: i64 = r
            .manifest
            .files
            .iter()
            .flat_map(|f| f.contents.rows.values())
            .sum();
        let signed = match &r.signed_by {
            Some(k) => format!("signed by {k}"),
            None => "UNSIGNED (format 2, accepted by the operator)".into(),
        };
        let detail = format!(
            "{} databases, {rows} rows, counts match the manifest, {signed}; made {} on {}",
            r.restored.len(),
            r.manifest.created_at.format("%Y-%m-%d %H:%M UTC"),
            r.manifest.host
        );
        (r.manifest, detail)
    });
    let Some(manifest) = steps.record("restore", t, restored) else {
        return Report {
            archive: archive.to_path_buf(),
            checks: steps.0,
        };
    };
    smoke(&mut steps, &data_dir, &manifest, start).await;
    Report {
        archive: archive.to_path_buf(),
        checks: steps.0,
    }
}

fn drill_settings(data_dir: &Path, manifest: &Manifest) -> Result<config::Settings, String> {
    let mut raw = RawConfig::default();
    raw.storage.data_dir = data_dir.display().to_string();
    raw.server.bind = "127.0.0.1:0".into();
    raw.orgs = manifest
        .files
        .iter()
        .filter_map(super::archive::FileEntry::org)
        .map(|slug| RawOrg {
            name: slug.to_string(),
            slug: slug.to_string(),
            ..RawOrg::default()
        })
        .collect();
    config::from_raw(&raw).map_err(|e| e.to_string())
}

/// The smoke test: every primary path that exists today.
async fn smoke(steps: &mut Steps, data_dir: &Path, manifest: &Manifest, start: Start) {
    let t = Instant::now();
    let opened = drill_settings(data_dir, manifest).and_then(|settings| {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = Store::open(&settings, OpenMode::Create, clock.as_ref())
            .map_err(|e| format!("{e}; fix: {}", e.fix()))?;
        let n = settings.orgs.len();
        Ok((
            (Arc::new(settings), Arc::new(store), clock),
            format!("{n} orgs"),
        ))
    });
    let Some((settings, store, clock)) = steps.record("open restored store", t, opened) else {
        return;
    };
    let t = Instant::now();
    let started = match client() {
        Ok(c) => start(settings, Arc::clone(&store), clock)
            .await
            .map(|(addr, stop)| ((c, addr, stop), format!("listening on {addr}"))),
        Err(e) => Err(e),
    };
    let Some((client, addr, stop)) = steps.record("start server", t, started) else {
        return;
    };
    let http = Http { client, addr };
    let get = |path: &'static str| http.call(http.get(path));
    let t = Instant::now();
    let r = get("/healthz").await.and_then(|a| expect_status(&a, 200));
    steps.record("GET /healthz", t, r);
    let t = Instant::now();
    let r = get("/readyz").await.and_then(|a| {
        expect_status(&a, 200)?;
        Ok(((), "every database open and migrated".into()))
    });
    steps.record("GET /readyz", t, r);
    let t = Instant::now();
    let orgs: Vec<String> = store.orgs().map(|o| o.slug.to_string()).collect();
    let r = get("/metrics").await.and_then(|a| {
        expect_status(&a, 200)?;
        match orgs
            .iter()
            .find(|o| !a.body.contains(&format!("database=\"org:{o}\"")))
        {
            Some(o) => Err(format!("no size reported for org {o}")),
            None => Ok(((), "database sizes reported".into())),
        }
    });
    steps.record("GET /metrics", t, r);
    for org in store.orgs() {
        let slug = org.slug.as_str();
        let t = Instant::now();
        let r = token_round_trip(&store, slug);
        if let Some(scim) = steps.record(&format!("org {slug}: tokens"), t, r) {
            let t = Instant::now();
            let r = scim_list(&http, &scim, manifest, slug).await;
            steps.record(&format!("org {slug}: SCIM list"), t, r);
        }
        let t = Instant::now();
        let r = signed_in_page(&store, &http, slug).await;
        let Some(session) = steps.record(&format!("org {slug}: signed-in page"), t, r) else {
            continue;
        };
        let t = Instant::now();
        let r = aggregates(&http, &session).await;
        steps.record(&format!("org {slug}: aggregates"), t, r);
        let t = Instant::now();
        let r = sync_pull(&store, &http, slug, &session).await;
        steps.record(&format!("org {slug}: sync pull"), t, r);
    }
    let t = Instant::now();
    let r = stop.await.map(|()| ((), "drained and stopped".into()));
    steps.record("stop server", t, r);
}

/// The throwaway admin the drill signed in as.
struct Session {
    cookie: String,
    user_id: String,
}

/// The drill's HTTP client: loopback only, so no proxy; redirects are
/// answers to check, not to follow.
fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The drill's server and the client that talks to it.
struct Http {
    client: reqwest::Client,
    addr: SocketAddr,
}

/// Status, session cookie and body of one answer.
struct Answer {
    status: u16,
    /// The first `Set-Cookie` header, if any.
    set_cookie: Option<String>,
    body: String,
}

impl Http {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("http://{}{path}", self.addr))
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    /// Sends `req` and reads the whole answer.
    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Answer, String> {
        let res = req.send().await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let set_cookie = res
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = res.text().await.map_err(|e| e.to_string())?;
        Ok(Answer {
            status,
            set_cookie,
            body,
        })
    }
}

/// An answer's JSON body, when it has the wanted status.
fn json_answer(a: &Answer, want: u16) -> Result<serde_json::Value, String> {
    expect_status(a, want)?;
    serde_json::from_str(&a.body).map_err(|e| format!("the answer is not JSON: {e}"))
}

/// Lists users over SCIM with the token minted in the restored org; the
/// total is compared with the archive's row count of `users`.
async fn scim_list(
    http: &Http,
    token: &crate::secrets::BearerSecret,
    manifest: &Manifest,
    slug: &str,
) -> Result<((), String), String> {
    let a = http
        .call(
            http.get("/scim/v2/Users?count=1")
                .bearer_auth(token.expose()),
        )
        .await?;
    let body = json_answer(&a, 200)?;
    let total = body["totalResults"]
        .as_i64()
        .ok_or("the SCIM list has no totalResults")?;
    let rows = manifest
        .files
        .iter()
        .find(|f| f.org().is_some_and(|o| o.as_str() == slug))
        .and_then(|f| f.contents.rows.get("users").copied())
        .unwrap_or(0);
    if total > rows {
        return Err(format!(
            "SCIM lists {total} users but the archive holds {rows} user rows"
        ));
    }
    Ok((
        (),
        format!("{total} users listed (the archive holds {rows} user rows, deleted ones included)"),
    ))
}

/// Reads the org aggregates as the drill's admin.
async fn aggregates(http: &Http, session: &Session) -> Result<((), String), String> {
    let a = http
        .call(
            http.get("/api/v1/org/aggregates?weeks=4")
                .header(reqwest::header::COOKIE, &session.cookie),
        )
        .await?;
    let body = json_answer(&a, 200)?;
    let concepts = body["concepts"]
        .as_array()
        .ok_or("the aggregates have no list of concepts")?;
    let shown = concepts.iter().filter(|c| c["suppressed"] == false).count();
    Ok((
        (),
        format!("{} concepts, {shown} above min_cohort", concepts.len()),
    ))
}

/// Pairs a device for the drill's admin with an operator pairing code,
/// then pulls its deltas: exercises the keys derived from the new master
/// key (access tokens) and the sync path.
async fn sync_pull(
    store: &Store,
    http: &Http,
    slug: &str,
    session: &Session,
) -> Result<((), String), String> {
    let org = store.org(slug).map_err(|e| e.to_string())?;
    let (code, _) = crate::devices::create_pairing_code(
        org,
        &session.user_id,
        &Context::operator(),
        SystemClock.now(),
    )
    .map_err(|e| e.to_string())?;
    let body = serde_json::json!({ "code": code.expose(), "device_name": "restore drill" });
    let a = http
        .call(
            http.request(reqwest::Method::POST, "/api/v1/devices/pair")
                .json(&body),
        )
        .await?;
    let grant = json_answer(&a, 200)?;
    let access = grant["access_token"]
        .as_str()
        .ok_or("pairing gave no access_token")?;
    let a = http
        .call(http.get("/api/v1/sync/deltas?since=0").bearer_auth(access))
        .await?;
    let pulled = json_answer(&a, 200)?;
    let n = pulled["deltas"].as_array().map_or(0, Vec::len);
    Ok((
        (),
        format!("a device paired and pulled ({n} deltas of its engineer)"),
    ))
}

/// Signs in through a break-glass link for a throwaway admin and opens the
/// account page: exercises users, sessions, cookies and pages.
async fn signed_in_page(
    store: &Store,
    http: &Http,
    slug: &str,
) -> Result<(Session, String), String> {
    let org = store.org(slug).map_err(|e| e.to_string())?;
    let now = SystemClock.now();
    let op = crate::users::AdminCtx::operator();
    let name = format!("drill-{}", uuid::Uuid::new_v4().simple());
    let user = crate::users::add(org, &op, &name, "Restore drill", None, true, now)
        .map_err(|e| e.to_string())?;
    let link = crate::sso::break_glass::mint(org, &op, &name, now).map_err(|e| e.to_string())?;
    let path = format!("/o/{slug}/break-glass/{}", link.expose());
    let used = http
        .call(
            http.request(reqwest::Method::POST, &path)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(""),
        )
        .await?;
    let cookie = used
        .set_cookie
        .as_deref()
        .and_then(|c| c.split(';').next())
        .ok_or_else(|| {
            format!(
                "the break-glass link answered {} without a session",
                used.status
            )
        })?
        .to_string();
    let page = http
        .call(
            http.get("/account")
                .header(reqwest::header::COOKIE, &cookie),
        )
        .await?;
    if page.status == 200 && page.body.contains(&name) {
        let users = crate::users::list(org).map_err(|e| e.to_string())?.len();
        Ok((
            Session {
                cookie,
                user_id: user.id,
            },
            format!("{users} users; a break-glass session opens the account page"),
        ))
    } else {
        Err(format!("the account page answered {}", page.status))
    }
}

fn expect_status(a: &Answer, want: u16) -> Result<((), String), String> {
    if a.status == want {
        Ok(((), a.status.to_string()))
    } else {
        Err(format!(
            "answered {} (wanted {want}): {}",
            a.status,
            a.body.chars().take(200).collect::<String>()
        ))
    }
}

/// Mints a SCIM token in the restored copy and authenticates with it:
/// exercises writes, the read pool and the key hierarchy of the restored
/// org. The token is used for the SCIM check.
fn token_round_trip(
    store: &Store,
    slug: &str,
) -> Result<(crate::secrets::BearerSecret, String), String> {
    let org = store.org(slug).map_err(|e| e.to_string())?;
    let before = tokens::list(org).map_err(|e| e.to_string())?.len();
    let now = SystemClock.now();
    let (_, secret) = tokens::create(
        org,
        TokenKind::Scim,
        "drill",
        None,
        &crate::users::AdminCtx::operator(),
        now,
    )
    .map_err(|e| e.to_string())?;
    match tokens::authenticate(store, TokenKind::Scim, secret.expose(), now) {
        Ok(Ok((o, _))) if o.slug.as_str() == slug => Ok((
            secret,
            format!("{before} restored tokens; a new one authenticates"),
        )),
        Ok(Ok((o, _))) => Err(format!(
            "the token authenticated for org {} instead",
            o.slug
        )),
        Ok(Err(r)) => Err(format!("the new token was refused: {r:?}")),
        Err(e) => Err(e.to_string()),
    }
}
