//! The shard worker: the single owner of the keys that hash to its shard.
//!
//! Each shard runs on a dedicated OS thread with its own current-thread Tokio
//! runtime (timers for the batch deadline, channels), so the CPU work of
//! applying events never blocks the I/O runtime that accepts connections.
//!
//! # Invariants
//!
//! - Only this thread reads or writes the shard's state, so there is no lock
//!   on state; events of one key are applied in the order they were queued.
//! - Every event of every sub-batch taken from the queue gets exactly one
//!   result, sent on that sub-batch's reply channel, even when the producer
//!   has gone away (the send then fails harmlessly).
//! - Reads are served between batches, so a read sees whole batches only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::batch::BatchCollector;
use crate::event::{AckMode, Change, Event, EventResult, Op, StateRecord};
use crate::ops::{self, CustomOp};
use crate::persist::{ShardPersistence, StagedBatch};
use crate::stats::ShardMetrics;
use statecraft_store::StoreError;

/// A sub-batch of one submission: the events of that submission that belong
/// to this shard, in submission order. The submission's events are shared by
/// all its sub-batches (read-only), so routing moves indices, not events.
pub(crate) struct SubBatch {
    /// The whole submission, shared with the other shards' sub-batches.
    pub submission: Arc<Vec<Event>>,
    /// Indices into `submission` of this shard's events, ascending.
    pub indices: Vec<u32>,
    /// Where the submission's events come from, with a position per event,
    /// for exactly-once effects over a replayable source.
    pub source: Option<Arc<Source>>,
    pub ack: AckMode,
    /// Who waits for the results (in `indices` order). `None` under `ack=none`.
    pub reply: Option<oneshot::Sender<Vec<EventResult>>>,
}

/// A replayable source of events (a partition of a log): its name and the
/// position of each event of a submission (index-aligned; 0 = none).
///
/// A shard stores, with the state each batch produced, the highest position
/// of every source it applied; an event at or below it is answered
/// `duplicate` and not applied again — exactly-once effects when a source
/// redelivers, as long as positions grow per source and the shard count
/// stays the same.
#[derive(Debug, Clone)]
pub struct Source {
    /// The source's name (e.g. `nats/3`, `pipe/1`).
    pub name: Arc<str>,
    /// Position per event of the submission, by index.
    pub seqs: Vec<u64>,
}

/// Requests other than writes, served between batches.
pub(crate) enum ShardRequest {
    /// Read one key.
    Get {
        key: String,
        /// A failed store read is an error, never "absent".
        reply: oneshot::Sender<Result<Option<StateRecord>, StoreError>>,
    },
    /// Install states verbatim (durably, like a batch).
    Restore(RestoreBatch),
    /// Up to `limit` live keys starting with `prefix` and greater than
    /// `after`, in key order.
    Scan {
        prefix: String,
        after: Option<String>,
        limit: usize,
        reply: oneshot::Sender<ScanPart>,
    },
}

/// One shard's part of a scan (see [`ShardState::scan`]).
pub(crate) struct ScanPart {
    /// Live records, in key order, at most `limit`.
    pub live: Vec<StateRecord>,
    /// Keys held in memory that are deleted or expired.
    pub hidden: Vec<String>,
}

/// Installs states as they are (value, version, timestamps, expiry), e.g.
/// when a node takes over a partition from a changelog. `None` deletes.
pub(crate) struct RestoreBatch {
    pub items: Vec<(String, Option<StateRecord>)>,
    pub reply: oneshot::Sender<Vec<EventResult>>,
}

/// What the shard holds for one key.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// `None`: the key was deleted (kept as a tombstone until materialized).
    pub value: Option<Value>,
    pub version: u64,
    pub updated_at: u64,
    pub expires_at: Option<u64>,
    /// Changed since the last checkpoint snapshot (must not be evicted).
    pub dirty: bool,
    /// Seq of the last batch that logged this key (0 = never, this run).
    pub logged_seq: u64,
    /// Used since the last eviction pass (second-chance eviction).
    pub hot: bool,
    /// Where the encoded after-image of the last logged change starts in
    /// the record of `logged_seq` (`u32::MAX` = none).
    pub image_at: u32,
    /// An upper bound of the value's estimated size
    /// ([`approx_value_bytes`](crate::limits::approx_value_bytes)) in units
    /// of [`SIZE_UNIT`] bytes, rounded up; `SIZE_UNKNOWN` = not known (or
    /// too large to say): see [`apply_sized`]. A `u16`, so the entry stays
    /// 80 bytes (the hot table's bucket is key + entry; see the test).
    pub size_bound: u16,
}

