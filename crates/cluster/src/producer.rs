//! [`Producer`]: publishes events to the stream, one message per event on
//! `statecraft.events.<p>`, and reports one result per event.
//!
//! - Every message carries a `Nats-Msg-Id`: the event's own id scoped to its
//!   key, or a generated one, so the stream drops a repeat inside its
//!   duplicate window (a retried publish, or a producer re-sending an event
//!   with the same id).
//! - `ack=none`: published without waiting; `accepted`.
//! - `ack=durable`: the stream acknowledged it (stored, replicated as
//!   configured); `accepted`, or `duplicate` when the stream already had it.
//! - `ack=applied`: additionally waits until the partition's owner applied
//!   it and committed it to the changelog; the owner's own result
//!   (`applied` with the version, `rejected`, `conflict`, …). A message
//!   header names a reply subject unique to the call; the owner answers
//!   there after its commit. Past `applied_timeout`, `accepted` (the event
//!   is in the stream and will be applied).
//!
//! Invariant: every input item gets exactly one result, in input order; a
//! publish that NATS refused is `rejected` (`store_unavailable`), never
//! `accepted`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use statecraft_engine::{AckMode, Event, EventResult, Limits, RejectCode, Rejection};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::ClusterError;
use crate::names;
use crate::node::Counters;

/// Most publishes awaiting their stream ack at once, per call.
const MAX_IN_FLIGHT: usize = 2_048;

/// Options of a standalone [`Producer`].
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Per-event limits checked before publishing.
    pub limits: Limits,
    /// How long `ack=applied` waits for the owner.
    pub applied_timeout: Duration,
    /// Most events of one call grouped into one message per partition (a
    /// record batch; 1 = one message per event).
    pub max_events_per_message: usize,
    /// Most bytes of events in one record batch.
    pub max_message_bytes: usize,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            limits: Limits::DEFAULT,
            applied_timeout: Duration::from_secs(10),
            max_events_per_message: 1,
            max_message_bytes: 256 * 1024,
        }
    }
}

/// Answers of owners for one call: (stream sequence, result) pairs.
type Answers = Vec<(u64, EventResult)>;

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    partitions: u32,
    options: ProducerOptions,
    /// Prefix of this producer's reply subjects (`<inbox>.<call>`).
    inbox: String,
    /// Generated message ids: `g<instance>.<n>`.
    instance: String,
    next_id: AtomicU64,
    next_call: AtomicU64,
    /// `ack=applied` calls waiting for answers, by call id. Both ends: a
    /// call inserts its sender before publishing and removes it when done;
    /// the dispatcher task looks senders up to deliver answers. Capacity of
    /// each channel = the call's event count (each answer message carries
    /// at least one of its events), so the dispatcher never waits on it.
    waiters: Mutex<HashMap<u64, mpsc::Sender<Answers>>>,
    /// The dispatcher task (reads the reply subscription); aborted on drop.
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.dispatcher).take() {
            t.abort();
        }
    }
}

