//! P1 from the device side, end to end: a unique marker placed in the
//! code, a diff, a file path, a shell command, a prompt and an assistant
//! message of replayed harness events (Claude Code, Codex, OpenCode) goes
//! through the real `aiworklab agent hook` and `agent sync` processes to a
//! running appliance, behind a recording TCP proxy that keeps every byte
//! the kernel sends. The marker is in none of those bytes, nor in the
//! appliance's databases (decrypted), the kernel's store (decrypted), the
//! commands' output or the kernel's log; the concept facts did arrive.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use aiworklab::agent::home::Home;
use aiworklab::clock::SystemClock;
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::agent::Appliance;
use crate::support::{Env, files_below, kernel_store, table_values};

const CODE: &str = "mk_code_5e9f2a";
const DIFF: &str = "mk_diff_83b1c7";
const PATH: &str = "mk_path_0d4e6f";
const CMD: &str = "mk_cmd_a92c41";
const PROMPT: &str = "mk_prompt_3f7b08";
const ANSWER: &str = "mk_answer_c61d5e";
const MARKERS: [&str; 6] = [CODE, DIFF, PATH, CMD, PROMPT, ANSWER];

/// A TCP proxy on loopback that forwards to `upstream` and keeps every
/// byte in each direction.
struct Recorder {
    addr: SocketAddr,
    /// Everything clients sent (requests, headers and bodies).
    sent: Arc<Mutex<Vec<u8>>>,
    /// Everything the appliance answered.
    answered: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (sent.clone(), answered.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (s, a) = (s.clone(), a.clone());
                tokio::spawn(async move {
                    let server = TcpStream::connect(upstream).await.expect("upstream");
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pump(cr, sw, s), pump(sr, cw, a));
                });
            }
        });
        Self {
            addr,
            sent,
            answered,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn sent(&self) -> Vec<u8> {
        self.sent.lock().expect("lock").clone()
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.lock().expect("lock").extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// The scratch machine: the kernel's home and the harnesses' files, all
/// below a directory whose name is the path marker.
struct Machine {
    _tmp: tempfile::TempDir,
    agent_home: PathBuf,
    user_home: PathBuf,
    project: PathBuf,
    codex_home: PathBuf,
    opencode_db: PathBuf,
}

impl Machine {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let project = tmp.path().join(PATH);
        let user_home = tmp.path().join("home");
        for d in [&project, &user_home] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        Self {
            agent_home: tmp.path().join("agent"),
            codex_home: project.join("codex"),
            opencode_db: project.join("opencode.db"),
            user_home,
            project,
            _tmp: tmp,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_aiworklab"));
        c.arg("agent")
            .args(args)
            .current_dir(&self.project)
            .env("AIWORKLAB_AGENT_HOME", &self.agent_home)
            .env("AIWORKLAB_AGENT_KEYCHAIN", "off")
            .env("HOME", &self.user_home)
            .env("CODEX_HOME", &self.codex_home)
            .env("OPENCODE_SQLITE_DB", &self.opencode_db)
            .env_remove("CLAUDE_CONFIG_DIR")
            .env_remove("XDG_DATA_HOME")
            .env_remove("AIWORKLAB_CONFIG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("runs")
    }

    /// `agent hook --harness <h> [arg]` with `stdin` as its input.
    fn hook(&self, harness: &str, stdin: &[u8], arg: Option<&str>) -> Output {
        let mut args = vec!["hook", "--harness", harness];
        args.extend(arg);
        let mut child = self
            .command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawns");
        let mut pipe = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut pipe, stdin).expect("stdin written");
        drop(pipe);
        child.wait_with_output().expect("waits")
    }
}

fn jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn ts(minutes_ago: i64) -> String {
    (Utc::now() - Duration::minutes(minutes_ago)).to_rfc3339()
}

/// Claude Code: a session with a transcript (the record the hook reads),
/// and hook payloads of a session whose transcript is gone (the payload
/// is then all there is, so its fields are read).
fn claude_events(m: &Machine) -> Vec<Vec<u8>> {
    let transcript = m.project.join("claude-session.jsonl");
    let file = m.project.join("src/words.rs");
    let write = json!({"file_path": file,
        "content": format!("pub fn {CODE}<'a>(a: &'a str, b: &'a str) -> &'a str {{\n    if a.len() >= b.len() {{ a }} else {{ b }}\n}}\n")});
    let edit = json!({"file_path": file, "old_string": format!("fn {DIFF}() {{}}"),
        "new_string": format!("use std::collections::HashMap;\nfn {DIFF}() {{\n    let mut m: HashMap<String, usize> = HashMap::new();\n    *m.entry(String::new()).or_insert(0) += 1;\n}}")});
    let bash =
        json!({"command": format!("cargo test --lib {CMD}"), "description": "Run the tests"});
    let answer = format!(
        "{ANSWER}: the function needs an explicit lifetime because it returns one of two borrowed inputs:\n\n```rust\npub fn longest<'a>(a: &'a str, b: &'a str) -> &'a str\n```"
    );
    let text = jsonl(&[
        json!({"type": "user", "timestamp": ts(30), "message": {"role": "user", "content": format!("{PROMPT} add a helper")}}),
        json!({"type": "assistant", "timestamp": ts(29), "message": {"role": "assistant", "content": [
            {"type": "text", "text": format!("{ANSWER} I'll write it.")},
            {"type": "tool_use", "id": "t1", "name": "Write", "input": write}]}}),
        json!({"type": "user", "timestamp": ts(29), "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": format!("wrote {CODE}")}]}}),
        json!({"type": "assistant", "timestamp": ts(28), "message": {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t2", "name": "Edit", "input": edit},
            {"type": "tool_use", "id": "t3", "name": "Bash", "input": bash}]}}),
        json!({"type": "user", "timestamp": ts(28), "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t3", "content": format!("test {CMD} ... ok")}]}}),
        json!({"type": "assistant", "timestamp": ts(27), "message": {"role": "assistant", "content": [{"type": "text", "text": answer}]}}),
    ]);
    std::fs::write(&transcript, text).expect("transcript");
    let base = |t: &Path| {
        json!({"session_id": "5f0c2b1e", "transcript_path": t, "cwd": m.project,
        "permission_mode": "acceptEdits"})
    };
    let event = |t: &Path, name: &str, extra: Value| {
        let mut e = base(t);
        e["hook_event_name"] = json!(name);
        for (k, v) in extra.as_object().expect("object") {
            e[k] = v.clone();
        }
        e.to_string().into_bytes()
    };
    let prompt = json!({"prompt": format!("{PROMPT} add a helper")});
    let stop = json!({"stop_hook_active": false, "last_assistant_message": answer});
    // The same session's payloads with no transcript: a Python decorator
    // written, a context manager edited in, pytest run, an answer.
    let gone = m.project.join("gone.jsonl");
    let py = m.project.join("app.py");
    let py_write = json!({"tool_name": "Write", "tool_input": {"file_path": py,
        "content": format!("def {CODE}(fn):\n    def inner(*args):\n        return fn(*args)\n    return inner\n\n@{CODE}\ndef handler(x):\n    return x\n")}});
    let py_edit = json!({"tool_name": "Edit", "tool_input": {"file_path": py,
        "old_string": format!("def {DIFF}(): pass"),
        "new_string": format!("def {DIFF}(path):\n    with open(path) as f:\n        return f.read()\n")}});
    let py_bash = json!({"tool_name": "Bash", "tool_input": {"command": format!("python -m pytest -k {CMD}")}});
    let py_stop = json!({"last_assistant_message": format!("{ANSWER}: a decorator wraps a function:\n\n```python\ndef deco(fn):\n    def inner(*a):\n        return fn(*a)\n    return inner\n```")});
    vec![
        event(&transcript, "SessionStart", json!({"source": "startup"})),
        event(&transcript, "UserPromptSubmit", prompt.clone()),
        event(
            &transcript,
            "PostToolUse",
            json!({"tool_name": "Write", "tool_input": write, "tool_response": {"filePath": file}}),
        ),
        event(
            &transcript,
            "PostToolUse",
            json!({"tool_name": "Edit", "tool_input": edit}),
        ),
        event(
            &transcript,
            "PostToolUse",
            json!({"tool_name": "Bash", "tool_input": bash, "tool_response": {"stdout": CMD}}),
        ),
        event(&transcript, "Stop", stop),
        event(&gone, "UserPromptSubmit", prompt),
        event(&gone, "PostToolUse", py_write),
        event(&gone, "PostToolUse", py_edit),
        event(&gone, "PostToolUse", py_bash),
        event(&gone, "Stop", py_stop),
        event(
            &transcript,
            "SessionEnd",
            json!({"reason": "prompt_input_exit"}),
        ),
    ]
}

