//! Sync ingest and org aggregates at the size of a large enterprise.
//!
//! Run: `cargo bench --bench sync` (under `cargo test` it runs with tiny
//! sizes as a smoke check). Measured in one run:
//!
//! - **ingest end to end**: 4 engineers, each with a device paired through
//!   the real API, push batches of 500 deltas to `POST /api/v1/sync/deltas`
//!   of the real binary (`aiworklab serve`, plain HTTP on loopback), each
//!   device sequentially in its own task and client, all 4 at once; beside
//!   it, on fresh org databases of the same data dir and with the very same
//!   rows: the **baseline**, raw inserts into `deltas` (one transaction
//!   and one prepared statement per 500 rows); `sync::push` in this process
//!   (no HTTP); and one push taken apart into its phases (parse, inserts,
//!   `states::refresh`, `trend::record`, cursor, commit);
//! - the server's peak RSS (`VmHWM`);
//! - **org aggregates**: `privacy::release` (docs/privacy.md) for the whole
//!   org (its first release of the week, then kept) and for teams of 50 (a
//!   new team's first release each call, then the same team kept), in this process, on an org of 10,000
//!   engineers with ~1,000 deltas each over the shipped catalogue, seeded
//!   through `sync::push` so that every derived table is what ingest makes.
//!
//! Sizes: `BENCH_ENGINEERS`, `BENCH_DELTAS_PER_ENGINEER`, `BENCH_TEAM_SIZE`,
//! `BENCH_INGEST_BATCHES` (per device) and `BENCH_ROUNDS` (aggregate calls
//! of each kind); `BENCH_IDS=v4` has devices mint random ids instead of
//! time-ordered UUIDv7. With `BENCH_DIR` set, the seeded aggregate org is kept in
//! `$BENCH_DIR/sync-org-<engineers>x<deltas>` and reused by later runs once
//! its `seeded` marker exists; everything else is scratch.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aiworklab::audit::Context;
use aiworklab::catalogue::KnownIds;
use aiworklab::clock::{Clock, SystemClock, to_millis};
use aiworklab::config::{RawRateLimit, Settings};
use aiworklab::graph::{states, trend};
use aiworklab::privacy;
use aiworklab::skill::Catalogue;
use aiworklab::skill::Delta;
use aiworklab::store::deltas as delta_sql;
use aiworklab::store::users::UserRow;
use aiworklab::store::{OpenMode, OrgDb, Store, StoreError};
use aiworklab::sync::wire;
use aiworklab::{devices, sync};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

mod common;
#[path = "common/org.rs"]
mod org;
#[path = "common/users.rs"]
mod users;
use common::{Rng, Server, peak_rss_mib, quantile};
use org::{BATCH, Ids, OrgSize, engineer_deltas, seed_org};
use users::{insert_users, user_row};

const DEVICES: usize = 4;

