//! SCIM at the size of a large enterprise: one org with 100,000 users and
//! 2,000 groups, served by the real binary on loopback.
//!
//! Run: `cargo bench --bench scim` (under `cargo test` it runs with 500
//! users, 20 groups and 100 POSTs as a smoke check). Measured in one run:
//!
//! - `GET /Users?filter=userName eq "…"` over HTTP, beside the same lookup
//!   through `Scim::list_users` in this process (no HTTP) and the baseline:
//!   the same row fetched with one raw SQL query on the same SQLCipher
//!   database. Beside them, per round, the HTTP floor (`GET /healthz`:
//!   the same middleware and client, no database) and the SCIM token check
//!   alone. All are interleaved, name by name, so a busy moment on the
//!   shared machine falls on all of them alike;
//! - a full listing of every user, `count=100` per page, over HTTP and then
//!   through `Scim::list_users`;
//! - 10,000 sequential `POST /Users` on a fresh org;
//! - the server's peak RSS (`VmHWM`).
//!
//! Users and groups are seeded straight through the store's functions in
//! batches, not over HTTP.

use std::path::Path;
use std::time::Instant;

use aiworklab::audit::Context;
use aiworklab::clock::{Clock, SystemClock, to_millis};
use aiworklab::config::Settings;
use aiworklab::scim::filter;
use aiworklab::scim::list::Page;
use aiworklab::scim::service::Scim;
use aiworklab::store::scim::{self as scim_sql, GroupRow};
use aiworklab::store::users::{self as user_sql, UserRow};
use aiworklab::store::{OpenMode, Store, StoreError};
use aiworklab::tokens::{self, TokenKind};
use aiworklab::users::AdminCtx;
use serde_json::{Value, json};

mod common;
use common::{Rng, Server, peak_rss_mib, quantile};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

struct Sizes {
    users: usize,
    groups: usize,
    lookups: usize,
    posts: usize,
}

/// The user name of seeded user `i`.
fn user_name(i: usize) -> String {
    format!("person.{i:06}@acme.example")
}

/// Seeds `org` with users and groups, 1,000 rows per transaction; each
/// user is in one group.
fn seed(store: &Store, org: &str, sizes: &Sizes) {
    let db = &store.org(org).expect("org").db;
    let start = to_millis(SystemClock.now());
    for batch in (0..sizes.users).collect::<Vec<_>>().chunks(1000) {
        db.write(|tx| {
            for &i in batch {
                let ms = start + i64::try_from(i).expect("small");
                let row = UserRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    oidc_issuer: None,
                    oidc_subject: None,
                    user_name: user_name(i),
                    display_name: format!("Person {i}"),
                    emails: json!([{ "value": user_name(i), "type": "work", "primary": true }])
                        .to_string(),
                    external_id: Some(format!("00u{i:08}")),
                    active: true,
                    admin_granted: false,
                    provisioned_by: "scim".into(),
                    created_at: ms,
                    updated_at: ms,
                };
                user_sql::insert(tx, &row)?;
                let attrs = json!({
                    "name": { "givenName": "Person", "familyName": format!("{i}") },
                    ENTERPRISE: { "department": format!("Dept {}", i % 40), "employeeNumber": format!("{i}") },
                });
                scim_sql::set_user_scim(tx, &row.id, 1, &attrs.to_string())?;
            }
            Ok::<_, StoreError>(())
        })
        .expect("seed users");
    }
    let ids: Vec<String> = db
        .read(|c| Ok::<_, StoreError>(scim_sql::users(c)?.into_iter().map(|r| r.user.id).collect()))
        .expect("ids");
    let per_group = ids.len().div_ceil(sizes.groups.max(1));
    db.write(|tx| {
        for (g, members) in ids.chunks(per_group.max(1)).enumerate() {
            let row = GroupRow {
                id: uuid::Uuid::new_v4().to_string(),
                display_name: format!("Team {g:04}"),
                external_id: Some(format!("00g{g:08}")),
                created_at: start,
                updated_at: start,
                version: 1,
            };
            scim_sql::insert_group(tx, &row)?;
            scim_sql::set_members(tx, &row.id, members)?;
        }
        Ok::<_, StoreError>(())
    })
    .expect("seed groups");
}

