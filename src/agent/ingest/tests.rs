//! The signal queue against real SQLCipher stores: what the hand-off
//! records is exactly what the hook recorded itself, the queue stays
//! bounded, and no signal is stranded or read twice.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::*;
use crate::agent::harness::{self, Places};
use crate::agent::hook;

/// The sample session's lines written before each event (as
/// `benches/hook.rs` replays it) and the payload fired.
const STEPS: [(std::ops::RangeInclusive<usize>, &str); 5] = [
    (0..=3, "post-tool-use-write.json"),
    (4..=5, "post-tool-use-bash.json"),
    (6..=7, "stop-1.json"),
    (8..=10, "post-tool-use-edit.json"),
    (11..=11, "stop-2.json"),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions/claude-code")
}

/// A Claude Code session growing turn by turn in `dir`: each call to
/// `next` appends the lines written before the next event and returns
/// its payload.
struct Session {
    transcript: PathBuf,
    sample: Vec<Value>,
    payloads: Vec<String>,
    event: usize,
}

impl Session {
    fn new(dir: &Path, name: &str) -> Session {
        let transcript = dir.join(name);
        std::fs::write(&transcript, "").expect("transcript");
        let sample = std::fs::read_to_string(fixtures().join("sample-session.jsonl"))
            .expect("sample")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        let payloads = STEPS
            .iter()
            .map(|(_, f)| std::fs::read_to_string(fixtures().join(f)).expect("payload"))
            .collect();
        Session {
            transcript,
            sample,
            payloads,
            event: 0,
        }
    }

    /// Grows the transcript and returns the next event's payload.
    fn next(&mut self) -> Vec<u8> {
        let (turn, step) = (self.event / STEPS.len(), self.event % STEPS.len());
        self.event += 1;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.transcript)
            .expect("transcript");
        for line in &self.sample[STEPS[step].0.clone()] {
            let mut l = line.clone();
            if let Some(t) = l
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            {
                l["timestamp"] = Value::String(
                    (t - chrono::Duration::minutes(10 * turn as i64))
                        .to_utc()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                );
            }
            writeln!(f, "{l}").expect("append");
        }
        self.payloads[step]
            .replace("@TRANSCRIPT@", &self.transcript.to_string_lossy())
            .into_bytes()
    }
}

/// A kernel directory with its store (made, so its signal key is
/// published).
fn kernel(dir: &Path, name: &str) -> (Home, LocalStore) {
    let home = Home::at(dir.join(name));
    let store = LocalStore::open(&home).expect("store");
    (home, store)
}

/// What the hook does with an event now: its plan's record, signalled.
fn signal(home: &Home, payload: &[u8]) -> Pushed {
    let plan = harness::plan(
        harness::Harness::ClaudeCode,
        &Places::default(),
        payload,
        None,
        Utc::now(),
    );
    let record = plan.read.expect("the transcript exists");
    Queue::of(home).push(&record).expect("signalled")
}

/// What the hook did with an event before: read and recorded at once.
fn inline(store: &mut LocalStore, payload: &[u8]) {
    hook::handle(
        harness::Harness::ClaudeCode,
        payload,
        None,
        store,
        &Places::default(),
        Utc::now(),
    )
    .expect("recorded");
}

/// The store's outbox without the ids (minted anew by each store).
fn facts(store: &LocalStore) -> Vec<(String, String, DateTime<Utc>, Option<u8>)> {
    let mut v: Vec<_> = store
        .outbox(usize::MAX)
        .expect("outbox")
        .into_iter()
        .map(|d| (d.concept, d.transition, d.at, d.grade))
        .collect();
    v.sort();
    v
}

/// Every file under `dir`, as bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).expect("read")));
        }
    }
    out
}

#[test]
fn signals_read_later_record_exactly_what_the_hook_recorded_at_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (handed_home, mut handed) = kernel(tmp.path(), "handed");
    let (_, mut at_once) = kernel(tmp.path(), "inline");
    let mut session = Session::new(tmp.path(), "session.jsonl");
    let mut coalesced = 0;
    for _ in 0..3 * STEPS.len() {
        let payload = session.next();
        assert_eq!(signal(&handed_home, &payload), Pushed::New);
        // The same event again (a PreToolUse beside its PostToolUse):
        // the record has not grown, so it is the same signal.
        if signal(&handed_home, &payload) == Pushed::Coalesced {
            coalesced += 1;
        }
        inline(&mut at_once, &payload);
    }
    assert_eq!(coalesced, 3 * STEPS.len(), "duplicates are one signal");
    let queue = Queue::of(&handed_home);
    assert_eq!(queue.pending().len(), 3 * STEPS.len());
    assert!(facts(&handed).is_empty(), "nothing recorded by the hooks");
    let drained = catch_up(&mut handed).expect("caught up");
    assert_eq!(drained.signals, 3 * STEPS.len());
    assert_eq!(drained.dropped, 0);
    assert!(queue.pending().is_empty(), "every signal read and removed");
    let (got, want) = (facts(&handed), facts(&at_once));
    assert!(
        want.iter()
            .any(|f| f.0 == "rust-lifetimes" && f.1 == "explained"),
        "the replay is not vacuous: {want:?}"
    );
    assert_eq!(got.len(), drained.recorded);
    assert_eq!(got, want, "the hand-off recorded what the hook did");
    // Nothing left to read: a second catch-up records nothing.
    assert_eq!(catch_up(&mut handed).expect("again"), Drained::default());
}

