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
    let rows = stmt.query_map([limit], audit_row)?;
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

/// What a search of the log keeps: each `Some` narrows it. Times are Unix
/// ms, `from_ms` inclusive and `to_ms` exclusive; `before` is the keyset
/// cursor (`at`, `id`) of the last row of the previous page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    /// Exact actors (e.g. `user:<id>` and the name typed, either matches).
    pub actors: Vec<String>,
    /// An action, matching itself and the actions below it (`session`
    /// matches `session.create` and `session.end`).
    pub action: Option<String>,
    /// Exact targets (e.g. a user id and the name typed).
    pub targets: Vec<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub before: Option<(i64, i64)>,
}

/// The rows `s` keeps, newest first, at most `limit` of them. Every filter
/// has an index (`audit_log_at`, and migration 0021's on actor, action and
/// target), and paging is by keyset, never by offset.
///
/// # Errors
/// SQLite errors.
pub fn search(conn: &Connection, s: &Search, limit: u32) -> rusqlite::Result<Vec<AuditRow>> {
    use rusqlite::types::Value;
    let mut sql = String::from(
        "SELECT id, at, actor, action, target, ip, user_agent, request_id, details
         FROM audit_log WHERE 1",
    );
    let mut args: Vec<Value> = Vec::new();
    let list = |sql: &mut String, col: &str, items: &[String], args: &mut Vec<Value>| {
        if items.is_empty() {
            return;
        }
        sql.push_str(&format!(" AND {col} IN ("));
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            args.push(Value::Text(it.clone()));
            sql.push_str(&format!("?{}", args.len()));
        }
        sql.push(')');
    };
    list(&mut sql, "actor", &s.actors, &mut args);
    list(&mut sql, "target", &s.targets, &mut args);
    if let Some(a) = &s.action {
        // Actions are checked to be [a-z0-9._-] by the caller, so `_` is
        // the one LIKE wildcard to escape.
        args.push(Value::Text(a.clone()));
        let n = args.len();
        args.push(Value::Text(format!("{}.%", a.replace('_', "\\_"))));
        sql.push_str(&format!(
            " AND (action = ?{n} OR action LIKE ?{} ESCAPE '\\')",
            n + 1
        ));
    }
    if let Some(from) = s.from_ms {
        args.push(Value::Integer(from));
        sql.push_str(&format!(" AND at >= ?{}", args.len()));
    }
    if let Some(to) = s.to_ms {
        args.push(Value::Integer(to));
        sql.push_str(&format!(" AND at < ?{}", args.len()));
    }
    if let Some((at, id)) = s.before {
        args.push(Value::Integer(at));
        args.push(Value::Integer(id));
        let n = args.len();
        sql.push_str(&format!(
            " AND (at < ?{} OR (at = ?{} AND id < ?{n}))",
            n - 1,
            n - 1
        ));
    }
    args.push(Value::Integer(i64::from(limit)));
    sql.push_str(&format!(" ORDER BY at DESC, id DESC LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), audit_row)?;
    rows.collect()
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
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
}
