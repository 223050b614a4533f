//! Durability: the shard's side of group commit ([`ShardPersistence`]), the
//! `GroupCommitter` thread that turns many shard batches into one fsync, and
//! the `Checkpointer` thread that materializes dirty keys into the store.
//!
//! # The protocol (DESIGN.md §1 "Group commit", issue "Durable state")
//!
//! 1. A shard applies a batch in memory, then encodes the after-images of
//!    the keys it touched (each key once, however often the batch changed it)
//!    and the idempotency ids it consumed as one log record, and hands it to
//!    the committer with the batch's `durable` replies.
//! 2. The committer appends every record that arrived while the previous
//!    fsync ran, fsyncs once, and only then releases their replies. A failed
//!    append or fsync poisons the engine: those replies become
//!    `store_unavailable` rejections, never acks, and later writes are
//!    refused until a restart — reads too (`Engine::get`/`scan`), since
//!    memory may hold effects of events that were refused (issue 16).
//! 3. Every `checkpoint_interval` or `checkpoint_batches` a shard snapshots
//!    its dirty keys — as the places of their last after-images in the
//!    batch records it kept since the previous snapshot, nothing cloned —
//!    and sends them, behind its own log records, to the committer, which
//!    forwards them to the checkpointer once those records are appended; the
//!    checkpointer stores those bytes, the ids, the offsets and the log
//!    deletions (`Store::begin_checkpoint`: large ones in parts, the last
//!    part atomic with the checkpoint position and the log deletions). A key
//!    changed 50 times between checkpoints is written once.
//! 4. Recovery (in `Store::open`) = state at the last checkpoint + the logged
//!    records after it.
//!
//! # Invariants
//!
//! - A `durable` reply is sent only after an fsync that covers its batch's
//!   record succeeded.
//! - A dirty key stays in the shard's memory until a checkpoint containing it
//!   is committed to the store (`confirmed_seq`); only then may the cache
//!   evict it, so a cache miss never reads a stale state from the store.
//! - Records of one shard reach the store in seq order (one channel, one
//!   committer thread).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;
use serde::Serialize;
use statecraft_store::{DedupEntry, KeyState, RecordBuilder, RecoveryReport, Store};
use tokio::sync::oneshot;

use crate::event::{EventResult, RejectCode};
use crate::shard::Entry;
use crate::stats::Summary;

/// What one batch changed, encoded as it is applied: the after-image of
/// each change goes straight into the batch's log record (no second lookup
/// of the key, no copy of its value); a key changed twice in a batch is
/// written twice and replay keeps the last.
#[derive(Debug, Default)]
pub(crate) struct StagedBatch {
    /// The batch's seq in its shard's log (0 without a store).
    pub seq: u64,
    /// The record being built (`None` without a store).
    pub record: Option<RecordBuilder>,
    /// Idempotency ids consumed: (key, id, expires_at), for the checkpoint.
    pub dedup: Vec<(CompactString, Box<str>, u64)>,
    /// Source positions covered by the batch (scale-out mode).
    pub offsets: Vec<(String, u64)>,
}

impl StagedBatch {
    /// Records `key`'s state after a change (its entry is `entry`), and where
    /// its encoded after-image sits in the record: the checkpoint stores
    /// those bytes as they are (no clone of the value, no second encoding).
    pub fn touch(&mut self, key: &str, entry: &mut Entry) {
        entry.logged_seq = self.seq;
        if let Some(r) = self.record.as_mut() {
            match &entry.value {
                Some(v) => {
                    let at = r.put(key, v, entry.version, entry.updated_at, entry.expires_at);
                    // A record past 4 GiB cannot be located: the checkpoint
                    // then encodes the value itself (u32::MAX = no image).
                    entry.image_at = u32::try_from(at).unwrap_or(u32::MAX);
                }
                None => r.delete(key),
            }
        }
    }

    pub fn dedup(&mut self, key: &str, id: &str, expires_at: u64) {
        if let Some(r) = self.record.as_mut() {
            r.dedup(key, id, expires_at);
        }
        self.dedup
            .push((CompactString::from(key), Box::from(id), expires_at));
    }
}

