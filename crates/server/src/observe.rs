//! Observability of a running server: `GET /metrics` (Prometheus text),
//! `GET /v1/stats` (JSON for the dashboard and `statecraft top`), `GET /`
//! (the live dashboard), and what feeds them.
//!
//! # Layout
//!
//! - `stages`: `StageClocks` — latency of the stages only the front ends
//!   see (decode, admit, ack), recorded per request or frame.
//! - [`sample`]: [`Sample`] — one interval's rates, refusals, per-stage
//!   latency and per-shard queue figures — and the ring of recent samples.
//! - `sampler`: the task that takes a sample every second, copies the
//!   figures into the Prometheus recorder and logs `overload`.
//! - `exporter`: the per-server Prometheus recorder (`metrics` crate
//!   family) and the text of `/metrics` (names: docs/metrics.md).
//! - `assets/dashboard.html`: the dashboard, one self-contained page
//!   (inline CSS and JS, no build step, nothing loaded from elsewhere),
//!   compiled in (docs/dashboard.md).
//!
//! # Auth
//!
//! `/metrics` and `/v1/stats` sit behind the bearer token like every API
//! route. The dashboard page `/` is public: it is a static shell that holds
//! no data, and a browser cannot send a bearer header when it navigates. The
//! page asks for the token (or takes it from the URL *fragment*,
//! `/#token=…`, which never reaches the server or its logs), keeps it in
//! `sessionStorage`, and sends it as `Authorization: Bearer` on its
//! `/v1/stats` requests.
//!
//! Invariant: the figures served are one sampler interval old at most;
//! `/metrics` refreshes the engine's gauges at scrape time.

mod exporter;
pub mod process;
pub mod sample;
mod sampler;
mod stages;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub use sample::Sample;
pub(crate) use stages::{Source, Stage};

use crate::http::AppState;
use crate::problem::Problem;
use crate::server::Shared;
use crate::shutdown::Shutdown;
use exporter::PrometheusExport;
use sample::SampleRing;
use stages::StageClocks;

/// Samples kept for the dashboard's history: 5 minutes at one per second.
const HISTORY: usize = 300;

/// The dashboard page, compiled in.
const DASHBOARD_HTML: &str = include_str!("../assets/dashboard.html");

/// Content-Security-Policy of the dashboard: its own inline script and
/// style, requests to this origin only — nothing loads from elsewhere.
const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the observability routes share, one per server (in [`Shared`]).
#[derive(Debug)]
pub(crate) struct Observer {
    /// Front-end stage latency; recorded by the HTTP and TCP handlers,
    /// taken by the sampler.
    pub stages: StageClocks,
    /// The Prometheus recorder of this server.
    prometheus: PrometheusExport,
    /// Recent samples. Written by the sampler once per interval, read by
    /// `/v1/stats`; both hold the lock only to copy.
    history: Mutex<SampleRing>,
}

impl Default for Observer {
    fn default() -> Self {
        Observer {
            stages: StageClocks::default(),
            prometheus: PrometheusExport::new(),
            history: Mutex::new(SampleRing::new(HISTORY)),
        }
    }
}

