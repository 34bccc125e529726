//! Replays the fixtures in `tests/fixtures/sessions/`, shaped after each
//! harness's documented payloads and records.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::*;
use crate::agent::tag::Tagger;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions")
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

/// Stored cursors and every observation recorded, as the store would.
#[derive(Default)]
struct Store {
    cursors: HashMap<String, String>,
    seen: Vec<Observation>,
}

impl Store {
    fn apply(&mut self, outcome: Outcome) -> usize {
        let mut n = 0;
        for b in outcome.batches {
            n += b.observations.len();
            self.seen.extend(b.observations);
            self.cursors.insert(b.source, b.cursor);
        }
        n
    }

    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |s| self.cursors.get(s).cloned()
    }

    fn concepts(&self, t: Transition) -> BTreeSet<&str> {
        self.seen
            .iter()
            .filter(|o| o.transition == t)
            .map(|o| o.concept.as_str())
            .collect()
    }
}

fn claude_event(name: &str, transcript: &Path) -> Vec<u8> {
    std::fs::read_to_string(fixtures().join("claude-code").join(name))
        .expect("fixture")
        .replace("@TRANSCRIPT@", &transcript.to_string_lossy())
        .into_bytes()
}

#[test]
fn claude_code_sample_session_replays_to_seen_and_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let transcript = dir.path().join("session.jsonl");
    std::fs::copy(
        fixtures().join("claude-code/sample-session.jsonl"),
        &transcript,
    )
    .expect("copy");
    let mut tagger = Tagger::builtin().expect("catalogue");
    let mut store = Store::default();
    let order =
        std::fs::read_to_string(fixtures().join("claude-code/replay-order.txt")).expect("order");
    let mut ended = 0;
    for name in order.lines() {
        let payload = claude_event(name, &transcript);
        let outcome = claude::handle(&mut tagger, &payload, &store.lookup(), now());
        ended += usize::from(outcome.turn_ended);
        for b in &outcome.batches {
            assert!(
                b.source.starts_with("claude-code:") && !b.source.contains('/'),
                "{}",
                b.source
            );
        }
        store.apply(outcome);
    }
    assert_eq!(ended, 3, "two Stops and a SessionEnd end turns");
    let seen = store.concepts(Transition::Seen);
    for c in [
        "rust-lifetimes",
        "rust-borrowing",
        "test-assertions",
        "test-test-runners",
        "ds-hash-maps",
    ] {
        assert!(seen.contains(c), "{c} not seen: {seen:?}");
    }
    let explained = store.concepts(Transition::Explained);
    assert!(explained.contains("rust-lifetimes"), "{explained:?}");
    // Each concept and transition once per read, at its first time.
    let lifetimes: Vec<_> = store
        .seen
        .iter()
        .filter(|o| o.concept == "rust-lifetimes" && o.transition == Transition::Seen)
        .collect();
    assert_eq!(lifetimes.len(), 1);
    assert_eq!(lifetimes[0].at.to_rfc3339(), "2026-12-03T10:00:04+00:00");
    // Replaying the same events again finds nothing new.
    for name in order.lines() {
        let payload = claude_event(name, &transcript);
        let outcome = claude::handle(&mut tagger, &payload, &store.lookup(), now());
        assert_eq!(store.apply(outcome), 0, "{name} read twice");
    }
}

#[test]
fn claude_code_text_waits_for_the_turn_to_end_and_partial_lines_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let transcript = dir.path().join("t.jsonl");
    let full = std::fs::read_to_string(fixtures().join("claude-code/sample-session.jsonl"))
        .expect("fixture");
    let lines: Vec<&str> = full.lines().collect();
    // Up to the final explanation of turn one, and half of the next line.
    let mut text = lines[..7].join("\n");
    text.push('\n');
    text.push_str(&lines[7][..10]);
    std::fs::write(&transcript, &text).expect("write");
    let mut tagger = Tagger::builtin().expect("catalogue");
    let mut store = Store::default();
    let post = claude_event("post-tool-use-bash.json", &transcript);
    let out = claude::handle(&mut tagger, &post, &store.lookup(), now());
    store.apply(out);
    assert!(
        store.concepts(Transition::Explained).is_empty(),
        "explained before the turn ended"
    );
    assert!(store.concepts(Transition::Seen).contains("rust-lifetimes"));
    // The rest of the file arrives, then the Stop.
    std::fs::write(&transcript, &full).expect("write");
    let stop = claude_event("stop-1.json", &transcript);
    let out = claude::handle(&mut tagger, &stop, &store.lookup(), now());
    store.apply(out);
    assert!(
        store
            .concepts(Transition::Explained)
            .contains("rust-lifetimes")
    );
    let source = source_for(Harness::ClaudeCode, &transcript);
    assert_eq!(store.cursors[&source], full.len().to_string());
}

