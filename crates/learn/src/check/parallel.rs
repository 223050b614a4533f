//! Lesson 4 checks: CPU-bound work without blocking the event loop. Per-key
//! order must hold with 4 workers; CPU-heavy apply must run faster on 4
//! workers than on 1; and the program must keep answering `ping` while it runs.
//!
//! CPU-heavy apply is `STATECRAFT_APPLY_DELAY_US` with `STATECRAFT_APPLY_MODE=cpu`:
//! the program burns that much CPU per event (a protocol extension; the default
//! mode `sleep` plays a slow I/O-bound consumer instead).
//!
//! Invariant: the speed-up is the best of at most three paired runs (1 worker,
//! then 4), so one noisy moment on a shared machine does not fail a correct
//! program; responsiveness is only graded when the CPU work really took time
//! (≥ 250 ms) and at least one ping was answered during it.

use std::time::{Duration, Instant};

use serde_json::json;

use super::basics::{order_checks, start};
use super::harness::{HarnessError, ProgramSpec, Reply, group_cpu_ticks, machine_busy_ticks};
use super::model::{Ev, ids};
use super::{CheckFailure, Ctx, Measured, Verdict, ms_between, pause, quantile};

/// `parallel_order`: per-key order with `WORKERS=4`.
pub(crate) fn parallel_order(ctx: &mut Ctx<'_>) -> Measured {
    order_checks(ctx)
}

fn cpu_spec(ctx: &mut Ctx<'_>, workers: u32, delay_us: u64) -> Result<ProgramSpec, CheckFailure> {
    let mut spec = ctx.spec()?;
    spec.set("STATECRAFT_WORKERS", workers)
        .set("STATECRAFT_APPLY_DELAY_US", delay_us)
        .set("STATECRAFT_APPLY_MODE", "cpu");
    Ok(spec)
}

/// One timed run: its wall time and how many cores other processes kept busy meanwhile.
struct TimedRun {
    wall: Duration,
    others_cores: f64,
    /// Cores the program's process group kept busy on average (CPU time / wall).
    cores_used: f64,
}

/// Sends `n` CPU-heavy events over many keys; time from first send to last reply.
fn timed_cpu_run(spec: &ProgramSpec, n: usize) -> Result<TimedRun, HarnessError> {
    let mut h = start(spec)?;
    let evs: Vec<Ev> = (1..=n)
        .map(|i| Ev::incr(format!("c{i}"), format!("cpu{}", i % 48), 1))
        .collect();
    let ids = ids(&evs);
    let busy0 = machine_busy_ticks();
    let mine0 = group_cpu_ticks(h.pid());
    let t0 = Instant::now();
    h.send_lines(evs.iter().map(Ev::line));
    h.await_replies(&ids)?;
    let elapsed = t0.elapsed();
    let mine = group_cpu_ticks(h.pid()).saturating_sub(mine0);
    let others = machine_busy_ticks()
        .saturating_sub(busy0)
        .saturating_sub(mine);
    let last = ids
        .iter()
        .filter_map(|id| h.event_reply(id).map(|r| r.at))
        .max()
        .unwrap_or_else(Instant::now);
    h.kill9()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(TimedRun {
        wall: last.saturating_duration_since(t0),
        others_cores: others as f64 / hz / elapsed.as_secs_f64().max(1e-3),
        cores_used: mine as f64 / hz / elapsed.as_secs_f64().max(1e-3),
    })
}

