//! Sustained ingest: fleets of devices pushing to the release binary over
//! loopback HTTP for minutes, reported minute by minute (issue 23,
//! docs/benchmarks.md "Sustained ingest").
//!
//! Run: `cargo bench --bench ingest` (under `cargo test` it runs each fleet
//! for a few seconds as a smoke check). Every fleet has 8 engineers whose
//! devices push 200 deltas every quarter second each (a device that falls
//! behind sends its next push at once, never a burst), dated "now" to the
//! second, over 100 to 300 concepts of the shipped catalogue per engineer,
//! with the default rate limits and refold budget:
//!
//! - `a`: one device per engineer, UUIDv7 ids, in order (the baseline);
//! - `b`: the same with random UUIDv4 ids;
//! - `c`: two devices per engineer, each pushing every half second,
//!   interleaved, the second's clock 3 s behind;
//! - `d`: `a`, plus a second device of engineer 0 that returns after
//!   30 s with a 10,000-delta backlog dated over the past week, oldest
//!   first, 200 a push at the same pace;
//! - `e`: `a`, plus a second device of engineer 0 that sends 200 deltas
//!   dated at random over the past year every quarter second, whatever
//!   the answer;
//! - `big`: `a` on an org seeded first (through `sync::push`, in process)
//!   with `BENCH_BIG_ENGINEERS` x `BENCH_BIG_DELTAS` deltas (and
//!   migration 0024 timed on it: the schema put back to 0023 first, then
//!   the store opened), then one minute of the same 8 devices pushing
//!   back to back, then as many raw inserts into that database (one transaction per 200 rows).
//!
//!   With `BENCH_BIG_FROM` naming an org the sync bench kept
//!   (`$BENCH_DIR/sync-org-10000x1000`, 10 million deltas), `big` works on a
//!   copy of it instead of seeding one (and skips the migration figure).
//!
//! `BENCH_FLEETS` (default `a,b,c,d,e,big`) picks fleets, `BENCH_MINUTES`
//! (default 3) how long each runs; `BENCH_DIR` where the data dirs go.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiworklab::audit::Context;
use aiworklab::catalogue::KnownIds;
use aiworklab::clock::{Clock, SystemClock, from_millis, to_millis};
use aiworklab::config::RawRateLimit;
use aiworklab::devices;
use aiworklab::skill::{Catalogue, Delta, Transition};
use aiworklab::store::users::UserRow;
use aiworklab::store::{OpenMode, Store, StoreError};
use aiworklab::sync::{self, wire};
use chrono::SecondsFormat;
use serde_json::{Value, json};

mod common;
#[path = "common/users.rs"]
mod users;
use common::{Rng, Server, quantile};
use users::{insert_users, user_row};

const ENGINEERS: usize = 8;
const PUSH: usize = 200;
const PERIOD: Duration = Duration::from_millis(250);
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A device of the regular fleet: ids v7 or v4, clock behind by `lag`.
    Live { v7: bool, lag_secs: i64 },
    /// Returns after `after` with a backlog dated over the past week.
    Backlog { after: Duration, deltas: usize },
    /// Deltas dated at random over the past year.
    FarPast,
}

#[derive(Debug, Clone, Copy)]
struct Device {
    engineer: usize,
    role: Role,
    period: Duration,
    /// When its first push goes, from the start.
    offset: Duration,
}

