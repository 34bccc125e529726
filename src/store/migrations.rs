//! Schema migrations, embedded in the binary, numbered, and applied at
//! start-up. `rusqlite_migration` tracks the version in SQLite's
//! `user_version`, so a database knows which schema it holds. Never edit a
//! released migration: add the next number.

use rusqlite_migration::{M, Migrations};

const SYSTEM_STEPS: &[M<'static>] =
    &[M::up(include_str!("migrations/system/0001_orgs.sql")).comment("registry of created orgs")];

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
    M::up(include_str!("migrations/org/0006_scim_list_indexes.sql"))
        .comment("indexes of live and deleted users for SCIM paging and counts"),
];

/// Migrations of `system.db`.
pub static SYSTEM: Migrations<'static> = Migrations::from_slice(SYSTEM_STEPS);

/// Migrations of every `orgs/<slug>.db`.
pub static ORG: Migrations<'static> = Migrations::from_slice(ORG_STEPS);

/// The schema version a fully migrated `system.db` reports.
pub const SYSTEM_VERSION: usize = SYSTEM_STEPS.len();

/// The schema version a fully migrated org database reports.
pub const ORG_VERSION: usize = ORG_STEPS.len();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        SYSTEM.validate().expect("system migrations");
        ORG.validate().expect("org migrations");
        assert_eq!(SYSTEM_VERSION, 1);
        assert_eq!(ORG_VERSION, 6);
    }
}
