//! The dashboard and admin pages at the size issue 18 names: an org of
//! 10,000 engineers with ~1,000 deltas each (10 million deltas, every
//! derived table as ingest makes it), 100,000 members in all and tens of
//! thousands of audit rows, served by the real binary (`aiworklab serve`)
//! over plain HTTP on loopback.
//!
//! Run: `cargo bench --bench pages` (under `cargo test` it runs with tiny
//! sizes seeded from scratch as a smoke check). With `BENCH_DIR` set, the
//! org is the sync bench's `$BENCH_DIR/sync-org-10000x1000` (seeded by
//! `cargo bench --bench sync`), copied once to
//! `$BENCH_DIR/pages-org-10000x1000-100000` (the sync bench's own copy is
//! never written) and completed there: the other 90,000 members (in groups
//! of 1,000, named `Unit <nnn>`, as the members bench seeds them), the
//! audit rows and twenty org concepts; its `seeded` marker says that is
//! done. Without the sync bench's org it is seeded from scratch.
//!
//! Each run forgets the org's privacy releases (as the sync bench does),
//! so its first round reads them as the first reader of a week does
//! (reported apart), makes fresh sessions for an admin, a viewer and one
//! engineer through the library's session functions, and times every page
//! as the role that sees it, round by round (each round requests every
//! page once, starting at a different page), beside `/healthz` as the
//! baseline over the same connection. A page counts only when it answers
//! 200 and contains its own heading or marker.
//!
//! Two times per request: the client's (send to last byte over loopback,
//! an upper bound on the server's) and the server's own, the `latency_ms`
//! its request log gives for the request id the bench sent (from the
//! request reaching the router to the response, page rendered).
//!
//! Sizes: `BENCH_ROUNDS` (measured rounds, default 200), `BENCH_AUDIT_ROWS`
//! (audit rows seeded, default 50,000).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aiworklab::audit::Context;
use aiworklab::catalogue::custom;
use aiworklab::clock::{Clock, SystemClock, from_millis, to_millis};
use aiworklab::config::Settings;
use aiworklab::skill::{Catalogue, Concept};
use aiworklab::store::users as user_sql;
use aiworklab::store::{OpenMode, OrgDb, Store, StoreError};
use aiworklab::users::{self as people, AdminCtx};
use serde_json::{Value, json};

#[allow(dead_code)] // the helpers other benches share; this one needs most
mod common;
#[allow(dead_code)] // Ids::V4 is the sync bench's
#[path = "common/org.rs"]
mod org;
#[path = "common/users.rs"]
mod users;
use common::{Rng, Server, peak_rss_mib, quantile};
use org::{Ids, OrgSize, seed_org};

const ORG: &str = "acme";
const DAY_MS: i64 = 86_400_000;
/// The goal for every page's server p95 (issue 18), in ms.
const PAGE_GOAL_MS: f64 = 100.0;
/// The goal for the members search's server p95, in ms.
const SEARCH_GOAL_MS: f64 = 50.0;

struct Sizes {
    org: OrgSize,
    members: usize,
    /// Members per group among those without deltas.
    unit_size: usize,
    audit_rows: usize,
    org_concepts: usize,
    rounds: usize,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
        })
        .unwrap_or(default)
}

/// Settings serving the org on `bind`: the bench's own requests would
/// otherwise be paced by the general budget (600 a minute), and the audit
/// export asks for a sign-in at most 5 minutes old.
fn settings(dir: &Path, bind: &str) -> (Settings, PathBuf) {
    common::settings(dir, bind, &[ORG], |raw| {
        raw.rate_limits.general = common::UNPACED;
        raw.server.public_url = format!("http://{bind}");
        raw.sso.reauth_max_age_secs = 86_400;
        raw.log.format = "json".into();
        raw.log.level = "info".into();
    })
}

/// Copies the sync bench's seeded org (never written to) to `dest`.
fn copy_org(source: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("pages org dir");
    eprintln!(
        "copying {} to {} ...",
        source.join("data").display(),
        dest.display()
    );
    let t = Instant::now();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg(source.join("data"))
        .arg(dest)
        .status()
        .expect("cp runs");
    assert!(status.success(), "copying the sync bench's org failed");
    eprintln!("copied in {:.0} s", t.elapsed().as_secs_f64());
}

