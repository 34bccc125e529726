//! The model client: OpenAI-compatible chat completions with structured
//! output (`response_format` with a JSON schema, which llama.cpp's server,
//! vLLM and Ollama accept), against the `[model]` the customer runs inside
//! its network. A small `reqwest` client rather than a client crate, so it
//! is built by [`Egress::client_builder`] and keeps to the air-gapped rule
//! on every connection (`docs/dependencies.md`).
//!
//! Calls are bounded (a semaphore of `max_concurrency`, and `timeout_secs`
//! for the whole call, waiting for a slot included) and counted in
//! `/metrics` by purpose and outcome. Prompts and answers are never
//! logged, and no error carries them: a refused answer is described by its
//! shape only. The API key is sent only to `base_url`, as a bearer token
//! marked sensitive, and appears in no message (P6). [`generate`] and
//! [`grade`] hold the prompts, schemas and strict parsers.

pub mod generate;
pub mod grade;
pub mod schema;

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;

pub use schema::Schema;

use crate::config::ModelSettings;
use crate::egress::{Egress, Refused};
use crate::metrics::{Metrics, ModelCallLabels, PurposeLabels};

/// Largest response body read from the model server.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// What a call is for; a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Writing a check for a concept.
    Generate,
    /// Grading a free-text answer.
    Grade,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generate => "generate",
            Self::Grade => "grade",
        }
    }
}

/// Why a call gave nothing usable. Messages name the setting to fix and
/// never carry the key, a prompt or an answer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "the model server did not answer within {0} s; raise model.timeout_secs or model.max_concurrency, or use a faster model"
    )]
    Timeout(u64),
    #[error(
        "the model server at {url} cannot be reached ({reason}); check that it is running and that model.base_url points at it"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "the model server refused the API key (HTTP {status}); put the key it expects in {file} (model.api_key_file) and restart"
    )]
    Unauthorized { status: u16, file: String },
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("the model server answered HTTP {0}; its own log says why")]
    Status(u16),
    #[error("the model's answer was refused: {0}")]
    BadAnswer(String),
}

impl ModelError {
    /// The metric label of this failure.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Unreachable { .. } => "unreachable",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Refused(_) => "refused",
            Self::Status(_) => "http_error",
            Self::BadAnswer(_) => "bad_answer",
        }
    }
}

/// One structured-output request: the messages and the schema the answer
/// must follow.
#[derive(Debug, Clone)]
pub struct Request {
    pub purpose: Purpose,
    pub system: String,
    pub user: String,
    /// The schema's name (`[a-zA-Z0-9_-]`), as OpenAI's API requires.
    pub schema_name: &'static str,
    /// The answer's schema; `max_tokens` is derived from it
    /// ([`Schema::max_tokens`]).
    pub schema: Schema,
}

impl Request {
    /// The JSON body [`ModelClient`] sends to `model` for this request
    /// (`POST {base_url}/chat/completions`): the same struct, written by
    /// `serde_json` as `reqwest`'s `json` writes it. For calling the same
    /// model server directly beside the appliance, as the question
    /// service's benchmark does (`benches/checks.rs`, which checks that
    /// the bytes match what a model server receives from the appliance).
    ///
    /// # Errors
    /// When `serde_json` cannot write the body (it holds only strings,
    /// numbers and the schema; not seen in practice).
    pub fn body(&self, model: &str) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&Body::new(model, self))
    }
}

/// The request body. A struct, not a `Value`: a `Value`'s maps are sorted,
/// which would undo the schema's property order (see [`schema`]).
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: [Message<'a>; 2],
    response_format: ResponseFormat<'a>,
    max_tokens: u32,
    temperature: f64,
    stream: bool,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchema<'a>,
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'static str,
    strict: bool,
    schema: &'a Schema,
}

impl<'a> Body<'a> {
    fn new(model: &'a str, req: &'a Request) -> Self {
        Self {
            model,
            messages: [
                Message {
                    role: "system",
                    content: &req.system,
                },
                Message {
                    role: "user",
                    content: &req.user,
                },
            ],
            response_format: ResponseFormat {
                kind: "json_schema",
                json_schema: JsonSchema {
                    name: req.schema_name,
                    strict: true,
                    schema: &req.schema,
                },
            },
            max_tokens: req.schema.max_tokens(),
            temperature: 0.7,
            stream: false,
        }
    }
}

