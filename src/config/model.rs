//! The `[model]` section checked: the OpenAI-compatible server the
//! question service asks for checks and grades (`crate::model`). The API
//! key is read from `api_key_file` here, once, and held as a [`Secret`]:
//! it is never a configuration value, so `config show`, errors and `Debug`
//! have nothing to redact but the file's path.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawModel;
use super::settings::{Checker, Secret, is_local_host, read_secret_file};

/// The model, checked. `Debug` shows the key as `<redacted>`.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// The API root with `/v1`, ending in `/` so that joining
    /// `chat/completions` keeps its path.
    pub base_url: url::Url,
    pub model: String,
    /// `None` for a server that takes no key.
    pub api_key: Option<Secret>,
    /// Where the key was read from, for messages (never the key).
    pub api_key_file: Option<PathBuf>,
    pub timeout: Duration,
    /// How long a request for a check waits for a new one (at most
    /// `timeout`).
    pub generate_wait: Duration,
    pub max_concurrency: usize,
    /// PEM certificates trusted besides the system's roots, as read.
    pub tls_ca_pem: Option<Vec<u8>>,
}

impl ModelSettings {
    /// The chat-completions endpoint: `{base_url}/chat/completions`.
    pub fn completions_url(&self) -> url::Url {
        self.base_url
            .join("chat/completions")
            .expect("a base URL ending in / joins a relative path")
    }
}

const URL_FIX: &str = "write the API root with its /v1, e.g. \"http://127.0.0.1:8081/v1\" (a server on this host) or \"https://models.internal.example/v1\"; plain http only to loopback";

/// The part of `server.request_timeout_secs` that a model call may not
/// take: after a model timeout, `GET /api/v1/checks/next` still has to draw
/// from the bank (a database read, which may itself wait up to
/// `storage.busy_timeout_ms`, 5 s by default) before the request timeout
/// answers 408. So `model.timeout_secs` must be at most the request timeout
/// minus this; the defaults (20 and 30) leave 10.
pub const FALLBACK_MARGIN_SECS: u64 = 5;

/// The default `model.timeout_secs`: below the default request timeout by
/// more than [`FALLBACK_MARGIN_SECS`].
pub const DEFAULT_TIMEOUT_SECS: u64 = 20;

/// The default `model.generate_wait_secs` (or `model.timeout_secs` if
/// that is shorter): an engineer waiting at a prompt gets a check from the
/// bank after this, and the model's check, once written, is kept for the
/// next one.
pub const DEFAULT_GENERATE_WAIT_SECS: u64 = 10;

