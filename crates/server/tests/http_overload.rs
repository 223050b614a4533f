//! Overload over HTTP: 429 when every event is refused under `reject`, 503 +
//! Retry-After when `block` times out; a partly admitted request is 200 with
//! per-event statuses.

mod common;

use std::time::Duration;

use common::*;
use statecraft_engine::OverflowPolicy;
use statecraft_server::ServeConfig;

fn slow(overflow: OverflowPolicy) -> ServeConfig {
    let mut config = config();
    config.engine.shards = 1;
    config.engine.queue_capacity = 4;
    config.engine.max_batch = 1;
    config.engine.overflow = overflow;
    config.engine.block_timeout = Some(Duration::from_millis(100));
    config.engine.apply_delay = Duration::from_millis(100);
    config
}

/// Waits until every shard's queue is empty: the worker took what was
/// queued (and is now busy applying it).
async fn wait_taken(base: &str) {
    for _ in 0..200 {
        let (_, stats) = get_json(base, "/v1/stats").await;
        let queued: u64 = stats["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .map(|s| s["depth"].as_u64().expect("depth"))
            .sum();
        if queued == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the worker never took the queued events");
}

fn ndjson(n: usize, prefix: &str) -> String {
    (0..n)
        .map(|i| format!("{{\"key\":\"{prefix}{i}\",\"op\":\"incr\"}}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_policy_answers_429_when_nothing_fits() {
    let running = start(slow(OverflowPolicy::Reject)).await;
    let base = running.http_url();
    // The worker takes the first 4 (busy 400 ms); the next 4 fill the queue.
    // ack=none so that these requests return at once.
    for round in 0..2 {
        let (st, _) = post_events(
            &base,
            "?ack=none",
            "application/x-ndjson",
            ndjson(4, &format!("fill{round}-")),
        )
        .await;
        assert_eq!(st, 200);
        if round == 0 {
            wait_taken(&base).await;
        }
    }
    let resp = http()
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(ndjson(1, "late"))
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let p: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(p["code"], "overloaded");
    assert_eq!(p["results"][0]["status"], "overloaded");
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_policy_answers_503_after_the_timeout() {
    let running = start(slow(OverflowPolicy::Block)).await;
    let base = running.http_url();
    // The worker is busy with 4 events for 400 ms and 4 more fill the
    // queue: the next request waits the whole block timeout (100 ms).
    for round in 0..2 {
        let (st, _) = post_events(
            &base,
            "?ack=none",
            "application/x-ndjson",
            ndjson(4, &format!("fill{round}-")),
        )
        .await;
        assert_eq!(st, 200);
        if round == 0 {
            wait_taken(&base).await;
        }
    }
    let resp = http()
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(ndjson(10, "big"))
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let p: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(p["results"].as_array().expect("results").len(), 10);
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partly_overloaded_is_200_with_per_event_statuses() {
    // Two shards: one event per shard; the shard whose queue is full refuses
    // its event, the other applies it.
    let mut cfg = slow(OverflowPolicy::Reject);
    cfg.engine.shards = 2;
    let running = start(cfg).await;
    let base = running.http_url();
    let engine = running.engine().expect("open");
    // Find two keys on different shards, and fill the first key's shard.
    let (a, b) = (0..100)
        .map(|i| format!("key{i}"))
        .fold((None, None), |(a, b), k| {
            let s = statecraft_engine::router::shard_of(&k, 2);
            match (s, &a, &b) {
                (0, None, _) => (Some(k), b),
                (1, _, None) => (a, Some(k)),
                _ => (a, b),
            }
        });
    let (a, b) = (a.expect("shard 0 key"), b.expect("shard 1 key"));
    let fill: String = (0..4)
        .map(|_| format!("{{\"key\":\"{a}\",\"op\":\"incr\"}}\n"))
        .collect();
    for round in 0..2 {
        if round == 1 {
            wait_taken(&base).await;
        }
        assert_eq!(
            post_events(&base, "?ack=none", "application/x-ndjson", fill.clone())
                .await
                .0,
            200
        );
    }
    let body =
        format!("{{\"key\":\"{a}\",\"op\":\"incr\"}}\n{{\"key\":\"{b}\",\"op\":\"incr\"}}\n");
    let (st, v) = post_events(&base, "", "application/x-ndjson", body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(statuses(&v), ["overloaded", "applied"]);
    drop(engine);
    running.shutdown().await.expect("clean shutdown");
}
