//! One owned partition: acquisition (fence, rebuild, consumer) and the
//! consume loop (fetch → apply → changelog → marker → ack).
//!
//! # The consume loop, per batch
//!
//! 1. Take what the pull consumer has ready (up to `max_batch`, without
//!    waiting once the first message is in).
//! 2. Drop redeliveries at or below the highest sequence already committed
//!    (`high`), and events already inside a changelog entry (the catch-up
//!    filter, see [`crate::changelog`]).
//! 3. Idempotency ids are the partition's, not the engine's: an event whose
//!    (key, id) is in the partition's committed ids (read from the
//!    changelog at acquisition, grown by each commit) or was applied earlier
//!    in this batch is answered `duplicate` and not applied; the others go
//!    to the engine *without* their id (the engine's own id memory, which
//!    may hold ids of batches that were never committed, is never asked),
//!    with `enqueue_sourced(.., "nats/<p>@<epoch>", sequences)` and
//!    `AckMode::Durable`: the engine stores, in the same log record as the
//!    state, the highest sequence applied per (source, shard) and answers
//!    `duplicate` for one at or below it — exactly-once effects locally,
//!    even when NATS redelivers. The source name carries the epoch, so
//!    positions stored by an earlier ownership (of this node or another
//!    process on its data dir) are never compared. `overloaded` events are
//!    resubmitted (no later event of this source can have reached their
//!    shard: one batch is in flight per partition). A batch in which one
//!    (key, id) appears twice is applied in segments split before the
//!    repeat, so the second sees whether the first applied.
//! 4. Check the lease is still ours (refuse to commit otherwise).
//! 5. Write the after-image of every touched key — its state *and* its
//!    unexpired ids — to the changelog, then move the commit marker
//!    (revision-checked: the fence).
//! 6. Answer `ack=applied` producers, then acknowledge the batch to NATS
//!    (`AckAll` on its last message).
//!
//! Invariants: nothing is acknowledged to NATS, and the marker never moves,
//! for a batch whose effects are not durable in the local engine and whose
//! entries are not in the changelog. The partition's state as this node
//! serves it — keys, ids, positions — is the changelog's plus this epoch's
//! committed batches: nothing a crashed process applied but did not commit
//! survives an acquisition (keys are reset by `rebuild_local`, ids are
//! never taken from the engine, positions are scoped to the epoch).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::{FutureExt, StreamExt};
use statecraft_engine::limits::decode_event;
use statecraft_engine::{
    AckMode, EngineError, Event, EventResult, RejectCode, Rejection, StateRecord,
};

use crate::changelog::{self, CommitError, Entry, Marker};
use crate::error::ClusterError;
use crate::names;
use crate::node::{Counters, Node, PartitionControl, PartitionExit};

/// State of a partition after acquisition.
struct Owned {
    p: u32,
    epoch: u64,
    source: String,
    /// Highest stream sequence committed (marker) so far.
    high: u64,
    /// Marker revision this node last wrote.
    marker_rev: u64,
    /// Revision of each key's changelog entry as this node last saw it.
    revs: HashMap<String, u64>,
    /// Keys whose entry is ahead of the marker: events ≤ the entry's seq
    /// are already in it. Emptied once `high` passes them all.
    catch_up: HashMap<String, u64>,
    /// Committed idempotency ids of the partition: key → id → expiry (ms
    /// since the epoch). Read from the changelog, grown by each commit.
    ids: HashMap<String, BTreeMap<String, u64>>,
    /// Batches committed in this epoch (expired ids are pruned from `ids`
    /// every [`PRUNE_EVERY`] of them).
    committed: u64,
}

/// How often (in batches) the ids of keys no batch touched lately are
/// pruned of their expired entries.
const PRUNE_EVERY: u64 = 1_024;

/// Most ids a key's changelog entry remembers (the most recent ones): the
/// entry is rewritten whole at every batch that touches the key, so this
/// bounds its size. A key receiving more distinct ids than this inside the
/// dedup window forgets the oldest early (as the engine's own count bound).
pub(crate) const MAX_IDS_PER_KEY: usize = 1_000;

impl Owned {
    /// Is (key, id) a committed id of the partition that has not expired?
    fn knows(&self, key: &str, id: &str, now_ms: u64) -> bool {
        self.ids
            .get(key)
            .and_then(|ids| ids.get(id))
            .is_some_and(|&exp| exp > now_ms)
    }
}

