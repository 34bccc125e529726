//! SQL of the audit log table (see `crate::audit` for the meaning).

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::from_millis;

/// One row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
}

/// The values of a row to insert.
#[derive(Debug, Clone, Copy)]
pub struct NewAuditRow<'a> {
    pub at_ms: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub details: &'a str,
}

const INSERT: &str = "INSERT INTO audit_log
     (at, actor, action, target, ip, user_agent, request_id, details)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// # Errors
/// SQLite errors (including a details string that is not JSON).
pub fn insert(conn: &Connection, row: &NewAuditRow<'_>) -> rusqlite::Result<i64> {
    conn.prepare_cached(INSERT)?.execute(params![
        row.at_ms,
        row.actor,
        row.action,
        row.target,
        row.ip,
        row.user_agent,
        row.request_id,
        row.details
    ])?;
    Ok(conn.last_insert_rowid())
}

const DELETE_BEFORE: &str = "DELETE FROM audit_log WHERE at < ?1";

/// Deletes rows older than `cutoff_ms`; returns how many.
///
/// # Errors
/// SQLite errors.
pub fn delete_before(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached(DELETE_BEFORE)?.execute([cutoff_ms])
}

const RECENT: &str = "SELECT id, at, actor, action, target, ip, user_agent, request_id, details
     FROM audit_log ORDER BY at DESC, id DESC LIMIT ?1";

/// The newest `limit` rows, newest first.
///
/// # Errors
/// SQLite errors.
pub fn recent(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<AuditRow>> {
    let mut stmt = conn.prepare_cached(RECENT)?;
    let rows = stmt.query_map([limit], |r| {
        let details: String = r.get(8)?;
        Ok(AuditRow {
            id: r.get(0)?,
            at: from_millis(r.get(1)?),
            actor: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            ip: r.get(5)?,
            user_agent: r.get(6)?,
            request_id: r.get(7)?,
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        })
    })?;
    rows.collect()
}

const OLDEST: &str = "SELECT min(at) FROM audit_log";

/// The time of the oldest row, if any.
///
/// # Errors
/// SQLite errors.
pub fn oldest_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(OLDEST, [], |r| r.get::<_, Option<i64>>(0))
        .optional()
        .map(Option::flatten)
}
