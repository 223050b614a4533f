//! The key routes: `GET /v1/state/{key}`, `DELETE /v1/state/{key}` and the
//! paged scan `GET /v1/state?prefix=&after=&limit=`.
//!
//! Keys may contain `/` (the route is a wildcard) and any UTF-8, which the
//! client percent-encodes; the path is percent-decoded before lookup.
//!
//! Invariant: a scan page holds at most `limit` items in key (byte) order,
//! and `next` is non-null exactly when more keys matched: passing it back as
//! `after` continues right after the last item.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use statecraft_engine::{Event, EventResult, Op, StateRecord};

use super::{AppState, engine_or_problem, parse_ack};
use crate::problem::Problem;

/// Default page size of a scan.
pub(crate) const SCAN_DEFAULT_LIMIT: usize = 100;
/// Largest page size of a scan.
pub(crate) const SCAN_MAX_LIMIT: usize = 1000;

fn key_from(
    path: Result<Path<String>, PathRejection>,
    max_key_bytes: usize,
) -> Result<String, Problem> {
    let Path(key) = path.map_err(|e| Problem::bad_request("invalid-key", e.body_text()))?;
    if key.is_empty() {
        return Err(Problem::bad_request("invalid-key", "the key is empty"));
    }
    if key.len() > max_key_bytes {
        return Err(Problem::bad_request(
            "invalid-key",
            format!(
                "the key is {} bytes; the limit is {max_key_bytes} bytes",
                key.len()
            ),
        ));
    }
    Ok(key)
}

/// `GET /v1/state/{key}`: the key's state record, or 404.
pub(crate) async fn get_key(
    State(shared): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<StateRecord>, Problem> {
    let engine = engine_or_problem(&shared)?;
    let key = key_from(path, shared.config.engine.limits.max_key_bytes)?;
    // Cluster mode: the key's owner answers (this node, or proxied to the
    // owner over NATS request/reply — not a redirect; docs/scale-out.md).
    let read = match shared.cluster.get() {
        Some(cluster) => cluster.get(&key).await.map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "owner-unavailable",
                "The key's owner is unavailable",
                e.to_string(),
            )
            .retry_after(1)
        })?,
        None => engine.get(&key).await.map_err(|e| Problem::engine(&e))?,
    };
    match Ok::<_, statecraft_engine::EngineError>(read) {
        Ok(Some(record)) => Ok(axum::Json(record)),
        Ok(None) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "key-not-found",
            "Key not found",
            format!("no live key `{key}`"),
        )
        .with("key", serde_json::Value::from(key))),
        Err(e) => Err(Problem::engine(&e)),
    }
}

/// The query of `DELETE /v1/state/{key}`.
#[derive(Debug, Deserialize)]
pub(crate) struct DeleteQuery {
    ack: Option<String>,
    if_version: Option<u64>,
}

/// `DELETE /v1/state/{key}`: submits a `delete` event (optionally with
/// `if_version`); answers its result.
pub(crate) async fn delete_key(
    State(shared): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let engine = engine_or_problem(&shared)?;
    let key = key_from(path, shared.config.engine.limits.max_key_bytes)?;
    let Query(query) = query.map_err(|e| Problem::bad_request("invalid-query", e.body_text()))?;
    let ack = parse_ack(query.ack.as_deref(), shared.config.engine.ack)?;
    let mut event = Event::new(key, Op::Delete);
    event.if_version = query.if_version;
    let results = match shared.cluster.get() {
        Some(cluster) => cluster.publish(vec![Ok(event)], ack).await.map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster-unavailable",
                "Cluster unavailable",
                e.to_string(),
            )
            .retry_after(1)
        })?,
        None => engine
            .submit_with(vec![event], ack)
            .await
            .map_err(|e| Problem::engine(&e))?,
    };
    let result = results
        .into_iter()
        .next()
        .unwrap_or(EventResult::Overloaded);
    let as_json = serde_json::to_value(&result).unwrap_or_default();
    match &result {
        EventResult::Conflict { .. } => Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "Version conflict",
            "if_version did not match the key's current version",
        )
        .with("result", as_json)),
        EventResult::Rejected { message, .. } => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rejected",
            "Rejected",
            message.clone(),
        )
        .with("result", as_json)),
        EventResult::Overloaded => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Overloaded",
            "the key's queue is full",
        )
        .retry_after(1)
        .with("result", as_json)),
        _ => Ok(axum::Json(as_json).into_response()),
    }
}

/// The query of `GET /v1/state`.
#[derive(Debug, Deserialize)]
pub(crate) struct ScanQuery {
    #[serde(default)]
    prefix: String,
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct Page {
    items: Vec<StateRecord>,
    next: Option<String>,
}

/// `GET /v1/state?prefix=&after=&limit=`: one page of live keys.
pub(crate) async fn scan(
    State(shared): State<AppState>,
    query: Result<Query<ScanQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let engine = engine_or_problem(&shared)?;
    let Query(q) = query.map_err(|e| Problem::bad_request("invalid-query", e.body_text()))?;
    let limit = q.limit.unwrap_or(SCAN_DEFAULT_LIMIT);
    if limit == 0 || limit > SCAN_MAX_LIMIT {
        return Err(Problem::bad_request(
            "invalid-query",
            format!("limit={limit} is outside 1..={SCAN_MAX_LIMIT}"),
        ));
    }
    // One more than asked: tells whether a next page exists.
    let mut items = engine
        .scan(&q.prefix, q.after.as_deref(), limit + 1)
        .await
        .map_err(|e| Problem::engine(&e))?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|r| r.key.clone())
    } else {
        None
    };
    Ok(axum::Json(Page { items, next }).into_response())
}