/// Audit rows as a working org accumulates them over the last 90 days:
/// sign-ins, aggregate reads, devices, SCIM, role changes, by people,
/// SCIM tokens and the appliance itself.
fn seed_audit(org: &OrgDb, rows: usize) {
    let people: Vec<String> = org
        .db
        .read(|c| {
            let mut s = c.prepare("SELECT id FROM users ORDER BY user_name LIMIT 2000")?;
            let ids = s
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, StoreError>(ids)
        })
        .expect("people");
    let now_ms = to_millis(SystemClock.now());
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let actions = [
        (30, "session.create"),
        (25, "aggregates.read"),
        (10, "session.end"),
        (8, "device.pair"),
        (2, "device.revoke"),
        (12, "scim.user.update"),
        (4, "scim.group.update"),
        (4, "role.change"),
        (3, "user.update"),
        (1, "viewer.grant"),
        (1, "audit.export"),
    ];
    let total: usize = actions.iter().map(|(w, _)| w).sum();
    let mut ats: Vec<i64> = (0..rows)
        .map(|_| now_ms - 1 - rng.below(90 * DAY_MS as usize) as i64)
        .collect();
    ats.sort_unstable();
    for chunk in ats.chunks(1000) {
        org.db
            .write(|tx| {
                for &at in chunk {
                    let mut pick = rng.below(total);
                    let action = actions
                        .iter()
                        .find(|(w, _)| {
                            if pick < *w {
                                true
                            } else {
                                pick -= w;
                                false
                            }
                        })
                        .map_or("session.create", |(_, a)| a);
                    let person = &people[rng.below(people.len())];
                    let actor = match action {
                        a if a.starts_with("scim.") => "token:scim:okta".to_string(),
                        "role.change" => "system".to_string(),
                        _ => format!("user:{person}"),
                    };
                    let ctx = Context {
                        actor,
                        request_id: Some(uuid::Uuid::new_v4().to_string()),
                        ip: Some(std::net::IpAddr::from([
                            10,
                            rng.below(256) as u8,
                            rng.below(256) as u8,
                            1 + rng.below(254) as u8,
                        ])),
                        user_agent: Some(
                            "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36".into(),
                        ),
                    };
                    ctx.record(
                        tx,
                        action,
                        Some(person),
                        &json!({ "seeded": true }),
                        from_millis(at),
                    )?;
                }
                Ok::<_, StoreError>(())
            })
            .expect("audit rows");
    }
}

/// The org's own concepts, through the API's function.
fn seed_concepts(org: &OrgDb, catalogue: &Catalogue, n: usize) {
    let now = SystemClock.now();
    for i in 0..n {
        custom::add(
            org,
            catalogue,
            &AdminCtx::operator(),
            Concept {
                slug: format!("x-acme-internal-{i:02}"),
                title: format!("Acme internal practice {i}"),
                domain: "x-acme-platform".into(),
                summary: "How Acme's platform team does this, written down.".into(),
                prerequisites: vec![],
                related: vec![],
                matchers: Default::default(),
            },
            now,
        )
        .expect("org concept");
    }
}

