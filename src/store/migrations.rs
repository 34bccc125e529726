//! Schema migrations, embedded in the binary, numbered, and applied at
//! start-up. `rusqlite_migration` tracks the version in SQLite's
//! `user_version`, so a database knows which schema it holds. Never edit a
//! released migration: add the next number.

use std::sync::LazyLock;

use rusqlite_migration::{M, Migrations};

mod facts_with_folds;

const SYSTEM_STEPS: &[M<'static>] = &[
    M::up(include_str!("migrations/system/0001_orgs.sql")).comment("registry of created orgs"),
    M::up(include_str!("migrations/system/0002_setup_secret.sql"))
        .comment("the single-use setup secret of a new installation"),
];

const ORG_STEPS: &[M<'static>] = &[
    M::up(include_str!("migrations/org/0001_tokens_audit.sql"))
        .comment("API tokens and the audit log"),
    M::up(include_str!("migrations/org/0002_users_sessions.sql"))
        .comment("users, groups, sessions, sign-ins in progress, break-glass links"),
    M::up(include_str!("migrations/org/0003_devices_deltas.sql"))
        .comment("devices, pairing codes, deltas, privacy choices"),
    M::up(include_str!("migrations/org/0004_concept_states.sql"))
        .comment("per-engineer concept states for aggregates"),
    M::up(include_str!("migrations/org/0005_scim.sql"))
        .comment("SCIM versions, attributes and deleted users"),
    M::up(include_str!("migrations/org/0006_custom_concepts.sql"))
        .comment("concepts an org adds to the shipped catalogue"),
    M::up(include_str!("migrations/org/0007_concept_weeks.sql"))
        .comment("weekly activity per engineer and concept, for trends"),
    M::up(include_str!("migrations/org/0008_scim_list_indexes.sql"))
        .comment("indexes of live and deleted users for SCIM paging and counts"),
    M::up(include_str!("migrations/org/0009_aggregate_totals.sql"))
        .comment("org aggregates and weekly trends as totals kept by triggers"),
    M::up(include_str!("migrations/org/0010_state_fold_cursor.sql"))
        .comment("the whole fold of each concept state and its cursor, for incremental folds"),
    M::up(include_str!(
        "migrations/org/0011_drop_delta_concept_index.sql"
    ))
    .comment("no per-concept index of deltas: pushes fold on from the stored states"),
    M::up(include_str!("migrations/org/0012_per_engineer_keys.sql"))
        .comment("weekly activity keyed by engineer first; concept states indexed by concept only"),
    M::up(include_str!("migrations/org/0013_sign_in_browser.sql"))
        .comment("sign-ins in progress bound to the browser that started them"),
    M::up(include_str!("migrations/org/0014_refresh_generations.sql")).comment(
        "the generation of each device's current refresh token, to detect any superseded one",
    ),
    M::up(include_str!("migrations/org/0015_nested_groups.sql")).comment(
        "direct group members, users and groups; group_members becomes the effective membership",
    ),
    M::up(include_str!("migrations/org/0016_privacy_releases.sql")).comment(
        "aggregate releases per scope and period, their members, kept weeks and team sightings",
    ),
    M::up(include_str!("migrations/org/0017_oidc_test_logins.sql"))
        .comment("test sign-ins in progress, started from the admin page's checklist"),
    M::up(include_str!("migrations/org/0018_fold_checkpoints.sql")).comment(
        "fold checkpoints per engineer and concept, and the per-concept delta index they read",
    ),
    M::up(include_str!("migrations/org/0019_generated_checks.sql"))
        .comment("comprehension checks the org's model wrote, with their provenance"),
    M::up(include_str!("migrations/org/0020_viewer_role.sql"))
        .comment("the viewer role's direct grants; engineers syncing, kept with each release"),
    M::up(include_str!("migrations/org/0021_admin_pages.sql"))
        .comment("audit filter indexes, members search (trigram) and filter indexes"),
    M::up(include_str!("migrations/org/0022_delta_time_key.sql"))
        .comment("deltas stored once per (engineer, at, id): any id lands at the end of the index"),
    M::up(include_str!("migrations/org/0023_refold_queue.sql"))
        .comment("concepts whose deep refold a worker does in slices, outside the push"),
];

/// The org steps with a Rust part, after [`ORG_STEPS`].
fn org_steps_with_hooks() -> impl Iterator<Item = M<'static>> {
    [M::up_with_hook(
        include_str!("migrations/org/0024_facts_with_folds.sql"),
        facts_with_folds::fill,
    )
    .comment("facts kept with their folds (spans, tails, waiting facts); no per-concept index")]
    .into_iter()
}

/// Migrations of `system.db`.
pub static SYSTEM: Migrations<'static> = Migrations::from_slice(SYSTEM_STEPS);

/// Migrations of every `orgs/<slug>.db`.
pub static ORG: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(
        ORG_STEPS
            .iter()
            .cloned()
            .chain(org_steps_with_hooks())
            .collect(),
    )
});

/// The schema version a fully migrated `system.db` reports.
pub const SYSTEM_VERSION: usize = SYSTEM_STEPS.len();

