//! `Sample`: what the server looked like over one sampler interval — rates
//! by result status, refusals, per-stage latency, and per shard the queue's
//! depth against its capacity and its p95 wait against the target — and
//! `SampleRing`, the short history the dashboard and `statecraft top` draw.
//!
//! A sample is computed from two `Reading`s (cumulative counters at two
//! instants) and the interval's front-end stage histograms: rates are
//! deltas over the elapsed time, never averages since start.
//!
//! Invariants: samples in the ring have strictly increasing `seq` (the
//! `?since=` cursor of `/v1/stats` relies on it); the ring holds at most
//! its capacity, oldest dropped first.

use std::collections::VecDeque;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use statecraft_engine::EngineStats;
use statecraft_engine::stats::{StatusCounts, Summary};

use super::stages::{Stage, StageInterval};
use crate::server::CounterSnapshot;

/// Cumulative figures at one instant.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    /// When it was read.
    pub at: Instant,
    /// The engine's figures (`None` while it is not open).
    pub stats: Option<EngineStats>,
    /// The front ends' counters.
    pub counters: CounterSnapshot,
}

/// Latency of one stage over an interval, in milliseconds. A figure the
/// stage cannot provide is `null` (e.g. the engine's apply and commit
/// histograms give an interval mean, not interval quantiles).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageFigure {
    /// Samples in the interval (requests, frames, batches or fsyncs).
    pub count: u64,
    /// Mean.
    pub mean: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// Per-stage latency of one interval (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageFigures {
    /// Bytes → events, per request or frame (front ends).
    pub decode: StageFigure,
    /// Waiting for queue room, per request or frame (front ends).
    pub admit: StageFigure,
    /// Queue wait per event: p50/p95 = the worst shard's recent window,
    /// mean = over every event taken in the interval.
    pub queue_wait: StageFigure,
    /// Apply time per batch (mean over the interval's batches).
    pub apply: StageFigure,
    /// fsync time per group commit (mean over the interval's fsyncs).
    pub commit: StageFigure,
    /// Admitted → results ready, per request or frame (front ends): what a
    /// producer waits once its events are in.
    pub ack: StageFigure,
}

/// Event rates by result status, events/s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusRates {
    /// `applied`
    pub applied: f64,
    /// `duplicate`
    pub duplicate: f64,
    /// `conflict`
    pub conflict: f64,
    /// `rejected` (bad input)
    pub rejected: f64,
    /// `overloaded` (refused for lack of room)
    pub overloaded: f64,
}

/// Pushback over the interval, per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Refusals {
    /// Events answered `overloaded`.
    pub overloaded: f64,
    /// Events dropped by `drop_oldest`.
    pub dropped: f64,
    /// HTTP requests refused by the concurrency limit (503).
    pub http_busy: f64,
    /// TCP connections refused by the connection limit.
    pub tcp_refused: f64,
}

/// One shard over the interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShardSample {
    /// Shard index.
    pub shard: usize,
    /// Events queued at the end of the interval.
    pub depth: usize,
    /// Capacity at the end of the interval (events).
    pub capacity: usize,
    /// p50 queue wait over the controller's recent window, ms.
    pub p50_wait_ms: f64,
    /// p95 queue wait over the controller's recent window, ms.
    pub p95_wait_ms: f64,
    /// Events admitted into the queue per second.
    pub admitted_per_s: f64,
    /// Events taken by the worker per second.
    pub taken_per_s: f64,
    /// Events refused by the overflow policy per second.
    pub refused_per_s: f64,
    /// Of those: events of sub-batches larger than the capacity (they fit
    /// only an empty queue), per second.
    pub refused_oversize_per_s: f64,
    /// The largest sub-batch this queue refused since start, events.
    pub largest_refused: usize,
    /// What the worker applies per busy second (its capacity to serve).
    pub service_rate: f64,
    /// Capacity changes since start.
    pub capacity_changes: u64,
}

/// What the server looked like over one sampler interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sample {
    /// Sequence number (strictly increasing; the `?since=` cursor).
    pub seq: u64,
    /// End of the interval, Unix time in ms.
    pub unix_ms: u64,
    /// Seconds since the server started, at the end of the interval.
    pub uptime_s: f64,
    /// Length of the interval, s.
    pub interval_s: f64,
    /// Events answered per second, by status.
    pub events_per_s: StatusRates,
    /// Events admitted into the queues per second.
    pub admitted_per_s: f64,
    /// Pushback per second.
    pub refusals_per_s: Refusals,
    /// Per-stage latency, ms.
    pub stages_ms: StageFigures,
    /// Per shard.
    pub shards: Vec<ShardSample>,
    /// fsyncs per second.
    pub fsyncs_per_s: f64,
    /// HTTP requests per second (any route).
    pub http_requests_per_s: f64,
    /// TCP connections open at the end of the interval.
    pub tcp_open: u64,
    /// Results by status since start.
    pub totals: StatusTotals,
}

/// Results by status since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusTotals {
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

