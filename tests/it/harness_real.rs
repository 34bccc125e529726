//! The real coding-agent CLIs, offline. Claude Code, Codex and OpenCode,
//! installed from npm at the versions `tests/harness/package-lock.json`
//! pins, each run once non-interactively in a scratch `HOME` against the
//! scripted model server (`tests/harness/model-server.mjs`, on
//! 127.0.0.1), with the kernel's hooks put in place by the real
//! `aiworklab agent install`. The script: a tool call that writes a Rust
//! file with an explicit lifetime and a trait bound, then a final
//! explanation. The test asserts the file was written and that the
//! kernel's store holds the concepts as `seen` (from the code) and
//! `explained` (from the explanation), read back through
//! `aiworklab agent outbox --json`.
//!
//! Nothing leaves the machine: every other address goes through a proxy
//! that refuses (`HTTP(S)_PROXY` = a closed port on 127.0.0.1, only
//! 127.0.0.1 exempt), and the environment is cleared of everything else
//! (no real key or config of the developer's reaches a harness).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// How long one harness run may take (a run here takes 3 to 15 s).
const RUN_LIMIT: Duration = Duration::from_secs(240);
/// How long the detached hooks (OpenCode's plugin) may take to land.
const HOOK_LIMIT: Duration = Duration::from_secs(60);

const PROMPT: &str = "Write a helper that returns the longer of two labels";

const CODE: &str = "use std::fmt::Display;

/// The longer of two labels.
pub fn longest<'a, T: Display>(first: &'a T, second: &'a T) -> &'a T {
    if first.to_string().len() >= second.to_string().len() {
        first
    } else {
        second
    }
}
";

const EXPLANATION: &str = "I wrote `longest` in src/lib.rs.

It leans on traits and trait bounds: `T: Display` lets it call `to_string` on any type \
that implements the trait. The lifetime ties the result to the inputs:

```rust
pub fn longest<'a, T: Display>(first: &'a T, second: &'a T) -> &'a T {
    first
}
```

The returned reference lives no longer than either argument, so it can never dangle.
";

/// What the kernel must derive from the session: the concepts the code
/// shows as `seen`, the ones the explanation covers as `explained`.
const EXPECTED: [&str; 2] = ["rust-lifetimes", "rust-traits"];

fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness")
}

/// The harness's command, or a failure that says how to install it.
fn cli(name: &str) -> PathBuf {
    let bin = harness_dir().join("node_modules/.bin").join(name);
    assert!(
        bin.exists(),
        "the real harness CLIs are not installed ({} is missing): run ./tests/run \
         (or `npm install --no-save` in tests/harness)",
        bin.display()
    );
    bin
}

