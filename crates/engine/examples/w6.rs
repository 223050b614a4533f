//! BENCH.md W6: `incr` by 1 on 100,000 uniform keys through the library API,
//! no network. Prints events/s per ack mode.
//!
//! `cargo run --release -p statecraft-engine --example w6 -- [events] [batch] [ack] [data_dir]`

use std::time::Instant;

use statecraft_engine::{AckMode, Engine, Event};

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
    if let Some(dir) = args.get(4) {
        builder = builder.data_dir(dir);
    }
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
    println!(
        "W6 ack={} batch={} events={} seconds={:.3} events_per_s={:.0}",
        ack,
        batch,
        total,
        secs,
        total as f64 / secs
    );
    engine.shutdown().await?;
    Ok(())
}
