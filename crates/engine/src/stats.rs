//! Statistics cheap enough to leave on: per-shard counters (atomics) and
//! per-stage HDR histograms (queue wait per sub-batch, apply time per batch,
//! batch size), read by [`Engine::stats`](crate::Engine::stats).
//!
//! Invariant: the shard worker takes the histogram lock once per batch, never
//! per event, and readers copy summaries out under the same short lock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::event::EventResult;
use crate::queue::QueueSnapshot;

/// Counters by result status.
#[derive(Debug, Default)]
pub struct StatusCounters {
    /// `applied`
    pub applied: AtomicU64,
    /// `duplicate`
    pub duplicate: AtomicU64,
    /// `conflict`
    pub conflict: AtomicU64,
    /// `rejected`
    pub rejected: AtomicU64,
    /// `overloaded`
    pub overloaded: AtomicU64,
}

impl StatusCounters {
    /// The counter of `r`'s status (`None` for `accepted`, not counted).
    fn counter(&self, r: &EventResult) -> Option<&AtomicU64> {
        match r {
            EventResult::Applied { .. } => Some(&self.applied),
            EventResult::Duplicate => Some(&self.duplicate),
            EventResult::Conflict { .. } => Some(&self.conflict),
            EventResult::Rejected { .. } => Some(&self.rejected),
            EventResult::Overloaded => Some(&self.overloaded),
            EventResult::Accepted => None,
        }
    }

    /// Counts one result.
    pub fn count(&self, r: &EventResult) {
        self.count_n(r, 1);
    }

    /// Adds `n` to the counter of `r`'s status.
    pub fn count_n(&self, r: &EventResult, n: u64) {
        if let Some(c) = self.counter(r) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> StatusCounts {
        StatusCounts {
            applied: self.applied.load(Ordering::Relaxed),
            duplicate: self.duplicate.load(Ordering::Relaxed),
            conflict: self.conflict.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            overloaded: self.overloaded.load(Ordering::Relaxed),
        }
    }
}

/// Counts by result status, copied out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// `applied`
    pub applied: u64,
    /// `duplicate`
    pub duplicate: u64,
    /// `conflict`
    pub conflict: u64,
    /// `rejected`
    pub rejected: u64,
    /// `overloaded`
    pub overloaded: u64,
}

/// A histogram summary in microseconds (or events, for batch sizes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Samples recorded.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// 50th percentile.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Summary {
    /// Summarizes a histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Upper bounds (µs) of the queue-wait histogram buckets exported as a
/// Prometheus histogram: 50 µs … 10 s (the `+Inf` bucket is the count).
pub const QUEUE_WAIT_BUCKETS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Cumulative counts of `h` at each bound of [`QUEUE_WAIT_BUCKETS_US`]
/// (values at or below the bound, within the histogram's precision).
fn cumulative_buckets(h: &Histogram<u64>) -> Vec<u64> {
    QUEUE_WAIT_BUCKETS_US
        .iter()
        .map(|&le| h.count_between(0, le))
        .collect()
}

fn new_hist() -> Histogram<u64> {
    // 3 significant figures up to an hour in µs: bounded memory (~30 KiB).
    // Constant, valid bounds: construction cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid constant histogram bounds")
}

/// Histograms of one shard.
#[derive(Debug)]
pub struct StageHistograms {
    /// Queue wait of each sub-batch, µs (enqueue → taken by the worker),
    /// weighted by its events.
    pub queue_wait_us: Histogram<u64>,
    /// Apply time per batch, µs.
    pub apply_us: Histogram<u64>,
    /// Events per batch.
    pub batch_events: Histogram<u64>,
}

impl Default for StageHistograms {
    fn default() -> Self {
        StageHistograms {
            queue_wait_us: new_hist(),
            apply_us: new_hist(),
            batch_events: new_hist(),
        }
    }
}

/// What one shard worker reports while it runs.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// Batches applied.
    pub batches: AtomicU64,
    /// Events applied (any result).
    pub events: AtomicU64,
    /// Results by status.
    pub results: StatusCounters,
    /// Per-stage histograms (locked once per batch).
    pub hist: Mutex<StageHistograms>,
    /// p50 queue wait over the recent window (the adaptive controller's), µs.
    pub recent_wait_p50_us: AtomicU64,
    /// p95 queue wait over the recent window, µs.
    pub recent_wait_p95_us: AtomicU64,
    /// Arrival rate over the last interval, events/s.
    pub arrival_rate: AtomicU64,
    /// Service rate (events per busy second), smoothed.
    pub service_rate: AtomicU64,
    /// Capacity changes made by the adaptive controller.
    pub capacity_changes: AtomicU64,
    /// Keys in the shard's map after its last batch (set by the worker).
    pub cached_keys: AtomicU64,
}

impl ShardMetrics {
    /// Counts the results of one sub-batch: one atomic add per run of equal
    /// statuses (a sub-batch is nearly always all `applied`), not one per
    /// event.
    pub fn count_results(&self, results: &[EventResult]) {
        let mut run: Option<(&EventResult, u64)> = None;
        for r in results {
            match &mut run {
                Some((first, n)) if std::mem::discriminant(*first) == std::mem::discriminant(r) => {
                    *n += 1
                }
                _ => {
                    if let Some((first, n)) = run {
                        self.results.count_n(first, n);
                    }
                    run = Some((r, 1));
                }
            }
        }
        if let Some((first, n)) = run {
            self.results.count_n(first, n);
        }
    }

