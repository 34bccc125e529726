//! One encrypted SQLite database: a single writer connection behind a mutex
//! and a pool of read-only connections (`SQLITE_OPEN_READ_ONLY` plus
//! `PRAGMA query_only`) for read paths, as a defence in depth. Every
//! connection is keyed with a raw 256-bit SQLCipher key before any other
//! statement, and the key is proven by reading the schema at once, so a
//! wrong key is a clear error instead of a crash or an empty database.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

use super::StoreError;
use super::checkpointer::{Checkpointer, RESTART_WAIT};
use super::readers::Readers;
use crate::crypto::DerivedKey;

/// The page cache of each read connection, in KiB (SQLite's negative
/// `cache_size`; its default is 2 MiB). SQLCipher decrypts every page it
/// reads into this cache, so an index larger than the cache is decrypted
/// again on every scan: paging through 100,000 SCIM users took ~25 ms a
/// page with 2 MiB and ~4 ms with 16 MiB (`docs/benchmarks.md`). The cache
/// grows only as pages are read, so small orgs use little of it.
const READ_CACHE_KIB: i64 = -16 * 1024;

/// The writer's page cache, in KiB. A push inserts into indexes spread
/// over the whole file and refreshes states and totals beside them; with
/// SQLite's 2 MiB default each of those pages is decrypted again on most
/// pushes once a database is large. One writer per org, grown only as
/// pages are touched.
const WRITE_CACHE_KIB: i64 = -64 * 1024;

/// How many pages the WAL may hold before the writer copies them back into
/// the database file itself: a backstop. The checkpoint thread
/// (`super::checkpointer`) copies the log back half a second after a
/// commit, off the write lock; at SQLite's default (1,000 pages, 4 MiB) or
/// at the 4,000 this was before, a busy writer reached the threshold first
/// and copied the log inside a push's commit, then synced the file, about
/// half of that commit's time (`docs/benchmarks.md`, sustained ingest).
/// Under a sustained load of pushes the thread also starts the log over
/// (with the writer held) once it passes 4,000 frames, so the backstop is
/// not reached and the WAL file grows to about 32 MiB and stays there; a
/// quiet database's log stays small.
const WAL_CHECKPOINT_PAGES: i64 = 16_000;

/// How connections are opened.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub busy_timeout: Duration,
    pub read_pool_size: u32,
}