/// The ids an entry of `key` carries: the committed ones and this batch's,
/// without the expired ones, at most [`MAX_IDS_PER_KEY`] (the latest expiries).
fn merged_ids(
    committed: Option<&BTreeMap<String, u64>>,
    batch: Option<&BTreeMap<String, u64>>,
    now_ms: u64,
) -> BTreeMap<String, u64> {
    let mut ids: BTreeMap<String, u64> = committed
        .into_iter()
        .chain(batch)
        .flatten()
        .filter(|(_, exp)| **exp > now_ms)
        .map(|(id, exp)| (id.clone(), *exp))
        .collect();
    if ids.len() > MAX_IDS_PER_KEY {
        let mut by_expiry: Vec<u64> = ids.values().copied().collect();
        by_expiry.sort_unstable();
        let cut = by_expiry[ids.len() - MAX_IDS_PER_KEY];
        ids.retain(|_, exp| *exp >= cut);
        while ids.len() > MAX_IDS_PER_KEY {
            let Some(first) = ids.iter().find(|(_, e)| **e == cut).map(|(k, _)| k.clone()) else {
                break;
            };
            ids.remove(&first);
        }
    }
    ids
}

/// Runs partition `control.p` on `node` until released, fenced, lost or
/// failed.
pub(crate) async fn run(node: Arc<Node>, control: Arc<PartitionControl>) -> PartitionExit {
    let p = control.p;
    let began = Instant::now();
    let mut owned = match acquire(&node, p).await {
        Ok(o) => o,
        Err(e) => return PartitionExit::Failed(format!("acquiring partition {p}: {e}")),
    };
    let consumer = match start_consumer(&node, &owned).await {
        Ok(c) => c,
        Err(e) => return PartitionExit::Failed(format!("starting partition {p}'s consumer: {e}")),
    };
    let ms = began.elapsed().as_millis() as u64;
    let c = &node.counters;
    c.last_recovery_ms.store(ms, Ordering::Relaxed);
    c.max_recovery_ms.fetch_max(ms, Ordering::Relaxed);
    Counters::add(&c.acquisitions, 1);
    tracing::info!(
        partition = p,
        epoch = owned.epoch,
        resume_after = owned.high,
        catch_up_keys = owned.catch_up.len(),
        recovery_ms = ms,
        "partition_acquired"
    );
    control.serving.store(true, Ordering::Release);
    let exit = consume(&node, &control, &mut owned, consumer).await;
    control.serving.store(false, Ordering::Release);
    exit
}

/// Fences the partition, rebuilds the local state from the changelog when
/// it differs, and prepares the catch-up filter.
async fn acquire(node: &Node, p: u32) -> Result<Owned, ClusterError> {
    let (epoch, applied) =
        changelog::acquire_marker(&node.infra, p, &node.config.node_id, &node.instance).await?;
    let snapshot = changelog::read_partition(&node.infra, p).await?;
    let restored = rebuild_local(node, p, &snapshot).await?;
    Counters::add(&node.counters.keys_restored, restored);
    let mut revs = HashMap::with_capacity(snapshot.entries.len());
    let mut catch_up = HashMap::new();
    let mut ids = HashMap::new();
    let now = crate::node::unix_ms();
    for (key, (entry, rev)) in snapshot.entries {
        if entry.seq > applied {
            catch_up.insert(key.clone(), entry.seq);
        }
        let live = merged_ids(Some(&entry.ids), None, now);
        if !live.is_empty() {
            ids.insert(key.clone(), live);
        }
        revs.insert(key, rev);
    }
    tracing::debug!(
        partition = p,
        epoch,
        applied,
        entries = revs.len(),
        restored,
        "partition rebuilt from the changelog"
    );
    Ok(Owned {
        p,
        epoch,
        source: names::source_name(p, epoch),
        high: applied,
        marker_rev: epoch,
        revs,
        catch_up,
        ids,
        committed: 0,
    })
}

