//! `PrometheusExport`: the `/metrics` text of one server, through the
//! `metrics` crate family (docs/metrics.md lists every name, type and unit).
//!
//! It owns a *per-server* [`PrometheusRecorder`] (never installed as the
//! global recorder, so tests can run several servers in one process, each
//! with its own figures): metrics are written with the `metrics` macros
//! inside [`PrometheusExport::with`], which makes this recorder the local
//! one for the closure.
//!
//! What goes through the recorder:
//! - counters and gauges copied from [`EngineStats`] and the front-end
//!   counters ([`PrometheusExport::export`]; counters are set with
//!   `absolute`, so exporting twice is harmless);
//! - histograms of the front-end stages (decode, admit, ack) and of HTTP
//!   requests, fed with the counts of each interval.
//!
//! What is appended as text: the engine's own HDR histograms (apply, batch
//! size, fsync, checkpoint) arrive as precomputed quantiles ([`Summary`]),
//! which the `metrics` API cannot carry; they are rendered as Prometheus
//! `summary` families by [`render_summaries`]. Queue wait, the figure to
//! aggregate across shards and servers and to window with `rate()`, is a
//! real `histogram` family (cumulative buckets read from the engine's HDR
//! histogram at [`QUEUE_WAIT_BUCKETS_US`]). The `process_*` families come
//! from [`ProcessStats`](super::process::ProcessStats).
//!
//! Every family has a `# TYPE` line and only the labels its type allows
//! (`promtool check metrics` passes: tests/observe_metrics.rs runs it when
//! it is installed); the stage histograms exist at zero from the start.
//!
//! Invariant: nothing is recorded into a histogram that is not drained —
//! [`PrometheusExport::upkeep`] runs on every sampler tick, so memory stays
//! bounded whether or not anyone scrapes.

use std::fmt::Write as _;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use statecraft_engine::EngineStats;
use statecraft_engine::stats::{QUEUE_WAIT_BUCKETS_US, ShardStats, StoreSize, Summary};

use super::stages::{Source, Stage, StageInterval};
use crate::server::CounterSnapshot;

/// Histogram buckets of every `_seconds` histogram: 50 µs … 10 s.
const BUCKETS_S: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// The Prometheus side of one server's observability.
pub(crate) struct PrometheusExport {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for PrometheusExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusExport").finish_non_exhaustive()
    }
}

impl Default for PrometheusExport {
    fn default() -> Self {
        Self::new()
    }
}

impl PrometheusExport {
    /// A fresh recorder with every metric described.
    pub(crate) fn new() -> Self {
        let builder = PrometheusBuilder::new();
        // Non-empty constant buckets: `set_buckets` cannot fail; fall back
        // to summaries if it ever did.
        let builder = match builder.set_buckets(&BUCKETS_S) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let export = PrometheusExport { recorder, handle };
        export.describe();
        // Every stage histogram exists (at zero) from the start, not only
        // after its first sample: queries and alerts find their series.
        export.with(|| {
            for source in Source::ALL {
                for stage in Stage::ALL {
                    let _ = histogram!(
                        "statecraft_stage_seconds",
                        "stage" => stage.as_str(),
                        "source" => source.as_str()
                    );
                }
            }
        });
        export
    }