/// Checks the section against `request_timeout_secs` (the server's);
/// `None` (with the problems recorded) when it is unusable.
pub(super) fn model(
    c: &mut Checker<'_>,
    raw: &RawModel,
    request_timeout_secs: u64,
) -> Option<ModelSettings> {
    let base_url = base_url(c, raw.base_url.trim());
    let name = raw.model.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        c.fail(
            "model.model",
            "must be 1 to 200 printable characters",
            "give the model name the server serves, e.g. \"smollm2-135m-instruct\" (llama.cpp accepts any name; vLLM and Ollama want the one they list at /v1/models)",
        );
    }
    let api_key_file =
        (!raw.api_key_file.trim().is_empty()).then(|| PathBuf::from(raw.api_key_file.trim()));
    let api_key = match &api_key_file {
        None => None,
        Some(path) => match read_secret_file(path) {
            Ok(key) => Some(key),
            Err((problem, fix)) => {
                c.fail("model.api_key_file", problem, fix);
                None
            }
        },
    };
    let timeout = c.range("model.timeout_secs", raw.timeout_secs, 1, 600);
    // A call still running when the request timeout ends would answer 408
    // instead of falling back to the bank: refuse the pair of settings.
    if (1..=600).contains(&timeout)
        && timeout.saturating_add(FALLBACK_MARGIN_SECS) > request_timeout_secs
    {
        let most = request_timeout_secs.saturating_sub(FALLBACK_MARGIN_SECS);
        let fix = if most >= 1 {
            format!(
                "set model.timeout_secs to at most {most}, or raise server.request_timeout_secs to at least {}",
                timeout + FALLBACK_MARGIN_SECS
            )
        } else {
            format!(
                "raise server.request_timeout_secs to at least {}",
                timeout + FALLBACK_MARGIN_SECS
            )
        };
        c.fail(
            "model.timeout_secs",
            format!(
                "{timeout} s leaves less than {FALLBACK_MARGIN_SECS} s of server.request_timeout_secs ({request_timeout_secs} s) to answer from the question bank when the model is slow; the request would end in 408 instead"
            ),
            fix,
        );
    }
    let generate_wait = match raw.generate_wait_secs {
        Some(w) => c.range("model.generate_wait_secs", w, 1, 600),
        None => DEFAULT_GENERATE_WAIT_SECS.min(timeout),
    };
    if (1..=600).contains(&generate_wait) && generate_wait > timeout {
        c.fail(
            "model.generate_wait_secs",
            format!(
                "{generate_wait} s is longer than model.timeout_secs ({timeout} s), after which the model's call has ended anyway"
            ),
            format!("set it to at most {timeout}, or raise model.timeout_secs"),
        );
    }
    let max_concurrency = if raw.max_concurrency == 0 {
        c.fail(
            "model.max_concurrency",
            "0 would let no call through",
            "allow from 1 to 256 calls at a time (the default is 2), or remove [model] to run without a model",
        );
        1
    } else {
        c.range("model.max_concurrency", raw.max_concurrency, 1, 256)
    };
    let tls_ca_pem = tls_ca(c, raw.tls_ca_file.trim());
    if api_key_file.is_some() && api_key.is_none() {
        return None;
    }
    Some(ModelSettings {
        base_url: base_url?,
        model: name.to_string(),
        api_key,
        api_key_file,
        timeout: Duration::from_secs(timeout.max(1)),
        generate_wait: Duration::from_secs(generate_wait.clamp(1, timeout.max(1))),
        max_concurrency: usize::try_from(max_concurrency.max(1)).unwrap_or(1),
        tls_ca_pem,
    })
}

fn base_url(c: &mut Checker<'_>, raw: &str) -> Option<url::Url> {
    if raw.is_empty() {
        c.fail("model.base_url", "is empty", URL_FIX);
        return None;
    }
    let mut url = match url::Url::parse(raw) {
        Ok(u) => u,
        Err(e) => {
            c.fail(
                "model.base_url",
                format!("`{raw}` is not a URL: {e}"),
                URL_FIX,
            );
            return None;
        }
    };
    let plain_remote = url.scheme() == "http" && !is_local_host(&url);
    if !matches!(url.scheme(), "http" | "https") || plain_remote {
        c.fail(
            "model.base_url",
            format!(
                "`{raw}` must be https (plain http only to loopback): the API key and engineers' answers travel to it"
            ),
            URL_FIX,
        );
        return None;
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        c.fail(
            "model.base_url",
            format!("`{raw}` has a query, fragment or credentials"),
            "give the API root only; the key goes in model.api_key_file",
        );
        return None;
    }
    if url
        .path()
        .trim_end_matches('/')
        .ends_with("chat/completions")
    {
        c.fail(
            "model.base_url",
            format!("`{raw}` names the endpoint, not the API root"),
            "leave out /chat/completions: the appliance adds it",
        );
        return None;
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Some(url)
}

fn tls_ca(c: &mut Checker<'_>, path: &str) -> Option<Vec<u8>> {
    if path.is_empty() {
        return None;
    }
    let pem = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            c.fail(
                "model.tls_ca_file",
                format!("cannot read {path}: {e}"),
                "give the path of a PEM file with the CA certificate(s) that signed the model server's certificate",
            );
            return None;
        }
    };
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Some(pem),
        _ => {
            c.fail(
                "model.tls_ca_file",
                format!("{path} holds no PEM certificate"),
                "give a file with -----BEGIN CERTIFICATE----- blocks",
            );
            None
        }
    }
}
