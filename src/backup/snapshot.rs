//! Online snapshots as page images.
//!
//! A database is read page by page through SQLite's `sqlite_dbpage` virtual
//! table inside one read transaction: a consistent snapshot while the
//! server writes (WAL keeps writers unblocked), decrypted by SQLCipher on the
//! way out of the pager and never written anywhere but into the age stream.
//! Restore writes the pages back through `sqlite_dbpage` into a new file,
//! where SQLCipher encrypts each one under the target's key. So a snapshot
//! costs one decrypting read, and no plaintext page touches the disk.
//!
//! `sqlite_dbpage` exists only when SQLite is compiled with
//! `SQLITE_ENABLE_DBPAGE_VTAB`; `.cargo/config.toml` sets it for the bundled
//! SQLCipher, and [`BackupError::Unsupported`] names it if a build lacks it.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use rand::TryRngCore;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::BackupError;
use crate::store::{Db, StoreError};

/// A raw SQLCipher key as 64 hex characters.
pub type FileKey = Zeroizing<String>;

/// SQLCipher's default page size, which every database here uses.
pub const PAGE_SIZE: u32 = 4096;

/// What a snapshot holds: schema version and rows per table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contents {
    pub schema_version: i64,
    pub rows: BTreeMap<String, i64>,
}

/// The shape of a page image: its size is `page_size * page_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub page_size: u32,
    pub page_count: u64,
}

impl Shape {
    pub fn bytes(self) -> u64 {
        u64::from(self.page_size) * self.page_count
    }
}

/// A fresh random file key (for scratch copies that are checked and
/// discarded, as `backup verify` makes).
///
/// # Errors
/// When the OS random source fails.
pub fn new_file_key() -> Result<FileKey, BackupError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(bytes.as_mut_slice())
        .map_err(|e| BackupError::Io(io::Error::other(e.to_string())))?;
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

fn unsupported(e: rusqlite::Error) -> BackupError {
    if e.to_string().contains("sqlite_dbpage") {
        BackupError::Unsupported
    } else {
        StoreError::from(e).into()
    }
}