const THREAD: &str = "0199e0a1-7c2d-7b3e-9f10-4a5b6c7d8e9f";

/// Codex: a rollout file, its hooks payloads, and a `notify` argument.
fn codex_events(m: &Machine) -> (Vec<Vec<u8>>, String) {
    let day = m.codex_home.join("sessions/2026/12/03");
    std::fs::create_dir_all(&day).expect("mkdir");
    let rollout = day.join(format!("rollout-2026-12-03T11-00-00-{THREAD}.jsonl"));
    let patch = format!(
        "*** Begin Patch\n*** Add File: {p}/fanout.go\n+package fanout\n+\n+import \"sync\"\n+\n+func {DIFF}(jobs []func()) {{\n+\tvar wg sync.WaitGroup\n+\tfor _, j := range jobs {{\n+\t\twg.Add(1)\n+\t\tgo func(f func()) {{\n+\t\t\tdefer wg.Done()\n+\t\t\tf()\n+\t\t}}(j)\n+\t}}\n+\twg.Wait()\n+}}\n*** End Patch\n",
        p = m.project.display()
    );
    let shell = json!({"command": ["bash", "-lc", format!("go test -race ./{CMD}/...")], "workdir": m.project}).to_string();
    let answer = format!(
        "{ANSWER}: each job runs in its own goroutine:\n\n```go\nvar wg sync.WaitGroup\nwg.Add(1)\ngo func() {{ defer wg.Done() }}()\nwg.Wait()\n```"
    );
    let item = |at: i64, payload: Value| json!({"timestamp": ts(at), "type": "response_item", "payload": payload});
    let text = jsonl(&[
        json!({"timestamp": ts(20), "type": "session_meta", "payload": {"id": THREAD, "cwd": m.project, "cli_version": "0.128.0"}}),
        item(
            20,
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": PROMPT}]}),
        ),
        item(
            19,
            json!({"type": "custom_tool_call", "status": "completed", "call_id": "c1", "name": "apply_patch", "input": patch}),
        ),
        item(
            18,
            json!({"type": "function_call", "name": "shell", "arguments": shell, "call_id": "c2"}),
        ),
        item(
            17,
            json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": answer}]}),
        ),
        json!({"timestamp": ts(17), "type": "event_msg", "payload": {"type": "task_complete", "turn_id": "1", "last_agent_message": ANSWER}}),
    ]);
    std::fs::write(&rollout, text).expect("rollout");
    let hook = |name: &str, extra: Value| {
        let mut e = json!({"session_id": THREAD, "transcript_path": rollout, "cwd": m.project,
            "hook_event_name": name, "turn_id": "1"});
        for (k, v) in extra.as_object().expect("object") {
            e[k] = v.clone();
        }
        e.to_string().into_bytes()
    };
    let events = vec![
        hook(
            "PostToolUse",
            json!({"tool_name": "Bash", "tool_input": {"command": format!("go test ./{CMD}")}}),
        ),
        hook("Stop", json!({"last_assistant_message": answer})),
        // A hooks payload naming no record: its own fields are read.
        json!({"session_id": "x", "cwd": m.project, "hook_event_name": "PostToolUse",
            "tool_name": "Bash", "tool_input": {"command": format!("go test -race ./{CMD}")}})
        .to_string()
        .into_bytes(),
    ];
    let notify = json!({"type": "agent-turn-complete", "thread-id": THREAD, "turn-id": "2",
        "cwd": m.project, "input-messages": [PROMPT], "last-assistant-message": answer})
    .to_string();
    (events, notify)
}

