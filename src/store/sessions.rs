//! SQL of sessions, sign-ins in progress and break-glass links (see
//! `crate::sessions` and `crate::sso`).

use rusqlite::{Connection, OptionalExtension, Row, params};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id_hash: Vec<u8>,
    pub prev_hash: Option<Vec<u8>>,
    pub prev_valid_until: Option<i64>,
    pub user_id: String,
    pub csrf: String,
    pub auth_time: i64,
    pub amr: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub rotated_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

macro_rules! session_columns {
    () => {
        "id_hash, prev_hash, prev_valid_until, user_id, csrf, auth_time, amr, created_at, last_seen_at, rotated_at, ip, user_agent"
    };
}

fn session(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id_hash: r.get(0)?,
        prev_hash: r.get(1)?,
        prev_valid_until: r.get(2)?,
        user_id: r.get(3)?,
        csrf: r.get(4)?,
        auth_time: r.get(5)?,
        amr: r.get(6)?,
        created_at: r.get(7)?,
        last_seen_at: r.get(8)?,
        rotated_at: r.get(9)?,
        ip: r.get(10)?,
        user_agent: r.get(11)?,
    })
}

/// # Errors
/// SQLite errors.
pub fn insert(conn: &Connection, s: &SessionRow) -> rusqlite::Result<()> {
    const SQL: &str = concat!(
        "INSERT INTO sessions (",
        session_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    );
    conn.prepare_cached(SQL)?.execute(params![
        s.id_hash,
        s.prev_hash,
        s.prev_valid_until,
        s.user_id,
        s.csrf,
        s.auth_time,
        s.amr,
        s.created_at,
        s.last_seen_at,
        s.rotated_at,
        s.ip,
        s.user_agent
    ])?;
    Ok(())
}

/// The session whose current id, or previous id within its grace period,
/// hashes to `hash`. The flag says whether it matched the previous id.
///
/// # Errors
/// SQLite errors.
pub fn by_hash(
    conn: &Connection,
    hash: &[u8],
    now_ms: i64,
) -> rusqlite::Result<Option<(SessionRow, bool)>> {
    const CURRENT: &str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE id_hash = ?1"
    );
    if let Some(s) = conn
        .prepare_cached(CURRENT)?
        .query_row([hash], session)
        .optional()?
    {
        return Ok(Some((s, false)));
    }
    const PREVIOUS: &str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE prev_hash = ?1 AND prev_valid_until > ?2"
    );
    Ok(conn
        .prepare_cached(PREVIOUS)?
        .query_row(params![hash, now_ms], session)
        .optional()?
        .map(|s| (s, true)))
}

/// # Errors
/// SQLite errors.
pub fn for_user(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<SessionRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE user_id = ?1 ORDER BY last_seen_at DESC"
    );
    conn.prepare_cached(SQL)?
        .query_map([user_id], session)?
        .collect()
}

/// Replaces the id of the session `old` with `new`; `old` stays valid until
/// `grace_until_ms`.
///
/// # Errors
/// SQLite errors.
pub fn rotate(
    conn: &Connection,
    old: &[u8],
    new: &[u8],
    now_ms: i64,
    grace_until_ms: i64,
) -> rusqlite::Result<bool> {
    const SQL: &str =
        "UPDATE sessions SET prev_hash = id_hash, prev_valid_until = ?4, id_hash = ?2,
         rotated_at = ?3, last_seen_at = ?3 WHERE id_hash = ?1";
    Ok(conn
        .prepare_cached(SQL)?
        .execute(params![old, new, now_ms, grace_until_ms])?
        == 1)
}

/// # Errors
/// SQLite errors.
pub fn touch(conn: &Connection, hash: &[u8], now_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1")?
        .execute(params![hash, now_ms])?;
    Ok(())
}