#[test]
fn claude_code_without_a_transcript_counts_the_payload() {
    let mut tagger = Tagger::builtin().expect("catalogue");
    let missing = Path::new("/nonexistent/transcript.jsonl");
    let write = claude_event("post-tool-use-write.json", missing);
    let outcome = claude::handle(&mut tagger, &write, &|_| None, now());
    let mut store = Store::default();
    store.apply(outcome);
    assert!(store.concepts(Transition::Seen).contains("rust-lifetimes"));
    let stop = claude_event("stop-1.json", missing);
    store.apply(claude::handle(&mut tagger, &stop, &|_| None, now()));
    assert!(
        store
            .concepts(Transition::Explained)
            .contains("rust-lifetimes")
    );
}

#[test]
fn malformed_or_unknown_input_yields_nothing() {
    let mut tagger = Tagger::builtin().expect("catalogue");
    let places = Places::default();
    for bad in [
        &b""[..],
        b"not json",
        b"[1,2,3]",
        b"{\"hook_event_name\": 7}",
        b"{\"hook_event_name\": \"Notification\", \"message\": \"hi\"}",
        b"{\"hook_event_name\": \"PostToolUse\", \"tool_name\": \"Write\", \"tool_input\": {\"content\": 5}}",
        b"{\"type\": \"agent-turn-complete\"}",
        b"\xff\xfe\x00",
    ] {
        let none = |_: &str| None;
        let c = claude::handle(&mut tagger, bad, &none, now());
        assert!(c.batches.iter().all(|b| b.observations.is_empty()), "{bad:?}");
        let x = codex::handle(&mut tagger, &places, bad, None, &none, now());
        assert!(x.batches.iter().all(|b| b.observations.is_empty()), "{bad:?}");
        let o = opencode::handle(&mut tagger, &places, bad, &none);
        assert!(o.batches.is_empty(), "{bad:?}");
    }
    // A transcript of garbage lines reads to its end and finds nothing.
    let dir = tempfile::tempdir().expect("tempdir");
    let t = dir.path().join("t.jsonl");
    std::fs::write(
        &t,
        "{{{\nnull\n[]\n{\"type\":\"assistant\",\"message\":{\"content\":\"x\"}}\n",
    )
    .expect("write");
    let stop = claude_event("stop-1.json", &t);
    let out = claude::handle(&mut tagger, &stop, &|_| None, now());
    assert_eq!(out.batches.len(), 1);
    assert!(out.batches[0].observations.is_empty());
}

fn codex_home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let day = dir.path().join("sessions/2026/12/03");
    std::fs::create_dir_all(&day).expect("mkdir");
    let src = fixtures().join("codex/sessions/2026/12/03");
    let mut rollout = PathBuf::new();
    for e in std::fs::read_dir(&src).expect("fixtures") {
        let e = e.expect("entry");
        rollout = day.join(e.file_name());
        std::fs::copy(e.path(), &rollout).expect("copy");
    }
    (dir, rollout)
}

