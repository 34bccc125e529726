//! SQL of devices and pairing codes (see `crate::devices`).

use rusqlite::{Connection, OptionalExtension, Row, params};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

macro_rules! device_columns {
    () => {
        "id, user_id, name, created_at, last_seen_at, revoked_at, revoked_reason"
    };
}

fn device(r: &Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
        last_seen_at: r.get(4)?,
        revoked_at: r.get(5)?,
        revoked_reason: r.get(6)?,
    })
}

/// # Errors
/// SQLite errors.
pub fn insert_code(
    conn: &Connection,
    hash: &[u8],
    user_id: &str,
    now_ms: i64,
    expires_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO pairing_codes (code_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![hash, user_id, now_ms, expires_ms])?;
    Ok(())
}

/// A pairing code: its user, expiry, and use (time and the device it made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    pub user_id: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub device_id: Option<String>,
}

/// # Errors
/// SQLite errors.
pub fn code(conn: &Connection, hash: &[u8]) -> rusqlite::Result<Option<CodeRow>> {
    conn.prepare_cached(
        "SELECT user_id, expires_at, used_at, device_id FROM pairing_codes WHERE code_hash = ?1",
    )?
    .query_row([hash], |r| {
        Ok(CodeRow {
            user_id: r.get(0)?,
            expires_at: r.get(1)?,
            used_at: r.get(2)?,
            device_id: r.get(3)?,
        })
    })
    .optional()
}

/// # Errors
/// SQLite errors.
pub fn use_code(
    conn: &Connection,
    hash: &[u8],
    device_id: &str,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("UPDATE pairing_codes SET used_at = ?3, device_id = ?2 WHERE code_hash = ?1 AND used_at IS NULL")?
        .execute(params![hash, device_id, now_ms])?
        == 1)
}

/// # Errors
/// SQLite errors.
pub fn insert_device(
    conn: &Connection,
    d: &DeviceRow,
    refresh_hash: &[u8],
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO devices (id, user_id, name, refresh_hash, created_at, last_seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![d.id, d.user_id, d.name, refresh_hash, d.created_at])?;
    Ok(())
}

/// # Errors
/// SQLite errors.
pub fn by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<DeviceRow>> {
    const SQL: &str = concat!("SELECT ", device_columns!(), " FROM devices WHERE id = ?1");
    conn.prepare_cached(SQL)?.query_row([id], device).optional()
}

/// The device whose current refresh secret hashes to `hash`, or — flagged
/// `true` — whose previous (rotated-away) one does.
///
/// # Errors
/// SQLite errors.
pub fn by_refresh(conn: &Connection, hash: &[u8]) -> rusqlite::Result<Option<(DeviceRow, bool)>> {
    const CURRENT: &str = concat!(
        "SELECT ",
        device_columns!(),
        " FROM devices WHERE refresh_hash = ?1"
    );
    if let Some(d) = conn
        .prepare_cached(CURRENT)?
        .query_row([hash], device)
        .optional()?
    {
        return Ok(Some((d, false)));
    }
    const PREVIOUS: &str = concat!(
        "SELECT ",
        device_columns!(),
        " FROM devices WHERE prev_refresh_hash = ?1"
    );
    Ok(conn
        .prepare_cached(PREVIOUS)?
        .query_row([hash], device)
        .optional()?
        .map(|d| (d, true)))
}

/// Moves a device holding a refresh secret of the older, unnumbered form
/// to generation 1; the old secret is kept as `prev_refresh_hash`, so its
/// reuse is still recognised.
///
/// # Errors
/// SQLite errors.
pub fn rotate_refresh(
    conn: &Connection,
    id: &str,
    old: &[u8],
    new: &[u8],
    now_ms: i64,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE devices SET prev_refresh_hash = refresh_hash, refresh_hash = ?3, last_seen_at = ?4,
                 refresh_generation = refresh_generation + 1
             WHERE id = ?1 AND refresh_hash = ?2 AND revoked_at IS NULL",
        )?
        .execute(params![id, old, new, now_ms])?
        == 1)
}

/// A device's current refresh generation and the hash of its current
/// refresh token (`None` once revoked).
///
/// # Errors
/// SQLite errors.
pub fn refresh_state(
    conn: &Connection,
    id: &str,
) -> rusqlite::Result<Option<(i64, Option<Vec<u8>>)>> {
    conn.prepare_cached("SELECT refresh_generation, refresh_hash FROM devices WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// Replaces the token of generation `generation` (hash `old`) by the next
/// generation's (hash `new`); false when the device moved on or was revoked.
///
/// # Errors
/// SQLite errors.
pub fn rotate_generation(
    conn: &Connection,
    id: &str,
    generation: i64,
    old: &[u8],
    new: &[u8],
    now_ms: i64,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE devices SET refresh_hash = ?4, refresh_generation = ?2 + 1, last_seen_at = ?5
             WHERE id = ?1 AND refresh_generation = ?2 AND refresh_hash = ?3 AND revoked_at IS NULL",
        )?
        .execute(params![id, generation, old, new, now_ms])?
        == 1)
}

/// # Errors
/// SQLite errors.
pub fn revoke(conn: &Connection, id: &str, reason: &str, now_ms: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE devices SET revoked_at = ?3, revoked_reason = ?2, refresh_hash = NULL
             WHERE id = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![id, reason, now_ms])?
        == 1)
}

/// Renames device `id` of `user_id`; false when the user has no such
/// device.
///
/// # Errors
/// SQLite errors.
pub fn rename(conn: &Connection, id: &str, user_id: &str, name: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("UPDATE devices SET name = ?3 WHERE id = ?1 AND user_id = ?2")?
        .execute(params![id, user_id, name])?
        == 1)
}

/// Revokes every device of a user (deactivation); returns how many.
///
/// # Errors
/// SQLite errors.
pub fn revoke_for_user(
    conn: &Connection,
    user_id: &str,
    reason: &str,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE devices SET revoked_at = ?3, revoked_reason = ?2, refresh_hash = NULL
         WHERE user_id = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![user_id, reason, now_ms])
}

/// # Errors
/// SQLite errors.
pub fn for_user(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<DeviceRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        device_columns!(),
        " FROM devices WHERE user_id = ?1 ORDER BY created_at"
    );
    conn.prepare_cached(SQL)?
        .query_map([user_id], device)?
        .collect()
}