/// Durability figures, for stats and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DurabilityStats {
    /// fsyncs done by the group committer.
    pub fsyncs: u64,
    /// Batch records appended.
    pub records: u64,
    /// Events covered by those records' fsyncs.
    pub events: u64,
    /// fsync latency, µs.
    pub fsync_us: Summary,
    /// Batch records per fsync.
    pub records_per_fsync: Summary,
    /// Checkpoints committed.
    pub checkpoints: u64,
    /// Keys written by checkpoints.
    pub checkpoint_keys: u64,
    /// Checkpoint write time, µs.
    pub checkpoint_us: Summary,
    /// Hot-key cache hits (a key found in a shard's memory).
    pub cache_hits: u64,
    /// Hot-key cache misses (a key read from the store).
    pub cache_misses: u64,
    /// Entries evicted from the hot-key caches.
    pub cache_evictions: u64,
    /// Recovery at open: log records replayed.
    pub recovery_records: u64,
    /// Recovery at open: wall time in ms (open to ready).
    pub recovery_ms: f64,
    /// Set once a store write or fsync failed: writes are refused until restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poisoned: Option<String>,
}

/// Shared durability state of the engine.
pub(crate) struct Durability {
    /// The store, which owns the "writes refused" state ([`Store::poisoned`]):
    /// a failed append, fsync, checkpoint or sweep poisons it, and
    /// admission, reads, `/readyz` and stats all ask it.
    pub store: Store,
    pub recovery: RecoveryReport,
    pub fsyncs: AtomicU64,
    pub records: AtomicU64,
    pub events: AtomicU64,
    pub checkpoints: AtomicU64,
    pub checkpoint_keys: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub cache_evictions: AtomicU64,
    pub hist: Mutex<CommitHistograms>,
}

pub(crate) struct CommitHistograms {
    pub fsync_us: Histogram<u64>,
    pub records_per_fsync: Histogram<u64>,
    pub checkpoint_us: Histogram<u64>,
}

fn hist() -> Histogram<u64> {
    // Constant, valid bounds: construction cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid constant histogram bounds")
}

impl Durability {
    pub fn new(store: Store, recovery: RecoveryReport) -> Self {
        Durability {
            store,
            recovery,
            fsyncs: AtomicU64::new(0),
            records: AtomicU64::new(0),
            events: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            checkpoint_keys: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            cache_evictions: AtomicU64::new(0),
            hist: Mutex::new(CommitHistograms {
                fsync_us: hist(),
                records_per_fsync: hist(),
                checkpoint_us: hist(),
            }),
        }
    }

    /// Marks the store failed (the first cause is kept; the store logs it):
    /// for failures the store did not see itself, e.g. a record out of order
    /// or a checkpoint that could not be built.
    fn poison(&self, cause: String) {
        self.store.poison(cause);
    }

    /// The first failure's message once the store refused a write.
    pub fn poisoned(&self) -> Option<String> {
        self.store.poisoned()
    }

    pub fn stats(&self) -> DurabilityStats {
        let h = match self.hist.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        DurabilityStats {
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            fsync_us: Summary::of(&h.fsync_us),
            records_per_fsync: Summary::of(&h.records_per_fsync),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            checkpoint_keys: self.checkpoint_keys.load(Ordering::Relaxed),
            checkpoint_us: Summary::of(&h.checkpoint_us),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            cache_evictions: self.cache_evictions.load(Ordering::Relaxed),
            recovery_records: self.recovery.records_replayed,
            recovery_ms: self.recovery.duration.as_secs_f64() * 1e3,
            poisoned: self.poisoned(),
        }
    }
}

type DurableReplies = Vec<(oneshot::Sender<Vec<EventResult>>, Vec<EventResult>)>;

/// What shards send the committer.
pub(crate) enum CommitMsg {
    /// One applied batch: its encoded record (empty when it changed nothing)
    /// and the replies to release after the fsync.
    Batch {
        shard: u16,
        seq: u64,
        /// Shared with the shard, whose next checkpoint reads the
        /// after-images out of it.
        record: Arc<Vec<u8>>,
        events: u64,
        replies: DurableReplies,
    },
    /// A checkpoint of `shard` up to `upto_seq`, to forward to the
    /// checkpointer once the records up to it are appended.
    Checkpoint(CheckpointJob),
}

