//! The sampler task: once per [`SAMPLE_INTERVAL`] it reads the engine's
//! figures and the front-end counters, turns the interval into a
//! [`Sample`] (pushed into the ring the dashboard reads), copies the
//! figures into the Prometheus recorder, drains the recorder's histograms,
//! and logs `overload` while the server refuses work.
//!
//! It owns the previous [`Reading`] (the base of every delta) and the
//! overload episode. It holds no lock across an await, and it stops at the
//! server's stop signal; it holds no [`TaskGuard`](crate::shutdown::TaskGuard)
//! because nothing it does must finish before the engine shuts down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sample::{Reading, Sample};
use crate::server::Shared;
use crate::shutdown::Shutdown;

/// How often a sample is taken (the dashboard's and `top`'s refresh).
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// While refusals continue, `overload` is logged again this often.
const OVERLOAD_LOG_EVERY: Duration = Duration::from_secs(10);

/// Reads the cumulative figures now.
pub(crate) fn read(shared: &Shared) -> Reading {
    Reading {
        at: Instant::now(),
        stats: shared.engine().map(|e| e.stats()),
        counters: shared.counters.snapshot(),
    }
}

/// The adaptive target of the open engine, seconds (`None`: fixed capacity).
pub(crate) fn target_wait_s(shared: &Shared) -> Option<f64> {
    shared
        .engine()
        .and_then(|e| e.config().adaptive.map(|a| a.target.as_secs_f64()))
}

/// Runs until the stop signal.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: Shutdown) {
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The first tick is immediate: it marks the start of the first interval.
    tick.tick().await;
    let observe = &shared.observe;
    let mut prev = read(&shared);
    // Samples of the time before the first tick are dropped with it.
    drop(observe.stages.take());
    let mut seq = 0u64;
    let mut overload = OverloadEpisode::default();
    loop {
        tokio::select! {
            biased;
            _ = stop.recv() => break,
            _ = tick.tick() => {}
        }
        let cur = read(&shared);
        let stages = observe.stages.take();
        seq += 1;
        let uptime_s = shared.started.elapsed().as_secs_f64();
        let sample = Sample::between(seq, &prev, &cur, &stages, uptime_s);
        observe.prometheus.feed_stages(&stages);
        observe.prometheus.export(
            cur.stats.as_ref(),
            &cur.counters,
            uptime_s,
            target_wait_s(&shared),
            None,
        );
        observe.prometheus.upkeep();
        overload.observe(&sample, Instant::now());
        observe.push(sample);
        prev = cur;
    }
    tracing::debug!("observe: sampler stopped");
}

/// An overload episode: from the first interval with refusals to the first
/// without. Logs `overload` when one starts (and every
/// [`OVERLOAD_LOG_EVERY`] while it lasts) and `overload_cleared` when it ends.
#[derive(Debug, Default)]
struct OverloadEpisode {
    /// When the episode started.
    since: Option<Instant>,
    /// When `overload` was last logged.
    logged: Option<Instant>,
}

impl OverloadEpisode {
    fn observe(&mut self, s: &Sample, now: Instant) {
        let r = s.refusals_per_s;
        let refusing = r.overloaded + r.dropped + r.http_busy + r.tcp_refused > 0.0;
        if refusing {
            let since = *self.since.get_or_insert(now);
            if self
                .logged
                .is_none_or(|t| now.duration_since(t) >= OVERLOAD_LOG_EVERY)
            {
                self.logged = Some(now);
                let fullest = s
                    .shards
                    .iter()
                    .max_by_key(|sh| sh.depth * 1000 / sh.capacity.max(1));
                tracing::warn!(
                    overloaded_per_s = r.overloaded,
                    dropped_per_s = r.dropped,
                    http_busy_per_s = r.http_busy,
                    tcp_refused_per_s = r.tcp_refused,
                    admitted_per_s = s.admitted_per_s,
                    for_s = now.duration_since(since).as_secs(),
                    fullest_shard = fullest.map(|f| f.shard),
                    depth = fullest.map(|f| f.depth),
                    capacity = fullest.map(|f| f.capacity),
                    "overload"
                );
                if let Some(why) = oversize_explanation(s) {
                    tracing::warn!("{why}");
                }
            }
        } else if let Some(since) = self.since.take() {
            self.logged = None;
            tracing::info!(
                lasted_s = now.duration_since(since).as_secs_f64(),
                "overload_cleared"
            );
        }
    }
}

/// Why a queue that looks nearly empty refuses: sub-batches larger than its
/// capacity fit only an empty queue. `None` when no shard refused one in
/// the interval.
fn oversize_explanation(s: &Sample) -> Option<String> {
    let worst = s
        .shards
        .iter()
        .filter(|sh| sh.refused_oversize_per_s > 0.0)
        .max_by(|a, b| {
            a.refused_oversize_per_s
                .total_cmp(&b.refused_oversize_per_s)
        })?;
    Some(format!(
        "overload: shard {} refuses sub-batches of up to {} events, larger than its queue \
         capacity of {} ({:.0} such events/s): a sub-batch larger than the capacity fits only \
         an empty queue, so it is refused while the queue looks nearly empty. Raise the \
         (adaptive minimum) capacity to at least {} events, or send smaller frames \
         (docs/adaptive-queue.md)",
        worst.shard,
        worst.largest_refused,
        worst.capacity,
        worst.refused_oversize_per_s,
        worst.largest_refused
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::sample::{Refusals, ShardSample};

    #[test]
    fn oversize_refusals_are_explained_and_others_are_not() {
        let mut s = Sample::default();
        s.shards.push(ShardSample {
            shard: 1,
            capacity: 64,
            refused_per_s: 900.0,
            ..ShardSample::default()
        });
        assert_eq!(
            oversize_explanation(&s),
            None,
            "a full queue needs no story"
        );
        s.shards[0].refused_oversize_per_s = 750.0;
        s.shards[0].largest_refused = 250;
        let why = oversize_explanation(&s).expect("explained");
        assert!(
            why.contains("shard 1") && why.contains("250 events"),
            "{why}"
        );
        assert!(why.contains("capacity of 64"), "{why}");
    }

    #[test]
    fn an_episode_starts_with_refusals_and_ends_without() {
        let mut e = OverloadEpisode::default();
        let t0 = Instant::now();
        let mut s = Sample {
            refusals_per_s: Refusals {
                overloaded: 10.0,
                ..Refusals::default()
            },
            ..Sample::default()
        };
        e.observe(&s, t0);
        assert_eq!(e.since, Some(t0));
        assert_eq!(e.logged, Some(t0));
        e.observe(&s, t0 + Duration::from_secs(1));
        assert_eq!(e.logged, Some(t0), "rate-limited");
        e.observe(&s, t0 + Duration::from_secs(11));
        assert_eq!(e.logged, Some(t0 + Duration::from_secs(11)));
        s.refusals_per_s = Refusals::default();
        e.observe(&s, t0 + Duration::from_secs(12));
        assert_eq!(e.since, None);
    }
}