/// An open database. Dropping it closes every connection on the dropping
/// thread (the checkpoint thread's on that thread, waited for), the
/// writer last: it folds the WAL back into the file and removes it, which
/// a read-only connection cannot.
pub struct Db {
    path: PathBuf,
    checkpointer: Checkpointer,
    readers: Readers,
    writer: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Applies the key and proves it by reading the schema.
fn unlock(conn: &Connection, key: &DerivedKey, path: &Path) -> Result<(), StoreError> {
    // SQLCipher raw-key syntax: the string x'<64 hex>' uses the bytes as the
    // key directly (no passphrase KDF). pragma_update quotes the value.
    let literal = zeroize::Zeroizing::new(format!("x'{}'", hex::encode(key.as_slice())));
    // SQLCipher would print its own lines to stderr on a wrong key; the
    // error below says it better, in our log format.
    conn.pragma_update(None, "cipher_log_level", "NONE")?;
    conn.pragma_update(None, "key", literal.as_str())?;
    match conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::NotADatabase => {
            Err(StoreError::WrongKey {
                path: path.to_path_buf(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn open_writer(path: &Path, key: &DerivedKey, opts: &DbOptions) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    unlock(&conn, key, path)?;
    conn.busy_timeout(opts.busy_timeout)?;
    // WAL lets readers run beside the writer; NORMAL is durable across
    // process crashes in WAL mode. Temporary tables and indices stay in
    // memory so no plaintext temp file is ever written.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", WRITE_CACHE_KIB)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
    Ok(conn)
}

impl Db {
    /// Opens the existing database file at `path` with `key`. The file must
    /// exist: creating it is the caller's decision (see `Store`).
    ///
    /// # Errors
    /// [`StoreError::WrongKey`] for a wrong key or a file that is not an
    /// aiworklab database, or the underlying SQLite error.
    pub fn open(path: &Path, key: DerivedKey, opts: &DbOptions) -> Result<Self, StoreError> {
        let writer = Arc::new(Mutex::new(open_writer(path, &key, opts)?));
        let checkpointer = {
            let (path, key) = (path.to_path_buf(), key.clone());
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            Checkpointer::start(
                name,
                Box::new(move || {
                    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                    let conn = Connection::open_with_flags(&path, flags)?;
                    unlock(&conn, &key, &path)?;
                    // Only its restarts wait, and only briefly: they hold
                    // the writer.
                    conn.busy_timeout(RESTART_WAIT)?;
                    // It only checkpoints: never the backstop itself.
                    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
                    Ok(conn)
                }),
                Arc::clone(&writer),
            )
        };
        let reader_path = path.to_path_buf();
        let busy = opts.busy_timeout;
        let open = move || -> Result<Connection, StoreError> {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(&reader_path, flags)?;
            unlock(&conn, &key, &reader_path)?;
            conn.busy_timeout(busy)?;
            conn.pragma_update(None, "query_only", "ON")?;
            conn.pragma_update(None, "cache_size", READ_CACHE_KIB)?;
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            Ok(conn)
        };
        Ok(Self {
            path: path.to_path_buf(),
            // A read waits for a pooled connection as long as a write waits for
            // the lock: well inside the request timeout, so a client is told
            // "busy, retry" (503) rather than timed out (408).
            checkpointer,
            readers: Readers::new(path, opts.read_pool_size, busy, Box::new(open)),
            writer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in an immediate transaction on the writer connection and
    /// commits when it returns `Ok`. Nothing is written when it fails.
    ///
    /// # Errors
    /// The error `f` returns, or the store error of begin or commit.
    pub fn write<T, E>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        drop(conn);
        self.checkpointer.committed();
        Ok(out)
    }

    /// Runs `f` with the writer connection outside any transaction
    /// (migrations, checkpoints, online backup).
    pub fn with_writer<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let out = f(&mut conn);
        drop(conn);
        self.checkpointer.committed();
        out
    }

    /// Runs `f` on a pooled read-only connection.
    ///
    /// # Errors
    /// The error `f` returns, or a pool error as a store error.
    pub fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let conn = self.readers.get()?;
        f(&conn)
    }

    /// Closes the read connections idle for `idle_for` or longer, giving
    /// their page caches back. Returns how many were closed.
    pub fn close_idle_readers(&self, idle_for: Duration) -> usize {
        self.readers.close_idle(idle_for)
    }

    /// Read connections open, and how many of them are idle.
    pub fn reader_counts(&self) -> (usize, usize) {
        self.readers.counts()
    }

    /// Bytes on disk: the database file plus its WAL.
    pub fn size_on_disk(&self) -> u64 {
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        [self.path.as_path(), wal.as_path()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Creates an empty encrypted database file at `path` (mode 0600) keyed with
/// `key`. Fails if the file exists.
///
/// # Errors
/// I/O or SQLite errors.
pub fn create(path: &Path, key: &DerivedKey) -> Result<(), StoreError> {
    // Create the file ourselves so it is 0600 from its first byte; SQLite
    // gives the -wal and -shm files the same mode.
    crate::fsperm::create_private_file(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    unlock(&conn, key, path)?;
    // Writing the header makes the key part of the file from the start.
    conn.execute_batch("PRAGMA journal_mode=WAL;")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> DbOptions {
        DbOptions {
            busy_timeout: Duration::from_secs(5),
            read_pool_size: 4,
        }
    }

    /// A new empty database in `dir`, with its key.
    fn fresh(dir: &tempfile::TempDir, seed: u8) -> (PathBuf, crate::crypto::DerivedKey) {
        let path = dir.path().join("t.db");
        let key = crate::crypto::DerivedKey::new([seed; 32]);
        create(&path, &key).expect("create");
        (path, key)
    }

    #[test]
    fn dropping_a_database_closes_every_connection_before_it_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, key) = fresh(&dir, 7);
        let wal = dir.path().join("t.db-wal");
        for round in 0..20 {
            let db = Db::open(&path, key.clone(), &opts()).expect("open");
            db.write(|tx| {
                tx.execute_batch("CREATE TABLE IF NOT EXISTS t (n INTEGER)")?;
                tx.execute("INSERT INTO t VALUES (?1)", [round])
                    .map_err(StoreError::from)
            })
            .expect("write");
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        db.read(|c| {
                            c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                                .map_err(StoreError::from)
                        })
                        .expect("read")
                    });
                }
            });
            assert!(wal.exists(), "the WAL is in use while the database is open");
            drop(db);
            // The writer, closed last, removes the WAL; had any reader
            // still been open (or been closed later on another thread),
            // the file would remain.
            assert!(
                !wal.exists(),
                "round {round}: a connection outlived the drop"
            );
        }
    }

    #[test]
    fn the_checkpoint_thread_copies_the_log_back_while_the_database_is_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, key) = fresh(&dir, 11);
        let db = Db::open(&path, key, &opts()).expect("open");
        let before = std::fs::metadata(&path).expect("file").len();
        db.write(|tx| {
            tx.execute_batch("CREATE TABLE t (b BLOB)")?;
            for _ in 0..200 {
                tx.execute("INSERT INTO t VALUES (randomblob(1000))", [])?;
            }
            Ok::<_, StoreError>(())
        })
        .expect("write");
        // Far below the writer's own threshold: only the checkpoint thread
        // copies these pages into the file while it is open.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let grown = loop {
            let now = std::fs::metadata(&path).expect("file").len();
            if now > before + 150 * 1024 || std::time::Instant::now() > deadline {
                break now;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            grown > before + 150 * 1024,
            "the file stayed at {grown} bytes (it was {before}): nothing was checkpointed"
        );
        let n = db
            .read(|c| {
                c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                    .map_err(StoreError::from)
            })
            .expect("read");
        assert_eq!(n, 200);
    }

