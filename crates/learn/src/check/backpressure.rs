//! Lesson 3 checks: bounded queues under a slow consumer. The checker plays a
//! producer far faster than the consumer (`APPLY_DELAY_US`), with
//! `OVERFLOW=reject` and a small `QUEUE_CAPACITY`: every event must get exactly
//! one reply, some of them refusals; the reported queue depth must stay within
//! capacity; and with the consumer stalled, the program's memory must grow by no
//! more than its capacity allows while up to 24,000 events of 4 KiB are offered.
//!
//! Invariants: the overload run is run once per lesson check and shared by
//! `exactly_one_reply` and `bounded_depth`; the memory run is its own program.
//! No verdict depends on the machine's speed: memory is judged as growth over
//! the program's own baseline against what the configured capacity allows, with
//! the consumer stalled so an unbounded program holds everything it reads.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::basics::{compare_state, finish, model_of_acked, repeated_replies, start};
use super::harness::HarnessError;
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
    let block = shared_block(ctx);
    let mut problems = Vec::new();
    if !(0.0..=CAPACITY as f64).contains(&depth) {
        problems.push(format!(
            "bounded queues: stats.max_queue_depth is {depth}, past QUEUE_CAPACITY={CAPACITY}: a bounded queue refuses (reject) or makes the producer wait (block) when full"
        ));
    }
    let block_figure = match &block {
        Ok(run) => {
            // Seen from outside: lines surely read (written minus what the
            // pipe and a read buffer hold) and not answered.
            if run.held > run.allowed_events {
                problems.push(format!(
                    "bounded queues (block, stalled consumer): the program read at least {} events it has not answered, but QUEUE_CAPACITY={CAPACITY} plus one batch of {MEMORY_MAX_BATCH} allows {}: something besides the queue holds them (a task per pending put, a list); under block, stop reading until the put succeeds",
                    thousands(run.held),
                    run.allowed_events
                ));
            }
            format!(
                "block, stalled consumer: at least {} read and unanswered (allowed {})",
                thousands(run.held),
                run.allowed_events
            )
        }
        Err(e) => {
            problems.push(format!("the stalled run under block failed: {e}"));
            "block run failed".to_string()
        }
    };
    Ok(Verdict::judge(
        problems.is_empty(),
        format!("max queue depth {depth} (capacity {CAPACITY}); {block_figure}"),
        problems.join("\n"),
    ))
}

/// The stalled-consumer memory scenario: settings and sizes.
///
/// The consumer is stalled (`APPLY_DELAY_US` of 2 s per event, so it applies
/// next to nothing during the run): whatever the program accepts and does not
/// refuse stays in it. The configuration lets it hold at most one queue of
/// [`CAPACITY`] plus one batch of [`MEMORY_MAX_BATCH`] being applied
/// ([`WORKERS`](MEMORY_WORKERS) = 1), so its memory may grow by about that many
/// events; every event offered past that must be refused (`reject`) or left
/// unread in the pipe (`block`). Nothing here depends on how fast the machine
/// is: a bounded program's growth is a property of its design, and an
/// unbounded one grows by the bytes it accepted, however fast it reads them.
const MEMORY_WORKERS: u64 = 1;
const MEMORY_MAX_BATCH: u64 = 10;
const STALLED_DELAY_US: u64 = 2_000_000;
/// Bytes of each offered value (each line is a little longer).
const VALUE_BYTES: usize = 4096;
/// Events offered at most: ~96 MiB of values, four times the growth budget's floor.
const OFFERED: usize = 24_000;
/// Lines per write into the pipe (the granularity of `lines_written`).
const MEMORY_CHUNK: usize = 16;
/// Growth allowed whatever the capacity: a runtime's own churn (allocator
/// arenas, read buffers up to a few MiB, the reply stream). Not a figure tuned
/// on a machine's speed: memory for the same input is the same on any machine.
const GROWTH_FLOOR_KIB: u64 = 32 * 1024;
/// Read-side buffer a program may hold unparsed (asyncio's StreamReader pauses
/// at twice its limit; 1 MiB limits are common): counted as slack, not as held.
const READ_BUFFER_BYTES: usize = 4 << 20;
/// With no write progress for this long under `block`, the program has stopped
/// reading: the pushback a bounded `block` queue is meant to give. It only ends
/// the drive; the verdict is the memory measured, not this time.
const STALL: Duration = Duration::from_millis(1500);

