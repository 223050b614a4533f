//! Lesson 3 checks: bounded queues under a slow consumer. The checker plays a
//! producer far faster than the consumer (`APPLY_DELAY_US`), with
//! `OVERFLOW=reject` and a small `QUEUE_CAPACITY`: every event must get exactly
//! one reply, some of them refusals; the reported queue depth must stay within
//! capacity; and the program's memory must stay bounded when 50,000 large events
//! are offered.
//!
//! Invariant: the overload run is run once per lesson check and shared by
//! `exactly_one_reply` and `bounded_depth`; the memory run is its own program.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::basics::{compare_state, finish, model_of_acked, repeated_replies, start};
use super::harness::{HarnessError, MemorySample};
use super::model::{Ev, ids};
use super::{CheckFailure, Ctx, Measured, Verdict, thousands};

const CAPACITY: u64 = 50;
const APPLY_DELAY_US: u64 = 1000;

/// What the overload run observed.
#[derive(Debug, Clone)]
pub(crate) struct OverloadRun {
    total: usize,
    acked: usize,
    nacked: usize,
    reasons: BTreeSet<String>,
    repeated: Vec<String>,
    state_mismatches: Vec<String>,
    stats: Value,
    exit: Result<(), String>,
}

fn overload_run(ctx: &mut Ctx<'_>) -> Result<OverloadRun, HarnessError> {
    const N: usize = 2000;
    let mut spec = match ctx.spec() {
        Ok(spec) => spec,
        Err(CheckFailure::Harness(e)) => return Err(e),
        Err(CheckFailure::Internal(m)) => {
            return Err(HarnessError::Io {
                doing: m,
                source: std::io::Error::other("setup"),
            });
        }
    };
    spec.set("STATECRAFT_APPLY_DELAY_US", APPLY_DELAY_US)
        .set("STATECRAFT_OVERFLOW", "reject")
        .set("STATECRAFT_QUEUE_CAPACITY", CAPACITY);
    let mut h = start(&spec)?;
    let evs: Vec<Ev> = (1..=N)
        .map(|i| Ev::incr(format!("q{i}"), format!("q{}", i % 20), 1))
        .collect();
    let ids = ids(&evs);
    h.send_lines(evs.iter().map(Ev::line));
    h.await_replies(&ids)?;
    let stats = h.stats()?;
    let (model, _) = model_of_acked(&h, &evs);
    let keys = model.keys();
    let got = h.get_many(&keys)?;
    let (_, state_mismatches) = compare_state(&model, &keys, &got, false);
    let exit = finish(&mut h)?;
    let mut acked = 0;
    let mut nacked = 0;
    let mut reasons = BTreeSet::new();
    for id in &ids {
        if let Some(r) = h.event_reply(id) {
            if r.acked {
                acked += 1;
            } else {
                nacked += 1;
                reasons.insert(r.reason.clone().unwrap_or_default());
            }
        }
    }
    Ok(OverloadRun {
        total: N,
        acked,
        nacked,
        reasons,
        repeated: repeated_replies(&h),
        state_mismatches,
        stats,
        exit,
    })
}

fn shared_overload(ctx: &mut Ctx<'_>) -> Result<OverloadRun, String> {
    if ctx.overload.is_none() {
        let run = overload_run(ctx).map_err(|e| e.to_string());
        ctx.overload = Some(run);
    }
    match &ctx.overload {
        Some(run) => run.clone(),
        None => Err("overload run missing".into()),
    }
}

/// `exactly_one_reply`: every id exactly one ack or nack, some nacks, nacked
/// events not applied.
pub(crate) fn exactly_one_reply(ctx: &mut Ctx<'_>) -> Measured {
    let run = match shared_overload(ctx) {
        Ok(run) => run,
        Err(e) => return Ok(Verdict::fail("overload run failed", e)),
    };
    let figure = format!(
        "{}/{} replied once ({} acks, {} nacks)",
        run.total - run.repeated.len(),
        run.total,
        run.acked,
        run.nacked
    );
    let mut problems = Vec::new();
    if !run.repeated.is_empty() {
        problems.push(format!(
            "events got more than one reply: {}",
            run.repeated.join(", ")
        ));
    }
    if run.nacked == 0 {
        problems.push(format!(
            "no event was refused: with OVERFLOW=reject, QUEUE_CAPACITY={CAPACITY} and a consumer at ~1,000 events/s, 2,000 events sent at once must overflow the queue; refuse with {{\"nack\":ID,\"reason\":\"overloaded\"}} when it is full"
        ));
    }
    let odd: Vec<&String> = run.reasons.iter().filter(|r| *r != "overloaded").collect();
    if !odd.is_empty() {
        problems.push(format!("nack reasons other than \"overloaded\": {odd:?}"));
    }
    if !run.state_mismatches.is_empty() {
        problems.push(format!(
            "state does not match the acked events (a nacked event must not be applied): {}",
            run.state_mismatches.join("; ")
        ));
    }
    if let Err(e) = &run.exit {
        problems.push(e.clone());
    }
    Ok(Verdict::judge(
        problems.is_empty(),
        figure,
        problems.join("\n"),
    ))
}