/// Makes the local state of partition `p` equal to the changelog: keys the
/// changelog does not have (or has deleted) are deleted, keys that differ are
/// installed verbatim — value, version, timestamps and expiry — with
/// `Engine::restore`, so versions continue across a move. Returns how many
/// keys were written.
async fn rebuild_local(
    node: &Node,
    p: u32,
    snapshot: &changelog::Snapshot,
) -> Result<u64, ClusterError> {
    let engine = &node.engine;
    let partitions = node.infra.partitions;
    let now = crate::node::unix_ms();
    let mut writes: Vec<(String, Option<StateRecord>)> = Vec::new();
    // Local keys of p that the changelog does not know are not part of the
    // partition's history as committed: drop them.
    let mut after: Option<String> = None;
    loop {
        let page = engine.scan("", after.as_deref(), 1000).await?;
        for rec in &page {
            if names::partition_of(&rec.key, partitions) != p {
                continue;
            }
            let keep = snapshot
                .entries
                .get(&rec.key)
                .is_some_and(|(e, _)| !e.d && e.exp.is_none_or(|t| t > now));
            if !keep {
                writes.push((rec.key.clone(), None));
            }
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = Some(last.key.clone()),
            _ => break,
        }
    }
    for (key, (entry, _)) in &snapshot.entries {
        if entry.d || entry.exp.is_some_and(|t| t <= now) {
            continue;
        }
        let local = engine.get(key).await?;
        if local
            .as_ref()
            .is_some_and(|r| r.value == entry.v && r.version == entry.ver)
        {
            continue;
        }
        writes.push((
            key.clone(),
            Some(StateRecord {
                key: key.clone(),
                value: entry.v.clone(),
                version: entry.ver,
                updated_at: entry.upd,
                expires_at: entry.exp,
            }),
        ));
    }
    let n = writes.len() as u64;
    for chunk in writes.chunks(1000) {
        engine.restore(chunk.to_vec()).await?;
    }
    Ok(n)
}

/// Deletes the partition's consumers of earlier epochs and creates this
/// epoch's, starting right after the committed sequence.
async fn start_consumer(
    node: &Node,
    owned: &Owned,
) -> Result<async_nats::jetstream::consumer::Consumer<pull::Config>, ClusterError> {
    let stream = &node.infra.events;
    let prefix = names::consumer_prefix(owned.p);
    let name = names::consumer_name(owned.p, owned.epoch);
    let mut stale = Vec::new();
    let mut listing = stream.consumer_names();
    while let Some(n) = listing.next().await {
        let n = n.map_err(|e| ClusterError::nats("listing consumers", e))?;
        if n.starts_with(&prefix) && n != name {
            stale.push(n);
        }
    }
    for n in stale {
        if let Err(e) = stream.delete_consumer(&n).await {
            tracing::debug!(consumer = n, error = %e, "deleting an old consumer failed");
        }
    }
    stream
        .create_consumer(pull::Config {
            durable_name: Some(name.clone()),
            description: Some(format!(
                "statecraft partition {} epoch {} on {}",
                owned.p, owned.epoch, node.config.node_id
            )),
            filter_subject: names::subject(owned.p),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: owned.high + 1,
            },
            ack_policy: AckPolicy::All,
            ack_wait: Duration::from_secs(60),
            max_ack_pending: (node.config.max_batch as i64 * 4).max(1024),
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::nats("creating a consumer", e))
}

