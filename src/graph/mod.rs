//! The skill graph: what each engineer knows of each concept; `fsrs` is its memory model.

/// The engineers counted in org aggregates, as SQL selecting their ids:
/// active, not opted out, not awaiting deletion, and members of the team
/// (group id) bound to `?1` unless it is NULL. The totals and the weekly
/// trend both use it, so both count exactly the same people.
macro_rules! counted_engineers {
    () => {
        "SELECT u.id FROM users u
         LEFT JOIN user_privacy p ON p.user_id = u.id
         WHERE u.active = 1 AND coalesce(p.opted_out, 0) = 0 AND p.deletion_requested_at IS NULL
           AND (?1 IS NULL OR u.id IN (SELECT user_id FROM group_members WHERE group_id = ?1))"
    };
}

pub mod aggregates;
pub mod fsrs;
pub mod me;
pub mod routes;
pub mod state;
pub mod trend;
