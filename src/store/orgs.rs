//! `system.db`: the registry of organisations whose database exists.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use crate::clock::{from_millis, to_millis};
use crate::ids::OrgSlug;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRecord {
    pub slug: OrgSlug,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

const LIST: &str = "SELECT slug, name, created_at FROM orgs ORDER BY slug";

/// Every registered org. Rows whose slug no longer parses are skipped: the
/// slug was checked before it was written, so that means a damaged file.
///
/// # Errors
/// SQLite errors.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<OrgRecord>> {
    let mut stmt = conn.prepare_cached(LIST)?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (slug, name, created) = row?;
        if let Ok(slug) = OrgSlug::parse(&slug) {
            out.push(OrgRecord {
                slug,
                name,
                created_at: from_millis(created),
            });
        }
    }
    Ok(out)
}

const UPSERT: &str = "INSERT INTO orgs (slug, name, created_at) VALUES (?1, ?2, ?3)
     ON CONFLICT (slug) DO UPDATE SET name = excluded.name WHERE name <> excluded.name";

/// Registers an org (or renames it); `created_at` is kept from the first time.
///
/// # Errors
/// SQLite errors.
pub fn upsert(
    conn: &Connection,
    slug: &OrgSlug,
    name: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(UPSERT)?
        .execute(params![slug.as_str(), name, to_millis(now)])?;
    Ok(())
}