/// How a checkpoint gets one key's state.
pub(crate) enum Snap {
    /// The key is gone.
    Deleted,
    /// Its after-image in the job's records: (record index, byte offset).
    Image(u32, u32),
    /// Encoded by the checkpointer (no image to point at).
    State(KeyState),
}

pub(crate) struct CheckpointJob {
    shard: u16,
    upto_seq: u64,
    states: Vec<(CompactString, Snap)>,
    /// The shard's records since its previous checkpoint snapshot, in seq
    /// order; [`Snap::Image`] points into them.
    records: Vec<Arc<Vec<u8>>>,
    dedup: Vec<DedupEntry>,
    offsets: Vec<(String, u64)>,
    /// Set to `upto_seq` once committed (read by the shard's cache eviction).
    confirmed: Arc<AtomicU64>,
}

/// The shard's handle on the store and the committer.
pub(crate) struct ShardPersistence {
    shard: u16,
    durability: Arc<Durability>,
    /// To the committer. Bounded: when fsyncs fall behind, shards wait here,
    /// their queues fill, and producers feel the backpressure. Dropping every
    /// sender ends the committer.
    commit_tx: SyncSender<CommitMsg>,
    next_seq: u64,
    last_seq: u64,
    /// Keys changed since the last checkpoint snapshot, each once.
    dirty: Vec<CompactString>,
    /// Ids consumed since the last checkpoint snapshot.
    dirty_ids: Vec<DedupEntry>,
    /// Offsets moved since the last checkpoint snapshot.
    dirty_offsets: FxHashMap<String, u64>,
    /// Seq up to which a checkpoint has been committed to the store.
    confirmed: Arc<AtomicU64>,
    batches_since_checkpoint: u64,
    /// Log bytes written since the last checkpoint: recovery replays them,
    /// so they bound the time to ready after a crash.
    bytes_since_checkpoint: u64,
    checkpoint_bytes: u64,
    last_checkpoint: Instant,
    checkpoint_interval: Duration,
    checkpoint_batches: u64,
    /// Cache budget in bytes and the estimate of what the shard holds.
    cache_budget: usize,
    cache_used: usize,
    record_buf: Vec<u8>,
    /// Records committed since the last checkpoint snapshot (consecutive
    /// seqs from `records_base`): the after-images the next checkpoint
    /// stores. Bounded like the log since the checkpoint (`checkpoint_bytes`).
    records: Vec<Arc<Vec<u8>>>,
    records_base: u64,
    /// Length of the last record sent (sizes the next buffer).
    last_record_len: usize,
}

/// Fixed bytes of one cached entry besides its key's and value's bytes:
/// roughly the hot table's bucket — a 24-byte `CompactString` key header and
/// the entry (at most 80 bytes, its `Value` header inline; a test in
/// shard.rs holds it there) — less the value's JSON punctuation that
/// [`approx_value_bytes`](crate::limits::approx_value_bytes) already counts.
/// A rough figure, used only to budget the hot-key cache (`cache_bytes`).
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// Rough bytes held by one cached entry: key, value, table overhead.
pub(crate) fn entry_bytes(key: &str, value: Option<&serde_json::Value>) -> usize {
    ENTRY_OVERHEAD_BYTES + key.len() + value.map_or(0, crate::limits::approx_value_bytes)
}

impl ShardPersistence {
    pub fn new(
        shard: u16,
        durability: Arc<Durability>,
        commit_tx: SyncSender<CommitMsg>,
        settings: &crate::engine::EngineConfig,
    ) -> Self {
        let next_seq = durability.store.next_seq();
        ShardPersistence {
            shard,
            durability,
            commit_tx,
            next_seq,
            last_seq: next_seq.saturating_sub(1),
            dirty: Vec::new(),
            dirty_ids: Vec::new(),
            dirty_offsets: FxHashMap::default(),
            confirmed: Arc::new(AtomicU64::new(next_seq.saturating_sub(1))),
            batches_since_checkpoint: 0,
            bytes_since_checkpoint: 0,
            checkpoint_bytes: settings.checkpoint_bytes.max(1),
            last_checkpoint: Instant::now(),
            checkpoint_interval: settings.checkpoint_interval,
            checkpoint_batches: settings.checkpoint_batches.max(1),
            cache_budget: settings.cache_bytes,
            cache_used: 0,
            record_buf: Vec::with_capacity(64 << 10),
            records: Vec::new(),
            records_base: next_seq,
            last_record_len: 0,
        }
    }

