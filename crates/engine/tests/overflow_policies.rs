//! Each overflow policy against a stalled consumer: `block` waits, `reject`
//! answers `overloaded` at once, the drop policies drop what they say and
//! count it. The consumer is "stalled" by a per-event apply delay.

use std::time::Duration;

use serde_json::json;
use statecraft_engine::{AckMode, Engine, Event, EventResult, OverflowPolicy};

async fn slow_engine(policy: OverflowPolicy, timeout: Option<Duration>) -> Engine {
    Engine::builder()
        .shards(1)
        .queue_capacity(10)
        .max_batch(10)
        .max_wait(Duration::ZERO)
        .overflow(policy)
        .block_timeout(timeout)
        .apply_delay(Duration::from_millis(20))
        .open()
        .await
        .expect("open")
}

fn batch(n: usize, tag: &str) -> Vec<Event> {
    (0..n)
        .map(|i| Event::set(format!("{tag}{i}"), json!(i)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_answers_overloaded_at_once() {
    let e = slow_engine(OverflowPolicy::Reject, None).await;
    // Fill: one batch being applied (10 × 20 ms), one queued.
    let t1 = e
        .enqueue(batch(10, "a"), AckMode::Applied)
        .await
        .expect("admit");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let t2 = e
        .enqueue(batch(10, "b"), AckMode::Applied)
        .await
        .expect("admit");
    let refused = e
        .submit_with(batch(5, "c"), AckMode::Applied)
        .await
        .expect("answer");
    assert!(
        refused.iter().all(|r| *r == EventResult::Overloaded),
        "{refused:?}"
    );
    assert!(t1.wait().await.iter().all(EventResult::is_applied));
    assert!(t2.wait().await.iter().all(EventResult::is_applied));
    let stats = e.stats();
    assert_eq!(stats.shards[0].queue.rejected, 5);
    assert_eq!(stats.results.overloaded, 5);
    e.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_waits_for_room_then_applies_everything() {
    let e = slow_engine(OverflowPolicy::Block, None).await;
    let t1 = e
        .enqueue(batch(10, "a"), AckMode::Applied)
        .await
        .expect("admit");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let t2 = e
        .enqueue(batch(10, "b"), AckMode::Applied)
        .await
        .expect("admit");
    let e2 = e.clone();
    let blocked =
        tokio::spawn(async move { e2.submit_with(batch(10, "c"), AckMode::Applied).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !blocked.is_finished(),
        "a full queue must hold the producer"
    );
    let r3 = blocked.await.expect("join").expect("answer");
    assert!(r3.iter().all(EventResult::is_applied));
    assert!(t1.wait().await.iter().all(EventResult::is_applied));
    assert!(t2.wait().await.iter().all(EventResult::is_applied));
    assert_eq!(e.stats().results.overloaded, 0);
    e.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_with_timeout_answers_overloaded() {
    let e = slow_engine(OverflowPolicy::Block, Some(Duration::from_millis(20))).await;
    let _t1 = e
        .enqueue(batch(10, "a"), AckMode::Applied)
        .await
        .expect("admit");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let _t2 = e
        .enqueue(batch(10, "b"), AckMode::Applied)
        .await
        .expect("admit");
    let r = e
        .submit_with(batch(3, "c"), AckMode::Applied)
        .await
        .expect("answer");
    assert!(r.iter().all(|r| *r == EventResult::Overloaded));
    assert_eq!(e.stats().shards[0].queue.rejected, 3);
    e.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_drops_the_new_and_counts_it() {
    let e = slow_engine(OverflowPolicy::DropNewest, None).await;
    let t1 = e
        .enqueue(batch(10, "a"), AckMode::Applied)
        .await
        .expect("admit");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let t2 = e
        .enqueue(batch(10, "b"), AckMode::Applied)
        .await
        .expect("admit");
    let r = e
        .submit_with(batch(4, "c"), AckMode::Applied)
        .await
        .expect("answer");
    assert!(r.iter().all(|r| *r == EventResult::Overloaded));
    assert!(t1.wait().await.iter().all(EventResult::is_applied));
    assert!(t2.wait().await.iter().all(EventResult::is_applied));
    assert!(e.get("c0").await.expect("get").is_none());
    assert_eq!(e.stats().shards[0].queue.rejected, 4);
    e.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_drops_the_queued_and_counts_it() {
    let e = slow_engine(OverflowPolicy::DropOldest, None).await;
    let t1 = e
        .enqueue(batch(10, "a"), AckMode::Applied)
        .await
        .expect("admit");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let t2 = e
        .enqueue(batch(10, "b"), AckMode::Applied)
        .await
        .expect("admit");
    let t3 = e
        .enqueue(batch(10, "c"), AckMode::Applied)
        .await
        .expect("admit");
    assert!(
        t1.wait().await.iter().all(EventResult::is_applied),
        "in flight, not dropped"
    );
    assert!(
        t2.wait()
            .await
            .iter()
            .all(|r| *r == EventResult::Overloaded),
        "oldest queued dropped"
    );
    assert!(t3.wait().await.iter().all(EventResult::is_applied));
    assert!(e.get("b0").await.expect("get").is_none());
    assert_eq!(e.stats().shards[0].queue.dropped, 10);
    e.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_everything_admitted() {
    let e = slow_engine(OverflowPolicy::Block, None).await;
    let t1 = e
        .enqueue(batch(10, "a"), AckMode::Applied)
        .await
        .expect("admit");
    let t2 = e
        .enqueue(batch(10, "b"), AckMode::Applied)
        .await
        .expect("admit");
    e.shutdown().await.expect("shutdown");
    assert!(t1.wait().await.iter().all(EventResult::is_applied));
    assert!(t2.wait().await.iter().all(EventResult::is_applied));
    assert!(
        e.submit(batch(1, "z")).await.is_err(),
        "nothing admitted after shutdown"
    );
}

/// Adversary: a worker that panics drops its reply unanswered, and that was
/// answered `overloaded` — so a client retried a bug as back-pressure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_panic_is_not_answered_overloaded() {
    let engine = Engine::builder()
        .shards(1)
        .custom_op("boom", |_, _| panic!("a bug in a custom op"))
        .open()
        .await
        .expect("opens");
    let results = engine
        .submit_with(
            vec![Event::new("k", statecraft_engine::Op::parse("boom"))],
            AckMode::Applied,
        )
        .await
        .expect("admitted");
    match &results[0] {
        EventResult::Rejected { code, .. } => {
            assert_eq!(*code, statecraft_engine::RejectCode::WorkerFailed)
        }
        other => panic!("a worker panic was answered {other:?}"),
    }
    assert!(engine.shutdown().await.is_err(), "the panic is reported");
}