    /// Runs `f` with this server's recorder as the `metrics` recorder.
    pub(crate) fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    fn describe(&self) {
        use metrics::{describe_counter, describe_gauge, describe_histogram};
        self.with(|| {
            describe_gauge!(
                "statecraft_up",
                "1 when the engine is open and its store takes writes (0 while poisoned)."
            );
            describe_gauge!("statecraft_build_info", "Always 1; the version is a label.");
            describe_gauge!("statecraft_uptime_seconds", "Seconds since the server started.");
            describe_counter!(
                "statecraft_events_total",
                "Events answered, by result status (applied, duplicate, conflict, rejected, overloaded)."
            );
            describe_gauge!(
                "statecraft_queue_depth",
                "Events queued in a shard queue now."
            );
            describe_gauge!(
                "statecraft_queue_capacity",
                "Capacity of a shard queue in events now (moves under adaptive capacity)."
            );
            describe_gauge!("statecraft_queue_depth_bytes", "Bytes queued in a shard queue now.");
            describe_gauge!(
                "statecraft_queue_max_depth",
                "Largest depth a shard queue reached since start, events."
            );
            describe_gauge!(
                "statecraft_queue_wait_recent_p50_seconds",
                "Median queue wait over the controller's recent window (1 s), per shard."
            );
            describe_gauge!(
                "statecraft_queue_wait_recent_p95_seconds",
                "95th-percentile queue wait over the controller's recent window (1 s), per shard."
            );
            describe_gauge!(
                "statecraft_queue_wait_target_seconds",
                "The p95 queue wait the adaptive controller holds (absent when capacity is fixed)."
            );
            describe_gauge!(
                "statecraft_queue_arrival_rate",
                "Events admitted into a shard queue per second, over the last control interval."
            );
            describe_gauge!(
                "statecraft_queue_service_rate",
                "Events a shard worker applies per busy second (smoothed): what it could take."
            );
            describe_counter!(
                "statecraft_queue_admitted_total",
                "Events admitted into a shard queue."
            );
            describe_counter!(
                "statecraft_queue_taken_total",
                "Events taken from a shard queue by its worker."
            );
            describe_counter!(
                "statecraft_queue_refused_total",
                "Events refused by a shard queue's overflow policy (answered overloaded)."
            );
            describe_counter!(
                "statecraft_queue_refused_oversize_total",
                "Of the refused events: those of sub-batches larger than the queue's capacity (they fit only an empty queue)."
            );
            describe_counter!(
                "statecraft_queue_dropped_total",
                "Events dropped by drop_oldest."
            );
            describe_counter!("statecraft_batches_total", "Batches applied by a shard worker.");
            describe_counter!(
                "statecraft_capacity_changes_total",
                "Capacity changes made by the adaptive controller of a shard."
            );
            describe_counter!("statecraft_fsyncs_total", "fsyncs done by the group committer.");
            describe_counter!(
                "statecraft_log_records_total",
                "Batch records appended to the store's log."
            );
            describe_counter!("statecraft_checkpoints_total", "Checkpoints committed.");
            describe_counter!(
                "statecraft_cache_hits_total",
                "Events whose key was in the shard's hot-key cache."
            );
            describe_counter!(
                "statecraft_cache_misses_total",
                "Events whose key was read from the store."
            );
            describe_counter!(
                "statecraft_cache_evictions_total",
                "Entries evicted from the hot-key caches."
            );
            describe_gauge!(
                "statecraft_cache_keys",
                "Keys held in a shard's memory (its hot-key cache; every key when in memory)."
            );
            describe_gauge!(
                "statecraft_keys",
                "Materialized keys in the store, approximately (DBSIZE)."
            );
            describe_gauge!(
                "statecraft_data_dir_bytes",
                "Bytes the data directory takes on disk."
            );
            describe_gauge!(
                "statecraft_recovery_seconds",
                "Recovery at open: wall time from open to ready."
            );
            describe_gauge!(
                "statecraft_recovery_records",
                "Recovery at open: log records replayed."
            );
            describe_gauge!(
                "statecraft_store_poisoned",
                "1 once a store write or fsync failed (writes refused until restart)."
            );
            describe_histogram!(
                "statecraft_stage_seconds",
                "Front-end stage latency per request or frame: decode (bytes to events), admit (waiting for queue room), ack (admitted to results ready)."
            );
            describe_counter!(
                "statecraft_http_requests_total",
                "HTTP requests answered, by matched route and status code."
            );
            describe_histogram!(
                "statecraft_http_request_duration_seconds",
                "HTTP request handling time until the response head, by matched route."
            );
            describe_counter!(
                "statecraft_http_busy_total",
                "HTTP requests refused (503) by the concurrency limit."
            );
            describe_gauge!("statecraft_tcp_connections_open", "TCP connections open now.");
            describe_counter!(
                "statecraft_tcp_connections_total",
                "TCP connections accepted (including refused ones)."
            );
            describe_counter!(
                "statecraft_tcp_connections_refused_total",
                "TCP connections refused by the connection limit."
            );
            describe_counter!(
                "statecraft_tcp_frames_total",
                "TCP EVENTS frames answered with an ACK."
            );
            describe_counter!("statecraft_tcp_events_total", "Events received over TCP.");
            describe_counter!("statecraft_tcp_errors_total", "TCP ERROR frames sent.");
        });
    }