struct Sizes {
    engineers: usize,
    deltas_per_engineer: usize,
    team_size: usize,
    ingest_batches: usize,
    rounds: usize,
    /// The ids devices mint (`BENCH_IDS`).
    ids: Ids,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

/// The JSON body a device sends for `deltas`.
fn body(deltas: &[Delta]) -> Vec<u8> {
    let items: Vec<Value> = deltas
        .iter()
        .map(|d| {
            let mut v = json!({
                "id": d.id.to_string(),
                "concept": d.concept,
                "transition": d.transition.as_str(),
                "at": d.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            });
            if let Some(g) = d.grade {
                v["grade"] = json!(g);
            }
            v
        })
        .collect();
    serde_json::to_vec(&json!({ "deltas": items })).expect("JSON")
}

/// Items per second.
fn rate(n: usize, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64()
}

/// Settings serving `orgs`: four devices push as fast as they can, which
/// the default sync budget (600 requests a minute per address) would pace.
fn settings(dir: &Path, bind: &str, orgs: &[&str]) -> (Settings, PathBuf) {
    common::settings(dir, bind, orgs, |raw| {
        raw.rate_limits.sync = common::UNPACED;
        raw.rate_limits.pairing = RawRateLimit::new(1_000, 60);
    })
}

/// Time spent in each phase of a push, summed over batches.
#[derive(Default)]
struct Phases {
    parse: Duration,
    insert: Duration,
    refresh: Duration,
    trend: Duration,
    cursor: Duration,
    total: Duration,
}

/// One push as `sync::push` and the route do it, phase by phase.
fn timed_push(
    org: &OrgDb,
    catalogue: &Catalogue,
    user_id: &str,
    body: &[u8],
    now: DateTime<Utc>,
    p: &mut Phases,
) -> usize {
    let start = Instant::now();
    let known = KnownIds::load(catalogue, org).expect("known ids");
    let deltas = wire::parse_push(body, &known, now).expect("a valid batch");
    p.parse += start.elapsed();
    let now_ms = to_millis(now);
    let accepted = org
        .db
        .write(|tx| {
            let t = Instant::now();
            let accepted = sync::insert_new(tx, user_id, None, &deltas, now_ms)?;
            p.insert += t.elapsed();
            let t = Instant::now();
            states::refresh(tx, user_id, &accepted, now)?;
            p.refresh += t.elapsed();
            let t = Instant::now();
            trend::record(tx, user_id, &accepted)?;
            p.trend += t.elapsed();
            let t = Instant::now();
            delta_sql::last_seq(tx, user_id)?;
            p.cursor += t.elapsed();
            Ok::<_, StoreError>(accepted.len())
        })
        .expect("push");
    p.total += start.elapsed();
    accepted
}

const RAW_INSERT: &str =
    "INSERT INTO deltas (id, user_id, device_id, concept, transition, at, grade, received_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (user_id, at, id) DO NOTHING";

struct Ingest {
    total: usize,
    raw: Duration,
    in_process: Duration,
    phases: Phases,
    http: Duration,
    latencies: Vec<Duration>,
    rss_mib: f64,
}

/// Part 1: the same rows through raw inserts, `sync::push`, its phases and
/// the real server.
async fn ingest(scratch: &Path, catalogue: &Catalogue, slugs: &[&str], sizes: &Sizes) -> Ingest {
    let bind = common::loopback_bind();
    let orgs = ["ingest", "raw", "push", "phases"];
    let (settings, config_file) = settings(scratch, &bind, &orgs);
    let now = SystemClock.now();
    let now_ms = to_millis(now);
    let per_device = sizes.ingest_batches * BATCH;
    let total = DEVICES * per_device;
    let users: Vec<UserRow> = (0..DEVICES).map(|i| user_row(i, now_ms)).collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    // Each device's backlog, as 500-delta batches, dated in the last 90 days.
    let batches: Vec<Vec<Vec<Delta>>> = (0..DEVICES)
        .map(|_| {
            engineer_deltas(&mut rng, sizes.ids, slugs, per_device, 90, now)
                .chunks(BATCH)
                .map(<[Delta]>::to_vec)
                .collect()
        })
        .collect();
    let bodies: Vec<Vec<Vec<u8>>> = batches
        .iter()
        .map(|b| b.iter().map(|d| body(d)).collect())
        .collect();
    // Batches in the order they reach the server: device by device, round robin.
    let order: Vec<(usize, usize)> = (0..sizes.ingest_batches)
        .flat_map(|b| (0..DEVICES).map(move |d| (d, b)))
        .collect();

    let store = Store::open(&settings, OpenMode::Create, &SystemClock).expect("store");
    for slug in orgs {
        insert_users(store.org(slug).expect("org"), &users);
    }
    let codes: Vec<String> = users
        .iter()
        .map(|u| {
            let org = store.org("ingest").expect("org");
            let (code, _) = devices::create_pairing_code(org, &u.id, &Context::operator(), now)
                .expect("pairing code");
            code.expose().to_string()
        })
        .collect();

    eprintln!("ingest: {total} deltas, raw inserts ...");
    let raw_org = store.org("raw").expect("org");
    let t = Instant::now();
    for &(d, b) in &order {
        raw_org
            .db
            .write(|tx| {
                let mut stmt = tx.prepare_cached(RAW_INSERT)?;
                for x in &batches[d][b] {
                    stmt.execute(rusqlite::params![
                        x.id.to_string(),
                        users[d].id,
                        Option::<&str>::None,
                        x.concept,
                        x.transition.as_str(),
                        to_millis(x.at),
                        x.grade,
                        now_ms,
                    ])?;
                }
                Ok::<_, StoreError>(())
            })
            .expect("raw insert");
    }
    let raw = t.elapsed();

    eprintln!("ingest: sync::push in process ...");
    let push_org = store.org("push").expect("org");
    let t = Instant::now();
    for &(d, b) in &order {
        let known = KnownIds::load(catalogue, push_org).expect("known ids");
        let deltas = wire::parse_push(&bodies[d][b], &known, now).expect("a valid batch");
        let pushed = sync::push(push_org, &users[d].id, None, &deltas, now).expect("push");
        assert_eq!(pushed.accepted, BATCH);
    }
    let in_process = t.elapsed();

    eprintln!("ingest: one push phase by phase ...");
    let mut phases = Phases::default();
    let phase_org = store.org("phases").expect("org");
    for &(d, b) in &order {
        let n = timed_push(
            phase_org,
            catalogue,
            &users[d].id,
            &bodies[d][b],
            now,
            &mut phases,
        );
        assert_eq!(n, BATCH);
    }
    drop(store);

    eprintln!("ingest: {DEVICES} devices over HTTP ...");
    let server = Server::start(&config_file, &bind).await;
    let mut tokens = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/devices/pair", server.base))
            .json(&json!({ "code": code, "device_name": format!("laptop {i}") }))
            .send()
            .await
            .expect("pair");
        assert_eq!(r.status(), 200, "pairing");
        let grant: Value = r.json().await.expect("grant");
        tokens.push(
            grant["access_token"]
                .as_str()
                .expect("access token")
                .to_string(),
        );
    }
    let url = format!("{}/api/v1/sync/deltas", server.base);
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (token, bodies) in tokens.into_iter().zip(bodies) {
        let url = url.clone();
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut accepted = 0;
            for b in bodies {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(b)
                    .send()
                    .await
                    .expect("POST");
                assert_eq!(r.status(), 200, "push refused");
                let pushed: Value = r.json().await.expect("JSON");
                latencies.push(t.elapsed());
                assert_eq!(pushed["duplicates"], 0);
                accepted += pushed["accepted"].as_u64().expect("accepted") as usize;
            }
            (latencies, accepted)
        });
    }
    let mut latencies = Vec::new();
    let mut accepted = 0;
    while let Some(done) = tasks.join_next().await {
        let (l, a) = done.expect("device task");
        latencies.extend(l);
        accepted += a;
    }
    let http = t.elapsed();
    assert_eq!(accepted, total, "the server accepted every delta sent");
    let rss_mib = peak_rss_mib(server.child.id());
    drop(server);
    Ingest {
        total,
        raw,
        in_process,
        phases,
        http,
        latencies,
        rss_mib,
    }
}

