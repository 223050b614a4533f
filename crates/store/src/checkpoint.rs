//! Checkpoints: materializing coalesced key states, dedup ids and offsets into
//! the store, and dropping the log records they cover — in one atomic batch.
//!
//! Invariant: a checkpoint of shard `s` up to seq `n` ends with **one** fjall
//! write batch holding the last states, the dedup ids, the offsets,
//! `meta ckpt/<s> = n` and the deletion of `s`'s log records with seq ≤ `n`.
//! A large checkpoint commits its earlier states ahead of it in parts of at
//! most [`PART_STATES`] keys / [`PART_BYTES`] bytes (so no batch holds fjall's
//! journal — shared with the log's appends and fsyncs — for long). Nothing is
//! fsynced here: the next [`Store::sync`] covers it. That is safe because
//! fjall's journal is replayed as a prefix of whole batches: if a crash loses
//! the final batch, it loses the deletion of the log records with it, and
//! recovery replays those records over whatever parts survived (each key in
//! a part was changed by one of them; replay overwrites in seq order) — same
//! state, no gap.
//!
//! The expiry index (`expiry` keyspace, `expires_at ++ kind ++ key`) is kept
//! here: a state or dedup id with an expiry gets an index entry in the same
//! batch. When a key's expiry *changes*, the old entry is deleted (one point
//! read per TTL key; keys without TTL pay nothing). When a TTL key is deleted
//! or loses its TTL, its old entry stays and is dropped by the sweep when it
//! comes due, after checking it no longer matches.

use crate::{
    error::{Result, StoreError},
    fault::Fault,
    keys,
    record::DedupEntry,
    state::{KeyState, encode_state, encoded_state_len, peek_expires_at},
    store::{Inner, Store, check_id, check_key},
};
use std::{borrow::Borrow, collections::HashMap, sync::MutexGuard, time::Duration};

/// What a checkpoint (or a recovery chunk) wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Keys whose state was written.
    pub states_written: usize,
    /// Keys deleted.
    pub keys_deleted: usize,
    /// Idempotency ids written.
    pub dedup_written: usize,
    /// Offsets that moved forward.
    pub offsets_written: usize,
    /// Log records deleted.
    pub log_records_deleted: usize,
    /// Bytes of encoded state written.
    pub state_bytes: u64,
    /// Wall time from `begin_checkpoint` to the end of the commit.
    pub duration: Duration,
}

/// A checkpoint commits its states in parts of at most this many keys...
pub const PART_STATES: usize = 4_096;
/// ...or this many bytes of encoded state, whichever comes first (see
/// [`Checkpoint::state`]); the final part carries the ids, offsets, the
/// checkpoint position and the log deletions.
pub const PART_BYTES: usize = 1 << 20;

/// A key and the range of its encoded state in the arena (`None` = delete).
type PendingState = (Box<str>, Option<(usize, usize)>);

/// Accumulates one atomic batch of materialized writes.
///
/// States, dedup ids and expiry-index entries are buffered and handed to fjall
/// sorted by key at commit: fjall's memtable takes sorted inserts about 4×
/// faster than the hash order an engine's dirty map comes in (measured with
/// `examples/logbench.rs`: 100k keys in ~50 ms sorted vs ~185 ms shuffled).
pub(crate) struct Materializer<'a> {
    inner: &'a Inner,
    batch: fjall::OwnedWriteBatch,
    /// Encoded states, back to back; `states` holds ranges into it.
    arena: Vec<u8>,
    /// Key and encoded-state range (`None` = delete), in arrival order.
    states: Vec<PendingState>,
    /// Dedup key and expiry.
    dedup: Vec<(Vec<u8>, u64)>,
    /// Expiry index keys to insert (`true`) or remove (`false`).
    index: Vec<(Vec<u8>, bool)>,
    /// Offsets already merged into this batch (for max-merge within it).
    offsets: HashMap<String, u64>,
    pub(crate) report: CheckpointReport,
}

