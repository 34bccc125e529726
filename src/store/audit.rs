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
/// An action filter is answered one exact action at a time, each walking
/// the `(action, at)` index newest first for at most `limit` rows, and the
/// lists merged: `action = ? OR action LIKE '<action>.%'` in one query
/// leaves SQLite no index for the OR (a case-insensitive LIKE gets no
/// range on a BINARY column), so it walked the whole log by time testing
/// each row, slower the rarer the action (docs/benchmarks.md, "Dashboard
/// and admin pages").
///
/// # Errors
/// SQLite errors.
pub fn search(conn: &Connection, s: &Search, limit: u32) -> rusqlite::Result<Vec<AuditRow>> {
    let Some(action) = &s.action else {
        return search_exact(conn, s, None, limit);
    };
    let mut rows = Vec::new();
    for a in actions_under(conn, action)? {
        rows.extend(search_exact(conn, s, Some(&a), limit)?);
    }
    rows.sort_by_key(|r| std::cmp::Reverse((r.at, r.id)));
    rows.truncate(limit as usize);
    Ok(rows)
}

/// The distinct actions in the log that are `action` or below it
/// (`<action>.…`), each found by one seek of the `(action, at)` index.
fn actions_under(conn: &Connection, action: &str) -> rusqlite::Result<Vec<String>> {
    // `<action>` and everything after it up to `<action>/` ('/' follows
    // '.'): the actions below it, and the checked alphabet's `<action>-…`,
    // which the loop leaves out.
    let end = format!("{action}/");
    let mut found = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT action FROM audit_log WHERE action >= ?1 AND action < ?2 ORDER BY action LIMIT 1",
    )?;
    let mut from = action.to_string();
    while let Some(a) = stmt
        .query_row(rusqlite::params![from, end], |r| r.get::<_, String>(0))
        .optional()?
    {
        if a == action || a.starts_with(&format!("{action}.")) {
            found.push(a.clone());
        }
        // The next distinct action: the smallest string above `a`.
        from = format!("{a}\u{0}");
    }
    Ok(found)
}

/// The rows `s` keeps with exactly `action` (or any action when `None`;
/// `s.action` itself is not read), newest first, at most `limit`.
fn search_exact(
    conn: &Connection,
    s: &Search,
    action: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<AuditRow>> {
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
    if let Some(a) = action {
        args.push(Value::Text(a.to_string()));
        sql.push_str(&format!(" AND action = ?{}", args.len()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn log(rows: &[(i64, &str)]) -> Connection {
        let c = Connection::open_in_memory().expect("db");
        c.execute_batch(
            "CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at INTEGER NOT NULL,
                actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT, ip TEXT,
                user_agent TEXT, request_id TEXT, details TEXT NOT NULL DEFAULT '{}');
             CREATE INDEX audit_log_at ON audit_log (at);
             CREATE INDEX audit_log_action ON audit_log (action, at);",
        )
        .expect("schema");
        for (at, action) in rows {
            insert(
                &c,
                &NewAuditRow {
                    at_ms: *at,
                    actor: "system",
                    action,
                    target: None,
                    ip: None,
                    user_agent: None,
                    request_id: None,
                    details: "{}",
                },
            )
            .expect("row");
        }
        c
    }

    fn found(c: &Connection, s: &Search, limit: u32) -> Vec<(i64, String)> {
        search(c, s, limit)
            .expect("search")
            .into_iter()
            .map(|r| (r.at.timestamp_millis(), r.action))
            .collect()
    }

    #[test]
    fn an_action_matches_itself_and_the_actions_below_it_newest_first_by_keyset() {
        let c = log(&[
            (1, "session.create"),
            (2, "session"),
            (3, "session-x"),
            (4, "sessions.list"),
            (5, "session.end"),
            (6, "device.pair"),
            (7, "session.create"),
            (7, "session.end"),
            (8, "session.create.sub"),
            (9, "Session.create"),
        ]);
        let by = |action: &str| Search {
            action: Some(action.into()),
            ..Search::default()
        };
        let all: Vec<(i64, String)> = [
            (8, "session.create.sub"),
            (7, "session.end"),
            (7, "session.create"),
            (5, "session.end"),
            (2, "session"),
            (1, "session.create"),
        ]
        .iter()
        .map(|(a, b)| (*a, (*b).to_string()))
        .collect();
        assert_eq!(found(&c, &by("session"), 50), all);
        // Pages of two by keyset: merged in (at, id) order across actions.
        let mut s = by("session");
        let mut pages = Vec::new();
        loop {
            let page = search(&c, &s, 2).expect("page");
            if page.is_empty() {
                break;
            }
            let last = page.last().expect("row");
            s.before = Some((last.at.timestamp_millis(), last.id));
            pages.extend(
                page.into_iter()
                    .map(|r| (r.at.timestamp_millis(), r.action)),
            );
        }
        assert_eq!(pages, all);
        assert_eq!(
            found(&c, &by("session.create"), 50),
            vec![
                (8, "session.create.sub".to_string()),
                (7, "session.create".to_string()),
                (1, "session.create".to_string())
            ]
        );
        let mut window = by("session");
        window.from_ms = Some(2);
        window.to_ms = Some(7);
        assert_eq!(
            found(&c, &window, 50),
            vec![(5, "session.end".to_string()), (2, "session".to_string())]
        );
        assert!(found(&c, &by("backup"), 50).is_empty());
        assert_eq!(found(&c, &Search::default(), 3).len(), 3);
    }
}
