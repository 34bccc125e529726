//! `aiworklab agent mcp` as a coding agent meets it: the real binary
//! started over stdio, spoken to by rmcp's own client (initialize, list
//! the tools, call both, bad inputs answered as tool errors), with a
//! kernel home holding recorded state. Tool inputs carry a marker that
//! must appear nowhere the kernel keeps anything: its decrypted store,
//! its log, its stderr. Stdout carries protocol messages only.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;

use aiworklab::agent::home::Home;
use aiworklab::agent::observe::Observation;
use aiworklab::agent::store::LocalStore;
use aiworklab::skill::Transition;
use chrono::{Duration, Utc};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use serde_json::{Value, json};

use crate::support::{kernel_store, table_values};

const MARKER: &str = "zqx7mcpmarker";

/// A kernel home with a store that holds some state: lifetimes seen and
/// checked, traits explained.
fn seeded(dir: &Path) -> std::path::PathBuf {
    let home = dir.join("kernel");
    let mut store = LocalStore::open(&Home::at(&home)).expect("store");
    let now = Utc::now();
    let obs = |c: &str, t, ago| Observation {
        concept: c.into(),
        transition: t,
        at: now - Duration::days(ago),
    };
    store
        .record(
            "seed",
            "1",
            &[
                obs("rust-lifetimes", Transition::Seen, 3),
                obs("rust-lifetimes", Transition::CheckPassed, 2),
                obs("rust-traits", Transition::Explained, 1),
            ],
        )
        .expect("record");
    home
}

