//! BENCH.md W6: `incr` by 1 on 100,000 uniform keys through the library API,
//! no network. Prints events/s per ack mode.
//!
//! `cargo run --release -p statecraft-engine --example w6 -- [events] [batch] [ack] [data_dir|-] [rate]`
//!
//! With `rate` (events/s) it is BENCH.md W3 in process: batches are offered
//! on a fixed schedule and the latency of each from its *scheduled* time to
//! its ack is recorded (no coordinated omission); prints p50/p99/p999/max,
//! and with `W3_SERIES=path` writes each batch's latency over time as CSV
//! (`bench/latency_chart.py` draws it).

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use statecraft_engine::{AckMode, Engine, Event};

/// W3: offers `batches` at `rate` events/s; latency from each batch's
/// scheduled time to its ack.
async fn fixed_rate(
    engine: Engine,
    batches: Vec<Vec<Event>>,
    batch: usize,
    ack: AckMode,
    rate: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let hist = std::sync::Arc::new(std::sync::Mutex::new(
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?,
    ));
    let interval = std::time::Duration::from_secs_f64(batch as f64 / rate);
    // For a profiler attaching now (`perf record -p`): setup is done.
    eprintln!("measuring");
    let start = tokio::time::Instant::now();
    let mut waiters = Vec::with_capacity(batches.len());
    let n = batches.len();
    for (i, b) in batches.into_iter().enumerate() {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        let ticket = engine.enqueue(b, ack).await?;
        let h = std::sync::Arc::clone(&hist);
        waiters.push(tokio::spawn(async move {
            ticket.wait().await;
            let us = scheduled.elapsed().as_micros().max(1) as u64;
            if let Ok(mut h) = h.lock() {
                let _ = h.record(us);
            }
            us
        }));
    }
    // Latency over time (W3_SERIES=path): one line per batch, its scheduled
    // time since the start and its latency, for a chart.
    let series = std::env::var_os("W3_SERIES");
    let mut out = String::new();
    for (i, w) in waiters.into_iter().enumerate() {
        let us = w.await?;
        if series.is_some() {
            let at = interval * i as u32;
            out.push_str(&format!("{:.3},{}\n", at.as_secs_f64() * 1e3, us));
        }
    }
    if let Some(path) = series {
        std::fs::write(path, format!("scheduled_ms,latency_us\n{out}"))?;
    }
    let secs = start.elapsed().as_secs_f64();
    let h = hist.lock().map_err(|_| "poisoned")?.clone();
    println!(
        "W3 ack={ack} batch={batch} rate={rate:.0} events={} seconds={secs:.3} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3}",
        n * batch,
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.value_at_quantile(0.999) as f64 / 1e3,
        h.max() as f64 / 1e3,
    );
    engine.shutdown().await?;
    Ok(())
}

/// User + system CPU time of this process so far, in seconds (Linux).
fn cpu_seconds() -> f64 {
    // /proc/self/stat fields 14 and 15: utime and stime in clock ticks.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000);
    let ack = args
        .get(3)
        .and_then(|s| AckMode::parse(s))
        .unwrap_or(AckMode::Applied);
    let mut builder = Engine::builder().max_batch(4096);
    if let Some(dir) = args.get(4).filter(|d| d.as_str() != "-") {
        builder = builder.data_dir(dir);
    }
    let rate: Option<f64> = args.get(5).and_then(|s| s.parse().ok());
    let engine = builder.open().await?;
    let keys: Vec<String> = (0..100_000).map(|i| format!("user:{i}")).collect();
    // Pre-build the batches: W6 measures the engine, not event construction.
    let mut rng = 42u64;
    let batches: Vec<Vec<Event>> = (0..events / batch)
        .map(|_| {
            (0..batch)
                .map(|_| Event::incr(keys[(lcg(&mut rng) % 100_000) as usize].clone(), 1))
                .collect()
        })
        .collect();
    let total = batches.len() * batch;
    if let Some(rate) = rate {
        return fixed_rate(engine, batches, batch, ack, rate).await;
    }
    // For a profiler attaching now (`perf record -p`): setup is done.
    eprintln!("measuring");
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let mut inflight = std::collections::VecDeque::new();
    for b in batches {
        inflight.push_back(engine.enqueue(b, ack).await?);
        if inflight.len() >= 64
            && let Some(t) = inflight.pop_front()
        {
            t.wait().await;
        }
    }
    for t in inflight {
        t.wait().await;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu_after = cpu_seconds();
    println!(
        "W6 ack={} batch={} events={} seconds={:.3} events_per_s={:.0} cpu_ns_per_event={:.0}",
        ack,
        batch,
        total,
        secs,
        total as f64 / secs,
        (cpu_after - cpu_before) * 1e9 / total as f64
    );
    if let Some(d) = engine.stats().durability {
        println!(
            "  fsyncs={} records={} events_per_fsync={:.0} fsync_p50_us={} fsync_p99_us={} records_per_fsync_p50={}",
            d.fsyncs,
            d.records,
            d.events as f64 / d.fsyncs.max(1) as f64,
            d.fsync_us.p50,
            d.fsync_us.p99,
            d.records_per_fsync.p50
        );
    }
    let st = engine.stats();
    for s in &st.shards {
        println!(
            "  shard {} batches={} batch_events_p50={} queue_wait_p99_us={} apply_us_p50={}",
            s.shard, s.batches, s.batch_events.p50, s.queue_wait_us.p99, s.apply_us.p50
        );
    }
    engine.shutdown().await?;
    Ok(())
}
