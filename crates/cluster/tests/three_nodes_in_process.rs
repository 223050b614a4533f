//! Three nodes in one process (three engines, three data dirs), one
//! producer: every `incr` with an id is applied exactly once, each key is
//! readable from any node (proxied to its owner), and the partitions are
//! shared fairly.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use statecraft_cluster::{Cluster, ClusterConfig, ClusterHandle, Producer, ProducerOptions};
use statecraft_engine::{AckMode, Engine, Event, EventResult};

async fn node(url: &str, id: &str, dir: &std::path::Path) -> (Engine, ClusterHandle) {
    let engine = Engine::builder()
        .shards(2)
        .data_dir(dir)
        .open()
        .await
        .expect("engine");
    let mut config = ClusterConfig::new(url, id);
    config.partitions = 6;
    config.lease_ttl = Duration::from_secs(2);
    let cluster = Cluster::start(config, engine.clone())
        .await
        .expect("cluster start");
    (engine, cluster)
}

async fn wait_all_served(nodes: &[&ClusterHandle], partitions: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let served: usize = nodes.iter().map(|n| n.stats().serving.len()).sum();
        if served == partitions as usize {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "partitions not all served: {:?}",
            nodes.iter().map(|n| n.stats().serving).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_apply_each_event_once_and_answer_reads_anywhere() {
    let Some(nats) = common::start() else { return };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let (e1, n1) = node(&nats.url, "n1", dirs[0].path()).await;
    let (e2, n2) = node(&nats.url, "n2", dirs[1].path()).await;
    let (e3, n3) = node(&nats.url, "n3", dirs[2].path()).await;
    wait_all_served(&[&n1, &n2, &n3], 6).await;
    for n in [&n1, &n2, &n3] {
        assert_eq!(n.stats().serving.len(), 2, "fair share: {:?}", n.stats());
    }

    let producer = Producer::connect(&nats.url, ProducerOptions::default())
        .await
        .expect("producer");
    assert_eq!(producer.partitions(), 6);
    let keys = 50;
    let n = 3_000;
    let mut expected: HashMap<String, i64> = HashMap::new();
    let mut events = Vec::new();
    for i in 0..n {
        let key = format!("k{}", (i * 7919) % keys);
        *expected.entry(key.clone()).or_default() += 1;
        events.push(Event::incr(key, 1).with_id(format!("e{i}")));
    }
    for chunk in events.chunks(500) {
        let results = producer
            .publish_events(chunk.to_vec(), AckMode::Durable)
            .await
            .expect("publish");
        assert!(
            results.iter().all(|r| *r == EventResult::Accepted),
            "{results:?}"
        );
    }
    // Re-sending the same ids: the stream drops them.
    let again = producer
        .publish_events(events[..100].to_vec(), AckMode::Durable)
        .await
        .expect("publish");
    assert!(
        again.iter().all(|r| *r == EventResult::Duplicate),
        "{again:?}"
    );
    // ack=applied: read-your-writes.
    let applied = n1
        .publish(
            vec![Ok(Event::incr("k0", 1).with_id("last"))],
            AckMode::Applied,
        )
        .await
        .expect("publish");
    assert!(
        matches!(applied[0], EventResult::Applied { .. }),
        "{applied:?}"
    );
    *expected.get_mut("k0").expect("k0") += 1;

    // Record batches: the stream cannot drop a re-sent id inside a batch
    // (the message id is the batch's); the owner does, from the
    // partition's committed ids, and says so under ack=applied.
    let batching = Producer::connect(
        &nats.url,
        ProducerOptions {
            max_events_per_message: 1_000,
            ..ProducerOptions::default()
        },
    )
    .await
    .expect("batching producer");
    let fresh: Vec<Event> = (0..200)
        .map(|i| Event::incr(format!("b{}", i % 20), 1).with_id(format!("batch-{i}")))
        .collect();
    let first = batching
        .publish_events(fresh.clone(), AckMode::Applied)
        .await
        .expect("publish");
    assert!(first.iter().all(EventResult::is_applied), "{first:?}");
    let again = batching
        .publish_events(fresh, AckMode::Applied)
        .await
        .expect("publish");
    assert!(
        again.iter().all(|r| *r == EventResult::Duplicate),
        "{again:?}"
    );
    for i in 0..20 {
        expected.insert(format!("b{i}"), 10);
    }

    for node in [&n1, &n2, &n3] {
        for (key, want) in &expected {
            let got = loop {
                let r = node.get(key).await.expect("read");
                let v = r.as_ref().and_then(|r| r.value.as_i64()).unwrap_or(0);
                if v == *want {
                    break v;
                }
                // Durable acks do not wait for the apply: give it time.
                tokio::time::sleep(Duration::from_millis(50)).await;
                if v > *want {
                    break v;
                }
            };
            assert_eq!(got, *want, "key {key} read on {}", node.node_id());
        }
    }
    let stats: Vec<_> = [&n1, &n2, &n3].iter().map(|n| n.stats()).collect();
    assert!(stats.iter().map(|s| s.reads_proxied).sum::<u64>() > 0);
    for (n, e) in [(n1, e1), (n2, e2), (n3, e3)] {
        n.shutdown().await.expect("cluster shutdown");
        e.shutdown().await.expect("engine shutdown");
    }
}
