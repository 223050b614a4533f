//! `GET /v1/watch?prefix=`: the change feed as Server-Sent Events.
//!
//! Each change is `event: change` with the change as JSON data and an `id:`
//! (`{epoch}-{seq}`, see `watch_log`); a client that reconnects with
//! `Last-Event-ID` gets the changes it missed (from the last
//! `watch_log::WINDOW` changes) before the live ones, or `event: reset` when
//! they cannot be known; a watcher that fell behind gets `event: lagged`
//! with `{"missed": n}` and continues with newer changes (reconnecting with
//! its last id recovers them while they are in the window); a
//! `: keep-alive` comment goes out every 15 s of silence.
//!
//! Invariant: the stream ends when the server stops, so graceful shutdown
//! never waits on a watcher.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;

use std::sync::Arc;

use super::watch_log::{Numbered, Start};
use super::{AppState, engine_or_problem};
use crate::problem::Problem;

/// The query of `GET /v1/watch`.
#[derive(Debug, Deserialize)]
pub(crate) struct WatchQuery {
    #[serde(default)]
    prefix: String,
}

/// `GET /v1/watch?prefix=` (with `Last-Event-ID` to resume).
pub(crate) async fn watch(
    State(shared): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let engine = engine_or_problem(&shared)?;
    let Query(q) = query.map_err(|e| Problem::bad_request("invalid-query", e.body_text()))?;
    let mut stop = shared.stop.clone();
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    let log = Arc::clone(&shared.watch_log);
    let prefix = q.prefix;
    let attached = log.attach(&engine, &shared.stop, last_id, &prefix);
    let change = {
        let log = Arc::clone(&log);
        move |(seq, change): Numbered| -> SseEvent {
            SseEvent::default()
                .event("change")
                .id(log.id(seq))
                .json_data(&*change)
                .unwrap_or_else(|_| SseEvent::default().event("change").data("{}"))
        }
    };
    let lagged = |missed: u64| {
        SseEvent::default()
            .event("lagged")
            .data(format!("{{\"missed\":{missed}}}"))
    };
    let (head, replay) = match attached.start {
        Start::Now => (None, Vec::new()),
        Start::Resume(replay) => (None, replay),
        Start::Lagged(missed, replay) => (Some(lagged(missed)), replay),
        Start::Reset(why) => (
            Some(
                SseEvent::default()
                    .event("reset")
                    .data(serde_json::json!({ "reason": why }).to_string()),
            ),
            Vec::new(),
        ),
    };
    // Live changes after the replay: none twice, none skipped.
    let mut last = replay.last().map_or(0, |(s, _)| *s);
    let matches = move |c: &Numbered| c.1.key.starts_with(&prefix);
    let replay: Vec<SseEvent> = replay
        .into_iter()
        .filter(|c| matches(c))
        .map(change.clone())
        .collect();
    let guard = attached.guard;
    // Only changes matching the prefix are routed here; the ones dropped
    // while the buffer was full are reported once it has drained.
    let live = futures::stream::unfold(attached.live, |mut live| async move {
        let c = live.rx.recv().await?;
        let missed = if live.rx.is_empty() {
            live.missed.swap(0, std::sync::atomic::Ordering::Relaxed)
        } else {
            0
        };
        Some(((c, missed), live))
    })
    .flat_map(move |(c, missed)| {
        let mut out = Vec::with_capacity(2);
        if c.0 > last {
            last = c.0;
            if matches(&c) {
                out.push(change(c));
            }
        }
        if missed > 0 {
            out.push(lagged(missed));
        }
        futures::stream::iter(out)
    });
    let events = futures::stream::iter(head.into_iter().chain(replay))
        .chain(live)
        .map(move |e| {
            // The guard lives as long as the stream: it counts this watcher.
            let _ = &guard;
            Ok::<_, Infallible>(e)
        });
    let stream = events.take_until(async move { stop.recv().await });
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