impl<'a> Materializer<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Self {
            inner,
            batch: inner.db.batch(),
            arena: Vec::new(),
            states: Vec::new(),
            dedup: Vec::new(),
            index: Vec::new(),
            offsets: HashMap::new(),
            report: CheckpointReport::default(),
        }
    }

    pub(crate) fn state(&mut self, key: &str, state: Option<&KeyState>) -> Result<()> {
        check_key(key)?;
        let Some(s) = state else {
            self.states.push((key.into(), None));
            self.report.keys_deleted += 1;
            return Ok(());
        };
        self.index_expiry(key, s.expires_at)?;
        let start = self.arena.len();
        encode_state(s, &mut self.arena);
        self.push_state(key, start);
        Ok(())
    }

    /// [`state`](Self::state) from an already encoded state (e.g. the
    /// after-image bytes of a log record): copied, not decoded.
    pub(crate) fn state_encoded(&mut self, key: &str, encoded: Option<&[u8]>) -> Result<()> {
        check_key(key)?;
        let Some(bytes) = encoded else {
            self.states.push((key.into(), None));
            self.report.keys_deleted += 1;
            return Ok(());
        };
        if encoded_state_len(bytes)? != bytes.len() {
            return Err(StoreError::Corrupt {
                what: format!("encoded state of key {key:?} has trailing bytes"),
            });
        }
        self.index_expiry(key, peek_expires_at(bytes)?)?;
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        self.push_state(key, start);
        Ok(())
    }

    fn push_state(&mut self, key: &str, start: usize) {
        self.report.state_bytes += (self.arena.len() - start) as u64;
        self.states
            .push((key.into(), Some((start, self.arena.len()))));
        self.report.states_written += 1;
    }

    /// Expiry-index upkeep for a state being written with expiry `expires_at`.
    fn index_expiry(&mut self, key: &str, expires_at: Option<u64>) -> Result<()> {
        if let Some(exp) = expires_at {
            let old = self
                .inner
                .state
                .get(key)
                .map_err(|e| StoreError::fjall("reading a key's old expiry", e))?;
            let old_exp = match old {
                Some(old) => peek_expires_at(&old)?,
                None => None,
            };
            if let Some(old_exp) = old_exp.filter(|&o| o != exp) {
                self.index.push((
                    keys::expiry_key(old_exp, keys::EXPIRY_STATE, key.as_bytes()),
                    false,
                ));
            }
            self.index.push((
                keys::expiry_key(exp, keys::EXPIRY_STATE, key.as_bytes()),
                true,
            ));
        }
        Ok(())
    }

    pub(crate) fn dedup(&mut self, key: &str, id: &str, expires_at: u64) -> Result<()> {
        check_key(key)?;
        check_id(id)?;
        let dk = keys::dedup_key(key, id);
        self.index
            .push((keys::expiry_key(expires_at, keys::EXPIRY_DEDUP, &dk), true));
        self.dedup.push((dk, expires_at));
        self.report.dedup_written += 1;
        Ok(())
    }

    /// Offsets only move forward: the highest value written for a name wins,
    /// whichever shard wrote it, so replay order across shards does not matter.
    pub(crate) fn offset(&mut self, name: &str, seq: u64) -> Result<()> {
        let current = match self.offsets.get(name) {
            Some(&v) => Some(v),
            None => self
                .inner
                .meta
                .get(keys::offset_key(name))
                .map_err(|e| StoreError::fjall("reading an offset", e))?
                .map(|v| keys::u64_value(&v, "offset"))
                .transpose()?,
        };
        if current.is_some_and(|c| c >= seq) {
            return Ok(());
        }
        self.batch
            .insert(&self.inner.meta, keys::offset_key(name), seq.to_be_bytes());
        self.offsets.insert(name.to_owned(), seq);
        self.report.offsets_written += 1;
        Ok(())
    }

    pub(crate) fn delete_log(&mut self, shard: u16, seq: u64) {
        self.batch
            .remove(&self.inner.log, keys::log_key(shard, seq));
        self.report.log_records_deleted += 1;
    }

    pub(crate) fn set_ckpt(&mut self, shard: u16, seq: u64) {
        self.batch
            .insert(&self.inner.meta, keys::ckpt_key(shard), seq.to_be_bytes());
    }

    pub(crate) fn set_hwm(&mut self, seq: u64) {
        self.batch
            .insert(&self.inner.meta, keys::META_HWM, seq.to_be_bytes());
    }

    /// Commits the batch atomically (no fsync). A failure poisons the store.
    pub(crate) fn commit(mut self, fault: Fault, op: &'static str) -> Result<CheckpointReport> {
        self.write_part(fault, op)?;
        Ok(self.report)
    }

    /// States (with their expiry-index entries) buffered so far, and bytes.
    pub(crate) fn buffered(&self) -> (usize, usize) {
        (self.states.len(), self.arena.len())
    }

    /// Commits what is buffered as one atomic batch (no fsync) and starts an
    /// empty one; the report keeps counting. A failure poisons the store.
    pub(crate) fn write_part(&mut self, fault: Fault, op: &'static str) -> Result<()> {
        let inner = self.inner;
        let batch = std::mem::replace(&mut self.batch, inner.db.batch());
        let arena = std::mem::take(&mut self.arena);
        let states = std::mem::take(&mut self.states);
        let dedup = std::mem::take(&mut self.dedup);
        let index = std::mem::take(&mut self.index);
        Self::fill_and_commit(inner, batch, &arena, states, dedup, index, fault, op)
    }

    #[allow(clippy::too_many_arguments)]
    fn fill_and_commit(
        inner: &Inner,
        mut batch: fjall::OwnedWriteBatch,
        arena: &[u8],
        mut states: Vec<PendingState>,
        mut dedup: Vec<(Vec<u8>, u64)>,
        mut index: Vec<(Vec<u8>, bool)>,
        fault: Fault,
        op: &'static str,
    ) -> Result<()> {
        // Stable sort, then keep the last of equal keys: a key given twice
        // (against `Checkpoint::state`'s contract) still has a defined result
        // — the later state — instead of two writes at one fjall seqno.
        states.sort_by(|a, b| a.0.cmp(&b.0));
        let mut states = states.into_iter().peekable();
        while let Some((key, range)) = states.next() {
            if states.peek().is_some_and(|next| next.0 == key) {
                continue;
            }
            match range.and_then(|(a, b)| arena.get(a..b)) {
                Some(bytes) => batch.insert(&inner.state, &*key, bytes),
                None => batch.remove(&inner.state, &*key),
            }
        }
        dedup.sort_unstable();
        let mut dedup = dedup.into_iter().peekable();
        while let Some((dk, exp)) = dedup.next() {
            // The same id twice: keep the latest expiry (sorted last).
            if dedup.peek().is_some_and(|next| next.0 == dk) {
                continue;
            }
            batch.insert(&inner.dedup, dk, exp.to_be_bytes());
        }
        index.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, insert) in index {
            if insert {
                batch.insert(&inner.expiry, k, b"");
            } else {
                batch.remove(&inner.expiry, k);
            }
        }
        inner.write(fault, op, || batch.commit())?;
        Ok(())
    }
}

