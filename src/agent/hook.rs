//! `aiworklab agent hook --harness claude-code|codex|opencode`: what a
//! harness runs on each event. It must never slow or change the agent:
//! it prints nothing on stdout (Claude Code feeds some hooks' stdout to
//! the model), makes no network call and no model call, and exits 0
//! whatever goes wrong on its side, logging the problem to the kernel's
//! log instead. It reads the event (stdin, or for Codex's `notify` the
//! last argument), reads the harness's session record from the stored
//! cursor, tags what it finds, and records the observations with the
//! cursor in one transaction. It notes whether the agent is in the middle
//! of a turn (`checks::turn`: no check interrupts one). When a turn or
//! session ends it starts a detached `aiworklab agent sync`, at most once
//! a minute.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use crate::agent::harness::{self, Harness, Outcome, Places, Plan};
use crate::agent::home::Home;
use crate::agent::ingest;
use crate::agent::observe::Observation;
use crate::agent::store::LocalStore;
use crate::agent::tag::Lazy;
use crate::skill::catalogue::Catalogue;

/// The most a hook reads from stdin (larger payloads are cut, the record
/// still holds everything).
const MAX_STDIN: u64 = 32 * 1024 * 1024;

/// How often the hook may start a sync.
pub const SYNC_EVERY: Duration = Duration::from_secs(60);

/// Where observations go: the kernel's local store in the binary, a
/// plain recorder in tests.
pub trait Recorder {
    /// The stored cursor of `source`.
    ///
    /// # Errors
    /// The store cannot be read (named in the message).
    fn cursor(&self, source: &str) -> Result<Option<String>, String>;
    /// Stores the observations and the cursor in one transaction.
    ///
    /// # Errors
    /// The store cannot be written (named in the message).
    fn record(
        &mut self,
        source: &str,
        cursor: &str,
        observations: &[Observation],
    ) -> Result<usize, String>;
    /// The catalogue to tag with (the org's copy when the store has one).
    ///
    /// # Errors
    /// The store cannot be read.
    fn catalogue(&self) -> Result<Arc<Catalogue>, String>;
}

/// What one hook run did, for the log and for tests.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Ran {
    pub recorded: usize,
    pub turn_ended: bool,
    /// Whether the agent is working in the event's session.
    pub turn: crate::agent::checks::turn::Signal,
}

/// Handles one event. Errors are the store's; bad input is not an error
/// (it yields nothing).
///
/// # Errors
/// The store cannot be read or written.
pub fn handle(
    harness: Harness,
    stdin: &[u8],
    notify_arg: Option<&str>,
    recorder: &mut dyn Recorder,
    places: &Places,
    now: DateTime<Utc>,
) -> Result<Ran, String> {
    carry_out(
        harness::plan(harness, places, stdin, notify_arg, now),
        recorder,
        now,
    )
}

/// Carries out an event's plan: reads its record from the stored cursor
/// (or folds the payload's own steps at `now`), tags what is new and
/// records it with the cursor in one transaction.
///
/// # Errors
/// The store cannot be read or written.
pub fn carry_out(
    plan: Plan,
    recorder: &mut dyn Recorder,
    now: DateTime<Utc>,
) -> Result<Ran, String> {
    // Loaded only when something new is to be tagged: most events (a
    // file read, a search, a session start) bring none.
    let load = || recorder.catalogue();
    let mut tagger = Lazy::new(&load);
    let failure = std::cell::RefCell::new(None);
    let outcome: Outcome = {
        let lookup = |source: &str| match recorder.cursor(source) {
            Ok(c) => c,
            Err(e) => {
                failure.borrow_mut().get_or_insert(e);
                None
            }
        };
        plan.carry_out(&mut tagger, &lookup, now)
    };
    if let Some(e) = failure
        .into_inner()
        .or_else(|| tagger.failure().map(str::to_string))
    {
        return Err(e);
    }
    drop(tagger);
    let mut ran = Ran {
        recorded: 0,
        turn_ended: outcome.turn_ended,
        turn: outcome.turn,
    };
    for batch in outcome.batches {
        ran.recorded += recorder.record(&batch.source, &batch.cursor, &batch.observations)?;
    }
    Ok(ran)
}

impl Recorder for LocalStore {
    fn cursor(&self, source: &str) -> Result<Option<String>, String> {
        LocalStore::cursor(self, source).map_err(|e| e.to_string())
    }

    fn record(
        &mut self,
        source: &str,
        cursor: &str,
        observations: &[Observation],
    ) -> Result<usize, String> {
        LocalStore::record(self, source, cursor, observations).map_err(|e| e.to_string())
    }

    fn catalogue(&self) -> Result<Arc<Catalogue>, String> {
        LocalStore::catalogue(self).map_err(|e| e.to_string())
    }
}