/// Publishes events to the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("partitions", &self.inner.partitions)
            .field("inbox", &self.inner.inbox)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Producer {
    /// Connects to NATS at `url` and reads the partition count from the
    /// stream (which a node must have created).
    pub async fn connect(url: &str, options: ProducerOptions) -> Result<Producer, ClusterError> {
        let client = crate::infra::connect(url, "statecraft-producer").await?;
        let js = crate::infra::context(client.clone());
        let (_, partitions) = crate::infra::events_stream(&js, None).await?;
        Producer::start(
            client,
            js,
            partitions,
            options,
            Arc::new(Counters::default()),
        )
        .await
    }

    pub(crate) async fn start(
        client: async_nats::Client,
        js: jetstream::Context,
        partitions: u32,
        options: ProducerOptions,
        counters: Arc<Counters>,
    ) -> Result<Producer, ClusterError> {
        let inbox = client.new_inbox();
        let mut sub = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|e| ClusterError::nats("subscribing to the reply inbox", e))?;
        let inner = Arc::new(Inner {
            client,
            js,
            partitions,
            options,
            inbox,
            instance: crate::node::new_instance(),
            next_id: AtomicU64::new(0),
            next_call: AtomicU64::new(0),
            waiters: Mutex::new(HashMap::new()),
            dispatcher: Mutex::new(None),
            counters,
        });
        // The dispatcher holds a weak reference: dropping the last Producer
        // ends it (Drop aborts it too).
        let weak = Arc::downgrade(&inner);
        let task = tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(inner) = weak.upgrade() else { break };
                let Some(call) = msg
                    .subject
                    .rsplit('.')
                    .next()
                    .and_then(|c| c.parse::<u64>().ok())
                else {
                    continue;
                };
                let Ok(answers) = serde_json::from_slice::<Answers>(&msg.payload) else {
                    continue;
                };
                let tx = lock(&inner.waiters).get(&call).cloned();
                drop(inner);
                if let Some(tx) = tx {
                    let _ = tx.send(answers).await;
                }
            }
        });
        *lock(&inner.dispatcher) = Some(task);
        Ok(Producer { inner })
    }

    /// A generated message id, unique to this producer: `g<instance>.<n>`.
    fn generated_id(&self) -> String {
        format!(
            "g{}.{}",
            self.inner.instance,
            self.inner.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The stream's partition count.
    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// The partition of `key`.
    pub fn partition_of(&self, key: &str) -> u32 {
        names::partition_of(key, self.inner.partitions)
    }

    /// Publishes events; one result per event, in order.
    pub async fn publish_events(
        &self,
        events: Vec<Event>,
        ack: AckMode,
    ) -> Result<Vec<EventResult>, ClusterError> {
        self.publish(events.into_iter().map(Ok).collect(), ack)
            .await
    }

    /// Publishes decoded input (items that failed to decode get their
    /// rejection as their result); one result per item, in order.
    pub async fn publish(
        &self,
        items: Vec<Result<Event, Rejection>>,
        ack: AckMode,
    ) -> Result<Vec<EventResult>, ClusterError> {
        let inner = &*self.inner;
        let n = items.len();
        let mut results: Vec<Option<EventResult>> = vec![None; n];
        let call = inner.next_call.fetch_add(1, Ordering::Relaxed);
        let reply = format!("{}.{call}", inner.inbox);
        let mut answers_rx = None;
        if ack == AckMode::Applied {
            let (tx, rx) = mpsc::channel(n.max(1));
            lock(&inner.waiters).insert(call, tx);
            answers_rx = Some(rx);
        }
        // Unregisters the waiter however this call ends.
        struct Unregister<'a>(&'a Inner, u64, bool);
        impl Drop for Unregister<'_> {
            fn drop(&mut self) {
                if self.2 {
                    lock(&self.0.waiters).remove(&self.1);
                }
            }
        }
        let _unregister = Unregister(inner, call, answers_rx.is_some());

        let mut in_flight = FuturesUnordered::new();
        // Position (stream sequence, index) → input index, for `applied`.
        let mut waiting: HashMap<u64, usize> = HashMap::new();
        // Validated events by partition, in input order: (input index,
        // event, its JSON).
        let mut by_partition: std::collections::BTreeMap<u32, Vec<(usize, Event, Bytes)>> =
            Default::default();
        for (i, item) in items.into_iter().enumerate() {
            let event = match item.and_then(|e| inner.options.limits.validate(&e).map(|()| e)) {
                Ok(e) => e,
                Err(r) => {
                    results[i] = Some(r.into());
                    continue;
                }
            };
            let payload = match serde_json::to_vec(&event) {
                Ok(p) => Bytes::from(p),
                Err(e) => {
                    results[i] = Some(EventResult::rejected(
                        RejectCode::InvalidEvent,
                        format!("cannot encode the event: {e}"),
                    ));
                    continue;
                }
            };
            let p = names::partition_of(&event.key, inner.partitions);
            by_partition.entry(p).or_default().push((i, event, payload));
        }
        let max_events = inner
            .options
            .max_events_per_message
            .clamp(1, names::MAX_EVENTS_PER_MESSAGE);
        let max_bytes = inner.options.max_message_bytes.max(1);
        for (p, events) in by_partition {
            let subject = names::subject(p);
            // Cut the partition's events into messages.
            let mut messages: Vec<Vec<(usize, Event, Bytes)>> = Vec::new();
            let mut bytes = 0usize;
            for e in events {
                let fits = messages
                    .last()
                    .is_some_and(|m| m.len() < max_events && bytes + e.2.len() < max_bytes);
                if !fits {
                    messages.push(Vec::new());
                    bytes = 0;
                }
                bytes += e.2.len() + 1;
                if let Some(m) = messages.last_mut() {
                    m.push(e);
                }
            }
            for message in messages {
                let mut headers = HeaderMap::new();
                let indices: Vec<usize> = message.iter().map(|(i, _, _)| *i).collect();
                let payload = if let [(_, event, payload)] = &message[..] {
                    // One event: its own message, deduplicated by the
                    // stream on its id.
                    let msg_id = match &event.id {
                        Some(id) => names::msg_id(&event.key, id),
                        None => self.generated_id(),
                    };
                    headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id.as_str());
                    payload.clone()
                } else {
                    // A record batch: one event per line.
                    headers.insert(
                        async_nats::header::NATS_MESSAGE_ID,
                        self.generated_id().as_str(),
                    );
                    headers.insert(names::EVENTS_HEADER, message.len().to_string().as_str());
                    let mut body = Vec::with_capacity(
                        message.iter().map(|(_, _, b)| b.len() + 1).sum::<usize>(),
                    );
                    for (_, _, b) in &message {
                        body.extend_from_slice(b);
                        body.push(b'\n');
                    }
                    Bytes::from(body)
                };
                if ack == AckMode::Applied {
                    headers.insert(names::REPLY_HEADER, reply.as_str());
                }
                if ack == AckMode::None {
                    let r = match inner
                        .client
                        .publish_with_headers(subject.clone(), headers, payload)
                        .await
                    {
                        Ok(()) => EventResult::Accepted,
                        Err(e) => unavailable(&e),
                    };
                    for i in indices {
                        results[i] = Some(r.clone());
                    }
                    continue;
                }
                while in_flight.len() >= MAX_IN_FLIGHT {
                    if let Some((indices, r)) = in_flight.next().await {
                        settle(inner, ack, &mut results, &mut waiting, indices, r);
                    }
                }
                let js = inner.js.clone();
                let subject = subject.clone();
                in_flight.push(async move {
                    let r = publish_once(&js, &subject, &headers, &payload).await;
                    // One retry with the same message id: if the first landed,
                    // the stream answers `duplicate` with the same sequence.
                    let r = match r {
                        Err(_) => publish_once(&js, &subject, &headers, &payload).await,
                        ok => ok,
                    };
                    (indices, r)
                });
            }
        }
        while let Some((indices, r)) = in_flight.next().await {
            settle(inner, ack, &mut results, &mut waiting, indices, r);
        }
        if let Some(mut rx) = answers_rx
            && !waiting.is_empty()
        {
            let deadline = Instant::now() + inner.options.applied_timeout;
            while !waiting.is_empty() {
                let Ok(Some(answers)) = tokio::time::timeout_at(deadline.into(), rx.recv()).await
                else {
                    break;
                };
                for (seq, r) in answers {
                    if let Some(i) = waiting.remove(&seq) {
                        results[i] = Some(r);
                    }
                }
            }
        }
        // Past the timeout: in the stream, not yet known to be applied.
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(EventResult::Accepted))
            .collect())
    }
}

