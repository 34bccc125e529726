//! A seeded org for the benches that read one (sync, pages): engineers in
//! teams, each with a year of deltas over the shipped catalogue, pushed
//! through `sync::push` so that every derived table is what ingest makes.

use std::time::{Duration, Instant};

use aiworklab::catalogue::{KnownIds, Standing};
use aiworklab::clock::{Clock, SystemClock, from_millis, to_millis};
use aiworklab::skill::Catalogue;
use aiworklab::skill::{Delta, Transition};
use aiworklab::store::scim::{self as scim_sql, GroupRow};
use aiworklab::store::users::UserRow;
use aiworklab::store::{OrgDb, StoreError};
use aiworklab::sync;
use chrono::{DateTime, Utc};

use crate::common::Rng;
use crate::users::{insert_users, user_row};

/// Deltas per push while seeding, as a device sends them.
pub const BATCH: usize = 500;
const DAY_MS: i64 = 86_400_000;

/// How devices mint delta ids: time-ordered UUIDv7 (RFC 9562 §5.7), as
/// docs/skill-graph.md asks of them, or random v4, which the appliance
/// accepts too but indexes at random places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    V7,
    V4,
}

/// One engineer's deltas, oldest first as a device sends its backlog:
/// over 100 to 300 concepts of the catalogue, dated within the last
/// `span_days`, with the transitions' usual mix and grades on checks.
pub fn engineer_deltas(
    rng: &mut Rng,
    ids: Ids,
    slugs: &[&str],
    count: usize,
    span_days: i64,
    now: DateTime<Utc>,
) -> Vec<Delta> {
    let pool: Vec<&str> = (0..100 + rng.below(201))
        .map(|_| slugs[rng.below(slugs.len())])
        .collect();
    let span = usize::try_from(span_days * DAY_MS).expect("positive span");
    let now_ms = to_millis(now);
    let mut out: Vec<Delta> = (0..count)
        .map(|_| {
            let (transition, grade) = match rng.below(100) {
                0..40 => (Transition::Seen, None),
                40..55 => (Transition::Explained, None),
                55..75 => (Transition::CheckPassed, Some(2 + rng.below(3) as u8)),
                75..83 => (Transition::CheckFailed, Some(1)),
                _ => (Transition::Demonstrated, None),
            };
            Delta {
                id: uuid::Uuid::new_v4(),
                concept: pool[rng.below(pool.len())].to_string(),
                transition,
                at: from_millis(now_ms - 1 - rng.below(span) as i64),
                grade,
            }
        })
        .collect();
    out.sort_by_key(|d| d.at);
    if ids == Ids::V7 {
        // Minted when the fact happened, so a backlog's ids rise with `at`.
        for d in &mut out {
            let at = d.at.timestamp_millis().unsigned_abs();
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                at / 1000,
                (at % 1000) as u32 * 1_000_000,
            );
            d.id = uuid::Uuid::new_v7(ts);
        }
    }
    out
}

/// The size of a seeded org.
pub struct OrgSize {
    pub engineers: usize,
    pub deltas_per_engineer: usize,
    pub team_size: usize,
    pub ids: Ids,
}

/// Seeds `org`: `engineer.<i>` users (as SCIM makes them), teams of
/// `team_size` named `Team <nnnn>`, then every engineer's deltas (dated in
/// the last 364 days) through `sync::push`, 500 at a time.
pub fn seed_org(org: &OrgDb, catalogue: &Catalogue, slugs: &[&str], size: &OrgSize) {
    let now = SystemClock.now();
    let now_ms = to_millis(now);
    let users: Vec<UserRow> = (0..size.engineers).map(|i| user_row(i, now_ms)).collect();
    insert_users(org, &users);
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    org.db
        .write(|tx| {
            for (g, members) in ids.chunks(size.team_size).enumerate() {
                let row = GroupRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    display_name: format!("Team {g:04}"),
                    external_id: None,
                    created_at: now_ms,
                    updated_at: now_ms,
                    version: 1,
                };
                scim_sql::insert_group(tx, &row)?;
                scim_sql::set_members(tx, &row.id, members)?;
            }
            Ok::<_, StoreError>(())
        })
        .expect("seed teams");
    let total = size.engineers * size.deltas_per_engineer;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (t, mut done, mut last_report) = (Instant::now(), 0, Instant::now());
    let known = KnownIds::load(catalogue, org).expect("known ids");
    for (i, id) in ids.iter().enumerate() {
        let deltas = engineer_deltas(
            &mut rng,
            size.ids,
            slugs,
            size.deltas_per_engineer,
            364,
            now,
        );
        for batch in deltas.chunks(BATCH) {
            assert!(
                batch
                    .iter()
                    .all(|d| known.standing(&d.concept) == Standing::Known)
            );
            let pushed = sync::push(org, id, None, batch, now).expect("seed push");
            assert_eq!(pushed.accepted, batch.len());
        }
        done += deltas.len();
        if last_report.elapsed() > Duration::from_secs(10) || i + 1 == ids.len() {
            last_report = Instant::now();
            let per_s = done as f64 / t.elapsed().as_secs_f64();
            eprintln!(
                "seeded {done} of {total} deltas ({:.0}%), {per_s:.0}/s, about {:.0} s left",
                100.0 * done as f64 / total as f64,
                (total - done) as f64 / per_s
            );
        }
    }
}