/// `aiworklab agent hook --harness X [NOTIFY_JSON]`: never fails and
/// never writes to stdout or stderr; problems go to the kernel's log.
/// `notify_arg` is Codex's `notify` JSON; when it is given stdin is not
/// read (Codex does not write to it).
pub fn main(harness: &str, notify_arg: Option<&str>) {
    // A panic must not reach the harness either: no message on stderr,
    // a line in the log, exit 0.
    let home = Home::locate().ok();
    let log_path = home.as_ref().map(Home::log_path);
    let for_panic = log_path.clone();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(p) = &for_panic {
            log(p, &format!("internal error: {info}"));
        }
    }));
    let result = std::panic::catch_unwind(|| run(home, harness, notify_arg));
    if let (Ok(Err(message)), Some(p)) = (result, &log_path) {
        log(p, &message);
    }
}

fn run(home: Option<Home>, harness: &str, notify_arg: Option<&str>) -> Result<(), String> {
    let home =
        home.ok_or("the kernel's directory is unknown: set $AIWORKLAB_AGENT_HOME or $HOME")?;
    let Some(harness) = Harness::parse(harness) else {
        return Err(format!(
            "unknown harness `{}`: use claude-code, codex or opencode (agent install writes the right one)",
            harness.chars().take(32).collect::<String>()
        ));
    };
    let stdin = if notify_arg.is_some() {
        Vec::new()
    } else {
        read_stdin()
    };
    let now = Utc::now();
    let plan = harness::plan(harness, &Places::from_env(), &stdin, notify_arg, now);
    crate::agent::checks::turn::note(home.dir(), &plan.turn);
    let turn_ended = plan.turn_ended;
    let bin = std::env::current_exe().ok();
    // The record is handed to the ingest worker; the hook reads it itself
    // only when it cannot be (the kernel's first event, a queue the
    // worker does not keep up with) or when the payload is all there is.
    let handed = match (&plan.read, inline()) {
        (Some(record), false) => {
            let queue = ingest::Queue::of(&home);
            match queue.push(record) {
                Ok(_) => {
                    if let Some(bin) = &bin {
                        ingest::wake(&queue, bin);
                    }
                    true
                }
                Err(ingest::PushError::NoKey) => false,
                Err(e) => {
                    log(
                        &home.log_path(),
                        &format!("{harness}: {e}; read in the hook"),
                    );
                    false
                }
            }
        }
        (Some(_), true) => false,
        (None, _) => !plan.has_payload(),
    };
    let done = if handed {
        Ok(())
    } else {
        in_the_hook(&home, plan, now).map_err(|e| format!("{harness}: {e}"))
    };
    if turn_ended && let Some(bin) = &bin {
        sync_in_background(bin, &HookFiles::in_dir(home.dir()).sync_stamp);
    }
    done
}

/// `AIWORKLAB_AGENT_HOOK_INLINE=1`: the hook reads the record itself
/// (debugging, and the benchmark's comparison).
pub const INLINE_ENV: &str = "AIWORKLAB_AGENT_HOOK_INLINE";

fn inline() -> bool {
    std::env::var(INLINE_ENV).as_deref() == Ok("1")
}

/// Reads the event's record (or its payload) in the hook's own process,
/// as every hook did before the hand-off.
fn in_the_hook(home: &Home, plan: Plan, now: DateTime<Utc>) -> Result<(), String> {
    let mut store = LocalStore::open_for_hook(home).map_err(|e| e.to_string())?;
    if let Some(w) = store.take_warning() {
        log(&home.log_path(), &w);
    }
    carry_out(plan, &mut store, now)?;
    store.release().map_err(|e| e.to_string())?;
    Ok(())
}

/// Reads stdin, bounded; a read error reads as empty input.
pub fn read_stdin() -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = std::io::stdin().take(MAX_STDIN).read_to_end(&mut buf);
    buf
}

/// Appends one line to the kernel's log; a log that cannot be written
/// is given up on silently (the hook must not fail).
pub fn log(path: &Path, message: &str) {
    log_as(path, "hook", message);
}

/// [`log`] for another part of the kernel (`who` starts the line).
pub fn log_as(path: &Path, who: &str, message: &str) {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    if let Ok(mut f) = options.open(path) {
        let _ = writeln!(f, "{} {who}: {message}", Utc::now().to_rfc3339());
    }
}

/// Starts `<bin> agent sync` detached (own process group, no stdio)
/// unless one was started less than `SYNC_EVERY` ago, going by the
/// modification time of `stamp`. Returns whether it started one.
pub fn sync_in_background(bin: &Path, stamp: &Path) -> bool {
    let recent = std::fs::metadata(stamp)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < SYNC_EVERY);
    if recent {
        return false;
    }
    if let Some(dir) = stamp.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if std::fs::write(stamp, b"").is_err() {
        return false;
    }
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["agent", "sync"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd.spawn().is_ok()
}

