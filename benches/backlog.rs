//! Backlog sync: a kernel store holding 100,000 queued deltas (an
//! engineer's weeks offline) sent by `aiworklab agent sync`, the release
//! binary as a process, to the release appliance on loopback with its
//! default configuration (rate limits included). Timed from the command's
//! start to its exit: the catalogue fetch, 200 pushes of 500, and the pull
//! after them. Beside it, in the same run, raw inserts of as many rows into
//! the same org database (one prepared `INSERT` per row, 500 per
//! transaction: what storing them costs without HTTP, parsing or folding).
//!
//! The device is paired through the appliance's API by the kernel's own
//! `sync::pair`; the deltas are recorded with `LocalStore::record` (1,000
//! per call, as hooks would over time), times in order over the last
//! minutes so the appliance folds them forwards.
//!
//! Run: `cargo bench --bench backlog` (under `cargo test` it sends 1,200
//! deltas as a smoke check). `BENCH_BACKLOG` sets the number of deltas,
//! `BENCH_DIR` where the scratch data goes, `AIWORKLAB_BENCH_BIN` another
//! build of the binary.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use aiworklab::agent::home::Home;
use aiworklab::agent::observe::Observation;
use aiworklab::agent::store::LocalStore;
use aiworklab::audit::Context;
use aiworklab::clock::{Clock, SystemClock};
use aiworklab::devices;
use aiworklab::skill::Catalogue;
use aiworklab::skill::Transition;
use aiworklab::store::{OpenMode, Store, StoreError};
use chrono::{DateTime, Utc};

#[allow(dead_code)] // the helpers other benches share; this one needs a few
mod common;
#[path = "common/users.rs"]
mod users;
use common::Server;
use users::{insert_users, user_row};

/// Observations per `LocalStore::record` call while filling the backlog.
const RECORD: usize = 1_000;
/// Rows per transaction of the raw baseline (the sync client's batch).
const BATCH: usize = 500;

fn bin() -> PathBuf {
    std::env::var_os("AIWORKLAB_BENCH_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_aiworklab")),
        PathBuf::from,
    )
}

/// `n` distinct facts over the catalogue's concepts, one millisecond
/// apart, ending a second before `now`.
fn backlog(slugs: &[String], n: usize, now: DateTime<Utc>) -> Vec<Observation> {
    let start = now - chrono::Duration::milliseconds(n as i64 + 1_000);
    (0..n)
        .map(|i| Observation {
            concept: slugs[i % slugs.len()].clone(),
            transition: if i % 3 == 2 {
                Transition::Explained
            } else {
                Transition::Seen
            },
            at: start + chrono::Duration::milliseconds(i as i64),
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, as a quick check that the bench still works.
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("BENCH_BACKLOG")
        .ok()
        .map(|v| v.parse().expect("BENCH_BACKLOG is a number"))
        .unwrap_or(if full { 100_000 } else { 1_200 });
    let root = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()));
    std::fs::create_dir_all(&root).expect("BENCH_DIR");
    let scratch = tempfile::tempdir_in(&root).expect("tempdir");
    let bind = common::loopback_bind();
    // The appliance's defaults: the backlog must get through its limits.
    let (settings, config_file) = common::settings(scratch.path(), &bind, &["acme"], |_| {});
    let now = SystemClock.now();
    let now_ms = now.timestamp_millis();
    let engineers = [user_row(0, now_ms), user_row(1, now_ms)];
    let code = {
        let store = Store::open(&settings, OpenMode::Create, &SystemClock).expect("store");
        let org = store.org("acme").expect("org");
        insert_users(org, &engineers);
        let (code, _) =
            devices::create_pairing_code(org, &engineers[0].id, &Context::operator(), now)
                .expect("pairing code");
        code.expose().to_string()
    };
    let catalogue = Catalogue::builtin().expect("catalogue");
    let slugs: Vec<String> = catalogue.concepts().map(|c| c.slug.clone()).collect();
    let facts = backlog(&slugs, n, now);
    let home_dir = scratch.path().join("agent");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(Server::start(&config_file, &bind));
    let home = Home::at(&home_dir);
    let mut local = LocalStore::open(&home).expect("kernel store");
    rt.block_on(aiworklab::agent::sync::pair(
        &mut local,
        &server.base,
        &code,
        "laptop",
        None,
    ))
    .expect("pairs");
    let t = Instant::now();
    for (i, chunk) in facts.chunks(RECORD).enumerate() {
        local
            .record("bench", &i.to_string(), chunk)
            .expect("records");
    }
    let recorded = t.elapsed();
    assert_eq!(local.outbox_len().expect("outbox"), n, "all queued");
    drop(local);

    eprintln!("backlog: {n} deltas queued; agent sync ...");
    let t = Instant::now();
    let out = Command::new(bin())
        .args(["agent", "sync"])
        .env("AIWORKLAB_AGENT_HOME", &home_dir)
        .env("AIWORKLAB_AGENT_KEYCHAIN", "off")
        .env_remove("AIWORKLAB_CONFIG")
        .output()
        .expect("agent sync runs");
    let synced = t.elapsed();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "agent sync failed: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!("Sent {n} new delta(s)")) && said.contains("0 still queued"),
        "{said}"
    );
    let local = LocalStore::open(&home).expect("kernel store");
    assert_eq!(
        local.outbox_len().expect("outbox"),
        0,
        "nothing left queued"
    );
    drop(local);
    drop(server);

    // The same rows, raw, into the same org database, for the other engineer.
    let store = Store::open(&settings, OpenMode::Create, &SystemClock).expect("store");
    let org = store.org("acme").expect("org");
    let user = &engineers[1].id;
    let t = Instant::now();
    for chunk in facts.chunks(BATCH) {
        org.db
            .write(|tx| {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO deltas (id, user_id, device_id, concept, transition, at, grade, received_at)
                     VALUES (?1, ?2, NULL, ?3, ?4, ?5, NULL, ?6) ON CONFLICT (user_id, at, id) DO NOTHING",
                )?;
                for o in chunk {
                    stmt.execute(rusqlite::params![
                        uuid::Uuid::now_v7().to_string(),
                        user,
                        o.concept,
                        o.transition.as_str(),
                        o.at.timestamp_millis(),
                        now_ms
                    ])?;
                }
                Ok::<_, StoreError>(())
            })
            .expect("raw insert");
    }
    let raw = t.elapsed();
    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!("backlog sync: {n} queued deltas to the appliance on loopback");
    println!("| | time s | deltas/s |");
    println!("|---|---|---|");
    println!(
        "| `aiworklab agent sync` (catalogue, {} pushes, pull) | {:.2} | {:.0} |",
        n.div_ceil(BATCH),
        synced.as_secs_f64(),
        rate(synced)
    );
    println!(
        "| raw inserts into the org database ({BATCH} per transaction) | {:.2} | {:.0} |",
        raw.as_secs_f64(),
        rate(raw)
    );
    println!(
        "| (setup) recording them in the kernel's store ({RECORD} per call) | {:.2} | {:.0} |",
        recorded.as_secs_f64(),
        rate(recorded)
    );
    println!(
        "goal: a 100,000-delta backlog in ≤ 10 s: {}",
        if n < 100_000 {
            "not measured (smaller backlog)"
        } else if synced.as_secs_f64() <= 10.0 {
            "met"
        } else {
            "MISSED"
        }
    );
}
