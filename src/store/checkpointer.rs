//! Copies a database's write-ahead log back into the file on a thread of
//! its own, so the writer does not. SQLite's automatic checkpoint runs on
//! the connection that commits, inside the commit of whichever push takes
//! the log past its threshold, and then syncs the file: with the writer
//! busy that made about half of a push's commit time and held the write
//! lock while the disk caught up (`docs/benchmarks.md`, sustained ingest).
//! Here a commit only marks the log as grown; [`PAUSE`] later this thread
//! runs `PRAGMA wal_checkpoint(PASSIVE)` on its own read-write connection,
//! which copies what no reader still needs without waiting for, or
//! blocking, the writer or any reader. The writer keeps SQLite's automatic
//! checkpoint as a backstop at a larger threshold, for a log this thread
//! cannot keep up with.
//!
//! Copying the log back is not enough under a steady load: SQLite starts
//! the log over (writes from its beginning again) only in a write
//! transaction that began while the log was copied whole, and with a
//! commit every few milliseconds one nearly always lands between the end
//! of a pass and the next transaction. The log then grew to the writer's
//! backstop every second or two, and the push whose commit reached it
//! copied the rest and synced the file while every other push waited
//! (`docs/benchmarks.md`, sustained ingest, runs 10 and 11). So once a
//! pass leaves a log of [`RESTART_FRAMES`] or more, the thread holds the
//! writer for one `wal_checkpoint(RESTART)`: it copies what landed since
//! the pass, waits up to [`RESTART_WAIT`] for readers still reading the
//! log, and leaves it whole, so the writer's next transaction starts it
//! over. That holds the writer about 10 ms a time, every half second or
//! so under load.
//!
//! Like the read pool (`super::readers`), nothing outlives its owner: the
//! thread's connection is opened on the thread, and dropping the
//! [`Checkpointer`] stops the thread and waits until it has closed it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// How long after the first commit since the last checkpoint the next one
/// runs: the commits in between are copied back together (a page written
/// by several of them is copied once).
pub const PAUSE: Duration = Duration::from_millis(500);

/// A checkpoint during which commits landed is run again at once, at most
/// this many passes in all, so the log is usually copied whole and the
/// writer can start it over from the beginning (else it grows until the
/// writer's backstop copies it inside a commit).
const CATCH_UP: usize = 8;

/// A pass that leaves a log at least this long (frames, about 16 MiB) is
/// followed by a restart with the writer held.
const RESTART_FRAMES: i64 = 4_000;

/// How long the restart waits for readers still reading the log (the
/// thread's connection's busy timeout; a passive pass never waits). A
/// restart that cannot finish in time is tried again after the next pass.
pub(super) const RESTART_WAIT: Duration = Duration::from_millis(20);

/// Opens the thread's read-write connection, keyed.
pub(super) type Opener = Box<dyn FnOnce() -> Result<Connection, StoreError> + Send>;

/// The database's writer: the thread holds it (without using it) while it
/// restarts the log, so no commit lands meanwhile.
pub(super) type Writer = Arc<Mutex<Connection>>;

#[derive(Default)]
struct State {
    /// A commit since the last checkpoint pass began.
    grown: bool,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The checkpoint thread of one database.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread; `open` runs on it. `name` (the database's file
    /// name) is for the log.
    pub(super) fn start(name: String, open: Opener, writer: Writer) -> Self {
        let shared = Arc::new(Shared::default());
        let on_thread = Arc::clone(&shared);
        let thread_name = name.clone();
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || run(&on_thread, &thread_name, open, &writer))
            .map_err(|e| tracing::warn!(db = %name, error = %e, "no checkpoint thread: the writer checkpoints"))
            .ok();
        Self { shared, thread }
    }

    /// A transaction was committed: the log has grown.
    pub(super) fn committed(&self) {
        let mut state = self.shared.lock();
        if !state.grown {
            state.grown = true;
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, name: &str, open: Opener, writer: &Writer) {
    let conn = match open() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(db = %name, error = %e, "the checkpoint thread cannot open the database: the writer checkpoints");
            return;
        }
    };
    loop {
        let mut state = shared.lock();
        while !state.grown && !state.stop {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.stop {
            return;
        }
        // Let the commits of the next moment gather.
        let (mut state, _) = shared
            .wake
            .wait_timeout_while(state, PAUSE, |s| !s.stop)
            .unwrap_or_else(PoisonError::into_inner);
        if state.stop {
            return;
        }
        let mut log = 0;
        for _ in 0..CATCH_UP {
            state.grown = false;
            drop(state);
            log = checkpoint(&conn, name, "PASSIVE");
            state = shared.lock();
            // Commits that landed while it copied: copy theirs at once (a
            // shorter pass each time), so that the log is soon copied
            // whole and the writer's next transaction starts it over.
            if !state.grown || state.stop {
                break;
            }
        }
        if log >= RESTART_FRAMES && !state.stop {
            drop(state);
            let held = writer.lock().unwrap_or_else(PoisonError::into_inner);
            checkpoint(&conn, name, "RESTART");
            drop(held);
        }
    }
}

/// One checkpoint in `mode`; returns the frames in the log (0 when it
/// failed, which is logged: the writer's own checkpoint remains).
/// PASSIVE copies what no reader still needs without waiting for anyone;
/// RESTART waits for readers up to the connection's busy timeout.
fn checkpoint(conn: &Connection, name: &str, mode: &str) -> i64 {
    match conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        r.get::<_, i64>(1)
    }) {
        Ok(log) => log,
        Err(e) => {
            tracing::warn!(db = %name, error = %e, "write-ahead log checkpoint failed; the writer's own checkpoint remains");
            0
        }
    }
}