    /// Copies the engine's figures and the front-end counters into the
    /// recorder's gauges and counters.
    pub(crate) fn export(
        &self,
        stats: Option<&EngineStats>,
        counters: &CounterSnapshot,
        uptime_s: f64,
        target_wait_s: Option<f64>,
        size: Option<StoreSize>,
    ) {
        self.with(|| {
            if let Some(size) = size {
                gauge!("statecraft_keys").set(size.keys_approx as f64);
                if let Some(b) = size.data_dir_bytes {
                    gauge!("statecraft_data_dir_bytes").set(b as f64);
                }
            }
            // Up = open and taking writes: a poisoned store refuses them.
            let up =
                stats.is_some_and(|s| s.durability.as_ref().is_none_or(|d| d.poisoned.is_none()));
            gauge!("statecraft_up").set(if up { 1.0 } else { 0.0 });
            gauge!("statecraft_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            gauge!("statecraft_uptime_seconds").set(uptime_s);
            counter!("statecraft_http_busy_total").absolute(counters.http_busy);
            gauge!("statecraft_tcp_connections_open").set(counters.tcp_open as f64);
            counter!("statecraft_tcp_connections_total").absolute(counters.tcp_connections);
            counter!("statecraft_tcp_connections_refused_total").absolute(counters.tcp_refused);
            counter!("statecraft_tcp_frames_total").absolute(counters.tcp_frames);
            counter!("statecraft_tcp_events_total").absolute(counters.tcp_events);
            counter!("statecraft_tcp_errors_total").absolute(counters.tcp_errors);
            let Some(stats) = stats else { return };
            let r = stats.results;
            for (status, n) in [
                ("applied", r.applied),
                ("duplicate", r.duplicate),
                ("conflict", r.conflict),
                ("rejected", r.rejected),
                ("overloaded", r.overloaded),
            ] {
                counter!("statecraft_events_total", "status" => status).absolute(n);
            }
            for s in &stats.shards {
                let shard = s.shard.to_string();
                let q = &s.queue;
                gauge!("statecraft_queue_depth", "shard" => shard.clone()).set(q.depth as f64);
                gauge!("statecraft_queue_capacity", "shard" => shard.clone())
                    .set(q.capacity as f64);
                gauge!("statecraft_queue_depth_bytes", "shard" => shard.clone())
                    .set(q.depth_bytes as f64);
                gauge!("statecraft_queue_max_depth", "shard" => shard.clone())
                    .set(q.max_depth as f64);
                counter!("statecraft_queue_admitted_total", "shard" => shard.clone())
                    .absolute(q.enqueued);
                counter!("statecraft_queue_taken_total", "shard" => shard.clone())
                    .absolute(q.dequeued);
                counter!("statecraft_queue_refused_total", "shard" => shard.clone())
                    .absolute(q.rejected);
                counter!("statecraft_queue_dropped_total", "shard" => shard.clone())
                    .absolute(q.dropped);
                counter!("statecraft_queue_refused_oversize_total", "shard" => shard.clone())
                    .absolute(q.rejected_oversize);
                counter!("statecraft_batches_total", "shard" => shard.clone()).absolute(s.batches);
                counter!("statecraft_capacity_changes_total", "shard" => shard.clone())
                    .absolute(s.capacity_changes);
                gauge!("statecraft_queue_wait_recent_p50_seconds", "shard" => shard.clone())
                    .set(s.recent_wait_p50_us as f64 / 1e6);
                gauge!("statecraft_queue_wait_recent_p95_seconds", "shard" => shard.clone())
                    .set(s.recent_wait_p95_us as f64 / 1e6);
                gauge!("statecraft_cache_keys", "shard" => shard.clone()).set(s.cached_keys as f64);
                gauge!("statecraft_queue_arrival_rate", "shard" => shard.clone())
                    .set(s.arrival_rate as f64);
                gauge!("statecraft_queue_service_rate", "shard" => shard.clone())
                    .set(s.service_rate as f64);
                if let Some(t) = target_wait_s {
                    gauge!("statecraft_queue_wait_target_seconds", "shard" => shard).set(t);
                }
            }
            if let Some(d) = &stats.durability {
                counter!("statecraft_fsyncs_total").absolute(d.fsyncs);
                counter!("statecraft_log_records_total").absolute(d.records);
                counter!("statecraft_checkpoints_total").absolute(d.checkpoints);
                counter!("statecraft_cache_hits_total").absolute(d.cache_hits);
                counter!("statecraft_cache_misses_total").absolute(d.cache_misses);
                counter!("statecraft_cache_evictions_total").absolute(d.cache_evictions);
                gauge!("statecraft_recovery_seconds").set(d.recovery_ms / 1e3);
                gauge!("statecraft_recovery_records").set(d.recovery_records as f64);
                gauge!("statecraft_store_poisoned").set(if d.poisoned.is_some() {
                    1.0
                } else {
                    0.0
                });
            }
        });
    }

    /// Feeds one interval of front-end stage timings into the histograms.
    pub(crate) fn feed_stages(&self, interval: &StageInterval) {
        self.with(|| {
            for source in Source::ALL {
                for stage in Stage::ALL {
                    let h = interval.get(source, stage);
                    if h.is_empty() {
                        continue;
                    }
                    let out = histogram!(
                        "statecraft_stage_seconds",
                        "stage" => stage.as_str(),
                        "source" => source.as_str()
                    );
                    for v in h.iter_recorded() {
                        out.record_many(
                            v.value_iterated_to() as f64 / 1e6,
                            v.count_at_value() as usize,
                        );
                    }
                }
            }
        });
    }

    /// Counts one answered HTTP request.
    pub(crate) fn http_request(&self, route: &str, status: u16, took_s: f64) {
        self.with(|| {
            counter!(
                "statecraft_http_requests_total",
                "route" => route.to_owned(),
                "status" => status.to_string()
            )
            .increment(1);
            histogram!("statecraft_http_request_duration_seconds", "route" => route.to_owned())
                .record(took_s);
        });
    }

    /// Drains recorded histogram samples into their buckets.
    pub(crate) fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The whole Prometheus text: the recorder's families, then the
    /// engine's summaries.
    pub(crate) fn render(&self, stats: Option<&EngineStats>) -> String {
        let mut out = self.handle.render();
        if let Some(stats) = stats {
            render_summaries(&mut out, stats);
        }
        super::process::ProcessStats::read().render(&mut out);
        out
    }
}

/// How a summary's values are written.
#[derive(Clone, Copy)]
enum Unit {
    /// µs in, seconds out (exact: six decimals of an integer).
    Seconds,
    /// Counts, as they are.
    Count,
}

impl Unit {
    fn value(self, v: u64) -> String {
        match self {
            Unit::Seconds => format!("{}.{:06}", v / 1_000_000, v % 1_000_000),
            Unit::Count => v.to_string(),
        }
    }