/// A SCIM token for `org`.
fn token(store: &Store, org: &str) -> String {
    let (_, secret) = tokens::create(
        store.org(org).expect("org"),
        TokenKind::Scim,
        "bench",
        None,
        &AdminCtx::operator(),
        SystemClock.now(),
    )
    .expect("token");
    secret.expose().to_string()
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The same lookup as `GET /Users?filter=userName eq "…"`, as one raw SQL
/// query reading every column the SCIM path reads.
const RAW_LOOKUP: &str = "SELECT id, oidc_issuer, oidc_subject, user_name, display_name, emails,
     external_id, active, admin_granted, provisioned_by, created_at, updated_at, scim_version,
     scim_attrs FROM users WHERE deleted_at IS NULL AND user_name = ?1 COLLATE NOCASE";

type RawRow = (
    String,
    String,
    String,
    Option<String>,
    bool,
    i64,
    i64,
    String,
);

fn raw_lookup(store: &Store, name: &str) -> RawRow {
    store
        .org("bench")
        .expect("org")
        .db
        .read(|c| {
            c.prepare_cached(RAW_LOOKUP)?
                .query_row([name], |r| {
                    let _: (Option<String>, Option<String>, bool, String) =
                        (r.get(1)?, r.get(2)?, r.get(8)?, r.get(9)?);
                    let _: i64 = r.get(12)?;
                    Ok((
                        r.get(0)?,
                        r.get(3)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(10)?,
                        r.get(11)?,
                        r.get(13)?,
                    ))
                })
                .map_err(StoreError::from)
        })
        .expect("raw lookup")
}

/// The leanest HTTP/1.1 client: one keep-alive connection, a request
/// written as bytes, the answer read up to its `content-length`. Beside
/// `reqwest` it shows how much of a round trip is the client's own work
/// rather than the appliance's.
struct RawClient {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    async fn connect(bind: &str) -> Self {
        let stream = tokio::net::TcpStream::connect(bind).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Sends a GET of `target` (path and query, already encoded) and
    /// returns the status and the body.
    async fn get(&mut self, target: &str, bearer: Option<&str>) -> (u16, Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let auth = bearer.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        let request = format!("GET {target} HTTP/1.1\r\nhost: bench\r\n{auth}\r\n");
        self.stream
            .write_all(request.as_bytes())
            .await
            .expect("write");
        self.buf.clear();
        let (head_end, length) = loop {
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .expect("a content-length");
                break (end + 4, length);
            }
        };
        while self.buf.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let status = std::str::from_utf8(&self.buf[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        (status, self.buf[head_end..head_end + length].to_vec())
    }
}

/// Settings serving the bench's two orgs, with the budgets the bench would
/// otherwise be paced by raised.
fn settings(dir: &Path, bind: &str) -> (Settings, std::path::PathBuf) {
    common::settings(dir, bind, &["bench", "fresh"], |raw| {
        // The goal is 10,000 POSTs in under 30 s from one address; the
        // default SCIM budget (6,000 a minute) would pace them instead.
        raw.rate_limits.scim = common::UNPACED;
        // The HTTP floor below calls /healthz, in the general budget.
        raw.rate_limits.general = common::UNPACED;
    })
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, as a quick check that the bench still works.
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            users: 100_000,
            groups: 2_000,
            lookups: 2_000,
            posts: 10_000,
        }
    } else {
        Sizes {
            users: 500,
            groups: 20,
            lookups: 100,
            posts: 100,
        }
    };
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("tempdir");
    let bind = common::loopback_bind();
    let (settings, config_file) = settings(dir.path(), &bind);

    eprintln!(
        "seeding {} users and {} groups ...",
        sizes.users, sizes.groups
    );
    let t = Instant::now();
    let (bench_token, fresh_token) = {
        let store = Store::open(&settings, OpenMode::Create, &SystemClock).expect("store");
        seed(&store, "bench", &sizes);
        (token(&store, "bench"), token(&store, "fresh"))
    };
    eprintln!("seeded in {:.1} s", t.elapsed().as_secs_f64());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(
        &settings,
        &config_file,
        &bind,
        &sizes,
        &bench_token,
        &fresh_token,
    ));
}