impl From<StatusCounts> for StatusTotals {
    fn from(c: StatusCounts) -> Self {
        StatusTotals {
            applied: c.applied,
            duplicate: c.duplicate,
            conflict: c.conflict,
            rejected: c.rejected,
            overloaded: c.overloaded,
        }
    }
}

/// Rounds to 3 decimals (keeps the JSON short; µs resolution on ms).
fn r3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e3).round() / 1e3
    } else {
        0.0
    }
}

fn figure_of(h: &Histogram<u64>) -> StageFigure {
    if h.is_empty() {
        return StageFigure::default();
    }
    let ms = |us: u64| Some(r3(us as f64 / 1e3));
    StageFigure {
        count: h.len(),
        mean: Some(r3(h.mean() / 1e3)),
        p50: ms(h.value_at_quantile(0.50)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
    }
}

/// Mean over the samples added between two cumulative summaries (µs in, ms
/// out), with their count; `None` when none were added.
fn interval_mean<'a>(
    pairs: impl Iterator<Item = (Option<&'a Summary>, &'a Summary)>,
) -> StageFigure {
    let (mut n, mut total) = (0u64, 0.0f64);
    for (prev, cur) in pairs {
        let (pc, pm) = prev.map_or((0, 0.0), |p| (p.count, p.mean));
        let dc = cur.count.saturating_sub(pc);
        if dc == 0 {
            continue;
        }
        n += dc;
        total += (cur.mean * cur.count as f64 - pm * pc as f64).max(0.0);
    }
    StageFigure {
        count: n,
        mean: (n > 0).then(|| r3(total / n as f64 / 1e3)),
        ..StageFigure::default()
    }
}

impl Sample {
    /// The sample of the interval `prev → cur`.
    pub(crate) fn between(
        seq: u64,
        prev: &Reading,
        cur: &Reading,
        stages: &StageInterval,
        uptime_s: f64,
    ) -> Sample {
        let dt = cur.at.saturating_duration_since(prev.at).as_secs_f64();
        let per_s = |d: u64| if dt > 0.0 { r3(d as f64 / dt) } else { 0.0 };
        let (pc, cc) = (&prev.counters, &cur.counters);
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut sample = Sample {
            seq,
            unix_ms,
            uptime_s: r3(uptime_s),
            interval_s: r3(dt),
            http_requests_per_s: per_s(cc.http_requests.saturating_sub(pc.http_requests)),
            tcp_open: cc.tcp_open,
            refusals_per_s: Refusals {
                http_busy: per_s(cc.http_busy.saturating_sub(pc.http_busy)),
                tcp_refused: per_s(cc.tcp_refused.saturating_sub(pc.tcp_refused)),
                ..Refusals::default()
            },
            ..Sample::default()
        };
        sample.stages_ms.decode = figure_of(&stages.merged(Stage::Decode));
        sample.stages_ms.admit = figure_of(&stages.merged(Stage::Admit));
        sample.stages_ms.ack = figure_of(&stages.merged(Stage::Ack));
        let Some(stats) = &cur.stats else {
            return sample;
        };
        let before = prev.stats.as_ref();
        let zero = StatusCounts::default();
        let (r0, r1) = (before.map_or(zero, |s| s.results), stats.results);
        sample.totals = r1.into();
        sample.events_per_s = StatusRates {
            applied: per_s(r1.applied.saturating_sub(r0.applied)),
            duplicate: per_s(r1.duplicate.saturating_sub(r0.duplicate)),
            conflict: per_s(r1.conflict.saturating_sub(r0.conflict)),
            rejected: per_s(r1.rejected.saturating_sub(r0.rejected)),
            overloaded: per_s(r1.overloaded.saturating_sub(r0.overloaded)),
        };
        sample.refusals_per_s.overloaded = sample.events_per_s.overloaded;
        let prev_shard = |i: usize| before.and_then(|s| s.shards.get(i));
        let mut admitted = 0u64;
        let mut dropped = 0u64;
        let (mut worst_p50, mut worst_p95) = (0u64, 0u64);
        for (i, s) in stats.shards.iter().enumerate() {
            let p = prev_shard(i);
            let d_admitted = s
                .queue
                .enqueued
                .saturating_sub(p.map_or(0, |p| p.queue.enqueued));
            let d_taken = s
                .queue
                .dequeued
                .saturating_sub(p.map_or(0, |p| p.queue.dequeued));
            let d_refused = s
                .queue
                .rejected
                .saturating_sub(p.map_or(0, |p| p.queue.rejected));
            let d_oversize = s
                .queue
                .rejected_oversize
                .saturating_sub(p.map_or(0, |p| p.queue.rejected_oversize));
            let d_dropped = s
                .queue
                .dropped
                .saturating_sub(p.map_or(0, |p| p.queue.dropped));
            admitted += d_admitted;
            dropped += d_dropped;
            worst_p50 = worst_p50.max(s.recent_wait_p50_us);
            worst_p95 = worst_p95.max(s.recent_wait_p95_us);
            sample.shards.push(ShardSample {
                shard: s.shard,
                depth: s.queue.depth,
                capacity: s.queue.capacity,
                p50_wait_ms: r3(s.recent_wait_p50_us as f64 / 1e3),
                p95_wait_ms: r3(s.recent_wait_p95_us as f64 / 1e3),
                admitted_per_s: per_s(d_admitted),
                taken_per_s: per_s(d_taken),
                refused_per_s: per_s(d_refused),
                refused_oversize_per_s: per_s(d_oversize),
                largest_refused: s.queue.largest_refused,
                service_rate: s.service_rate as f64,
                capacity_changes: s.capacity_changes,
            });
        }
        sample.admitted_per_s = per_s(admitted);
        sample.refusals_per_s.dropped = per_s(dropped);
        let pairs = |f: fn(&statecraft_engine::stats::ShardStats) -> &Summary| {
            stats
                .shards
                .iter()
                .enumerate()
                .map(move |(i, s)| (prev_shard(i).map(f), f(s)))
        };
        let mut wait = interval_mean(pairs(|s| &s.queue_wait_us));
        if wait.count > 0 {
            wait.p50 = Some(r3(worst_p50 as f64 / 1e3));
            wait.p95 = Some(r3(worst_p95 as f64 / 1e3));
        }
        sample.stages_ms.queue_wait = wait;
        sample.stages_ms.apply = interval_mean(pairs(|s| &s.apply_us));
        if let Some(d) = &stats.durability {
            let p = before.and_then(|s| s.durability.as_ref());
            sample.stages_ms.commit =
                interval_mean(std::iter::once((p.map(|p| &p.fsync_us), &d.fsync_us)));
            sample.fsyncs_per_s = per_s(d.fsyncs.saturating_sub(p.map_or(0, |p| p.fsyncs)));
        }
        sample
    }
}

