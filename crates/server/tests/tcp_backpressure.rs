//! TCP backpressure under `block`: with a small queue and a slow consumer the
//! server stops reading, so what the client wrote piles up in the socket
//! buffers instead of in the server; nothing is refused or lost.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use statecraft_engine::OverflowPolicy;
use statecraft_server::protocol::ServerFrame;
use statecraft_server::{ServeConfig, TcpClient};

const PER_FRAME: u64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_stops_the_reader() {
    let running = common::start(ServeConfig {
        engine: statecraft_engine::EngineConfig {
            shards: 1,
            queue_capacity: 1000,
            max_batch: 500,
            overflow: OverflowPolicy::Block,
            block_timeout: None,
            apply_delay: Duration::from_micros(50),
            ..common::config().engine
        },
        ..common::config()
    })
    .await;
    let base = running.http_url();
    let client = TcpClient::connect(running.tcp_addr, None)
        .await
        .expect("greeted");
    let (mut tx, mut rx) = client.split();
    let written = Arc::new(AtomicU64::new(0));
    let w = Arc::clone(&written);
    // Keep writing frames, and read no ACK for now.
    let writer = tokio::spawn(async move {
        for _ in 0..100_000u32 {
            let mut batch = tx.batch(None);
            for i in 0..PER_FRAME {
                batch.incr(&format!("key:{:06}", i % 200), 1);
            }
            if batch.send().await.is_err() {
                break;
            }
            w.fetch_add(1, Ordering::Relaxed);
        }
        tx
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (_, stats) = common::get_json(&base, "/v1/stats").await;
    let read_events = stats["server"]["tcp_events"].as_u64().expect("tcp_events");
    let applied = stats["results"]["applied"].as_u64().expect("applied");
    let written_events = written.load(Ordering::Relaxed) * PER_FRAME;
    // The server read only what the engine could take: what it applied,
    // plus a queue's worth, the batch being applied, the frame being
    // admitted, and one frame of skew between the two counters.
    assert!(
        read_events <= applied + 1000 + 3 * PER_FRAME,
        "server read {read_events} events but applied only {applied}"
    );
    // The client wrote much more: it sits in the socket buffers (TCP flow
    // control), not in the server.
    assert!(
        written_events > read_events + 10 * PER_FRAME,
        "client wrote {written_events}, server read {read_events}: no backpressure visible"
    );
    assert_eq!(stats["results"]["overloaded"], 0, "block refuses nothing");

    // Stop writing and read the ACKs: every frame the server read is answered.
    writer.abort();
    let mut acked = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while acked * PER_FRAME < read_events {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ServerFrame::Ack { results, .. })) => {
                assert!(results.iter().all(|r| r.is_applied()));
                acked += 1;
            }
            other => panic!("expected ACKs, got {other:?}"),
        }
    }
    drop(rx);
    running.shutdown().await.expect("clean shutdown");
}