/// What one stalled-consumer drive observed.
#[derive(Debug, Clone)]
pub(crate) struct MemoryRun {
    overflow: &'static str,
    baseline_kib: u64,
    peak_kib: u64,
    /// Lines offered (queued for the pipe) and written into it.
    written: u64,
    /// Events the program surely read and did not answer when the drive ended
    /// (lines written, minus what the pipe and a read buffer can hold, minus replies).
    held: u64,
    /// The configuration's allowance: capacity plus one batch.
    allowed_events: u64,
    /// Growth allowed over the baseline.
    budget_kib: u64,
    /// The drive stopped early because growth passed twice the budget.
    stopped_early: bool,
    /// The program stopped reading (a `block` queue pushing back).
    stopped_reading: bool,
}

impl MemoryRun {
    fn growth_kib(&self) -> u64 {
        self.peak_kib.saturating_sub(self.baseline_kib)
    }

    fn figure(&self) -> String {
        const MIB: u64 = 1024;
        format!(
            "{}: growth {} MiB over a {} MiB baseline (budget {} MiB) after {} of {} events offered; at least {} read and unanswered (allowed {}){}",
            self.overflow,
            self.growth_kib() / MIB,
            self.baseline_kib / MIB,
            self.budget_kib / MIB,
            thousands(self.written),
            thousands(OFFERED as u64),
            thousands(self.held),
            self.allowed_events,
            if self.stopped_reading {
                ", then it stopped reading"
            } else {
                ""
            }
        )
    }
}

