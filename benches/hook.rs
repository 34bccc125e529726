//! Hook latency: replayed Claude Code events, each through `aiworklab
//! agent hook --harness claude-code` as a new process (as Claude Code runs
//! it), beside the floor of starting the same binary with `--version`,
//! interleaved in the same run (which goes first rotates).
//!
//! The events are the shipped sample session's (`tests/fixtures/sessions/
//! claude-code/`): PostToolUse `Write`, `Bash`, `Edit` and two `Stop`s,
//! repeated as turn after turn of sessions of 50 events. Before each event
//! the transcript grows by the lines Claude Code would have written since
//! the last one (their times moved so each turn's facts are new), so every
//! event brings new lines to read from the stored offset, tag and record:
//! the work of a real session. The kernel's home holds a store that
//! exists (made by `agent status`, as pairing would) with a history of
//! 10,000 deltas over the whole catalogue (a few months of use:
//! `BENCH_HOOK_HISTORY` sets it).
//!
//! Each event runs twice: through the hook as it is (it leaves a signal
//! and starts the detached `agent ingest` worker when none runs, which
//! reads, tags and records, and stays 2 s after its last signal for the
//! rest of a burst: docs/kernel.md), and with
//! `AIWORKLAB_AGENT_HOOK_INLINE=1` on a copy of the same store (the hook
//! reads, tags and records itself, as every hook did before the hand-off):
//! same load, same run. The background cost is reported too: the time
//! from the last hook's exit until the workers have read every signal,
//! how many workers were started, and the CPU time they used (the bench
//! process is the workers' subreaper, so it reaps them and reads their
//! CPU time from `/proc/self/stat`). Then the bench fails unless both
//! stores hold the same deltas (concept, transition, time, grade).
//!
//! Last, 50 spaced events (3 under `cargo test`): each waits until the
//! previous event's worker has read its signal and exited, so every hook
//! starts a worker, as in a session whose events come more than 2 s
//! apart; the hook is timed beside the floor again.
//!
//! The hook starts a detached `agent sync` on Stop at most once a minute,
//! going by the `sync.started` stamp in the kernel's home (docs/kernel.md):
//! the bench touches the stamp before each event so no sync is started and
//! only the hook is measured.
//!
//! Run: `cargo bench --bench hook` (1,000 events; under `cargo test` it
//! replays 10 as a smoke check). `AIWORKLAB_BENCH_BIN` runs another build.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aiworklab::agent::home::Home;
use aiworklab::agent::ingest::Queue;
use aiworklab::agent::observe::Observation;
use aiworklab::agent::store::LocalStore;
use aiworklab::skill::{Catalogue, Transition};
use serde_json::Value;

#[allow(dead_code)] // the helpers other benches share; this one needs a few
mod common;
use common::quantile;

/// Each step of a turn: the transcript lines written before the event
/// (indices into the sample session) and the hook payload fired.
const STEPS: [(std::ops::RangeInclusive<usize>, &str); 5] = [
    (0..=3, "post-tool-use-write.json"),
    (4..=5, "post-tool-use-bash.json"),
    (6..=7, "stop-1.json"),
    (8..=10, "post-tool-use-edit.json"),
    (11..=11, "stop-2.json"),
];

/// Events per session (then a new transcript starts).
const SESSION: usize = 50;

fn bin() -> PathBuf {
    std::env::var_os("AIWORKLAB_BENCH_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_aiworklab")),
        PathBuf::from,
    )
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions/claude-code")
}