/// `bounded_depth`: `stats.max_queue_depth` ≤ `QUEUE_CAPACITY` in the overload run.
pub(crate) fn bounded_depth(ctx: &mut Ctx<'_>) -> Measured {
    let run = match shared_overload(ctx) {
        Ok(run) => run,
        Err(e) => return Ok(Verdict::fail("overload run failed", e)),
    };
    let Some(depth) = run.stats.get("max_queue_depth").and_then(Value::as_f64) else {
        return Ok(Verdict::fail(
            "stats has no max_queue_depth",
            format!(
                "the stats reply needs `max_queue_depth` (the deepest the queue has been); got {}",
                run.stats
            ),
        ));
    };
    Ok(Verdict::judge(
        depth <= CAPACITY as f64 && depth >= 0.0,
        format!("max queue depth {depth} (capacity {CAPACITY})"),
        format!(
            "the queue grew past QUEUE_CAPACITY={CAPACITY}: a bounded queue refuses (reject) or makes the producer wait (block) when full"
        ),
    ))
}

/// `bounded_memory`: peak RSS under 50,000 `set`s of 4 KiB offered to a slow consumer.
pub(crate) fn bounded_memory(ctx: &mut Ctx<'_>) -> Measured {
    const N: usize = 50_000;
    const VALUE_BYTES: usize = 4096;
    const CHUNK: usize = 500;
    const MIB: u64 = 1024;
    const ABS_LIMIT_KIB: u64 = 200 * MIB;
    const GROWTH_LIMIT_KIB: u64 = 100 * MIB;
    let mut spec = ctx.spec()?;
    spec.set("STATECRAFT_APPLY_DELAY_US", APPLY_DELAY_US)
        .set("STATECRAFT_OVERFLOW", "reject")
        .set("STATECRAFT_QUEUE_CAPACITY", CAPACITY);
    let mut h = start(&spec)?;
    let Some(baseline) = h.memory() else {
        return Ok(Verdict::fail(
            "no memory figure",
            format!(
                "could not read /proc/{}/status (this check needs Linux)",
                h.pid()
            ),
        ));
    };
    let value = "x".repeat(VALUE_BYTES);
    let mut peak = baseline;
    let over = |m: &MemorySample| {
        m.hwm_kib.max(m.rss_kib) > ABS_LIMIT_KIB.max(baseline.rss_kib + GROWTH_LIMIT_KIB)
    };
    let sample = |h: &super::harness::Harness, peak: &mut MemorySample| {
        if let Some(m) = h.memory() {
            peak.rss_kib = peak.rss_kib.max(m.rss_kib);
            peak.hwm_kib = peak.hwm_kib.max(m.hwm_kib);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ids = Vec::with_capacity(N);
    let mut aborted = false;
    let mut i = 0;
    'send: while i < N {
        // Keep at most a few MiB in flight in the checker itself.
        while h.unwritten_bytes() > 8 << 20 {
            h.pump_for(Duration::from_millis(10))?;
            sample(&h, &mut peak);
            if over(&peak) {
                aborted = true;
                break 'send;
            }
            if Instant::now() > deadline {
                break 'send;
            }
        }
        let end = (i + CHUNK).min(N);
        let lines: Vec<String> = (i + 1..=end)
            .map(|n| {
                ids.push(format!("m{n}"));
                format!(
                    r#"{{"id":"m{n}","key":"m{}","op":"set","value":"{value}"}}"#,
                    n % 100
                )
            })
            .collect();
        h.send_lines(lines);
        i = end;
        h.drain_ready()?;
        sample(&h, &mut peak);
        if over(&peak) {
            aborted = true;
            break;
        }
    }
    if !aborted {
        loop {
            let step = (Instant::now() + Duration::from_millis(50)).min(deadline);
            let done = h.await_replies_until(&ids, Some(step))?;
            sample(&h, &mut peak);
            if done || over(&peak) || Instant::now() >= deadline {
                aborted = !done && over(&peak);
                break;
            }
        }
    }
    sample(&h, &mut peak);
    let replied = ids.iter().filter(|id| h.event_reply(id).is_some()).count();
    h.kill9()?;
    let peak_kib = peak.hwm_kib.max(peak.rss_kib);
    let growth_kib = peak_kib.saturating_sub(baseline.rss_kib);
    let ok = !aborted && (peak_kib <= ABS_LIMIT_KIB || growth_kib <= GROWTH_LIMIT_KIB);
    let figure = format!(
        "peak {} MiB (baseline {} MiB, growth {} MiB){}",
        peak_kib / MIB,
        baseline.rss_kib / MIB,
        growth_kib / MIB,
        if aborted {
            format!(", stopped after {} events", thousands(ids.len() as u64))
        } else {
            String::new()
        }
    );
    Ok(Verdict::judge(
        ok,
        figure,
        format!(
            "memory grew with the offered load ({replied} of {} events replied): something holds every event — an unbounded queue, a list of pending tasks, a buffer; bound it and refuse or push back when it is full",
            ids.len()
        ),
    ))
}