/// Completes the org to the bench's size: members without deltas (in
/// groups, so teams exist), audit rows, org concepts.
fn complete_org(store: &Store, catalogue: &Catalogue, sizes: &Sizes) {
    let org = store.org(ORG).expect("org");
    let now_ms = to_millis(SystemClock.now());
    let t = Instant::now();
    let have = sizes.org.engineers;
    if sizes.members > have {
        users::seed_directory(
            org,
            have..sizes.members,
            sizes.unit_size,
            |g| format!("Unit {g:03}"),
            now_ms,
        );
    }
    eprintln!(
        "added {} members in {:.1} s",
        sizes.members.saturating_sub(have),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    seed_audit(org, sizes.audit_rows);
    eprintln!(
        "added {} audit rows in {:.1} s",
        sizes.audit_rows,
        t.elapsed().as_secs_f64()
    );
    seed_concepts(org, catalogue, sizes.org_concepts);
}

/// The org's directory: the pages org, complete (copied or seeded, then
/// completed, once), or a scratch one.
fn prepare(
    root: &Path,
    scratch: &Path,
    keep: bool,
    catalogue: &Catalogue,
    sizes: &Sizes,
) -> PathBuf {
    let e = &sizes.org;
    let dir = if keep {
        root.join(format!(
            "pages-org-{}x{}-{}",
            e.engineers, e.deltas_per_engineer, sizes.members
        ))
    } else {
        scratch.join("pages-org")
    };
    let seeded = dir.join("seeded");
    if seeded.exists() {
        eprintln!("reusing the org completed in {}", dir.display());
        return dir;
    }
    if dir.exists() {
        eprintln!("{} was not completed; starting over", dir.display());
        std::fs::remove_dir_all(&dir).expect("remove the incomplete org");
    }
    let source = root.join(format!(
        "sync-org-{}x{}",
        e.engineers, e.deltas_per_engineer
    ));
    let copied = keep && source.join("seeded").exists();
    if copied {
        copy_org(&source, &dir);
    } else {
        std::fs::create_dir_all(&dir).expect("org dir");
    }
    let (settings, _) = settings(&dir, "127.0.0.1:0");
    let store = Store::open(&settings, OpenMode::Create, &SystemClock).expect("store");
    if !copied {
        eprintln!(
            "seeding {} engineers x {} deltas from scratch ...",
            e.engineers, e.deltas_per_engineer
        );
        let slugs: Vec<&str> = catalogue.concepts().map(|c| c.slug.as_str()).collect();
        seed_org(store.org(ORG).expect("org"), catalogue, &slugs, e);
    }
    complete_org(&store, catalogue, sizes);
    drop(store);
    std::fs::write(
        &seeded,
        format!(
            "{} engineers x {} deltas, {} members, {} audit rows\n",
            e.engineers, e.deltas_per_engineer, sizes.members, sizes.audit_rows
        ),
    )
    .expect("marker");
    dir
}

/// A signed-in person: their session cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

/// The user named `name`, made by the operator (as `aiworklab user add`
/// does) when missing.
fn person(org: &OrgDb, name: &str, admin: bool) -> String {
    let found = org
        .db
        .read(|c| user_sql::by_user_name(c, name).map_err(StoreError::from))
        .expect("lookup");
    match found {
        Some(u) => u.id,
        None => {
            people::add(
                org,
                &AdminCtx::operator(),
                name,
                name,
                None,
                admin,
                SystemClock.now(),
            )
            .expect("user")
            .id
        }
    }
}

/// A fresh session for `user_id`, as a sign-in makes it.
fn session(store: &Store, settings: &Settings, user_id: &str) -> Session {
    let org = store.org(ORG).expect("org");
    let now = SystemClock.now();
    let secret = aiworklab::sessions::create(org, user_id, now, &[], &Context::system(), now)
        .expect("session");
    let csrf = aiworklab::sessions::authenticate(store, secret.expose(), &settings.sso, now)
        .expect("store")
        .expect("a live session")
        .session
        .csrf;
    Session {
        cookie: format!("__Host-aiwl_session={}", secret.expose()),
        csrf,
    }
}

/// Who asks for a page.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    Admin,
    Viewer,
    Engineer,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Self::Nobody => "anyone",
            Self::Admin => "admin",
            Self::Viewer => "viewer",
            Self::Engineer => "engineer",
        }
    }
}

/// One page the bench times.
struct Page {
    name: &'static str,
    who: Who,
    /// A members search by text (`q`): its goal is 50 ms, not 100. Paging
    /// and the role and group filters are pages (100 ms), as in the
    /// members bench.
    search: bool,
    /// What the page's answer must contain.
    marker: &'static str,
    /// The request of round `round` (paths with random parts change).
    request: Box<dyn Fn(&mut Rng) -> Req>,
}