    fn sum(self, mean: f64, count: u64) -> String {
        match self {
            Unit::Seconds => format!("{:.6}", mean * count as f64 / 1e6),
            Unit::Count => format!("{:.0}", mean * count as f64),
        }
    }
}

/// One summary family: `(labels, summary)` rows.
fn summary_family(
    out: &mut String,
    name: &str,
    help: &str,
    unit: Unit,
    rows: &[(String, Summary)],
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} summary");
    for (labels, s) in rows {
        let sep = if labels.is_empty() { "" } else { "," };
        for (q, v) in [
            ("0.5", s.p50),
            ("0.95", s.p95),
            ("0.99", s.p99),
            ("0.999", s.p999),
            ("1", s.max),
        ] {
            let _ = writeln!(
                out,
                "{name}{{{labels}{sep}quantile=\"{q}\"}} {}",
                unit.value(v)
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", unit.sum(s.mean, s.count));
        let _ = writeln!(out, "{name}_count{braces} {}", s.count);
    }
}

/// Renders the engine's histograms (since start) as summary families.
pub(crate) fn render_summaries(out: &mut String, stats: &EngineStats) {
    let per_shard = |f: fn(&ShardStats) -> Summary| -> Vec<(String, Summary)> {
        stats
            .shards
            .iter()
            .map(|s| (format!("shard=\"{}\"", s.shard), f(s)))
            .collect()
    };
    queue_wait_histogram(out, stats);
    summary_family(
        out,
        "statecraft_apply_seconds",
        "Apply time per batch in a shard worker, since start.",
        Unit::Seconds,
        &per_shard(|s| s.apply_us),
    );
    summary_family(
        out,
        "statecraft_batch_events",
        "Events per applied batch, since start.",
        Unit::Count,
        &per_shard(|s| s.batch_events),
    );
    if let Some(d) = &stats.durability {
        summary_family(
            out,
            "statecraft_fsync_seconds",
            "Group-commit fsync latency (the commit stage), since start.",
            Unit::Seconds,
            &[(String::new(), d.fsync_us)],
        );
        summary_family(
            out,
            "statecraft_fsync_records",
            "Batch records covered by one fsync, since start.",
            Unit::Count,
            &[(String::new(), d.records_per_fsync)],
        );
        summary_family(
            out,
            "statecraft_checkpoint_seconds",
            "Checkpoint write time, since start.",
            Unit::Seconds,
            &[(String::new(), d.checkpoint_us)],
        );
    }
}

/// `statecraft_queue_wait_seconds`: a Prometheus histogram per shard,
/// cumulative since start (`rate()` windows it, `sum by (le)` aggregates).
fn queue_wait_histogram(out: &mut String, stats: &EngineStats) {
    let name = "statecraft_queue_wait_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Queue wait per event, enqueue to taken by the shard worker."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for s in &stats.shards {
        let shard = s.shard;
        for (le, n) in QUEUE_WAIT_BUCKETS_US.iter().zip(&s.queue_wait_buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{shard=\"{shard}\",le=\"{}\"}} {n}",
                Unit::Seconds.value(*le)
            );
        }
        let q = &s.queue_wait_us;
        let _ = writeln!(
            out,
            "{name}_bucket{{shard=\"{shard}\",le=\"+Inf\"}} {}",
            q.count
        );
        let _ = writeln!(
            out,
            "{name}_sum{{shard=\"{shard}\"}} {}",
            Unit::Seconds.sum(q.mean, q.count)
        );
        let _ = writeln!(out, "{name}_count{{shard=\"{shard}\"}} {}", q.count);
    }
}