impl Observer {
    /// Records one request's or frame's time in a front-end stage.
    pub(crate) fn record(&self, source: Source, stage: Stage, took: std::time::Duration) {
        self.stages.record(source, stage, took);
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, SampleRing> {
        match self.history.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn push(&self, sample: Sample) {
        self.ring().push(sample);
    }
}

/// Starts the sampler; it ends at the stop signal.
pub(crate) fn spawn_sampler(shared: Arc<Shared>, stop: Shutdown) -> JoinHandle<()> {
    tokio::spawn(sampler::run(shared, stop))
}

/// The routes behind the auth layer: `/metrics`, `/v1/stats`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/stats", get(stats))
}

/// The routes outside the auth layer: the dashboard shell `/`.
pub(crate) fn public_routes() -> Router<AppState> {
    Router::new().route("/", get(dashboard))
}

/// Middleware (outermost): counts every answered HTTP request by matched
/// route and status, and times it until its response head.
pub(crate) async fn count_requests(
    State(shared): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let began = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let resp = next.run(req).await;
    shared.observe.prometheus.http_request(
        &route,
        resp.status().as_u16(),
        began.elapsed().as_secs_f64(),
    );
    resp
}

/// `GET /metrics`.
async fn metrics(State(shared): State<AppState>) -> Response {
    let stats = shared.engine().map(|e| e.stats());
    let observe = &shared.observe;
    observe.prometheus.export(
        stats.as_ref(),
        &shared.counters.snapshot(),
        shared.started.elapsed().as_secs_f64(),
        sampler::target_wait_s(&shared),
        shared.engine().and_then(|e| e.store_size()),
    );
    let text = observe.prometheus.render(stats.as_ref());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The query of `GET /v1/stats`.
#[derive(Debug, Deserialize)]
struct StatsQuery {
    /// Include up to this many recent samples (newest last).
    history: Option<usize>,
    /// Include the samples after this `seq` (the dashboard's cursor).
    since: Option<u64>,
}

/// `GET /v1/stats`: the engine's figures (`results`, `shards`,
/// `durability`), `version`, `uptime_s`, the front ends' counters
/// (`server`), `keyspace` (keys, data-dir bytes, hot-key cache), `process`
/// (RSS, CPU, fds, threads), in cluster mode the node's figures (`cluster`), and `observe`: the sample interval, the adaptive settings,
/// the latest sample, and with `?history=N` or `?since=SEQ` the recent
/// samples (docs/dashboard.md).
async fn stats(
    State(shared): State<AppState>,
    query: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return Problem::bad_request(
            "invalid-query",
            "history must be a count and since a sample seq",
        )
        .into_response();
    };
    let Some(engine) = shared.engine() else {
        return Problem::not_ready().into_response();
    };
    let engine_stats = engine.stats();
    let keyspace = keyspace(&engine_stats, engine.store_size());
    let mut v = serde_json::to_value(engine_stats).unwrap_or_else(|_| json!({}));
    let adaptive = engine.config().adaptive.map(|a| {
        json!({
            "target_ms": a.target.as_secs_f64() * 1e3,
            "min": a.min,
            "max": a.max,
            "band": a.band,
            "interval_ms": a.interval.as_millis() as u64,
        })
    });
    let (latest, samples) = {
        let ring = shared.observe.ring();
        let latest = ring.latest().cloned();
        let samples = match (query.history, query.since) {
            (None, None) => None,
            (limit, after) => Some(ring.since(after, limit.unwrap_or(HISTORY).min(HISTORY))),
        };
        (latest, samples)
    };
    let mut observe = json!({
        "interval_ms": sampler::SAMPLE_INTERVAL.as_millis() as u64,
        "adaptive": adaptive,
        "latest": latest,
    });
    if let (Some(samples), Value::Object(m)) = (samples, &mut observe) {
        m.insert(
            "samples".into(),
            serde_json::to_value(samples).unwrap_or(Value::Null),
        );
    }
    if let Value::Object(m) = &mut v {
        m.insert("version".into(), Value::from(env!("CARGO_PKG_VERSION")));
        m.insert(
            "uptime_s".into(),
            Value::from(shared.started.elapsed().as_secs_f64()),
        );
        m.insert(
            "server".into(),
            serde_json::to_value(shared.counters.snapshot()).unwrap_or(Value::Null),
        );
        m.insert("keyspace".into(), keyspace);
        m.insert(
            "process".into(),
            serde_json::to_value(process::ProcessStats::read()).unwrap_or(Value::Null),
        );
        if let Some(cluster) = shared.cluster.get() {
            m.insert(
                "cluster".into(),
                serde_json::to_value(cluster.stats()).unwrap_or(Value::Null),
            );
        }
        m.insert("observe".into(), observe);
    }
    axum::Json(v).into_response()
}

/// The keyspace figures of `/v1/stats` (what Redis' INFO keyspace, DBSIZE
/// and the cache lines show): `keys` (approximate, materialized in the
/// store; `null` in memory), `data_dir_bytes`, `cache_keys` (keys held in
/// the shards' memory: every key when in memory), `cache_hit_rate`.
fn keyspace(
    stats: &statecraft_engine::EngineStats,
    size: Option<statecraft_engine::stats::StoreSize>,
) -> Value {
    let cache_keys: u64 = stats.shards.iter().map(|s| s.cached_keys).sum();
    let hit_rate = stats.durability.as_ref().and_then(|d| {
        let total = d.cache_hits + d.cache_misses;
        (total > 0).then(|| d.cache_hits as f64 / total as f64)
    });
    json!({
        "keys": size.map(|s| s.keys_approx),
        "data_dir_bytes": size.and_then(|s| s.data_dir_bytes),
        "cache_keys": cache_keys,
        "cache_hit_rate": hit_rate,
    })
}

/// `GET /`: the dashboard page.
async fn dashboard() -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DASHBOARD_CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        DASHBOARD_HTML,
    )
        .into_response()
}
