//! Placeholders for the observability routes, kept apart so that they can
//! be replaced whole: `GET /metrics` (a minimal Prometheus text of the
//! engine's and the front ends' counters) and `GET /` (a minimal page
//! linking `/v1/stats`). The live dashboard replaces both.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::http::AppState;

/// The routes this module owns.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(index))
}

async fn metrics(State(shared): State<AppState>) -> Response {
    let mut out = String::with_capacity(4096);
    let server = shared.counters.snapshot();
    let _ = writeln!(out, "# TYPE statecraft_up gauge");
    let _ = writeln!(out, "statecraft_up {}", u8::from(shared.engine().is_some()));
    let _ = writeln!(out, "# TYPE statecraft_uptime_seconds gauge");
    let _ = writeln!(
        out,
        "statecraft_uptime_seconds {:.3}",
        shared.started.elapsed().as_secs_f64()
    );
    let _ = writeln!(out, "# TYPE statecraft_http_requests_total counter");
    let _ = writeln!(
        out,
        "statecraft_http_requests_total {}",
        server.http_requests
    );
    let _ = writeln!(out, "# TYPE statecraft_tcp_connections_open gauge");
    let _ = writeln!(out, "statecraft_tcp_connections_open {}", server.tcp_open);
    let _ = writeln!(out, "# TYPE statecraft_tcp_frames_total counter");
    let _ = writeln!(out, "statecraft_tcp_frames_total {}", server.tcp_frames);
    if let Some(engine) = shared.engine() {
        let stats = engine.stats();
        let r = stats.results;
        let _ = writeln!(out, "# TYPE statecraft_events_total counter");
        for (status, n) in [
            ("applied", r.applied),
            ("duplicate", r.duplicate),
            ("conflict", r.conflict),
            ("rejected", r.rejected),
            ("overloaded", r.overloaded),
        ] {
            let _ = writeln!(out, "statecraft_events_total{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(out, "# TYPE statecraft_queue_depth gauge");
        for s in &stats.shards {
            let _ = writeln!(
                out,
                "statecraft_queue_depth{{shard=\"{}\"}} {}",
                s.shard, s.queue.depth
            );
        }
        let _ = writeln!(out, "# TYPE statecraft_queue_capacity gauge");
        for s in &stats.shards {
            let _ = writeln!(
                out,
                "statecraft_queue_capacity{{shard=\"{}\"}} {}",
                s.shard, s.queue.capacity
            );
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
}

async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>statecraft</title></head>\
         <body><h1>statecraft</h1><p><a href=\"/v1/stats\">/v1/stats</a> · \
         <a href=\"/metrics\">/metrics</a></p></body></html>",
    )
}