/// OpenCode: its database, from the shipped fixture with the markers put
/// into the prompt, the file written, its path, the command and the answer.
fn opencode_events(m: &Machine) -> Vec<Vec<u8>> {
    let sql = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions/opencode/opencode.sql"),
    )
    .expect("fixture");
    let replaced = sql
        .replace(
            "Write a typed total()",
            &format!("{PROMPT} Write a typed total()"),
        )
        .replace("/home/dev/shop", &m.project.to_string_lossy())
        .replace(
            "export async function total(",
            &format!("export async function {CODE}("),
        )
        .replace("npx tsc --noEmit", &format!("npx tsc --noEmit -p {CMD}"))
        .replace("`total` awaits", &format!("{ANSWER} `total` awaits"));
    for m in [PROMPT, CODE, CMD, ANSWER, PATH] {
        assert!(replaced.contains(m), "{m} placed in the OpenCode fixture");
    }
    let conn = rusqlite::Connection::open(&m.opencode_db).expect("db");
    conn.execute_batch(&replaced).expect("opencode db");
    let ev = |name: &str| {
        json!({"hook_event_name": name, "session_id": "ses_0a1b2c3d4e5fAbCdEfGhIjKlMn"})
            .to_string()
            .into_bytes()
    };
    vec![ev("tool.execute.after"), ev("session.idle")]
}