impl Entry {
    fn fresh(value: Option<Value>, version: u64, updated_at: u64, expires_at: Option<u64>) -> Self {
        Entry {
            value,
            version,
            updated_at,
            expires_at,
            dirty: false,
            logged_seq: 0,
            hot: true,
            image_at: u32::MAX,
            size_bound: SIZE_UNKNOWN,
        }
    }

    fn is_live(&self, now_ms: u64) -> bool {
        self.value.is_some() && self.expires_at.is_none_or(|t| t > now_ms)
    }
}

/// Settings a shard worker needs, copied from the engine's config.
#[derive(Clone)]
pub(crate) struct ShardSettings {
    pub max_batch: usize,
    pub max_wait: Duration,
    pub dedup_window: Duration,
    pub max_dedup_ids: usize,
    pub custom_ops: Arc<FxHashMap<Arc<str>, CustomOp>>,
    /// Test hook: time added to every event's apply.
    pub apply_delay: Duration,
    /// Burn `apply_delay` as CPU work (else sleep).
    pub apply_delay_busy: bool,
    /// How many shards the engine has (names of per-shard source offsets).
    pub shards: usize,
    /// Event limits: the shard refuses a change that would grow a key's
    /// value past `max_value_bytes` ([`crate::limits::apply_bounded`]).
    pub limits: crate::limits::Limits,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A (key, id) pair: ids are scoped to their key.
type KeyId = (Box<str>, Box<str>);

/// Idempotency ids seen recently, scoped to their key, with a window and a
/// bound on how many are remembered.
#[derive(Default)]
struct DedupIds {
    /// key → id → expiry in ms. Nested so a probe borrows both strings (no
    /// allocation on the apply path of an event with an id).
    seen: FxHashMap<Box<str>, FxHashMap<Box<str>, u64>>,
    /// Insertion order, for expiry and for the count bound: (key and id,
    /// expiry, seq of the batch that consumed it).
    order: std::collections::VecDeque<(KeyId, u64, u64)>,
}

impl DedupIds {
    fn contains(&self, key: &str, id: &str, now_ms: u64) -> bool {
        self.seen
            .get(key)
            .and_then(|ids| ids.get(id))
            .is_some_and(|&exp| exp > now_ms)
    }

    /// Remembers an id consumed by the batch of seq `seq`. Past `max` ids
    /// the oldest are forgotten, but only those a committed checkpoint
    /// (`confirmed`: its seq) has written to the store: an id that is only
    /// in the log and in memory must stay, or its repeat would be applied
    /// again (the store would not know it yet).
    fn insert(
        &mut self,
        key: &str,
        id: &str,
        expires_at: u64,
        max: usize,
        seq: u64,
        confirmed: u64,
    ) {
        let k = (Box::<str>::from(key), Box::<str>::from(id));
        self.seen
            .entry(k.0.clone())
            .or_default()
            .insert(k.1.clone(), expires_at);
        self.order.push_back((k, expires_at, seq));
        while self.order.len() > max && self.order.front().is_some_and(|o| o.2 <= confirmed) {
            self.forget_oldest();
        }
    }

    fn expire(&mut self, now_ms: u64) {
        while self.order.front().is_some_and(|(_, exp, _)| *exp <= now_ms) {
            self.forget_oldest();
        }
    }

    /// Drops the oldest remembered id, unless a later insert renewed it.
    fn forget_oldest(&mut self) {
        let Some(((key, id), exp, _)) = self.order.pop_front() else {
            return;
        };
        if let Some(ids) = self.seen.get_mut(&key)
            && ids.get(&id) == Some(&exp)
        {
            ids.remove(&id);
            if ids.is_empty() {
                self.seen.remove(&key);
            }
        }
    }
}

/// The state owned by one shard and the logic that applies events to it.
pub(crate) struct ShardState {
    /// The shard's index (names its per-shard source offsets).
    pub id: usize,
    /// The shard's keys. Keys up to 24 bytes are stored inline in the table,
    /// so a lookup compares them without chasing a pointer.
    map: FxHashMap<CompactString, Entry>,
    dedup: DedupIds,
    /// Highest source position applied per source (see [`Source`]), by the
    /// store name of the (source, shard) pair.
    offsets: FxHashMap<String, u64>,
    settings: ShardSettings,
    persistence: Option<ShardPersistence>,
}

impl ShardState {
    pub fn new(id: usize, settings: ShardSettings, persistence: Option<ShardPersistence>) -> Self {
        ShardState {
            id,
            map: FxHashMap::default(),
            dedup: DedupIds::default(),
            offsets: FxHashMap::default(),
            settings,
            persistence,
        }
    }