/// The schema version a fully migrated org database reports.
pub const ORG_VERSION: usize = ORG_STEPS.len() + 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        SYSTEM.validate().expect("system migrations");
        ORG.validate().expect("org migrations");
        assert_eq!(SYSTEM_VERSION, 2);
        assert_eq!(ORG_VERSION, 24);
        let fresh = rusqlite::Connection::open_in_memory().expect("memory db");
        let all = ORG.pending_migrations(&fresh).expect("pending");
        assert_eq!(usize::try_from(all).ok(), Some(ORG_VERSION));
    }

    #[test]
    fn concept_weeks_are_backfilled_from_the_deltas_already_held() {
        let mut conn = rusqlite::Connection::open_in_memory().expect("memory db");
        ORG.to_version(&mut conn, 6).expect("to 6");
        conn.execute_batch(
            "INSERT INTO users (id, user_name, provisioned_by, created_at, updated_at)
                 VALUES ('u1', 'priya', 'operator', 0, 0);
             -- Tue 6 and Sun 11 Jan 2026 (one week), Mon 12 Jan (the next).
             INSERT INTO deltas (id, user_id, concept, transition, at, received_at) VALUES
                 ('a', 'u1', 'sql-joins', 'seen', 1767693600000, 0),
                 ('b', 'u1', 'sql-joins', 'demonstrated', 1768172400000, 0),
                 ('c', 'u1', 'sql-joins', 'seen', 1768176000000, 0);",
        )
        .expect("deltas");
        ORG.to_latest(&mut conn).expect("to latest");
        let weeks: Vec<(i64, i64)> = conn
            .prepare("SELECT week, demonstrated FROM concept_weeks ORDER BY week")
            .expect("query")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("weeks");
        let monday = |ms: i64| crate::graph::trend::week_of(crate::clock::from_millis(ms));
        assert_eq!(
            weeks,
            [(monday(1767693600000), 1), (monday(1768176000000), 0)]
        );
        assert_eq!(weeks[1].0 - weeks[0].0, 7);
    }

    /// Migration 0022 keys deltas by (engineer, at, id): every row and its
    /// `seq` survive, the AUTOINCREMENT high-water mark too (above the
    /// largest `seq` left once the newest deltas were deleted), a batch
    /// sent again is still a duplicate, and only the same id at another
    /// time is another delta.
    #[test]
    fn deltas_keyed_by_time_keep_every_row_and_never_reuse_a_seq() {
        let mut conn = rusqlite::Connection::open_in_memory().expect("memory db");
        ORG.to_version(&mut conn, 21).expect("to 21");
        conn.execute_batch(
            "INSERT INTO users (id, user_name, provisioned_by, created_at, updated_at)
                 VALUES ('u1', 'priya', 'operator', 0, 0), ('u2', 'amal', 'operator', 0, 0);
             INSERT INTO deltas (id, user_id, device_id, concept, transition, at, grade, received_at) VALUES
                 ('a', 'u1', 'd1', 'sql-joins', 'seen', 1767693600000, NULL, 5),
                 ('b', 'u1', NULL, 'sql-joins', 'check_passed', 1768172400000, 3, 6),
                 ('a', 'u2', 'd2', 'git-remotes', 'demonstrated', 1768176000000, NULL, 7),
                 ('z', 'u2', 'd2', 'git-remotes', 'seen', 1768176000001, NULL, 8),
                 ('y', 'u2', 'd2', 'git-remotes', 'seen', 1768176000002, NULL, 9);
             DELETE FROM deltas WHERE id IN ('z', 'y');",
        )
        .expect("deltas");
        /// seq, id, user_id, device_id, at, grade, received_at
        type Row = (i64, String, String, Option<String>, i64, Option<i64>, i64);
        let rows = |conn: &rusqlite::Connection| -> Vec<Row> {
            conn.prepare(
                "SELECT seq, id, user_id, device_id, at, grade, received_at FROM deltas ORDER BY seq",
            )
            .expect("query")
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("deltas")
        };
        let before = rows(&conn);
        ORG.to_latest(&mut conn).expect("to latest");
        assert_eq!(rows(&conn), before);
        let insert = |id: &str, at: i64| {
            crate::store::deltas::insert(&conn, "u1", None, id, "sql-joins", "seen", at, None, 10)
                .expect("insert")
        };
        // Five numbers were given out before; the next is the sixth.
        let mark: i64 = conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'deltas'",
                [],
                |r| r.get(0),
            )
            .expect("high-water mark");
        assert_eq!(mark, 5);
        assert!(insert("c", 1768180000000));
        let last: i64 = conn
            .query_row("SELECT max(seq) FROM deltas", [], |r| r.get(0))
            .expect("max");
        assert_eq!(last, 6);
        // Sent again: the same id at the same time.
        assert!(!insert("a", 1767693600000));
        // The same id at another time is another fact.
        assert!(insert("a", 1768190000000));
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'deltas' ORDER BY name")
            .expect("query")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("names");
        // The per-concept index of migration 0018 went with 0024.
        assert_eq!(indexes, ["deltas_user_at_id", "deltas_user_seq"]);
    }
}
