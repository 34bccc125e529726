//! Online snapshots. SQLite's backup API copies a live database page by
//! page inside one read transaction (consistent while the server writes,
//! and WAL keeps writers unblocked). SQLCipher decrypts each page with the
//! source key and encrypts it with the destination key, so the snapshot is
//! written under a fresh random key and no plaintext page touches the disk.

use std::collections::BTreeMap;
use std::path::Path;

use rand::TryRngCore;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::BackupError;
use crate::store::{Db, StoreError};

/// A random 256-bit key for one snapshot file, as 64 hex characters.
pub type FileKey = Zeroizing<String>;

/// What a snapshot holds: schema version and rows per table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contents {
    pub schema_version: i64,
    pub rows: BTreeMap<String, i64>,
}

/// A fresh random file key.
///
/// # Errors
/// When the OS random source fails.
pub fn new_file_key() -> Result<FileKey, BackupError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(bytes.as_mut_slice())
        .map_err(|e| BackupError::Io(std::io::Error::other(e.to_string())))?;
    Ok(Zeroizing::new(hex::encode(bytes.as_slice())))
}

/// Opens `path` (which may not exist yet) keyed with `key`.
///
/// # Errors
/// SQLite errors; a wrong key shows when the file is first read.
pub fn open_keyed(path: &Path, key: &FileKey) -> Result<Connection, BackupError> {
    let conn = Connection::open(path).map_err(StoreError::from)?;
    let literal = Zeroizing::new(format!("x'{}'", key.as_str()));
    conn.pragma_update(None, "cipher_log_level", "NONE")
        .and_then(|()| conn.pragma_update(None, "key", literal.as_str()))
        .and_then(|()| conn.pragma_update(None, "temp_store", "MEMORY"))
        .map_err(StoreError::from)?;
    Ok(conn)
}

/// Copies `db` into a new file at `dest` (mode 0600) encrypted under `key`.
///
/// # Errors
/// I/O and SQLite errors; `dest` is left for the caller to remove.
pub fn take(db: &Db, dest: &Path, key: &FileKey) -> Result<Contents, BackupError> {
    crate::fsperm::create_private_file(dest)?;
    let mut out = open_keyed(dest, key)?;
    // A scratch copy: if this process dies it is discarded, so it needs no
    // rollback journal and no fsync per write (the archive is fsynced).
    out.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(StoreError::from)?;
    db.read(|src| {
        let backup = rusqlite::backup::Backup::new(src, &mut out)?;
        // One step of all pages: a single read transaction, so the copy is
        // one consistent snapshot.
        backup.step(-1)?;
        Ok::<_, StoreError>(())
    })?;
    let contents = contents(&out)?;
    out.close().map_err(|(_, e)| StoreError::from(e))?;
    Ok(contents)
}

const TABLES: &str = "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name";

/// Schema version and row counts of an open database.
///
/// # Errors
/// SQLite errors.
pub fn contents(conn: &Connection) -> Result<Contents, BackupError> {
    let schema_version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(StoreError::from)?;
    let tables: Vec<String> = conn
        .prepare(TABLES)
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(StoreError::from)?;
    let mut rows = BTreeMap::new();
    for t in tables {
        // Table names come from sqlite_schema, not from input; quoting keeps
        // any name a single identifier.
        let sql = format!("SELECT count(*) FROM \"{}\"", t.replace('"', "\"\""));
        let n: i64 = conn
            .query_row(&sql, [], |r| r.get(0))
            .map_err(StoreError::from)?;
        rows.insert(t, n);
    }
    Ok(Contents {
        schema_version,
        rows,
    })
}

/// `PRAGMA integrity_check` on an open database.
///
/// # Errors
/// [`BackupError::Corrupt`] with SQLite's findings.
pub fn integrity_check(conn: &Connection, name: &str) -> Result<(), BackupError> {
    let findings: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| BackupError::Corrupt(format!("{name}: {e}")))?;
    if findings == ["ok"] {
        Ok(())
    } else {
        Err(BackupError::Corrupt(format!(
            "{name}: {}",
            findings.join("; ")
        )))
    }
}
