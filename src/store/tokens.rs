//! SQL of the API token table (see `crate::tokens` for the meaning).

use rusqlite::{Connection, OptionalExtension, Row, params};

/// One token as stored. There is no secret here: only its hash is kept, and
/// it is not read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub created_at: i64,
    pub created_by: String,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// The columns `row` reads, as a literal so queries stay `const` strings.
macro_rules! columns {
    () => {
        "id, kind, name, created_at, created_by, expires_at, last_used_at, revoked_at"
    };
}

fn row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
        created_by: r.get(4)?,
        expires_at: r.get(5)?,
        last_used_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

const INSERT: &str = "INSERT INTO api_tokens
     (id, kind, name, secret_hash, created_at, created_by, expires_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// # Errors
/// SQLite errors.
pub fn insert(conn: &Connection, t: &TokenRow, secret_hash: &[u8; 32]) -> rusqlite::Result<()> {
    conn.prepare_cached(INSERT)?.execute(params![
        t.id,
        t.kind,
        t.name,
        secret_hash.as_slice(),
        t.created_at,
        t.created_by,
        t.expires_at
    ])?;
    Ok(())
}

/// # Errors
/// SQLite errors.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<TokenRow>> {
    const LIST: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM api_tokens ORDER BY created_at, id"
    );
    let mut stmt = conn.prepare_cached(LIST)?;
    let rows = stmt.query_map([], row)?;
    rows.collect()
}

/// # Errors
/// SQLite errors.
pub fn by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<TokenRow>> {
    const BY_ID: &str = concat!("SELECT ", columns!(), " FROM api_tokens WHERE id = ?1");
    conn.prepare_cached(BY_ID)?.query_row([id], row).optional()
}

/// The token whose secret hashes to `hash`, with the stored hash for the
/// constant-time comparison.
///
/// # Errors
/// SQLite errors.
pub fn by_hash(
    conn: &Connection,
    hash: &[u8; 32],
) -> rusqlite::Result<Option<(TokenRow, Vec<u8>)>> {
    const BY_HASH: &str = concat!(
        "SELECT ",
        columns!(),
        ", secret_hash FROM api_tokens WHERE secret_hash = ?1"
    );
    conn.prepare_cached(BY_HASH)?
        .query_row([hash.as_slice()], |r| {
            Ok((row(r)?, r.get::<_, Vec<u8>>(8)?))
        })
        .optional()
}

const REVOKE: &str = "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL";

/// Marks a token revoked; returns whether a live token was changed.
///
/// # Errors
/// SQLite errors.
pub fn revoke(conn: &Connection, id: &str, now_ms: i64) -> rusqlite::Result<bool> {
    Ok(conn.prepare_cached(REVOKE)?.execute(params![id, now_ms])? == 1)
}

const TOUCH: &str = "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1";

/// # Errors
/// SQLite errors.
pub fn touch(conn: &Connection, id: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(TOUCH)?.execute(params![id, now_ms])?;
    Ok(())
}