async fn publish_once(
    js: &jetstream::Context,
    subject: &str,
    headers: &HeaderMap,
    payload: &Bytes,
) -> Result<jetstream::publish::PublishAck, String> {
    let ack = js
        .publish_with_headers(subject.to_owned(), headers.clone(), payload.clone())
        .await
        .map_err(|e| e.to_string())?;
    ack.await.map_err(|e| e.to_string())
}

fn unavailable(e: &dyn std::fmt::Display) -> EventResult {
    EventResult::rejected(
        RejectCode::StoreUnavailable,
        format!("publishing to NATS failed: {e}"),
    )
}

fn settle(
    inner: &Inner,
    ack: AckMode,
    results: &mut [Option<EventResult>],
    waiting: &mut HashMap<u64, usize>,
    indices: Vec<usize>,
    r: Result<jetstream::publish::PublishAck, String>,
) {
    let c = &inner.counters;
    let n = indices.len() as u64;
    match r {
        Ok(a) if a.duplicate => {
            Counters::add(&c.publish_duplicates, n);
            for i in indices {
                results[i] = Some(EventResult::Duplicate);
            }
        }
        Ok(a) => {
            Counters::add(&c.published, n);
            for (k, i) in indices.into_iter().enumerate() {
                if ack == AckMode::Applied {
                    // Filled by the owner's answer (or `accepted` at the
                    // timeout).
                    waiting.insert(names::position(a.sequence, k), i);
                } else {
                    results[i] = Some(EventResult::Accepted);
                }
            }
        }
        Err(e) => {
            Counters::add(&c.publish_failures, n);
            let r = unavailable(&e);
            for i in indices {
                results[i] = Some(r.clone());
            }
        }
    }
}
