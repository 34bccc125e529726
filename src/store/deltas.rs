//! SQL of deltas (see `crate::sync`).

use rusqlite::{Connection, params};

/// A delta as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRow {
    pub seq: i64,
    pub id: String,
    pub device_id: Option<String>,
    pub concept: String,
    pub transition: String,
    pub at: i64,
    pub grade: Option<i64>,
}

/// Inserts one delta unless the user already has one with this id;
/// returns whether it was new.
///
/// # Errors
/// SQLite errors.
#[allow(clippy::too_many_arguments)]
pub fn insert(
    conn: &Connection,
    user_id: &str,
    device_id: Option<&str>,
    id: &str,
    concept: &str,
    transition: &str,
    at_ms: i64,
    grade: Option<u8>,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    const SQL: &str =
        "INSERT INTO deltas (id, user_id, device_id, concept, transition, at, grade, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (user_id, id) DO NOTHING";
    Ok(conn.prepare_cached(SQL)?.execute(params![
        id, user_id, device_id, concept, transition, at_ms, grade, now_ms
    ])? == 1)
}

/// The user's deltas after cursor `since`, in arrival order.
///
/// # Errors
/// SQLite errors.
pub fn since(
    conn: &Connection,
    user_id: &str,
    since: i64,
    limit: u32,
) -> rusqlite::Result<Vec<DeltaRow>> {
    const SQL: &str = "SELECT seq, id, device_id, concept, transition, at, grade FROM deltas
         WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
    conn.prepare_cached(SQL)?
        .query_map(params![user_id, since, limit], |r| {
            Ok(DeltaRow {
                seq: r.get(0)?,
                id: r.get(1)?,
                device_id: r.get(2)?,
                concept: r.get(3)?,
                transition: r.get(4)?,
                at: r.get(5)?,
                grade: r.get(6)?,
            })
        })?
        .collect()
}

/// The newest cursor value of the user (0 when none).
///
/// # Errors
/// SQLite errors.
pub fn last_seq(conn: &Connection, user_id: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(seq), 0) FROM deltas WHERE user_id = ?1")?
        .query_row([user_id], |r| r.get(0))
}
