//! BENCH.md W2 in process: `merge` of a ~200-byte JSON patch into 1 M keys
//! picked zipf 0.99, batches of 500, through the library API (no network).
//! Prints events/s and CPU per event, and what parsing the same events from
//! NDJSON would cost on top (the server's decode, measured on its own).
//!
//! `cargo run --release -p statecraft-engine --example w2 -- [events] [batch] [ack] [data_dir|-] [keys]`
//!
//! Used to attribute the server's W2 cost (`perf record` on this process
//! sees only the engine: shards, committer, checkpointer, store).

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::{Value, json};
use statecraft_engine::{AckMode, Engine, Event, Op};

/// User + system CPU time of this process so far, in seconds (Linux).
fn cpu_seconds() -> f64 {
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
    *state >> 11
}

/// The load tool's W2 patch (`statecraft load --op merge`), `seq` = `n`.
fn patch(n: u64) -> Value {
    json!({
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "plan": "pro",
        "tags": ["math", "engines", "poetry"],
        "prefs": {"theme": "dark", "lang": "en", "tz": "Europe/London"},
        "address": {"city": "London", "street": "St James's Square 12"},
        "seq": n,
    })
}

/// Zipf(s) over `n` ranks by inverse CDF (rank 0 = hottest).
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut u64) -> usize {
        let u = (lcg(rng) as f64) / ((1u64 << 53) as f64);
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(500);
    let ack = args
        .get(3)
        .and_then(|s| AckMode::parse(s))
        .unwrap_or(AckMode::Applied);
    let mut builder = Engine::builder().max_batch(4096);
    if let Some(dir) = args.get(4).filter(|d| d.as_str() != "-") {
        builder = builder.data_dir(dir);
    }
    let nkeys: usize = args
        .get(5)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let engine = builder.open().await?;
    let zipf = Zipf::new(nkeys, 0.99);
    let mut rng = 42u64;
    let mut n = 0u64;
    let batches: Vec<Vec<Event>> = (0..events / batch)
        .map(|_| {
            (0..batch)
                .map(|_| {
                    n += 1;
                    let k = zipf.sample(&mut rng);
                    Event::new(format!("doc:{k}"), Op::Merge).with_value(patch(n))
                })
                .collect()
        })
        .collect();
    let total = batches.len() * batch;

    // The server's decode of the same events, alone (one NDJSON line each).
    let lines: Vec<Vec<u8>> = batches
        .iter()
        .take(200)
        .flatten()
        .map(serde_json::to_vec)
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    let mut parsed = 0usize;
    for l in &lines {
        let e: Event = serde_json::from_slice(l)?;
        parsed += usize::from(e.value.is_some());
    }
    let parse_ns = t.elapsed().as_nanos() as f64 / lines.len().max(1) as f64;

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
        "W2 ack={} batch={} keys={} events={} seconds={:.3} events_per_s={:.0} cpu_ns_per_event={:.0} serde_json_event_parse_ns={:.0} ({} parsed)",
        ack,
        batch,
        nkeys,
        total,
        secs,
        total as f64 / secs,
        (cpu_after - cpu_before) * 1e9 / total as f64,
        parse_ns,
        parsed,
    );
    if let Some(d) = engine.stats().durability {
        println!(
            "  fsyncs={} events_per_fsync={:.0} fsync_p99_us={} checkpoints={} checkpoint_keys={} checkpoint_p50_us={} checkpoint_max_us={} cache_misses={} evictions={}",
            d.fsyncs,
            d.events as f64 / d.fsyncs.max(1) as f64,
            d.fsync_us.p99,
            d.checkpoints,
            d.checkpoint_keys,
            d.checkpoint_us.p50,
            d.checkpoint_us.max,
            d.cache_misses,
            d.cache_evictions,
        );
    }
    engine.shutdown().await?;
    Ok(())
}
