//! `aiworklab agent hook --harness claude-code|codex|opencode`: what a
//! harness runs on each event. It must never slow or change the agent:
//! it prints nothing on stdout (Claude Code feeds some hooks' stdout to
//! the model), makes no network call and no model call, and exits 0
//! whatever goes wrong on its side, logging the problem to the kernel's
//! log instead. It reads the event (stdin, or for Codex's `notify` the
//! last argument), reads the harness's session record from the stored
//! cursor, tags what it finds, and records the observations with the
//! cursor in one transaction. When a turn or session ends it starts a
//! detached `aiworklab agent sync`, at most once a minute.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use crate::agent::harness::{self, Harness, Outcome, Places};
use crate::agent::observe::Observation;
use crate::agent::tag::Tagger;
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
    fn catalogue(&self) -> Catalogue;
}

/// What one hook run did, for the log and for tests.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Ran {
    pub recorded: usize,
    pub turn_ended: bool,
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
    let mut tagger = Tagger::new(recorder.catalogue());
    let failure = std::cell::RefCell::new(None);
    let outcome: Outcome = {
        let lookup = |source: &str| match recorder.cursor(source) {
            Ok(c) => c,
            Err(e) => {
                failure.borrow_mut().get_or_insert(e);
                None
            }
        };
        let lookup: &dyn Fn(&str) -> Option<String> = &lookup;
        match harness {
            Harness::ClaudeCode => harness::claude::handle(&mut tagger, stdin, lookup, now),
            Harness::Codex => {
                harness::codex::handle(&mut tagger, places, stdin, notify_arg, lookup, now)
            }
            Harness::OpenCode => harness::opencode::handle(&mut tagger, places, stdin, lookup),
        }
    };
    if let Some(e) = failure.into_inner() {
        return Err(e);
    }
    let mut ran = Ran {
        recorded: 0,
        turn_ended: outcome.turn_ended,
    };
    for batch in outcome.batches {
        ran.recorded += recorder.record(&batch.source, &batch.cursor, &batch.observations)?;
    }
    Ok(ran)
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
    use std::io::Write;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{} hook: {message}", Utc::now().to_rfc3339());
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
        fn catalogue(&self) -> Catalogue {
            Catalogue::builtin().expect("catalogue")
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