/// Whether any marker occurs in `bytes`, in any letter case.
fn markers_in(bytes: &[u8]) -> Vec<&'static str> {
    let lower = bytes.to_ascii_lowercase();
    MARKERS
        .into_iter()
        .filter(|m| lower.windows(m.len()).any(|w| w == m.as_bytes()))
        .collect()
}

fn output_text(o: &Output) -> Vec<u8> {
    [o.stdout.as_slice(), o.stderr.as_slice()].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_marker_leaves_the_machine_or_reaches_a_store_output_or_log() {
    let app = Appliance::start(Env::new(&["acme"]), Arc::new(SystemClock)).await;
    let proxy = Recorder::start(app.addr).await;
    let uid = app.user("ada");
    let code = app.code(&uid);
    let url = proxy.url();
    let m = Machine::new();

    let (outputs, m) = tokio::task::spawn_blocking(move || {
        let mut outputs: Vec<(String, Output)> = Vec::new();
        let pair = m.run(&[
            "pair", "--server", &url, "--code", &code, "--name", "laptop",
        ]);
        assert!(
            pair.status.success(),
            "{}",
            String::from_utf8_lossy(&output_text(&pair))
        );
        // The hook starts a detached sync on Stop at most once a minute
        // (docs/kernel.md): a fresh stamp keeps this test's single sync
        // the only one, so nothing races it.
        std::fs::write(m.agent_home.join("sync.started"), b"").expect("stamp");
        // The ingest lock held while the hooks run: no worker reads their
        // signals, so they are all on disk to be searched, and the
        // commands below read them themselves.
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(m.agent_home.join("ingest/lock"))
            .expect("lock file");
        lock.lock().expect("ingest lock");
        for (i, e) in claude_events(&m).iter().enumerate() {
            outputs.push((format!("claude hook {i}"), m.hook("claude-code", e, None)));
        }
        let (codex, notify) = codex_events(&m);
        for (i, e) in codex.iter().enumerate() {
            outputs.push((format!("codex hook {i}"), m.hook("codex", e, None)));
        }
        outputs.push(("codex notify".into(), m.hook("codex", b"", Some(&notify))));
        for (i, e) in opencode_events(&m).iter().enumerate() {
            outputs.push((format!("opencode hook {i}"), m.hook("opencode", e, None)));
        }
        for (name, o) in &outputs {
            assert!(o.status.success(), "{name}: {:?}", o.status);
            assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{name} printed");
        }
        // The hooks' signals (sealed paths, nothing else), in the clear
        // file names and bytes: no marker.
        let signals = files_below(&m.agent_home.join("ingest/signals"));
        assert!(
            signals.len() >= 3,
            "the records of all three harnesses were signalled: {signals:?}"
        );
        for f in &signals {
            let bytes = std::fs::read(f).expect("read");
            assert_eq!(markers_in(&bytes), Vec::<&str>::new(), "in {}", f.display());
            assert_eq!(
                markers_in(f.to_string_lossy().as_bytes()),
                Vec::<&str>::new(),
                "in the name {}",
                f.display()
            );
        }
        drop(lock);
        let outbox = m.run(&["outbox", "--json"]);
        let sync = m.run(&["sync"]);
        assert!(
            sync.status.success(),
            "{}",
            String::from_utf8_lossy(&output_text(&sync))
        );
        let status = m.run(&["status", "--json"]);
        outputs.extend([
            ("pair".into(), pair),
            ("outbox".into(), outbox),
            ("sync".into(), sync),
            ("status".into(), status),
        ]);
        (outputs, m)
    })
    .await
    .expect("joins");

    // Something real happened: the concepts of every harness were
    // recorded, sent in the clear bytes the proxy saw, and held.
    let held: Vec<(String, String)> = {
        let db = app.state.store.org("acme").expect("org");
        aiworklab::sync::pull(db, &uid, 0, 5000)
            .expect("pull")
            .deltas
            .into_iter()
            .map(|d| (d.concept, d.transition))
            .collect()
    };
    for (concept, transition) in [
        ("rust-lifetimes", "seen"),         // Claude transcript: code written
        ("rust-lifetimes", "explained"),    // Claude transcript: the answer
        ("ds-hash-maps", "seen"),           // Claude transcript: the edit
        ("test-test-runners", "seen"),      // Claude transcript: cargo test
        ("py-decorators", "seen"),          // Claude payload: Write
        ("py-decorators", "explained"),     // Claude payload: Stop's answer
        ("go-goroutines", "seen"),          // Codex rollout: the patch
        ("ts-null-undefined", "explained"), // OpenCode database: the answer
    ] {
        assert!(
            held.iter().any(|(c, t)| c == concept && t == transition),
            "{concept} {transition} held by the appliance: {held:?}"
        );
    }
    let sent = proxy.sent();
    let sent_text = String::from_utf8_lossy(&sent);
    assert!(
        sent_text.contains("POST /api/v1/sync/deltas") && sent_text.contains("\"rust-lifetimes\""),
        "the recorder saw the push in the clear"
    );

    // The marker is nowhere.
    assert_eq!(
        markers_in(&sent),
        Vec::<&str>::new(),
        "in the requests sent"
    );
    let answered = proxy.answered.lock().expect("lock").clone();
    assert_eq!(markers_in(&answered), Vec::<&str>::new(), "in the answers");
    for (name, o) in &outputs {
        assert_eq!(
            markers_in(&output_text(o)),
            Vec::<&str>::new(),
            "in {name}'s output"
        );
    }
    let home = Home::at(&m.agent_home);
    let log = std::fs::read(home.log_path()).unwrap_or_default();
    assert_eq!(markers_in(&log), Vec::<&str>::new(), "in the kernel's log");
    let local = table_values(&kernel_store(&home));
    assert!(
        String::from_utf8_lossy(&local).contains("py-decorators"),
        "the kernel's store was read decrypted"
    );
    assert_eq!(
        markers_in(&local),
        Vec::<&str>::new(),
        "in the kernel's store"
    );
    for f in files_below(&m.agent_home) {
        let bytes = std::fs::read(&f).expect("read");
        assert_eq!(markers_in(&bytes), Vec::<&str>::new(), "in {}", f.display());
    }
    let org = app.state.store.org("acme").expect("org");
    let appliance = org
        .db
        .read(|c| Ok::<_, aiworklab::store::StoreError>(table_values(c)))
        .expect("org database, decrypted");
    assert!(
        String::from_utf8_lossy(&appliance).contains("go-goroutines"),
        "the org database was read decrypted"
    );
    assert_eq!(
        markers_in(&appliance),
        Vec::<&str>::new(),
        "in the org database"
    );
    let system = app
        .state
        .store
        .system()
        .read(|c| Ok::<_, aiworklab::store::StoreError>(table_values(c)))
        .expect("system database, decrypted");
    assert_eq!(
        markers_in(&system),
        Vec::<&str>::new(),
        "in the system database"
    );
    for f in files_below(&app.env.data_dir()) {
        let bytes = std::fs::read(&f).expect("read");
        assert_eq!(markers_in(&bytes), Vec::<&str>::new(), "in {}", f.display());
    }
}
