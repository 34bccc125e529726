//! SQL of an org's custom concepts (see `crate::catalogue::custom`).

use rusqlite::{Connection, OptionalExtension, Row, params};

/// A custom concept as stored; edges and matchers are JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConceptRow {
    pub slug: String,
    pub title: String,
    pub domain: String,
    pub summary: String,
    pub prerequisites: String,
    pub related: String,
    pub matchers: String,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    pub retired_at: Option<i64>,
}

macro_rules! columns {
    () => {
        "slug, title, domain, summary, prerequisites, related, matchers, created_at, created_by, updated_at, retired_at"
    };
}

fn row(r: &Row<'_>) -> rusqlite::Result<ConceptRow> {
    Ok(ConceptRow {
        slug: r.get(0)?,
        title: r.get(1)?,
        domain: r.get(2)?,
        summary: r.get(3)?,
        prerequisites: r.get(4)?,
        related: r.get(5)?,
        matchers: r.get(6)?,
        created_at: r.get(7)?,
        created_by: r.get(8)?,
        updated_at: r.get(9)?,
        retired_at: r.get(10)?,
    })
}

/// Every custom concept of the org, by slug.
///
/// # Errors
/// SQLite errors.
pub fn all(conn: &Connection) -> rusqlite::Result<Vec<ConceptRow>> {
    const SQL: &str = concat!("SELECT ", columns!(), " FROM custom_concepts ORDER BY slug");
    conn.prepare_cached(SQL)?.query_map([], row)?.collect()
}

/// The concept with this slug.
///
/// # Errors
/// SQLite errors.
pub fn get(conn: &Connection, slug: &str) -> rusqlite::Result<Option<ConceptRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM custom_concepts WHERE slug = ?1"
    );
    conn.prepare_cached(SQL)?.query_row([slug], row).optional()
}

/// Slug and retirement time of every custom concept: what the sync schema
/// needs, read on every push, so it stays this narrow.
///
/// # Errors
/// SQLite errors.
pub fn standings(conn: &Connection) -> rusqlite::Result<Vec<(String, Option<i64>)>> {
    conn.prepare_cached("SELECT slug, retired_at FROM custom_concepts")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// How many custom concepts the org has (retired included).
///
/// # Errors
/// SQLite errors.
pub fn count(conn: &Connection) -> rusqlite::Result<usize> {
    conn.prepare_cached("SELECT count(*) FROM custom_concepts")?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| usize::try_from(n).unwrap_or(0))
}

/// # Errors
/// SQLite errors (a taken slug is a constraint error).
pub fn insert(conn: &Connection, c: &ConceptRow) -> rusqlite::Result<()> {
    const SQL: &str = concat!(
        "INSERT INTO custom_concepts (",
        columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    );
    conn.prepare_cached(SQL)?.execute(params![
        c.slug,
        c.title,
        c.domain,
        c.summary,
        c.prerequisites,
        c.related,
        c.matchers,
        c.created_at,
        c.created_by,
        c.updated_at,
        c.retired_at
    ])?;
    Ok(())
}

/// Writes every mutable column of `c` (the slug and creation never change).
///
/// # Errors
/// SQLite errors.
pub fn update(conn: &Connection, c: &ConceptRow) -> rusqlite::Result<()> {
    const SQL: &str = "UPDATE custom_concepts SET title = ?2, domain = ?3, summary = ?4,
         prerequisites = ?5, related = ?6, matchers = ?7, updated_at = ?8, retired_at = ?9
         WHERE slug = ?1";
    conn.prepare_cached(SQL)?.execute(params![
        c.slug,
        c.title,
        c.domain,
        c.summary,
        c.prerequisites,
        c.related,
        c.matchers,
        c.updated_at,
        c.retired_at
    ])?;
    Ok(())
}

/// How many engineers have met `slug` (one `concept_states` row each).
///
/// # Errors
/// SQLite errors.
pub fn engineers(conn: &Connection, slug: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM concept_states WHERE concept = ?1")?
        .query_row([slug], |r| r.get(0))
}