#[test]
fn a_signal_holds_no_path_in_the_clear_and_is_private() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, _store) = kernel(tmp.path(), "agent");
    let project = tmp.path().join("MARKER_PATH_5e77");
    std::fs::create_dir_all(&project).expect("project");
    let mut session = Session::new(&project, "session.jsonl");
    let payload = session.next();
    assert_eq!(signal(&home, &payload), Pushed::New);
    let all = files(&home.ingest_dir());
    assert_eq!(all.len(), 2, "the recipient and one signal: {all:?}");
    for (path, bytes) in &all {
        let name = path.to_string_lossy();
        assert!(!name.contains("MARKER") && !name.contains("session.jsonl"));
        assert!(
            !bytes.windows(6).any(|w| w == b"MARKER"),
            "{name} holds the path"
        );
        assert!(!bytes.windows(8).any(|w| w == b"/session"), "{name}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&home.ingest_dir()), 0o700);
        assert_eq!(mode(&Queue::of(&home).signals_dir()), 0o700);
        for p in Queue::of(&home).pending() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

#[test]
fn without_a_signal_key_the_hook_is_told_to_read_the_record_itself() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = Home::at(tmp.path().join("never-opened"));
    let mut session = Session::new(tmp.path(), "s.jsonl");
    let plan = harness::plan(
        harness::Harness::ClaudeCode,
        &Places::default(),
        &session.next(),
        None,
        Utc::now(),
    );
    let r = Queue::of(&home).push(&plan.read.expect("record"));
    assert!(matches!(r, Err(PushError::NoKey)), "{r:?}");
}

#[test]
fn the_queue_is_bounded_by_coalescing_then_by_the_hook_reading_itself() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, mut store) = kernel(tmp.path(), "agent");
    let queue = Queue::of(&home);
    let mut session = Session::new(tmp.path(), "s.jsonl");
    let first = session.next();
    assert_eq!(signal(&home, &first), Pushed::New);
    // Other sources' signals up to the coalescing mark (empty files:
    // they cannot be opened, so reading them drops them).
    let dir = queue.signals_dir();
    for i in 1..COALESCE_AT {
        std::fs::write(dir.join(format!("claude-code.{i:016x}.0.0")), b"").expect("filler");
    }
    // Past the mark: one signal per source and turn end, read to the
    // record's end (a Bash step, a Stop, then an Edit step).
    assert_eq!(signal(&home, &session.next()), Pushed::New);
    assert_eq!(signal(&home, &session.next()), Pushed::New, "a turn end");
    assert_eq!(signal(&home, &session.next()), Pushed::Coalesced);
    let unbounded: Vec<_> = queue
        .pending()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".ffffffffffffffff."))
        .collect();
    assert_eq!(unbounded.len(), 2, "{unbounded:?}");
    for i in COALESCE_AT..INLINE_AT {
        std::fs::write(dir.join(format!("claude-code.{i:016x}.0.0")), b"").expect("filler");
    }
    let plan = harness::plan(
        harness::Harness::ClaudeCode,
        &Places::default(),
        &session.next(),
        None,
        Utc::now(),
    );
    let full = queue.push(&plan.read.expect("record"));
    assert!(matches!(full, Err(PushError::Full(_))), "{full:?}");
    // Reading drops what cannot be opened (logged) and reads the rest:
    // the unbounded signal reads the record to its end.
    let drained = catch_up(&mut store).expect("caught up");
    assert_eq!(drained.signals, 3);
    assert_eq!(drained.dropped, INLINE_AT - 1, "every filler");
    assert!(queue.pending().is_empty());
    let log = std::fs::read_to_string(home.log_path()).expect("log");
    assert!(log.contains("ingest: a signal that cannot be opened was dropped"));
    let seen: Vec<_> = facts(&store).into_iter().map(|f| f.0).collect();
    assert!(seen.contains(&"rust-lifetimes".to_string()), "{seen:?}");
}

