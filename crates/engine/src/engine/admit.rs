//! Admission: the one way events enter the engine ([`Engine::admit`] with a
//! [`Submission`]: ack mode, wait for room, source positions). It validates
//! each event, routes it to its shard, re-indexes source positions, cuts
//! each shard's part into pieces that fit the queue's capacity and pushes
//! them (with the submission's wait under `block`), answering drops and
//! refusals as it goes. [`Ticket`] collects the results.
//!
//! Invariants: every item gets exactly one result, in input order; a
//! submission's pieces reach each shard's queue in input order before the
//! call returns (per-key order follows call order); a result nobody
//! answered is `worker_failed`, never `overloaded` (only the queue's
//! policies answer `overloaded`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;

use super::Engine;
use crate::error::EngineError;
use crate::event::{AckMode, Event, EventResult, RejectCode};
use crate::limits::Rejection;
use crate::queue::{OverflowPolicy, PushError};
use crate::router::shard_of;
use crate::shard::{Source, SubBatch};

/// How one submission is admitted: the ack mode its results wait for, how
/// long it waits for room under `block`, and (for a replayable source) the
/// position of each item.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    ack: AckMode,
    wait: BlockWait,
    source: Option<(&'a str, Vec<u64>)>,
}

impl<'a> Submission<'a> {
    /// A submission acked as `ack`, with the engine's wait for room.
    pub fn new(ack: AckMode) -> Self {
        Submission {
            ack,
            wait: BlockWait::EngineDefault,
            source: None,
        }
    }

    /// This submission's own wait for room under `block`.
    pub fn wait(mut self, wait: BlockWait) -> Self {
        self.wait = wait;
        self
    }

    /// Events from a replayable source: `positions[i]` is item i's position
    /// in `source` (0 = none). An event at or below the position its shard
    /// has stored is answered `duplicate` and not applied (exactly-once
    /// effects).
    pub fn source(mut self, source: &'a str, positions: Vec<u64>) -> Self {
        self.source = Some((source, positions));
        self
    }
}

/// How long one admission call waits for room under the `block` policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BlockWait {
    /// The engine's `block_timeout`.
    #[default]
    EngineDefault,
    /// As long as it takes (the producer is held, e.g. a TCP reader).
    Forever,
    /// At most this long, then `overloaded`.
    UpTo(Duration),
}

/// Results being produced for an admitted submission: await
/// [`Ticket::wait`] for them. Splitting admission from the wait lets a
/// connection pipeline: admit frame N+1 (keeping per-key order) while frame
/// N is still being committed.
#[derive(Debug)]
pub struct Ticket {
    results: Vec<Option<EventResult>>,
    pending: Vec<(Vec<u32>, oneshot::Receiver<Vec<EventResult>>)>,
}

impl Ticket {
    /// Waits for every result, in input order.
    pub async fn wait(mut self) -> Vec<EventResult> {
        for (indices, rx) in std::mem::take(&mut self.pending) {
            match rx.await {
                Ok(results) => {
                    for (i, r) in indices.into_iter().zip(results) {
                        self.results[i as usize] = Some(r);
                    }
                }
                Err(_) => {
                    // Nobody answered: `drop_oldest` answers what it drops
                    // (admission sends `overloaded` for it), so a reply
                    // dropped unanswered means the shard worker died — a
                    // panic, not back-pressure.
                    for i in indices {
                        self.results[i as usize] = Some(EventResult::rejected(
                            RejectCode::WorkerFailed,
                            "the shard worker failed before answering (see the server log)",
                        ));
                    }
                }
            }
        }
        self.results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    EventResult::rejected(RejectCode::ShuttingDown, "no result was produced")
                })
            })
            .collect()
    }
}

impl Engine {
    /// Admits `items` — decoded events, or the rejection of an item that
    /// failed to decode, answered in place — as one submission (waiting for
    /// room under `block` as `submission.wait` says) and returns a
    /// [`Ticket`] for their results, one per item, in input order. The one
    /// admission entry point; the `submit*`/`enqueue*` methods are
    /// shorthands for it.
    pub async fn admit(
        &self,
        items: Vec<Result<Event, Rejection>>,
        submission: Submission<'_>,
    ) -> Result<Ticket, EngineError> {
        let (events, positions, results) = self.split_decoded(items);
        self.admit_events(events, Some(positions), results, submission)
            .await
    }