enum Req {
    Get(String),
    /// The audit export: the form's fields besides the CSRF token.
    Export(Vec<(&'static str, String)>),
}

/// Every page, with the parameters the bench asks for.
fn pages(sizes: &Sizes, concept: String, member_id: String) -> Vec<Page> {
    let members = sizes.members;
    let base = format!("/o/{ORG}");
    let day = |days_ago: i64| {
        (SystemClock.now() - chrono::Duration::days(days_ago))
            .format("%Y-%m-%d")
            .to_string()
    };
    let fixed =
        |p: String| -> Box<dyn Fn(&mut Rng) -> Req> { Box::new(move |_| Req::Get(p.clone())) };
    let b = base.clone();
    let b2 = base.clone();
    let range_from = day(30);
    let export_day = day(10);
    let export_from = day(7);
    vec![
        Page {
            name: "baseline: `/healthz`",
            who: Who::Nobody,
            search: false,
            marker: "\"ok\"",
            request: fixed("/healthz".into()),
        },
        Page {
            name: "org dashboard",
            who: Who::Viewer,
            search: false,
            marker: "id=\"headline-engineers\"",
            request: fixed(format!("{base}/dashboard")),
        },
        Page {
            name: "a concept page",
            who: Who::Viewer,
            search: false,
            marker: "id=\"concept-title\"",
            request: fixed(format!("{base}/concepts/{concept}")),
        },
        Page {
            name: "a concept page, with its checks",
            who: Who::Admin,
            search: false,
            marker: "id=\"concept-title\"",
            request: fixed(format!("{base}/concepts/{concept}")),
        },
        Page {
            name: "teams side by side",
            who: Who::Viewer,
            search: false,
            marker: "teams side by side</h1>",
            request: fixed(format!("{base}/teams")),
        },
        Page {
            name: "one team's page",
            who: Who::Viewer,
            search: false,
            // Released (figures shown), not only the reason it is not.
            marker: "id=\"headline-h\"",
            request: fixed(format!("{base}/teams/Team%200001")),
        },
        Page {
            name: "`/me`, an engineer with deltas",
            who: Who::Engineer,
            search: false,
            marker: "<h1>My skills,",
            request: fixed("/me".into()),
        },
        Page {
            name: "members, first page",
            who: Who::Admin,
            search: false,
            marker: "<h1>Members of",
            request: fixed(format!("{base}/admin/members")),
        },
        Page {
            name: "members, a deep page (keyset)",
            who: Who::Admin,
            search: false,
            marker: "<h1>Members of",
            request: Box::new(move |rng| {
                Req::Get(format!(
                    "{b}/admin/members?after=engineer.{:05}%40acme.example",
                    rng.below(members)
                ))
            }),
        },
        Page {
            name: "members, search finding 10",
            who: Who::Admin,
            search: true,
            marker: "<h1>Members of",
            request: Box::new(move |rng| {
                Req::Get(format!(
                    "{b2}/admin/members?q=engineer.{:04}",
                    rng.below(members / 10)
                ))
            }),
        },
        Page {
            name: "members, search every member matches",
            who: Who::Admin,
            search: true,
            marker: "<h1>Members of",
            request: fixed(format!("{base}/admin/members?q=acme")),
        },
        Page {
            name: "members, role viewer",
            who: Who::Admin,
            search: false,
            marker: "<h1>Members of",
            request: fixed(format!("{base}/admin/members?role=viewer")),
        },
        Page {
            name: "members, a group (1,000)",
            who: Who::Admin,
            search: false,
            marker: "<h1>Members of",
            request: fixed(format!("{base}/admin/members?group=Unit%20042")),
        },
        Page {
            name: "a member's page",
            who: Who::Admin,
            search: false,
            marker: "<h1>engineer.00000@acme.example</h1>",
            request: fixed(format!("{base}/admin/members/{member_id}")),
        },
        Page {
            name: "audit log",
            who: Who::Admin,
            search: false,
            marker: "<h1>Audit log</h1>",
            request: fixed(format!("{base}/admin/audit")),
        },
        Page {
            name: "audit log, by action",
            who: Who::Admin,
            search: false,
            marker: "<h1>Audit log</h1>",
            request: fixed(format!("{base}/admin/audit?action=device.pair")),
        },
        Page {
            name: "audit log, by actor (a user name)",
            who: Who::Admin,
            search: false,
            marker: "<h1>Audit log</h1>",
            request: fixed(format!(
                "{base}/admin/audit?actor=engineer.00042%40acme.example"
            )),
        },
        Page {
            name: "audit log, a time range (1 day)",
            who: Who::Admin,
            search: false,
            marker: "<h1>Audit log</h1>",
            request: fixed(format!(
                "{base}/admin/audit?from={range_from}&to={range_from}"
            )),
        },
        Page {
            name: "audit export, CSV, one day",
            who: Who::Admin,
            search: false,
            marker: "id,at,actor,action,",
            request: Box::new(move |_| {
                Req::Export(vec![
                    ("format", "csv".into()),
                    ("from", export_day.clone()),
                    ("to", export_day.clone()),
                ])
            }),
        },
        Page {
            name: "audit export, CSV, one action, 7 days",
            who: Who::Admin,
            search: false,
            marker: "id,at,actor,action,",
            request: Box::new(move |_| {
                Req::Export(vec![
                    ("format", "csv".into()),
                    ("action", "device.pair".into()),
                    ("from", export_from.clone()),
                ])
            }),
        },
        Page {
            name: "backups",
            who: Who::Admin,
            search: false,
            marker: "<h1>Backups</h1>",
            request: fixed(format!("{base}/admin/backups")),
        },
        Page {
            name: "settings",
            who: Who::Admin,
            search: false,
            marker: "<h1>Effective settings</h1>",
            request: fixed(format!("{base}/admin/settings")),
        },
        Page {
            name: "the org's concepts",
            who: Who::Admin,
            search: false,
            marker: "x-acme-internal-00",
            request: fixed(format!("{base}/admin/concepts")),
        },
    ]
}

/// One answered request: client time, request id, body length.
struct Answer {
    client: Duration,
    request_id: String,
    bytes: usize,
}

async fn ask(
    http: &reqwest::Client,
    base: &str,
    page: &Page,
    req: Req,
    sessions: &mut HashMap<&'static str, Session>,
    request_id: String,
) -> Answer {
    let session = match page.who {
        Who::Nobody => None,
        w => sessions.get_mut(w.label()),
    };
    let builder = match &req {
        Req::Get(path) => http.get(format!("{base}{path}")),
        Req::Export(fields) => {
            let mut form: Vec<(&str, &str)> =
                vec![("csrf", session.as_ref().map_or("", |s| s.csrf.as_str()))];
            form.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
            http.post(format!("{base}/o/{ORG}/admin/audit/export"))
                .header("origin", base)
                .form(&form)
        }
    };
    let builder = builder.header("x-request-id", &request_id);
    let builder = match &session {
        Some(s) => builder.header("cookie", &s.cookie),
        None => builder,
    };
    let t = Instant::now();
    let res = builder.send().await.expect("request");
    let status = res.status();
    let rotated: Option<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix("__Host-aiwl_session=")
                .map(|rest| rest.split(';').next().unwrap_or("").to_string())
        });
    let body = res.bytes().await.expect("body");
    let client = t.elapsed();
    let text = String::from_utf8_lossy(&body);
    let shown = match &req {
        Req::Get(p) => p.clone(),
        Req::Export(f) => format!("audit export {f:?}"),
    };
    assert_eq!(
        status,
        200,
        "{} ({shown}) answered {status}: {}",
        page.name,
        text.chars().take(600).collect::<String>()
    );
    assert!(
        text.contains(page.marker),
        "{} ({shown}) is not the page: no {:?} in {}",
        page.name,
        page.marker,
        text.chars().take(600).collect::<String>()
    );
    // Session ids are rotated every few minutes: keep the new one, as a
    // browser would.
    if let (Some(new), Some(s)) = (rotated, session)
        && !new.is_empty()
    {
        s.cookie = format!("__Host-aiwl_session={new}");
    }
    Answer {
        client,
        request_id,
        bytes: body.len(),
    }
}

