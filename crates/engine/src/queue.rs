//! `ShardQueue`: the bounded, resizable queue in front of one shard worker.
//!
//! It owns the items waiting for a shard and the accounting of how full the
//! queue is, counted in events and in bytes. Producers are async tasks (many);
//! the consumer is the shard worker (one).
//!
//! # Invariants
//!
//! - `events <= cap_events` and `bytes <= cap_bytes` after every admission,
//!   except that an item larger than the whole capacity is admitted into an
//!   *empty* queue (otherwise it could never be admitted and its producer
//!   would wait forever). Shrinking the capacity below the current depth never
//!   drops anything: producers simply wait until the depth falls below it.
//! - Every item pushed is either popped by the consumer, or handed back to a
//!   producer as dropped/refused. Closing does not drop items: the consumer
//!   drains what was admitted before the close.
//!
//! # Implementation details
//!
//! One mutex guards the items, the counters and the wakers of whoever waits.
//! A waiting producer registers its waker under the lock and re-checks the
//! room under the same lock, so a wake-up cannot be lost between its check and
//! its registration. When room appears (pop, resize up, close) *every* waiting
//! producer is woken and re-checks: with a handful of producers per shard this
//! costs less than the bookkeeping of a fair hand-off, at the price of no FIFO
//! fairness between producers (a small item may pass a large one). The single
//! consumer keeps one waker slot.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::sync::{Mutex, lock};

/// What a full queue does with a new item (DESIGN.md §1).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
pub enum OverflowPolicy {
    /// The producer waits for room (TCP stops reading; HTTP waits up to a
    /// timeout). The default.
    #[default]
    Block,
    /// Refuse the new item at once (`overloaded` / 429).
    Reject,
    /// Admit the new item and drop the oldest queued items to make room
    /// (lossy telemetry only; counted).
    DropOldest,
    /// Drop the new item (lossy telemetry only; counted).
    DropNewest,
}

impl OverflowPolicy {
    /// Parses `block`, `reject`, `drop_oldest`, `drop_newest`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "block" => Some(Self::Block),
            "reject" => Some(Self::Reject),
            "drop_oldest" => Some(Self::DropOldest),
            "drop_newest" => Some(Self::DropNewest),
            _ => None,
        }
    }

    /// The policy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Reject => "reject",
            Self::DropOldest => "drop_oldest",
            Self::DropNewest => "drop_newest",
        }
    }
}

/// An item in the queue with its accounting.
#[derive(Debug)]
pub struct Queued<T> {
    /// The payload (for the engine: a sub-batch of events and its reply slot).
    pub payload: T,
    /// How many events the payload carries.
    pub events: usize,
    /// How many bytes the payload accounts for.
    pub bytes: usize,
    /// When it was admitted (for queue-wait statistics).
    pub enqueued_at: Instant,
}

/// The result of a push that did not admit the item.
#[derive(Debug)]
pub enum PushError<T> {
    /// The queue is full and the policy refuses (`reject`) or drops the new
    /// item (`drop_newest`); the item comes back.
    Full(T),
    /// The queue is closed; the item comes back.
    Closed(T),
}

/// Counters and gauges of one queue, read without stopping it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Events queued now.
    pub depth_events: usize,
    /// Bytes queued now.
    pub depth_bytes: usize,
    /// Items (sub-batches) queued now.
    pub depth_items: usize,
    /// Capacity in events.
    pub capacity_events: usize,
    /// Capacity in bytes.
    pub capacity_bytes: usize,
    /// The largest depth in events ever observed.
    pub max_depth_events: usize,
    /// Events admitted so far.
    pub enqueued: u64,
    /// Events handed to the consumer so far.
    pub dequeued: u64,
    /// Events refused because the queue was full (`reject`, `drop_newest`,
    /// and `block` producers that gave up).
    pub rejected: u64,
    /// Events admitted and later dropped (`drop_oldest`).
    pub dropped: u64,
    /// Of `rejected`: events of sub-batches that alone were larger than the
    /// capacity at the time — they fit only into an empty queue, so a
    /// capacity below the producers' sub-batch size refuses most of them
    /// while the queue looks nearly empty.
    pub rejected_oversize: u64,
    /// The largest sub-batch refused so far, events (0: none).
    pub largest_refused: usize,
    /// Producers waiting for room now.
    pub waiting_producers: usize,
    /// True once closed.
    pub closed: bool,
}

