//! The adaptive controller keeps deciding while the queue never empties:
//! under sustained overload the shard worker always has a batch ready, and
//! its periodic work (control tick, stats window) must still run — driven by
//! the clock inside the worker loop, not by a timer that only fires when the
//! loop yields. Regression test for the freeze docs/adaptive-queue.md shows.

use std::time::Duration;

use statecraft_engine::{AckMode, Engine, Event, OverflowPolicy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_shrinks_while_the_queue_stays_full() {
    let engine = Engine::builder()
        .shards(1)
        .queue_capacity(2_000)
        .overflow(OverflowPolicy::Reject)
        .max_batch(64)
        .max_wait(Duration::ZERO)
        .apply_delay(Duration::from_micros(200)) // ≈ 5,000 events/s
        .adaptive(Duration::from_millis(10), 8, 2_000)
        .open()
        .await
        .expect("open");
    // Offer far more than the worker serves for 2 s: the queue never empties.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut i = 0u64;
    let mut tickets = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let events: Vec<Event> = (0..50)
            .map(|_| {
                i += 1;
                Event::incr(format!("k{}", i % 16), 1)
            })
            .collect();
        tickets.push(
            engine
                .enqueue(events, AckMode::Applied)
                .await
                .expect("admit"),
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let during = engine.stats();
    let shard = &during.shards[0];
    assert!(
        shard.capacity_changes > 0,
        "the controller never ran under load: {shard:?}"
    );
    assert!(
        shard.queue.capacity < 2_000,
        "capacity should have shrunk toward target × service rate, is {}",
        shard.queue.capacity
    );
    assert!(shard.recent_wait_p95_us > 0, "the stats window kept moving");
    for t in tickets {
        t.wait().await;
    }
    engine.shutdown().await.expect("shutdown");
}