fn command(home: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_aiworklab"));
    c.args(["agent", "mcp"])
        .env("AIWORKLAB_AGENT_HOME", home)
        .env("AIWORKLAB_AGENT_KEYCHAIN", "off")
        .env_remove("AIWORKLAB_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn structured(r: &CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "{r:?}");
    r.structured_content.clone().expect("structured content")
}

fn error_text(r: &CallToolResult) -> String {
    assert_eq!(r.is_error, Some(true), "{r:?}");
    serde_json::to_string(&r.content).expect("json")
}

/// Every value of every table of the store, decrypted, as text.
fn decrypted_store(home: &Path) -> String {
    String::from_utf8_lossy(&table_values(&kernel_store(&Home::at(home)))).into_owned()
}

fn deltas_held(home: &Path) -> usize {
    let store = LocalStore::open(&Home::at(home)).expect("store");
    store.delta_count().expect("count")
}

#[tokio::test]
async fn a_client_session_lists_and_calls_both_tools_and_keeps_no_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = seeded(dir.path());
    let held = deltas_held(&home);
    let store_before = decrypted_store(&home);

    let mut child = tokio::process::Command::from(command(&home))
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take().expect("stdin");
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = tokio::spawn(async move {
        let mut s = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s)
            .await
            .expect("stderr");
        s
    });

    let client = ().serve((stdout, stdin)).await.expect("initialize");
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("aiworklab")
    );
    assert!(
        info.instructions
            .as_deref()
            .is_some_and(|i| i.contains("skill_profile"))
    );

    let mut tools = client.list_all_tools().await.expect("tools/list");
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "answer_check",
            "comprehension_check",
            "skill_profile",
            "tag_concepts"
        ]
    );
    for t in &tools {
        let d = t.description.as_deref().unwrap_or_default();
        assert!(
            d.contains("Nothing is stored")
                || d.contains("never stored")
                || d.contains("never answer it yourself"),
            "{}: {d}",
            t.name
        );
        assert!(t.output_schema.is_some(), "{} has an output schema", t.name);
    }
    let props = |i: usize| Value::Object((*tools[i].input_schema).clone())["properties"].clone();
    assert!(props(0).get("check_id").is_some() && props(0).get("answer").is_some());
    assert!(props(1).get("concept").is_some());
    assert!(props(2).get("concepts").is_some() && props(2).get("snippet").is_some());
    assert!(props(3).get("snippet").is_some() && props(3).get("language").is_some());

    let call = |name: &'static str, a: Value| {
        let client = &client;
        async move {
            client
                .call_tool(CallToolRequestParams::new(name).with_arguments(args(a)))
                .await
                .expect("tools/call answered")
        }
    };
    let code = format!(
        "/// {MARKER}\nfn {MARKER}<'a>(x: &'a str, y: &'a str) -> &'a str {{ if x.len() > y.len() {{ x }} else {{ y }} }}\n"
    );

    // tag_concepts: the concepts the code shows, with titles.
    let tagged = structured(
        &call(
            "tag_concepts",
            json!({"snippet": code, "language": "src/lib.rs"}),
        )
        .await,
    );
    assert_eq!(tagged["read_as"], "rust");
    let slugs: Vec<&str> = tagged["concepts"]
        .as_array()
        .expect("concepts")
        .iter()
        .filter_map(|c| c["slug"].as_str())
        .collect();
    assert!(slugs.contains(&"rust-lifetimes"), "{tagged}");
    assert!(
        tagged["concepts"][0]["title"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    // skill_profile by slugs: states from the store, recall once checked.
    let p = structured(
        &call(
            "skill_profile",
            json!({"concepts": ["rust-lifetimes", "rust-traits", "ds-hash-maps", format!("{MARKER}-slug")]}),
        )
        .await,
    );
    let line = |slug: &str| {
        p["concepts"]
            .as_array()
            .expect("concepts")
            .iter()
            .find(|c| c["slug"] == slug)
            .unwrap_or_else(|| panic!("{slug} in {p}"))
            .clone()
    };
    assert_eq!(line("rust-lifetimes")["state"], "demonstrated");
    let recall = line("rust-lifetimes")["recall"].as_f64().expect("recall");
    assert!(recall > 0.5 && recall <= 1.0, "{recall}");
    assert_eq!(line("rust-traits")["state"], "explained");
    assert!(line("rust-traits")["recall"].is_null());
    assert_eq!(line("ds-hash-maps")["state"], "unseen");
    assert!(
        line("ds-hash-maps")["pitch"]
            .as_str()
            .is_some_and(|s| s.contains("from the start"))
    );
    assert_eq!(p["unknown"], json!([format!("{MARKER}-slug")]));

    // skill_profile by snippet.
    let p = structured(
        &call(
            "skill_profile",
            json!({"snippet": code, "language": "rust"}),
        )
        .await,
    );
    assert_eq!(p["read_as"], "rust");
    assert!(
        p["concepts"]
            .as_array()
            .expect("concepts")
            .iter()
            .any(|c| c["slug"] == "rust-lifetimes" && c["state"] == "demonstrated"),
        "{p}"
    );

    // Bad input: tool errors that say what to send.
    let e = error_text(&call("tag_concepts", json!({"snippet": "  \n"})).await);
    assert!(e.contains("empty"), "{e}");
    let big = format!("{MARKER} {}", "x".repeat(300 * 1024));
    let e = error_text(&call("tag_concepts", json!({"snippet": big})).await);
    assert!(e.contains("at most 262144"), "{e}");
    let e = error_text(
        &call(
            "tag_concepts",
            json!({"snippet": code, "language": format!("{MARKER}lang")}),
        )
        .await,
    );
    assert!(e.contains("not a language the tagger knows"), "{e}");
    let e = error_text(&call("skill_profile", json!({"concepts": [MARKER]})).await);
    assert!(e.contains("none of these is a concept"), "{e}");
    let e = error_text(&call("skill_profile", json!({})).await);
    assert!(e.contains("give `concepts`"), "{e}");
    // A parameter that does not fit the schema is refused by the protocol.
    let refused = client
        .call_tool(
            CallToolRequestParams::new("tag_concepts")
                .with_arguments(args(json!({"snippet": 42, "extra": MARKER}))),
        )
        .await;
    assert!(refused.is_err() || refused.is_ok_and(|r| r.is_error == Some(true)));

    client.cancel().await.expect("closes");
    let status = child.wait().await.expect("exits");
    assert!(status.success(), "{status}");
    let stderr = errors.await.expect("stderr task");
    assert!(!stderr.contains(MARKER), "stderr: {stderr}");

    // Nothing of the inputs was kept: no delta, no trace in the store or the log.
    assert_eq!(deltas_held(&home), held, "the tools recorded nothing");
    let store_after = decrypted_store(&home);
    assert!(!store_after.contains(MARKER));
    assert_eq!(store_after, store_before, "the store is unchanged");
    let log = std::fs::read_to_string(home.join("kernel.log")).unwrap_or_default();
    assert!(!log.contains(MARKER), "log: {log}");
    for path in crate::support::files_below(&home) {
        let bytes = std::fs::read(&path).expect("read");
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "{} holds the marker",
            path.display()
        );
    }
}

#[test]
fn stdout_carries_only_protocol_messages_and_a_bad_start_says_how_it_is_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = seeded(dir.path());
    let mut child = command(&home).spawn().expect("starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let lines = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "tag_concepts", "arguments": {"snippet": format!("SELECT {MARKER} FROM t"), "language": "sql"}}}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "no_such_tool", "arguments": {"snippet": MARKER}}}),
    ];
    for l in &lines {
        writeln!(stdin, "{l}").expect("write");
    }
    // Answers come before stdin closes.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.iter().filter(|&&b| b == b'\n').count() < 4 {
        let n = stdout.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "stdout ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    drop(stdin);
    stdout.read_to_end(&mut seen).expect("rest");
    let out = child.wait_with_output().expect("exits");
    assert!(out.status.success(), "{:?}", out.status);
    let text = String::from_utf8(seen).expect("utf-8");
    let mut ids = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
        ids.push(v["id"].as_i64().expect("an answer to a request"));
    }
    // Requests run concurrently: answers may come in any order.
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4], "{text}");
    assert!(text.contains("sql"), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(MARKER), "stderr: {stderr}");

    // Started by hand, without a handshake: a message on stderr that
    // says what the command is for, and nothing echoed.
    let mut child = command(&home).spawn().expect("starts");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "hello {MARKER}").expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("exits");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty() || !String::from_utf8_lossy(&out.stdout).contains(MARKER));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("started by a coding agent"), "{stderr}");
    assert!(!stderr.contains(MARKER), "{stderr}");
}

