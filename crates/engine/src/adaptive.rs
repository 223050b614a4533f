//! `AdaptiveCapacity`: the control loop that resizes a shard queue so its p95
//! queue wait tracks a target (DESIGN.md §1 "Adaptive capacity";
//! docs/adaptive-queue.md explains the law and shows a run).
//!
//! It owns a sliding window of queue-wait samples and the previous interval's
//! counters; it decides, once per interval, a new capacity. It is a pure state
//! machine over (samples, counters, now): no clock, no queue — the shard
//! worker feeds it and applies its answer, and the tests drive it in simulated
//! time.
//!
//! # The law
//!
//! Little's law says a queue holding `L` events served at `μ` events/s makes
//! each wait about `L / μ`. To keep the wait near `target`, hold about
//! `target × μ` events. So:
//!
//! - p95 wait above `target × (1 + band)` → shrink toward
//!   `capacity × target / p95` (the measured correction: it also covers the
//!   wait behind the batch in flight, which Little's law on the queue alone
//!   does not see), by at most one step (producers meet a full queue
//!   earlier: pushback instead of latency);
//! - the queue filled up (or refused events) while p95 wait stayed below
//!   `target × (1 − band)` → a burst the consumer can absorb: grow toward
//!   `target × μ` (at least one step);
//! - otherwise hold (the hysteresis band keeps it from chasing noise).
//!
//! Each change is bounded by `max_step` (a fraction of the current capacity),
//! needs `min_samples` samples in the window, and stays within `[min, max]`;
//! after a change the window starts empty, so the next decision sees only
//! waits measured under the new capacity (no windup).
//!
//! Invariant: `min ≤ capacity ≤ max` after every decision; with fewer than
//! `min_samples` samples nothing changes.

use std::collections::VecDeque;
use std::time::Duration;

/// The p95 queue wait the controller holds when a front end does not say:
/// 10 ms is well under a human-noticeable delay and well above a batch
/// deadline, so batching still has room to work.
pub const DEFAULT_TARGET_WAIT: Duration = Duration::from_millis(10);

/// The smallest capacity the controller shrinks a queue to when a front
/// end does not say: 64 events (it was 1,024, which put a 10 ms target out
/// of reach for slow consumers; capped at the queue capacity).
pub const DEFAULT_MIN_CAPACITY: usize = 64;

/// Settings of the controller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveConfig {
    /// The p95 queue wait to hold.
    pub target: Duration,
    /// Smallest capacity (events).
    pub min: usize,
    /// Largest capacity (events).
    pub max: usize,
    /// How often a decision is made.
    pub interval: Duration,
    /// How far back samples count.
    pub window: Duration,
    /// Fewest samples (events) in the window for a decision.
    pub min_samples: u64,
    /// Relative dead band around the target (0.2 = ±20 %).
    pub band: f64,
    /// Largest change per decision, as a fraction of the current capacity
    /// (at least one event).
    pub max_step: f64,
}

impl AdaptiveConfig {
    /// Defaults around a target: 100 ms interval, 1 s window, 50 samples,
    /// ±20 % band, steps of at most 50 %.
    pub fn new(target: Duration, min: usize, max: usize) -> Self {
        AdaptiveConfig {
            target,
            min: min.max(1),
            max: max.max(min.max(1)),
            interval: Duration::from_millis(100),
            window: Duration::from_secs(1),
            min_samples: 50,
            band: 0.2,
            max_step: 0.5,
        }
    }
}

/// Counters of one queue over one interval, as the controller needs them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IntervalCounters {
    /// Events admitted during the interval.
    pub arrived: u64,
    /// Events refused or dropped for lack of room during the interval.
    pub refused: u64,
    /// Events the consumer finished during the interval.
    pub served: u64,
    /// Time the consumer spent applying during the interval.
    pub busy: Duration,
    /// Largest depth seen during the interval.
    pub peak_depth: usize,
}

/// One decision, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Capacity before.
    pub from: usize,
    /// Capacity after.
    pub to: usize,
    /// p95 wait of the window.
    pub p95_wait: Duration,
    /// Arrival rate, events/s.
    pub arrival_rate: f64,
    /// Service rate while busy, events/s.
    pub service_rate: f64,
}