    /// Submits events with the default ack mode and waits for their results,
    /// one per event, in input order.
    pub async fn submit(&self, events: Vec<Event>) -> Result<Vec<EventResult>, EngineError> {
        self.submit_with(events, self.inner.config.ack).await
    }

    /// Submits events with the given ack mode and waits for their results.
    pub async fn submit_with(
        &self,
        events: Vec<Event>,
        ack: AckMode,
    ) -> Result<Vec<EventResult>, EngineError> {
        Ok(self.enqueue(events, ack).await?.wait().await)
    }

    /// Submits already-decoded input where some items failed to decode: each
    /// `Err` gets its rejection as its result, in place.
    pub async fn submit_decoded(
        &self,
        items: Vec<Result<Event, Rejection>>,
        ack: AckMode,
    ) -> Result<Vec<EventResult>, EngineError> {
        Ok(self.admit(items, Submission::new(ack)).await?.wait().await)
    }

    /// Admits events (waiting for room under `block`) and returns a
    /// [`Ticket`] for their results.
    pub async fn enqueue(&self, events: Vec<Event>, ack: AckMode) -> Result<Ticket, EngineError> {
        let results = vec![None; events.len()];
        self.admit_events(events, None, results, Submission::new(ack))
            .await
    }

    /// [`admit`](Self::admit) with the engine's wait for room.
    pub async fn enqueue_decoded(
        &self,
        items: Vec<Result<Event, Rejection>>,
        ack: AckMode,
    ) -> Result<Ticket, EngineError> {
        self.admit(items, Submission::new(ack)).await
    }

    /// [`admit`](Self::admit) with this call's own wait for room under
    /// `block`: a TCP connection waits as long as it takes (it stops
    /// reading, and TCP flow control pushes back), an HTTP request gives up
    /// after a timeout.
    pub async fn enqueue_decoded_waiting(
        &self,
        items: Vec<Result<Event, Rejection>>,
        ack: AckMode,
        wait: BlockWait,
    ) -> Result<Ticket, EngineError> {
        self.admit(items, Submission::new(ack).wait(wait)).await
    }

    /// [`admit`](Self::admit) for events from a replayable source (see
    /// [`Submission::source`]).
    pub async fn enqueue_sourced(
        &self,
        items: Vec<Result<Event, Rejection>>,
        ack: AckMode,
        source: &str,
        positions: Vec<u64>,
    ) -> Result<Ticket, EngineError> {
        self.admit(items, Submission::new(ack).source(source, positions))
            .await
    }