/// The last samples, oldest first.
#[derive(Debug)]
pub(crate) struct SampleRing {
    samples: VecDeque<Sample>,
    capacity: usize,
}

impl SampleRing {
    /// An empty ring of at most `capacity` samples.
    pub(crate) fn new(capacity: usize) -> Self {
        SampleRing {
            samples: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    /// Appends a sample, dropping the oldest when full.
    pub(crate) fn push(&mut self, sample: Sample) {
        debug_assert!(self.samples.back().is_none_or(|l| l.seq < sample.seq));
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The newest sample.
    pub(crate) fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// The samples with `seq > after`, at most `limit` (the newest ones).
    pub(crate) fn since(&self, after: Option<u64>, limit: usize) -> Vec<Sample> {
        let newer: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| after.is_none_or(|a| s.seq > a))
            .collect();
        let skip = newer.len().saturating_sub(limit);
        newer.into_iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn reading(at: Instant, applied: u64) -> Reading {
        Reading {
            at,
            stats: Some(EngineStats {
                results: StatusCounts {
                    applied,
                    ..StatusCounts::default()
                },
                shards: Vec::new(),
                durability: None,
            }),
            counters: CounterSnapshot::default(),
        }
    }

    #[test]
    fn rates_are_deltas_over_the_elapsed_time() {
        let t0 = Instant::now();
        let a = reading(t0, 1_000);
        let b = reading(t0 + Duration::from_millis(500), 1_600);
        let stages = super::super::stages::StageClocks::default().take();
        let s = Sample::between(7, &a, &b, &stages, 3.0);
        assert_eq!(s.seq, 7);
        assert_eq!(s.events_per_s.applied, 1_200.0);
        assert_eq!(s.totals.applied, 1_600);
        assert_eq!(s.stages_ms.ack.count, 0);
        assert_eq!(s.stages_ms.ack.p99, None);
    }

    #[test]
    fn the_interval_mean_comes_from_cumulative_summaries() {
        let before = Summary {
            count: 10,
            mean: 100.0,
            ..Summary::default()
        };
        let after = Summary {
            count: 20,
            mean: 150.0,
            ..Summary::default()
        };
        // 10 more samples whose mean is (20×150 − 10×100) / 10 = 200 µs.
        let f = interval_mean(std::iter::once((Some(&before), &after)));
        assert_eq!(f.count, 10);
        assert_eq!(f.mean, Some(0.2));
    }

    #[test]
    fn the_ring_is_bounded_and_answers_since_a_cursor() {
        let mut ring = SampleRing::new(3);
        for seq in 1..=5 {
            ring.push(Sample {
                seq,
                ..Sample::default()
            });
        }
        let seqs = |v: Vec<Sample>| v.iter().map(|s| s.seq).collect::<Vec<_>>();
        assert_eq!(seqs(ring.since(None, 10)), vec![3, 4, 5]);
        assert_eq!(seqs(ring.since(Some(3), 10)), vec![4, 5]);
        assert_eq!(seqs(ring.since(None, 2)), vec![4, 5]);
        assert_eq!(seqs(ring.since(Some(5), 10)), Vec::<u64>::new());
        assert_eq!(ring.latest().map(|s| s.seq), Some(5));
    }
}