struct State<T> {
    items: VecDeque<Queued<T>>,
    events: usize,
    bytes: usize,
    cap_events: usize,
    cap_bytes: usize,
    closed: bool,
    /// Wakers of producers waiting for room, keyed by the waiting future's id.
    producers: Vec<(u64, Waker)>,
    next_waiter_id: u64,
    /// The consumer's waker while it waits for an item.
    consumer: Option<Waker>,
    max_depth: usize,
    /// Largest depth since the last [`ShardQueue::take_interval_peak`].
    interval_peak: usize,
    enqueued: u64,
    dequeued: u64,
    rejected: u64,
    dropped: u64,
    rejected_oversize: u64,
    largest_refused: usize,
}

impl<T> State<T> {
    /// Counts `events` of one sub-batch as refused (and as oversize when the
    /// sub-batch alone exceeds the capacity).
    fn refuse(&mut self, events: usize) {
        self.rejected += events as u64;
        self.largest_refused = self.largest_refused.max(events);
        if events > self.cap_events {
            self.rejected_oversize += events as u64;
        }
    }

    fn has_room(&self, events: usize, bytes: usize) -> bool {
        if self.items.is_empty() {
            return true;
        }
        self.events + events <= self.cap_events && self.bytes + bytes <= self.cap_bytes
    }

    fn admit(&mut self, item: Queued<T>) -> Option<Waker> {
        self.events += item.events;
        self.bytes += item.bytes;
        self.enqueued += item.events as u64;
        self.max_depth = self.max_depth.max(self.events);
        self.interval_peak = self.interval_peak.max(self.events);
        self.items.push_back(item);
        self.consumer.take()
    }

    fn take_producer_wakers(&mut self) -> Vec<Waker> {
        self.producers.drain(..).map(|(_, w)| w).collect()
    }
}

/// A bounded MPSC queue of sub-batches whose capacity is counted in events and
/// bytes and can be changed while it runs.
pub struct ShardQueue<T> {
    /// Everything, under one lock (see the module's implementation details).
    state: Mutex<State<T>>,
    policy: OverflowPolicy,
}