#[test]
fn a_signal_written_while_the_reader_lets_go_is_not_stranded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, mut store) = kernel(tmp.path(), "agent");
    let (_, mut at_once) = kernel(tmp.path(), "inline");
    let queue = Queue::of(&home);
    let mut session = Session::new(tmp.path(), "s.jsonl");
    let first = session.next();
    signal(&home, &first);
    inline(&mut at_once, &first);
    let lock = queue.try_lock().expect("lock").expect("free");
    let mut rounds = 0;
    let mut late = || {
        rounds += 1;
        if rounds == 1 {
            // A hook after the reader's last look, before it lets go:
            // the lock is taken, so it starts no worker.
            let payload = session.next();
            signal(&home, &payload);
            inline(&mut at_once, &payload);
            assert!(
                !wake(&queue, Path::new("/bin/false")),
                "no worker while the lock is held"
            );
        }
    };
    let drained = drain_all(&mut store, &queue, lock, Duration::ZERO, &mut late).expect("drained");
    assert_eq!(rounds, 2, "the reader looked again after letting go");
    assert_eq!(drained.signals, 2);
    assert!(queue.pending().is_empty(), "nothing stranded");
    assert_eq!(facts(&store), facts(&at_once));
    // With the lock free, a hook starts a worker (`/bin/true` stands in
    // for the binary: it ignores its arguments).
    assert!(wake(&queue, Path::new("/bin/true")));
}

#[test]
fn a_reader_killed_midway_loses_nothing_and_records_nothing_twice() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, mut store) = kernel(tmp.path(), "agent");
    let (_, mut at_once) = kernel(tmp.path(), "inline");
    let queue = Queue::of(&home);
    let mut session = Session::new(tmp.path(), "s.jsonl");
    for _ in 0..2 * STEPS.len() {
        let payload = session.next();
        signal(&home, &payload);
        inline(&mut at_once, &payload);
    }
    // A reader killed after committing the first three signals' records
    // but before removing their files (the worst moment), and a reader
    // killed holding the lock: the lock goes with the process.
    let identity = store.signal_identity().expect("identity");
    for path in queue.pending().into_iter().take(3) {
        let plain = age::decrypt(&identity, &std::fs::read(&path).expect("read")).expect("opens");
        let record: harness::Record = serde_json::from_slice(&plain).expect("record");
        let plan = harness::Plan {
            read: Some(record),
            ..harness::Plan::none(harness::Harness::ClaudeCode)
        };
        hook::carry_out(plan, &mut store, Utc::now()).expect("committed");
    }
    drop(queue.try_lock().expect("lock").expect("free"));
    assert_eq!(queue.pending().len(), 2 * STEPS.len(), "files still there");
    let drained = catch_up(&mut store).expect("caught up");
    assert_eq!(drained.signals, 2 * STEPS.len());
    assert!(queue.pending().is_empty());
    assert_eq!(
        facts(&store),
        facts(&at_once),
        "the signals read again recorded nothing twice"
    );
}

#[test]
fn a_signal_sealed_to_another_stores_key_is_dropped_and_logged() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, mut store) = kernel(tmp.path(), "agent");
    let mut session = Session::new(tmp.path(), "s.jsonl");
    // A store moved aside and made anew: the hooks sealed to the old key.
    let other = age::x25519::Identity::generate().to_public().to_string();
    std::fs::write(home.signal_recipient_path(), other).expect("old key");
    signal(&home, &session.next());
    let drained = catch_up(&mut store).expect("caught up");
    assert_eq!((drained.signals, drained.dropped), (0, 1));
    assert!(facts(&store).is_empty());
    let log = std::fs::read_to_string(home.log_path()).expect("log");
    assert!(log.contains("cannot be opened"), "{log}");
    // Opening the store publishes its own key again.
    drop(store);
    let mut store = LocalStore::open(&home).expect("reopens");
    signal(&home, &session.next());
    let drained = catch_up(&mut store).expect("caught up");
    assert_eq!(drained.signals, 1);
    assert!(
        !facts(&store).is_empty(),
        "the record is read from its start"
    );
}

#[test]
fn a_command_waits_for_a_workers_reading_but_not_for_its_lingering() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, mut store) = kernel(tmp.path(), "agent");
    let (_, mut at_once) = kernel(tmp.path(), "inline");
    let queue = Queue::of(&home);
    let mut session = Session::new(tmp.path(), "s.jsonl");
    for _ in 0..STEPS.len() {
        let payload = session.next();
        signal(&home, &payload);
        inline(&mut at_once, &payload);
    }
    // A worker (its own connection, as its own process has) holds the
    // lock, reads after a moment, then lingers.
    let lock = queue.try_lock().expect("lock").expect("free");
    let (worker_home, worker_queue) = (home.clone(), queue.clone());
    let worker = std::thread::spawn(move || {
        let mut store = LocalStore::open_for_hook(&worker_home).expect("worker store");
        std::thread::sleep(Duration::from_millis(200));
        let linger = Duration::from_secs(3);
        drain_all(&mut store, &worker_queue, lock, linger, &mut || {}).expect("worker drained")
    });
    let mine = catch_up(&mut store).expect("caught up");
    assert_eq!(mine, Drained::default(), "the worker read them all");
    assert!(queue.pending().is_empty());
    assert!(
        queue.try_lock().expect("lock").is_none(),
        "the command did not wait for the worker's lingering"
    );
    assert_eq!(
        facts(&store),
        facts(&at_once),
        "the command sees the worker's commits"
    );
    let theirs = worker.join().expect("worker");
    assert_eq!(theirs.signals, STEPS.len());
}
