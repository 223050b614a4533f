//! Per-key order: 1,000 `set`s on one key in one submission end at the last
//! one, whatever the shard count and batch size.

use serde_json::json;
use statecraft_engine::{AckMode, Engine, Event, EventResult};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_sets_on_one_key_end_at_the_last() {
    for (shards, max_batch) in [(1, 1), (2, 7), (4, 1000)] {
        let engine = Engine::builder()
            .shards(shards)
            .max_batch(max_batch)
            .open()
            .await
            .expect("open");
        let events: Vec<Event> = (0..1000).map(|i| Event::set("k", json!(i))).collect();
        let results = engine
            .submit_with(events, AckMode::Applied)
            .await
            .expect("submit");
        for (i, r) in results.iter().enumerate() {
            assert_eq!(
                *r,
                EventResult::Applied {
                    version: i as u64 + 1
                }
            );
        }
        let rec = engine.get("k").await.expect("get").expect("present");
        assert_eq!(rec.value, json!(999));
        assert_eq!(rec.version, 1000);
        engine.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_submissions_keep_order_across_many_keys() {
    let engine = Engine::builder()
        .shards(3)
        .max_batch(16)
        .open()
        .await
        .expect("open");
    for round in 0..50 {
        let events: Vec<Event> = (0..40)
            .map(|k| Event::set(format!("key:{k}"), json!(round)))
            .collect();
        engine
            .enqueue(events, AckMode::Applied)
            .await
            .expect("admit");
    }
    engine.barrier().await.expect("barrier");
    for k in 0..40 {
        let rec = engine
            .get(&format!("key:{k}"))
            .await
            .expect("get")
            .expect("present");
        assert_eq!(rec.value, json!(49), "key:{k}");
        assert_eq!(rec.version, 50);
    }
    engine.shutdown().await.expect("shutdown");
}