/// The binary with the kernel's home at `home`, no keychain, a scratch
/// user home and no harness settings from the machine.
fn command(bin: &Path, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env("AIWORKLAB_AGENT_HOME", home)
        .env("AIWORKLAB_AGENT_KEYCHAIN", "off")
        .env("HOME", home.with_file_name("user"))
        .env_remove("AIWORKLAB_CONFIG")
        .env_remove("CLAUDE_CONFIG_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs `c` with `stdin`, timed from spawn to exit.
fn timed(mut c: Command, stdin: &[u8]) -> (Duration, Output) {
    let t = Instant::now();
    let mut child = c.spawn().expect("spawns");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin).expect("stdin written");
    drop(pipe);
    let out = child.wait_with_output().expect("waits");
    (t.elapsed(), out)
}

/// The sample transcript's lines, with their times moved back by
/// `minutes` (so each turn's facts are new ones).
fn shifted(lines: &[Value], minutes: i64) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            if let Some(t) = l
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            {
                l["timestamp"] = Value::String(
                    (t - chrono::Duration::minutes(minutes))
                        .to_utc()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                );
            }
            l.to_string()
        })
        .collect()
}

/// Records `n` past facts over the catalogue's concepts, one a minute up
/// to a day ago, in the store at `home` (its key file, as with
/// `AIWORKLAB_AGENT_KEYCHAIN=off`).
fn fill(home: &Path, n: usize) {
    let catalogue = Catalogue::builtin().expect("catalogue");
    let slugs: Vec<&str> = catalogue.concepts().map(|c| c.slug.as_str()).collect();
    let end = chrono::Utc::now() - chrono::Duration::days(1);
    let facts: Vec<Observation> = (0..n)
        .map(|i| Observation {
            concept: slugs[i % slugs.len()].to_string(),
            transition: if i % 3 == 2 {
                Transition::Explained
            } else {
                Transition::Seen
            },
            at: end - chrono::Duration::minutes((n - i) as i64),
        })
        .collect();
    let mut store = LocalStore::open(&Home::at(home)).expect("the store opens");
    for (i, chunk) in facts.chunks(1_000).enumerate() {
        store
            .record("history", &i.to_string(), chunk)
            .expect("history recorded");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, as a quick check that the bench still works.
    let full = std::env::args().any(|a| a == "--bench");
    let events = if full { 1_000 } else { 10 };
    let bin = bin();
    let scratch = tempfile::tempdir().expect("tempdir");
    let home = scratch.path().join("agent");
    std::fs::create_dir_all(scratch.path().join("user")).expect("user home");
    let made = command(&bin, &home, &["agent", "status"])
        .output()
        .expect("status runs");
    assert!(made.status.success(), "the store is made: {made:?}");
    let history: usize = std::env::var("BENCH_HOOK_HISTORY")
        .ok()
        .map(|v| v.parse().expect("BENCH_HOOK_HISTORY is a number"))
        .unwrap_or(if full { 10_000 } else { 100 });
    fill(&home, history);
    let sample: Vec<Value> = std::fs::read_to_string(fixtures().join("sample-session.jsonl"))
        .expect("sample")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let payloads: Vec<String> = STEPS
        .iter()
        .map(|(_, f)| std::fs::read_to_string(fixtures().join(f)).expect("payload"))
        .collect();
    // The same store for the hook that reads in its own process.
    let inline_home = scratch.path().join("agent-inline");
    std::fs::create_dir_all(&inline_home).expect("inline home");
    for f in ["kernel.db", "kernel.key"] {
        std::fs::copy(home.join(f), inline_home.join(f)).expect("store copied");
    }
    // Orphaned workers (their hook exited first) come to this process,
    // which reaps them at the end and so reads their CPU time.
    // (Any pid sets it: `None` would unset it.)
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).expect("subreaper");
    let mut floor = Vec::with_capacity(events);
    let mut hook = Vec::with_capacity(events);
    let mut inline = Vec::with_capacity(events);
    let mut transcript = PathBuf::new();
    let mut turn_lines = Vec::new();
    for i in 0..events {
        let (turn, step) = (i / STEPS.len(), i % STEPS.len());
        if i % SESSION == 0 {
            transcript = scratch.path().join(format!("projects/session-{i}.jsonl"));
            std::fs::create_dir_all(transcript.parent().expect("dir")).expect("mkdir");
        }
        if step == 0 {
            turn_lines = shifted(&sample, 10 * turn as i64);
        }
        let mut record = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&transcript)
            .expect("transcript");
        for line in &turn_lines[STEPS[step].0.clone()] {
            writeln!(record, "{line}").expect("append");
        }
        drop(record);
        let payload = payloads[step].replace("@TRANSCRIPT@", &transcript.to_string_lossy());
        for h in [&home, &inline_home] {
            std::fs::write(h.join("sync.started"), b"").expect("sync stamp");
        }
        let run_floor = |floor: &mut Vec<Duration>| {
            let (d, out) = timed(command(&bin, &home, &["--version"]), b"");
            assert!(out.status.success());
            floor.push(d);
        };
        let run_hook = |samples: &mut Vec<Duration>, h: &Path, at_once: bool| {
            let mut c = command(&bin, h, &["agent", "hook", "--harness", "claude-code"]);
            if at_once {
                c.env("AIWORKLAB_AGENT_HOOK_INLINE", "1");
            } else {
                c.env_remove("AIWORKLAB_AGENT_HOOK_INLINE");
            }
            let (d, out) = timed(c, payload.as_bytes());
            assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());
            samples.push(d);
        };
        for k in 0..3 {
            match (i + k) % 3 {
                0 => run_floor(&mut floor),
                1 => run_hook(&mut hook, &home, false),
                _ => run_hook(&mut inline, &inline_home, true),
            }
        }
    }
    // The background: until every signal is read (a signal is removed
    // once its record is committed), then the workers reaped (after
    // they linger) for their CPU time.
    let last_hook = Instant::now();
    let queue = Queue::in_dir(&home);
    let left_at_last_hook = queue.pending().len();
    loop {
        if queue.pending().is_empty() {
            break;
        }
        assert!(
            last_hook.elapsed() < Duration::from_secs(600),
            "the workers did not read the signals in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let drained_after = last_hook.elapsed();
    let before = children_cpu();
    let mut workers = 0;
    while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::empty()) {
        workers += 1;
    }
    let worker_cpu = children_cpu() - before;

    // Both paths did their work, and the same: no failure in the logs,
    // the same deltas in both stores.
    for h in [&home, &inline_home] {
        let log = std::fs::read_to_string(h.join("kernel.log")).unwrap_or_default();
        assert!(
            !log.contains("hook:") && !log.contains("ingest:"),
            "a failure was logged ({}):\n{log}",
            h.display()
        );
    }
    let handed = facts(&home);
    let at_once = facts(&inline_home);
    let recorded = handed.len() - history;
    assert!(recorded > 0, "the hooks recorded facts");
    assert_eq!(
        handed.len(),
        at_once.len(),
        "the hand-off recorded as many deltas as the hook reading itself"
    );
    assert!(
        handed == at_once,
        "the hand-off recorded other deltas than the hook reading itself"
    );

    let q = |v: &mut Vec<Duration>| [0.5, 0.95, 0.99].map(|p| quantile(v, p));
    let (f, h, n) = (q(&mut floor), q(&mut hook), q(&mut inline));
    println!(
        "hook latency: {events} Claude Code events (PostToolUse Write/Bash/Edit, Stop), each a new process, on a store of {history} deltas; {recorded} deltas recorded"
    );
    println!("| | p50 ms | p95 ms | p99 ms |");
    println!("|---|---|---|---|");
    println!(
        "| floor: `aiworklab --version` | {:.1} | {:.1} | {:.1} |",
        f[0], f[1], f[2]
    );
    println!(
        "| `aiworklab agent hook --harness claude-code` (hands off) | {:.1} | {:.1} | {:.1} |",
        h[0], h[1], h[2]
    );
    println!(
        "| hook − floor | {:.1} | {:.1} | {:.1} |",
        h[0] - f[0],
        h[1] - f[1],
        h[2] - f[2]
    );
    println!(
        "| the same, reading in the hook (`AIWORKLAB_AGENT_HOOK_INLINE=1`) | {:.1} | {:.1} | {:.1} |",
        n[0], n[1], n[2]
    );
    println!(
        "| reading in the hook − floor | {:.1} | {:.1} | {:.1} |",
        n[0] - f[0],
        n[1] - f[1],
        n[2] - f[2]
    );
    println!(
        "background: {workers} `agent ingest` worker(s) started; {left_at_last_hook} signal(s) waiting at the last hook's exit, all read {:.0} ms later; the workers used {:.2} s of CPU ({:.1} ms an event); both stores hold the same {} deltas",
        drained_after.as_secs_f64() * 1000.0,
        worker_cpu,
        worker_cpu * 1000.0 / events as f64,
        handed.len()
    );
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "goals: p50 ≤ floor + 3 ms: {}; p99 ≤ floor + 10 ms: {}",
        verdict(h[0] - f[0] <= 3.0),
        verdict(h[2] - f[2] <= 10.0)
    );

    // Spaced events: each waits until the previous event's worker has
    // read its signal and exited (after lingering), so every hook starts
    // a worker (a session whose events come more than 2 s apart).
    let spaced = if full { 50 } else { 3 };
    let mut floor = Vec::with_capacity(spaced);
    let mut hook = Vec::with_capacity(spaced);
    let transcript = scratch.path().join("projects/spaced.jsonl");
    for j in 0..spaced {
        let (turn, step) = (events / STEPS.len() + j / STEPS.len(), j % STEPS.len());
        let lines = shifted(&sample, 10 * turn as i64);
        let mut record = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&transcript)
            .expect("transcript");
        for line in &lines[STEPS[step].0.clone()] {
            writeln!(record, "{line}").expect("append");
        }
        drop(record);
        let waited = Instant::now();
        while !queue.pending().is_empty() || !matches!(queue.try_lock(), Ok(Some(_))) {
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "the worker did not exit"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::write(home.join("sync.started"), b"").expect("sync stamp");
        let payload = payloads[step].replace("@TRANSCRIPT@", &transcript.to_string_lossy());
        let (d, out) = timed(command(&bin, &home, &["--version"]), b"");
        assert!(out.status.success());
        floor.push(d);
        let mut c = command(&bin, &home, &["agent", "hook", "--harness", "claude-code"]);
        c.env_remove("AIWORKLAB_AGENT_HOOK_INLINE");
        let (d, out) = timed(c, payload.as_bytes());
        assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());
        hook.push(d);
    }
    while !queue.pending().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut started = 0;
    while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::empty()) {
        started += 1;
    }
    let (f, h) = (q(&mut floor), q(&mut hook));
    println!(
        "spaced: {spaced} events, each after the last worker exited: {started} worker(s) started"
    );
    println!(
        "| floor: `aiworklab --version` | {:.1} | {:.1} | {:.1} |",
        f[0], f[1], f[2]
    );
    println!(
        "| `aiworklab agent hook --harness claude-code`, starting a worker | {:.1} | {:.1} | {:.1} |",
        h[0], h[1], h[2]
    );
    println!(
        "| hook − floor | {:.1} | {:.1} | {:.1} |",
        h[0] - f[0],
        h[1] - f[1],
        h[2] - f[2]
    );
}

/// The CPU time (user + system, seconds) of this process's children that
/// were waited for, from `/proc/self/stat` (Linux; clock ticks of 1/100 s).
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name (which may hold spaces), which
    // ends at the last ')': state is field 3, cutime 16 and cstime 17.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[13].parse::<u64>().expect("cutime") + fields[14].parse::<u64>().expect("cstime");
    ticks as f64 / 100.0
}

/// The store's outbox at `home` without the ids (each store mints its
/// own), sorted.
fn facts(home: &Path) -> Vec<(String, String, i64, Option<u8>)> {
    let store = LocalStore::open(&Home::at(home)).expect("the store opens");
    let mut v: Vec<_> = store
        .outbox(usize::MAX)
        .expect("outbox")
        .into_iter()
        .map(|d| (d.concept, d.transition, d.at.timestamp_millis(), d.grade))
        .collect();
    v.sort();
    v
}