    /// The store name of this shard's offset of `source`. It includes the
    /// shard count: offsets are per shard, so a different shard count starts
    /// from no offset (documented: at-least-once across such a change).
    fn offset_name(&self, source: &str) -> String {
        format!("{source}/{}of{}", self.id, self.settings.shards)
    }

    /// Has position `seq` of `source` been applied by this shard already?
    /// Otherwise records it as applied (the caller applies the event).
    /// `None`: not seen, now recorded (apply the event); `Some(answer)`:
    /// answer the event with it — `duplicate`, or `store_unavailable` when
    /// the stored position could not be read (never taken as 0, which would
    /// replay the source's events).
    fn source_seen(
        &mut self,
        source: &str,
        seq: u64,
        staged: &mut StagedBatch,
    ) -> Option<EventResult> {
        let name = self.offset_name(source);
        let current = match self.offsets.get(&name) {
            Some(&v) => v,
            None => {
                let stored = match self.persistence.as_ref().map(|p| p.stored_offset(&name)) {
                    Some(Err(e)) => return Some(read_failed(&e)),
                    Some(Ok(v)) => v.unwrap_or(0),
                    None => 0,
                };
                self.offsets.insert(name.clone(), stored);
                stored
            }
        };
        if seq <= current {
            return Some(EventResult::Duplicate);
        }
        self.offsets.insert(name.clone(), seq);
        if self.persistence.is_some() {
            staged.offsets.push((name, seq));
        }
        None
    }

    /// Looks a key up in memory, then in the store (loading it into memory).
    /// A failed store read is an error, never "absent".
    fn load(&mut self, key: &str) -> Result<Option<&mut Entry>, StoreError> {
        if !self.map.contains_key(key) {
            let loaded = match self.persistence.as_mut() {
                Some(p) => p.load(key)?,
                None => None,
            };
            let Some(entry) = loaded else {
                return Ok(None);
            };
            self.map.insert(CompactString::from(key), entry);
        }
        match self.map.get_mut(key) {
            Some(e) => {
                e.hot = true;
                Ok(Some(e))
            }
            None => Ok(None),
        }
    }

    /// Applies one event; returns its result and, when it changed the key,
    /// the change for watchers. `taken`: the event's operand, when the
    /// caller owned the event and took it out (see [`ops::apply_taking`]).
    pub fn apply(
        &mut self,
        event: &Event,
        taken: Option<Option<Value>>,
        now_ms: u64,
        staged: &mut StagedBatch,
        want_change: bool,
    ) -> (EventResult, Option<Change>) {
        if !self.settings.apply_delay.is_zero() {
            if self.settings.apply_delay_busy {
                busy_wait(self.settings.apply_delay);
            } else {
                std::thread::sleep(self.settings.apply_delay);
            }
        }
        if let Some(id) = &event.id {
            match self.is_duplicate(&event.key, id, now_ms) {
                Ok(false) => {}
                Ok(true) => return (EventResult::Duplicate, None),
                Err(e) => return (read_failed(&e), None),
            }
        }
        let custom = match &event.op {
            Op::Custom(name) => match self.settings.custom_ops.get(name) {
                Some(f) => Some(Arc::clone(f)),
                None => {
                    return (
                        EventResult::rejected(
                            crate::event::RejectCode::UnknownOp,
                            format!("unknown op {name:?}"),
                        ),
                        None,
                    );
                }
            },
            _ => None,
        };
        self.apply_resolved(event, taken, custom, now_ms, staged, want_change, true)
    }