fn fleet(name: &str) -> Vec<Device> {
    let live = |engineer, v7| Device {
        engineer,
        role: Role::Live { v7, lag_secs: 0 },
        period: PERIOD,
        offset: PERIOD * engineer as u32 / ENGINEERS as u32,
    };
    let mut out: Vec<Device> = (0..ENGINEERS).map(|e| live(e, name != "b")).collect();
    match name {
        "c" => {
            out = (0..ENGINEERS)
                .flat_map(|e| {
                    [0, 3].map(|lag| Device {
                        engineer: e,
                        role: Role::Live {
                            v7: true,
                            lag_secs: lag,
                        },
                        period: PERIOD * 2,
                        offset: PERIOD * (e as u32 * 2 + u32::from(lag > 0)) / ENGINEERS as u32,
                    })
                })
                .collect();
        }
        "d" => out.push(Device {
            engineer: 0,
            role: Role::Backlog {
                after: Duration::from_secs(30),
                deltas: 10_000,
            },
            period: PERIOD,
            offset: Duration::ZERO,
        }),
        "e" => out.push(Device {
            engineer: 0,
            role: Role::FarPast,
            period: PERIOD,
            offset: Duration::ZERO,
        }),
        _ => {}
    }
    out
}

/// One push as the client saw it.
struct Sample {
    /// Seconds from the start when it was sent.
    at: f64,
    latency: Duration,
    status: u16,
    accepted: usize,
    special: bool,
}

fn transition(rng: &mut Rng) -> (Transition, Option<u8>) {
    match rng.below(100) {
        0..40 => (Transition::Seen, None),
        40..55 => (Transition::Explained, None),
        55..75 => (Transition::CheckPassed, Some(2 + rng.below(3) as u8)),
        75..83 => (Transition::CheckFailed, Some(1)),
        _ => (Transition::Demonstrated, None),
    }
}

fn v7_at(at_ms: i64, rng: &mut Rng) -> uuid::Uuid {
    let at = at_ms.unsigned_abs();
    // Sub-millisecond digits from the generator, so ids minted in one
    // millisecond still rise in the order they are made (as a device's do).
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        at / 1000,
        (at % 1000) as u32 * 1_000_000 + rng.below(1_000_000) as u32,
    );
    uuid::Uuid::new_v7(ts)
}

/// `n` deltas about `pool`, each dated by `at` (ms), with the given ids.
fn deltas(
    rng: &mut Rng,
    pool: &[&str],
    n: usize,
    mut at: impl FnMut(&mut Rng) -> i64,
    v7: bool,
) -> Vec<Delta> {
    let mut out: Vec<Delta> = (0..n)
        .map(|_| {
            let (transition, grade) = transition(rng);
            let at_ms = at(rng);
            Delta {
                id: if v7 {
                    v7_at(at_ms, rng)
                } else {
                    uuid::Uuid::new_v4()
                },
                concept: pool[rng.below(pool.len())].to_string(),
                transition,
                at: from_millis(at_ms),
                grade,
            }
        })
        .collect();
    if v7 {
        out.sort_by_key(|d| (d.at, d.id));
    }
    out
}

fn body(deltas: &[Delta]) -> Vec<u8> {
    let items: Vec<Value> = deltas
        .iter()
        .map(|d| {
            let mut v = json!({
                "id": d.id.to_string(),
                "concept": d.concept,
                "transition": d.transition.as_str(),
                "at": d.at.to_rfc3339_opts(SecondsFormat::Secs, true),
            });
            if let Some(g) = d.grade {
                v["grade"] = json!(g);
            }
            v
        })
        .collect();
    serde_json::to_vec(&json!({ "deltas": items })).expect("JSON")
}

fn now_secs_ms() -> i64 {
    to_millis(SystemClock.now()) / 1000 * 1000
}

fn pools<'s>(rng: &mut Rng, slugs: &[&'s str], n: usize) -> Vec<Vec<&'s str>> {
    (0..n)
        .map(|_| {
            (0..100 + rng.below(201))
                .map(|_| slugs[rng.below(slugs.len())])
                .collect()
        })
        .collect()
}

/// The resident set (`VmRSS`) of `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// A pairing code for each of `owners` (user ids), made in the store
/// before the server holds it.
fn codes(store: &Store, owners: &[String]) -> Vec<String> {
    let org = store.org("acme").expect("org");
    let now = SystemClock.now();
    owners
        .iter()
        .map(|user| {
            let (code, _) = devices::create_pairing_code(org, user, &Context::operator(), now)
                .expect("pairing code");
            code.expose().to_string()
        })
        .collect()
}