    /// How often SQLite has started the log over: the checkpoint sequence
    /// number in the WAL file's header (big-endian, bytes 12 to 15), which
    /// each restart increments.
    fn log_restarts(path: &Path) -> u32 {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let head = std::fs::read(wal).expect("wal");
        u32::from_be_bytes(head[12..16].try_into().expect("header"))
    }

    #[test]
    fn under_steady_commits_the_checkpoint_thread_starts_the_log_over_before_the_backstop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, key) = fresh(&dir, 12);
        let db = Db::open(&path, key, &opts()).expect("open");
        db.write(|tx| {
            tx.execute_batch("CREATE TABLE t (b BLOB)")
                .map_err(StoreError::from)
        })
        .expect("table");
        let first = log_restarts(&path);
        // A commit every half millisecond or so for four seconds, a page or
        // two each: at most about 16,000 frames, the writer's backstop, so
        // only the thread's restart can start the log over. A passive pass
        // alone leaves it growing: a commit lands between the end of each
        // pass and the next transaction.
        let until = std::time::Instant::now() + Duration::from_secs(4);
        let mut commits = 0u32;
        while std::time::Instant::now() < until {
            db.write(|tx| {
                tx.execute("INSERT INTO t VALUES (randomblob(3000))", [])
                    .map_err(StoreError::from)
            })
            .expect("write");
            commits += 1;
            std::thread::sleep(Duration::from_micros(500));
        }
        let restarts = log_restarts(&path).wrapping_sub(first);
        assert!(
            restarts >= 1,
            "the log was never started over in {commits} commits"
        );
    }

    #[test]
    fn readers_are_opened_only_when_needed_and_closed_when_idle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, key) = fresh(&dir, 9);
        let db = Db::open(&path, key, &opts()).expect("open");
        assert_eq!(db.reader_counts(), (0, 0));
        let n = db
            .read(|c| {
                c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(StoreError::from)
            })
            .expect("read");
        assert_eq!(n, 0);
        assert_eq!(db.reader_counts(), (1, 1));
        let refused = db.read(|c| {
            c.execute_batch("CREATE TABLE x (a)")
                .map_err(StoreError::from)
        });
        assert!(refused.is_err(), "read connections cannot write");
        assert_eq!(db.close_idle_readers(Duration::ZERO), 1);
        assert_eq!(db.reader_counts(), (0, 0));
    }
}
