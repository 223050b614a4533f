//! What a load run measured: per-connection [`Recorder`]s (HDR histograms of
//! frame latency weighted by the frame's events, counts by outcome) merged
//! into one [`LoadReport`].
//!
//! Invariants:
//! - Every answered event is recorded exactly once, with its frame's latency
//!   (per-event latency = the latency of the frame that carried it), so the
//!   histogram's count equals `events`.
//! - `ok + errors == events`; `errors_by_kind` sums to `errors`.
//! - Nothing is allocated per frame unless an error kind is seen for the
//!   first time.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use statecraft_engine::EventResult;

/// Highest latency the histograms track, µs (one hour); longer saturates.
const MAX_LATENCY_US: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .expect("constant bounds that hdrhistogram accepts")
}

/// The outcomes of one frame's events.
#[derive(Debug, Default)]
pub struct FrameTally {
    /// Events that succeeded (applied, or accepted under `ack=none`).
    pub ok: u64,
    /// Events that did not: (kind, detail, count); the kind's name is
    /// `kind`, or `kind:detail` when the detail is not empty.
    pub errors: Vec<(&'static str, &'static str, u64)>,
    /// Error kinds whose names are only known at run time.
    pub other_errors: Vec<(String, u64)>,
}

impl FrameTally {
    /// Forgets everything (keeps the allocations).
    pub fn clear(&mut self) {
        self.ok = 0;
        self.errors.clear();
        self.other_errors.clear();
    }

    /// Counts `n` errors of a static kind (and detail, or "").
    #[inline]
    pub fn error(&mut self, kind: &'static str, detail: &'static str, n: u64) {
        match self
            .errors
            .iter_mut()
            .find(|(k, d, _)| *k == kind && *d == detail)
        {
            Some((_, _, c)) => *c += n,
            None => self.errors.push((kind, detail, n)),
        }
    }

    /// Counts `n` errors of a kind named at run time.
    pub fn error_named(&mut self, kind: &str, n: u64) {
        match self.other_errors.iter_mut().find(|(k, _)| k == kind) {
            Some((_, c)) => *c += n,
            None => self.other_errors.push((kind.to_owned(), n)),
        }
    }

    /// Counts one engine result (TCP ACKs, the in-process engine).
    #[inline]
    pub fn result(&mut self, r: &EventResult) {
        match r {
            EventResult::Applied { .. } | EventResult::Accepted => self.ok += 1,
            EventResult::Overloaded => self.error("overloaded", "", 1),
            EventResult::Duplicate => self.error("duplicate", "", 1),
            EventResult::Conflict { .. } => self.error("conflict", "", 1),
            EventResult::Rejected { code, .. } => self.error("rejected", code.as_str(), 1),
            // A status added after this client was written.
            _ => self.error("unknown_status", "", 1),
        }
    }

    /// Events counted.
    pub fn total(&self) -> u64 {
        self.ok
            + self.errors.iter().map(|(_, _, c)| c).sum::<u64>()
            + self.other_errors.iter().map(|(_, c)| c).sum::<u64>()
    }
}

/// One connection's measurements.
#[derive(Debug)]
pub struct Recorder {
    /// Latency of every answered event, µs.
    all: Histogram<u64>,
    /// Latency of the events that succeeded, µs (W4: "p99 of admitted").
    ok_latency: Histogram<u64>,
    events: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    /// Frames answered.
    frames: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            all: histogram(),
            ok_latency: histogram(),
            events: 0,
            ok: 0,
            errors: BTreeMap::new(),
            frames: 0,
        }
    }
}

impl Recorder {
    /// Records one answered frame of `tally.total()` events.
    pub fn frame(&mut self, latency: Duration, tally: &FrameTally) {
        let us = (latency.as_micros() as u64).max(1);
        let n = tally.total();
        self.frames += 1;
        self.events += n;
        self.ok += tally.ok;
        if n > 0 {
            self.all.saturating_record_n(us, n);
        }
        if tally.ok > 0 {
            self.ok_latency.saturating_record_n(us, tally.ok);
        }
        for &(kind, detail, c) in &tally.errors {
            if detail.is_empty() {
                self.add_error(kind, c);
            } else {
                self.add_error(&format!("{kind}:{detail}"), c);
            }
        }
        for (kind, c) in &tally.other_errors {
            self.add_error(kind, *c);
        }
    }