/// Records a fresh IdP authentication on the session `old` and gives it
/// the id `new`, with no grace period for `old` or the id before it.
///
/// # Errors
/// SQLite errors.
pub fn reauthenticate(
    conn: &Connection,
    old: &[u8],
    new: &[u8],
    auth_time_ms: i64,
    amr: &str,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    const SQL: &str = "UPDATE sessions SET id_hash = ?2, prev_hash = NULL, prev_valid_until = NULL,
         auth_time = ?3, amr = ?4, rotated_at = ?5, last_seen_at = ?5 WHERE id_hash = ?1";
    Ok(conn
        .prepare_cached(SQL)?
        .execute(params![old, new, auth_time_ms, amr, now_ms])?
        == 1)
}

/// # Errors
/// SQLite errors.
pub fn delete(conn: &Connection, hash: &[u8]) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?
        .execute([hash])?
        == 1)
}

/// Deletes all of a user's sessions; returns how many.
///
/// # Errors
/// SQLite errors.
pub fn delete_for_user(conn: &Connection, user_id: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
        .execute([user_id])
}

/// Deletes sessions idle since before `idle_cutoff_ms` or created before
/// `absolute_cutoff_ms`.
///
/// # Errors
/// SQLite errors.
pub fn delete_expired(
    conn: &Connection,
    idle_cutoff_ms: i64,
    absolute_cutoff_ms: i64,
) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM sessions WHERE last_seen_at < ?1 OR created_at < ?2")?
        .execute(params![idle_cutoff_ms, absolute_cutoff_ms])
}

/// A sign-in in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRow {
    pub state_hash: Vec<u8>,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    pub reauth: bool,
    /// SHA-256 of the secret of the browser that started the sign-in.
    pub browser_hash: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// # Errors
/// SQLite errors.
pub fn insert_login(conn: &Connection, l: &LoginRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO oidc_logins (state_hash, nonce, pkce_verifier, return_to, reauth, browser_hash, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![l.state_hash, l.nonce, l.pkce_verifier, l.return_to, l.reauth, l.browser_hash, l.created_at, l.expires_at])?;
    Ok(())
}

/// Removes and returns the sign-in whose state hashes to `hash`: a state is
/// usable once. Expired ones are swept at the same time.
///
/// # Errors
/// SQLite errors.
pub fn take_login(
    conn: &Connection,
    hash: &[u8],
    now_ms: i64,
) -> rusqlite::Result<Option<LoginRow>> {
    conn.prepare_cached("DELETE FROM oidc_logins WHERE expires_at <= ?1")?
        .execute([now_ms])?;
    conn.prepare_cached(
        "DELETE FROM oidc_logins WHERE state_hash = ?1
         RETURNING state_hash, nonce, pkce_verifier, return_to, reauth, browser_hash, created_at, expires_at",
    )?
    .query_row([hash], |r| {
        Ok(LoginRow {
            state_hash: r.get(0)?,
            nonce: r.get(1)?,
            pkce_verifier: r.get(2)?,
            return_to: r.get(3)?,
            reauth: r.get(4)?,
            browser_hash: r.get(5)?,
            created_at: r.get(6)?,
            expires_at: r.get(7)?,
        })
    })
    .optional()
}

/// # Errors
/// SQLite errors.
pub fn insert_break_glass(
    conn: &Connection,
    hash: &[u8],
    user_id: &str,
    created_by: &str,
    now_ms: i64,
    expires_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO break_glass (secret_hash, user_id, created_by, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![hash, user_id, created_by, now_ms, expires_ms])?;
    Ok(())
}

/// Marks the unused, unexpired link `hash` used; returns its user.
///
/// # Errors
/// SQLite errors.
pub fn use_break_glass(
    conn: &Connection,
    hash: &[u8],
    now_ms: i64,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "UPDATE break_glass SET used_at = ?2 WHERE secret_hash = ?1 AND used_at IS NULL AND expires_at > ?2
         RETURNING user_id",
    )?
    .query_row(params![hash, now_ms], |r| r.get(0))
    .optional()
}

/// Whether an unused, unexpired link hashes to `hash` (for the confirm page).
///
/// # Errors
/// SQLite errors.
pub fn break_glass_valid(conn: &Connection, hash: &[u8], now_ms: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM break_glass WHERE secret_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
    )?
    .query_row(params![hash, now_ms], |_| Ok(()))
    .optional()
    .map(|o| o.is_some())
}