    /// Records one applied batch.
    pub fn record_batch(&self, events: usize, waits: &[(Duration, usize)], apply: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
        let mut h = match self.hist.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        for (wait, n) in waits {
            let _ = h
                .queue_wait_us
                .record_n(wait.as_micros().max(1) as u64, (*n).max(1) as u64);
        }
        let _ = h.apply_us.record(apply.as_micros().max(1) as u64);
        let _ = h.batch_events.record(events.max(1) as u64);
    }
}

/// A copy of one shard's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ShardStats {
    /// Shard index.
    pub shard: usize,
    /// The queue's counters and gauges.
    #[serde(flatten)]
    pub queue: QueueStatsView,
    /// Batches applied.
    pub batches: u64,
    /// Events taken by the worker.
    pub events: u64,
    /// Queue wait per event, µs.
    pub queue_wait_us: Summary,
    /// Cumulative queue-wait counts at each bound of
    /// [`QUEUE_WAIT_BUCKETS_US`], since start (for `/metrics`' histogram).
    #[serde(skip)]
    pub queue_wait_buckets: Vec<u64>,
    /// Keys held in this shard's memory (its hot-key cache when durable,
    /// every key when in memory), as of its last batch.
    pub cached_keys: u64,
    /// Apply time per batch, µs.
    pub apply_us: Summary,
    /// Events per batch.
    pub batch_events: Summary,
    /// p50 queue wait over the recent window, µs.
    pub recent_wait_p50_us: u64,
    /// p95 queue wait over the recent window, µs.
    pub recent_wait_p95_us: u64,
    /// Arrival rate over the last interval, events/s.
    pub arrival_rate: u64,
    /// Service rate while busy, events/s.
    pub service_rate: u64,
    /// Capacity changes made by the adaptive controller.
    pub capacity_changes: u64,
}

/// The queue part of [`ShardStats`], serializable.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct QueueStatsView {
    /// Events queued now.
    pub depth: usize,
    /// Capacity in events.
    pub capacity: usize,
    /// Bytes queued now.
    pub depth_bytes: usize,
    /// Capacity in bytes.
    pub capacity_bytes: usize,
    /// Largest depth seen.
    pub max_depth: usize,
    /// Events admitted.
    pub enqueued: u64,
    /// Events taken by the worker.
    pub dequeued: u64,
    /// Events refused by the overflow policy.
    pub rejected: u64,
    /// Events dropped by `drop_oldest`.
    pub dropped: u64,
    /// Of `rejected`: events of sub-batches larger than the capacity then.
    pub rejected_oversize: u64,
    /// The largest sub-batch refused so far, events.
    pub largest_refused: usize,
}

impl From<QueueSnapshot> for QueueStatsView {
    fn from(s: QueueSnapshot) -> Self {
        QueueStatsView {
            depth: s.depth_events,
            capacity: s.capacity_events,
            depth_bytes: s.depth_bytes,
            capacity_bytes: s.capacity_bytes,
            max_depth: s.max_depth_events,
            enqueued: s.enqueued,
            dequeued: s.dequeued,
            rejected: s.rejected,
            dropped: s.dropped,
            rejected_oversize: s.rejected_oversize,
            largest_refused: s.largest_refused,
        }
    }
}

impl ShardStats {
    /// Copies a shard's figures out.
    pub fn collect(shard: usize, queue: QueueSnapshot, m: &ShardMetrics) -> Self {
        let h = match m.hist.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        ShardStats {
            shard,
            queue: queue.into(),
            batches: m.batches.load(Ordering::Relaxed),
            events: m.events.load(Ordering::Relaxed),
            queue_wait_us: Summary::of(&h.queue_wait_us),
            queue_wait_buckets: cumulative_buckets(&h.queue_wait_us),
            cached_keys: m.cached_keys.load(Ordering::Relaxed),
            apply_us: Summary::of(&h.apply_us),
            batch_events: Summary::of(&h.batch_events),
            recent_wait_p50_us: m.recent_wait_p50_us.load(Ordering::Relaxed),
            recent_wait_p95_us: m.recent_wait_p95_us.load(Ordering::Relaxed),
            arrival_rate: m.arrival_rate.load(Ordering::Relaxed),
            service_rate: m.service_rate.load(Ordering::Relaxed),
            capacity_changes: m.capacity_changes.load(Ordering::Relaxed),
        }
    }
}

/// The store's size ([`Engine::store_size`](crate::Engine::store_size)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreSize {
    /// Materialized keys, approximately (fjall's table metadata: expired
    /// keys count until swept, rewritten ones until compaction merges them).
    pub keys_approx: u64,
    /// Bytes the data directory takes on disk (`None` if it could not be
    /// measured).
    pub data_dir_bytes: Option<u64>,
}

/// The whole engine's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EngineStats {
    /// Results by status, all shards (plus admission refusals).
    pub results: StatusCounts,
    /// Per shard.
    pub shards: Vec<ShardStats>,
    /// Durability figures, when the engine has a store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<crate::persist::DurabilityStats>,
}
