//! Shared test helpers: temporary installations, requests without a socket,
//! real servers on loopback, certificates.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aiworklab::clock::{Clock, ManualClock, SystemClock};
use aiworklab::config::{self, RawConfig, RawOrg, Settings};
use aiworklab::store::{OpenMode, Store};
use aiworklab::{AppState, app};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A temporary installation: its directory, configuration and store.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub raw: RawConfig,
}

impl Env {
    /// A fresh installation with these orgs, data in `<tmp>/data`.
    pub fn new(orgs: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut raw = RawConfig::default();
        raw.storage.data_dir = dir.path().join("data").display().to_string();
        raw.orgs = orgs
            .iter()
            .map(|s| RawOrg {
                slug: (*s).into(),
                name: format!("Org {s}"),
                ..RawOrg::default()
            })
            .collect();
        Self { dir, raw }
    }

    pub fn settings(&self) -> Settings {
        config::from_raw(&self.raw).expect("test configuration is valid")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Opens (creating on first use) the store.
    pub fn store(&self) -> Store {
        Store::open(&self.settings(), OpenMode::Create, &SystemClock).expect("store opens")
    }

    pub fn state(&self) -> AppState {
        self.state_with_clock(Arc::new(SystemClock))
    }

    pub fn state_with_clock(&self, clock: Arc<dyn Clock>) -> AppState {
        AppState::new(Arc::new(self.settings()), Arc::new(self.store()), clock)
    }
}

/// A manual clock at a fixed, readable instant.
pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0)
            .single()
            .expect("valid instant"),
    ))
}

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `req` to the application without a socket, as if from `peer`.
pub async fn send_from(state: &AppState, peer: SocketAddr, mut req: Request<Body>) -> Answer {
    // What the server's connection layer inserts for every request.
    req.extensions_mut().insert(ConnectInfo(peer));
    let res = app(state.clone())
        .oneshot(req)
        .await
        .expect("the router is infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res
        .into_body()
        .collect()
        .await
        .expect("body reads")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

pub const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

/// Sends `req` from a loopback peer.
pub async fn send(state: &AppState, req: Request<Body>) -> Answer {
    send_from(state, LOOPBACK, req).await
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

/// A GET carrying a session cookie (as [`signed_in`] gives it).
pub fn get_with_cookie(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri)
        .header("cookie", cookie)
        .body(Body::empty())
        .expect("request")
}

/// Every file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The kernel's local store in `home`, opened with its key file (the
/// kernel's own `deltas` table must be there, so a wrong key fails here).
pub fn kernel_store(home: &aiworklab::agent::home::Home) -> rusqlite::Connection {
    let key = std::fs::read_to_string(home.key_path()).expect("key file");
    let conn = rusqlite::Connection::open(home.store_path()).expect("open");
    conn.pragma_update(None, "key", format!("x'{}'", key.trim()))
        .expect("key");
    let tables = table_names(&conn);
    assert!(tables.iter().any(|t| t == "deltas"), "{tables:?}");
    conn
}

fn table_names(conn: &rusqlite::Connection) -> Vec<String> {
    conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names")
}

/// Every value of every table reached through `conn`, one per line: text
/// and blobs as their bytes, other values in their debug form.
pub fn table_values(conn: &rusqlite::Connection) -> Vec<u8> {
    let mut all = Vec::new();
    for t in table_names(conn) {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{t}\""))
            .expect("select");
        let n = stmt.column_count();
        let mut rows = stmt.query([]).expect("rows");
        while let Some(row) = rows.next().expect("row") {
            for i in 0..n {
                match row.get::<_, rusqlite::types::Value>(i).expect("value") {
                    rusqlite::types::Value::Text(s) => all.extend_from_slice(s.as_bytes()),
                    rusqlite::types::Value::Blob(b) => all.extend_from_slice(&b),
                    other => all.extend_from_slice(format!("{other:?}").as_bytes()),
                }
                all.push(b'\n');
            }
        }
    }
    all
}

/// A private CA and a server certificate for localhost/127.0.0.1 that it
/// signed, written as PEM files (key 0600). Returns (cert, key, ca_der).
pub fn tls_files(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server.key");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    (cert_path, key_path, ca.der().to_vec())
}

/// A new user of `org` with a live session: (session cookie header value,
/// user id). Made directly in the store; sign-in itself is tested in sso.rs.
pub fn signed_in(state: &AppState, org: &str, name: &str, admin: bool) -> (String, String) {
    use aiworklab::audit::Context;
    use aiworklab::users::{self, AdminCtx};
    let db = state.store.org(org).expect("org");
    let now = state.clock.now();
    let u = users::add(db, &AdminCtx::operator(), name, name, None, admin, now).expect("user");
    let s =
        aiworklab::sessions::create(db, &u.id, now, &[], &Context::system(), now).expect("session");
    (format!("__Host-aiwl_session={}", s.expose()), u.id)
}

/// The CSRF token of the session in `cookie` (as [`signed_in`] returns
/// it), which JSON calls with the cookie send in `x-csrf-token`.
pub fn csrf_of(state: &AppState, cookie: &str) -> String {
    let value = cookie.split_once('=').map_or(cookie, |(_, v)| v);
    let now = state.clock.now();
    aiworklab::sessions::authenticate(&state.store, value, &state.settings.sso, now)
        .expect("store")
        .expect("a live session")
        .session
        .csrf
}

/// `r` with the session's CSRF token in `x-csrf-token`.
pub fn with_csrf(state: &AppState, mut r: Request<Body>, cookie: &str) -> Request<Body> {
    let token = csrf_of(state, cookie);
    r.headers_mut()
        .insert("x-csrf-token", token.parse().expect("header value"));
    r
}

/// The org's most recent audit rows (up to 200), newest first, whole.
pub fn audit_rows(state: &AppState, org: &str) -> Vec<aiworklab::store::audit::AuditRow> {
    state
        .store
        .org(org)
        .expect("org")
        .db
        .read(|c| {
            aiworklab::store::audit::recent(c, 200).map_err(aiworklab::store::StoreError::from)
        })
        .expect("audit")
}

/// Runs the real binary in `dir` with `--config aiworklab.toml` and `args`,
/// with no `AIWORKLAB_*` variable of the test's environment.
pub fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_aiworklab"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AIWORKLAB_") {
            c.env_remove(k);
        }
    }
    c.current_dir(dir)
        .arg("--config")
        .arg("aiworklab.toml")
        .args(args)
        .output()
        .expect("the binary runs")
}

/// What this thread logs, as JSON lines at debug level, while the guard
/// [`Logs::capture`] returns is held.
#[derive(Clone, Default)]
pub struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Logs {
    /// Starts capturing; keep both returned guards alive meanwhile.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard, tracing::Dispatch) {
        use aiworklab::config::{LogFormat, LogSettings};
        let logs = Self::default();
        let settings = LogSettings {
            format: LogFormat::Json,
            level: "debug".into(),
        };
        // tracing caches each callsite's interest for the whole process. While
        // only one dispatcher is registered, that interest comes from the
        // default subscriber of whichever thread reaches the callsite first:
        // a sibling test's thread, which has none, would cache `never` and
        // this test would capture nothing. A second registered dispatcher
        // makes tracing ask every registered one instead.
        let anchor =
            tracing::Dispatch::new(aiworklab::logging::subscriber(&settings, std::io::sink));
        let guard = tracing::subscriber::set_default(aiworklab::logging::subscriber(
            &settings,
            logs.clone(),
        ));
        (logs, guard, anchor)
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}