    /// Splits decoded input into the events to admit, their input positions,
    /// and result slots pre-filled for the items that failed to decode.
    #[allow(clippy::type_complexity)]
    fn split_decoded(
        &self,
        items: Vec<Result<Event, Rejection>>,
    ) -> (Vec<Event>, Vec<u32>, Vec<Option<EventResult>>) {
        let mut results: Vec<Option<EventResult>> = Vec::with_capacity(items.len());
        let mut events = Vec::with_capacity(items.len());
        let mut positions = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Ok(e) => {
                    events.push(e);
                    positions.push(i as u32);
                    results.push(None);
                }
                Err(rejection) => {
                    let r: EventResult = rejection.into();
                    self.inner.admission.count(&r);
                    results.push(Some(r));
                }
            }
        }
        (events, positions, results)
    }

    /// Admission proper. `events[j]` is the caller's input item
    /// `input_pos[j]` (or `j`); `results` has one slot per input item, filled
    /// for items refused before this call. The events are validated and
    /// routed in place and shared read-only with the shards: nothing is
    /// copied per event.
    async fn admit_events(
        &self,
        events: Vec<Event>,
        input_pos: Option<Vec<u32>>,
        mut results: Vec<Option<EventResult>>,
        submission: Submission<'_>,
    ) -> Result<Ticket, EngineError> {
        let Submission { ack, wait, source } = submission;
        let block_timeout = match wait {
            BlockWait::EngineDefault => self.inner.config.block_timeout,
            BlockWait::Forever => None,
            BlockWait::UpTo(d) => Some(d),
        };
        let inner = &*self.inner;
        if inner.closing.load(Ordering::Acquire) {
            return Err(EngineError::ShuttingDown);
        }
        if let Some(cause) = self.poisoned() {
            return Err(EngineError::Poisoned(cause));
        }
        let n_shards = inner.shards.len();
        // Per shard: indices into the caller's input (for results), indices
        // into `events` (for the shard), bytes.
        let mut per_shard: Vec<(Vec<u32>, Vec<u32>, usize)> =
            (0..n_shards).map(|_| (Vec::new(), Vec::new(), 0)).collect();
        let limits = &inner.config.limits;
        for (j, event) in events.iter().enumerate() {
            let pos = input_pos.as_ref().map_or(j as u32, |p| p[j]);
            match limits.validate(event) {
                Ok(()) => {
                    let s = shard_of(&event.key, n_shards);
                    let slot = &mut per_shard[s];
                    slot.2 += event.approx_bytes();
                    slot.0.push(pos);
                    slot.1.push(j as u32);
                }
                Err(rejection) => {
                    let r: EventResult = rejection.into();
                    inner.admission.count(&r);
                    results[pos as usize] = Some(r);
                }
            }
        }
        let submission = events;
        let submission: Arc<Vec<Event>> = Arc::new(submission);
        let source: Option<Arc<Source>> = source.map(|(name, positions)| {
            // Re-index positions from the caller's input to the submission.
            let mut seqs = vec![0u64; submission.len()];
            for (input_idx, sub_idx) in per_shard
                .iter()
                .flat_map(|(inputs, subs, _)| inputs.iter().zip(subs.iter()))
            {
                if let Some(&p) = positions.get(*input_idx as usize) {
                    seqs[*sub_idx as usize] = p;
                }
            }
            Arc::new(Source {
                name: Arc::from(name),
                seqs,
            })
        });
        let mut pending = Vec::with_capacity(n_shards);
        for (s, (all_indices, all_shard_indices, all_bytes)) in per_shard.into_iter().enumerate() {
            if all_indices.is_empty() {
                continue;
            }
            let queue = &inner.shards[s].queue;
            // Capacity is counted in events: a sub-batch larger than the
            // queue's capacity now goes in pieces that each fit, so a small
            // (e.g. adaptively shrunk) capacity bounds the queue's depth.
            let cap = queue.snapshot().capacity_events.max(1);
            let total = all_indices.len();
            let mut offset = 0;
            while offset < total {
                let end = (offset + cap).min(total);
                let indices = all_indices[offset..end].to_vec();
                let shard_indices = all_shard_indices[offset..end].to_vec();
                let n = indices.len();
                let bytes = if n == total {
                    all_bytes
                } else {
                    all_bytes * n / total
                };
                offset = end;
                let (reply, rx) = if ack == AckMode::None {
                    (None, None)
                } else {
                    let (tx, rx) = oneshot::channel();
                    (Some(tx), Some(rx))
                };
                let sub = SubBatch {
                    submission: Arc::clone(&submission),
                    indices: shard_indices,
                    source: source.clone(),
                    ack,
                    reply,
                };
                let pushed = match block_timeout {
                    Some(t) if queue.policy() == OverflowPolicy::Block => {
                        match tokio::time::timeout(t, queue.push(sub, n, bytes)).await {
                            Ok(r) => Some(r),
                            Err(_) => {
                                queue.count_rejected(n);
                                None
                            }
                        }
                    }
                    _ => Some(queue.push(sub, n, bytes).await),
                };
                match pushed {
                    Some(Ok(admitted)) => {
                        for dropped in admitted.dropped {
                            let d = dropped.payload;
                            inner
                                .admission
                                .count_n(&EventResult::Overloaded, d.indices.len() as u64);
                            if let Some(reply) = d.reply {
                                let _ = reply.send(vec![EventResult::Overloaded; d.indices.len()]);
                            }
                        }
                        match rx {
                            Some(rx) => pending.push((indices, rx)),
                            None => {
                                for i in indices {
                                    results[i as usize] = Some(EventResult::Accepted);
                                }
                            }
                        }
                    }
                    Some(Err(PushError::Closed(_))) => {
                        for i in indices {
                            results[i as usize] = Some(EventResult::rejected(
                                RejectCode::ShuttingDown,
                                "the engine is shutting down",
                            ));
                        }
                    }
                    Some(Err(PushError::Full(_))) | None => {
                        inner.admission.count_n(&EventResult::Overloaded, n as u64);
                        for i in indices {
                            results[i as usize] = Some(EventResult::Overloaded);
                        }
                    }
                }
            }
        }
        Ok(Ticket { results, pending })
    }
}