/// One harness's scratch machine: a home with the harness's config
/// directories inside it, a project directory, the kernel's home.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let s = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for d in ["home/.config", "home/.local/share", "home/.cache", "proj"] {
            std::fs::create_dir_all(s.path(d)).expect("mkdir");
        }
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `text` to `rel`, making its directory.
    fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    }

    fn file(&self) -> PathBuf {
        self.path("proj/src/lib.rs")
    }

    /// The environment every process of this test gets, and nothing else.
    fn env(&self) -> Vec<(String, String)> {
        let home = self.path("home");
        let h = |rel: &str| home.join(rel).to_string_lossy().into_owned();
        let dead_proxy = "http://127.0.0.1:9".to_string();
        vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), h("")),
            ("XDG_CONFIG_HOME".into(), h(".config")),
            ("XDG_DATA_HOME".into(), h(".local/share")),
            ("XDG_CACHE_HOME".into(), h(".cache")),
            ("XDG_STATE_HOME".into(), h(".local/state")),
            ("CLAUDE_CONFIG_DIR".into(), h(".claude")),
            ("CODEX_HOME".into(), h(".codex")),
            (
                "AIWORKLAB_AGENT_HOME".into(),
                self.path("agent").to_string_lossy().into_owned(),
            ),
            ("AIWORKLAB_AGENT_KEYCHAIN".into(), "off".into()),
            ("HTTP_PROXY".into(), dead_proxy.clone()),
            ("HTTPS_PROXY".into(), dead_proxy.clone()),
            ("http_proxy".into(), dead_proxy.clone()),
            ("https_proxy".into(), dead_proxy),
            ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
            ("no_proxy".into(), "127.0.0.1,localhost".into()),
            ("TERM".into(), "dumb".into()),
            ("NO_COLOR".into(), "1".into()),
        ]
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .envs(self.env())
            .current_dir(self.path("proj"))
            .stdin(Stdio::null());
        c
    }

    /// `aiworklab agent ARGS` in this scratch machine.
    fn agent(&self, args: &[&str]) -> String {
        let out = self
            .command(Path::new(env!("CARGO_BIN_EXE_aiworklab")))
            .arg("agent")
            .args(args)
            .output()
            .expect("aiworklab runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "agent {args:?}: {text}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Installs the kernel's hooks for `harness` and checks that the hook
    /// command runs this build's binary.
    fn install(&self, harness: &str, settings: &str) {
        let said = self.agent(&["install", "--harness", harness]);
        let written = std::fs::read_to_string(self.path(settings))
            .unwrap_or_else(|e| panic!("{settings} after install ({said}): {e}"));
        assert!(
            written.contains(env!("CARGO_BIN_EXE_aiworklab")),
            "the hook must run this build's aiworklab: {written}"
        );
    }

    /// The (concept, transition) pairs the kernel's outbox holds.
    fn deltas(&self) -> BTreeSet<(String, String)> {
        let out: serde_json::Value =
            serde_json::from_str(&self.agent(&["outbox", "--json"])).expect("outbox json");
        out.as_array()
            .into_iter()
            .flatten()
            .filter_map(|batch| batch["deltas"].as_array())
            .flatten()
            .filter_map(|d| {
                Some((
                    d["concept"].as_str()?.to_string(),
                    d["transition"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// What to show when something is missing: the request log, the
    /// harness's output and the kernel's log.
    fn evidence(&self) -> String {
        let read = |rel: &str| std::fs::read_to_string(self.path(rel)).unwrap_or_default();
        format!(
            "model requests:\n{}\nharness stdout:\n{}\nharness stderr:\n{}\nkernel log:\n{}",
            read("requests.log"),
            read("run.out"),
            read("run.err"),
            read("agent/kernel.log")
        )
    }

    /// Runs the harness to its end (or fails at `RUN_LIMIT`), its output
    /// in `run.out`/`run.err`.
    fn run(&self, mut cmd: Command) {
        let out = std::fs::File::create(self.path("run.out")).expect("out");
        let err = std::fs::File::create(self.path("run.err")).expect("err");
        let mut child = cmd.stdout(out).stderr(err).spawn().expect("harness runs");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if start.elapsed() > RUN_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the harness did not finish in {RUN_LIMIT:?}\n{}",
                    self.evidence()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "harness: {status}\n{}", self.evidence());
    }

    /// Installs the kernel's hooks for `harness` (into `settings`), runs
    /// `program ARGS` with `env` added, and checks what the kernel made
    /// of the session.
    fn session(
        &self,
        (harness, settings): (&str, &str),
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) {
        self.install(harness, settings);
        let mut cmd = self.command(program);
        cmd.args(args).envs(env.iter().copied());
        self.run(cmd);
        self.assert_kernel_saw_the_session();
    }

    /// Waits until the kernel holds every expected delta (hooks may
    /// still be running, OpenCode's are detached), then checks the file.
    fn assert_kernel_saw_the_session(&self) {
        let written = std::fs::read_to_string(self.file())
            .unwrap_or_else(|e| panic!("the tool call's file: {e}\n{}", self.evidence()));
        assert_eq!(
            written.trim_end(),
            CODE.trim_end(),
            "the file the tool call wrote"
        );
        let want: BTreeSet<(String, String)> = EXPECTED
            .iter()
            .flat_map(|c| {
                [
                    (c.to_string(), "seen".to_string()),
                    (c.to_string(), "explained".to_string()),
                ]
            })
            .collect();
        let start = Instant::now();
        let mut held = self.deltas();
        while !want.is_subset(&held) && start.elapsed() < HOOK_LIMIT {
            std::thread::sleep(Duration::from_millis(250));
            held = self.deltas();
        }
        let missing: Vec<_> = want.difference(&held).collect();
        assert!(
            missing.is_empty(),
            "the kernel lacks {missing:?}; it holds {held:?}\n{}",
            self.evidence()
        );
        assert!(
            held.iter().all(|(_, t)| t == "seen" || t == "explained"),
            "only seen/explained can come from a session: {held:?}"
        );
        // The hooks ran without a problem of their own: the kernel's log
        // holds only the one-time key file warning.
        let log = std::fs::read_to_string(self.path("agent/kernel.log")).unwrap_or_default();
        let problems: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("no usable OS keychain"))
            .collect();
        assert!(problems.is_empty(), "the hook logged {problems:#?}");
    }
}

/// The scripted model server, stopped when dropped (and when this test
/// process dies: it exits when its stdin closes).
struct ModelServer {
    child: Child,
    url: String,
}

impl ModelServer {
    fn start(s: &Scratch) -> Self {
        use std::io::BufRead;
        let scenario = s.path("scenario.json");
        std::fs::write(
            &scenario,
            json!({
                "path": s.file(),
                "cwd": s.path("proj"),
                "content": CODE,
                "explanation": EXPLANATION,
                "title": "A Rust helper",
            })
            .to_string(),
        )
        .expect("scenario");
        let mut child = Command::new("node")
            .arg(harness_dir().join("model-server.mjs"))
            .arg(&scenario)
            .arg(s.path("requests.log"))
            .arg("--exit-with-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs the scripted model server (run ./tests/run to install Node.js)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server's first line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the model server said {line:?}"))
            .to_string();
        Self { child, url }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn claude_code_runs_offline_and_the_kernel_records_its_session() {
    let claude = cli("claude");
    let s = Scratch::new();
    let server = ModelServer::start(&s);
    s.session(
        ("claude-code", "home/.claude/settings.json"),
        &claude,
        &["-p", PROMPT, "--permission-mode", "acceptEdits"],
        &[
            ("ANTHROPIC_BASE_URL", &server.url),
            ("ANTHROPIC_API_KEY", "sk-scripted"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("DISABLE_AUTOUPDATER", "1"),
        ],
    );
    // Claude Code kept its transcript where the kernel reads it from.
    let transcripts = crate::support::files_below(&s.path("home/.claude/projects"));
    assert!(
        transcripts
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "jsonl")),
        "{transcripts:?}"
    );
}

#[test]
fn codex_runs_offline_and_the_kernel_records_its_session() {
    let codex = cli("codex");
    let s = Scratch::new();
    let server = ModelServer::start(&s);
    s.write(
        "home/.codex/config.toml",
        &format!(
            "model = \"gpt-5.1-codex\"\nmodel_provider = \"scripted\"\n\n\
             [model_providers.scripted]\nname = \"Scripted\"\nbase_url = \"{}/v1\"\n\
             wire_api = \"responses\"\nenv_key = \"SCRIPTED_API_KEY\"\n",
            server.url
        ),
    );
    // A new hook is untrusted until the engineer trusts it in Codex's
    // UI; `exec` has no UI, so this run trusts it for itself.
    s.session(
        ("codex", "home/.codex/hooks.json"),
        &codex,
        &[
            "exec",
            "--dangerously-bypass-hook-trust",
            "--skip-git-repo-check",
            "--sandbox",
            "workspace-write",
            PROMPT,
        ],
        &[("SCRIPTED_API_KEY", "sk-scripted")],
    );
}

#[test]
fn opencode_runs_offline_and_the_kernel_records_its_session() {
    let opencode = cli("opencode");
    let s = Scratch::new();
    let server = ModelServer::start(&s);
    s.write(
        "home/.config/opencode/opencode.json",
        &json!({
            "$schema": "https://opencode.ai/config.json",
            "provider": {
                "scripted": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Scripted",
                    "options": { "baseURL": format!("{}/v1", server.url), "apiKey": "sk-scripted" },
                    "models": { "scripted": { "name": "Scripted", "tool_call": true } }
                }
            },
            "model": "scripted/scripted",
            "small_model": "scripted/scripted",
            "autoupdate": false,
            "share": "disabled",
            "permission": { "edit": "allow", "bash": "allow" }
        })
        .to_string(),
    );
    // OpenCode installs `@opencode-ai/plugin` into each config directory
    // from the npm registry unless it is there already; the lock file
    // pins it, so the config directory gets ours (see docs/kernel.md).
    let dep = json!({ "@opencode-ai/plugin": "1.18.33" });
    s.write(
        "home/.config/opencode/package.json",
        &json!({ "dependencies": dep }).to_string(),
    );
    s.write(
        "home/.config/opencode/package-lock.json",
        &json!({ "lockfileVersion": 3, "requires": true, "packages": { "": { "dependencies": dep } } })
            .to_string(),
    );
    let config = s.path("home/.config/opencode");
    assert!(
        harness_dir()
            .join("node_modules/@opencode-ai/plugin/package.json")
            .exists(),
        "@opencode-ai/plugin is not installed: run ./tests/run"
    );
    std::os::unix::fs::symlink(
        harness_dir().join("node_modules"),
        config.join("node_modules"),
    )
    .expect("symlink");
    s.session(
        ("opencode", "home/.config/opencode/plugin/aiworklab.js"),
        &opencode,
        &["run", "--print-logs", PROMPT],
        &[
            ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
            ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
        ],
    );
}