async fn run(
    settings: &Settings,
    config_file: &Path,
    bind: &str,
    sizes: &Sizes,
    bench_token: &str,
    fresh_token: &str,
) {
    let server = Server::start(config_file, bind).await;
    let pid = server.child.id();
    let client = reqwest::Client::new();
    // The bench's own handle on the same files, as operator commands open
    // them beside a running server.
    let store = Store::open(settings, OpenMode::Existing, &SystemClock).expect("store");
    let scim = Scim {
        org: store.org("bench").expect("org"),
        audit: Context::system(),
        base: format!("{}/scim/v2", server.base),
    };

    // (a) userName eq: raw SQL, the service function, HTTP; interleaved.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut raw, mut service, mut http, mut floor, mut auth) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut lean_http, mut lean_floor) = (Vec::new(), Vec::new());
    let mut lean = RawClient::connect(bind).await;
    for round in 0..sizes.lookups + sizes.lookups / 10 {
        let name = user_name(rng.below(sizes.users));
        let warm_up = round < sizes.lookups / 10;

        let t = Instant::now();
        let row = raw_lookup(&store, &name);
        let raw_time = t.elapsed();
        assert_eq!(row.1, name);

        let t = Instant::now();
        let f = filter::parse(&format!("userName eq {}", json!(name))).expect("filter");
        let listing = scim
            .list_users(
                Some(&f),
                None,
                Page {
                    start: 1,
                    count: 100,
                },
            )
            .expect("list");
        let body =
            json!({ "totalResults": listing.total, "Resources": listing.resources }).to_string();
        let service_time = t.elapsed();
        assert_eq!(listing.total, 1);
        assert!(body.contains(&row.0));

        let t = Instant::now();
        let r = client
            .get(format!("{}/scim/v2/Users", server.base))
            .query(&[("filter", format!("userName eq {}", json!(name)))])
            .bearer_auth(bench_token)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("JSON");
        let http_time = t.elapsed();
        assert_eq!(body["totalResults"], 1);
        assert_eq!(body["Resources"][0]["userName"], json!(name));

        let t = Instant::now();
        let authenticated =
            tokens::authenticate(&store, TokenKind::Scim, bench_token, SystemClock.now())
                .expect("token check");
        let auth_time = t.elapsed();
        assert!(authenticated.is_ok());

        // The HTTP floor: the smallest JSON answer through every layer.
        let t = Instant::now();
        let r = client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .expect("GET /healthz");
        assert_eq!(r.status(), 200);
        let _: Value = r.json().await.expect("JSON");
        let floor_time = t.elapsed();

        // The same lookup and floor through the lean client.
        let target = format!(
            "/scim/v2/Users?filter={}",
            url_encode(&format!("userName eq {}", json!(name)))
        );
        let t = Instant::now();
        let (status, body) = lean.get(&target, Some(bench_token)).await;
        let lean_http_time = t.elapsed();
        assert_eq!(status, 200);
        let body: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["Resources"][0]["userName"], json!(name));
        let t = Instant::now();
        let (status, _) = lean.get("/healthz", None).await;
        let lean_floor_time = t.elapsed();
        assert_eq!(status, 200);

        if !warm_up {
            lean_http.push(lean_http_time);
            lean_floor.push(lean_floor_time);
            floor.push(floor_time);
            auth.push(auth_time);
            raw.push(raw_time);
            service.push(service_time);
            http.push(http_time);
        }
    }
    let raw_p50 = quantile(&mut raw, 0.50);
    let raw_p95 = quantile(&mut raw, 0.95);
    let service_p50 = quantile(&mut service, 0.50);
    let service_p95 = quantile(&mut service, 0.95);
    let http_p50 = quantile(&mut http, 0.50);
    let http_p95 = quantile(&mut http, 0.95);
    let floor_p50 = quantile(&mut floor, 0.50);
    let floor_p95 = quantile(&mut floor, 0.95);
    let auth_p50 = quantile(&mut auth, 0.50);
    let auth_p95 = quantile(&mut auth, 0.95);
    let lean_http_p50 = quantile(&mut lean_http, 0.50);
    let lean_http_p95 = quantile(&mut lean_http, 0.95);
    let lean_floor_p50 = quantile(&mut lean_floor, 0.50);
    let lean_floor_p95 = quantile(&mut lean_floor, 0.95);

    // (b) Every user, 100 per page.
    let t = Instant::now();
    let mut pages = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut start = 1;
    loop {
        let p = Instant::now();
        let r = client
            .get(format!("{}/scim/v2/Users", server.base))
            .query(&[("startIndex", start), ("count", 100)])
            .bearer_auth(bench_token)
            .send()
            .await
            .expect("GET page");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("JSON");
        pages.push(p.elapsed());
        let items = body["Resources"].as_array().expect("Resources");
        assert_eq!(body["totalResults"], sizes.users);
        for u in items {
            assert!(seen.insert(u["id"].as_str().expect("id").to_string()));
        }
        start += 100;
        if items.len() < 100 || start > sizes.users {
            break;
        }
    }
    let listing_time = t.elapsed();
    assert_eq!(
        seen.len(),
        sizes.users,
        "the listing returned every user once"
    );
    let page_count = pages.len();
    let page_p50 = quantile(&mut pages, 0.50);
    let page_p95 = quantile(&mut pages, 0.95);

    // The same listing through the service function, without HTTP.
    let t = Instant::now();
    let mut service_pages = Vec::new();
    let mut listed = 0;
    for start in (1..=sizes.users).step_by(100) {
        let p = Instant::now();
        let listing = scim
            .list_users(None, None, Page { start, count: 100 })
            .expect("page");
        let body =
            json!({ "totalResults": listing.total, "Resources": listing.resources }).to_string();
        service_pages.push(p.elapsed());
        assert!(!body.is_empty());
        listed += listing.resources.len();
    }
    let service_listing_time = t.elapsed();
    assert_eq!(listed, sizes.users);
    let service_page_p95 = quantile(&mut service_pages, 0.95);

    // (c) Sequential POSTs on a fresh org.
    let t = Instant::now();
    let mut posts = Vec::new();
    for i in 0..sizes.posts {
        let p = Instant::now();
        let name = format!("new.{i:05}@acme.example");
        let r = client
            .post(format!("{}/scim/v2/Users", server.base))
            .bearer_auth(fresh_token)
            .header("content-type", "application/scim+json")
            .body(
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                    "userName": name,
                    "name": { "givenName": "New", "familyName": format!("{i}") },
                    "emails": [{ "primary": true, "value": name, "type": "work" }],
                    "displayName": format!("New {i}"),
                    "externalId": format!("00n{i:08}"),
                    "active": true,
                    ENTERPRISE: { "department": "Engineering" },
                })
                .to_string(),
            )
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), 201);
        r.bytes().await.expect("body");
        posts.push(p.elapsed());
    }
    let post_time = t.elapsed();
    let post_p95 = quantile(&mut posts, 0.95);
    let rss = peak_rss_mib(pid);

    println!("| measure | figure |");
    println!("|---|---|");
    println!(
        "| seeded | {} users, {} groups in org `bench` |",
        sizes.users, sizes.groups
    );
    println!(
        "| raw SQL lookup by userName (baseline) | p50 {raw_p50:.3} ms, p95 {raw_p95:.3} ms |"
    );
    println!(
        "| `Scim::list_users` (no HTTP) | p50 {service_p50:.3} ms, p95 {service_p95:.3} ms ({:.1}x raw at p95) |",
        service_p95 / raw_p95
    );
    println!(
        "| `GET /Users?filter=userName eq` over HTTP | p50 {http_p50:.3} ms, p95 {http_p95:.3} ms ({:.1}x raw at p95) |",
        http_p95 / raw_p95
    );
    println!("| HTTP floor: `GET /healthz` | p50 {floor_p50:.3} ms, p95 {floor_p95:.3} ms |");
    println!(
        "| the lookup over HTTP, lean client | p50 {lean_http_p50:.3} ms, p95 {lean_http_p95:.3} ms ({:.1}x raw at p95) |",
        lean_http_p95 / raw_p95
    );
    println!(
        "| HTTP floor, lean client | p50 {lean_floor_p50:.3} ms, p95 {lean_floor_p95:.3} ms ({:.1}x raw at p95) |",
        lean_floor_p95 / raw_p95
    );
    println!(
        "| SCIM token check, `tokens::authenticate` (no HTTP) | p50 {auth_p50:.3} ms, p95 {auth_p95:.3} ms |"
    );
    println!(
        "| full listing, `count=100` | {page_count} pages in {:.2} s; per page p50 {page_p50:.1} ms, p95 {page_p95:.1} ms |",
        listing_time.as_secs_f64()
    );
    println!(
        "| the same listing through `Scim::list_users` (no HTTP) | {:.2} s; per page p95 {service_page_p95:.1} ms |",
        service_listing_time.as_secs_f64()
    );
    println!(
        "| {} sequential `POST /Users` | {:.2} s ({:.0}/s); p95 {post_p95:.2} ms |",
        sizes.posts,
        post_time.as_secs_f64(),
        sizes.posts as f64 / post_time.as_secs_f64()
    );
    println!("| server peak RSS (VmHWM) | {rss:.0} MiB |");
    drop(server);
}
