//! The hand-off between the hook and the ingest worker. A hook does only
//! what must happen at once (the turn stamp, a throttled sync at a turn's
//! end) and leaves a *signal*: which session record has something new,
//! how long it was then, whether the turn ended. `aiworklab agent
//! ingest`, started detached by the hook when none runs, reads each
//! signalled record from its stored cursor, tags it and records the
//! observations with the cursor in one transaction (what the hook did
//! itself before), and exits once no signal is left. Every command that
//! shows or sends what the hooks recorded (`agent status`, `outbox`,
//! `sync`, `check`, the MCP tools) first reads the pending signals
//! itself ([`catch_up`]), so it never lags behind the hooks.
//!
//! The files, under `ingest/` in the kernel's directory (mode 0700):
//! - `recipient`: an age X25519 public key. Its private half lives in the
//!   encrypted store (`LocalStore::signal_identity`), so a hook seals a
//!   signal without the store's key (no keychain, no store open).
//! - `signals/<harness>.<hash>.<length>.<last>`: one file per signal
//!   (mode 0600), its name the record's source name (a hash of its path,
//!   as the cursors hold it), the record's length in hexadecimal and
//!   whether the turn ended; its content the record's path, length, turn
//!   end and the event's time, sealed to `recipient`. Nothing else: no
//!   code, diff, prompt, message or command, and the path only sealed.
//!   Two events that saw the same record at the same length are one file
//!   (the second finds it there and writes nothing). Past [`COALESCE_AT`]
//!   files a hook names its signal with no length (the record is then read
//!   to its end), so each source adds at most two more; past
//!   [`INLINE_AT`] the hook reads the record itself, as it did before.
//! - `lock`: held (`flock`, exclusive) by whoever reads signals. The
//!   worker takes it without waiting and exits when it cannot (someone is
//!   reading them); after its last signal it stays [`LINGER`], holding it,
//!   for the rest of a burst of hooks. A command takes it when it is free,
//!   and otherwise waits until no signal is left (a lingering worker is
//!   not waited for).
//!
//! Nothing is stranded: a hook writes its signal, then tries the lock;
//! when it gets it, nobody is reading, so it lets go and starts a worker,
//! which lists the signals after taking the lock. When it does not, the
//! holder lists the signals again after letting go, and goes on when any
//! is left (taking the lock again, or leaving them to whoever holds it
//! now, who does the same). Nothing is lost: a signal is removed only
//! once its record's observations and cursor are committed; a worker
//! killed midway leaves the rest (and the one it was reading) for the
//! next, and reading a record again from its cursor records nothing
//! twice.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::Utc;

use super::harness::{Plan, Record};
use super::home::Home;
use super::hook;
use super::store::LocalStore;

/// Past this many signals waiting, a hook names its signal with no
/// length (one per source and turn end: the record is read to its end).
pub const COALESCE_AT: usize = 1024;

/// Past this many, the hook reads the record itself (the worker cannot
/// keep up, or cannot run: its failures are in the kernel's log).
pub const INLINE_AT: usize = 4096;

/// A half-written signal left by a killed hook is removed after this.
const STALE_TMP: Duration = Duration::from_secs(60);

/// How long a worker stays, holding the lock, after the last signal it
/// read, looking for new ones every [`POLL`]: the hooks of a turn come
/// in bursts, and while it stays they start no other worker (each start
/// opens the store and parses the catalogue again).
pub const LINGER: Duration = Duration::from_secs(2);

/// How often a lingering worker, or a command waiting for one, looks.
const POLL: Duration = Duration::from_millis(5);

/// How long a command waits for a worker that holds the lock while
/// signals wait, before it says so.
const WAIT_FOR_WORKER: Duration = Duration::from_secs(60);

/// The signals of one kernel directory.
#[derive(Debug, Clone)]
pub struct Queue {
    home: PathBuf,
}

/// The lock on reading signals; let go when dropped.
#[derive(Debug)]
pub struct Lock {
    _held: File,
}

/// What a hook's [`Queue::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// A new signal file.
    New,
    /// The same signal was already waiting.
    Coalesced,
}

/// Why a hook could not leave a signal (it then reads the record itself).
#[derive(Debug)]
pub enum PushError {
    /// No store has published its signal key yet (the kernel's first event).
    NoKey,
    /// [`INLINE_AT`] signals wait already.
    Full(usize),
    /// Anything else, named.
    Failed(String),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoKey => f.write_str("no signal key yet (the store was never opened)"),
            Self::Full(n) => write!(
                f,
                "{n} signals wait for the ingest worker: see its failures above, or run `aiworklab agent status` to read them"
            ),
            Self::Failed(e) => f.write_str(e),
        }
    }
}

impl Queue {
    /// The queue of the kernel's directory `home`.
    pub fn of(home: &Home) -> Queue {
        Queue::in_dir(home.dir())
    }

    /// The queue of the kernel's directory `dir`.
    pub fn in_dir(dir: &Path) -> Queue {
        Queue {
            home: dir.to_path_buf(),
        }
    }

