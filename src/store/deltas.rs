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

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeltaRow> {
    Ok(DeltaRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        device_id: r.get(2)?,
        concept: r.get(3)?,
        transition: r.get(4)?,
        at: r.get(5)?,
        grade: r.get(6)?,
    })
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
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (user_id, at, id) DO NOTHING";
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
        .query_map(params![user_id, since, limit], row)?
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

/// Every delta of the user, as (concept, id, transition, at, grade).
///
/// # Errors
/// SQLite errors.
pub fn all_for_user(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<DeltaRow>> {
    const SQL: &str = "SELECT seq, id, device_id, concept, transition, at, grade FROM deltas WHERE user_id = ?1 ORDER BY seq";
    conn.prepare_cached(SQL)?
        .query_map([user_id], row)?
        .collect()
}

/// The user's privacy choices: (opted out, deletion requested at).
///
/// # Errors
/// SQLite errors.
pub fn privacy(conn: &Connection, user_id: &str) -> rusqlite::Result<(bool, Option<i64>)> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached(
            "SELECT opted_out, deletion_requested_at FROM user_privacy WHERE user_id = ?1",
        )?
        .query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((false, None)))
}

/// # Errors
/// SQLite errors.
pub fn set_opted_out(conn: &Connection, user_id: &str, opted_out: bool) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO user_privacy (user_id, opted_out) VALUES (?1, ?2)
         ON CONFLICT (user_id) DO UPDATE SET opted_out = excluded.opted_out",
    )?
    .execute(params![user_id, opted_out])?;
    Ok(())
}

/// Starts (or, with `None`, cancels) the deletion hold.
///
/// # Errors
/// SQLite errors.
pub fn set_deletion(conn: &Connection, user_id: &str, at_ms: Option<i64>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO user_privacy (user_id, deletion_requested_at) VALUES (?1, ?2)
         ON CONFLICT (user_id) DO UPDATE SET deletion_requested_at = excluded.deletion_requested_at",
    )?
    .execute(params![user_id, at_ms])?;
    Ok(())
}

/// Deletes the deltas of users whose deletion was requested before
/// `cutoff_ms`, everything derived from them, and their pending request;
/// returns the users affected. (With the request cleared they count in
/// aggregates again, so no derived row may survive them.)
///
/// # Errors
/// SQLite errors.
pub fn sweep_deletions(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<Vec<String>> {
    let users: Vec<String> = conn
        .prepare_cached("SELECT user_id FROM user_privacy WHERE deletion_requested_at IS NOT NULL AND deletion_requested_at < ?1")?
        .query_map([cutoff_ms], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for u in &users {
        conn.prepare_cached("DELETE FROM deltas WHERE user_id = ?1")?
            .execute([u])?;
        conn.prepare_cached("DELETE FROM concept_states WHERE user_id = ?1")?
            .execute([u])?;
        // Each state's triggers take its fold checkpoints (with the facts
        // they keep), its waiting facts and its refold queue row with it
        // (migrations 0018, 0023, 0024): every one of those rows belongs
        // to a state row.
        conn.prepare_cached("DELETE FROM concept_weeks WHERE user_id = ?1")?
            .execute([u])?;
        conn.prepare_cached(
            "UPDATE user_privacy SET deletion_requested_at = NULL WHERE user_id = ?1",
        )?
        .execute([u])?;
    }
    Ok(users)
}
