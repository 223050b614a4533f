//! W6, in process: BENCH.md W1 through the library API with no network, and
//! its peer, the textbook Python asyncio design (bench/peers/asyncio_peer.py,
//! compiled into this binary and written to a temp dir when run).
//!
//! The engine run follows `crates/engine/examples/w6.rs`: the batches of
//! events are built before the clock starts (W6 measures the engine, not
//! event construction — the Python peer pre-generates its events too),
//! then admitted with `Engine::enqueue` keeping up to 64 submissions in
//! flight and waiting on their tickets in order.
//!
//! Invariant: every event's result is counted (`events == ok + errors`), so
//! a run that loses or refuses events cannot pass for a fast one.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Deserialize;
use statecraft_engine::{AckMode, Engine, Event};

use crate::cmd::load::generator::{Dist, EventGen, GenOp, KeySpace, OpMix};
use crate::cmd::load::recorder::{FrameTally, LoadReport, Recorder};

/// The Python peer's source (the file in bench/peers/ is the original).
const ASYNCIO_PEER: &str = include_str!("../../../../../bench/peers/asyncio_peer.py");

/// Submissions kept in flight (as in the W6 example).
const IN_FLIGHT: usize = 64;

/// Runs W6 once: `events` `incr` events on `keys`, uniform, in batches of
/// `batch`, with `ack`; `data_dir` for `durable` (else in memory).
pub fn run_engine(
    keys: &std::sync::Arc<KeySpace>,
    events: u64,
    batch: usize,
    ack: AckMode,
    data_dir: Option<&Path>,
    seed: u64,
) -> anyhow::Result<LoadReport> {
    // One async worker, as in the example: the shards own the other cores.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async {
        let mut builder = Engine::builder().max_batch(4096);
        if let Some(dir) = data_dir {
            builder = builder.data_dir(dir);
        }
        let engine = builder.open().await.context("opening the engine")?;
        let mut source = EventGen::new(
            std::sync::Arc::clone(keys),
            Dist::Uniform,
            0.99,
            OpMix::single(GenOp::Incr),
            seed,
            0,
            1,
        )?;
        let batches: Vec<Vec<Event>> = (0..events.div_ceil(batch as u64))
            .map(|b| {
                let n = (events - b * batch as u64).min(batch as u64);
                (0..n)
                    .map(|_| Event::incr(source.next_event().key, 1))
                    .collect()
            })
            .collect();
        let mut rec = Recorder::default();
        let mut tally = FrameTally::default();
        let mut inflight = VecDeque::with_capacity(IN_FLIGHT);
        let start = Instant::now();
        for b in batches {
            let t0 = Instant::now();
            let ticket = engine.enqueue(b, ack).await.context("admitting a batch")?;
            inflight.push_back((t0, ticket));
            if inflight.len() >= IN_FLIGHT
                && let Some((t0, ticket)) = inflight.pop_front()
            {
                tally.clear();
                for r in &ticket.wait().await {
                    tally.result(r);
                }
                rec.frame(t0.elapsed(), &tally);
            }
        }
        for (t0, ticket) in inflight {
            tally.clear();
            for r in &ticket.wait().await {
                tally.result(r);
            }
            rec.frame(t0.elapsed(), &tally);
        }
        let elapsed = start.elapsed();
        engine
            .shutdown()
            .await
            .context("shutting the engine down")?;
        Ok(LoadReport::new(
            &rec,
            elapsed,
            serde_json::json!({
                "target": "in-process engine",
                "events": events,
                "keys": keys.len(),
                "dist": "uniform",
                "op": "incr",
                "batch": batch,
                "in_flight": IN_FLIGHT,
                "ack": ack.as_str(),
                "shards": std::thread::available_parallelism().map_or(1, |n| n.get()),
            }),
        ))
    })
}

/// The Python peer's one JSON line.
#[derive(Debug, Clone, Deserialize)]
pub struct PythonFigure {
    /// Events applied.
    pub events: u64,
    /// Wall time.
    pub seconds: f64,
    /// events / seconds.
    pub events_per_s: f64,
}

/// Runs the Python peer once (`mode` = `drain` or `wait_for`).
pub fn run_python(
    python: &Path,
    tmp: &Path,
    events: u64,
    keys: u64,
    mode: &str,
    timeout: Duration,
) -> anyhow::Result<PythonFigure> {
    let script = tmp.join("asyncio_peer.py");
    if !script.exists() {
        std::fs::write(&script, ASYNCIO_PEER)
            .with_context(|| format!("writing {}", script.display()))?;
    }
    let mut child = Command::new(python)
        .arg(&script)
        .args(["--events", &events.to_string()])
        .args(["--keys", &keys.to_string()])
        .args(["--workers", "4", "--batch", "1000", "--mode", mode])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the Python peer ran over {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "the Python peer failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("the Python peer printed {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w6_counts_every_event() {
        let keys = std::sync::Arc::new(KeySpace::new("key:", 1000).expect("keys"));
        let r = run_engine(&keys, 10_500, 1000, AckMode::Applied, None, 1).expect("runs");
        assert_eq!(r.events, 10_500);
        assert_eq!(r.ok, 10_500);
        assert_eq!(r.errors, 0);
        assert_eq!(r.frames, 11);
    }
}
