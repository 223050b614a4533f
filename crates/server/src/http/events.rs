//! `POST /v1/events`: one event (`application/json`), a JSON array, or NDJSON
//! (`application/x-ndjson`), with `?ack=durable|applied|none`; answers
//! `{"results":[…]}`, one result per event, in input order.
//!
//! Invariants:
//! - A body over `max_body_bytes` is refused with 413 without being
//!   buffered: a `Content-Length` over the limit is refused before any body
//!   byte is read, and a streamed (chunked) body is read only up to the limit.
//! - An NDJSON body is never held whole: it is decoded line by line and
//!   admitted in sub-batches in body order, and the answer is written a
//!   slice of results at a time (byte-identical to the whole answer).
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
    let results = if kind == BodyKind::Ndjson {
        ndjson_streamed(&shared, &engine, ack, &headers, body, limit).await?
    } else {
        let bytes = read_capped(&headers, body, limit).await?;
        let items = decode_offloaded(&shared, kind, bytes).await?;
        admit_and_wait(&shared, &engine, items, ack).await?
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
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        results_body(results),
    )
        .into_response())
}

/// The answer `{"results":[…]}`, serialized a slice of results at a time as
/// the response is written (byte-identical to serializing it whole), so the
/// serialized answer is never held at once.
fn results_body(results: Vec<EventResult>) -> Body {
    const PER_CHUNK: usize = 4096;
    if results.len() <= PER_CHUNK {
        let json = serde_json::to_vec(&Results { results: &results }).unwrap_or_default();
        return Body::from(json);
    }
    let results = std::sync::Arc::new(results);
    let chunks = results.len().div_ceil(PER_CHUNK);
    let stream = futures::stream::iter(0..chunks).map(move |c| {
        let start = c * PER_CHUNK;
        let end = (start + PER_CHUNK).min(results.len());
        let mut out = Vec::with_capacity((end - start) * 40 + 16);
        out.extend_from_slice(if c == 0 { b"{\"results\":[" } else { b"," });
        for (i, r) in results[start..end].iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // EventResult serializes infallibly (plain enums, strings, numbers).
            let _ = serde_json::to_writer(&mut out, r);
        }
        if end == results.len() {
            out.extend_from_slice(b"]}");
        }
        Ok::<_, std::convert::Infallible>(Bytes::from(out))
    });
    Body::from_stream(stream)
}

/// Decodes a whole (JSON) body, on the blocking pool when it is large.
async fn decode_offloaded(
    shared: &AppState,
    kind: BodyKind,
    bytes: Bytes,
) -> Result<Vec<Result<Event, Rejection>>, Problem> {
    let limits = shared.config.engine.limits;
    let decode_began = Instant::now();
    let decoded = if bytes.len() >= DECODE_OFFLOAD_BYTES {
        tokio::task::spawn_blocking(move || decode(kind, &bytes, &limits))
            .await
            .map_err(|e| internal(format!("decoding failed: {e}")))?
    } else {
        decode(kind, &bytes, &limits)
    };
    shared
        .observe
        .record(Source::Http, Stage::Decode, decode_began.elapsed());
    decoded.map_err(|r| {
        Problem::bad_request(
            "invalid-body",
            format!(
                "the body is not an event or an array of events: {}",
                r.message
            ),
        )
        .with("reject_code", serde_json::Value::from(r.code.as_str()))
    })
}

fn internal(detail: String) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        detail,
    )
}

/// One admitted sub-batch whose results are still to come.
enum Pending {
    Engine(statecraft_engine::Ticket),
    Done(Vec<EventResult>),
}

impl Pending {
    async fn results(self) -> Vec<EventResult> {
        match self {
            Pending::Engine(t) => t.wait().await,
            Pending::Done(r) => r,
        }
    }
}

/// Admits `items` (into the cluster's stream, or the engine) without waiting
/// for their results.
async fn admit(
    shared: &AppState,
    engine: &statecraft_engine::Engine,
    items: Vec<Result<Event, Rejection>>,
    ack: statecraft_engine::AckMode,
) -> Result<Pending, Problem> {
    match shared.cluster.get() {
        // Cluster mode: into the stream; the partition's owner applies it.
        Some(cluster) => cluster
            .publish(items, ack)
            .await
            .map(Pending::Done)
            .map_err(|e| {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cluster-unavailable",
                    "Cluster unavailable",
                    e.to_string(),
                )
                .retry_after(1)
            }),
        None => {
            let admit_began = Instant::now();
            let ticket = engine
                .enqueue_decoded(items, ack)
                .await
                .map_err(|e| Problem::engine(&e))?;
            shared
                .observe
                .record(Source::Http, Stage::Admit, admit_began.elapsed());
            Ok(Pending::Engine(ticket))
        }
    }
}

