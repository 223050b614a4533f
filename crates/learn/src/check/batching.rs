//! Lesson 2 checks: a batch collector with a deadline. A lone event must be
//! acked within `MAX_WAIT_MS` plus slack (the collector never waits for a full
//! batch that is not coming), and a burst must really be batched.
//!
//! Invariant: both checks run with `MAX_WAIT_MS=50` and `MAX_BATCH=100`, after
//! the program answered a first `sync` (start-up time is never graded).

use std::time::{Duration, Instant};

use super::basics::start;
use super::model::{Ev, ids};
use super::{Ctx, Measured, Verdict, ms_between, pause};

const MAX_WAIT_MS: u64 = 50;
const MAX_BATCH: u64 = 100;
const SLACK_MS: u64 = 100;

fn batching_spec(ctx: &mut Ctx<'_>) -> Result<super::harness::ProgramSpec, super::CheckFailure> {
    let mut spec = ctx.spec()?;
    spec.set("STATECRAFT_MAX_WAIT_MS", MAX_WAIT_MS)
        .set("STATECRAFT_MAX_BATCH", MAX_BATCH);
    Ok(spec)
}

/// `deadline`: five lone events, 100 ms apart; the worst ack latency.
pub(crate) fn deadline(ctx: &mut Ctx<'_>) -> Measured {
    const LONE: usize = 5;
    let limit_ms = (MAX_WAIT_MS + SLACK_MS) as f64;
    let spec = batching_spec(ctx)?;
    let mut h = start(&spec)?;
    let mut worst: f64 = 0.0;
    for i in 1..=LONE {
        let ev = Ev::incr(format!("d{i}"), format!("lone{i}"), 1);
        let sent = Instant::now();
        h.send_line(&ev.line());
        // Wait well past the limit so a late ack is measured, not just "late".
        match h.await_reply_within(&ev.id, Duration::from_millis(1000))? {
            Some(reply) => worst = worst.max(ms_between(sent, reply.at)),
            None => {
                return Ok(Verdict::fail(
                    format!("lone event {} not acked within 1000 ms", ev.id),
                    format!(
                        "with MAX_WAIT_MS={MAX_WAIT_MS} and MAX_BATCH={MAX_BATCH}, a lone event must be acked once the deadline passes, not when a full batch arrives; last stderr lines:{}",
                        h.stderr_tail()
                    ),
                ));
            }
        }
        pause(Duration::from_millis(100));
    }
    Ok(Verdict::judge(
        worst <= limit_ms,
        format!("worst of {LONE} lone events acked after {worst:.0} ms"),
        format!(
            "the collector waited past its deadline (MAX_WAIT_MS={MAX_WAIT_MS}): measure the remaining time from the first event of the batch, not per item"
        ),
    ))
}

/// `batching`: a burst of 2,000 events; `stats.batches` must be under 2,000 / 4.
pub(crate) fn batching(ctx: &mut Ctx<'_>) -> Measured {
    const BURST: usize = 2000;
    const LIMIT: u64 = (BURST / 4) as u64;
    let spec = batching_spec(ctx)?;
    let mut h = start(&spec)?;
    let evs: Vec<Ev> = (1..=BURST)
        .map(|i| Ev::incr(format!("b{i}"), format!("burst{}", i % 50), 1))
        .collect();
    h.send_lines(evs.iter().map(Ev::line));
    h.await_replies(&ids(&evs))?;
    let stats = h.stats()?;
    let Some(batches) = stats.get("batches").and_then(serde_json::Value::as_u64) else {
        return Ok(Verdict::fail(
            "stats has no batches",
            format!(
                "the stats reply needs a `batches` count (number of batches applied); got {stats}"
            ),
        ));
    };
    Ok(Verdict::judge(
        batches > 0 && batches < LIMIT,
        format!("{batches} batches for {BURST} events"),
        if batches == 0 {
            "`batches` is 0 after 2,000 events: count each batch the worker applies".to_string()
        } else {
            format!(
                "events were not really batched: with MAX_BATCH={MAX_BATCH}, take every event already queued (up to the batch size) before applying"
            )
        },
    ))
}
