//! SQL of the checks an org's model wrote (see `crate::checks::service`).

use rusqlite::{Connection, OptionalExtension, Row, params};

/// A generated check as stored; `options` is a JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedRow {
    pub id: String,
    pub concept: String,
    pub prompt: String,
    pub options: String,
    pub correct: i64,
    pub explanation: String,
    pub model: String,
    pub prompt_sha256: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

macro_rules! columns {
    () => {
        "id, concept, prompt, options, correct, explanation, model, prompt_sha256, created_at, retired_at"
    };
}

fn row(r: &Row<'_>) -> rusqlite::Result<GeneratedRow> {
    Ok(GeneratedRow {
        id: r.get(0)?,
        concept: r.get(1)?,
        prompt: r.get(2)?,
        options: r.get(3)?,
        correct: r.get(4)?,
        explanation: r.get(5)?,
        model: r.get(6)?,
        prompt_sha256: r.get(7)?,
        created_at: r.get(8)?,
        retired_at: r.get(9)?,
    })
}

/// Stores a new check.
///
/// # Errors
/// SQLite errors (a duplicate id, a row the table's checks refuse).
pub fn insert(conn: &Connection, g: &GeneratedRow) -> rusqlite::Result<()> {
    const SQL: &str = concat!(
        "INSERT INTO generated_checks (",
        columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    );
    conn.prepare_cached(SQL)?.execute(params![
        g.id,
        g.concept,
        g.prompt,
        g.options,
        g.correct,
        g.explanation,
        g.model,
        g.prompt_sha256,
        g.created_at,
        g.retired_at,
    ])?;
    Ok(())
}

/// The checks about `concept` that are not retired, oldest first.
///
/// # Errors
/// SQLite errors.
pub fn active_for(conn: &Connection, concept: &str) -> rusqlite::Result<Vec<GeneratedRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM generated_checks WHERE concept = ?1 AND retired_at IS NULL ORDER BY created_at, id"
    );
    conn.prepare_cached(SQL)?
        .query_map([concept], row)?
        .collect()
}

/// Every check, retired ones included, optionally of one concept only,
/// newest first.
///
/// # Errors
/// SQLite errors.
pub fn all(conn: &Connection, concept: Option<&str>) -> rusqlite::Result<Vec<GeneratedRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM generated_checks WHERE ?1 IS NULL OR concept = ?1 ORDER BY created_at DESC, id"
    );
    conn.prepare_cached(SQL)?
        .query_map([concept], row)?
        .collect()
}

/// The check with this id.
///
/// # Errors
/// SQLite errors.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<GeneratedRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM generated_checks WHERE id = ?1"
    );
    conn.prepare_cached(SQL)?.query_row([id], row).optional()
}

/// Sets or clears when the check was retired.
///
/// # Errors
/// SQLite errors.
pub fn set_retired(conn: &Connection, id: &str, retired_at: Option<i64>) -> rusqlite::Result<()> {
    const SQL: &str = "UPDATE generated_checks SET retired_at = ?2 WHERE id = ?1";
    conn.prepare_cached(SQL)?.execute(params![id, retired_at])?;
    Ok(())
}
