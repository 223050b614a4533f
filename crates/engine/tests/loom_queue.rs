//! loom models of the queue hand-offs, with tiny bounds: close while a
//! producer waits, drop while waiting, resize while waiting, and no lost
//! wake-up between a producer and the consumer.
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test -p statecraft-engine --release --test loom_queue`

#![cfg(loom)]

use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;
use statecraft_engine::queue::{OverflowPolicy, PushError, ShardQueue};

#[test]
fn no_lost_wakeup_between_producer_and_consumer() {
    loom::model(|| {
        let q = Arc::new(ShardQueue::<u8>::new(1, usize::MAX, OverflowPolicy::Block));
        let p = Arc::clone(&q);
        let producer = thread::spawn(move || {
            block_on(p.push(1, 1, 0)).expect("admitted");
            block_on(p.push(2, 1, 0)).expect("admitted");
        });
        let mut got = Vec::new();
        while got.len() < 2 {
            let items = block_on(q.pop(1)).expect("open");
            got.extend(items.into_iter().map(|i| i.payload));
        }
        producer.join().expect("join");
        assert_eq!(got, vec![1, 2]);
    });
}

#[test]
fn close_while_a_producer_waits() {
    loom::model(|| {
        let q = Arc::new(ShardQueue::<u8>::new(1, usize::MAX, OverflowPolicy::Block));
        block_on(q.push(1, 1, 0)).expect("room");
        let p = Arc::clone(&q);
        let producer = thread::spawn(move || block_on(p.push(2, 1, 0)));
        q.close();
        let outcome = producer.join().expect("join");
        // Either it got in before the close or it was told the queue closed;
        // it never hangs, and whatever got in is drained.
        let mut drained = Vec::new();
        while let Some(items) = block_on(q.pop(10)) {
            drained.extend(items.into_iter().map(|i| i.payload));
        }
        match outcome {
            Ok(_) => assert_eq!(drained, vec![1, 2]),
            Err(PushError::Closed(2)) => assert_eq!(drained, vec![1]),
            Err(other) => panic!("unexpected {other:?}"),
        }
    });
}

#[test]
fn resize_up_while_a_producer_waits() {
    loom::model(|| {
        let q = Arc::new(ShardQueue::<u8>::new(1, usize::MAX, OverflowPolicy::Block));
        block_on(q.push(1, 1, 0)).expect("room");
        let p = Arc::clone(&q);
        let producer = thread::spawn(move || block_on(p.push(2, 1, 0)).map(|_| ()));
        q.set_capacity(2);
        producer
            .join()
            .expect("join")
            .expect("admitted after the resize");
        assert_eq!(q.snapshot().depth_events, 2);
    });
}

#[test]
fn consumer_pop_while_a_producer_waits() {
    loom::model(|| {
        let q = Arc::new(ShardQueue::<u8>::new(1, usize::MAX, OverflowPolicy::Block));
        block_on(q.push(1, 1, 0)).expect("room");
        let p = Arc::clone(&q);
        let producer = thread::spawn(move || block_on(p.push(2, 1, 0)).map(|_| ()));
        let first = block_on(q.pop(1)).expect("open");
        assert_eq!(first[0].payload, 1);
        producer
            .join()
            .expect("join")
            .expect("admitted once room appeared");
        let second = block_on(q.pop(1)).expect("open");
        assert_eq!(second[0].payload, 2);
    });
}

#[test]
fn dropping_a_waiting_push_leaves_nothing_behind() {
    loom::model(|| {
        let q = Arc::new(ShardQueue::<u8>::new(1, usize::MAX, OverflowPolicy::Block));
        block_on(q.push(1, 1, 0)).expect("room");
        {
            // Poll once (registers a waker), then drop.
            let mut fut = Box::pin(q.push(2, 1, 0));
            let waker = futures::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        let c = Arc::clone(&q);
        let consumer = thread::spawn(move || block_on(c.pop(1)).map(|v| v.len()));
        assert_eq!(consumer.join().expect("join"), Some(1));
        assert_eq!(q.snapshot().waiting_producers, 0);
        assert_eq!(q.snapshot().enqueued, 1);
    });
}
