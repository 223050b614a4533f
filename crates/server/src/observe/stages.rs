//! `StageClocks`: the latency of the pipeline stages that the front ends
//! see and the engine does not — **decode** (bytes → events), **admit**
//! (waiting for room in the shard queues) and **ack** (admitted → results
//! ready: queue wait + apply + commit, as a producer experiences it) — per
//! source (HTTP request, TCP frame).
//!
//! It owns one HDR histogram per (source, stage), in µs, recorded once per
//! request or frame. The sampler [`take`](StageClocks::take)s them once per
//! interval: the dashboard gets interval quantiles, and the Prometheus
//! histograms are fed from the same counts (so a request is timed once).
//!
//! Invariant: a recorder holds a histogram's lock only for one `record`; the
//! sampler swaps a histogram out under the same lock, so every sample lands
//! in exactly one interval.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Where a request or frame came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `POST /v1/events`.
    Http,
    /// A TCP EVENTS frame.
    Tcp,
}

impl Source {
    /// Every source, in index order.
    pub(crate) const ALL: [Source; 2] = [Source::Http, Source::Tcp];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Http => "http",
            Source::Tcp => "tcp",
        }
    }
}

/// A stage timed by the front ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Bytes → validated events.
    Decode,
    /// Waiting for room in the shard queues (`block` policy).
    Admit,
    /// Admitted → every result known (queue wait, apply, commit).
    Ack,
}

impl Stage {
    /// Every stage, in index order.
    pub(crate) const ALL: [Stage; 3] = [Stage::Decode, Stage::Admit, Stage::Ack];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Admit => "admit",
            Stage::Ack => "ack",
        }
    }
}

/// Highest value a histogram holds, µs (longer samples are clamped to it).
const MAX_US: u64 = 600_000_000;

fn new_hist() -> Histogram<u64> {
    // 2 significant figures up to 10 minutes: ≈ 10 KiB each. Constant,
    // valid bounds: construction cannot fail.
    Histogram::new_with_bounds(1, MAX_US, 2).expect("valid constant histogram bounds")
}

/// The front-end stage clocks of one server.
#[derive(Debug)]
pub(crate) struct StageClocks {
    /// Indexed `[source][stage]`.
    cells: [[Mutex<Histogram<u64>>; 3]; 2],
}

impl Default for StageClocks {
    fn default() -> Self {
        let row = || std::array::from_fn(|_| Mutex::new(new_hist()));
        StageClocks {
            cells: [row(), row()],
        }
    }
}

/// One interval's histograms, taken out of the clocks.
#[derive(Debug)]
pub(crate) struct StageInterval {
    /// Indexed `[source][stage]`, µs.
    pub cells: [[Histogram<u64>; 3]; 2],
}

impl StageInterval {
    /// The histogram of one (source, stage).
    pub(crate) fn get(&self, source: Source, stage: Stage) -> &Histogram<u64> {
        &self.cells[source as usize][stage as usize]
    }

    /// One stage over every source.
    pub(crate) fn merged(&self, stage: Stage) -> Histogram<u64> {
        let mut h = new_hist();
        for source in Source::ALL {
            // Same bounds: adding cannot fail.
            let _ = h.add(self.get(source, stage));
        }
        h
    }
}

impl StageClocks {
    /// Records one request's or frame's time in `stage`.
    pub(crate) fn record(&self, source: Source, stage: Stage, took: Duration) {
        let us = (took.as_micros() as u64).clamp(1, MAX_US);
        let cell = &self.cells[source as usize][stage as usize];
        let mut h = match cell.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        let _ = h.record(us);
    }

    /// Takes every histogram out (leaving empty ones): the interval since
    /// the last take.
    pub(crate) fn take(&self) -> StageInterval {
        let take = |cell: &Mutex<Histogram<u64>>| {
            let mut h = match cell.lock() {
                Ok(h) => h,
                Err(p) => p.into_inner(),
            };
            std::mem::replace(&mut *h, new_hist())
        };
        StageInterval {
            cells: std::array::from_fn(|s| std::array::from_fn(|t| take(&self.cells[s][t]))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_lands_in_exactly_one_interval() {
        let clocks = StageClocks::default();
        clocks.record(Source::Tcp, Stage::Decode, Duration::from_micros(120));
        clocks.record(Source::Http, Stage::Decode, Duration::from_micros(80));
        clocks.record(Source::Http, Stage::Ack, Duration::from_millis(3));
        let first = clocks.take();
        assert_eq!(first.get(Source::Tcp, Stage::Decode).len(), 1);
        assert_eq!(first.merged(Stage::Decode).len(), 2);
        assert_eq!(first.get(Source::Http, Stage::Ack).len(), 1);
        assert_eq!(first.get(Source::Tcp, Stage::Admit).len(), 0);
        let second = clocks.take();
        assert_eq!(second.merged(Stage::Decode).len(), 0);
    }

    #[test]
    fn zero_and_huge_durations_are_clamped_not_lost() {
        let clocks = StageClocks::default();
        clocks.record(Source::Http, Stage::Admit, Duration::ZERO);
        clocks.record(Source::Http, Stage::Admit, Duration::from_secs(100_000));
        assert_eq!(clocks.take().get(Source::Http, Stage::Admit).len(), 2);
    }
}