/// The consume loop (module docs).
async fn consume(
    node: &Node,
    control: &PartitionControl,
    owned: &mut Owned,
    consumer: async_nats::jetstream::consumer::Consumer<pull::Config>,
) -> PartitionExit {
    let p = owned.p;
    let max = node.config.max_batch;
    let mut messages = match consumer
        .stream()
        .max_messages_per_batch(max)
        // Pulls are bounded by bytes too: record batches carry many events.
        .max_bytes_per_batch(FETCH_BYTES)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
    {
        Ok(m) => m,
        Err(e) => return PartitionExit::Failed(format!("pulling partition {p}: {e}")),
    };
    let mut consecutive_errors = 0u32;
    loop {
        if control.release.load(Ordering::Acquire) {
            return PartitionExit::Released;
        }
        if !control.lease_valid(node.now_ms()) {
            return PartitionExit::LeaseLost;
        }
        let first = tokio::select! {
            _ = control.wake.notified() => continue,
            m = messages.next() => m,
        };
        let first = match first {
            None => return PartitionExit::Failed(format!("partition {p}'s consumer ended")),
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                use async_nats::jetstream::consumer::pull::MessagesErrorKind as K;
                if e.kind() == K::ConsumerDeleted {
                    // Only a newer owner deletes our consumer.
                    Counters::add(&node.counters.fenced, 1);
                    return PartitionExit::Fenced;
                }
                consecutive_errors += 1;
                tracing::warn!(partition = p, error = %e, "pulling failed");
                if consecutive_errors > 20 {
                    return PartitionExit::Failed(format!("pulling partition {p}: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        consecutive_errors = 0;
        // Up to `max` events (a record batch counts its events).
        let mut events = event_count(&first);
        let mut batch = vec![first];
        while events < max {
            match messages.next().now_or_never() {
                Some(Some(Ok(m))) => {
                    events += event_count(&m);
                    batch.push(m);
                }
                _ => break,
            }
        }
        match process(node, control, owned, batch).await {
            Ok(()) => {}
            Err(exit) => return exit,
        }
    }
}

/// Most bytes one pull asks for.
const FETCH_BYTES: usize = 4 << 20;

/// Events a message carries (its record-batch header, else one).
fn event_count(msg: &async_nats::jetstream::Message) -> usize {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(names::EVENTS_HEADER))
        .and_then(|v| v.as_str().parse::<usize>().ok())
        .unwrap_or(1)
        .max(1)
}

/// One batch, steps 2-6 of the module docs.
async fn process(
    node: &Node,
    control: &PartitionControl,
    owned: &mut Owned,
    batch: Vec<async_nats::jetstream::Message>,
) -> Result<(), PartitionExit> {
    let p = owned.p;
    let c = &node.counters;
    let mut items: Vec<Result<Event, Rejection>> = Vec::with_capacity(batch.len());
    let mut positions: Vec<u64> = Vec::with_capacity(batch.len());
    let mut reply_to: Vec<Option<String>> = Vec::with_capacity(batch.len());
    let mut skipped_replies: Vec<(String, u64)> = Vec::new();
    let mut last_seq = owned.high;
    // Events received (messages at or below `high` count one each).
    let mut received = 0u64;
    for msg in &batch {
        let seq = match msg.info() {
            Ok(i) => i.stream_sequence,
            Err(_) => continue,
        };
        if seq <= owned.high {
            Counters::add(&c.skipped_redelivered, 1);
            received += 1;
            continue;
        }
        last_seq = last_seq.max(seq);
        let reply = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(names::REPLY_HEADER))
            .map(|v| v.as_str().to_owned());
        let limits = &node.engine.config().limits;
        // A record batch (several events, one per line) or one event.
        let is_batch = msg
            .headers
            .as_ref()
            .is_some_and(|h| h.get(names::EVENTS_HEADER).is_some());
        let records: Vec<&[u8]> = if is_batch {
            msg.payload
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .take(names::MAX_EVENTS_PER_MESSAGE)
                .collect()
        } else {
            vec![&msg.payload[..]]
        };
        for (index, record) in records.into_iter().enumerate() {
            received += 1;
            let position = names::position(seq, index);
            let decoded = decode_event(record, limits);
            if let Ok(ev) = &decoded
                && owned.catch_up.get(&ev.key).is_some_and(|&s| seq <= s)
            {
                Counters::add(&c.skipped_in_changelog, 1);
                if let Some(r) = &reply {
                    skipped_replies.push((r.clone(), position));
                }
                continue;
            }
            items.push(decoded);
            positions.push(position);
            reply_to.push(reply.clone());
        }
    }
    Counters::add(&c.consumed, received);
    let now = crate::node::unix_ms();
    let window = node.engine.config().dedup_window.as_millis() as u64;
    let (results, batch_ids) = apply_batch(node, owned, &items, &positions, now, window).await?;
    // Keys whose state may have changed (applied, or applied before and
    // redelivered), and keys that got new ids: their after-images go to the
    // changelog.
    let keys: Vec<String> = {
        let mut seen = HashSet::new();
        items
            .iter()
            .zip(&results)
            .filter(|(_, r)| matches!(r, EventResult::Applied { .. } | EventResult::Duplicate))
            .filter_map(|(i, _)| i.as_ref().ok())
            .filter(|e| seen.insert(e.key.as_str()))
            .map(|e| e.key.clone())
            .collect()
    };
    if !node.config.commit_delay.is_zero() {
        tokio::time::sleep(node.config.commit_delay).await;
    }
    // Step 4: never commit past the lease.
    if !control.lease_valid(node.now_ms()) {
        Counters::add(&c.stale_commits_refused, 1);
        tracing::warn!(
            partition = p,
            epoch = owned.epoch,
            "lease no longer certain: the batch is not committed to the changelog nor acknowledged"
        );
        return Err(PartitionExit::LeaseLost);
    }
    let high = owned.high.max(last_seq);
    // Step 5: after-images of the touched keys, exact at `high`.
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys {
        let record = node
            .engine
            .get(&key)
            .await
            .map_err(|e| engine_exit(p, &e))?;
        let entry = match record {
            Some(r) => Entry {
                v: r.value,
                d: false,
                ver: r.version,
                upd: r.updated_at,
                exp: r.expires_at,
                seq: high,
                ids: merged_ids(owned.ids.get(&key), batch_ids.get(&key), now),
            },
            None => Entry {
                v: serde_json::Value::Null,
                d: true,
                ver: 0,
                upd: crate::node::unix_ms(),
                exp: None,
                seq: high,
                ids: merged_ids(owned.ids.get(&key), batch_ids.get(&key), now),
            },
        };
        entries.push((key, entry));
    }
    let report = changelog::write_entries(&node.infra, p, entries, &mut owned.revs)
        .await
        .map_err(|e| PartitionExit::Failed(format!("partition {p}: {e}")))?;
    Counters::add(&c.changelog_written, report.written);
    Counters::add(&c.changelog_superseded, report.superseded);
    let marker = Marker {
        seq: high,
        node: node.config.node_id.clone(),
        instance: node.instance.clone(),
    };
    match changelog::commit_marker(&node.infra, p, &marker, owned.marker_rev).await {
        Ok(rev) => owned.marker_rev = rev,
        Err(CommitError::Fenced(_)) => {
            Counters::add(&c.fenced, 1);
            tracing::warn!(
                partition = p,
                epoch = owned.epoch,
                "fenced: another node owns the partition now; this batch is not committed nor acknowledged"
            );
            return Err(PartitionExit::Fenced);
        }
        Err(CommitError::Nats(e)) => {
            return Err(PartitionExit::Failed(format!("partition {p}: {e}")));
        }
    }
    owned.high = high;
    // The batch's ids are committed now (they are in the entries).
    for (key, ids) in batch_ids {
        let merged = merged_ids(owned.ids.get(&key), Some(&ids), now);
        owned.ids.insert(key, merged);
    }
    owned.committed += 1;
    if owned.committed.is_multiple_of(PRUNE_EVERY) {
        owned.ids.retain(|_, ids| {
            ids.retain(|_, exp| *exp > now);
            !ids.is_empty()
        });
    }
    if !owned.catch_up.is_empty() {
        owned.catch_up.retain(|_, s| *s > high);
    }
    Counters::add(&c.batches, 1);
    // Step 6: answers, then the NATS ack.
    send_replies(node, &reply_to, &positions, &results, skipped_replies).await;
    if let Some(last) = batch.last()
        && let Err(e) = last.ack().await
    {
        // Not fatal: the marker is committed; a redelivery is skipped.
        tracing::debug!(partition = p, error = %e, "ack failed");
    }
    Ok(())
}

fn engine_exit(p: u32, e: &EngineError) -> PartitionExit {
    match e {
        EngineError::ShuttingDown => PartitionExit::EngineClosed,
        other => PartitionExit::Failed(format!("partition {p}: engine: {other}")),
    }
}

/// Step 3: the partition's id check, then the engine. Returns one result
/// per item and the ids this batch applied (key → id → expiry).
#[allow(clippy::type_complexity)]
async fn apply_batch(
    node: &Node,
    owned: &Owned,
    items: &[Result<Event, Rejection>],
    positions: &[u64],
    now: u64,
    window_ms: u64,
) -> Result<(Vec<EventResult>, HashMap<String, BTreeMap<String, u64>>), PartitionExit> {
    let c = &node.counters;
    let expires = now.saturating_add(window_ms);
    let mut results: Vec<Option<EventResult>> = vec![None; items.len()];
    let mut batch_ids: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
    let mut start = 0;
    while start < items.len() {
        // A segment holds each (key, id) at most once.
        let mut end = start;
        {
            let mut in_segment: HashSet<(&str, &str)> = HashSet::new();
            while end < items.len() {
                if let Ok(ev) = &items[end]
                    && let Some(id) = &ev.id
                    && !in_segment.insert((ev.key.as_str(), id.as_str()))
                {
                    break;
                }
                end += 1;
            }
        }
        let mut indices = Vec::with_capacity(end - start);
        let mut submit = Vec::with_capacity(end - start);
        let mut sub_positions = Vec::with_capacity(end - start);
        for i in start..end {
            if let Ok(ev) = &items[i]
                && let Some(id) = &ev.id
                && (owned.knows(&ev.key, id, now)
                    || batch_ids.get(&ev.key).is_some_and(|m| m.contains_key(id)))
            {
                Counters::add(&c.duplicate_ids, 1);
                results[i] = Some(EventResult::Duplicate);
                continue;
            }
            indices.push(i);
            submit.push(items[i].clone().map(|mut e| {
                e.id = None;
                e
            }));
            sub_positions.push(positions[i]);
        }
        let got = apply(node, owned.p, &owned.source, &submit, &sub_positions).await?;
        for (i, r) in indices.into_iter().zip(got) {
            if let EventResult::Applied { .. } = r
                && let Ok(ev) = &items[i]
                && let Some(id) = &ev.id
            {
                batch_ids
                    .entry(ev.key.clone())
                    .or_default()
                    .insert(id.clone(), expires);
            }
            results[i] = Some(r);
        }
        start = end;
    }
    let results = results
        .into_iter()
        .map(|r| r.unwrap_or(EventResult::Overloaded))
        .collect();
    Ok((results, batch_ids))
}

/// Applies durably, resubmitting `overloaded` events.
async fn apply(
    node: &Node,
    p: u32,
    source: &str,
    items: &[Result<Event, Rejection>],
    positions: &[u64],
) -> Result<Vec<EventResult>, PartitionExit> {
    let mut results: Vec<Option<EventResult>> = vec![None; items.len()];
    let mut todo: Vec<usize> = (0..items.len()).collect();
    let mut backoff = Duration::from_millis(5);
    while !todo.is_empty() {
        let batch_items: Vec<_> = todo.iter().map(|&i| items[i].clone()).collect();
        let batch_pos: Vec<u64> = todo.iter().map(|&i| positions[i]).collect();
        let ticket = node
            .engine
            .enqueue_sourced(batch_items, AckMode::Durable, source, batch_pos)
            .await
            .map_err(|e| engine_exit(p, &e))?;
        let got = ticket.wait().await;
        let mut again = Vec::new();
        for (&i, r) in todo.iter().zip(got) {
            match r {
                EventResult::Overloaded => again.push(i),
                EventResult::Rejected {
                    code: RejectCode::ShuttingDown,
                    ..
                } => return Err(PartitionExit::EngineClosed),
                EventResult::Rejected {
                    code: RejectCode::StoreUnavailable,
                    message,
                } => {
                    return Err(PartitionExit::Failed(format!(
                        "the local store failed: {message}"
                    )));
                }
                other => results[i] = Some(other),
            }
        }
        todo = again;
        if !todo.is_empty() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(EventResult::Overloaded))
        .collect())
}

/// Answers `ack=applied` producers: one message per reply subject.
async fn send_replies(
    node: &Node,
    reply_to: &[Option<String>],
    positions: &[u64],
    results: &[EventResult],
    skipped: Vec<(String, u64)>,
) {
    let mut by_subject: HashMap<&str, Vec<(u64, EventResult)>> = HashMap::new();
    for ((reply, &seq), result) in reply_to.iter().zip(positions).zip(results) {
        if let Some(r) = reply {
            by_subject
                .entry(r.as_str())
                .or_default()
                .push((seq, result.clone()));
        }
    }
    // Events already in the changelog were applied by a previous owner
    // (which died before answering): their effect is in, their own result
    // (the version right after them) is not known any more. `accepted`, not
    // `duplicate`: the producer sent them once.
    for (r, seq) in &skipped {
        by_subject
            .entry(r.as_str())
            .or_default()
            .push((*seq, EventResult::Accepted));
    }
    for (subject, answers) in by_subject {
        let payload = serde_json::to_vec(&answers).unwrap_or_default();
        if let Err(e) = node
            .infra
            .client
            .publish(subject.to_owned(), payload.into())
            .await
        {
            tracing::debug!(error = %e, "answering an ack=applied producer failed");
        }
    }
}