struct Aggregates {
    seed: Option<Duration>,
    counts: (i64, i64, i64),
    size_mib: f64,
    /// The org's first release of the period.
    org_made: Duration,
    /// The org's kept release, read again.
    org: Vec<Duration>,
    /// A team's first release of the period (a different team each call).
    team: Vec<Duration>,
    /// That team's kept release, read again.
    team_kept: Vec<Duration>,
    concepts: usize,
}

/// Part 2: `privacy::release` on the seeded org, whole org and teams.
fn aggregates_part(
    root: &Path,
    scratch: &Path,
    keep: bool,
    catalogue: &Catalogue,
    slugs: &[&str],
    sizes: &Sizes,
) -> Aggregates {
    let dir = if keep {
        root.join(format!(
            "sync-org-{}x{}",
            sizes.engineers, sizes.deltas_per_engineer
        ))
    } else {
        scratch.join("org")
    };
    let marker = dir.join("seeded");
    let mut seed = None;
    if !marker.exists() {
        if dir.exists() {
            eprintln!("{} was not seeded completely; starting over", dir.display());
            std::fs::remove_dir_all(&dir).expect("remove the incomplete seed");
        }
        std::fs::create_dir_all(&dir).expect("seed dir");
    } else {
        eprintln!("reusing the org seeded in {}", dir.display());
    }
    let (settings, _) = settings(&dir, "127.0.0.1:0", &["acme"]);
    let store = Store::open(&settings, OpenMode::Create, &SystemClock).expect("store");
    if !marker.exists() {
        eprintln!(
            "seeding {} engineers x {} deltas ...",
            sizes.engineers, sizes.deltas_per_engineer
        );
        let t = Instant::now();
        let size = OrgSize {
            engineers: sizes.engineers,
            deltas_per_engineer: sizes.deltas_per_engineer,
            team_size: sizes.team_size,
            ids: sizes.ids,
        };
        seed_org(store.org("acme").expect("org"), catalogue, slugs, &size);
        seed = Some(t.elapsed());
        std::fs::write(&marker, format!("{} engineers\n", sizes.engineers)).expect("marker");
    }
    let org = store.org("acme").expect("org");
    let count = |table: &str| -> i64 {
        org.db
            .read(|c| {
                c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                    .map_err(StoreError::from)
            })
            .expect("count")
    };
    let counts = (
        count("deltas"),
        count("concept_states"),
        count("concept_weeks"),
    );
    assert_eq!(
        counts.0 as usize,
        sizes.engineers * sizes.deltas_per_engineer
    );
    let teams = sizes.engineers.div_ceil(sizes.team_size);
    // Releases are kept in the org (docs/privacy.md); a kept org starts
    // each run with none, so the first release of each scope is timed.
    org.db
        .write(|tx| {
            tx.execute_batch(
                "DELETE FROM releases; DELETE FROM release_members; DELETE FROM release_weeks;
                 DELETE FROM scope_sightings; DELETE FROM privacy_periods;",
            )
            .map_err(StoreError::from)
        })
        .expect("forget earlier releases");
    let params = settings.privacy;
    let audit = Context::system();
    let now = SystemClock.now();
    let release = |team: Option<&str>, at| {
        let req = privacy::Request {
            team,
            now: at,
            weeks: trend::DEFAULT_WEEKS,
        };
        let t = Instant::now();
        let r = privacy::release(org, catalogue, &req, params, &audit);
        (t.elapsed(), r)
    };
    // Last week's org release sights every team, so that this week's are
    // stable; then this week's org release, made once.
    let (_, last_week) = release(None, now - chrono::Duration::days(7));
    last_week.expect("last week's org release");
    let (org_made, first) = release(None, now);
    let first = first.expect("org release");
    let (mut whole, mut team, mut team_kept) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..sizes.rounds + 2 {
        let (org_time, all) = release(None, now);
        let all = all.expect("org aggregates");
        assert_eq!(all.concepts, first.concepts, "a kept release changed");
        let name = format!("Team {:04}", round * 7 % teams);
        let (team_time, one) = release(Some(&name), now);
        let (kept_time, again) = release(Some(&name), now);
        // Every concept somebody touched is there, and the big ones are counted.
        assert!(all.concepts.iter().any(|a| a.n_seen.is_some_and(|n| n > 0)));
        if sizes.team_size >= params.min_cohort as usize {
            let one = one.expect("team release");
            assert!(one.concepts.iter().any(|a| !a.suppressed));
            assert_eq!(again.expect("kept team release").concepts, one.concepts);
        }
        if round >= 2 {
            whole.push(org_time);
            team.push(team_time);
            team_kept.push(kept_time);
        }
    }
    let concepts = first.concepts.iter().filter(|c| !c.suppressed).count();
    let size_mib = org.db.size_on_disk() as f64 / (1024.0 * 1024.0);
    Aggregates {
        seed,
        counts,
        size_mib,
        org_made,
        org: whole,
        team,
        team_kept,
        concepts,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, as a quick check that the bench still works.
    let full = std::env::args().any(|a| a == "--bench");
    let pick = |full_size, smoke| if full { full_size } else { smoke };
    let sizes = Sizes {
        engineers: env_or("BENCH_ENGINEERS", pick(10_000, 100)),
        deltas_per_engineer: env_or("BENCH_DELTAS_PER_ENGINEER", pick(1_000, 100)),
        team_size: env_or("BENCH_TEAM_SIZE", 50),
        ingest_batches: env_or("BENCH_INGEST_BATCHES", pick(50, 2)),
        rounds: env_or("BENCH_ROUNDS", pick(30, 3)),
        ids: match std::env::var("BENCH_IDS").as_deref() {
            Ok("v4") => Ids::V4,
            Ok("v7") | Err(_) => Ids::V7,
            Ok(other) => panic!("BENCH_IDS must be v7 or v4, not {other}"),
        },
    };
    let catalogue = Catalogue::builtin().expect("the shipped catalogue");
    let slugs: Vec<&str> = catalogue.concepts().map(|c| c.slug.as_str()).collect();
    let keep = std::env::var_os("BENCH_DIR").is_some();
    let root = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()));
    std::fs::create_dir_all(&root).expect("BENCH_DIR");
    let scratch = tempfile::tempdir_in(&root).expect("tempdir");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut i = rt.block_on(ingest(scratch.path(), &catalogue, &slugs, &sizes));
    let mut a = aggregates_part(&root, scratch.path(), keep, &catalogue, &slugs, &sizes);

    let raw_rate = rate(i.total, i.raw);
    let http_rate = rate(i.total, i.http);
    let requests = i.latencies.len();
    let p = &i.phases;
    let commit = p.total - p.parse - p.insert - p.refresh - p.trend - p.cursor;
    let share = |d: Duration| {
        format!(
            "{:.2} ms ({:.0}%)",
            d.as_secs_f64() * 1e3 / requests as f64,
            100.0 * d.as_secs_f64() / p.total.as_secs_f64()
        )
    };
    let ids = match sizes.ids {
        Ids::V7 => "UUIDv7",
        Ids::V4 => "UUIDv4",
    };
    println!("| ingest, {DEVICES} devices x {BATCH}-delta batches, {ids} ids | figure |");
    println!("|---|---|");
    println!(
        "| rows | {} deltas in {requests} batches over {} concepts |",
        i.total,
        slugs.len()
    );
    println!(
        "| raw inserts (baseline) | {:.2} s, {raw_rate:.0} deltas/s |",
        i.raw.as_secs_f64()
    );
    println!(
        "| `sync::push` in process, sequential | {:.2} s, {:.0} deltas/s ({:.0}% of raw) |",
        i.in_process.as_secs_f64(),
        rate(i.total, i.in_process),
        100.0 * rate(i.total, i.in_process) / raw_rate
    );
    println!(
        "| `POST /api/v1/sync/deltas`, end to end | {:.2} s, **{http_rate:.0} deltas/s ({:.0}% of raw)** |",
        i.http.as_secs_f64(),
        100.0 * http_rate / raw_rate
    );
    println!(
        "| per request | p50 {:.1} ms, p95 {:.1} ms |",
        quantile(&mut i.latencies, 0.50),
        quantile(&mut i.latencies, 0.95)
    );
    println!("| server peak RSS (VmHWM) | {:.0} MiB |", i.rss_mib);
    println!(
        "| one push by phase, per batch | parse {}, inserts {}, states::refresh {}, trend::record {}, cursor {}, begin+commit {}; total {:.2} ms |",
        share(p.parse),
        share(p.insert),
        share(p.refresh),
        share(p.trend),
        share(p.cursor),
        share(commit),
        p.total.as_secs_f64() * 1e3 / requests as f64
    );
    println!();
    println!(
        "| org aggregates, {} engineers, teams of {} | figure |",
        sizes.engineers, sizes.team_size
    );
    println!("|---|---|");
    match a.seed {
        Some(t) => println!(
            "| seeded through `sync::push` | {:.0} s, {:.0} deltas/s |",
            t.as_secs_f64(),
            rate(a.counts.0 as usize, t)
        ),
        None => println!("| seeded | reused from an earlier run |"),
    }
    println!(
        "| rows | {} deltas, {} concept_states, {} concept_weeks; {:.0} MiB; {} concepts in the answer |",
        a.counts.0, a.counts.1, a.counts.2, a.size_mib, a.concepts
    );
    println!(
        "| `privacy::release`, whole org, first of the week (made) | {:.1} ms |",
        a.org_made.as_secs_f64() * 1e3
    );
    println!(
        "| `privacy::release`, whole org, kept, {} calls | p50 {:.1} ms, **p95 {:.1} ms** |",
        a.org.len(),
        quantile(&mut a.org, 0.50),
        quantile(&mut a.org, 0.95)
    );
    println!(
        "| `privacy::release`, a team's first of the week (made), {} calls | p50 {:.1} ms, **p95 {:.1} ms** |",
        a.team.len(),
        quantile(&mut a.team, 0.50),
        quantile(&mut a.team, 0.95)
    );
    println!(
        "| `privacy::release`, that team kept, {} calls | p50 {:.1} ms, **p95 {:.1} ms** |",
        a.team_kept.len(),
        quantile(&mut a.team_kept, 0.50),
        quantile(&mut a.team_kept, 0.95)
    );
}