/// The check tools as a coding agent uses them: a question without its
/// key, the engineer's reply graded and recorded once, the limits and the
/// cool-down applied, a reply in words that cannot be graded (the kernel
/// is not paired) refused and kept nowhere.
#[tokio::test]
async fn the_agent_offers_a_check_inline_and_the_reply_is_graded_recorded_and_not_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = seeded(dir.path());
    let mut child = tokio::process::Command::from(command(&home))
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take().expect("stdin");
    let client = ().serve((stdout, stdin)).await.expect("initialize");
    let call = |name: &'static str, a: Value| {
        let client = &client;
        async move {
            client
                .call_tool(CallToolRequestParams::new(name).with_arguments(args(a)))
                .await
                .expect("tools/call answered")
        }
    };
    // Not paired: the shipped bank's first check of the concept.
    let bank = aiworklab::checks::Bank::builtin(
        &aiworklab::skill::Catalogue::builtin().expect("catalogue"),
    )
    .expect("bank");
    let first = &bank.for_concept("git-rebase")[0];
    let offer = structured(&call("comprehension_check", json!({"concept": "git-rebase"})).await);
    let q = &offer["question"];
    assert_eq!(q["check_id"], first.id.as_str(), "{offer}");
    assert_eq!(q["concept"], "git-rebase");
    assert_eq!(q["prompt"], first.prompt.as_str());
    for key in ["answer", "correct", "accepted", "explanation"] {
        assert!(
            q.get(key).is_none(),
            "the key is not given to the agent: {offer}"
        );
    }
    assert!(
        offer["note"]
            .as_str()
            .is_some_and(|n| n.contains("do not answer it")),
        "{offer}"
    );
    // A reply in words the kernel cannot grade: refused, nothing recorded.
    let e = error_text(
        &call(
            "answer_check",
            json!({"check_id": first.id, "answer": format!("I think {MARKER}")}),
        )
        .await,
    );
    assert!(
        e.contains("option's number") || e.contains("nothing was recorded"),
        "{e}"
    );
    assert!(!e.contains(MARKER), "the reply is not echoed: {e}");
    // The right reply, as the engineer would type it.
    let reply = match &first.answer {
        aiworklab::checks::Answer::Choice { correct, .. } => (correct + 1).to_string(),
        aiworklab::checks::Answer::Short { accepted } => accepted[0].clone(),
    };
    let r = structured(
        &call(
            "answer_check",
            json!({"check_id": first.id, "answer": reply}),
        )
        .await,
    );
    assert_eq!(
        (r["right"].as_bool(), r["grade"].as_u64()),
        (Some(true), Some(3)),
        "{r}"
    );
    assert_eq!(r["recorded"], "check_passed");
    assert_eq!(r["explanation"], first.explanation.as_str());
    // Answered once: a second answer is refused.
    let e = error_text(&call("answer_check", json!({"check_id": first.id, "answer": "1"})).await);
    assert!(e.contains("is waiting for an answer"), "{e}");
    // The same concept again within the day: no question, and why.
    let again = structured(&call("comprehension_check", json!({"concept": "git-rebase"})).await);
    assert!(again["question"].is_null(), "{again}");
    assert!(
        again["note"]
            .as_str()
            .is_some_and(|n| n.contains("last 24 hours"))
    );
    // Unknown concepts name themselves.
    let e = error_text(&call("comprehension_check", json!({"concept": "no-such-concept"})).await);
    assert!(
        e.contains("no-such-concept") && e.contains("not a concept"),
        "{e}"
    );
    client.cancel().await.expect("closes");
    child.wait().await.expect("exits");

    // The result is in the graph and queued; the reply in words nowhere.
    let store = LocalStore::open(&Home::at(&home)).expect("store");
    let queued = store.outbox(100).expect("outbox");
    let checks: Vec<_> = queued
        .iter()
        .filter(|d| d.concept == "git-rebase")
        .collect();
    assert_eq!(checks.len(), 1, "{queued:?}");
    assert_eq!(
        (checks[0].transition.as_str(), checks[0].grade),
        ("check_passed", Some(3))
    );
    drop(store);
    assert!(!decrypted_store(&home).contains(MARKER));
    let log = std::fs::read_to_string(home.join("kernel.log")).unwrap_or_default();
    assert!(!log.contains(MARKER), "log: {log}");
}