    /// [`apply`](Self::apply) once the op is resolved. `may_load`: on a
    /// memory miss, read the key from the store once and retry.
    #[allow(clippy::too_many_arguments)]
    fn apply_resolved(
        &mut self,
        event: &Event,
        taken: Option<Option<Value>>,
        custom: Option<CustomOp>,
        now_ms: u64,
        staged: &mut StagedBatch,
        want_change: bool,
        may_load: bool,
    ) -> (EventResult, Option<Change>) {
        let key: &str = &event.key;
        let outcome = match self.map.get_mut(key) {
            // Cold: not in memory, maybe in the store. One lookup on the hot
            // path; the store read happens only on a miss.
            None if may_load && self.persistence.is_some() => {
                match self.persistence.as_mut().map(|p| p.load(key)) {
                    // Never "absent": that would start the key over at
                    // version 1 and log it (issue 16).
                    Some(Err(e)) => return (read_failed(&e), None),
                    Some(Ok(Some(loaded))) => {
                        self.map.insert(CompactString::from(key), loaded);
                    }
                    Some(Ok(None)) | None => {}
                }
                return self.apply_resolved(
                    event,
                    taken,
                    custom,
                    now_ms,
                    staged,
                    want_change,
                    false,
                );
            }
            // Hot path: one lookup, the value changed in place.
            Some(e) if e.is_live(now_ms) => {
                if let Some(expected) = event.if_version
                    && expected != e.version
                {
                    return (
                        EventResult::Conflict {
                            current_version: e.version,
                        },
                        None,
                    );
                }
                let growth = crate::limits::growth_bound(
                    event,
                    match &taken {
                        Some(taken) => taken.as_ref(),
                        None => event.value.as_ref(),
                    },
                );
                let (applied, bound) = apply_sized(
                    &self.settings.limits,
                    &mut e.value,
                    e.size_bound,
                    growth,
                    |target| match taken {
                        Some(operand) => ops::apply_taking(target, event, operand, custom.as_ref()),
                        None => ops::apply(target, event, custom.as_ref()),
                    },
                );
                e.size_bound = bound;
                match applied {
                    Ok(()) => {
                        if e.value.is_some() {
                            e.version += 1;
                            if let Some(ttl) = event.ttl_s {
                                e.expires_at = Some(expiry(now_ms, ttl));
                            }
                        } else {
                            e.version = 0;
                            e.expires_at = None;
                        }
                        e.updated_at = now_ms;
                        e.hot = true;
                        if let Some(p) = self.persistence.as_mut() {
                            staged.touch(key, e);
                            p.dirty(key, e);
                        }
                        Ok(e.version)
                    }
                    Err(r) => Err(r),
                }
            }
            // Absent, deleted or expired: start from nothing.
            existing => {
                if let Some(expected) = event.if_version
                    && expected != 0
                {
                    return (EventResult::Conflict { current_version: 0 }, None);
                }
                let mut slot: Option<Value> = None;
                let growth = crate::limits::growth_bound(
                    event,
                    match &taken {
                        Some(taken) => taken.as_ref(),
                        None => event.value.as_ref(),
                    },
                );
                let (applied, bound) = apply_sized(
                    &self.settings.limits,
                    &mut slot,
                    0,
                    growth,
                    |target| match taken {
                        Some(operand) => ops::apply_taking(target, event, operand, custom.as_ref()),
                        None => ops::apply(target, event, custom.as_ref()),
                    },
                );
                match applied {
                    Ok(()) => {
                        let version = u64::from(slot.is_some());
                        let expires_at = match (event.ttl_s, &slot) {
                            (Some(ttl), Some(_)) => Some(expiry(now_ms, ttl)),
                            _ => None,
                        };
                        let target = match existing {
                            // A tombstone or an expired entry is replaced in
                            // place (it may be dirty: its flags are kept).
                            Some(e) => {
                                e.value = slot;
                                e.size_bound = bound;
                                e.version = version;
                                e.updated_at = now_ms;
                                e.expires_at = expires_at;
                                e.hot = true;
                                Some(e)
                            }
                            None if slot.is_some() => {
                                if let Some(p) = self.persistence.as_mut() {
                                    p.inserted(key, slot.as_ref());
                                }
                                let mut fresh = Entry::fresh(slot, version, now_ms, expires_at);
                                fresh.size_bound = bound;
                                Some(self.map.entry(CompactString::from(key)).or_insert(fresh))
                            }
                            None => None,
                        };
                        if let (Some(e), Some(p)) = (target, self.persistence.as_mut()) {
                            staged.touch(key, e);
                            p.dirty(key, e);
                        }
                        Ok(version)
                    }
                    Err(r) => Err(r),
                }
            }
        };
        match outcome {
            Ok(version) => {
                if let Some(id) = &event.id {
                    let exp = now_ms.saturating_add(self.settings.dedup_window.as_millis() as u64);
                    // Without a store nothing waits for a checkpoint.
                    let confirmed = self
                        .persistence
                        .as_ref()
                        .map_or(u64::MAX, ShardPersistence::confirmed_seq);
                    self.dedup.insert(
                        key,
                        id,
                        exp,
                        self.settings.max_dedup_ids,
                        staged.seq,
                        confirmed,
                    );
                    if self.persistence.is_some() {
                        staged.dedup(key, id, exp);
                    }
                }
                let change = want_change.then(|| Change {
                    key: key.to_owned(),
                    op: event.op.clone(),
                    value: self.map.get(key).and_then(|e| e.value.clone()),
                    version,
                    updated_at: now_ms,
                });
                (EventResult::Applied { version }, change)
            }
            Err(rejection) => (rejection.into(), None),
        }
    }

