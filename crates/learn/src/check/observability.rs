//! Lesson 6 checks: the program measures itself. `stats` reports total time per
//! stage (`stages_ms`) and queue-wait percentiles, in milliseconds.
//!
//! The observed run: `WORKERS=1`, `MAX_BATCH=10`, a slow consumer
//! (`APPLY_DELAY_US=1000`, per event, part of the `apply` stage), 400 events
//! sent at once. Because the
//! checker injects a known apply time, it can tell a real timer from a made-up
//! number or a wrong unit: `apply` must account for at least 80 % of it.
//!
//! Invariant: stage totals other than `queue_wait` (a sum over events, which
//! wait concurrently) are each at most the program's wall time; the sum of all
//! stages is not bounded (stages overlap across tasks).

use std::time::Instant;

use serde_json::Value;

use super::basics::{finish, start};
use super::harness::HarnessError;
use super::model::{Ev, ids};
use super::{CheckFailure, Ctx, Measured, Verdict, ms_between, quantile};

const N: usize = 400;
const DELAY_US: u64 = 1000;
/// Small batches spread the queue waits from 0 to the whole run (~400 ms),
/// so a percentile and the mean differ by far.
const MAX_BATCH: u64 = 10;

/// What the observed run saw.
#[derive(Debug, Clone)]
pub(crate) struct ObservedRun {
    stats: Value,
    wall_ms: f64,
    /// Ack latencies seen by the checker (send → ack), p50 and p95.
    ack_p50_ms: f64,
    ack_p95_ms: f64,
}

fn observed_run(ctx: &mut Ctx<'_>) -> Result<ObservedRun, String> {
    let mut spec = match ctx.spec() {
        Ok(spec) => spec,
        Err(CheckFailure::Harness(e)) => return Err(e.to_string()),
        Err(CheckFailure::Internal(m)) => return Err(m),
    };
    spec.set("STATECRAFT_WORKERS", 1)
        .set("STATECRAFT_APPLY_DELAY_US", DELAY_US)
        .set("STATECRAFT_MAX_BATCH", MAX_BATCH);
    let run = || -> Result<ObservedRun, HarnessError> {
        let spawned = Instant::now();
        let mut h = start(&spec)?;
        let evs: Vec<Ev> = (1..=N)
            .map(|i| Ev::incr(format!("o{i}"), format!("obs{}", i % 20), 1))
            .collect();
        let sent = Instant::now();
        h.send_lines(evs.iter().map(Ev::line));
        let ids = ids(&evs);
        h.await_replies(&ids)?;
        let latencies: Vec<f64> = ids
            .iter()
            .filter_map(|id| h.event_reply(id).map(|r| ms_between(sent, r.at)))
            .collect();
        let stats = h.stats()?;
        let wall_ms = ms_between(spawned, Instant::now());
        let _ = finish(&mut h)?;
        Ok(ObservedRun {
            stats,
            wall_ms,
            ack_p50_ms: quantile(&latencies, 0.5),
            ack_p95_ms: quantile(&latencies, 0.95),
        })
    };
    run().map_err(|e| e.to_string())
}

fn shared(ctx: &mut Ctx<'_>) -> Result<ObservedRun, String> {
    if ctx.observed.is_none() {
        let run = observed_run(ctx);
        ctx.observed = Some(run);
    }
    ctx.observed
        .clone()
        .unwrap_or_else(|| Err("observed run missing".into()))
}