/// Pairs one device per code through the API; their access tokens.
async fn pair_all(base: &str, codes: &[String]) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut tokens = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let r = client
            .post(format!("{base}/api/v1/devices/pair"))
            .json(&json!({ "code": code, "device_name": format!("laptop {i}") }))
            .send()
            .await
            .expect("pair");
        assert_eq!(r.status(), 200, "pairing");
        let grant: Value = r.json().await.expect("grant");
        tokens.push(grant["access_token"].as_str().expect("token").to_string());
    }
    tokens
}

/// Runs `devices` against the server for `length` (`unpaced`: back to
/// back), sampling the server's RSS every minute.
async fn drive(
    base: &str,
    pid: u32,
    devices: &[Device],
    tokens: Vec<String>,
    pools: &[Vec<&'static str>],
    length: Duration,
    unpaced: bool,
) -> (Vec<Sample>, Vec<f64>) {
    let start = Instant::now();
    let url = format!("{base}/api/v1/sync/deltas");
    let mut tasks = tokio::task::JoinSet::new();
    for (n, (d, token)) in devices.iter().copied().zip(tokens).enumerate() {
        let url = url.clone();
        let pool = pools[d.engineer].clone();
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((n as u64 + 1) * 0x1000_0001));
            let mut samples = Vec::new();
            let mut backlog: Vec<Vec<Delta>> = match d.role {
                Role::Backlog { deltas: n, .. } => {
                    let now = now_secs_ms();
                    let span = 7 * DAY_MS as usize;
                    let mut all = deltas(
                        &mut rng,
                        &pool,
                        n,
                        |r| now - 7 * DAY_MS + r.below(span) as i64,
                        true,
                    );
                    all.sort_by_key(|d| (d.at, d.id));
                    all.chunks(PUSH).rev().map(<[Delta]>::to_vec).collect()
                }
                _ => Vec::new(),
            };
            let first = match d.role {
                Role::Backlog { after, .. } => after,
                _ => d.offset,
            };
            tokio::time::sleep(first).await;
            let mut next = Instant::now();
            while start.elapsed() < length {
                let batch = match d.role {
                    Role::Live { v7, lag_secs } => {
                        let now = now_secs_ms() - lag_secs * 1000;
                        deltas(&mut rng, &pool, PUSH, |_| now, v7)
                    }
                    Role::Backlog { .. } => match backlog.pop() {
                        Some(b) => b,
                        None => break,
                    },
                    Role::FarPast => {
                        let now = now_secs_ms();
                        let span = 365 * DAY_MS as usize;
                        deltas(&mut rng, &pool, PUSH, |r| now - r.below(span) as i64, false)
                    }
                };
                let sent = start.elapsed().as_secs_f64();
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body(&batch))
                    .send()
                    .await
                    .expect("POST");
                let status = r.status().as_u16();
                let retry_after: u64 = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                let answer: Value = r.json().await.unwrap_or(Value::Null);
                let latency = t.elapsed();
                let accepted = answer["accepted"].as_u64().unwrap_or(0) as usize;
                if status == 429 && matches!(d.role, Role::Backlog { .. }) {
                    // A well-behaved device keeps its backlog and waits as told.
                    backlog.push(batch);
                    tokio::time::sleep(Duration::from_secs(retry_after.min(5))).await;
                }
                assert!(
                    status == 200 || status == 429,
                    "push answered {status}: {answer}"
                );
                samples.push(Sample {
                    at: sent,
                    latency,
                    status,
                    accepted,
                    special: !matches!(d.role, Role::Live { .. }),
                });
                if !unpaced {
                    next += d.period;
                    let now = Instant::now();
                    if next > now {
                        tokio::time::sleep(next - now).await;
                    } else {
                        next = now;
                    }
                }
            }
            samples
        });
    }
    // One sample at the end of each full minute, kept outside the task so
    // that stopping it keeps them.
    let minutes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let rss = tokio::spawn({
        let minutes = Arc::clone(&minutes);
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                minutes.lock().expect("rss samples").push(rss_mib(pid));
            }
        }
    });
    let mut samples = Vec::new();
    while let Some(done) = tasks.join_next().await {
        samples.extend(done.expect("device task"));
    }
    rss.abort();
    let _ = rss.await;
    let mut rss_samples = std::mem::take(&mut *minutes.lock().expect("rss samples"));
    // A run shorter than a minute, or its last part minute, ends here.
    if rss_samples.len() < length.as_secs().div_ceil(60) as usize {
        rss_samples.push(rss_mib(pid));
    }
    (samples, rss_samples)
}