async fn admit_and_wait(
    shared: &AppState,
    engine: &statecraft_engine::Engine,
    items: Vec<Result<Event, Rejection>>,
    ack: statecraft_engine::AckMode,
) -> Result<Vec<EventResult>, Problem> {
    let pending = admit(shared, engine, items, ack).await?;
    let admitted = Instant::now();
    let results = pending.results().await;
    shared
        .observe
        .record(Source::Http, Stage::Ack, admitted.elapsed());
    Ok(results)
}

/// NDJSON bytes decoded and admitted as one sub-batch (cut at a line end).
const NDJSON_SUB_BATCH_BYTES: usize = 64 << 10;

/// Sub-batches admitted and not yet answered, per request: the next one is
/// decoded while these are applied, and no more are held.
const NDJSON_IN_FLIGHT: usize = 2;

/// Reads an NDJSON body as a stream: decodes it line by line in sub-batches
/// of about [`NDJSON_SUB_BATCH_BYTES`], admits each as it fills (in order, so
/// per-key order is the body's), and keeps only the compact results. The
/// whole body and its decoded events are never held.
///
/// A `Content-Length` over `limit` is refused (413) before any byte is read;
/// a chunked body that passes `limit` is refused (413) when it does, and the
/// sub-batches admitted before that point stay admitted (their count is in
/// the problem's `admitted_events`).
async fn ndjson_streamed(
    shared: &AppState,
    engine: &statecraft_engine::Engine,
    ack: statecraft_engine::AckMode,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Vec<EventResult>, Problem> {
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
    let limits = shared.config.engine.limits;
    let mut stream = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::new();
    let mut total = 0usize;
    let mut admitted_events = 0usize;
    let mut in_flight: std::collections::VecDeque<Pending> = std::collections::VecDeque::new();
    let mut results: Vec<EventResult> = Vec::new();
    let mut decode_time = std::time::Duration::ZERO;
    let mut ended = false;
    let mut any_admitted = false;
    while !ended {
        match stream.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(|e| {
                    Problem::bad_request(
                        "body-read-failed",
                        format!("reading the body failed: {e}"),
                    )
                })?;
                total += chunk.len();
                if total > limit {
                    return Err(too_large(
                        limit,
                        format!("the body is over the limit of {limit} bytes"),
                    )
                    .with("admitted_events", serde_json::Value::from(admitted_events)));
                }
                pending.extend_from_slice(&chunk);
                if pending.len() < NDJSON_SUB_BATCH_BYTES {
                    continue;
                }
            }
            None => ended = true,
        }
        // Cut at the last complete line (all of it at the end of the body).
        let cut = if ended {
            pending.len()
        } else {
            match pending.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                // One line longer than a sub-batch: keep reading it.
                None => continue,
            }
        };
        if cut == 0 && any_admitted {
            break;
        }
        let rest = pending.split_off(cut);
        let head = std::mem::replace(&mut pending, rest);
        let began = Instant::now();
        let items = if head.len() >= DECODE_OFFLOAD_BYTES {
            tokio::task::spawn_blocking(move || decode_ndjson(&head, &limits))
                .await
                .map_err(|e| internal(format!("decoding failed: {e}")))?
        } else {
            decode_ndjson(&head, &limits)
        };
        decode_time += began.elapsed();
        admitted_events += items.len();
        in_flight.push_back(admit(shared, engine, items, ack).await?);
        any_admitted = true;
        while in_flight.len() > NDJSON_IN_FLIGHT {
            if let Some(p) = in_flight.pop_front() {
                results.extend(p.results().await);
            }
        }
    }
    let admitted = Instant::now();
    for p in in_flight {
        results.extend(p.results().await);
    }
    shared
        .observe
        .record(Source::Http, Stage::Ack, admitted.elapsed());
    shared
        .observe
        .record(Source::Http, Stage::Decode, decode_time);
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed answer is byte-identical to serializing it whole.
    #[tokio::test]
    async fn a_streamed_answer_is_the_whole_answer_byte_for_byte() {
        for n in [0usize, 1, 4096, 4097, 10_000] {
            let results: Vec<EventResult> = (0..n)
                .map(|i| match i % 3 {
                    0 => EventResult::Applied { version: i as u64 },
                    1 => EventResult::rejected(
                        statecraft_engine::RejectCode::InvalidJson,
                        "bad \"line\"",
                    ),
                    _ => EventResult::Overloaded,
                })
                .collect();
            let whole = serde_json::to_vec(&Results { results: &results }).expect("json");
            let streamed = axum::body::to_bytes(results_body(results), usize::MAX)
                .await
                .expect("body");
            assert_eq!(streamed.as_ref(), whole.as_slice(), "{n} results");
        }
    }
}
