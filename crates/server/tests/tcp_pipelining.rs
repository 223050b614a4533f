//! TCP ingest: many frames in flight on one connection; one ACK per frame,
//! in frame order, with per-key order kept across frames; NDJSON and binary
//! frames mixed; every ack mode.

mod common;

use statecraft_engine::{AckMode, Event, EventResult};
use statecraft_server::TcpClient;
use statecraft_server::protocol::ServerFrame;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_come_back_in_frame_order() {
    let running = common::start(common::config()).await;
    let client = TcpClient::connect(running.tcp_addr, None)
        .await
        .expect("greeted");
    assert_eq!(client.server_hello().version, 1);
    let (mut tx, mut rx) = client.split();

    const FRAMES: u32 = 300;
    const PER_FRAME: usize = 50;
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < FRAMES as usize {
            match rx.recv().await.expect("a frame") {
                ServerFrame::Ack { seq, results } => seen.push((seq, results)),
                other => panic!("unexpected {other:?}"),
            }
        }
        seen
    });
    for f in 0..FRAMES {
        if f % 3 == 0 {
            let nd: String = (0..PER_FRAME)
                .map(|i| format!("{{\"key\":\"k{}\",\"op\":\"incr\"}}\n", i % 10))
                .collect();
            tx.send_ndjson(nd.as_bytes(), None).await.expect("sent");
        } else {
            let mut batch = tx.batch(None);
            for i in 0..PER_FRAME {
                batch.incr(&format!("k{}", i % 10), 1);
            }
            // Build two frames before writing, some of the time.
            if f % 2 == 0 {
                batch.finish();
            } else {
                batch.send().await.expect("sent");
            }
        }
    }
    tx.flush().await.expect("flushed");
    let seen = reader.await.expect("reader");
    let seqs: Vec<u32> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (0..FRAMES).collect::<Vec<_>>(),
        "one ACK per frame, in order"
    );
    // Versions per key grow by one per event across frames: per-key order.
    let mut last = [0u64; 10];
    for (_, results) in &seen {
        assert_eq!(results.len(), PER_FRAME);
        for (i, r) in results.iter().enumerate() {
            let EventResult::Applied { version } = r else {
                panic!("{r:?}")
            };
            let k = i % 10;
            assert_eq!(*version, last[k] + 1);
            last[k] = *version;
        }
    }
    let engine = running.engine().expect("open");
    let total = u64::from(FRAMES) * PER_FRAME as u64 / 10;
    assert_eq!(
        engine.get("k3").await.expect("get").expect("present").value,
        total
    );
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_modes_over_tcp() {
    let running = common::start(common::config()).await;
    let mut client = TcpClient::connect_with(
        running.tcp_addr,
        statecraft_server::ClientOptions {
            ack: Some(AckMode::None),
            ..Default::default()
        },
    )
    .await
    .expect("greeted");
    assert_eq!(client.server_hello().ack, AckMode::None);
    let ev = [Event::incr("a", 1)];
    assert_eq!(
        client.submit(&ev, None).await.expect("ack"),
        [EventResult::Accepted],
        "HELLO default"
    );
    assert!(
        client
            .submit(&ev, Some(AckMode::Applied))
            .await
            .expect("ack")[0]
            .is_applied()
    );
    assert!(
        client
            .submit(&ev, Some(AckMode::Durable))
            .await
            .expect("ack")[0]
            .is_applied()
    );
    assert_eq!(
        client.submit(&ev, Some(AckMode::None)).await.expect("ack"),
        [EventResult::Accepted]
    );
    // Every result status travels the binary ACK encoding.
    let events = [
        Event::set("s", serde_json::json!("text")).with_id("x"),
        Event::set("s", serde_json::json!("text")).with_id("x"),
        Event::incr("s", 1),
        Event::set("s", serde_json::json!(1)).with_if_version(42),
    ];
    let results = client
        .submit(&events, Some(AckMode::Applied))
        .await
        .expect("ack");
    assert!(results[0].is_applied());
    assert_eq!(results[1], EventResult::Duplicate);
    assert!(matches!(
        results[2],
        EventResult::Rejected {
            code: statecraft_engine::RejectCode::TypeError,
            ..
        }
    ));
    assert_eq!(results[3], EventResult::Conflict { current_version: 1 });
    running.shutdown().await.expect("clean shutdown");
}
