//! Whether the engineer's coding agent is in the middle of a turn, so no
//! check interrupts it. The hook marks each session whose in-turn events
//! it sees (a tool call finished, a prompt submitted) with a stamp file
//! under `turns/` in the kernel's directory, and removes it when the
//! session's turn ends (Stop, `session.idle`, the session's end). A stamp
//! untouched for [`STALE`] is taken as over: a harness that was killed
//! never says so. One empty file per session, named by a hash of the
//! harness and session id, so the directory says nothing of the sessions.
//! The hook path pays one file write or removal per event, no store write.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// A turn with no event for this long is taken as over.
pub const STALE: Duration = Duration::from_secs(15 * 60);

/// What one hook event says about its session's turn.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Signal {
    /// Nothing (a session start, an event the adapter does not know).
    #[default]
    None,
    /// The agent is working in this session.
    Running(String),
    /// This session's turn (or the session) ended.
    Ended(String),
}

/// The stamps' directory in the kernel's directory `home`.
pub fn dir(home: &Path) -> PathBuf {
    home.join("turns")
}

fn stamp(home: &Path, session: &str) -> PathBuf {
    let digest = Sha256::digest(session.as_bytes());
    dir(home).join(hex::encode(&digest[..12]))
}

/// Applies `signal` to the stamps. Failures are ignored: a missing stamp
/// only means a check might be offered during a turn.
pub fn note(home: &Path, signal: &Signal) {
    match signal {
        Signal::None => {}
        Signal::Running(session) => {
            let _ = std::fs::create_dir_all(dir(home));
            let _ = std::fs::write(stamp(home, session), b"");
        }
        Signal::Ended(session) => {
            let _ = std::fs::remove_file(stamp(home, session));
        }
    }
}

/// The latest in-turn event of a turn still running at `now`, if any.
pub fn running(home: &Path, now: SystemTime) -> Option<DateTime<Utc>> {
    let entries = std::fs::read_dir(dir(home)).ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .filter(|t| now.duration_since(*t).map_or(true, |age| age < STALE))
        .max()
        .map(DateTime::<Utc>::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_turn_is_seen_until_it_ends_or_goes_stale() {
        let home = tempfile::tempdir().expect("dir");
        let now = SystemTime::now();
        assert_eq!(running(home.path(), now), None, "no stamps yet");
        note(home.path(), &Signal::Running("claude-code:s1".into()));
        note(home.path(), &Signal::Running("codex:s2".into()));
        assert!(running(home.path(), now).is_some());
        note(home.path(), &Signal::Ended("claude-code:s1".into()));
        assert!(running(home.path(), now).is_some(), "s2 still runs");
        assert_eq!(
            running(home.path(), now + STALE + Duration::from_secs(1)),
            None,
            "a turn silent for STALE is over"
        );
        note(home.path(), &Signal::Ended("codex:s2".into()));
        assert_eq!(running(home.path(), now), None);
        note(home.path(), &Signal::None);
        assert_eq!(running(home.path(), now), None);
        let names: Vec<String> = std::fs::read_dir(dir(home.path()))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.is_empty(), "ended turns leave no stamp: {names:?}");
    }

    #[test]
    fn stamps_do_not_name_the_session() {
        let home = tempfile::tempdir().expect("dir");
        note(
            home.path(),
            &Signal::Running("claude-code:my-secret-session".into()),
        );
        let name = std::fs::read_dir(dir(home.path()))
            .expect("dir")
            .next()
            .expect("one")
            .expect("entry")
            .file_name();
        let name = name.to_string_lossy();
        assert_eq!(name.len(), 24);
        assert!(
            !name.contains("session") && !name.contains("claude"),
            "{name}"
        );
    }
}