    /// A failed store read is an error, never "not seen".
    fn is_duplicate(&mut self, key: &str, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        if self.dedup.contains(key, id, now_ms) {
            return Ok(true);
        }
        match self.persistence.as_mut() {
            Some(p) => p.seen_id(key, id, now_ms),
            None => Ok(false),
        }
    }

    /// Sets `key` to `state` as given (`None` = absent), marking it for the
    /// log and the next checkpoint.
    pub fn install(&mut self, key: &str, state: Option<StateRecord>, staged: &mut StagedBatch) {
        let entry = match state {
            Some(r) => Entry::fresh(Some(r.value), r.version, r.updated_at, r.expires_at),
            None => Entry::fresh(None, 0, now_ms(), None),
        };
        let had = self.map.contains_key(key);
        if entry.value.is_none() && !had && self.persistence.is_none() {
            return;
        }
        if let Some(p) = self.persistence.as_mut()
            && !had
        {
            p.inserted(key, entry.value.as_ref());
        }
        let slot = self
            .map
            .entry(CompactString::from(key))
            .or_insert(entry.clone());
        let dirty = slot.dirty;
        *slot = entry;
        slot.dirty = dirty;
        if let Some(p) = self.persistence.as_mut() {
            staged.touch(key, slot);
            p.dirty(key, slot);
        } else if slot.value.is_none() {
            self.map.remove(key);
        }
    }

    /// The live record of `key`, if any.
    pub fn get(&mut self, key: &str, now_ms: u64) -> Result<Option<StateRecord>, StoreError> {
        let Some(e) = self.load(key)? else {
            return Ok(None);
        };
        if !e.is_live(now_ms) {
            return Ok(None);
        }
        Ok(Some(StateRecord {
            key: key.to_owned(),
            value: e.value.clone().unwrap_or(Value::Null),
            version: e.version,
            updated_at: e.updated_at,
            expires_at: e.expires_at,
        }))
    }