/// A checkpoint being built: add the shard's coalesced dirty keys, dedup ids
/// and offsets, then [`commit`](Self::commit). Holds the store's materialize
/// lock (checkpoints and sweeps run one at a time; appends and reads go on).
/// Dropping it without committing writes nothing more (parts of a large
/// checkpoint already committed stay; see the module docs for why that is
/// safe). Not `Send` (it holds a
/// lock guard): build and commit it on one thread.
pub struct Checkpoint<'s> {
    shard: u16,
    upto_seq: u64,
    /// Parts committed ahead of the final batch (see `maybe_write_part`).
    parts: usize,
    started: std::time::Instant,
    m: Materializer<'s>,
    _materialize: MutexGuard<'s, ()>,
}

impl Checkpoint<'_> {
    /// Materializes `key`'s state after seq `upto_seq` (`None` = deleted).
    /// Give each key once; if a key comes twice, the later state wins.
    ///
    /// # Errors
    ///
    /// [`StoreError::TooLong`]; read errors while maintaining the expiry index.
    pub fn state(&mut self, key: &str, state: Option<&KeyState>) -> Result<()> {
        self.m.state(key, state)?;
        self.maybe_write_part()
    }

    /// Paces a large checkpoint: once [`PART_STATES`] states or
    /// [`PART_BYTES`] bytes are buffered, they are committed as a batch of
    /// their own, so no single batch holds fjall's journal (which the log's
    /// appends and fsyncs share) for long, and each fsync after it carries
    /// at most one part. Safe without the final batch: a key written here
    /// was changed by a log record above the shard's current checkpoint,
    /// and those records stay until the final batch deletes them, so a
    /// crash in between replays them over these states (blind overwrites,
    /// seq order) and ends in the same place.
    fn maybe_write_part(&mut self) -> Result<()> {
        let (states, bytes) = self.m.buffered();
        if states >= PART_STATES || bytes >= PART_BYTES {
            self.m
                .write_part(Fault::Checkpoint, "committing part of a checkpoint")?;
            self.parts += 1;
            // Let the committer's append and fsync in between the parts.
            std::thread::yield_now();
        }
        Ok(())
    }

    /// [`state`](Self::state) given as its encoded bytes (exactly one state
    /// as [`encode_state`](crate::encode_state) writes it, e.g. the
    /// after-image a [`RecordBuilder::put`](crate::RecordBuilder::put) wrote
    /// into a log record): stored as they are, without decoding the value.
    ///
    /// # Errors
    ///
    /// [`StoreError::TooLong`]; [`StoreError::Corrupt`] if `encoded` is not
    /// exactly one encoded state; read errors while maintaining the expiry
    /// index.
    pub fn state_encoded(&mut self, key: &str, encoded: Option<&[u8]>) -> Result<()> {
        self.m.state_encoded(key, encoded)?;
        self.maybe_write_part()
    }

    /// Records idempotency id `id` on `key`, valid until `expires_at` (ms).
    ///
    /// # Errors
    ///
    /// [`StoreError::TooLong`].
    pub fn dedup(&mut self, key: &str, id: &str, expires_at: u64) -> Result<()> {
        self.m.dedup(key, id, expires_at)
    }

    /// Records source position `seq` of `name` (kept only if it moves forward).
    ///
    /// # Errors
    ///
    /// Read errors.
    pub fn offset(&mut self, name: &str, seq: u64) -> Result<()> {
        self.m.offset(name, seq)
    }

    /// Writes everything, `meta ckpt/<shard> = upto_seq` and the deletion of
    /// the shard's log records with seq ≤ `upto_seq`, as one atomic batch.
    ///
    /// # Errors
    ///
    /// [`StoreError::Poisoned`]; an I/O or fjall error, which poisons the store.
    pub fn commit(self) -> Result<CheckpointReport> {
        let Self {
            shard,
            upto_seq,
            parts,
            started,
            mut m,
            _materialize,
        } = self;
        let inner = m.inner;
        let (covered, ckpt) = {
            let shards = inner.shards();
            let log = shards.get(&shard);
            let covered: Vec<u64> = log
                .map(|l| {
                    l.pending
                        .iter()
                        .take_while(|&&s| s <= upto_seq)
                        .copied()
                        .collect()
                })
                .unwrap_or_default();
            (covered, log.map_or(upto_seq, |l| l.ckpt.max(upto_seq)))
        };
        for &seq in &covered {
            m.delete_log(shard, seq);
        }
        m.set_ckpt(shard, ckpt);
        let mut report = m.commit(Fault::Checkpoint, "committing a checkpoint")?;
        {
            let mut shards = inner.shards();
            let log = shards.entry(shard).or_default();
            while log.pending.front().is_some_and(|&s| s <= upto_seq) {
                log.pending.pop_front();
            }
            log.ckpt = ckpt;
            log.last_appended = log.last_appended.max(inner.start_seq - 1);
        }
        report.duration = started.elapsed();
        tracing::debug!(
            shard,
            upto_seq,
            states = report.states_written,
            deleted = report.keys_deleted,
            log_records = report.log_records_deleted,
            parts = parts + 1,
            ms = report.duration.as_secs_f64() * 1e3,
            "checkpoint committed"
        );
        Ok(report)
    }
}

