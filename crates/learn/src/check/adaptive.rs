//! Lesson 7 checks: an adaptive queue. Under a load step against a slow
//! consumer, `stats.capacity` must move (within `MIN_CAPACITY`..`MAX_CAPACITY`)
//! and the p95 queue wait reported at the end of the step must be near
//! `TARGET_WAIT_MS`.
//!
//! The load step: `WORKERS=1`, `APPLY_DELAY_US=1000` (a consumer at ~1,000
//! events/s), `OVERFLOW=reject`, starting `QUEUE_CAPACITY=400`, bounds 10..1000,
//! target 20 ms. One second at 300 events/s, then five seconds at 3,000
//! events/s. The checker keeps sending while it polls `stats` (a barrier, so a
//! reply comes once the events before it are answered; with `reject` that is
//! bounded by the capacity).
//!
//! Invariant: `queue_wait_p95_ms` is read from the last `stats` of the step, so
//! the program must report it over a recent window (the last second or the last
//! ≤ 1,000 events), not since start.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::basics::start;
use super::harness::{HarnessError, Reply};
use super::{CheckFailure, Ctx, Measured, Verdict, pause};

const MIN_CAPACITY: f64 = 10.0;
const MAX_CAPACITY: f64 = 1000.0;
const TARGET_WAIT_MS: f64 = 20.0;

/// What the load step observed.
#[derive(Debug, Clone)]
pub(crate) struct StepRun {
    /// `stats.capacity` in arrival order (`None` where absent).
    capacities: Vec<Option<f64>>,
    /// The last `stats` of the step.
    last: Value,
}

fn step_run(ctx: &mut Ctx<'_>) -> Result<StepRun, String> {
    let mut spec = match ctx.spec() {
        Ok(spec) => spec,
        Err(CheckFailure::Harness(e)) => return Err(e.to_string()),
        Err(CheckFailure::Internal(m)) => return Err(m),
    };
    spec.set("STATECRAFT_WORKERS", 1)
        .set("STATECRAFT_APPLY_DELAY_US", 1000)
        .set("STATECRAFT_OVERFLOW", "reject")
        .set("STATECRAFT_QUEUE_CAPACITY", 400)
        .set("STATECRAFT_MIN_CAPACITY", MIN_CAPACITY)
        .set("STATECRAFT_MAX_CAPACITY", MAX_CAPACITY)
        .set("STATECRAFT_TARGET_WAIT_MS", TARGET_WAIT_MS);
    let run = || -> Result<StepRun, HarnessError> {
        let mut h = start(&spec)?;
        let stats_cmd = json!({"cmd": "stats"}).to_string();
        let mut capacities = Vec::new();
        let mut outstanding = false;
        let mut last_poll = Instant::now();
        let mut n = 0u64;
        let began = Instant::now();
        let phases = [
            (Duration::from_secs(1), 3u64),
            (Duration::from_secs(5), 30u64),
        ];
        let mut phase_end = began;
        for (length, per_tick) in phases {
            phase_end += length;
            while Instant::now() < phase_end {
                let lines: Vec<String> = (0..per_tick)
                    .map(|_| {
                        n += 1;
                        format!(
                            r#"{{"id":"a{n}","key":"step{}","op":"incr","value":1}}"#,
                            n % 32
                        )
                    })
                    .collect();
                h.send_lines(lines);
                if !outstanding && last_poll.elapsed() >= Duration::from_millis(200) {
                    h.send_line(&stats_cmd);
                    outstanding = true;
                    last_poll = Instant::now();
                }
                h.drain_ready()?;
                while let Some((reply, _)) = h.try_command_reply() {
                    if let Reply::Stats(stats) = reply {
                        capacities.push(stats.get("capacity").and_then(Value::as_f64));
                        outstanding = false;
                    }
                }
                pause(Duration::from_millis(10));
            }
        }
        if outstanding && let (Reply::Stats(stats), _) = h.next_command_reply("stats")? {
            capacities.push(stats.get("capacity").and_then(Value::as_f64));
        }
        let last = h.stats()?;
        capacities.push(last.get("capacity").and_then(Value::as_f64));
        h.kill9()?;
        Ok(StepRun { capacities, last })
    };
    run().map_err(|e| e.to_string())
}

fn shared(ctx: &mut Ctx<'_>) -> Result<StepRun, String> {
    if ctx.step.is_none() {
        let run = step_run(ctx);
        ctx.step = Some(run);
    }
    ctx.step
        .clone()
        .unwrap_or_else(|| Err("load step missing".into()))
}

/// `adaptive_capacity`: capacity changes during the step and stays in bounds.
pub(crate) fn adaptive_capacity(ctx: &mut Ctx<'_>) -> Measured {
    let run = match shared(ctx) {
        Ok(run) => run,
        Err(e) => return Ok(Verdict::fail("load step failed", e)),
    };
    let caps: Vec<f64> = run.capacities.iter().flatten().copied().collect();
    if caps.is_empty() {
        return Ok(Verdict::fail(
            "stats has no capacity",
            format!(
                "the stats reply needs `capacity` (the queue's current capacity); got {}",
                run.last
            ),
        ));
    }
    let lo = caps.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = caps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut distinct = caps.clone();
    distinct.dedup();
    let changes = distinct.len().saturating_sub(1);
    let in_bounds = lo >= MIN_CAPACITY && hi <= MAX_CAPACITY;
    let figure = format!(
        "capacity {lo:.0}..{hi:.0} over {} samples, {changes} changes",
        caps.len()
    );
    let detail = if !in_bounds {
        format!(
            "capacity left the bounds [{MIN_CAPACITY}, {MAX_CAPACITY}] (STATECRAFT_MIN_CAPACITY, STATECRAFT_MAX_CAPACITY)"
        )
    } else {
        format!(
            "capacity never changed under a load step (first {:.0}): measure the p95 queue wait and resize toward target_wait × service rate (Little's law)",
            caps[0]
        )
    };
    Ok(Verdict::judge(in_bounds && changes > 0, figure, detail))
}

/// `p95_near_target`: the p95 queue wait at the end of the step ≤ 2 × target.
pub(crate) fn p95_near_target(ctx: &mut Ctx<'_>) -> Measured {
    let run = match shared(ctx) {
        Ok(run) => run,
        Err(e) => return Ok(Verdict::fail("load step failed", e)),
    };
    let Some(p95) = run.last.get("queue_wait_p95_ms").and_then(Value::as_f64) else {
        return Ok(Verdict::fail(
            "stats has no queue_wait_p95_ms",
            format!("got {}", run.last),
        ));
    };
    let limit = 2.0 * TARGET_WAIT_MS;
    let capacity = run
        .last
        .get("capacity")
        .and_then(Value::as_f64)
        .map_or_else(String::new, |c| format!(", capacity {c:.0}"));
    Ok(Verdict::judge(
        p95 <= limit && p95 >= 0.0,
        format!(
            "p95 queue wait {p95:.1} ms after the step (target {TARGET_WAIT_MS:.0} ms{capacity})"
        ),
        "the queue lets waits grow past the target: shrink capacity when p95 is above target (and report p95 over a recent window, not since start)".to_string(),
    ))
}