impl<T> std::fmt::Debug for ShardQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardQueue")
            .field("policy", &self.policy)
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl<T> ShardQueue<T> {
    /// A queue holding at most `cap_events` events and `cap_bytes` bytes.
    /// Capacities below 1 are raised to 1.
    pub fn new(cap_events: usize, cap_bytes: usize, policy: OverflowPolicy) -> Self {
        ShardQueue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                events: 0,
                bytes: 0,
                cap_events: cap_events.max(1),
                cap_bytes: cap_bytes.max(1),
                closed: false,
                producers: Vec::new(),
                next_waiter_id: 0,
                consumer: None,
                max_depth: 0,
                interval_peak: 0,
                enqueued: 0,
                dequeued: 0,
                rejected: 0,
                dropped: 0,
                rejected_oversize: 0,
                largest_refused: 0,
            }),
            policy,
        }
    }

    /// The queue's overflow policy.
    pub fn policy(&self) -> OverflowPolicy {
        self.policy
    }

    /// Pushes an item, applying the overflow policy. Under `block` the future
    /// waits for room; dropping it gives up (the item is dropped with it and
    /// nothing is counted as admitted). Under `drop_oldest` the items dropped
    /// to make room are returned so their producers can be told.
    pub fn push(&self, payload: T, events: usize, bytes: usize) -> Push<'_, T> {
        Push {
            queue: self,
            item: Some(Queued {
                payload,
                events,
                bytes,
                enqueued_at: Instant::now(),
            }),
            waiter_id: None,
        }
    }

    /// Waits for at least one item and takes queued items, oldest first, up to
    /// `max_events` events (at least one item, however large). `None` once the
    /// queue is closed and empty.
    pub fn pop(&self, max_events: usize) -> Pop<'_, T> {
        Pop {
            queue: self,
            max_events: max_events.max(1),
        }
    }

    /// Takes what is queued now, like [`pop`](Self::pop) but without waiting:
    /// an empty vector when nothing is queued.
    pub fn try_pop(&self, max_events: usize) -> Vec<Queued<T>> {
        let (items, wakers) = {
            let mut st = lock(&self.state);
            let items = Self::take_locked(&mut st, max_events.max(1));
            let wakers = if items.is_empty() {
                Vec::new()
            } else {
                st.take_producer_wakers()
            };
            (items, wakers)
        };
        for w in wakers {
            w.wake();
        }
        items
    }

    fn take_locked(st: &mut State<T>, max_events: usize) -> Vec<Queued<T>> {
        let mut out = Vec::new();
        let mut taken = 0usize;
        while let Some(front) = st.items.front() {
            if !out.is_empty() && taken + front.events > max_events {
                break;
            }
            let Some(item) = st.items.pop_front() else {
                break;
            };
            taken += item.events;
            st.events -= item.events;
            st.bytes -= item.bytes;
            st.dequeued += item.events as u64;
            out.push(item);
            if taken >= max_events {
                break;
            }
        }
        out
    }

    /// The capacity in events now.
    pub fn capacity(&self) -> usize {
        lock(&self.state).cap_events
    }

    /// Changes the capacity in events (at least 1). Growing wakes waiting
    /// producers; shrinking below the depth drops nothing.
    pub fn set_capacity(&self, cap_events: usize) {
        self.resize(|st| &mut st.cap_events, cap_events);
    }

    /// Changes the capacity in bytes (at least 1), like
    /// [`set_capacity`](Self::set_capacity).
    pub fn set_capacity_bytes(&self, cap_bytes: usize) {
        self.resize(|st| &mut st.cap_bytes, cap_bytes);
    }

    /// Sets one capacity field; wakes the waiting producers when it grew.
    fn resize(&self, field: impl FnOnce(&mut State<T>) -> &mut usize, value: usize) {
        let wakers = {
            let mut st = lock(&self.state);
            let cap = field(&mut st);
            let grew = value > *cap;
            *cap = value.max(1);
            if grew {
                st.take_producer_wakers()
            } else {
                Vec::new()
            }
        };
        for w in wakers {
            w.wake();
        }
    }

    /// The largest depth (events) since the previous call, then resets it to
    /// the current depth (the adaptive controller reads it per interval).
    pub fn take_interval_peak(&self) -> usize {
        let mut st = lock(&self.state);
        let peak = st.interval_peak.max(st.events);
        st.interval_peak = st.events;
        peak
    }

    /// Counts events of a producer that gave up waiting (e.g. a timeout under
    /// `block`) as rejected.
    pub fn count_rejected(&self, events: usize) {
        lock(&self.state).refuse(events);
    }

    /// Closes the queue: pushes fail with `Closed` from now on, waiting
    /// producers wake and fail, and the consumer drains what is queued, then
    /// sees `None`.
    pub fn close(&self) {
        let (producers, consumer) = {
            let mut st = lock(&self.state);
            st.closed = true;
            (st.take_producer_wakers(), st.consumer.take())
        };
        for w in producers {
            w.wake();
        }
        if let Some(w) = consumer {
            w.wake();
        }
    }

    /// The counters and gauges now.
    pub fn snapshot(&self) -> QueueSnapshot {
        let st = lock(&self.state);
        QueueSnapshot {
            depth_events: st.events,
            depth_bytes: st.bytes,
            depth_items: st.items.len(),
            capacity_events: st.cap_events,
            capacity_bytes: st.cap_bytes,
            max_depth_events: st.max_depth,
            enqueued: st.enqueued,
            dequeued: st.dequeued,
            rejected: st.rejected,
            dropped: st.dropped,
            rejected_oversize: st.rejected_oversize,
            largest_refused: st.largest_refused,
            waiting_producers: st.producers.len(),
            closed: st.closed,
        }
    }
}