/// Reads `db` as one consistent page image: calls `f` with the image's
/// contents, shape, and a reader of its bytes, all from one read
/// transaction.
///
/// # Errors
/// SQLite errors, and whatever `f` returns.
pub fn read_image<T>(
    db: &Db,
    f: impl FnOnce(&Contents, Shape, &mut dyn Read) -> Result<T, BackupError>,
) -> Result<T, BackupError> {
    db.read(|conn| {
        // Deferred: the snapshot starts at the first read below and holds
        // until the end, so counts and pages agree.
        let tx = conn.unchecked_transaction().map_err(StoreError::from)?;
        let contents = contents(&tx)?;
        let shape = shape(&tx)?;
        let mut stmt = tx
            .prepare("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
            .map_err(unsupported)?;
        let mut pages = PageReader {
            rows: stmt.query([]).map_err(StoreError::from)?,
            shape,
            page: Vec::with_capacity(shape.page_size as usize),
            pos: 0,
            next_pgno: 1,
        };
        let out = f(&contents, shape, &mut pages)?;
        drop(pages);
        drop(stmt);
        tx.finish().map_err(StoreError::from)?;
        Ok(out)
    })
}

fn shape(conn: &Connection) -> Result<Shape, BackupError> {
    // SQLCipher answers `page_size` itself, as text.
    let page_size: String = conn
        .pragma_query_value(None, "page_size", |r| {
            r.get::<_, rusqlite::types::Value>(0).map(|v| match v {
                rusqlite::types::Value::Integer(n) => n.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
        })
        .map_err(StoreError::from)?;
    let page_size: u32 = page_size.trim().parse().map_err(|_| {
        BackupError::Corrupt(format!("the database reports a page size of `{page_size}`"))
    })?;
    let page_count: i64 = conn
        .pragma_query_value(None, "page_count", |r| r.get(0))
        .map_err(StoreError::from)?;
    let page_count = u64::try_from(page_count).unwrap_or(0);
    Ok(Shape {
        page_size,
        page_count,
    })
}

/// Streams the rows of `SELECT pgno, data FROM sqlite_dbpage` as bytes,
/// checking that pages come in order and are whole.
struct PageReader<'s> {
    rows: rusqlite::Rows<'s>,
    shape: Shape,
    page: Vec<u8>,
    pos: usize,
    next_pgno: u64,
}

impl PageReader<'_> {
    fn next_page(&mut self) -> io::Result<bool> {
        let row = self.rows.next().map_err(io::Error::other)?;
        let Some(row) = row else {
            if self.next_pgno <= self.shape.page_count {
                return Err(io::Error::other(format!(
                    "the snapshot ended at page {} of {}",
                    self.next_pgno - 1,
                    self.shape.page_count
                )));
            }
            return Ok(false);
        };
        let pgno: i64 = row.get(0).map_err(io::Error::other)?;
        let pgno = u64::try_from(pgno).unwrap_or(0);
        let data = row.get_ref(1).map_err(io::Error::other)?;
        let data = data.as_blob().map_err(io::Error::other)?;
        if pgno != self.next_pgno
            || pgno > self.shape.page_count
            || data.len() != self.shape.page_size as usize
        {
            return Err(io::Error::other(format!(
                "unexpected page {pgno} ({} bytes) in a snapshot of {} pages",
                data.len(),
                self.shape.page_count
            )));
        }
        self.page.clear();
        self.page.extend_from_slice(data);
        self.pos = 0;
        self.next_pgno += 1;
        Ok(true)
    }
}

impl Read for PageReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.page.len() && !self.next_page()? {
            return Ok(0);
        }
        let n = buf.len().min(self.page.len() - self.pos);
        buf[..n].copy_from_slice(&self.page[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Writes a page image of `size` bytes from `image` into a new database at
/// `dest` (mode 0600), encrypted by SQLCipher under `key` page by page.
///
/// # Errors
/// I/O errors (a short image is [`io::ErrorKind::UnexpectedEof`]) and SQLite
/// errors; `dest` is left for the caller to remove.
pub fn write_image(
    dest: &Path,
    key: &FileKey,
    page_size: u32,
    size: u64,
    image: &mut impl Read,
) -> Result<(), BackupError> {
    if page_size != PAGE_SIZE || !size.is_multiple_of(u64::from(page_size)) {
        return Err(BackupError::Damaged(format!(
            "a database image of {size} bytes in pages of {page_size}"
        )));
    }
    crate::fsperm::create_private_file(dest).map_err(super::write_to(dest))?;
    let mut conn = open_keyed(dest, key)?;
    // A scratch file until it is checked and swapped in: no rollback
    // journal and no fsync per write; the caller fsyncs it once.
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(StoreError::from)?;
    let tx = conn.transaction().map_err(StoreError::from)?;
    {
        let mut insert = tx
            .prepare("INSERT INTO sqlite_dbpage (pgno, data) VALUES (?1, ?2)")
            .map_err(unsupported)?;
        let mut page = vec![0u8; page_size as usize];
        let pages = i64::try_from(size / u64::from(page_size))
            .map_err(|_| BackupError::Damaged(format!("a database image of {size} bytes")))?;
        for pgno in 1..=pages {
            image.read_exact(&mut page)?;
            insert
                .execute(rusqlite::params![pgno, page])
                .map_err(writing(dest))?;
        }
    }
    tx.commit().map_err(writing(dest))?;
    conn.close().map_err(|(_, e)| writing(dest)(e))?;
    Ok(())
}

/// A failed page write, naming the file; a full disk stays recognisable
/// as one ([`io::ErrorKind::StorageFull`]).
fn writing(dest: &Path) -> impl Fn(rusqlite::Error) -> BackupError + '_ {
    move |e| {
        let kind = match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => io::ErrorKind::StorageFull,
            _ => io::ErrorKind::Other,
        };
        BackupError::Write(io::Error::new(
            kind,
            format!("cannot write {}: {e}", dest.display()),
        ))
    }
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

/// Whether this build has `sqlite_dbpage` (for `aiworklab config check`
/// and tests).
///
/// # Errors
/// SQLite errors other than the table being absent.
pub fn dbpage_available(conn: &Connection) -> Result<bool, BackupError> {
    match conn
        .query_row(
            "SELECT count(*) FROM sqlite_dbpage WHERE pgno = 1",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()
    {
        Ok(_) => Ok(true),
        Err(e) if e.to_string().contains("sqlite_dbpage") => Ok(false),
        Err(e) => Err(StoreError::from(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(path: &Path, key: &FileKey) {
        let conn = open_keyed(path, key).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             CREATE INDEX t_v ON t (v);",
        )
        .expect("schema");
        for i in 0..2000 {
            conn.execute(
                "INSERT INTO t (v) VALUES (?1)",
                [format!("marker-{i}-{}", "y".repeat(i % 300))],
            )
            .expect("insert");
        }
    }

    #[test]
    fn this_build_has_sqlite_dbpage() {
        let dir = tempfile::tempdir().expect("tmp");
        let conn =
            open_keyed(&dir.path().join("a.db"), &new_file_key().expect("key")).expect("open");
        conn.execute_batch("CREATE TABLE x (a)").expect("table");
        assert!(
            dbpage_available(&conn).expect("query"),
            "SQLCipher was built without SQLITE_ENABLE_DBPAGE_VTAB (.cargo/config.toml sets it)"
        );
    }

    #[test]
    fn an_image_written_under_another_key_reads_back_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        let (ka, kb) = (new_file_key().expect("key"), new_file_key().expect("key"));
        filled(&a, &ka);
        let src = open_keyed(&a, &ka).expect("open");
        let want = contents(&src).expect("contents");
        let shape = shape(&src).expect("shape");
        let mut image = Vec::new();
        {
            let mut stmt = src
                .prepare("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
                .expect("dbpage");
            let mut r = PageReader {
                rows: stmt.query([]).expect("rows"),
                shape,
                page: Vec::new(),
                pos: 0,
                next_pgno: 1,
            };
            r.read_to_end(&mut image).expect("read");
        }
        assert_eq!(image.len() as u64, shape.bytes());
        assert!(image.starts_with(b"SQLite format 3\0"));
        write_image(
            &b,
            &kb,
            shape.page_size,
            shape.bytes(),
            &mut image.as_slice(),
        )
        .expect("write");
        let raw = std::fs::read(&b).expect("read b");
        assert!(
            !raw.windows(7).any(|w| w == b"marker-"),
            "the written file holds plaintext"
        );
        let back = open_keyed(&b, &kb).expect("open b");
        integrity_check(&back, "b").expect("integrity");
        assert_eq!(contents(&back).expect("contents"), want);
        assert!(open_keyed(&b, &ka).and_then(|c| contents(&c)).is_err());
    }

    #[test]
    fn a_short_image_is_an_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let page = vec![0u8; PAGE_SIZE as usize];
        let err = write_image(
            &dir.path().join("c.db"),
            &new_file_key().expect("key"),
            PAGE_SIZE,
            2 * u64::from(PAGE_SIZE),
            &mut page.as_slice(),
        )
        .expect_err("short");
        assert!(matches!(err, BackupError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof));
    }
}
