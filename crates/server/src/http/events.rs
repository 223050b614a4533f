//! `POST /v1/events`: one event (`application/json`), a JSON array, or NDJSON
//! (`application/x-ndjson`), with `?ack=durable|applied|none`; answers
//! `{"results":[…]}`, one result per event, in input order.
//!
//! Invariants:
//! - A body over `max_body_bytes` is refused with 413 without being
//!   buffered: a `Content-Length` over the limit is refused before any body
//!   byte is read, and a streamed (chunked) body is read only up to the limit.
//! - A bad event (a malformed NDJSON line or array element, a key over the
//!   limit, …) gets its own `rejected` result; the others are applied.
//! - Whole-request errors are problem+json: 400 (a body that is not events at
//!   all), 413, 415, 429/503 (every event overloaded), 503 (not ready, or
//!   shutting down).

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use statecraft_engine::limits::{decode_body, decode_ndjson};
use statecraft_engine::{Event, EventResult, OverflowPolicy, Rejection};

use super::{AppState, engine_or_problem, parse_ack};
use crate::observe::{Source, Stage};
use crate::problem::Problem;

/// Bodies at least this large are decoded on the blocking pool, off the
/// async workers.
const DECODE_OFFLOAD_BYTES: usize = 256 << 10;

/// The query of `POST /v1/events`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    ack: Option<String>,
}

#[derive(Serialize)]
struct Results<'a> {
    results: &'a [EventResult],
}

/// How the body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Json,
    Ndjson,
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, Problem> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyKind::Json);
    };
    let ct = ct.to_str().unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" | "" => Ok(BodyKind::Json),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/json-seq" => Ok(BodyKind::Ndjson),
        other => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!(
                "Content-Type `{other}` is not accepted; send application/json (one event or an array) or application/x-ndjson"
            ),
        )),
    }
}

pub(crate) fn too_large(limit: usize, detail: String) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Body too large",
        detail,
    )
    .with("limit_bytes", serde_json::Value::from(limit))
}

/// Reads the body up to `limit` bytes; refuses past it without reading on.
async fn read_capped(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Problem> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared
        && len > limit as u64
    {
        return Err(too_large(
            limit,
            format!("the body is {len} bytes; the limit is {limit} bytes"),
        ));
    }
    let mut buf = BytesMut::with_capacity(declared.map_or(8 << 10, |l| l as usize));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Problem::bad_request("body-read-failed", format!("reading the body failed: {e}"))
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(
                limit,
                format!("the body is over the limit of {limit} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn decode(
    kind: BodyKind,
    body: &[u8],
    limits: &statecraft_engine::Limits,
) -> Result<Vec<Result<Event, Rejection>>, Rejection> {
    match kind {
        BodyKind::Ndjson => Ok(decode_ndjson(body, limits)),
        BodyKind::Json => decode_body(body, limits),
    }
}

/// `POST /v1/events`.
pub(crate) async fn post_events(
    State(shared): State<AppState>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(shared, query, headers, body).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

async fn handle(
    shared: AppState,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let engine = engine_or_problem(&shared)?;
    let Query(query) = query.map_err(|e| Problem::bad_request("invalid-query", e.body_text()))?;
    let ack = parse_ack(query.ack.as_deref(), shared.config.engine.ack)?;
    let kind = body_kind(&headers)?;
    let limit = shared.config.max_body_bytes;
    let bytes = read_capped(&headers, body, limit).await?;
    let limits = shared.config.engine.limits;
    let decode_began = Instant::now();
    let decoded = if bytes.len() >= DECODE_OFFLOAD_BYTES {
        tokio::task::spawn_blocking(move || decode(kind, &bytes, &limits))
            .await
            .map_err(|e| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    format!("decoding failed: {e}"),
                )
            })?
    } else {
        decode(kind, &bytes, &limits)
    };
    shared
        .observe
        .record(Source::Http, Stage::Decode, decode_began.elapsed());
    let items = decoded.map_err(|r| {
        Problem::bad_request(
            "invalid-body",
            format!(
                "the body is not an event or an array of events: {}",
                r.message
            ),
        )
        .with("reject_code", serde_json::Value::from(r.code.as_str()))
    })?;
    let results = match shared.cluster.get() {
        // Cluster mode: into the stream; the partition's owner applies it.
        Some(cluster) => cluster.publish(items, ack).await.map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster-unavailable",
                "Cluster unavailable",
                e.to_string(),
            )
            .retry_after(1)
        })?,
        None => {
            let admit_began = Instant::now();
            let ticket = engine
                .enqueue_decoded(items, ack)
                .await
                .map_err(|e| Problem::engine(&e))?;
            let admitted = Instant::now();
            let o = &shared.observe;
            o.record(Source::Http, Stage::Admit, admitted - admit_began);
            let results = ticket.wait().await;
            o.record(Source::Http, Stage::Ack, admitted.elapsed());
            results
        }
    };
    let all_overloaded =
        !results.is_empty() && results.iter().all(|r| matches!(r, EventResult::Overloaded));
    if all_overloaded {
        let problem = if engine.config().overflow == OverflowPolicy::Block {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Overloaded",
                "the queues stayed full for the whole block timeout; no event was admitted",
            )
        } else {
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                "Overloaded",
                "the queues are full; no event was admitted",
            )
        };
        return Err(problem.retry_after(1).with(
            "results",
            serde_json::to_value(&results).unwrap_or_default(),
        ));
    }
    let json = serde_json::to_vec(&Results { results: &results }).unwrap_or_default();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json,
    )
        .into_response())
}