    /// Starts a batch: its seq.
    pub fn begin(&mut self) -> StagedBatch {
        let buf = std::mem::take(&mut self.record_buf);
        StagedBatch {
            seq: self.next_seq,
            record: Some(RecordBuilder::new(buf, self.shard, self.next_seq)),
            ..StagedBatch::default()
        }
    }

    /// A key missing from memory: read it from the store. A failed read is
    /// an error (the caller answers the event with it), never "absent":
    /// absent would start the key over at version 1 and log that (issue 16).
    pub fn load(&mut self, key: &str) -> Result<Option<Entry>, statecraft_store::StoreError> {
        self.durability.cache_misses.fetch_add(1, Ordering::Relaxed);
        match self.durability.store.get(key) {
            Ok(Some(s)) => {
                self.cache_used += entry_bytes(key, Some(&s.value));
                Ok(Some(Entry {
                    value: Some(s.value),
                    version: s.version,
                    updated_at: s.updated_at,
                    expires_at: s.expires_at,
                    dirty: false,
                    logged_seq: 0,
                    hot: true,
                    image_at: u32::MAX,
                    size_bound: crate::shard::SIZE_UNKNOWN,
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::error!(shard = self.shard, key, error = %e, "store read failed");
                Err(e)
            }
        }
    }

    /// The seq up to which a checkpoint of this shard is committed: the
    /// store knows every id and state of a batch at or below it.
    pub fn confirmed_seq(&self) -> u64 {
        self.confirmed.load(Ordering::Acquire)
    }

    /// Accounts a newly inserted entry.
    pub fn inserted(&mut self, key: &str, value: Option<&serde_json::Value>) {
        self.cache_used += entry_bytes(key, value);
    }

    /// Marks `key` dirty (once per checkpoint period).
    pub fn dirty(&mut self, key: &str, entry: &mut Entry) {
        if !entry.dirty {
            entry.dirty = true;
            self.dirty.push(CompactString::from(key));
        }
    }

    /// The stored offset `name`, if any. A failed read is an error, never
    /// 0 (which would replay the source's events).
    pub fn stored_offset(&self, name: &str) -> Result<Option<u64>, statecraft_store::StoreError> {
        self.durability.store.offset(name).inspect_err(|e| {
            tracing::error!(shard = self.shard, error = %e, "store offset read failed");
        })
    }

    /// Was id `id` on `key` seen, as far as the store knows? A failed read
    /// is an error, never "not seen" (which would apply the event twice).
    pub fn seen_id(
        &mut self,
        key: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<bool, statecraft_store::StoreError> {
        match self.durability.store.dedup_get(key, id) {
            Ok(found) => Ok(found.is_some_and(|exp| exp > now_ms)),
            Err(e) => {
                tracing::error!(shard = self.shard, error = %e, "store dedup read failed");
                Err(e)
            }
        }
    }

    /// Hands an applied batch to the committer. `durable` replies are released
    /// after its fsync; with nothing changed the record is empty but the
    /// replies still wait for the next fsync (a `duplicate` answer must not
    /// overtake the durability of the event it duplicates).
    pub fn commit(&mut self, staged: StagedBatch, events: u64, durable: DurableReplies) {
        let StagedBatch {
            seq,
            record,
            dedup,
            offsets,
        } = staged;
        let Some(mut record) = record else {
            return;
        };
        for (name, pos) in &offsets {
            record.offset(name, *pos);
            let e = self.dirty_offsets.entry(name.clone()).or_insert(*pos);
            *e = (*e).max(*pos);
        }
        for (key, id, exp) in dedup {
            self.dirty_ids.push(DedupEntry {
                key: key.to_string(),
                id: id.into(),
                expires_at: exp,
            });
        }
        let changed = record.entries() > 0;
        let mut bytes = record.finish();
        if !changed && durable.is_empty() {
            self.record_buf = bytes;
            return;
        }
        let record = if changed {
            self.next_seq = seq + 1;
            self.last_seq = seq;
            self.batches_since_checkpoint += 1;
            self.bytes_since_checkpoint += bytes.len() as u64;
            self.last_record_len = bytes.len();
            let record = Arc::new(bytes);
            if self.records.is_empty() {
                self.records_base = seq;
            }
            self.records.push(Arc::clone(&record));
            record
        } else {
            // Nothing to log, but the replies wait for the next fsync.
            self.record_buf = std::mem::take(&mut bytes);
            Arc::new(Vec::new())
        };
        let msg = CommitMsg::Batch {
            shard: self.shard,
            seq,
            record,
            events,
            replies: durable,
        };
        self.send(msg);
        if self.record_buf.capacity() == 0 {
            // Sized for a record like the last one: growing a large buffer
            // by doubling copies it and faults in fresh pages each time.
            let size = (self.last_record_len + self.last_record_len / 4).max(64 << 10);
            self.record_buf = Vec::with_capacity(size);
        }
    }

    fn send(&mut self, msg: CommitMsg) {
        // If the committer is gone (it only stops after every shard did, so
        // this is a bug or a panic), fail the replies rather than ack.
        if let Err(std::sync::mpsc::SendError(CommitMsg::Batch { replies, .. })) =
            self.commit_tx.send(msg)
        {
            fail_replies(replies, "the group committer stopped");
        }
    }

    /// Is a checkpoint due?
    pub fn checkpoint_due(&self) -> bool {
        !(self.dirty.is_empty() && self.records.is_empty())
            && (self.batches_since_checkpoint >= self.checkpoint_batches
                || self.bytes_since_checkpoint >= self.checkpoint_bytes
                || self.last_checkpoint.elapsed() >= self.checkpoint_interval)
    }

    /// Snapshots the dirty keys and sends the checkpoint behind this shard's
    /// records. A dirty key is snapshotted as the place of its last
    /// after-image in those records (the bytes the checkpointer stores):
    /// no value is cloned or encoded on the shard's thread.
    pub fn checkpoint(&mut self, map: &mut FxHashMap<CompactString, Entry>) {
        self.last_checkpoint = Instant::now();
        self.batches_since_checkpoint = 0;
        self.bytes_since_checkpoint = 0;
        let records = std::mem::take(&mut self.records);
        let base = self.records_base;
        self.records_base = self.next_seq;
        if self.dirty.is_empty() && self.dirty_ids.is_empty() && self.dirty_offsets.is_empty() {
            return;
        }
        let mut states = Vec::with_capacity(self.dirty.len());
        for key in std::mem::take(&mut self.dirty) {
            let snap = match map.get_mut(key.as_str()) {
                Some(e) => {
                    e.dirty = false;
                    match &e.value {
                        None => Snap::Deleted,
                        Some(v) => {
                            let rec = e
                                .logged_seq
                                .checked_sub(base)
                                .and_then(|i| u32::try_from(i).ok())
                                .filter(|&i| (i as usize) < records.len());
                            match rec {
                                Some(i) if e.image_at != u32::MAX => Snap::Image(i, e.image_at),
                                _ => Snap::State(KeyState {
                                    value: v.clone(),
                                    version: e.version,
                                    updated_at: e.updated_at,
                                    expires_at: e.expires_at,
                                }),
                            }
                        }
                    }
                }
                None => Snap::Deleted,
            };
            states.push((key, snap));
        }
        let job = CheckpointJob {
            shard: self.shard,
            upto_seq: self.last_seq,
            states,
            records,
            dedup: std::mem::take(&mut self.dirty_ids),
            offsets: self.dirty_offsets.drain().collect(),
            confirmed: Arc::clone(&self.confirmed),
        };
        self.send(CommitMsg::Checkpoint(job));
    }

    /// Evicts clean, committed, not recently used entries while the shard
    /// holds more than its budget (second-chance: a hot entry loses its mark
    /// and survives one pass).
    pub fn evict(&mut self, map: &mut FxHashMap<CompactString, Entry>) {
        if self.cache_used <= self.cache_budget {
            return;
        }
        let target = self.cache_budget / 10 * 9;
        let confirmed = self.confirmed.load(Ordering::Acquire);
        let mut used = self.cache_used;
        let mut evicted = 0u64;
        for pass in 0..2 {
            map.retain(|k, e| {
                if used <= target || e.dirty || e.logged_seq > confirmed {
                    return true;
                }
                if e.hot && pass == 0 {
                    e.hot = false;
                    return true;
                }
                used = used.saturating_sub(entry_bytes(k, e.value.as_ref()));
                evicted += 1;
                false
            });
            if used <= target {
                break;
            }
        }
        self.cache_used = used;
        self.durability
            .cache_evictions
            .fetch_add(evicted, Ordering::Relaxed);
    }

    /// Final checkpoint at shutdown, so the next open replays nothing.
    pub fn shutdown(&mut self, map: &mut FxHashMap<CompactString, Entry>) {
        self.checkpoint(map);
    }
}

fn fail_replies(replies: DurableReplies, why: &str) {
    for (tx, results) in replies {
        let failed = results
            .iter()
            .map(|r| match r {
                // Whatever the batch did in memory, it is not durable: the
                // producer must not take it as acknowledged.
                EventResult::Applied { .. } | EventResult::Duplicate => EventResult::rejected(
                    RejectCode::StoreUnavailable,
                    format!("not durable: {why}"),
                ),
                other => other.clone(),
            })
            .collect();
        let _ = tx.send(failed);
    }
}

/// Starts the committer and checkpointer threads. Returns the sender shards
/// use (clone one per shard) and the threads to join at shutdown (they end
/// when every sender is dropped).
pub(crate) fn start_committer(
    durability: Arc<Durability>,
    capacity: usize,
) -> std::io::Result<(SyncSender<CommitMsg>, Vec<JoinHandle<()>>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<CommitMsg>(capacity);
    // Committer → checkpointer. Bounded: a checkpointer far behind slows the
    // committer, not memory.
    let (ckpt_tx, ckpt_rx) = std::sync::mpsc::sync_channel::<CheckpointJob>(64);
    let d1 = Arc::clone(&durability);
    let committer = std::thread::Builder::new()
        .name("statecraft-commit".into())
        .spawn(move || run_committer(&d1, rx, ckpt_tx))?;
    let d2 = durability;
    let checkpointer = std::thread::Builder::new()
        .name("statecraft-checkpoint".into())
        .spawn(move || run_checkpointer(&d2, ckpt_rx))?;
    Ok((tx, vec![committer, checkpointer]))
}

/// Most records gathered under one fsync: enough to amortise the fsync over
/// every shard's queued batches (1,024 in the channel), few enough that one
/// group's replies and records stay bounded and its fsync does not wait
/// behind an unbounded append loop.
const MAX_GROUP: usize = 4_096;

/// How often the checkpointer wakes without a job, and the least time
/// between two TTL sweeps: expired keys are already invisible to reads, so
/// the sweep only reclaims space, and once a second is plenty for that.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Most expiry-index entries one sweep removes: the sweep holds the store's
/// materialize lock, which checkpoints wait for, so it is cut into bounded
/// steps (10,000 entries is a few ms of fjall work); the rest waits for the
/// next sweep.
const SWEEP_MAX_ENTRIES: usize = 10_000;

fn run_committer(d: &Durability, rx: Receiver<CommitMsg>, ckpt_tx: SyncSender<CheckpointJob>) {
    let mut group: Vec<CommitMsg> = Vec::with_capacity(256);
    loop {
        match rx.recv() {
            Ok(first) => group.push(first),
            Err(_) => break, // every shard is gone
        }
        // Everything that arrived while the previous fsync ran joins this one.
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(m) => group.push(m),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        commit_group(d, &mut group, &ckpt_tx);
    }
    // Make what was appended last durable before the store closes.
    // A failed sync poisons the store itself.
    if d.poisoned().is_none() {
        let _ = d.store.sync();
    }
}

fn commit_group(d: &Durability, group: &mut Vec<CommitMsg>, ckpt_tx: &SyncSender<CheckpointJob>) {
    let mut replies: Vec<DurableReplies> = Vec::new();
    let mut checkpoints: VecDeque<CheckpointJob> = VecDeque::new();
    let mut records = 0u64;
    let mut events = 0u64;
    let mut failed: Option<String> = d.poisoned();
    for msg in group.drain(..) {
        match msg {
            CommitMsg::Batch {
                shard,
                seq,
                record,
                events: n,
                replies: r,
            } => {
                if failed.is_none() && !record.is_empty() {
                    match d.store.append_encoded(shard, seq, &record) {
                        Ok(()) => records += 1,
                        Err(e) => failed = Some(e.to_string()),
                    }
                }
                events += n;
                if !r.is_empty() {
                    replies.push(r);
                }
            }
            CommitMsg::Checkpoint(job) => checkpoints.push_back(job),
        }
    }
    if failed.is_none() && (records > 0 || !replies.is_empty()) {
        let started = Instant::now();
        match d.store.sync() {
            Ok(()) => {
                let us = started.elapsed().as_micros().max(1) as u64;
                d.fsyncs.fetch_add(1, Ordering::Relaxed);
                d.records.fetch_add(records, Ordering::Relaxed);
                d.events.fetch_add(events, Ordering::Relaxed);
                let mut h = match d.hist.lock() {
                    Ok(h) => h,
                    Err(p) => p.into_inner(),
                };
                let _ = h.fsync_us.record(us);
                let _ = h.records_per_fsync.record(records.max(1));
            }
            Err(e) => failed = Some(e.to_string()),
        }
    }
    match failed {
        None => {
            for batch in replies {
                for (tx, results) in batch {
                    let _ = tx.send(results);
                }
            }
        }
        Some(cause) => {
            d.poison(cause.clone());
            for batch in replies {
                fail_replies(batch, &cause);
            }
        }
    }
    // The records these checkpoints cover are appended now.
    for job in checkpoints {
        if ckpt_tx.send(job).is_err() {
            break;
        }
    }
}

fn run_checkpointer(d: &Durability, rx: Receiver<CheckpointJob>) {
    let mut last_sweep = Instant::now();
    loop {
        match rx.recv_timeout(SWEEP_INTERVAL) {
            Ok(job) => write_checkpoint(d, job),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_sweep.elapsed() >= SWEEP_INTERVAL && d.poisoned().is_none() {
            last_sweep = Instant::now();
            if let Err(e) = d
                .store
                .sweep_expired(crate::shard::now_ms(), SWEEP_MAX_ENTRIES)
            {
                tracing::warn!(error = %e, "TTL sweep failed");
            }
        }
    }
}

/// Writes one checkpoint job through one store checkpoint (committed in
/// parts when large; see `statecraft_store::Checkpoint`): each key's state
/// from its after-image bytes (or encoded here), the ids and offsets.
fn checkpoint_job(
    store: &Store,
    job: &CheckpointJob,
) -> statecraft_store::Result<statecraft_store::CheckpointReport> {
    let mut ck = store.begin_checkpoint(job.shard, job.upto_seq)?;
    for (key, snap) in &job.states {
        match snap {
            Snap::Deleted => ck.state(key, None)?,
            Snap::State(s) => ck.state(key, Some(s))?,
            Snap::Image(rec, at) => {
                let bytes = job
                    .records
                    .get(*rec as usize)
                    .and_then(|r| r.get(*at as usize..))
                    .unwrap_or_default();
                let len = statecraft_store::encoded_state_len(bytes)?;
                ck.state_encoded(key, bytes.get(..len))?;
            }
        }
    }
    for e in &job.dedup {
        ck.dedup(&e.key, &e.id, e.expires_at)?;
    }
    for (name, pos) in &job.offsets {
        ck.offset(name, *pos)?;
    }
    ck.commit()
}

fn write_checkpoint(d: &Durability, job: CheckpointJob) {
    if d.poisoned().is_some() {
        return;
    }
    let started = Instant::now();
    let n = job.states.len() as u64;
    let result = checkpoint_job(&d.store, &job);
    match result {
        Ok(_) => {
            job.confirmed.fetch_max(job.upto_seq, Ordering::AcqRel);
            d.checkpoints.fetch_add(1, Ordering::Relaxed);
            d.checkpoint_keys.fetch_add(n, Ordering::Relaxed);
            let mut h = match d.hist.lock() {
                Ok(h) => h,
                Err(p) => p.into_inner(),
            };
            let _ = h
                .checkpoint_us
                .record(started.elapsed().as_micros().max(1) as u64);
        }
        Err(e) => d.poison(format!("checkpoint failed: {e}")),
    }
}
