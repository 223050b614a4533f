//! The issue-9 benchmark: throughput and p99 `ack=applied` latency of an
//! in-process cluster of 1, 2 or 3 nodes (each its own engine and data dir,
//! all on one NATS server), against the same workload on one embedded
//! engine.
//!
//! ```sh
//! nats-server -js -a 127.0.0.1 -p 14222 -sd /tmp/nats-bench &
//! cargo run --release -p statecraft-cluster --example cluster_bench -- nats://127.0.0.1:14222 3
//! cargo run --release -p statecraft-cluster --example cluster_bench -- embedded
//! ```
//!
//! Workload: `EVENTS` `incr` events with ids over `KEYS` keys, sent by
//! `CONCURRENCY` closed-loop producers in requests of `BATCH` events (all
//! three from the environment; defaults 200000, 8, 100) with
//! `ack=applied`; latency is per request (publish to owner's answer). Use a
//! fresh NATS store dir per run (the stream keeps the events).

use std::sync::Arc;
use std::time::{Duration, Instant};

use statecraft_cluster::{Cluster, ClusterConfig, Producer, ProducerOptions};
use statecraft_engine::{AckMode, Engine, Event, EventResult};

const KEYS: usize = 10_000;

/// `name` from the environment, else `default` (EVENTS, BATCH, CONCURRENCY).
fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).cloned().unwrap_or_else(|| "embedded".into());
    #[allow(non_snake_case)]
    let (EVENTS, BATCH, CONCURRENCY) = (
        env("EVENTS", 200_000),
        env("BATCH", 100),
        env("CONCURRENCY", 8),
    );
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    let events: Arc<Vec<Event>> = Arc::new(
        (0..EVENTS)
            .map(|i| Event::incr(format!("user:{}", (i * 7919) % KEYS), 1).with_id(format!("b{i}")))
            .collect(),
    );
    type Sender = Arc<
        dyn Fn(Vec<Event>) -> futures::future::BoxFuture<'static, Vec<EventResult>> + Send + Sync,
    >;
    let mut engines = Vec::new();
    let mut nodes = Vec::new();
    let send: Sender = if mode == "embedded" {
        let engine = Engine::builder()
            .shards(2)
            .data_dir(dirs[0].path())
            .open()
            .await?;
        engines.push(engine.clone());
        Arc::new(move |batch| {
            let e = engine.clone();
            Box::pin(async move {
                e.submit_with(batch, AckMode::Applied)
                    .await
                    .unwrap_or_default()
            })
        })
    } else {
        let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
        for (i, dir) in dirs.iter().enumerate().take(n) {
            let engine = Engine::builder()
                .shards(2)
                .data_dir(dir.path())
                .open()
                .await?;
            let mut c = ClusterConfig::new(&mode, format!("b{i}"));
            c.partitions = 12;
            c.lease_ttl = Duration::from_secs(5);
            nodes.push(Cluster::start(c, engine.clone()).await?);
            engines.push(engine);
        }
        // Wait until every partition is served.
        let began = Instant::now();
        while nodes.iter().map(|n| n.stats().serving.len()).sum::<usize>() < 12 {
            if began.elapsed() > Duration::from_secs(30) {
                return Err("partitions not served".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let producer = Producer::connect(&mode, ProducerOptions::default()).await?;
        Arc::new(move |batch| {
            let p = producer.clone();
            Box::pin(async move {
                p.publish_events(batch, AckMode::Applied)
                    .await
                    .unwrap_or_default()
            })
        })
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONCURRENCY {
        let send = Arc::clone(&send);
        let events = Arc::clone(&events);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut applied = 0usize;
            for chunk in events.chunks(BATCH).skip(c).step_by(CONCURRENCY) {
                let t = Instant::now();
                let r = send(chunk.to_vec()).await;
                lat.push(t.elapsed());
                applied += r.iter().filter(|r| r.is_applied()).count();
            }
            (lat, applied)
        }));
    }
    let mut lat = Vec::new();
    let mut applied = 0;
    for t in tasks {
        let (l, a) = t.await?;
        lat.extend(l);
        applied += a;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let q = |f: f64| lat[((lat.len() as f64 * f) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "{mode} nodes={} events={EVENTS} applied={applied} secs={secs:.2} throughput={:.0} ev/s request(batch {BATCH}) latency ms p50={:.2} p99={:.2} max={:.2}",
        nodes.len().max(1),
        EVENTS as f64 / secs,
        q(0.50),
        q(0.99),
        q(1.0)
    );
    for n in &nodes {
        n.shutdown().await?;
    }
    for e in engines {
        e.shutdown().await?;
    }
    Ok(())
}