/// The files the hook keeps beside the store: its log and the sync stamp.
#[derive(Debug, Clone)]
pub struct HookFiles {
    pub log: PathBuf,
    pub sync_stamp: PathBuf,
}

impl HookFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            log: dir.join("kernel.log"),
            sync_stamp: dir.join("sync.started"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Memory {
        cursors: HashMap<String, String>,
        rows: Vec<Observation>,
        fail: bool,
        /// The catalogue cannot be read.
        no_catalogue: bool,
        catalogue_loads: std::cell::Cell<usize>,
    }

    impl Recorder for Memory {
        fn cursor(&self, source: &str) -> Result<Option<String>, String> {
            if self.fail {
                return Err("store locked".into());
            }
            Ok(self.cursors.get(source).cloned())
        }
        fn record(
            &mut self,
            source: &str,
            cursor: &str,
            observations: &[Observation],
        ) -> Result<usize, String> {
            self.cursors.insert(source.into(), cursor.into());
            self.rows.extend_from_slice(observations);
            Ok(observations.len())
        }
        fn catalogue(&self) -> Result<Arc<Catalogue>, String> {
            self.catalogue_loads.set(self.catalogue_loads.get() + 1);
            if self.no_catalogue {
                return Err("the catalogue copy cannot be read".into());
            }
            Catalogue::builtin().map(Arc::new)
        }
    }

    #[test]
    fn a_store_failure_is_reported_not_panicked() {
        let mut m = Memory {
            fail: true,
            ..Memory::default()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let t = dir.path().join("t.jsonl");
        std::fs::write(&t, "").expect("write");
        let payload = format!(
            "{{\"hook_event_name\":\"Stop\",\"transcript_path\":{}}}",
            serde_json::to_string(&t.to_string_lossy()).expect("json")
        );
        let r = handle(
            Harness::ClaudeCode,
            payload.as_bytes(),
            None,
            &mut m,
            &Places::default(),
            Utc::now(),
        );
        assert_eq!(r, Err("store locked".to_string()));
        assert!(m.rows.is_empty());
    }

    /// A transcript with a Write of Rust code, then a Stop, as
    /// `(payload, transcript)`.
    fn rust_write(dir: &Path) -> (String, PathBuf) {
        let t = dir.join("t.jsonl");
        let line = serde_json::json!({"type": "assistant", "timestamp": "2026-12-03T10:00:01.000Z",
            "message": {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Write",
                "input": {"file_path": "/p/src/lib.rs", "content": "fn f<'a>(x: &'a str) -> &'a str { x }\n"}}]}});
        std::fs::write(&t, format!("{line}\n")).expect("write");
        let payload = format!(
            "{{\"hook_event_name\":\"PostToolUse\",\"transcript_path\":{}}}",
            serde_json::to_string(&t.to_string_lossy()).expect("json")
        );
        (payload, t)
    }

    #[test]
    fn the_catalogue_is_loaded_only_when_something_new_is_tagged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (payload, _t) = rust_write(dir.path());
        let mut m = Memory::default();
        let run = |m: &mut Memory| {
            handle(
                Harness::ClaudeCode,
                payload.as_bytes(),
                None,
                m,
                &Places::default(),
                Utc::now(),
            )
            .expect("handled")
        };
        let first = run(&mut m);
        assert!(first.recorded > 0, "{first:?}");
        assert!(m.rows.iter().any(|o| o.concept == "rust-lifetimes"));
        assert_eq!(m.catalogue_loads.get(), 1, "loaded once to tag the write");
        let again = run(&mut m);
        assert_eq!(again.recorded, 0, "nothing new past the cursor");
        assert_eq!(m.catalogue_loads.get(), 1, "nothing new: not loaded");
    }

    #[test]
    fn a_catalogue_that_cannot_be_read_records_nothing_and_keeps_the_cursor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (payload, _t) = rust_write(dir.path());
        let mut m = Memory {
            no_catalogue: true,
            ..Memory::default()
        };
        let r = handle(
            Harness::ClaudeCode,
            payload.as_bytes(),
            None,
            &mut m,
            &Places::default(),
            Utc::now(),
        );
        assert_eq!(r, Err("the catalogue copy cannot be read".to_string()));
        assert!(m.rows.is_empty() && m.cursors.is_empty(), "nothing kept");
    }

    #[test]
    fn sync_is_started_at_most_once_a_minute() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = HookFiles::in_dir(dir.path());
        // `true` stands in for the binary: it ignores its arguments.
        assert!(sync_in_background(
            Path::new("/bin/true"),
            &files.sync_stamp
        ));
        assert!(!sync_in_background(
            Path::new("/bin/true"),
            &files.sync_stamp
        ));
        log(&files.log, "one line");
        let text = std::fs::read_to_string(&files.log).expect("log");
        assert!(text.ends_with("hook: one line\n"));
    }
}

