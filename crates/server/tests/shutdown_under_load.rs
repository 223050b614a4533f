//! Graceful shutdown under load, in process: while clients pipeline frames,
//! `shutdown()` stops reading new frames, answers every admitted frame, ends
//! each connection with `ERROR shutting_down`, then drains the engine. Every
//! event the engine applied was acknowledged to its client, and vice versa.

mod common;

use std::time::Duration;

use statecraft_engine::{AckMode, EventResult};
use statecraft_server::TcpClient;
use statecraft_server::protocol::{ErrorCode, ServerFrame};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_every_admitted_frame() {
    let running = common::start(common::config()).await;
    let engine = running.engine().expect("open");
    let mut clients = Vec::new();
    for c in 0..4u32 {
        let client = TcpClient::connect(running.tcp_addr, None)
            .await
            .expect("greeted");
        let (mut tx, mut rx) = client.split();
        let sender = tokio::spawn(async move {
            for _ in 0..100_000u32 {
                let mut batch = tx.batch(Some(AckMode::Applied));
                for i in 0..200 {
                    batch.incr(&format!("c{c}:{}", i % 50), 1);
                }
                if batch.send().await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        });
        let receiver = tokio::spawn(async move {
            let mut applied = 0u64;
            let mut last_error = None;
            loop {
                match rx.recv().await {
                    Ok(ServerFrame::Ack { results, .. }) => {
                        for r in &results {
                            match r {
                                EventResult::Applied { .. } => applied += 1,
                                other => panic!("unexpected result {other:?}"),
                            }
                        }
                    }
                    Ok(ServerFrame::Error(e)) => last_error = Some(e),
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(_) => break,
                }
            }
            (applied, last_error)
        });
        clients.push((sender, receiver));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    tokio::time::timeout(Duration::from_secs(30), running.shutdown())
        .await
        .expect("shutdown finishes")
        .expect("clean shutdown");

    let mut acked = 0u64;
    for (sender, receiver) in clients {
        let (applied, last_error) = receiver.await.expect("receiver");
        sender.abort();
        acked += applied;
        let e = last_error.expect("each connection ends with an ERROR");
        assert_eq!(e.code, ErrorCode::ShuttingDown, "{e:?}");
    }
    assert!(acked > 0, "load ran before the shutdown");
    assert_eq!(
        engine.applied_total(),
        acked,
        "every applied event was acknowledged, and only those"
    );
    assert!(engine.is_closing());
}