/// The client of the configured model. Cheap to share behind an `Arc`.
pub struct ModelClient {
    http: reqwest::Client,
    egress: Egress,
    settings: ModelSettings,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ModelClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ModelClient {
    /// A client of `settings` that keeps to `egress`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (a CA file that `reqwest`
    /// cannot use; it was parsed at load, so in practice never).
    pub fn new(
        settings: ModelSettings,
        egress: &Egress,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let mut builder = egress
            .client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout);
        if let Some(pem) = &settings.tls_ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Self {
            http: builder.build()?,
            egress: egress.clone(),
            slots: Arc::new(Semaphore::new(settings.max_concurrency)),
            settings,
            metrics,
        })
    }

    /// The configured model's name (recorded with what it generates).
    pub fn model_name(&self) -> &str {
        &self.settings.model
    }

    /// How long a request for a check waits for the model to write one
    /// (`model.generate_wait_secs`).
    pub fn generate_wait(&self) -> std::time::Duration {
        self.settings.generate_wait
    }

    /// Sends `req` and answers what `parse` makes of the JSON object the
    /// model wrote (a parser that validates strictly, answering
    /// [`ModelError::BadAnswer`] otherwise). Counted in `/metrics` by the
    /// final outcome; a failure is logged with its outcome, never with
    /// content.
    ///
    /// # Errors
    /// A [`ModelError`] for each way a call fails.
    pub async fn complete<T>(
        &self,
        req: &Request,
        parse: impl FnOnce(Value) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        let started = Instant::now();
        let limit = self.settings.timeout;
        let result = match tokio::time::timeout(limit, self.call(req)).await {
            Ok(r) => r.and_then(parse),
            Err(_) => Err(ModelError::Timeout(limit.as_secs())),
        };
        let purpose = req.purpose.as_str();
        let outcome = result.as_ref().map_or_else(ModelError::outcome, |_| "ok");
        self.metrics
            .model
            .calls
            .get_or_create(&ModelCallLabels { purpose, outcome })
            .inc();
        self.metrics
            .model
            .latency
            .get_or_create(&PurposeLabels { purpose })
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            tracing::warn!(purpose, outcome, error = %e, "model call failed");
        }
        result
    }

    async fn call(&self, req: &Request) -> Result<Value, ModelError> {
        let url = self.settings.completions_url();
        self.egress.check_url(&url)?;
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ModelError::Status(503))?;
        let body = Body::new(&self.settings.model, req);
        let mut builder = self.http.post(url.clone()).json(&body);
        if let Some(key) = &self.settings.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        let mut res = builder.send().await.map_err(|e| self.transport(&url, &e))?;
        let status = res.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ModelError::Unauthorized {
                status: status.as_u16(),
                file: self.settings.api_key_file.as_ref().map_or_else(
                    || "a file named by model.api_key_file (none is set)".to_string(),
                    |p| p.display().to_string(),
                ),
            });
        }
        if !status.is_success() {
            return Err(ModelError::Status(status.as_u16()));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| self.transport(&url, &e))? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(ModelError::BadAnswer(format!(
                    "the response is larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        content_of(&bytes)
    }

    fn transport(&self, url: &url::Url, e: &reqwest::Error) -> ModelError {
        if e.is_timeout() {
            return ModelError::Timeout(self.settings.timeout.as_secs());
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut reason = String::new();
        while let Some(s) = source {
            if let Some(refused) = s.downcast_ref::<Refused>() {
                return ModelError::Refused(refused.clone());
            }
            reason = s.to_string();
            source = s.source();
        }
        let mut shown = url.clone();
        shown.set_path("");
        ModelError::Unreachable {
            url: shown.to_string(),
            reason,
        }
    }
}

/// The JSON object in a chat completion's first choice. Messages describe
/// where parsing stopped, never the text (it may echo an engineer's answer).
fn content_of(bytes: &[u8]) -> Result<Value, ModelError> {
    let shape = |what: &str| ModelError::BadAnswer(what.to_string());
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|_| shape("the response is not a JSON chat completion"))?;
    let choice = doc
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| shape("the response has no choices"))?;
    if choice.get("finish_reason").and_then(Value::as_str) == Some("length") {
        return Err(shape("the answer was cut off at max_tokens"));
    }
    let content = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| shape("the first choice has no message content"))?;
    let value: Value = serde_json::from_str(content).map_err(|e| {
        ModelError::BadAnswer(format!(
            "the content is not JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(shape("the content is JSON but not an object"))
    }
}

/// A serde error described by its position only (its message may quote
/// the model's text).
pub(crate) fn shape_error(e: &serde_json::Error) -> String {
    format!(
        "it does not follow the schema ({:?} error at line {} column {})",
        e.classify(),
        e.line(),
        e.column()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn completion(content: &str, finish: &str) -> Vec<u8> {
        json!({
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content}}]
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn the_first_choice_content_is_parsed_as_an_object() {
        let v = content_of(&completion(r#"{"a": 1}"#, "stop")).expect("object");
        assert_eq!(v["a"], 1);
    }

    #[test]
    fn refusals_describe_the_shape_never_the_text() {
        for (bytes, why) in [
            (b"not json".to_vec(), "not a JSON chat completion"),
            (b"{}".to_vec(), "no choices"),
            (completion("SECRET-ish text", "stop"), "not JSON"),
            (completion("[1]", "stop"), "not an object"),
            (completion(r#"{"a": "SECRET"#, "length"), "cut off"),
        ] {
            let e = content_of(&bytes).expect_err("refused").to_string();
            assert!(e.contains(why), "{e}");
            assert!(!e.contains("SECRET"), "{e}");
            assert_eq!(
                content_of(&bytes).expect_err("refused").outcome(),
                "bad_answer"
            );
        }
    }
}