/// Offers up to [`OFFERED`] 4 KiB `set`s to a program whose consumer is
/// stalled, with `OVERFLOW=overflow`, sampling its memory; stops early once
/// its growth is past twice the budget (the verdict can no longer change), or
/// when it stops reading.
pub(crate) fn memory_run(
    ctx: &mut Ctx<'_>,
    overflow: &'static str,
) -> Result<MemoryRun, CheckFailure> {
    let mut spec = ctx.spec()?;
    spec.set("STATECRAFT_APPLY_DELAY_US", STALLED_DELAY_US)
        .set("STATECRAFT_OVERFLOW", overflow)
        .set("STATECRAFT_QUEUE_CAPACITY", CAPACITY)
        .set("STATECRAFT_WORKERS", MEMORY_WORKERS)
        .set("STATECRAFT_MAX_BATCH", MEMORY_MAX_BATCH);
    let mut h = start(&spec)?;
    let Some(baseline) = h.memory() else {
        return Err(CheckFailure::Internal(format!(
            "could not read /proc/{}/status (this check needs Linux)",
            h.pid()
        )));
    };
    let line_bytes = VALUE_BYTES as u64 + 64;
    let allowed_events = CAPACITY + MEMORY_MAX_BATCH;
    // Each held event costs at least its line; four times that covers any
    // runtime's per-object overhead.
    let budget_kib = GROWTH_FLOOR_KIB.max(4 * allowed_events * line_bytes / 1024);
    let slack_lines = ((h.pipe_bytes() + READ_BUFFER_BYTES) as u64).div_ceil(line_bytes);
    let filler = "x".repeat(VALUE_BYTES - 8);
    // Lines written before the drive (the start-up `sync`) are not events.
    let before = h.lines_written();
    let mut peak = baseline.hwm_kib.max(baseline.rss_kib);
    let mut sample = |h: &super::harness::Harness| {
        if let Some(m) = h.memory() {
            peak = peak.max(m.rss_kib).max(m.hwm_kib);
        }
        peak
    };
    let unmistakable = |peak: u64| peak.saturating_sub(baseline.rss_kib) > 2 * budget_kib;
    let mut queued = 0usize;
    let mut stopped_early = false;
    let mut stopped_reading = false;
    let mut last_written = 0;
    let mut last_progress = Instant::now();
    while queued < OFFERED || h.lines_written() < before + queued as u64 {
        // Keep at most a few chunks in flight so `lines_written` tracks the pipe.
        if queued < OFFERED && h.unwritten_bytes() < 4 * MEMORY_CHUNK * line_bytes as usize {
            let end = (queued + MEMORY_CHUNK).min(OFFERED);
            h.send_lines((queued + 1..=end).map(|n| {
                format!(
                    r#"{{"id":"m{n}","key":"m{}","op":"set","value":"{n:08}{filler}"}}"#,
                    n % 100
                )
            }));
            queued = end;
        } else {
            h.pump_for(Duration::from_millis(2))?;
        }
        h.drain_ready()?;
        if unmistakable(sample(&h)) {
            stopped_early = true;
            break;
        }
        let written = h.lines_written();
        if written != last_written {
            last_written = written;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL {
            stopped_reading = true;
            break;
        }
    }
    // Let the refusals of what was read arrive (a stalled consumer acks nothing
    // more): until the program holds no more than its allowance, or replies stop.
    let held_now = |h: &super::harness::Harness| {
        h.lines_written()
            .saturating_sub(before)
            .saturating_sub(slack_lines)
            .saturating_sub(h.event_replies().len() as u64)
    };
    if !stopped_early {
        let mut replies = h.event_replies().len();
        let mut quiet_since = Instant::now();
        while held_now(&h) > allowed_events && quiet_since.elapsed() < Duration::from_secs(1) {
            h.pump_for(Duration::from_millis(20))?;
            if h.event_replies().len() != replies {
                replies = h.event_replies().len();
                quiet_since = Instant::now();
            }
            if unmistakable(sample(&h)) {
                stopped_early = true;
                break;
            }
        }
    }
    let peak_kib = sample(&h);
    let held = held_now(&h);
    let written = h.lines_written().saturating_sub(before);
    h.kill9()?;
    Ok(MemoryRun {
        overflow,
        baseline_kib: baseline.rss_kib,
        peak_kib,
        written,
        held,
        allowed_events,
        budget_kib,
        stopped_early,
        stopped_reading,
    })
}

fn shared_block(ctx: &mut Ctx<'_>) -> Result<MemoryRun, String> {
    if ctx.stalled_block.is_none() {
        let run = memory_run(ctx, "block").map_err(|e| match e {
            CheckFailure::Harness(e) => e.to_string(),
            CheckFailure::Internal(m) => m,
        });
        ctx.stalled_block = Some(run);
    }
    match &ctx.stalled_block {
        Some(run) => run.clone(),
        None => Err("stalled run missing".into()),
    }
}

/// `bounded_memory`: with a stalled consumer, under `OVERFLOW=reject` and
/// under `OVERFLOW=block`, the program's memory grows by no more than its
/// capacity allows, however much is offered.
pub(crate) fn bounded_memory(ctx: &mut Ctx<'_>) -> Measured {
    let reject = match memory_run(ctx, "reject") {
        Ok(run) => run,
        Err(CheckFailure::Internal(msg)) => return Ok(Verdict::fail("no memory figure", msg)),
        Err(e) => return Err(e),
    };
    let block = match shared_block(ctx) {
        Ok(run) => run,
        Err(e) => return Ok(Verdict::fail("stalled run (block) failed", e)),
    };
    let mut problems = Vec::new();
    for run in [&reject, &block] {
        if run.stopped_early || run.growth_kib() > run.budget_kib {
            problems.push(format!(
                "bounded memory ({}): memory grew with the offered load while the consumer was stalled ({} events the program read are still unanswered; QUEUE_CAPACITY={CAPACITY} plus one batch of {MEMORY_MAX_BATCH} allows {}): something holds every event — an unbounded queue, a task per pending put, a list, a buffer; bound it and {} when it is full",
                run.overflow,
                thousands(run.held),
                run.allowed_events,
                if run.overflow == "block" {
                    "stop reading stdin (await the put before reading the next line)"
                } else {
                    "refuse with a nack"
                }
            ));
        }
    }
    Ok(Verdict::judge(
        problems.is_empty(),
        format!("{}; {}", reject.figure(), block.figure()),
        problems.join("\n"),
    ))
}

/// `ack_after_apply`: with `APPLY_DELAY_US` of 100 ms and one worker, no lone
/// event is acked sooner than the delay after it was sent: an ack says the
/// effect is applied. A lower bound only: a slower machine acks later, never
/// sooner.
pub(crate) fn ack_after_apply(ctx: &mut Ctx<'_>) -> Measured {
    const DELAY_MS: u64 = 100;
    const LONE: usize = 4;
    let mut spec = ctx.spec()?;
    spec.set("STATECRAFT_APPLY_DELAY_US", DELAY_MS * 1000)
        .set("STATECRAFT_WORKERS", 1);
    let mut h = start(&spec)?;
    let mut soonest = f64::INFINITY;
    for i in 1..=LONE {
        let ev = Ev::set(format!("aa{i}"), format!("apply{i}"), serde_json::json!(i));
        let sent = Instant::now();
        h.send_line(&ev.line());
        h.await_replies(std::slice::from_ref(&ev.id))?;
        if let Some(r) = h.event_reply(&ev.id) {
            soonest = soonest.min(super::ms_between(sent, r.at));
        }
    }
    let floor = 0.8 * DELAY_MS as f64;
    let delay_us = DELAY_MS * 1000;
    Ok(Verdict::judge(
        soonest >= floor,
        format!("soonest ack {soonest:.0} ms after its event was sent (APPLY_DELAY_US={delay_us})"),
        format!(
            "what an ack promises: an event was acked {soonest:.0} ms after it was sent, but applying it takes APPLY_DELAY_US={delay_us} µs: the ack went out before the effect was applied (on admission?); ack only after apply"
        ),
    ))
}