/// The future of [`ShardQueue::push`].
///
/// Dropping it before it completes withdraws the item (nothing admitted).
pub struct Push<'a, T> {
    queue: &'a ShardQueue<T>,
    item: Option<Queued<T>>,
    /// Set while registered in the queue's producer list.
    waiter_id: Option<u64>,
}

/// What a successful push did.
#[derive(Debug)]
pub struct Admitted<T> {
    /// Items dropped from the front to make room (`drop_oldest` only). Their
    /// producers must be told their events were dropped.
    pub dropped: Vec<Queued<T>>,
}

impl<T> Unpin for Push<'_, T> {}

impl<T> Future for Push<'_, T> {
    type Output = Result<Admitted<T>, PushError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(item) = this.item.take() else {
            // Polled after completion: a caller bug, answered without panicking.
            return Poll::Pending;
        };
        let queue = this.queue;
        let mut st = lock(&queue.state);
        if let Some(id) = this.waiter_id.take() {
            st.producers.retain(|(wid, _)| *wid != id);
        }
        if st.closed {
            return Poll::Ready(Err(PushError::Closed(item.payload)));
        }
        let (events, bytes) = (item.events, item.bytes);
        if st.has_room(events, bytes) {
            let waker = st.admit(item);
            drop(st);
            if let Some(w) = waker {
                w.wake();
            }
            return Poll::Ready(Ok(Admitted {
                dropped: Vec::new(),
            }));
        }
        match queue.policy {
            OverflowPolicy::Block => {
                let id = st.next_waiter_id;
                st.next_waiter_id += 1;
                st.producers.push((id, cx.waker().clone()));
                this.waiter_id = Some(id);
                this.item = Some(item);
                Poll::Pending
            }
            OverflowPolicy::Reject | OverflowPolicy::DropNewest => {
                st.refuse(events);
                Poll::Ready(Err(PushError::Full(item.payload)))
            }
            OverflowPolicy::DropOldest => {
                let mut dropped = Vec::new();
                while !st.has_room(events, bytes) {
                    let Some(old) = st.items.pop_front() else {
                        break;
                    };
                    st.events -= old.events;
                    st.bytes -= old.bytes;
                    st.dropped += old.events as u64;
                    dropped.push(old);
                }
                let waker = st.admit(item);
                drop(st);
                if let Some(w) = waker {
                    w.wake();
                }
                Poll::Ready(Ok(Admitted { dropped }))
            }
        }
    }
}

impl<T> Drop for Push<'_, T> {
    fn drop(&mut self) {
        // Keeps the producer list free of wakers of futures that no longer
        // exist, so the list stays bounded by the live waiters.
        if let Some(id) = self.waiter_id.take() {
            lock(&self.queue.state)
                .producers
                .retain(|(wid, _)| *wid != id);
        }
    }
}

/// The future of [`ShardQueue::pop`].
pub struct Pop<'a, T> {
    queue: &'a ShardQueue<T>,
    max_events: usize,
}