/// `parallel_speedup`: time with `WORKERS=1` over time with `WORKERS=4`.
pub(crate) fn parallel_speedup(ctx: &mut Ctx<'_>) -> Measured {
    const N: usize = 240;
    const DELAY_US: u64 = 5000;
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let target = 1.5_f64.min(0.8 * cores);
    let one = cpu_spec(ctx, 1, DELAY_US)?;
    let four = cpu_spec(ctx, 4, DELAY_US)?;
    let mut best_one = Duration::MAX;
    let mut best_four = Duration::MAX;
    let mut speedup = 0.0;
    let mut others: f64 = 0.0;
    // Real parallelism, from CPU accounting: a program whose workers take
    // turns (threads under one interpreter lock) keeps one core busy however
    // its wall time looks (a burn that watches the clock finishes "in
    // parallel" even when it only ran a quarter of the time).
    let min_cores = 1.3_f64.min(0.65 * cores);
    let mut best_cores: f64 = 0.0;
    for _attempt in 0..3 {
        let a = timed_cpu_run(&one, N)?;
        let b = timed_cpu_run(&four, N)?;
        best_one = best_one.min(a.wall);
        best_four = best_four.min(b.wall);
        best_cores = best_cores.max(b.cores_used);
        others = others.max(a.others_cores.min(b.others_cores));
        speedup = best_one.as_secs_f64() / best_four.as_secs_f64().max(1e-6);
        if speedup >= target && best_cores >= min_cores {
            break;
        }
    }
    let injected = N as f64 * DELAY_US as f64 / 1e6;
    let figure = format!(
        "speed-up {speedup:.2}× ({:.2} s on 1 worker, {:.2} s on 4, {best_cores:.1} cores busy; {cores} cores)",
        best_one.as_secs_f64(),
        best_four.as_secs_f64()
    );
    if best_one.as_secs_f64() < 0.5 * injected {
        return Ok(Verdict::fail(
            figure,
            format!(
                "{N} events with APPLY_DELAY_US={DELAY_US} and APPLY_MODE=cpu took less than half of the {injected:.1} s of CPU work they carry on 1 worker: burn the delay as CPU work in apply"
            ),
        ));
    }
    let mut detail = if speedup < target {
        format!(
            "sharding: 4 workers are not faster than 1 on CPU-bound work (target {target:.2}×): in Python, threads share one interpreter lock; run apply in processes, each owning a shard of the keys"
        )
    } else {
        format!(
            "sharding: with 4 workers the program kept only {best_cores:.1} cores busy (at least {min_cores:.1} expected on {cores} cores): its workers take turns — threads under one interpreter lock (the GIL), or a lock around shared state; run apply in processes, each owning a shard of the keys (share nothing)"
        )
    };
    if others >= BUSY_MACHINE_CORES {
        detail.push_str(&format!(
            "\n{MACHINE_BUSY}: other processes kept {others:.1} of {cores} cores busy during every attempt, so the figure is unreliable; check again when the machine is quiet"
        ));
    }
    Ok(Verdict::judge(
        speedup >= target && best_cores >= min_cores,
        figure,
        detail,
    ))
}

/// Cores other processes must keep busy for a speed-up figure to be called unreliable.
const BUSY_MACHINE_CORES: f64 = 0.4;

/// The words a failed speed-up's detail starts its busy-machine note with.
pub const MACHINE_BUSY: &str = "the machine was busy";

/// `responsive`: p99 of `ping` round trips while CPU-heavy apply runs.
pub(crate) fn responsive(ctx: &mut Ctx<'_>) -> Measured {
    const N: usize = 48;
    const DELAY_US: u64 = 50_000;
    const LIMIT_MS: f64 = 250.0;
    const MIN_WORK: Duration = Duration::from_millis(250);
    let mut spec = cpu_spec(ctx, 4, DELAY_US)?;
    spec.set("STATECRAFT_MAX_BATCH", 16);
    let mut h = start(&spec)?;
    let evs: Vec<Ev> = (1..=N)
        .map(|i| Ev::incr(format!("r{i}"), format!("busy{}", i % 16), 1))
        .collect();
    let ids = ids(&evs);
    h.send_lines(evs.iter().map(Ev::line));
    let began = Instant::now();
    let ping = json!({"cmd": "ping"});
    let mut rtts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        h.drain_ready()?;
        let pending = ids.iter().any(|id| h.event_reply(id).is_none());
        if !pending || Instant::now() > deadline {
            break;
        }
        let sent = Instant::now();
        match h.command(&ping, "ping (answered at once, not after queued events)")? {
            (Reply::Pong, at) => rtts.push(ms_between(sent, at)),
            (other, _) => {
                return Ok(Verdict::fail(
                    "wrong reply to ping",
                    format!(
                        "{{\"cmd\":\"ping\"}} must be answered {{\"pong\":true}}, got {other:?}"
                    ),
                ));
            }
        }
        pause(Duration::from_millis(50));
    }
    let worked = ids
        .iter()
        .filter_map(|id| h.event_reply(id).map(|r| r.at))
        .max()
        .map_or(Duration::ZERO, |last| last.saturating_duration_since(began));
    h.kill9()?;
    if rtts.is_empty() || worked < MIN_WORK {
        return Ok(Verdict::fail(
            format!("work took {} ms, {} pings", worked.as_millis(), rtts.len()),
            format!(
                "the {N} CPU-heavy events (APPLY_DELAY_US={DELAY_US}, APPLY_MODE=cpu) finished too fast to measure: burn the delay as CPU work in apply"
            ),
        ));
    }
    let p99 = quantile(&rtts, 0.99);
    let p50 = quantile(&rtts, 0.5);
    Ok(Verdict::judge(
        p99 <= LIMIT_MS,
        format!("ping p99 {p99:.0} ms (p50 {p50:.0} ms, {} pings)", rtts.len()),
        "the event loop is blocked while apply runs: CPU work on the loop (or a blocking wait on a future) stops it reading stdin and answering; offload apply to workers and await the results".to_string(),
    ))
}