#[cfg(test)]
mod privacy {
    //! P1 from the device side: what the kernel keeps of a session is
    //! concept-level facts only.

    use super::*;
    use crate::agent::store::LocalStore;

    const MARKERS: [&str; 6] = [
        "MARKER_CODE_7f3a",
        "MARKER_DIFF_0e21",
        "MARKER_PATH_9c1d",
        "MARKER_CMD_51e0",
        "MARKER_PROMPT_2b7c",
        "MARKER_ASSISTANT_c4d8",
    ];

    fn line(v: serde_json::Value) -> String {
        let mut s = v.to_string();
        s.push('\n');
        s
    }

    /// Every value of every table of the decrypted store, as text.
    fn decrypted(home: &Home) -> String {
        let key = std::fs::read_to_string(home.key_path()).expect("key file");
        let conn = rusqlite::Connection::open(home.store_path()).expect("open");
        conn.pragma_update(None, "key", format!("x'{}'", key.trim()))
            .expect("key");
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .expect("tables")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("names");
        let mut all = String::new();
        for t in tables {
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM \"{t}\""))
                .expect("select");
            let n = stmt.column_count();
            let mut rows = stmt.query([]).expect("rows");
            while let Some(row) = rows.next().expect("row") {
                for i in 0..n {
                    let v: rusqlite::types::Value = row.get(i).expect("value");
                    all.push_str(&format!("{v:?}\n"));
                }
            }
        }
        all
    }

    #[test]
    fn no_code_diff_path_command_prompt_or_answer_reaches_the_store_or_log() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = Home::at(tmp.path().join("agent"));
        let project = tmp.path().join("MARKER_PATH_9c1d");
        std::fs::create_dir_all(&project).expect("mkdir");
        let transcript = project.join("session.jsonl");
        let file = project.join("src/lib.rs").to_string_lossy().into_owned();
        let at = |s: u32| format!("2026-12-03T10:00:{s:02}.000Z");
        let mut text = String::new();
        text += &line(serde_json::json!({"type": "user", "timestamp": at(0),
            "message": {"role": "user", "content": "MARKER_PROMPT_2b7c: add a longest() helper"}}));
        text += &line(serde_json::json!({"type": "assistant", "timestamp": at(1),
            "message": {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "Write", "input": {"file_path": file,
                    "content": "pub fn longest<'a>(a: &'a str, b: &'a str) -> &'a str {\n    let MARKER_CODE_7f3a = a.len();\n    if MARKER_CODE_7f3a >= b.len() { a } else { b }\n}\n"}},
                {"type": "tool_use", "id": "t2", "name": "Edit", "input": {"file_path": file,
                    "old_string": "fn MARKER_DIFF_0e21() {}",
                    "new_string": "async fn MARKER_DIFF_0e21() { let v: Vec<u8> = Vec::new(); drop(v); }"}},
                {"type": "tool_use", "id": "t3", "name": "Bash", "input": {"command": "cargo test MARKER_CMD_51e0"}}]}}));
        text += &line(serde_json::json!({"type": "assistant", "timestamp": at(2),
            "message": {"role": "assistant", "content": [{"type": "text",
                "text": "MARKER_ASSISTANT_c4d8: the lifetime ties the result to both inputs.\n\n```rust\nfn f<'a>(x: &'a str) -> &'a str { x }\n```"}]}}));
        std::fs::write(&transcript, text).expect("transcript");
        let mut store = LocalStore::open(&home).expect("store");
        let payload = serde_json::json!({"hook_event_name": "Stop", "session_id": "s",
            "transcript_path": transcript, "cwd": project,
            "last_assistant_message": "MARKER_ASSISTANT_c4d8"});
        let ran = handle(
            Harness::ClaudeCode,
            payload.to_string().as_bytes(),
            None,
            &mut store,
            &Places::default(),
            Utc::now(),
        )
        .expect("recorded");
        assert!(ran.recorded >= 3, "{ran:?}");
        // An event that fails is logged; its log line holds no content either.
        log(&home.log_path(), "claude-code: a test line");
        drop(store);
        let stored = decrypted(&home);
        assert!(stored.contains("rust-lifetimes"), "the test is not vacuous");
        let raw = std::fs::read(home.store_path()).expect("store file");
        let log_text = std::fs::read_to_string(home.log_path()).unwrap_or_default();
        for m in MARKERS {
            assert!(!stored.contains(m), "{m} in the decrypted store");
            assert!(!log_text.contains(m), "{m} in the log");
            assert!(
                !raw.windows(m.len()).any(|w| w == m.as_bytes()),
                "{m} in the file"
            );
        }
    }
}
