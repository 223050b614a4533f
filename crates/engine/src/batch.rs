//! `BatchCollector`: turns a shard's queue into batches for its worker.
//!
//! It owns one rule: a batch is released as soon as it holds `max_batch`
//! events, or when `max_wait` has passed since its *first* item was taken —
//! a fixed deadline computed once per batch, never a per-item timeout. A
//! per-item timeout would let a steady trickle (one event every
//! `max_wait - ε`) hold a batch open forever; the fixed deadline bounds the
//! extra latency any event pays for batching by `max_wait`.
//!
//! Invariant: the collector never holds an item past the deadline of the batch
//! it belongs to, and never returns an empty batch except at the end (`None`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::queue::{Queued, ShardQueue};

/// Collects batches from a [`ShardQueue`] by size and fixed deadline.
///
/// Cancel safety: [`next_batch`](Self::next_batch) keeps the items of the batch
/// it is building, and that batch's deadline, in the collector itself, so a
/// worker may drop the future (e.g. in a `select!` that serves reads) and call
/// it again without losing items or moving the deadline.
#[derive(Debug)]
pub struct BatchCollector<T> {
    queue: Arc<ShardQueue<T>>,
    max_batch: usize,
    max_wait: Duration,
    /// Items of the batch being built, oldest first.
    pending: Vec<Queued<T>>,
    /// Events in `pending`.
    pending_events: usize,
    /// The fixed deadline of the batch being built, set when its first item
    /// was taken.
    deadline: Option<Instant>,
    /// Also bound a batch by the queue's current capacity (adaptive queues:
    /// the batch in flight is work admitted ahead of the queue, so a shrunk
    /// capacity must bound it too, or waits behind it escape the target).
    bound_by_capacity: bool,
}

/// A batch: the items taken and how many events they carry.
#[derive(Debug)]
pub struct Batch<T> {
    /// The items, oldest first.
    pub items: Vec<Queued<T>>,
    /// Total events in `items`.
    pub events: usize,
}

impl<T> BatchCollector<T> {
    /// A collector releasing batches of at most `max_batch` events (at least
    /// 1), waiting at most `max_wait` after the first item.
    pub fn new(queue: Arc<ShardQueue<T>>, max_batch: usize, max_wait: Duration) -> Self {
        BatchCollector {
            queue,
            max_batch: max_batch.max(1),
            max_wait,
            pending: Vec::new(),
            pending_events: 0,
            deadline: None,
            bound_by_capacity: false,
        }
    }

    /// Bounds each batch by the queue's capacity at the time it is taken, as
    /// well as by `max_batch`.
    pub fn bound_by_capacity(mut self, on: bool) -> Self {
        self.bound_by_capacity = on;
        self
    }

    fn limit(&self) -> usize {
        if self.bound_by_capacity {
            self.max_batch.min(self.queue.capacity()).max(1)
        } else {
            self.max_batch
        }
    }

    /// The queue this collector reads.
    pub fn queue(&self) -> &Arc<ShardQueue<T>> {
        &self.queue
    }

    /// Waits for the next batch; `None` once the queue is closed and drained.
    ///
    /// A single queued item may carry more than `max_batch` events; it is
    /// released alone rather than split (sub-batches are the unit of reply).
    pub async fn next_batch(&mut self) -> Option<Batch<T>> {
        let max_batch = self.limit();
        if self.pending.is_empty() {
            let first = self.queue.pop(max_batch).await?;
            self.pending_events = first.iter().map(|i| i.events).sum();
            self.pending = first;
            self.deadline = Some(Instant::now() + self.max_wait);
        }
        while self.pending_events < max_batch && !self.max_wait.is_zero() {
            // Take what is already there without waiting: under load this is
            // the common case and costs no timer.
            let more = self.queue.try_pop(max_batch - self.pending_events);
            if !more.is_empty() {
                self.take(more);
                continue;
            }
            let deadline = self.deadline.unwrap_or_else(Instant::now);
            tokio::select! {
                more = self.queue.pop(max_batch - self.pending_events) => match more {
                    Some(more) => self.take(more),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.deadline = None;
        let events = std::mem::take(&mut self.pending_events);
        Some(Batch {
            items: std::mem::take(&mut self.pending),
            events,
        })
    }

    fn take(&mut self, more: Vec<Queued<T>>) {
        self.pending_events += more.iter().map(|i| i.events).sum::<usize>();
        self.pending.extend(more);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::queue::OverflowPolicy;

    fn collector(max_batch: usize, max_wait_ms: u64) -> BatchCollector<u32> {
        let q = Arc::new(ShardQueue::new(10_000, usize::MAX, OverflowPolicy::Block));
        BatchCollector::new(q, max_batch, Duration::from_millis(max_wait_ms))
    }

    #[tokio::test(start_paused = true)]
    async fn lone_event_is_released_at_max_wait() {
        let mut c = collector(100, 50);
        c.queue().push(1, 1, 0).await.expect("room");
        let start = Instant::now();
        let b = c.next_batch().await.expect("batch");
        assert_eq!(b.events, 1);
        assert_eq!(start.elapsed(), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn full_batch_is_released_immediately() {
        let mut c = collector(10, 50);
        for i in 0..10 {
            c.queue().push(i, 1, 0).await.expect("room");
        }
        let start = Instant::now();
        let b = c.next_batch().await.expect("batch");
        assert_eq!(b.events, 10);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_never_waits_past_the_deadline() {
        let mut c = collector(1_000, 50);
        let q = Arc::clone(c.queue());
        // One event every 10 ms, forever (more than the batch could hold).
        let producer = tokio::spawn(async move {
            for i in 0..100u32 {
                q.push(i, 1, 0).await.expect("room");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let start = Instant::now();
        let b = c.next_batch().await.expect("batch");
        let waited = start.elapsed();
        assert!(
            waited <= Duration::from_millis(50),
            "released at the fixed deadline, waited {waited:?}"
        );
        // Events at t = 0, 10, 20, 30, 40 and (the deadline racing the push at
        // 50) possibly 50: a per-item timeout would have kept collecting.
        assert!((5..=6).contains(&b.events), "got {} events", b.events);
        producer.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_counts_from_the_first_item() {
        let mut c = collector(100, 50);
        let q = Arc::clone(c.queue());
        let waiter = tokio::spawn(async move {
            let b = c.next_batch().await.expect("batch");
            (Instant::now(), b.events)
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        let first_at = Instant::now();
        q.push(1, 1, 0).await.expect("room");
        let (released, events) = waiter.await.expect("join");
        assert_eq!(events, 1);
        assert_eq!(released - first_at, Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_wait_takes_only_what_is_queued() {
        let mut c = collector(100, 0);
        c.queue().push(1, 3, 0).await.expect("room");
        let b = c.next_batch().await.expect("batch");
        assert_eq!(b.events, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn closed_and_drained_ends_the_stream() {
        let mut c = collector(100, 50);
        c.queue().push(1, 1, 0).await.expect("room");
        c.queue().close();
        let b = c.next_batch().await.expect("drains the admitted item");
        assert_eq!(b.events, 1);
        assert!(c.next_batch().await.is_none());
    }
}