/// The controller of one queue.
#[derive(Debug, Clone)]
pub struct AdaptiveCapacity {
    config: AdaptiveConfig,
    capacity: usize,
    /// (time in µs, wait in µs, events) of recent sub-batches, oldest first.
    samples: VecDeque<(u64, u64, u64)>,
    /// Events in `samples`.
    sample_events: u64,
    /// Smoothed service rate (events per busy second).
    service_rate: f64,
    last_decision: Option<Decision>,
    direction_changes: u64,
    last_direction: i8,
}

impl AdaptiveCapacity {
    /// A controller starting at `initial` (clamped into `[min, max]`).
    pub fn new(config: AdaptiveConfig, initial: usize) -> Self {
        AdaptiveCapacity {
            capacity: initial.clamp(config.min, config.max),
            config,
            samples: VecDeque::new(),
            sample_events: 0,
            service_rate: 0.0,
            last_decision: None,
            direction_changes: 0,
            last_direction: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AdaptiveConfig {
        &self.config
    }

    /// The capacity decided so far.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How often the direction of change flipped (grow ↔ shrink).
    pub fn direction_changes(&self) -> u64 {
        self.direction_changes
    }

    /// The last decision that changed the capacity.
    pub fn last_decision(&self) -> Option<Decision> {
        self.last_decision
    }

    /// Records that `events` events waited `wait` in the queue, at `now`
    /// (any monotonic clock, as a duration since a fixed origin).
    pub fn sample(&mut self, now: Duration, wait: Duration, events: u64) {
        if events == 0 {
            return;
        }
        self.samples
            .push_back((now.as_micros() as u64, wait.as_micros() as u64, events));
        self.sample_events += events;
        // A hard bound on memory whatever the rate.
        while self.samples.len() > 65_536 {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((_, _, n)) = self.samples.pop_front() {
            self.sample_events -= n;
        }
    }

    fn expire(&mut self, now: Duration) {
        let horizon = now.saturating_sub(self.config.window).as_micros() as u64;
        while self.samples.front().is_some_and(|s| s.0 < horizon) {
            self.pop_oldest();
        }
    }

    /// The q-quantile of queue wait over the window (events-weighted).
    pub fn wait_quantile(&mut self, now: Duration, q: f64) -> Option<Duration> {
        self.expire(now);
        if self.sample_events == 0 {
            return None;
        }
        let mut v: Vec<(u64, u64)> = self.samples.iter().map(|s| (s.1, s.2)).collect();
        v.sort_unstable_by_key(|s| s.0);
        let rank = ((self.sample_events as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (wait, n) in v {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_micros(wait));
            }
        }
        None
    }

    /// Decides the capacity at the end of an interval. Returns the decision
    /// when the capacity changed.
    pub fn tick(&mut self, now: Duration, c: IntervalCounters) -> Option<Decision> {
        let interval_s = self.config.interval.as_secs_f64().max(1e-6);
        if c.busy > Duration::ZERO && c.served > 0 {
            let rate = c.served as f64 / c.busy.as_secs_f64();
            self.service_rate = if self.service_rate == 0.0 {
                rate
            } else {
                0.7 * self.service_rate + 0.3 * rate
            };
        }
        self.expire(now);
        if self.sample_events < self.config.min_samples || self.service_rate <= 0.0 {
            return None;
        }
        let p95 = self.wait_quantile(now, 0.95)?;
        let target = self.config.target.as_secs_f64();
        let p95_s = p95.as_secs_f64();
        let ideal = (target * self.service_rate).max(1.0);
        let cap = self.capacity as f64;
        let step = (cap * self.config.max_step).max(1.0);
        let full = c.refused > 0 || c.peak_depth >= self.capacity;
        let wanted = if p95_s > target * (1.0 + self.config.band) {
            // Too slow: shrink, by what the measurement says (capacity scaled
            // by target / p95: the wait grows with what is queued ahead) and
            // by Little's law (what the consumer drains in `target`),
            // at most one step at a time.
            (cap * target / p95_s).max(cap - step)
        } else if full && p95_s < target * (1.0 - self.config.band) {
            // A burst the consumer absorbs in time: grow.
            (cap + step).min(ideal.max(cap + 1.0))
        } else {
            cap
        };
        let new = (wanted.round() as usize).clamp(self.config.min, self.config.max);
        if new == self.capacity {
            return None;
        }
        let dir: i8 = if new > self.capacity { 1 } else { -1 };
        if self.last_direction != 0 && dir != self.last_direction {
            self.direction_changes += 1;
        }
        self.last_direction = dir;
        let d = Decision {
            from: self.capacity,
            to: new,
            p95_wait: p95,
            arrival_rate: c.arrived as f64 / interval_s,
            service_rate: self.service_rate,
        };
        self.capacity = new;
        self.last_decision = Some(d);
        // Judge the next decision on waits measured under the new capacity
        // only: a window still full of waits from before a cut would keep
        // cutting (windup). `min_samples` must be met again first.
        self.samples.clear();
        self.sample_events = 0;
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    //! Deterministic simulations in virtual time: a single-server queue with
    //! a given service time per event, fed by an arrival trace, its capacity
    //! set by the controller (or fixed), refusing what does not fit (the
    //! `reject` policy). Each test states its convergence bound.

    use super::*;

    /// Result of one simulated run.
    struct Run {
        admitted: u64,
        refused: u64,
        /// p95 wait (ms) of events admitted after `settle`.
        p95_after_settle_ms: f64,
        capacities: Vec<usize>,
        direction_changes: u64,
    }

    /// Simulates `secs` seconds in steps of 1 ms. `rate(t_ms)` = arrivals per
    /// ms; `service_us(t_ms)` = service time per event.
    fn simulate(
        secs: u64,
        initial: usize,
        adaptive: Option<AdaptiveConfig>,
        rate: impl Fn(u64) -> f64,
        service_us: impl Fn(u64) -> f64,
        settle_ms: u64,
    ) -> Run {
        let mut ctl = adaptive.map(|c| AdaptiveCapacity::new(c, initial));
        let mut capacity = initial;
        let mut queue: VecDeque<u64> = VecDeque::new(); // arrival time in µs
        let mut credit = 0.0f64; // fractional arrivals
        let mut work_left_us = 0.0f64; // service budget carried over
        let mut counters = IntervalCounters::default();
        let mut next_tick_ms = 100u64;
        let (mut admitted, mut refused) = (0u64, 0u64);
        let mut waits_after: Vec<f64> = Vec::new();
        let mut capacities = vec![capacity];
        for t in 0..secs * 1000 {
            let now_us = t * 1000;
            credit += rate(t);
            while credit >= 1.0 {
                credit -= 1.0;
                if queue.len() < capacity {
                    queue.push_back(now_us);
                    admitted += 1;
                    counters.arrived += 1;
                } else {
                    refused += 1;
                    counters.refused += 1;
                }
            }
            counters.peak_depth = counters.peak_depth.max(queue.len());
            // Serve for 1 ms.
            work_left_us += 1000.0;
            let s = service_us(t);
            let mut busy_us = 0.0;
            while work_left_us >= s {
                let Some(arrived) = queue.pop_front() else {
                    break;
                };
                work_left_us -= s;
                busy_us += s;
                let wait = now_us.saturating_sub(arrived);
                counters.served += 1;
                if let Some(c) = ctl.as_mut() {
                    c.sample(
                        Duration::from_micros(now_us),
                        Duration::from_micros(wait),
                        1,
                    );
                }
                if t >= settle_ms {
                    waits_after.push(wait as f64 / 1000.0);
                }
            }
            if queue.is_empty() {
                work_left_us = 0.0;
            }
            counters.busy += Duration::from_micros(busy_us as u64);
            if t + 1 == next_tick_ms {
                next_tick_ms += 100;
                if let Some(c) = ctl.as_mut() {
                    c.tick(Duration::from_micros(now_us), counters);
                    capacity = c.capacity();
                }
                capacities.push(capacity);
                counters = IntervalCounters::default();
            }
        }
        waits_after.sort_by(f64::total_cmp);
        let p95 = waits_after
            .get(((waits_after.len() as f64) * 0.95) as usize)
            .copied()
            .unwrap_or(0.0);
        Run {
            admitted,
            refused,
            p95_after_settle_ms: p95,
            capacities,
            direction_changes: ctl.map_or(0, |c| c.direction_changes()),
        }
    }

    fn cfg() -> AdaptiveConfig {
        AdaptiveConfig::new(Duration::from_millis(20), 10, 5_000)
    }

    #[test]
    fn step_up_in_arrivals_converges_and_holds_p95() {
        // Consumer: 1 ms/event (1,000/s). Arrivals: 300/s, then 3,000/s
        // from t = 1 s. Ideal capacity = 20 ms × 1,000/s = 20.
        let run = simulate(
            6,
            2_000,
            Some(cfg()),
            |t| if t < 1_000 { 0.3 } else { 3.0 },
            |_| 1_000.0,
            3_000,
        );
        // Converges within 20 intervals (2 s) of the step.
        let at = run.capacities[10 + 20];
        assert!(at <= 30, "capacity after 20 intervals: {at}");
        assert!(
            run.p95_after_settle_ms <= 20.0 * 1.5,
            "p95 after convergence {} ms",
            run.p95_after_settle_ms
        );
        assert!(
            run.direction_changes <= 4,
            "oscillation: {}",
            run.direction_changes
        );
    }

    #[test]
    fn a_consumer_that_slows_down_is_followed() {
        // 2,000 arrivals/s; the consumer goes from 0.2 ms to 1 ms per event
        // at t = 2 s (5,000/s → 1,000/s).
        let run = simulate(
            8,
            200,
            Some(cfg()),
            |_| 2.0,
            |t| if t < 2_000 { 200.0 } else { 1_000.0 },
            4_000,
        );
        assert!(
            run.p95_after_settle_ms <= 30.0,
            "p95 {} ms",
            run.p95_after_settle_ms
        );
        let last = *run.capacities.last().unwrap_or(&0);
        assert!((10..=40).contains(&last), "capacity {last}");
        assert!(run.direction_changes <= 4);
    }

    #[test]
    fn a_burst_makes_a_small_queue_grow() {
        // Consumer 0.1 ms/event (10,000/s; ideal 200). Starting at 10, bursts
        // of 5,000/s for 200 ms every second: the queue fills with short waits.
        let run = simulate(
            5,
            10,
            Some(cfg()),
            |t| if t % 1_000 < 200 { 12.0 } else { 0.5 },
            |_| 100.0,
            2_000,
        );
        let last = *run.capacities.last().unwrap_or(&0);
        assert!(last > 50, "grew to {last}");
        assert!(run.p95_after_settle_ms <= 20.0 * 1.2);
    }

    #[test]
    fn adaptive_holds_p95_where_a_fixed_large_queue_cannot() {
        let rate = |t: u64| if t < 1_000 { 0.3 } else { 3.0 };
        let fixed = simulate(6, 2_000, None, rate, |_| 1_000.0, 3_000);
        let adaptive = simulate(6, 2_000, Some(cfg()), rate, |_| 1_000.0, 3_000);
        assert!(
            fixed.p95_after_settle_ms > 1_000.0,
            "fixed p95 {}",
            fixed.p95_after_settle_ms
        );
        assert!(adaptive.p95_after_settle_ms <= 30.0);
        // Same consumer: both admit about what it serves.
        assert!(adaptive.admitted > 0 && fixed.admitted > 0);
    }

    #[test]
    fn adaptive_admits_more_than_a_fixed_small_queue_at_the_same_p95() {
        let rate = |t: u64| if t % 1_000 < 200 { 12.0 } else { 0.5 };
        let fixed = simulate(5, 10, None, rate, |_| 100.0, 2_000);
        let adaptive = simulate(5, 10, Some(cfg()), rate, |_| 100.0, 2_000);
        assert!(
            adaptive.admitted > fixed.admitted,
            "{} vs {}",
            adaptive.admitted,
            fixed.admitted
        );
        assert!(adaptive.refused < fixed.refused);
        assert!(adaptive.p95_after_settle_ms <= 24.0);
    }

    #[test]
    fn nothing_changes_below_the_minimum_sample_count() {
        let mut c = AdaptiveCapacity::new(cfg(), 100);
        for i in 0..10 {
            c.sample(Duration::from_millis(i), Duration::from_secs(1), 1);
        }
        let counters = IntervalCounters {
            served: 10,
            busy: Duration::from_millis(10),
            ..IntervalCounters::default()
        };
        assert_eq!(c.tick(Duration::from_millis(100), counters), None);
        assert_eq!(c.capacity(), 100);
    }

    #[test]
    fn capacity_stays_within_bounds() {
        let mut c =
            AdaptiveCapacity::new(AdaptiveConfig::new(Duration::from_millis(1), 7, 9), 1_000);
        assert_eq!(c.capacity(), 9);
        for i in 0..100u64 {
            c.sample(Duration::from_millis(i * 10), Duration::from_secs(5), 100);
            c.tick(
                Duration::from_millis(i * 10),
                IntervalCounters {
                    served: 100,
                    busy: Duration::from_millis(100),
                    peak_depth: 9,
                    ..IntervalCounters::default()
                },
            );
            assert!((7..=9).contains(&c.capacity()));
        }
    }
}
