//! A scripted OpenAI-compatible model server on 127.0.0.1 for the question
//! service's tests: it speaks the real chat-completions protocol (`POST
//! /v1/chat/completions`, a completion object whose first choice's message
//! holds the content) and answers each request with the next step its
//! test scripted. Every request it receives is kept (headers and body), so
//! a test can see what the appliance sent, and to whom.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Step {
    /// A completion whose message content is this text.
    Content(String),
    /// This HTTP status with an OpenAI-style error body.
    Status(u16),
    /// Wait, then answer the content.
    Slow(Duration, String),
    /// A 307 redirect to this URL (which keeps the method and body).
    Redirect(String),
}

impl Step {
    /// A completion whose content is this JSON value.
    pub fn json(v: &Value) -> Self {
        Self::Content(v.to_string())
    }
}

/// What the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub authorization: Option<String>,
    pub body: Value,
    /// The body as sent, for what parsing loses (the order of keys).
    pub raw: String,
}

#[derive(Default)]
struct Inner {
    script: Mutex<VecDeque<Step>>,
    received: Mutex<Vec<Received>>,
}

/// A running scripted server.
#[derive(Clone)]
pub struct Scripted {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Scripted {
    /// Starts a server on an ephemeral loopback port.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("scripted server");
        });
        Self { addr, inner }
    }

    /// The `base_url` the appliance is configured with.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues answers, in order.
    pub fn then(&self, steps: impl IntoIterator<Item = Step>) {
        self.inner.script.lock().expect("lock").extend(steps);
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().expect("lock").clone()
    }
}

async fn complete(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.received.lock().expect("lock").push(Received {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
        raw,
    });
    let step = inner.script.lock().expect("lock").pop_front();
    match step {
        None => (StatusCode::INTERNAL_SERVER_ERROR, "nothing scripted").into_response(),
        Some(Step::Status(code)) => {
            let status = StatusCode::from_u16(code).expect("status");
            let err = json!({"error": {"message": "scripted error", "type": "invalid_request_error", "code": code}});
            (status, Json(err)).into_response()
        }
        Some(Step::Content(text)) => Json(completion(&text)).into_response(),
        Some(Step::Redirect(to)) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, to)],
        )
            .into_response(),
        Some(Step::Slow(wait, text)) => {
            tokio::time::sleep(wait).await;
            Json(completion(&text)).into_response()
        }
    }
}

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 1_767_000_000,
        "model": "scripted",
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": content},
        }],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    })
}