fn p(ms: &mut [Duration], q: f64) -> String {
    if ms.is_empty() {
        "-".into()
    } else {
        format!("{:.0}", quantile(ms, q))
    }
}

/// Prints the minute-by-minute table of one fleet; returns the regular
/// devices' p95 of the first and last minute and of the whole run.
fn report(name: &str, samples: &[Sample], rss: &[f64], length: Duration) -> (f64, f64, f64) {
    let minutes = (length.as_secs_f64() / 60.0).ceil().max(1.0) as usize;
    let bucket = length.as_secs_f64() / minutes as f64;
    println!();
    println!("fleet {name} ({} s):", length.as_secs());
    println!(
        "| minute | pushes ok | deltas | refused (429) | p50 ms | p95 ms | special device: ok / refused / p95 ms | server RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut firsts = (f64::NAN, f64::NAN);
    for m in 0..minutes {
        let in_m = |s: &&Sample| s.at >= m as f64 * bucket && s.at < (m + 1) as f64 * bucket;
        let regular: Vec<&Sample> = samples.iter().filter(in_m).filter(|s| !s.special).collect();
        let special: Vec<&Sample> = samples.iter().filter(in_m).filter(|s| s.special).collect();
        let mut ok: Vec<Duration> = regular
            .iter()
            .filter(|s| s.status == 200)
            .map(|s| s.latency)
            .collect();
        let mut sp: Vec<Duration> = special
            .iter()
            .filter(|s| s.status == 200)
            .map(|s| s.latency)
            .collect();
        let deltas: usize = regular.iter().chain(&special).map(|s| s.accepted).sum();
        let refused = regular.iter().filter(|s| s.status == 429).count();
        let sp_refused = special.iter().filter(|s| s.status == 429).count();
        let p95 = if ok.is_empty() {
            f64::NAN
        } else {
            quantile(&mut ok, 0.95)
        };
        if m == 0 {
            firsts.0 = p95;
        }
        firsts.1 = p95;
        println!(
            "| {} | {} | {deltas} | {refused} | {} | {p95:.0} | {} / {sp_refused} / {} | {:.0} |",
            m + 1,
            ok.len(),
            p(&mut ok, 0.5),
            sp.len(),
            p(&mut sp, 0.95),
            rss.get(m).copied().unwrap_or(f64::NAN),
        );
    }
    let mut all: Vec<Duration> = samples
        .iter()
        .filter(|s| !s.special && s.status == 200)
        .map(|s| s.latency)
        .collect();
    let whole = if all.is_empty() {
        f64::NAN
    } else {
        quantile(&mut all, 0.95)
    };
    println!(
        "fleet {name}: regular devices' p95 first minute {:.0} ms, last {:.0} ms (x{:.2}), whole run {whole:.0} ms",
        firsts.0,
        firsts.1,
        firsts.1 / firsts.0
    );
    (firsts.0, firsts.1, whole)
}

/// One fleet on a fresh data dir.
async fn run_fleet(root: &Path, name: &str, slugs: &[&'static str], length: Duration) -> f64 {
    let dir = root.join(format!("fleet-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let bind = common::loopback_bind();
    let (settings, config_file) = common::settings(&dir, &bind, &["acme"], |raw| {
        raw.rate_limits.pairing = RawRateLimit::new(1_000, 60);
    });
    let devices = fleet(name);
    let now_ms = to_millis(SystemClock.now());
    let users: Vec<UserRow> = (0..ENGINEERS).map(|i| user_row(i, now_ms)).collect();
    let store = Store::open(&settings, OpenMode::Create, &SystemClock).expect("store");
    insert_users(store.org("acme").expect("org"), &users);
    let owners: Vec<String> = devices
        .iter()
        .map(|d| users[d.engineer].id.clone())
        .collect();
    let codes = codes(&store, &owners);
    drop(store);
    let server = Server::start(&config_file, &bind).await;
    let tokens = pair_all(&server.base, &codes).await;
    let pools = pools(&mut Rng(0x2545_f491_4f6c_dd1d), slugs, ENGINEERS);
    eprintln!(
        "fleet {name}: {} devices for {} s ...",
        devices.len(),
        length.as_secs()
    );
    let (samples, rss) = drive(
        &server.base,
        server.child.id(),
        &devices,
        tokens,
        &pools,
        length,
        false,
    )
    .await;
    let whole = report(name, &samples, &rss, length).2;
    println!(
        "fleet {name}: server peak RSS {:.0} MiB",
        common::peak_rss_mib(server.child.id())
    );
    whole
}

/// (a) on an org seeded with `engineers` x `per` deltas, against raw
/// inserts into the same database.
async fn run_big(
    root: &Path,
    slugs: &[&'static str],
    length: Duration,
    engineers: usize,
    per: usize,
    from: Option<&Path>,
) {
    let dir = root.join("fleet-big");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let bind = common::loopback_bind();
    let (settings, config_file) = common::settings(&dir, &bind, &["acme"], |raw| {
        raw.rate_limits.pairing = RawRateLimit::new(1_000, 60);
        raw.rate_limits.sync = common::UNPACED;
    });
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let owners = match from {
        Some(src) => copy_seeded(src, &dir, &settings),
        None => seed_big(&dir, &settings, slugs, engineers, per, &mut rng),
    };
    let pools_all = pools(&mut rng, slugs, ENGINEERS);
    let store = Store::open(&settings, OpenMode::Create, &SystemClock).expect("store");
    let devices = fleet("a");
    let owners: Vec<String> = devices.iter().map(|d| owners[d.engineer].clone()).collect();
    let paced_codes = codes(&store, &owners);
    let flat_out_codes = codes(&store, &owners);
    drop(store);
    let server = Server::start(&config_file, &bind).await;
    let tokens = pair_all(&server.base, &paced_codes).await;
    let pools: Vec<Vec<&'static str>> = pools_all[..ENGINEERS].to_vec();
    let (samples, rss) = drive(
        &server.base,
        server.child.id(),
        &devices,
        tokens,
        &pools,
        length,
        false,
    )
    .await;
    report("a on the big org", &samples, &rss, length);
    println!(
        "big org: server peak RSS {:.0} MiB",
        common::peak_rss_mib(server.child.id())
    );
    let tokens = pair_all(&server.base, &flat_out_codes).await;
    let flat_out = Duration::from_secs(60).min(length);
    let (samples, _) = drive(
        &server.base,
        server.child.id(),
        &devices,
        tokens,
        &pools,
        flat_out,
        true,
    )
    .await;
    let sent: usize = samples.iter().map(|s| s.accepted).sum();
    let mut lat: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    let http_rate = sent as f64 / flat_out.as_secs_f64();
    drop(server);
    // The same number of rows, raw, into the same database.
    let store = Store::open(&settings, OpenMode::Create, &SystemClock).expect("store");
    let org = store.org("acme").expect("org");
    let t = Instant::now();
    for (i, chunk) in (0..sent).collect::<Vec<_>>().chunks(PUSH).enumerate() {
        let u = &owners[i % ENGINEERS];
        let pool = &pools[i % ENGINEERS];
        let now = now_secs_ms();
        let batch = deltas(&mut rng, pool, chunk.len(), |_| now, true);
        org.db
            .write(|tx| {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO deltas (id, user_id, device_id, concept, transition, at, grade, received_at)
                     VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (user_id, at, id) DO NOTHING",
                )?;
                for d in &batch {
                    stmt.execute(rusqlite::params![
                        d.id.to_string(),
                        u,
                        d.concept,
                        d.transition.as_str(),
                        to_millis(d.at),
                        d.grade,
                        now
                    ])?;
                }
                Ok::<_, StoreError>(())
            })
            .expect("raw insert");
    }
    let raw = t.elapsed();
    println!(
        "big org, 8 devices back to back for {} s: {sent} deltas, {http_rate:.0} deltas/s, p50 {:.0} ms, p95 {:.0} ms per push; raw inserts of as many rows into the same database: {:.0} rows/s ({:.0}% of raw)",
        flat_out.as_secs(),
        quantile(&mut lat, 0.5),
        quantile(&mut lat, 0.95),
        sent as f64 / raw.as_secs_f64(),
        100.0 * http_rate / (sent as f64 / raw.as_secs_f64()),
    );
}

/// Seeds the `big` org in `dir` with `engineers` x `per` deltas through
/// `sync::push`, then measures migration 0024 on it; returns the
/// engineers' user ids.
fn seed_big(
    dir: &Path,
    settings: &aiworklab::config::Settings,
    slugs: &[&'static str],
    engineers: usize,
    per: usize,
    rng: &mut Rng,
) -> Vec<String> {
    let catalogue = Catalogue::builtin().expect("catalogue");
    let now = SystemClock.now();
    let now_ms = to_millis(now);
    let users: Vec<UserRow> = (0..engineers).map(|i| user_row(i, now_ms)).collect();
    let store = Store::open(settings, OpenMode::Create, &SystemClock).expect("store");
    let org = store.org("acme").expect("org");
    insert_users(org, &users);
    let pools_all = pools(rng, slugs, engineers);
    eprintln!("big: seeding {engineers} x {per} deltas through sync::push ...");
    let t = Instant::now();
    let known = KnownIds::load(&catalogue, org).expect("known");
    for (u, pool) in users.iter().zip(&pools_all) {
        let span = 365 * DAY_MS as usize;
        let mut all = deltas(rng, pool, per, |r| now_ms - 1 - r.below(span) as i64, true);
        all.sort_by_key(|d| (d.at, d.id));
        for chunk in all.chunks(500) {
            let parsed = wire::parse_push(&body(chunk), &known, now).expect("valid");
            sync::push(org, &u.id, None, &parsed, now).expect("push");
        }
    }
    let seeded = t.elapsed();
    println!();
    println!(
        "big org: {} deltas of {engineers} engineers seeded in {:.0} s ({:.0} deltas/s), {:.0} MiB",
        engineers * per,
        seeded.as_secs_f64(),
        (engineers * per) as f64 / seeded.as_secs_f64(),
        org_size_mib(dir)
    );
    // Back to the schema before migration 0024, then open again: that
    // migration as an existing org of this size meets it (it reads every
    // delta once, in concept order, to fill the spans and tails).
    org.db
        .write(|tx| {
            tx.execute_batch(
                "DROP TRIGGER concept_states_delete_pending; DROP TABLE fold_pending;
                 ALTER TABLE concept_states DROP COLUMN tail;
                 ALTER TABLE fold_checkpoints DROP COLUMN span;
                 CREATE INDEX deltas_user_concept ON deltas (user_id, concept, at);
                 PRAGMA user_version = 23;",
            )?;
            Ok::<_, StoreError>(())
        })
        .expect("schema of 0023");
    drop(store);
    let t = Instant::now();
    drop(Store::open(settings, OpenMode::Create, &SystemClock).expect("migrated"));
    println!(
        "big org: migration 0024 on it took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    users.into_iter().map(|u| u.id).collect()
}

/// Copies the data dir of an org the sync bench seeded and kept (`src`,
/// with its `seeded` marker) into `dir`; returns its first engineers'
/// user ids.
fn copy_seeded(src: &Path, dir: &Path, settings: &aiworklab::config::Settings) -> Vec<String> {
    assert!(
        src.join("seeded").exists(),
        "BENCH_BIG_FROM: {} holds no org the sync bench finished seeding",
        src.display()
    );
    let t = Instant::now();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg(src.join("data"))
        .arg(dir)
        .status()
        .expect("cp");
    assert!(status.success(), "copying {} failed", src.display());
    let copied = t.elapsed();
    // Opening migrates the copy to this build's schema (the kept org may
    // predate migrations, e.g. 0022's rebuild of the deltas table).
    let t = Instant::now();
    let store = Store::open(settings, OpenMode::Create, &SystemClock).expect("store");
    let opened = t.elapsed();
    let org = store.org("acme").expect("org");
    let (deltas, users, ids) = org
        .db
        .read(|c| {
            let deltas: i64 = c.query_row("SELECT count(*) FROM deltas", [], |r| r.get(0))?;
            let users: i64 = c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
            let mut stmt = c.prepare("SELECT id FROM users ORDER BY user_name LIMIT ?1")?;
            let ids = stmt
                .query_map([ENGINEERS as i64], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, StoreError>((deltas, users, ids))
        })
        .expect("read the copy");
    println!();
    println!(
        "big org: a copy of {} ({deltas} deltas of {users} engineers, {:.0} MiB), copied in {:.0} s, opened (migrations to this build's schema included) in {:.1} s",
        src.display(),
        org_size_mib(dir),
        copied.as_secs_f64(),
        opened.as_secs_f64()
    );
    ids
}

/// The size of the org databases under `dir`, in MiB.
fn org_size_mib(dir: &Path) -> f64 {
    let bytes: u64 = std::fs::read_dir(dir.join("data/orgs"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    bytes as f64 / 1_048_576.0
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let minutes: f64 = std::env::var("BENCH_MINUTES")
        .ok()
        .map(|v| v.parse().expect("BENCH_MINUTES is a number"))
        .unwrap_or(3.0);
    let length = if full {
        Duration::from_secs_f64(minutes * 60.0)
    } else {
        Duration::from_secs(3)
    };
    let fleets = std::env::var("BENCH_FLEETS").unwrap_or_else(|_| "a,b,c,d,e,big".into());
    let num = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(default)
    };
    let catalogue: &'static Catalogue = Box::leak(Box::new(
        Catalogue::builtin().expect("the shipped catalogue"),
    ));
    let slugs: Arc<Vec<&'static str>> =
        Arc::new(catalogue.concepts().map(|c| c.slug.as_str()).collect());
    let root = std::path::PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()));
    std::fs::create_dir_all(&root).expect("BENCH_DIR");
    let scratch = tempfile::tempdir_in(&root).expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut whole = Vec::new();
    for name in fleets.split(',').map(str::trim) {
        match name {
            "big" => rt.block_on(run_big(
                scratch.path(),
                &slugs,
                length,
                num("BENCH_BIG_ENGINEERS", if full { 1_000 } else { 10 }),
                num("BENCH_BIG_DELTAS", if full { 1_000 } else { 50 }),
                std::env::var_os("BENCH_BIG_FROM").as_deref().map(Path::new),
            )),
            "a" | "b" | "c" | "d" | "e" => {
                let p95 = rt.block_on(run_fleet(scratch.path(), name, &slugs, length));
                whole.push((name.to_string(), p95));
            }
            other => panic!("BENCH_FLEETS: unknown fleet {other}"),
        }
    }
    println!();
    for (name, p95) in &whole {
        println!("fleet {name}: regular devices' p95 over the run {p95:.0} ms");
    }
}
