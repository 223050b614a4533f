//! The issue-9 benchmark: throughput and p99 `ack=applied` latency of an
//! in-process cluster of 1, 2 or 3 nodes (each its own engine and data dir,
//! all on one NATS server), against the same workload on one embedded
//! engine.
//!
//! ```sh
//! nats-server -js -a 127.0.0.1 -p 14222 -sd /tmp/nats-bench &
//! cargo run --release -p statecraft-cluster --example cluster_bench -- nats://127.0.0.1:14222 3
//! cargo run --release -p statecraft-cluster --example cluster_bench -- embedded
//! cargo run --release -p statecraft-cluster --example cluster_bench -- raw nats://127.0.0.1:14222
//! ```
//!
//! Workload: `EVENTS` `incr` events with ids over `KEYS` keys, sent by
//! `CONCURRENCY` closed-loop producers in requests of `BATCH` events (all
//! three from the environment; defaults 200000, 8, 100) with `ACK`
//! (`applied`, the default, or `durable`); latency is per request (publish
//! to the owner's answer, or to the stream's ack). Use a fresh NATS store
//! dir per run (the stream keeps the events). `PER_MESSAGE` (default 1000)
//! bounds the events of one call grouped into one record batch per
//! partition; `PER_MESSAGE=1` is one message per event.
//!
//! `raw`: no Statecraft at all — the ceiling NATS sets on this machine.
//! The same events, JSON-encoded, published to a file-backed stream of
//! its own as messages of 1, 10, 100 and 1,000 events each, with up to
//! 1,024 publishes awaiting their ack; prints events/s and messages/s.

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
    if mode == "raw" {
        let url = args
            .get(2)
            .cloned()
            .unwrap_or_else(|| "nats://127.0.0.1:14222".into());
        return raw(&url, env("EVENTS", 200_000)).await;
    }
    let ack = match std::env::var("ACK").as_deref() {
        Ok("durable") => AckMode::Durable,
        _ => AckMode::Applied,
    };
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
            Box::pin(async move { e.submit_with(batch, ack).await.unwrap_or_default() })
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
        let producer = Producer::connect(
            &mode,
            ProducerOptions {
                max_events_per_message: env("PER_MESSAGE", 1_000),
                ..ProducerOptions::default()
            },
        )
        .await?;
        Arc::new(move |batch| {
            let p = producer.clone();
            Box::pin(async move { p.publish_events(batch, ack).await.unwrap_or_default() })
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
                applied += r
                    .iter()
                    .filter(|r| r.is_applied() || matches!(r, EventResult::Accepted))
                    .count();
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
        "{mode} ack={ack:?} nodes={} events={EVENTS} ok={applied} secs={secs:.2} throughput={:.0} ev/s request(batch {BATCH}) latency ms p50={:.2} p99={:.2} max={:.2}",
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

/// The `raw` mode (module docs).
async fn raw(url: &str, events: usize) -> Result<(), Box<dyn std::error::Error>> {
    use futures::StreamExt;
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    let one: Vec<Vec<u8>> = (0..events)
        .map(|i| {
            serde_json::to_vec(
                &Event::incr(format!("user:{}", (i * 7919) % KEYS), 1).with_id(format!("b{i}")),
            )
        })
        .collect::<Result<_, _>>()?;
    for per_message in [1usize, 10, 100, 1_000] {
        let name = format!("bench-raw-{per_message}");
        let _ = js.delete_stream(&name).await;
        js.create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{name}.>")],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
        // One message: a JSON array of `per_message` events.
        let messages: Vec<bytes::Bytes> = one
            .chunks(per_message)
            .map(|chunk| {
                let mut m =
                    Vec::with_capacity(chunk.iter().map(Vec::len).sum::<usize>() + chunk.len() + 2);
                m.push(b'[');
                for (i, e) in chunk.iter().enumerate() {
                    if i > 0 {
                        m.push(b',');
                    }
                    m.extend_from_slice(e);
                }
                m.push(b']');
                bytes::Bytes::from(m)
            })
            .collect();
        let started = Instant::now();
        let mut acks = futures::stream::FuturesUnordered::new();
        for (i, m) in messages.iter().enumerate() {
            while acks.len() >= 1_024 {
                if let Some(r) = acks.next().await {
                    let _: async_nats::jetstream::publish::PublishAck = r?;
                }
            }
            let ack = js.publish(format!("{name}.{}", i % 12), m.clone()).await?;
            acks.push(ack.into_future());
        }
        while let Some(r) = acks.next().await {
            let _ = r?;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "raw jetstream events_per_message={per_message} messages={} secs={secs:.2} events/s={:.0} messages/s={:.0}",
            messages.len(),
            events as f64 / secs,
            messages.len() as f64 / secs
        );
        let _ = js.delete_stream(&name).await;
    }
    Ok(())
}