impl<T> Future for Pop<'_, T> {
    type Output = Option<Vec<Queued<T>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let queue = self.queue;
        let mut st = lock(&queue.state);
        let items = ShardQueue::take_locked(&mut st, self.max_events);
        if !items.is_empty() {
            let wakers = st.take_producer_wakers();
            drop(st);
            for w in wakers {
                w.wake();
            }
            return Poll::Ready(Some(items));
        }
        if st.closed {
            return Poll::Ready(None);
        }
        st.consumer = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn q(cap: usize, policy: OverflowPolicy) -> Arc<ShardQueue<u32>> {
        Arc::new(ShardQueue::new(cap, usize::MAX, policy))
    }

    #[tokio::test]
    async fn fifo_and_accounting() {
        let q = q(10, OverflowPolicy::Block);
        q.push(1, 3, 30).await.expect("room");
        q.push(2, 3, 30).await.expect("room");
        let s = q.snapshot();
        assert_eq!((s.depth_events, s.depth_bytes, s.depth_items), (6, 60, 2));
        let got = q.pop(100).await.expect("items");
        assert_eq!(
            got.iter().map(|i| i.payload).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(q.snapshot().depth_events, 0);
        assert_eq!(q.snapshot().dequeued, 6);
    }

    #[tokio::test]
    async fn pop_respects_max_events_but_takes_one_big_item() {
        let q = q(100, OverflowPolicy::Block);
        q.push(1, 50, 0).await.expect("room");
        q.push(2, 5, 0).await.expect("room");
        let got = q.pop(10).await.expect("items");
        assert_eq!(got.len(), 1, "one oversize item alone");
        assert_eq!(got[0].payload, 1);
        let got = q.pop(10).await.expect("items");
        assert_eq!(got[0].payload, 2);
    }

    #[tokio::test]
    async fn reject_refuses_at_once_and_counts() {
        let q = q(4, OverflowPolicy::Reject);
        q.push(1, 4, 0).await.expect("room");
        match q.push(2, 1, 0).await {
            Err(PushError::Full(2)) => {}
            other => panic!("expected Full, got {other:?}"),
        }
        assert_eq!(q.snapshot().rejected, 1);
        assert_eq!(q.snapshot().depth_events, 4);
    }

    /// A sub-batch larger than the capacity fits only an empty queue: its
    /// refusals are counted apart, so the operator can be told why a queue
    /// that looks nearly empty refuses (issue 18: capacity 64, frames of
    /// 1,000 events).
    #[tokio::test]
    async fn oversize_sub_batches_are_counted_apart() {
        let q = q(64, OverflowPolicy::Reject);
        q.push(1, 250, 0)
            .await
            .expect("an empty queue takes anything");
        assert!(matches!(q.push(2, 250, 0).await, Err(PushError::Full(2))));
        assert!(matches!(q.push(3, 10, 0).await, Err(PushError::Full(3))));
        let s = q.snapshot();
        assert_eq!(s.rejected, 260);
        assert_eq!(s.rejected_oversize, 250);
        assert_eq!(s.largest_refused, 250);
    }

    #[tokio::test]
    async fn drop_newest_drops_the_new_item() {
        let q = q(4, OverflowPolicy::DropNewest);
        q.push(1, 4, 0).await.expect("room");
        assert!(matches!(q.push(2, 2, 0).await, Err(PushError::Full(2))));
        let got = q.pop(10).await.expect("items");
        assert_eq!(got[0].payload, 1);
        assert_eq!(q.snapshot().rejected, 2);
        assert_eq!(q.snapshot().rejected_oversize, 0);
    }

    #[tokio::test]
    async fn drop_oldest_makes_room_and_returns_the_dropped() {
        let q = q(4, OverflowPolicy::DropOldest);
        q.push(1, 2, 0).await.expect("room");
        q.push(2, 2, 0).await.expect("room");
        let admitted = q.push(3, 2, 0).await.expect("admitted");
        assert_eq!(
            admitted
                .dropped
                .iter()
                .map(|i| i.payload)
                .collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(q.snapshot().dropped, 2);
        let got = q.pop(10).await.expect("items");
        assert_eq!(
            got.iter().map(|i| i.payload).collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    #[tokio::test]
    async fn block_waits_for_room_then_admits() {
        let q = q(2, OverflowPolicy::Block);
        q.push(1, 2, 0).await.expect("room");
        let q2 = Arc::clone(&q);
        let producer = tokio::spawn(async move { q2.push(2, 2, 0).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!producer.is_finished(), "must wait while full");
        assert_eq!(q.snapshot().waiting_producers, 1);
        let got = q.pop(1).await.expect("item");
        assert_eq!(got[0].payload, 1);
        producer.await.expect("join").expect("admitted after pop");
        assert_eq!(q.snapshot().depth_events, 2);
    }

    #[tokio::test]
    async fn oversize_item_is_admitted_into_an_empty_queue() {
        let q = q(2, OverflowPolicy::Reject);
        q.push(1, 10, 0).await.expect("admitted when empty");
        assert!(matches!(q.push(2, 1, 0).await, Err(PushError::Full(2))));
    }

    #[tokio::test]
    async fn bytes_bound_admission_too() {
        let q: ShardQueue<u32> = ShardQueue::new(100, 100, OverflowPolicy::Reject);
        q.push(1, 1, 80).await.expect("room");
        assert!(matches!(q.push(2, 1, 30).await, Err(PushError::Full(2))));
        q.set_capacity_bytes(200);
        q.push(3, 1, 30).await.expect("room after resize");
    }

    #[tokio::test]
    async fn resize_up_wakes_a_waiting_producer() {
        let q = q(2, OverflowPolicy::Block);
        q.push(1, 2, 0).await.expect("room");
        let q2 = Arc::clone(&q);
        let producer = tokio::spawn(async move { q2.push(2, 2, 0).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!producer.is_finished());
        q.set_capacity(4);
        producer.await.expect("join").expect("admitted after grow");
        assert_eq!(q.snapshot().depth_events, 4);
    }

    #[tokio::test]
    async fn shrink_below_depth_drops_nothing_and_holds_producers() {
        let q = q(10, OverflowPolicy::Reject);
        q.push(1, 8, 0).await.expect("room");
        q.set_capacity(4);
        assert_eq!(q.snapshot().depth_events, 8);
        assert!(q.push(2, 1, 0).await.is_err());
        let _ = q.pop(100).await;
        q.push(3, 4, 0).await.expect("room at the new capacity");
        assert!(q.push(4, 1, 0).await.is_err());
    }

    #[tokio::test]
    async fn close_fails_waiters_and_drains() {
        let q = q(2, OverflowPolicy::Block);
        q.push(1, 2, 0).await.expect("room");
        let q2 = Arc::clone(&q);
        let producer = tokio::spawn(async move { q2.push(2, 1, 0).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.close();
        assert!(matches!(
            producer.await.expect("join"),
            Err(PushError::Closed(2))
        ));
        assert!(matches!(q.push(3, 1, 0).await, Err(PushError::Closed(3))));
        let got = q.pop(10).await.expect("drain what was admitted");
        assert_eq!(got[0].payload, 1);
        assert!(q.pop(10).await.is_none());
    }

    #[tokio::test]
    async fn dropped_waiting_push_leaves_no_waker_behind() {
        let q = q(1, OverflowPolicy::Block);
        q.push(1, 1, 0).await.expect("room");
        let r = tokio::time::timeout(Duration::from_millis(10), q.push(2, 1, 0)).await;
        assert!(r.is_err(), "timed out while full");
        assert_eq!(q.snapshot().waiting_producers, 0);
        assert_eq!(
            q.snapshot().enqueued,
            1,
            "the withdrawn item was not admitted"
        );
    }

    #[tokio::test]
    async fn consumer_wakes_on_push() {
        let q = q(10, OverflowPolicy::Block);
        let q2 = Arc::clone(&q);
        let consumer = tokio::spawn(async move { q2.pop(10).await.map(|v| v.len()) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.push(7, 1, 0).await.expect("room");
        assert_eq!(consumer.await.expect("join"), Some(1));
    }
}