    /// What the shard's memory says about keys with `prefix` after `after`:
    /// its first `limit` live records in key order, and every key it holds
    /// that is *not* live (deleted or expired) — those hide older states the
    /// store may still have. The engine merges this with one store scan.
    pub fn scan(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> ScanPart {
        let mut live: Vec<(&CompactString, &Entry)> = Vec::new();
        let mut hidden = Vec::new();
        for (k, e) in &self.map {
            if !k.starts_with(prefix) || after.is_some_and(|a| k.as_str() <= a) {
                continue;
            }
            if e.is_live(now_ms) {
                live.push((k, e));
            } else {
                hidden.push(k.to_string());
            }
        }
        live.sort_unstable_by(|a, b| a.0.cmp(b.0));
        live.truncate(limit);
        ScanPart {
            live: live
                .into_iter()
                .map(|(k, e)| StateRecord {
                    key: k.to_string(),
                    value: e.value.clone().unwrap_or(Value::Null),
                    version: e.version,
                    updated_at: e.updated_at,
                    expires_at: e.expires_at,
                })
                .collect(),
            hidden,
        }
    }

    /// Background upkeep between batches: expiry of dedup ids.
    pub fn housekeeping(&mut self, now_ms: u64) {
        self.dedup.expire(now_ms);
    }
}

/// [`Entry::size_bound`] when the value's size is not known.
pub(crate) const SIZE_UNKNOWN: u16 = u16::MAX;

/// The unit of [`Entry::size_bound`], in bytes.
const SIZE_UNIT: usize = 64;

/// How often a shard expires TTL'd keys from memory, evicts from its hot-key
/// cache and checks whether a checkpoint is due. Expired keys are already
/// invisible to reads and a checkpoint is also due by batch count, so this
/// only bounds how long memory and the log stay over budget: a second is
/// short against both and costs nothing measurable per batch.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

/// The `queue_filling` warning fires when a queue holds at least this
/// percentage of its capacity in events: 80 % leaves the operator the last
/// fifth of the queue (at the arrival rate the warning logs) before
/// `overloaded` refusals start.
const FILLING_WARNING_PERCENT: usize = 80;

/// At most one `queue_filling` warning per shard this often: a queue that
/// stays full would otherwise log at every control tick.
const FILLING_WARNING_EVERY: Duration = Duration::from_secs(1);

/// [`apply_bounded`](crate::limits::apply_bounded) without measuring the
/// whole value on every event: `bound` is an upper bound of the value's
/// estimated size (`SIZE_UNKNOWN`: not known, measured here once). While
/// `bound` plus the event's growth bound fits under `max_value_bytes`, the
/// event is applied in place (the value cannot outgrow the limit) and the
/// bound grows by that growth; otherwise `apply_bounded` decides (it
/// measures, and near the limit applies to a copy). Returns the outcome and
/// the value's new bound. Invariant: the bound never falls below the value's
/// estimated size, because `growth_bound` bounds what one event adds.
fn apply_sized(
    limits: &crate::limits::Limits,
    slot: &mut Option<Value>,
    bound: u16,
    growth: crate::limits::Growth,
    apply: impl FnOnce(&mut Option<Value>) -> Result<(), crate::limits::Rejection>,
) -> (Result<(), crate::limits::Rejection>, u16) {
    let crate::limits::Growth::AtMost(grows) = growth else {
        return (
            crate::limits::apply_bounded(limits, slot, growth, apply),
            SIZE_UNKNOWN,
        );
    };
    let now = if bound == SIZE_UNKNOWN {
        slot.as_ref().map_or(0, crate::limits::approx_value_bytes)
    } else {
        usize::from(bound) * SIZE_UNIT
    };
    let after = now.saturating_add(grows);
    if after <= limits.max_value_bytes {
        let result = apply(slot);
        let known = |b: usize| {
            u16::try_from(b.div_ceil(SIZE_UNIT))
                .ok()
                .filter(|&b| b != SIZE_UNKNOWN)
                .unwrap_or(SIZE_UNKNOWN)
        };
        let bound = if result.is_ok() {
            known(after)
        } else {
            known(now)
        };
        return (result, bound);
    }
    (
        crate::limits::apply_bounded(limits, slot, growth, apply),
        SIZE_UNKNOWN,
    )
}

/// A sub-batch's view of its submission's events.
enum Events<'a> {
    /// The last reference: the events may be consumed.
    Owned(&'a mut Vec<Event>),
    /// Shared with other shards' sub-batches: read only.
    Shared(&'a Vec<Event>),
    /// Unreachable (the reference was unique a moment ago).
    Gone,
}

/// The answer to an event whose store read failed: refused, never applied
/// as if the key, id or source position were absent (issue 16).
fn read_failed(e: &StoreError) -> EventResult {
    EventResult::rejected(
        crate::event::RejectCode::StoreUnavailable,
        format!("reading the store failed: {e}"),
    )
}

fn expiry(now_ms: u64, ttl_s: u64) -> u64 {
    now_ms.saturating_add(ttl_s.saturating_mul(1000))
}

fn busy_wait(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Everything the worker thread owns.
pub(crate) struct ShardWorker {
    /// The shard's index.
    pub id: usize,
    pub state: ShardState,
    /// The queue-wait window and (when enabled) the capacity controller.
    pub controller: crate::adaptive::AdaptiveCapacity,
    /// Whether the controller's decisions are applied.
    pub adaptive: bool,
    /// Counters of the current control interval.
    interval: crate::adaptive::IntervalCounters,
    /// Queue counters at the start of the interval (enqueued, refused+dropped).
    interval_base: (u64, u64),
    /// Origin of the controller's clock.
    epoch: Instant,
    /// Last `queue_filling` warning (rate limit: [`FILLING_WARNING_EVERY`]).
    last_filling_warning: Option<Instant>,
    pub collector: BatchCollector<SubBatch>,
    pub requests: mpsc::Receiver<ShardRequest>,
    pub changes: broadcast::Sender<Arc<Change>>,
    pub metrics: Arc<ShardMetrics>,
    pub applied_total: Arc<AtomicU64>,
}

impl ShardWorker {
    /// The worker of shard `id`; its own clocks and interval counters start
    /// now (the caller never sets them).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        state: ShardState,
        controller: crate::adaptive::AdaptiveCapacity,
        adaptive: bool,
        collector: BatchCollector<SubBatch>,
        requests: mpsc::Receiver<ShardRequest>,
        changes: broadcast::Sender<Arc<Change>>,
        metrics: Arc<ShardMetrics>,
        applied_total: Arc<AtomicU64>,
    ) -> Self {
        ShardWorker {
            id,
            state,
            controller,
            adaptive,
            interval: crate::adaptive::IntervalCounters::default(),
            interval_base: (0, 0),
            epoch: Instant::now(),
            last_filling_warning: None,
            collector,
            requests,
            changes,
            metrics,
            applied_total,
        }
    }

    /// Runs until the queue is closed and drained and the request channel is
    /// closed.
    pub async fn run(mut self) {
        let mut requests_open = true;
        let control_interval = self.controller.config().interval;
        let start = tokio::time::Instant::now();
        let mut next_control = start + control_interval;
        let mut next_housekeeping = start + HOUSEKEEPING_INTERVAL;
        let mut next_periodic = next_control.min(next_housekeeping);
        loop {
            tokio::select! {
                biased;
                req = self.requests.recv(), if requests_open => match req {
                    Some(req) => self.serve(req),
                    None => requests_open = false,
                },
                batch = self.collector.next_batch() => match batch {
                    Some(batch) => self.apply_batch(batch),
                    None => break,
                },
                // Idle: wake for the periodic work even when no batch comes.
                _ = tokio::time::sleep_until(next_periodic) => {}
            }
            // The periodic work is driven by the clock here, after whatever
            // woke the loop: under sustained load the collector is always
            // ready and the loop never yields to the runtime, so a timer
            // branch would never fire (the controller and the stats window
            // would freeze exactly when they matter).
            let now = tokio::time::Instant::now();
            if now >= next_control {
                next_control = now + control_interval;
                self.control_tick();
            }
            if now >= next_housekeeping {
                next_housekeeping = now + HOUSEKEEPING_INTERVAL;
                let now_ms = now_ms();
                self.state.housekeeping(now_ms);
                if let Some(p) = self.state.persistence.as_mut()
                    && p.checkpoint_due()
                {
                    p.checkpoint(&mut self.state.map);
                }
            }
            next_periodic = next_control.min(next_housekeeping);
        }
        // Serve reads that raced the close, then hand over what is left.
        while let Ok(req) = self.requests.try_recv() {
            self.serve(req);
        }
        if let Some(p) = self.state.persistence.as_mut() {
            p.shutdown(&mut self.state.map);
        }
    }

    fn serve(&mut self, req: ShardRequest) {
        let now = now_ms();
        match req {
            ShardRequest::Get { key, reply } => {
                let _ = reply.send(self.state.get(&key, now));
            }
            ShardRequest::Restore(batch) => self.restore(batch),
            ShardRequest::Scan {
                prefix,
                after,
                limit,
                reply,
            } => {
                let _ = reply.send(self.state.scan(&prefix, after.as_deref(), limit, now));
            }
        }
    }

    /// Installs states verbatim, logged and committed like a batch; the
    /// reply waits for the fsync when the engine has a store.
    fn restore(&mut self, batch: RestoreBatch) {
        let mut staged = match self.state.persistence.as_mut() {
            Some(p) => p.begin(),
            None => StagedBatch::default(),
        };
        let mut results = Vec::with_capacity(batch.items.len());
        for (key, state) in batch.items {
            let version = state.as_ref().map_or(0, |r| r.version);
            self.state.install(&key, state, &mut staged);
            results.push(EventResult::Applied { version });
        }
        let n = results.len() as u64;
        match self.state.persistence.as_mut() {
            Some(p) => p.commit(staged, n, vec![(batch.reply, results)]),
            None => {
                let _ = batch.reply.send(results);
            }
        }
    }

    /// End of a control interval: feed the controller, apply its decision,
    /// publish the window's percentiles and rates.
    fn control_tick(&mut self) {
        let now = self.epoch.elapsed();
        let queue = self.collector.queue();
        let snap = queue.snapshot();
        let refused_total = snap.rejected + snap.dropped;
        self.interval.arrived = snap.enqueued.saturating_sub(self.interval_base.0);
        self.interval.refused = refused_total.saturating_sub(self.interval_base.1);
        self.interval.peak_depth = queue.take_interval_peak();
        self.interval_base = (snap.enqueued, refused_total);
        let counters = std::mem::take(&mut self.interval);
        // Read the window before the decision (a change empties it).
        let p50 = self.controller.wait_quantile(now, 0.50).unwrap_or_default();
        let p95 = self.controller.wait_quantile(now, 0.95).unwrap_or_default();
        let decision = self.controller.tick(now, counters);
        let m = &self.metrics;
        m.recent_wait_p50_us
            .store(p50.as_micros() as u64, Ordering::Relaxed);
        m.recent_wait_p95_us
            .store(p95.as_micros() as u64, Ordering::Relaxed);
        let interval_s = self.controller.config().interval.as_secs_f64().max(1e-6);
        let arrival_rate = counters.arrived as f64 / interval_s;
        m.arrival_rate.store(arrival_rate as u64, Ordering::Relaxed);
        let service_rate = if counters.busy > Duration::ZERO {
            counters.served as f64 / counters.busy.as_secs_f64()
        } else {
            0.0
        };
        if service_rate > 0.0 {
            m.service_rate.store(service_rate as u64, Ordering::Relaxed);
        }
        if snap.depth_events.saturating_mul(100)
            >= snap.capacity_events.saturating_mul(FILLING_WARNING_PERCENT)
            && self
                .last_filling_warning
                .is_none_or(|t| t.elapsed() >= FILLING_WARNING_EVERY)
        {
            self.last_filling_warning = Some(Instant::now());
            tracing::warn!(
                shard = self.id,
                depth = snap.depth_events,
                capacity = snap.capacity_events,
                arrival_rate,
                service_rate,
                "queue_filling"
            );
        }
        if self.adaptive
            && let Some(d) = decision
        {
            queue.set_capacity(d.to);
            m.capacity_changes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                shard = self.id,
                from = d.from,
                to = d.to,
                p95_wait_ms = d.p95_wait.as_secs_f64() * 1e3,
                target_ms = self.controller.config().target.as_secs_f64() * 1e3,
                arrival_rate = d.arrival_rate,
                service_rate = d.service_rate,
                "capacity_adjusted"
            );
        }
    }

    fn apply_batch(&mut self, batch: crate::batch::Batch<SubBatch>) {
        let started = Instant::now();
        let now = now_ms();
        let want_changes = self.changes.receiver_count() > 0;
        let mut staged = match self.state.persistence.as_mut() {
            Some(p) => p.begin(),
            None => StagedBatch::default(),
        };
        let mut durable_replies = Vec::new();
        let mut waits = Vec::with_capacity(batch.items.len());
        let mut applied = 0u64;
        for item in batch.items {
            waits.push((
                started.saturating_duration_since(item.enqueued_at),
                item.events,
            ));
            let mut sub = item.payload;
            let mut results = Vec::with_capacity(sub.indices.len());
            // When this sub-batch holds the submission's last reference (the
            // other shards are done with it), its events are this shard's to
            // consume: operands are moved into the state, not cloned.
            let mut events = if Arc::get_mut(&mut sub.submission).is_some() {
                match Arc::get_mut(&mut sub.submission) {
                    Some(owned) => Events::Owned(owned),
                    None => Events::Gone,
                }
            } else {
                Events::Shared(&sub.submission)
            };
            for &i in &sub.indices {
                let (event, taken) = match &mut events {
                    Events::Owned(owned) => match owned.get_mut(i as usize) {
                        Some(e) => {
                            let taken = ops::takes_operand(e).then(|| e.value.take());
                            (&*e, taken)
                        }
                        None => continue,
                    },
                    Events::Shared(shared) => match shared.get(i as usize) {
                        Some(e) => (e, None),
                        None => continue,
                    },
                    Events::Gone => continue,
                };
                if let Some(src) = &sub.source
                    && let Some(&seq) = src.seqs.get(i as usize)
                    && seq > 0
                    && let Some(answer) = self.state.source_seen(&src.name, seq, &mut staged)
                {
                    results.push(answer);
                    continue;
                }
                let (result, change) =
                    self.state
                        .apply(event, taken, now, &mut staged, want_changes);
                if result.is_applied() {
                    applied += 1;
                }
                if let Some(change) = change {
                    let _ = self.changes.send(Arc::new(change));
                }
                results.push(result);
            }
            self.metrics.count_results(&results);
            match (sub.ack, sub.reply) {
                (_, None) => {}
                (AckMode::Durable, Some(reply)) if self.state.persistence.is_some() => {
                    durable_replies.push((reply, results));
                }
                (_, Some(reply)) => {
                    let _ = reply.send(results);
                }
            }
        }
        let apply_time = started.elapsed();
        let now = self.epoch.elapsed();
        for (wait, n) in &waits {
            self.controller.sample(now, *wait, *n as u64);
        }
        self.interval.served += batch.events as u64;
        self.interval.busy += apply_time;
        if let Some(p) = self.state.persistence.as_mut() {
            p.commit(staged, batch.events as u64, durable_replies);
            if p.checkpoint_due() {
                p.checkpoint(&mut self.state.map);
            }
            p.evict(&mut self.state.map);
        }
        self.applied_total.fetch_add(applied, Ordering::Relaxed);
        self.metrics.record_batch(batch.events, &waits, apply_time);
        self.metrics
            .cached_keys
            .store(self.state.map.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    /// The hot table's bucket is the key (24 bytes inline) plus an
    /// [`Entry`](super::Entry): every byte added to the entry is paid by
    /// every lookup's cache misses (W1/W6). 80 bytes is what it was before
    /// issue 20 added the image offset and the size bound.
    #[test]
    fn an_entry_stays_80_bytes() {
        assert!(
            std::mem::size_of::<super::Entry>() <= 80,
            "Entry is {} bytes",
            std::mem::size_of::<super::Entry>()
        );
    }
}