#[test]
fn codex_hooks_and_notify_read_the_rollout() {
    let (home, rollout) = codex_home();
    let places = Places {
        codex_home: Some(home.path().to_path_buf()),
        opencode_db: None,
    };
    let mut tagger = Tagger::builtin().expect("catalogue");
    let event = |name: &str| {
        std::fs::read_to_string(fixtures().join("codex").join(name))
            .expect("fixture")
            .replace("@ROLLOUT@", &rollout.to_string_lossy())
    };
    // Hooks: PostToolUse then Stop.
    let mut store = Store::default();
    for name in ["hook-post-tool-use.json", "hook-stop.json"] {
        let out = codex::handle(
            &mut tagger,
            &places,
            event(name).as_bytes(),
            None,
            &store.lookup(),
            now(),
        );
        store.apply(out);
    }
    let seen = store.concepts(Transition::Seen);
    for c in [
        "go-goroutines",
        "go-sync-package",
        "go-defer-panic-recover",
        "test-sanitizers",
    ] {
        assert!(seen.contains(c), "{c}: {seen:?}");
    }
    assert!(
        store
            .concepts(Transition::Explained)
            .contains("go-goroutines")
    );
    // notify (older Codex): the JSON is the last argument; same record.
    let mut fresh = Store::default();
    let notify = event("notify.json");
    let out = codex::handle(
        &mut tagger,
        &places,
        b"",
        Some(&notify),
        &fresh.lookup(),
        now(),
    );
    assert!(out.turn_ended);
    fresh.apply(out);
    assert_eq!(fresh.concepts(Transition::Seen), seen);
    // Read again: nothing new.
    let again = codex::handle(
        &mut tagger,
        &places,
        b"",
        Some(&notify),
        &fresh.lookup(),
        now(),
    );
    assert_eq!(fresh.apply(again), 0);
}

fn opencode_db(dir: &Path) -> PathBuf {
    let db = dir.join("opencode.db");
    let conn = rusqlite::Connection::open(&db).expect("db");
    let sql = std::fs::read_to_string(fixtures().join("opencode/opencode.sql")).expect("fixture");
    conn.execute_batch(&sql).expect("load fixture");
    db
}

#[test]
fn opencode_events_read_its_database_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = opencode_db(dir.path());
    let before = std::fs::read(&db).expect("read");
    let places = Places {
        codex_home: None,
        opencode_db: Some(db.clone()),
    };
    let mut tagger = Tagger::builtin().expect("catalogue");
    let mut store = Store::default();
    let tool = std::fs::read(fixtures().join("opencode/tool-execute-after.json")).expect("fixture");
    let out = opencode::handle(&mut tagger, &places, &tool, &store.lookup());
    assert!(!out.turn_ended);
    store.apply(out);
    let seen = store.concepts(Transition::Seen);
    for c in ["ts-promises-async", "ts-null-undefined", "ci-quality-gates"] {
        assert!(seen.contains(c), "{c}: {seen:?}");
    }
    assert!(
        store
            .concepts(Transition::Explained)
            .contains("ts-null-undefined")
    );
    let idle = std::fs::read(fixtures().join("opencode/session-idle.json")).expect("fixture");
    let out = opencode::handle(&mut tagger, &places, &idle, &store.lookup());
    assert!(out.turn_ended);
    assert_eq!(store.apply(out), 0, "nothing new since the cursor");
    assert_eq!(
        std::fs::read(&db).expect("read"),
        before,
        "the database is never written"
    );
}

#[test]
fn opencode_stops_at_a_part_still_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = opencode_db(dir.path());
    let conn = rusqlite::Connection::open(&db).expect("db");
    conn.execute(
        "UPDATE part SET data = json_set(data, '$.state.status', 'running') WHERE id = 'prt_004'",
        [],
    )
    .expect("update");
    drop(conn);
    let mut tagger = Tagger::builtin().expect("catalogue");
    let source = "opencode:test";
    let batch = opencode::ingest(&mut tagger, &db, source, None).expect("ingest");
    assert_eq!(batch.cursor, "1764759602000:prt_003");
    assert!(
        !batch
            .observations
            .iter()
            .any(|o| o.concept == "ci-quality-gates")
    );
}

