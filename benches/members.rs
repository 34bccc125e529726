//! The admin pages' members directory at 100,000 members: one org with
//! 100,000 engineers in 100 groups of 1,000, 1 % deactivated, a few admins
//! and viewers, in a real SQLCipher store.
//!
//! Run: `cargo bench --bench members` (under `cargo test` it runs with
//! 2,000 members and 20 rounds as a smoke check; `cargo test --bench
//! members -- --bench` runs the full size in the dev profile). Measured in
//! one run, interleaved round by round so a busy moment on the shared
//! machine falls on all alike:
//!
//! - the baseline: one raw SQL query of the same first page (50 rows in
//!   user-name order, by keyset) on the same database;
//! - `users::directory::search` (what `/o/<org>/admin/members` runs, then
//!   renders) for: the first page; a page deep in the listing; a search
//!   that finds ten people; a search by email; a search every member
//!   matches (`acme`, in every address); role admin; role member in a
//!   group; status deactivated; and a group.
//!
//! Members are seeded straight through the store in batches.

use std::time::{Duration, Instant};

use aiworklab::clock::{Clock, SystemClock, to_millis};
use aiworklab::config::OrgSettings;
use aiworklab::store::{OpenMode, Store, StoreError};
use aiworklab::users::directory::{self, Query, RawQuery};

#[allow(dead_code)] // the helpers other benches share; this one needs a few
mod common;
#[path = "common/users.rs"]
mod users;
use common::{Rng, quantile};
use users::seed_directory;

fn name(i: usize) -> String {
    format!("engineer.{i:05}@acme.example")
}

fn seed(store: &Store, members: usize) {
    let org = store.org("bench").expect("org");
    let now = to_millis(SystemClock.now());
    seed_directory(
        org,
        0..members,
        members.div_ceil(100),
        |g| format!("Team {g:03}"),
        now,
    );
}

/// The first page of the directory, as one raw query.
const RAW_PAGE: &str = "SELECT id, oidc_issuer, oidc_subject, user_name, display_name, emails,
    external_id, active, admin_granted, provisioned_by, created_at, updated_at
    FROM users WHERE deleted_at IS NULL AND user_name COLLATE NOCASE > ?1
    ORDER BY user_name COLLATE NOCASE LIMIT 51";

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (members, rounds) = if full { (100_000, 300) } else { (2_000, 20) };
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("tempdir");
    let bind = common::loopback_bind();
    let (settings, _) = common::settings(dir.path(), &bind, &["bench"], |_| {});
    let store = Store::open(&settings, OpenMode::Create, &SystemClock).expect("store");
    let t = Instant::now();
    seed(&store, members);
    eprintln!(
        "seeded {members} members in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let org = store.org("bench").expect("org");
    let org_settings: OrgSettings = settings.orgs[0].clone();

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let kinds = [
        "raw SQL, first page (baseline)",
        "first page",
        "a page deep in the listing",
        "search finding 10 (user name)",
        "search by email",
        "search every member matches",
        "role admin",
        "role member in a group",
        "status deactivated",
        "group",
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    for round in 0..rounds + rounds / 10 {
        let deep = name(rng.below(members));
        let ten = format!("engineer.{:04}", rng.below(members / 10));
        let email = name(rng.below(members));
        let group = format!("Team {:03}", rng.below(100));
        let queries = [
            RawQuery::default(),
            RawQuery {
                after: deep.clone(),
                ..RawQuery::default()
            },
            RawQuery {
                q: ten,
                ..RawQuery::default()
            },
            RawQuery {
                q: email,
                ..RawQuery::default()
            },
            RawQuery {
                q: "acme".into(),
                ..RawQuery::default()
            },
            RawQuery {
                role: "admin".into(),
                ..RawQuery::default()
            },
            RawQuery {
                role: "member".into(),
                group: group.clone(),
                ..RawQuery::default()
            },
            RawQuery {
                status: "deactivated".into(),
                ..RawQuery::default()
            },
            RawQuery {
                group,
                ..RawQuery::default()
            },
        ];
        let t = Instant::now();
        let n = org
            .db
            .read(|c| {
                let mut stmt = c.prepare_cached(RAW_PAGE)?;
                let rows = stmt.query_map([""], |r| r.get::<_, String>(3))?;
                Ok::<_, StoreError>(rows.count())
            })
            .expect("raw");
        let raw = t.elapsed();
        assert_eq!(n, 51.min(members));
        let warm = round >= rounds / 10;
        if warm {
            samples[0].push(raw);
        }
        for (k, q) in queries.iter().enumerate() {
            let parsed = Query::parse(q).expect("valid");
            let t = Instant::now();
            let page = directory::search(org, &org_settings, &parsed).expect("search");
            let took = t.elapsed();
            assert!(
                !page.members.is_empty() || k == 1,
                "{}: nothing found",
                kinds[k + 1]
            );
            if warm {
                samples[k + 1].push(took);
            }
        }
    }
    println!(
        "members directory, {members} members, {rounds} rounds ({})",
        if full { "full" } else { "smoke" }
    );
    for (kind, s) in kinds.iter().zip(samples.iter_mut()) {
        println!(
            "  {kind:<34} p50 {:>7.2} ms   p95 {:>7.2} ms",
            quantile(s, 0.5),
            quantile(s, 0.95)
        );
    }
}
