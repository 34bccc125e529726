//! The read-only connections of one database, pooled without helper
//! threads: a connection is opened on the thread that first needs it,
//! handed back when that thread is done, and closed on the thread that
//! drops the pool or trims it.
//!
//! It replaces r2d2, whose helper threads opened and closed the
//! connections. When the last handle on an r2d2 pool was let go on one of
//! those threads while the process was exiting, SQLCipher freed its cipher
//! contexts after OpenSSL's exit handlers had torn OpenSSL down, and a
//! short operator command such as `aiworklab concept list` died of SIGSEGV
//! after printing its answer (about one run in 1,500). Here nothing runs
//! behind the caller's back, so when [`Readers`] is dropped every
//! connection is closed before the drop returns.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::StoreError;

/// Opens one read-only connection, keyed and configured.
pub(super) type Opener = Box<dyn Fn() -> Result<Connection, StoreError> + Send + Sync>;

/// At most `size` read-only connections of the database at `path`.
pub(super) struct Readers {
    path: PathBuf,
    size: usize,
    /// How long [`Readers::get`] waits for a busy pool before it gives up.
    wait: Duration,
    open: Opener,
    state: Mutex<State>,
    returned: Condvar,
}

struct State {
    /// Connections nobody holds, the most recently returned last (it has
    /// the warmest page cache, so it is handed out first).
    idle: Vec<Idle>,
    /// Connections in existence: idle, held, or being opened.
    open: usize,
}

struct Idle {
    conn: Connection,
    since: Instant,
}

/// A connection borrowed from [`Readers`]; it goes back when dropped.
pub(super) struct Reader<'a> {
    pool: &'a Readers,
    conn: Option<Connection>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a reader holds its connection until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.lock().idle.push(Idle {
                conn,
                since: Instant::now(),
            });
            self.pool.returned.notify_one();
        }
    }
}

impl Readers {
    pub(super) fn new(path: &Path, size: u32, wait: Duration, open: Opener) -> Self {
        Self {
            path: path.to_path_buf(),
            size: usize::try_from(size.max(1)).unwrap_or(usize::MAX),
            wait,
            open,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is never held across a caller's code, so a poisoned
        // state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, a new one while fewer than `size` exist, or the
    /// first one handed back within `wait`.
    ///
    /// # Errors
    /// [`StoreError::ReadersBusy`] when all stay busy for `wait`, or the
    /// error opening a new connection (wrong key, missing file, ...).
    pub(super) fn get(&self) -> Result<Reader<'_>, StoreError> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            if let Some(idle) = state.idle.pop() {
                return Ok(Reader {
                    pool: self,
                    conn: Some(idle.conn),
                });
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match (self.open)() {
                    Ok(conn) => Ok(Reader {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::ReadersBusy {
                    path: self.path.clone(),
                    size: self.size,
                    waited: self.wait,
                });
            }
            state = self
                .returned
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Closes, on this thread, the connections idle for `idle_for` or
    /// longer, so an org nobody reads gives its page caches back.
    /// Returns how many were closed.
    pub(super) fn close_idle(&self, idle_for: Duration) -> usize {
        let now = Instant::now();
        let closing: Vec<Idle> = {
            let mut state = self.lock();
            let (old, kept) = std::mem::take(&mut state.idle)
                .into_iter()
                .partition(|i| now.saturating_duration_since(i.since) >= idle_for);
            state.idle = kept;
            state.open -= old.len();
            old
        };
        closing.len()
    }

    /// Connections in existence and how many of them are idle.
    pub(super) fn counts(&self) -> (usize, usize) {
        let state = self.lock();
        (state.open, state.idle.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn pool(size: u32, wait: Duration) -> (Readers, Arc<AtomicUsize>) {
        let opened = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&opened);
        let open: Opener = Box::new(move || {
            count.fetch_add(1, Ordering::SeqCst);
            Ok(Connection::open_in_memory()?)
        });
        (Readers::new(Path::new("test.db"), size, wait, open), opened)
    }

    #[test]
    fn connections_are_reused_and_never_exceed_the_size() {
        let (readers, opened) = pool(2, Duration::from_millis(50));
        {
            let _a = readers.get().expect("first");
            let _b = readers.get().expect("second");
            assert_eq!(readers.counts(), (2, 0));
            let err = readers.get().map(|_| ()).expect_err("the pool is full");
            assert!(
                matches!(err, StoreError::ReadersBusy { size: 2, .. }),
                "{err}"
            );
        }
        assert_eq!(readers.counts(), (2, 2));
        for _ in 0..10 {
            let c = readers.get().expect("reused");
            let one: i64 = c.query_row("SELECT 1", [], |r| r.get(0)).expect("query");
            assert_eq!(one, 1);
        }
        assert_eq!(opened.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_waiting_caller_gets_the_connection_handed_back() {
        let (readers, opened) = pool(1, Duration::from_secs(30));
        let held = readers.get().expect("first");
        std::thread::scope(|s| {
            let waiter = s.spawn(|| readers.get().map(|_| ()));
            std::thread::sleep(Duration::from_millis(20));
            drop(held);
            waiter.join().expect("no panic").expect("handed over");
        });
        assert_eq!(opened.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_open_gives_its_place_back() {
        let tries = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&tries);
        let open: Opener = Box::new(move || {
            if count.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(StoreError::WrongKey {
                    path: PathBuf::from("test.db"),
                })
            } else {
                Ok(Connection::open_in_memory()?)
            }
        });
        let readers = Readers::new(Path::new("test.db"), 1, Duration::from_millis(10), open);
        assert!(matches!(
            readers.get().map(|_| ()),
            Err(StoreError::WrongKey { .. })
        ));
        assert_eq!(readers.counts(), (0, 0));
        readers.get().expect("the place is free again");
    }

    #[test]
    fn idle_connections_are_closed_and_busy_ones_kept() {
        let (readers, opened) = pool(3, Duration::from_millis(10));
        let held = readers.get().expect("held");
        drop((readers.get().expect("a"), readers.get().expect("b")));
        assert_eq!(readers.counts(), (3, 2));
        assert_eq!(readers.close_idle(Duration::from_secs(600)), 0);
        assert_eq!(readers.close_idle(Duration::ZERO), 2);
        assert_eq!(readers.counts(), (1, 0));
        drop(held);
        readers.get().expect("reused");
        assert_eq!(opened.load(Ordering::SeqCst), 3);
    }
}
