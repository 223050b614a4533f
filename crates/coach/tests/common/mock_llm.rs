//! A scripted LLM server on 127.0.0.1:0 (axum), speaking either streaming API.
//!
//! Each request pops the next [`Reply`] of the script and is recorded (path,
//! headers, JSON body) for assertions. Streamed replies are sent chunk by
//! chunk; a chunk may wait on a [`tokio::sync::Notify`] first, so a test can
//! prove the client printed earlier chunks before later ones were even sent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::Notify;

/// One piece of a streamed reply.
pub struct Chunk {
    /// Wait for this before sending.
    pub gate: Option<Arc<Notify>>,
    /// Sleep this long before sending.
    pub delay: Option<Duration>,
    /// The raw bytes (SSE lines).
    pub data: String,
}

impl Chunk {
    pub fn now(data: impl Into<String>) -> Chunk {
        Chunk {
            gate: None,
            delay: None,
            data: data.into(),
        }
    }
    pub fn after(gate: Arc<Notify>, data: impl Into<String>) -> Chunk {
        Chunk {
            gate: Some(gate),
            delay: None,
            data: data.into(),
        }
    }
}

/// What the server does for one request.
pub enum Reply {
    /// 200 with a `text/event-stream` body sent chunk by chunk.
    Stream(Vec<Chunk>),
    /// 200, then the body stalls forever after these chunks.
    Stall(Vec<Chunk>),
    /// An error status.
    Status(u16),
}

/// A recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<VecDeque<Reply>>>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

/// The running mock.
pub struct MockLlm {
    pub url: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl MockLlm {
    /// Starts a server that answers requests with `script`, in order.
    pub async fn start(script: Vec<Reply>) -> MockLlm {
        let shared = Shared {
            script: Arc::new(Mutex::new(script.into())),
            recorded: Arc::new(Mutex::new(Vec::new())),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .route("/v1/messages", post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockLlm {
            url: format!("http://{addr}"),
            recorded: shared.recorded,
            _task: task,
        }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

async fn handle(
    State(shared): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if let Ok(mut r) = shared.recorded.lock() {
        r.push(Recorded {
            path: uri.path().to_string(),
            headers,
            body,
        });
    }
    let reply = shared.script.lock().ok().and_then(|mut s| s.pop_front());
    match reply {
        None => (StatusCode::INTERNAL_SERVER_ERROR, "script exhausted").into_response(),
        Some(Reply::Status(code)) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "mock error",
        )
            .into_response(),
        Some(Reply::Stream(chunks)) => sse(chunks, false),
        Some(Reply::Stall(chunks)) => sse(chunks, true),
    }
}

fn sse(chunks: Vec<Chunk>, stall: bool) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(16);
    tokio::spawn(async move {
        for c in chunks {
            if let Some(g) = c.gate {
                g.notified().await;
            }
            if let Some(d) = c.delay {
                tokio::time::sleep(d).await;
            }
            if tx.send(Ok(c.data)).await.is_err() {
                return;
            }
        }
        if stall {
            // Keep the body open (the sender alive) far longer than any test's timeout.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// OpenAI-compatible SSE lines for these text pieces (one chunk each), then `[DONE]`.
pub fn openai_chunks(pieces: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = pieces
        .iter()
        .map(|p| {
            format!(
                "data: {}\n\n",
                serde_json::json!({"choices":[{"index":0,"delta":{"content":p}}]})
            )
        })
        .collect();
    out.push("data: [DONE]\n\n".into());
    out
}

/// Anthropic Messages stream events for these text pieces, then `message_stop`.
pub fn anthropic_chunks(pieces: &[&str]) -> Vec<String> {
    let mut out = vec![
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"role\":\"assistant\"}}\n\n".to_string(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_string(),
    ];
    for p in pieces {
        out.push(format!(
            "event: content_block_delta\ndata: {}\n\n",
            serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":p}})
        ));
    }
    out.push(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n".into(),
    );
    out.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".into());
    out
}

/// All chunks sent at once.
pub fn immediate(lines: Vec<String>) -> Vec<Chunk> {
    lines.into_iter().map(Chunk::now).collect()
}

/// A writer that records every write with its arrival time, and fires a
/// [`Notify`] once the text written so far contains a trigger.
#[derive(Clone)]
pub struct RecordingWriter {
    pub writes: Arc<Mutex<Vec<(std::time::Instant, String)>>>,
    trigger: Option<(String, Arc<Notify>)>,
}

impl RecordingWriter {
    pub fn new() -> RecordingWriter {
        RecordingWriter {
            writes: Arc::new(Mutex::new(Vec::new())),
            trigger: None,
        }
    }
    pub fn with_trigger(text: &str, notify: Arc<Notify>) -> RecordingWriter {
        RecordingWriter {
            writes: Arc::new(Mutex::new(Vec::new())),
            trigger: Some((text.to_string(), notify)),
        }
    }
    pub fn text(&self) -> String {
        self.writes
            .lock()
            .map(|w| w.iter().map(|(_, s)| s.as_str()).collect())
            .unwrap_or_default()
    }
    pub fn count(&self) -> usize {
        self.writes.lock().map(|w| w.len()).unwrap_or(0)
    }
}

impl std::io::Write for RecordingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let s = String::from_utf8_lossy(buf).into_owned();
        let all = {
            let mut w = self
                .writes
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            w.push((std::time::Instant::now(), s));
            w.iter().map(|(_, s)| s.as_str()).collect::<String>()
        };
        if let Some((t, n)) = &self.trigger
            && all.contains(t.as_str())
        {
            n.notify_one();
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