    /// The queue beside `store` (in the kernel's directory that holds it).
    pub fn of_store(store: &LocalStore) -> Queue {
        Queue::in_dir(store.path().parent().unwrap_or(Path::new(".")))
    }

    fn dir(&self) -> PathBuf {
        Home::at(&self.home).ingest_dir()
    }

    /// Where the signal files are.
    pub fn signals_dir(&self) -> PathBuf {
        self.dir().join("signals")
    }

    fn lock_path(&self) -> PathBuf {
        self.dir().join("lock")
    }

    fn log(&self, message: &str) {
        hook::log_as(&Home::at(&self.home).log_path(), "ingest", message);
    }

    fn ensure_dir(dir: &Path) -> std::io::Result<()> {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)
    }

    /// The waiting signals' files, in the order they are read (by source,
    /// then by the record's length, a turn end after the same length
    /// without).
    pub fn pending(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.signals_dir()) else {
            return Vec::new();
        };
        let mut names: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
            })
            .collect();
        names.sort();
        names
    }

    /// The file name of `record`'s signal.
    fn name(record: &Record) -> String {
        format!(
            "{}.{:016x}.{}",
            record.source().replace(':', "."),
            record.upto.unwrap_or(u64::MAX),
            u8::from(record.last)
        )
    }

    /// Leaves a signal that `record` has something new, sealed to the
    /// store's signal key.
    ///
    /// # Errors
    /// [`PushError`]: the hook then reads the record itself.
    pub fn push(&self, record: &Record) -> Result<Pushed, PushError> {
        let recipient_path = Home::at(&self.home).signal_recipient_path();
        let recipient: age::x25519::Recipient = match std::fs::read_to_string(&recipient_path) {
            Ok(text) => text.trim().parse().map_err(|e| {
                PushError::Failed(format!(
                    "the signal key {} does not parse ({e}); any command of `aiworklab agent` writes it again",
                    recipient_path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(PushError::NoKey),
            Err(e) => {
                return Err(PushError::Failed(format!(
                    "cannot read the signal key {}: {e}",
                    recipient_path.display()
                )));
            }
        };
        let dir = self.signals_dir();
        let waiting = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.count(),
            Err(_) => {
                Self::ensure_dir(&dir).map_err(|e| {
                    PushError::Failed(format!("cannot create {}: {e}", dir.display()))
                })?;
                0
            }
        };
        if waiting >= INLINE_AT {
            return Err(PushError::Full(waiting));
        }
        let mut record = record.clone();
        if waiting >= COALESCE_AT {
            record.upto = None;
        }
        let path = dir.join(Self::name(&record));
        if path.exists() {
            return Ok(Pushed::Coalesced);
        }
        let plain = serde_json::to_vec(&record).map_err(|e| {
            PushError::Failed(format!("the record's path cannot be written down: {e}"))
        })?;
        let sealed = age::encrypt(&recipient, &plain)
            .map_err(|e| PushError::Failed(format!("cannot seal a signal: {e}")))?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let written = o
            .open(&tmp)
            .and_then(|mut f| f.write_all(&sealed))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(PushError::Failed(format!(
                "cannot write a signal in {}: {e}",
                dir.display()
            )));
        }
        Ok(Pushed::New)
    }

    fn open_lock(&self) -> std::io::Result<File> {
        let dir = self.dir();
        Self::ensure_dir(&dir)?;
        let mut o = std::fs::OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(self.lock_path())
    }

    /// The lock, if nobody holds it.
    ///
    /// # Errors
    /// The lock file cannot be opened.
    pub fn try_lock(&self) -> std::io::Result<Option<Lock>> {
        let f = self.open_lock()?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Lock { _held: f })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Removes half-written signals of hooks killed while writing.
    fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(self.signals_dir()) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE_TMP);
            if old && e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// What reading the signals did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Signals read (and removed).
    pub signals: usize,
    /// Observations recorded.
    pub recorded: usize,
    /// Signals that could not be opened (sealed to a key this store does
    /// not hold: the store was replaced), removed and logged.
    pub dropped: usize,
}

impl std::ops::AddAssign for Drained {
    fn add_assign(&mut self, o: Drained) {
        self.signals += o.signals;
        self.recorded += o.recorded;
        self.dropped += o.dropped;
    }
}