impl Store {
    /// Starts a checkpoint of `shard` covering its log up to `upto_seq`.
    /// Waits for a running checkpoint or sweep to finish.
    ///
    /// # Errors
    ///
    /// [`StoreError::CheckpointBeyondLog`] if `upto_seq` is above both the
    /// shard's last appended seq and the high-water mark at open (the states
    /// would claim records that were never logged); [`StoreError::Poisoned`].
    pub fn begin_checkpoint(&self, shard: u16, upto_seq: u64) -> Result<Checkpoint<'_>> {
        let inner = &*self.inner;
        inner.poison.check()?;
        let guard = inner.materialize_lock();
        let last = inner
            .shards()
            .get(&shard)
            .map_or(0, |l| l.last_appended)
            .max(inner.start_seq - 1);
        if upto_seq > last {
            return Err(StoreError::CheckpointBeyondLog {
                shard,
                upto_seq,
                last,
            });
        }
        Ok(Checkpoint {
            shard,
            upto_seq,
            parts: 0,
            started: std::time::Instant::now(),
            m: Materializer::new(inner),
            _materialize: guard,
        })
    }

    /// Checkpoints `shard` up to `upto_seq` in one atomic batch: writes the
    /// coalesced `states` (`None` = delete the key; each key at most once),
    /// the `dedup` ids and the `offsets`, sets `meta ckpt/<shard>`, and deletes
    /// the shard's log records with seq ≤ `upto_seq`. Not fsynced — the next
    /// [`sync`](Self::sync) covers it, and losing it in a crash loses the log
    /// deletions with it (see the module docs). A convenience over
    /// [`begin_checkpoint`](Self::begin_checkpoint).
    ///
    /// ```
    /// # use statecraft_store::{Store, StoreOptions, KeyState, DedupEntry};
    /// # let dir = tempfile::tempdir()?;
    /// # let (store, _) = Store::open(dir.path(), StoreOptions::default())?;
    /// let s = KeyState { value: 1.into(), version: 1, updated_at: 0, expires_at: None };
    /// store.checkpoint(0, 0, [("a", Some(&s)), ("b", None)], [] as [DedupEntry; 0], [("nats/0", 7)])?;
    /// assert_eq!(store.get("a")?, Some(s));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`begin_checkpoint`](Self::begin_checkpoint) and
    /// [`Checkpoint::commit`]; [`StoreError::TooLong`] (nothing written).
    pub fn checkpoint<K, V, E, N>(
        &self,
        shard: u16,
        upto_seq: u64,
        states: impl IntoIterator<Item = (K, Option<V>)>,
        dedup: impl IntoIterator<Item = E>,
        offsets: impl IntoIterator<Item = (N, u64)>,
    ) -> Result<CheckpointReport>
    where
        K: AsRef<str>,
        V: Borrow<KeyState>,
        E: Borrow<DedupEntry>,
        N: AsRef<str>,
    {
        let mut ck = self.begin_checkpoint(shard, upto_seq)?;
        for (k, s) in states {
            ck.state(k.as_ref(), s.as_ref().map(Borrow::borrow))?;
        }
        for d in dedup {
            let d = d.borrow();
            ck.dedup(&d.key, &d.id, d.expires_at)?;
        }
        for (name, seq) in offsets {
            ck.offset(name.as_ref(), seq)?;
        }
        ck.commit()
    }
}
