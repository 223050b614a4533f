//! `GET /v1/watch?prefix=`: the change feed as Server-Sent Events.
//!
//! Each change is `event: change` with the change as JSON data; a watcher
//! that fell further behind than the engine's watch buffer gets
//! `event: lagged` with `{"missed": n}` and continues with newer changes; a
//! `: keep-alive` comment goes out every 15 s of silence.
//!
//! Invariant: the stream ends when the server stops, so graceful shutdown
//! never waits on a watcher.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;

use super::{AppState, engine_or_problem};
use crate::problem::Problem;

/// The query of `GET /v1/watch`.
#[derive(Debug, Deserialize)]
pub(crate) struct WatchQuery {
    #[serde(default)]
    prefix: String,
}

/// `GET /v1/watch?prefix=`.
pub(crate) async fn watch(
    State(shared): State<AppState>,
    query: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let engine = engine_or_problem(&shared)?;
    let Query(q) = query.map_err(|e| Problem::bad_request("invalid-query", e.body_text()))?;
    let mut stop = shared.stop.clone();
    let changes = engine
        .watch(&q.prefix)
        .map(|item| -> Result<SseEvent, Infallible> {
            Ok(match item {
                Ok(change) => SseEvent::default()
                    .event("change")
                    .json_data(&*change)
                    .unwrap_or_else(|_| SseEvent::default().event("change").data("{}")),
                Err(missed) => SseEvent::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{missed}}}")),
            })
        });
    let stream = changes.take_until(async move { stop.recv().await });
    Ok(sse(stream))
}

fn sse<S>(stream: S) -> Response
where
    S: Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
{
    Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response()
}