    /// Counts `n` events that got no answer because their connection failed
    /// (no latency: they never completed).
    pub fn lost(&mut self, kind: &str, n: u64) {
        if n > 0 {
            self.add_error(kind, n);
            self.events += n;
        }
    }

    fn add_error(&mut self, kind: &str, n: u64) {
        match self.errors.get_mut(kind) {
            Some(c) => *c += n,
            None => {
                self.errors.insert(kind.to_owned(), n);
            }
        }
    }

    /// Folds another connection's measurements into this one.
    pub fn merge(&mut self, other: &Recorder) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.all.add(&other.all);
        let _ = self.ok_latency.add(&other.ok_latency);
        self.events += other.events;
        self.ok += other.ok;
        self.frames += other.frames;
        for (k, c) in &other.errors {
            self.add_error(k, *c);
        }
    }
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

/// The result of one load run: BENCH.md's contract fields first, then the
/// details and the configuration echo.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LoadReport {
    /// Events answered (ok + errors, including events lost with a failed
    /// connection).
    pub events: u64,
    /// Wall time from the first send to the last answer.
    pub seconds: f64,
    /// `events / seconds`.
    pub events_per_s: f64,
    /// Median latency of all answered events, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// Events that did not succeed.
    pub errors: u64,
    /// `errors` by kind (`overloaded`, `rejected:<code>`, `duplicate`,
    /// `conflict`, `error_frame:<code>`, `http_<status>`, `redis_error`,
    /// `connection`).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Events that succeeded (applied; accepted under `ack=none`; a non-error
    /// reply from Redis).
    pub ok: u64,
    /// `ok / seconds`: admitted events per second under overload.
    pub ok_per_s: f64,
    /// Latency of every answered event.
    pub latency: Latency,
    /// Latency of the events that succeeded only (W4's "admitted").
    pub ok_latency: Latency,
    /// Frames (requests, pipelines) answered.
    pub frames: u64,
    /// Events a failed connection never sent (not in `events`).
    pub not_sent: u64,
    /// Why connections stopped early, if any did.
    pub failures: Vec<String>,
    /// The configuration that produced this report.
    pub config: serde_json::Value,
}

impl LoadReport {
    /// Builds the report from the merged recorder.
    pub fn new(rec: &Recorder, elapsed: Duration, config: serde_json::Value) -> LoadReport {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let errors: u64 = rec.errors.values().sum();
        let latency = Latency::of(&rec.all);
        LoadReport {
            events: rec.events,
            seconds,
            events_per_s: rec.events as f64 / seconds,
            p50_ms: latency.p50_ms,
            p99_ms: latency.p99_ms,
            p999_ms: latency.p999_ms,
            max_ms: latency.max_ms,
            errors,
            errors_by_kind: rec.errors.clone(),
            ok: rec.ok,
            ok_per_s: rec.ok as f64 / seconds,
            latency,
            ok_latency: Latency::of(&rec.ok_latency),
            frames: rec.frames,
            not_sent: 0,
            failures: Vec::new(),
            config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_weight_latency_by_events_and_counts_add_up() {
        let mut a = Recorder::default();
        let mut t = FrameTally {
            ok: 999,
            ..FrameTally::default()
        };
        t.error("overloaded", "", 1);
        a.frame(Duration::from_millis(1), &t);
        t.clear();
        t.ok = 10;
        a.frame(Duration::from_millis(100), &t);
        let mut b = Recorder::default();
        b.lost("connection", 5);
        a.merge(&b);
        let r = LoadReport::new(&a, Duration::from_secs(2), serde_json::Value::Null);
        assert_eq!(r.events, 1015);
        assert_eq!(r.ok, 1009);
        assert_eq!(r.errors, 6);
        assert_eq!(r.errors_by_kind["overloaded"], 1);
        assert_eq!(r.errors_by_kind["connection"], 5);
        assert_eq!(r.ok + r.errors, r.events);
        assert!((r.p50_ms - 1.0).abs() < 0.01, "p50 {}", r.p50_ms);
        assert!((r.max_ms - 100.0).abs() < 0.2, "max {}", r.max_ms);
        assert!((r.events_per_s - 507.5).abs() < 1e-6);
    }
}