/// `stage_timings`: `stats.stages_ms` with `queue_wait` and `apply`, sane values.
pub(crate) fn stage_timings(ctx: &mut Ctx<'_>) -> Measured {
    let run = match shared(ctx) {
        Ok(run) => run,
        Err(e) => return Ok(Verdict::fail("observed run failed", e)),
    };
    let Some(stages) = run.stats.get("stages_ms").and_then(Value::as_object) else {
        return Ok(Verdict::fail(
            "stats has no stages_ms",
            format!(
                "the stats reply needs `stages_ms`: an object of stage name → total milliseconds (at least queue_wait and apply); got {}",
                run.stats
            ),
        ));
    };
    let mut problems = Vec::new();
    let mut shown = Vec::new();
    for required in ["queue_wait", "apply"] {
        if !stages.contains_key(required) {
            problems.push(format!("stage `{required}` is missing"));
        }
    }
    for (name, value) in stages {
        match value.as_f64() {
            Some(ms) if ms >= 0.0 && ms.is_finite() => {
                shown.push(format!("{name} {ms:.0} ms"));
                if name != "queue_wait" && ms > run.wall_ms * 1.05 + 5.0 {
                    problems.push(format!(
                        "stage `{name}` totals {ms:.0} ms, more than the {:.0} ms the program ran (milliseconds, not microseconds?)",
                        run.wall_ms
                    ));
                }
            }
            _ => problems.push(format!(
                "stage `{name}` is not a non-negative number: {value}"
            )),
        }
    }
    let injected_ms = N as f64 * DELAY_US as f64 / 1000.0;
    if let Some(apply) = stages.get("apply").and_then(Value::as_f64)
        && apply < 0.8 * injected_ms
    {
        problems.push(format!(
            "per-stage timers: `apply` totals {apply:.0} ms, but the checker injected {injected_ms:.0} ms of apply delay ({N} events × APPLY_DELAY_US={DELAY_US}): time apply around the work, in milliseconds"
        ));
    }
    Ok(Verdict::judge(
        problems.is_empty(),
        format!("{} (wall {:.0} ms)", shown.join(", "), run.wall_ms),
        problems.join("\n"),
    ))
}

/// `percentiles`: `queue_wait_p50_ms` ≤ `queue_wait_p95_ms`, both present.
pub(crate) fn percentiles(ctx: &mut Ctx<'_>) -> Measured {
    let run = match shared(ctx) {
        Ok(run) => run,
        Err(e) => return Ok(Verdict::fail("observed run failed", e)),
    };
    let p50 = run.stats.get("queue_wait_p50_ms").and_then(Value::as_f64);
    let p95 = run.stats.get("queue_wait_p95_ms").and_then(Value::as_f64);
    let (Some(p50), Some(p95)) = (p50, p95) else {
        return Ok(Verdict::fail(
            "percentiles missing",
            format!(
                "the stats reply needs numbers `queue_wait_p50_ms` and `queue_wait_p95_ms`; got {}",
                run.stats
            ),
        ));
    };
    let mut problems = Vec::new();
    if p50 < 0.0 || p95 > run.wall_ms {
        problems.push(format!(
            "values out of range (the run lasted {:.0} ms): report milliseconds",
            run.wall_ms
        ));
    }
    if p50 > p95 {
        problems.push("p50 is above p95: sort the samples and take the value at each rank".into());
    }
    // The checker saw the waits spread (acks from the first batch to the
    // last): over any window of such waits a real p95 sits above the p50 (the
    // window may hold only the recent tail, so not by a fixed ratio); the mean
    // reported as both makes them equal. Relative figures only.
    let spread = run.ack_p50_ms > 0.0 && run.ack_p95_ms >= 1.6 * run.ack_p50_ms;
    if spread && p95 < 1.02 * p50.max(0.0) + 0.5 {
        problems.push(format!(
            "percentiles, not the mean: p95 {p95:.1} ms is about p50 {p50:.1} ms, but the acks the checker saw spread from p50 {:.0} ms to p95 {:.0} ms: the 95th percentile is the value at rank ⌈0.95 n⌉ of the sorted waits, not an average",
            run.ack_p50_ms, run.ack_p95_ms
        ));
    }
    Ok(Verdict::judge(
        problems.is_empty(),
        format!(
            "queue wait p50 {p50:.1} ms, p95 {p95:.1} ms (acks seen: p50 {:.0} ms, p95 {:.0} ms)",
            run.ack_p50_ms, run.ack_p95_ms
        ),
        problems.join("\n"),
    ))
}
