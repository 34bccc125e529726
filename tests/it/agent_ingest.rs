//! The hook's hand-off through the real binary: a replayed Claude Code
//! session, each event a `aiworklab agent hook` process that leaves a
//! signal and starts the detached `agent ingest` worker, against the same
//! events read in the hook itself (`AIWORKLAB_AGENT_HOOK_INLINE=1`, the
//! path every hook took before). `agent status` and `agent outbox`, run
//! at once after the last hook (the worker may still be reading), show
//! exactly what the hook recorded itself.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::Value;

use crate::agent::agent_command;

/// The sample session's lines written before each event and its payload.
const STEPS: [(std::ops::RangeInclusive<usize>, &str); 5] = [
    (0..=3, "post-tool-use-write.json"),
    (4..=5, "post-tool-use-bash.json"),
    (6..=7, "stop-1.json"),
    (8..=10, "post-tool-use-edit.json"),
    (11..=11, "stop-2.json"),
];

const TURNS: usize = 4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions/claude-code")
}

fn hook(home: &Path, inline: bool, payload: &[u8]) -> Output {
    let mut c = agent_command(home, &["hook", "--harness", "claude-code"]);
    if inline {
        c.env("AIWORKLAB_AGENT_HOOK_INLINE", "1");
    } else {
        c.env_remove("AIWORKLAB_AGENT_HOOK_INLINE");
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(payload).expect("stdin written");
    drop(pipe);
    child.wait_with_output().expect("waits")
}

/// `agent outbox --json` without the ids (each store mints its own).
fn facts(home: &Path) -> Vec<(String, String, String, Option<u64>)> {
    let out = agent_command(home, &["outbox", "--json"])
        .output()
        .expect("outbox");
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let batches: Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut v: Vec<_> = batches
        .as_array()
        .expect("batches")
        .iter()
        .flat_map(|b| b["deltas"].as_array().expect("deltas").clone())
        .map(|d| {
            (
                d["concept"].as_str().expect("concept").to_string(),
                d["transition"].as_str().expect("transition").to_string(),
                d["at"].as_str().expect("at").to_string(),
                d["grade"].as_u64(),
            )
        })
        .collect();
    v.sort();
    v
}

fn status_deltas(home: &Path) -> u64 {
    let out = agent_command(home, &["status", "--json"])
        .output()
        .expect("status");
    assert!(out.status.success(), "{out:?}");
    let s: Value = serde_json::from_slice(&out.stdout).expect("status json");
    s["deltas"].as_u64().expect("deltas")
}

#[test]
fn hooks_hand_off_and_status_and_outbox_show_what_the_hook_recorded_itself() {
    let tmp = tempfile::tempdir().expect("tmp");
    let handed = tmp.path().join("agent");
    let inline = tmp.path().join("agent-inline");
    for home in [&handed, &inline] {
        // The store exists (as `agent pair` makes it), and a fresh sync
        // stamp keeps the hooks from starting `agent sync`.
        let made = agent_command(home, &["status"]).output().expect("status");
        assert!(made.status.success(), "{made:?}");
        std::fs::write(home.join("sync.started"), b"").expect("stamp");
    }
    let sample: Vec<Value> = std::fs::read_to_string(fixtures().join("sample-session.jsonl"))
        .expect("sample")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    let transcript = tmp.path().join("projects/session.jsonl");
    std::fs::create_dir_all(transcript.parent().expect("dir")).expect("mkdir");
    std::fs::write(&transcript, "").expect("transcript");
    for turn in 0..TURNS {
        for (lines, payload) in STEPS {
            // The transcript grows as Claude Code writes it (each turn's
            // times moved back, so its facts are new), then the event.
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&transcript)
                .expect("open");
            for line in &sample[lines] {
                let mut l = line.clone();
                if let Some(t) = l["timestamp"]
                    .as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                {
                    l["timestamp"] = Value::String(
                        (t - chrono::Duration::minutes(10 * turn as i64))
                            .to_utc()
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    );
                }
                writeln!(f, "{l}").expect("append");
            }
            drop(f);
            let payload = std::fs::read_to_string(fixtures().join(payload))
                .expect("payload")
                .replace("@TRANSCRIPT@", &transcript.to_string_lossy());
            for (home, at_once) in [(&handed, false), (&inline, true)] {
                let out = hook(home, at_once, payload.as_bytes());
                assert!(out.status.success(), "{out:?}");
                assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
            }
        }
    }
    // At once: the worker may still be reading; status waits for it and
    // reads what is left itself.
    let (got, want) = (status_deltas(&handed), status_deltas(&inline));
    assert!(want > 0, "the replay recorded facts");
    assert_eq!(
        got, want,
        "status shows every delta the hook recorded itself"
    );
    assert!(
        std::fs::read_dir(handed.join("ingest/signals"))
            .expect("signals dir")
            .next()
            .is_none(),
        "no signal left"
    );
    let (got, want) = (facts(&handed), facts(&inline));
    assert!(
        want.iter()
            .any(|f| f.0 == "rust-lifetimes" && f.1 == "explained"),
        "{want:?}"
    );
    assert_eq!(got, want, "the outbox holds exactly what the hook recorded");
    for home in [&handed, &inline] {
        let log = std::fs::read_to_string(home.join("kernel.log")).unwrap_or_default();
        assert!(
            !log.contains("hook:") && !log.contains("ingest:"),
            "a failure was logged:\n{log}"
        );
    }
}