/// The reads the dashboard is made of, timed in this process on the same
/// org once the server has stopped: the org's kept release (12 weeks of
/// trend), a team's (1 week, as the dashboard asks for its twelve teams),
/// and the earlier org release the movers compare with.
fn release_parts(
    settings: &Settings,
    catalogue: &Catalogue,
    calls: usize,
) -> (usize, Vec<(&'static str, Vec<Duration>)>) {
    let store = Store::open(settings, OpenMode::Create, &SystemClock).expect("store");
    let org = store.org(ORG).expect("org");
    let params = settings.privacy;
    let audit = Context::system();
    let now = SystemClock.now();
    let release = |team: Option<&str>, weeks| {
        let req = aiworklab::privacy::Request { team, now, weeks };
        let t = Instant::now();
        aiworklab::privacy::release(org, catalogue, &req, params, &audit).expect("kept release");
        t.elapsed()
    };
    let mut parts: Vec<(&'static str, Vec<Duration>)> = vec![
        ("`privacy::release`, the org, 12 weeks", vec![]),
        ("`privacy::release`, one team, 1 week", vec![]),
        ("`privacy::earlier_org_release`", vec![]),
    ];
    for _ in 0..calls {
        parts[0]
            .1
            .push(release(None, aiworklab::graph::trend::DEFAULT_WEEKS));
        parts[1].1.push(release(Some("Team 0001"), 1));
        let t = Instant::now();
        aiworklab::privacy::earlier_org_release(org, now).expect("earlier release");
        parts[2].1.push(t.elapsed());
    }
    (calls, parts)
}

/// `latency_ms` of each request the server logged, by request id.
fn server_times(log: &Path) -> HashMap<String, f64> {
    let text = std::fs::read_to_string(log).expect("server log");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request answered")
        .filter_map(|v| {
            Some((
                v["span"]["request_id"].as_str()?.to_string(),
                v["latency_ms"].as_f64()?,
            ))
        })
        .collect()
}

fn ms_quantile(samples: &mut [f64], q: f64) -> f64 {
    let mut d: Vec<Duration> = samples
        .iter()
        .map(|ms| Duration::from_secs_f64(ms / 1e3))
        .collect();
    quantile(&mut d, q)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs this binary
    // without it, as a quick check that the bench still works.
    let full = std::env::args().any(|a| a == "--bench");
    let pick = |full_size, smoke| if full { full_size } else { smoke };
    let sizes = Sizes {
        org: OrgSize {
            engineers: pick(10_000, 60),
            deltas_per_engineer: pick(1_000, 40),
            team_size: pick(50, 20),
            ids: Ids::V7,
        },
        members: pick(100_000, 600),
        unit_size: pick(1_000, 10),
        audit_rows: env_or("BENCH_AUDIT_ROWS", pick(50_000, 2_000)),
        org_concepts: 20,
        rounds: env_or("BENCH_ROUNDS", pick(200, 5)),
    };
    let catalogue = Catalogue::builtin().expect("the shipped catalogue");
    let keep = full && std::env::var_os("BENCH_DIR").is_some();
    let root = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()));
    std::fs::create_dir_all(&root).expect("BENCH_DIR");
    let scratch = tempfile::tempdir_in(&root).expect("tempdir");
    let dir = prepare(&root, scratch.path(), keep, &catalogue, &sizes);

    let bind = common::loopback_bind();
    let (settings, config_file) = settings(&dir, &bind);
    let store = Store::open(&settings, OpenMode::Create, &SystemClock).expect("store");
    let org = store.org(ORG).expect("org");
    // Each run starts the week afresh: its first round makes the releases.
    org.db
        .write(|tx| {
            tx.execute_batch(
                "DELETE FROM releases; DELETE FROM release_members; DELETE FROM release_weeks;
                 DELETE FROM scope_sightings; DELETE FROM privacy_periods;",
            )
            .map_err(StoreError::from)
        })
        .expect("forget earlier releases");
    // Last week's org release sights every team (as the sync bench does),
    // so this week's team releases find their membership stable.
    aiworklab::privacy::release(
        org,
        &catalogue,
        &aiworklab::privacy::Request {
            team: None,
            now: SystemClock.now() - chrono::Duration::days(7),
            weeks: aiworklab::graph::trend::DEFAULT_WEEKS,
        },
        settings.privacy,
        &Context::system(),
    )
    .expect("last week's org release");
    let counts = org
        .db
        .read(|c| {
            let n = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
            Ok::<_, StoreError>((
                n("SELECT count(*) FROM users")?,
                n("SELECT count(*) FROM deltas")?,
                n("SELECT count(*) FROM audit_log")?,
                n("SELECT count(*) FROM groups")?,
            ))
        })
        .expect("counts");
    let admin = person(org, "bench.admin", true);
    let viewer = person(org, "bench.viewer", false);
    people::set_viewer(org, &AdminCtx::operator(), &viewer, true, SystemClock.now())
        .expect("viewer");
    let engineer = person(org, "engineer.00000@acme.example", false);
    let mut sessions: HashMap<&'static str, Session> = HashMap::new();
    sessions.insert("admin", session(&store, &settings, &admin));
    sessions.insert("viewer", session(&store, &settings, &viewer));
    sessions.insert("engineer", session(&store, &settings, &engineer));
    drop(store);
    let concept = catalogue
        .concepts()
        .next()
        .expect("a shipped concept")
        .slug
        .clone();
    let pages = pages(&sizes, concept, engineer);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let log = scratch.path().join("server.log");
    let (client, ids, bytes, first, rss) = rt.block_on(async {
        let server = Server::start_logging_to(&config_file, &bind, &log).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let n = pages.len();
        let mut client = vec![Vec::new(); n];
        let mut ids = vec![Vec::new(); n];
        let mut bytes = vec![0usize; n];
        let mut first = vec![String::new(); n];
        let t = Instant::now();
        for round in 0..=sizes.rounds {
            for k in 0..n {
                // Each round starts at another page; the first round reads
                // in the pages' order, the dashboard first.
                let i = (k + round) % n;
                let page = &pages[i];
                let req = (page.request)(&mut rng);
                let id = format!("bench-{round}-{i}");
                let a = ask(&http, &server.base, page, req, &mut sessions, id).await;
                if round == 0 {
                    first[i] = a.request_id;
                } else {
                    client[i].push(a.client);
                    ids[i].push(a.request_id);
                    bytes[i] = a.bytes;
                }
            }
            if round % 20 == 0 {
                eprintln!(
                    "round {round} of {} done, {:.0} s",
                    sizes.rounds,
                    t.elapsed().as_secs_f64()
                );
            }
        }
        let rss = peak_rss_mib(server.child.id());
        drop(server);
        (client, ids, bytes, first, rss)
    });
    let parts = release_parts(&settings, &catalogue, sizes.rounds.min(100));
    let server = server_times(&log);
    let server_ms = |id: &str| -> f64 {
        *server
            .get(id)
            .unwrap_or_else(|| panic!("the server logged no request {id}"))
    };

    let (users_n, deltas_n, audit_n, groups_n) = counts;
    println!(
        "pages, {} ({users_n} members, {deltas_n} deltas, {groups_n} groups, {audit_n} audit rows at the start), {} rounds; server peak RSS {rss:.0} MiB",
        if full { "full" } else { "smoke" },
        sizes.rounds
    );
    println!();
    println!(
        "| page | as | KiB | client p50 | p95 | p99 | p95 ÷ baseline | server p50 | **server p95** | server p99 | first read (server) | goal |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut client = client;
    let base_p95 = quantile(&mut client[0], 0.95);
    let mut missed = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let c = &mut client[i];
        let mut s: Vec<f64> = ids[i].iter().map(|id| server_ms(id)).collect();
        let (c50, c95, c99) = (quantile(c, 0.5), quantile(c, 0.95), quantile(c, 0.99));
        let (s50, s95, s99) = (
            ms_quantile(&mut s, 0.5),
            ms_quantile(&mut s, 0.95),
            ms_quantile(&mut s, 0.99),
        );
        let goal = if i == 0 {
            "".to_string()
        } else if !full {
            "judged at full size only".to_string()
        } else {
            let limit = if page.search {
                SEARCH_GOAL_MS
            } else {
                PAGE_GOAL_MS
            };
            if s95 <= limit {
                format!("met (≤ {limit:.0} ms)")
            } else {
                missed.push(page.name);
                format!("**missed** (≤ {limit:.0} ms)")
            }
        };
        println!(
            "| {} | {} | {:.0} | {c50:.2} | {c95:.2} | {c99:.2} | {:.0}× | {s50:.2} | **{s95:.2}** | {s99:.2} | {:.1} | {goal} |",
            page.name,
            page.who.label(),
            bytes[i] as f64 / 1024.0,
            c95 / base_p95,
            server_ms(&first[i]),
        );
    }
    println!();
    println!(
        "In this process, after the run ({} calls each, kept releases of this week):",
        parts.0
    );
    println!();
    println!("| what the dashboard, concept and teams pages read | p50 ms | p95 ms |");
    println!("|---|---:|---:|");
    for (what, mut d) in parts.1 {
        println!(
            "| {what} | {:.2} | {:.2} |",
            quantile(&mut d, 0.5),
            quantile(&mut d, 0.95)
        );
    }
    println!();
    if !full {
        println!("smoke run (tiny org, dev profile): the goals are judged at full size only");
    } else if missed.is_empty() {
        println!("every page met its goal");
    } else {
        println!("missed: {}", missed.join(", "));
    }
}