/// Codex 0.171 writes files through `exec_command` with a `cmd` script
/// (`apply_patch <<'EOF' … EOF`), not `shell`'s `command` (seen when
/// driving the real CLI, tests/it/harness_real.rs).
#[test]
fn codex_exec_command_apply_patch_is_code_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rollout = dir.path().join("rollout.jsonl");
    let script = "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: src/lib.rs\n\
                  +pub fn first<'a>(s: &'a str) -> &'a str {\n+    s\n+}\n*** End Patch\nEOF\n";
    let call = serde_json::json!({
        "timestamp": "2026-12-03T10:00:00.000Z",
        "type": "response_item",
        "payload": {
            "type": "function_call",
            "name": "exec_command",
            "arguments": serde_json::json!({ "cmd": script }).to_string(),
            "call_id": "call_1"
        }
    });
    std::fs::write(&rollout, format!("{call}\n")).expect("write");
    let stop = serde_json::json!({
        "hook_event_name": "PostToolUse",
        "transcript_path": rollout.to_string_lossy(),
        "tool_name": "exec_command",
        "tool_input": { "cmd": script }
    });
    let places = Places {
        codex_home: None,
        opencode_db: None,
    };
    let mut tagger = Tagger::builtin().expect("catalogue");
    let mut store = Store::default();
    let out = codex::handle(
        &mut tagger,
        &places,
        stop.to_string().as_bytes(),
        None,
        &store.lookup(),
        now(),
    );
    store.apply(out);
    assert!(
        store.concepts(Transition::Seen).contains("rust-lifetimes"),
        "{:?}",
        store.concepts(Transition::Seen)
    );
}

/// Each adapter says when the agent is working in a session (a tool call,
/// a prompt) and when its turn ended, so no check interrupts a turn.
#[test]
fn each_harness_signals_a_running_turn_and_its_end_by_session() {
    use crate::agent::checks::turn::Signal;
    let mut tagger = Tagger::builtin().expect("catalogue");
    let places = Places {
        codex_home: None,
        opencode_db: None,
    };
    let ev = |name: &str| {
        serde_json::json!({"hook_event_name": name, "session_id": "s-9",
            "tool_name": "Bash", "tool_input": {"command": "true"}})
        .to_string()
        .into_bytes()
    };
    let claude =
        |tagger: &mut Tagger, name: &str| claude::handle(tagger, &ev(name), &|_| None, now()).turn;
    for running in [
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "SubagentStop",
    ] {
        assert_eq!(
            claude(&mut tagger, running),
            Signal::Running("claude-code:s-9".into()),
            "{running}"
        );
    }
    for ended in ["Stop", "SessionEnd"] {
        assert_eq!(
            claude(&mut tagger, ended),
            Signal::Ended("claude-code:s-9".into())
        );
    }
    assert_eq!(claude(&mut tagger, "SessionStart"), Signal::None);
    let no_session = br#"{"hook_event_name": "PostToolUse"}"#;
    assert_eq!(
        claude::handle(&mut tagger, no_session, &|_| None, now()).turn,
        Signal::None
    );
    let codex = |tagger: &mut Tagger, payload: &[u8], notify: Option<&str>| {
        codex::handle(tagger, &places, payload, notify, &|_| None, now()).turn
    };
    assert_eq!(
        codex(&mut tagger, &ev("PostToolUse"), None),
        Signal::Running("codex:s-9".into())
    );
    assert_eq!(
        codex(&mut tagger, &ev("Stop"), None),
        Signal::Ended("codex:s-9".into())
    );
    let notify = r#"{"type": "agent-turn-complete", "thread-id": "t-1"}"#;
    assert_eq!(
        codex(&mut tagger, b"", Some(notify)),
        Signal::Ended("codex:t-1".into())
    );
    let opencode = |tagger: &mut Tagger, name: &str| {
        let p = serde_json::json!({"hook_event_name": name, "session_id": "ses_1"}).to_string();
        opencode::handle(tagger, &places, p.as_bytes(), &|_| None).turn
    };
    assert_eq!(
        opencode(&mut tagger, "tool.execute.after"),
        Signal::Running("opencode:ses_1".into())
    );
    assert_eq!(
        opencode(&mut tagger, "session.idle"),
        Signal::Ended("opencode:ses_1".into())
    );
    assert_eq!(opencode(&mut tagger, "session.created"), Signal::None);
}