/// Reads every waiting signal into `store`, until none is left. The
/// caller holds the lock.
///
/// # Errors
/// The store cannot be read or written: the signal being read and the
/// rest stay for the next reader.
fn drain(
    store: &mut LocalStore,
    queue: &Queue,
    _lock: &Lock,
    linger: Duration,
) -> Result<Drained, String> {
    let identity = store.signal_identity().map_err(|e| e.to_string())?;
    queue.sweep();
    let mut done = Drained::default();
    let mut idle_since = std::time::Instant::now();
    loop {
        let pending = queue.pending();
        if pending.is_empty() {
            if idle_since.elapsed() >= linger {
                return Ok(done);
            }
            std::thread::sleep(POLL);
            continue;
        }
        idle_since = std::time::Instant::now();
        for path in pending {
            let sealed = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("cannot read the signal {}: {e}", path.display())),
            };
            let record = age::decrypt(&identity, &sealed)
                .map_err(|e| e.to_string())
                .and_then(|plain| {
                    serde_json::from_slice::<Record>(&plain).map_err(|e| e.to_string())
                });
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    // Sealed to another store's key (this one was moved
                    // aside and made anew), or damaged: nothing to read.
                    // The record's next event signals it again.
                    queue.log(&format!(
                        "a signal that cannot be opened was dropped ({e}): {}",
                        path.file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default()
                    ));
                    let _ = std::fs::remove_file(&path);
                    done.dropped += 1;
                    continue;
                }
            };
            let harness = record.harness;
            let plan = Plan {
                read: Some(record),
                ..Plan::none(harness)
            };
            let ran =
                hook::carry_out(plan, store, Utc::now()).map_err(|e| format!("{harness}: {e}"))?;
            std::fs::remove_file(&path).or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(format!("cannot remove the signal {}: {e}", path.display()))
                }
            })?;
            done.signals += 1;
            done.recorded += ran.recorded;
        }
    }
}

/// Reads signals while holding `lock`, then, after letting go, again
/// while any is left and the lock is free (whoever holds it otherwise
/// reads them).
/// `between` runs after each round, the lock still held (tests write a
/// signal there: a hook's that finds the lock taken).
fn drain_all(
    store: &mut LocalStore,
    queue: &Queue,
    lock: Lock,
    linger: Duration,
    between: &mut dyn FnMut(),
) -> Result<Drained, String> {
    let mut total = Drained::default();
    let mut lock = Some(lock);
    while let Some(held) = lock.take() {
        let r = drain(store, queue, &held, linger);
        between();
        drop(held);
        total += r?;
        if queue.pending().is_empty() {
            break;
        }
        lock = queue
            .try_lock()
            .map_err(|e| format!("cannot take the ingest lock: {e}"))?;
    }
    Ok(total)
}

/// Reads every signal the hooks left into `store` (or, while a worker
/// holds the lock, waits until it has read them all): what a command
/// that shows or sends the graph calls before it reads the store.
///
/// # Errors
/// The lock cannot be taken or the store read or written (named).
pub fn catch_up(store: &mut LocalStore) -> Result<Drained, String> {
    let queue = Queue::of_store(store);
    let start = std::time::Instant::now();
    loop {
        // A signal is removed only once its record is committed: none
        // waiting means everything signalled is in the store (a worker
        // lingering with the lock is not waited for).
        if queue.pending().is_empty() {
            return Ok(Drained::default());
        }
        if let Some(lock) = queue
            .try_lock()
            .map_err(|e| format!("cannot take the ingest lock: {e}"))?
        {
            return drain_all(store, &queue, lock, Duration::ZERO, &mut || {});
        }
        if start.elapsed() > WAIT_FOR_WORKER {
            return Err(format!(
                "an `aiworklab agent ingest` worker has held the ingest lock for {} s while signals wait; if it hangs, end it (its id: `pgrep -f \"agent ingest\"`)",
                WAIT_FOR_WORKER.as_secs()
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// `aiworklab agent ingest`: reads the signals unless someone else is,
/// then exits. Never prints; failures go to the kernel's log.
pub fn main() {
    let Ok(home) = Home::locate() else {
        return;
    };
    let log_path = home.log_path();
    std::panic::set_hook(Box::new(move |info| {
        hook::log_as(&log_path, "ingest", &format!("internal error: {info}"));
    }));
    let queue = Queue::of(&home);
    let result = std::panic::catch_unwind(|| work(&home, &queue));
    if let Ok(Err(e)) = result {
        queue.log(&e);
    }
}

fn work(home: &Home, queue: &Queue) -> Result<Drained, String> {
    let Some(lock) = queue
        .try_lock()
        .map_err(|e| format!("cannot take the ingest lock: {e}"))?
    else {
        return Ok(Drained::default());
    };
    let mut store = LocalStore::open_for_hook(home).map_err(|e| e.to_string())?;
    if let Some(w) = store.take_warning() {
        queue.log(&w);
    }
    let drained = drain_all(&mut store, queue, lock, LINGER, &mut || {});
    let released = store.release().map_err(|e| e.to_string());
    let drained = drained?;
    released?;
    Ok(drained)
}

/// Makes sure a worker will read the signals: when nobody holds the lock,
/// starts `<bin> agent ingest` detached (own process group, no stdio).
/// Returns whether it started one.
pub fn wake(queue: &Queue, bin: &Path) -> bool {
    match queue.try_lock() {
        Ok(Some(lock)) => drop(lock),
        // Someone reads the signals: they look again after letting go.
        Ok(None) | Err(_) => return false,
    }
    let mut cmd = std::process::Command::new(bin);
    // In the kernel's directory: a worker that outlives the hook does not
    // keep the project's directory in use.
    cmd.args(["agent", "ingest"])
        .current_dir(&queue.home)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    match cmd.spawn() {
        // Not waited for: the worker outlives the hook (its parent gone,
        // it is reaped by init).
        Ok(_child) => true,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests;
