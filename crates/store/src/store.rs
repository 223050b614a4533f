//! [`Store`]: the handle the engine holds — open (with recovery), the log
//! append/sync pair of group commit, point and range reads.
//!
//! Invariants kept here:
//! - **Per-shard seqs only grow.** An append whose seq is not above the shard's
//!   last appended seq (initially the high-water mark found at open) is refused
//!   before anything is written; so a checkpoint position can never cover a
//!   record appended after it.
//! - **No success after a failure.** Every write path checks [`Poison`] first
//!   and poisons on error; reads never do either.
//! - **The log index in memory matches the `log` keyspace.** `shards` lists,
//!   per shard, the seqs appended since open and not yet deleted by a
//!   checkpoint (the log is empty right after open); checkpoints delete exactly
//!   those keys instead of scanning 40 KB records.

use crate::{
    error::{Result, StoreError},
    fault::{Fault, FaultInjector, Poison},
    keys,
    record::{LogRecord, encode_record},
    recovery::{self, RecoveryReport},
    state::{KeyState, decode_state},
    watermark::{self, Watermark},
};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::collections::BTreeMap;
use std::{
    collections::{HashMap, VecDeque},
    ops::Bound,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

/// On-disk format version written to `meta/format`.
pub const FORMAT_VERSION: u32 = 1;

/// Longest key the store accepts (bytes). fjall keys are limited to 64 KiB and
/// the dedup and expiry indexes prefix the key; the engine's own limit is 1 KiB.
pub const MAX_KEY_BYTES: usize = 32 * 1024;

/// Longest idempotency id the store accepts (bytes); see [`MAX_KEY_BYTES`].
pub const MAX_ID_BYTES: usize = 32_000;

/// How the store opens. `Copy`; build with the methods, e.g.
/// `StoreOptions::default().cache_bytes(256 << 20)`.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// fjall block cache capacity in bytes (default 64 MiB).
    pub cache_bytes: u64,
    /// fjall background worker threads (flush, compaction); `None` = fjall's
    /// default, min(cores, 4).
    pub worker_threads: Option<usize>,
    /// LZ4-compress journal entries of 4 KiB and more (log records are). Off by
    /// default: on the 2-core machines it costs more CPU than the fsync saves.
    pub journal_compression: bool,
    /// Upper bound of fjall's journal size before it forces memtable flushes
    /// (default fjall's 512 MiB; at least 64 MiB). This bounds the first part
    /// of every open, fjall replaying its journal into memtables: measured
    /// here ≈ 0.85 s per million keys materialized since the last flush
    /// (≈ 60 MB/s of journal), so 512 MiB can mean ~10 s and 64 MiB ≈ 1 s
    /// (BENCH.md W5). Log records deleted by a checkpoint before their
    /// memtable is flushed never reach a table file, so keep the checkpoint
    /// interval well under this size divided by the log's write rate.
    pub max_journal_bytes: Option<u64>,
    /// Recovery coalesces replayed changes and writes them in atomic batches
    /// of at most about this many distinct keys (default 250,000, roughly
    /// 40 MB of memory for counters); a larger value coalesces more.
    pub recovery_chunk: usize,
    /// Open even if synced log records are missing (see
    /// [`StoreError::SyncedRecordsMissing`]); the loss is logged as an error.
    /// Default `false`. An operator's decision, never a default.
    pub accept_lost_records: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 64 << 20,
            worker_threads: None,
            journal_compression: false,
            max_journal_bytes: None,
            recovery_chunk: 250_000,
            accept_lost_records: false,
        }
    }
}

impl StoreOptions {
    /// Sets [`cache_bytes`](Self::cache_bytes).
    #[must_use]
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }
    /// Sets [`worker_threads`](Self::worker_threads) (at least 1).
    #[must_use]
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = Some(n.max(1));
        self
    }
    /// Sets [`journal_compression`](Self::journal_compression).
    #[must_use]
    pub fn journal_compression(mut self, on: bool) -> Self {
        self.journal_compression = on;
        self
    }
    /// Sets [`max_journal_bytes`](Self::max_journal_bytes) (clamped to ≥ 64 MiB).
    #[must_use]
    pub fn max_journal_bytes(mut self, bytes: u64) -> Self {
        self.max_journal_bytes = Some(bytes.max(64 << 20));
        self
    }
    /// Sets [`accept_lost_records`](Self::accept_lost_records).
    #[must_use]
    pub fn accept_lost_records(mut self, accept: bool) -> Self {
        self.accept_lost_records = accept;
        self
    }
    /// Sets [`recovery_chunk`](Self::recovery_chunk) (at least 1).
    #[must_use]
    pub fn recovery_chunk(mut self, keys: usize) -> Self {
        self.recovery_chunk = keys.max(1);
        self
    }
}

/// Per-shard bookkeeping of the log since open.
#[derive(Debug, Default)]
pub(crate) struct ShardLog {
    /// Seqs appended and not yet deleted by a checkpoint, ascending.
    pub(crate) pending: VecDeque<u64>,
    /// The highest seq appended (or the high-water mark at open).
    pub(crate) last_appended: u64,
    /// The shard's checkpoint position (`meta ckpt/<shard>`).
    pub(crate) ckpt: u64,
}

/// Shared state behind every [`Store`] clone.
pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    pub(crate) db: Database,
    pub(crate) log: Keyspace,
    pub(crate) state: Keyspace,
    pub(crate) dedup: Keyspace,
    pub(crate) expiry: Keyspace,
    pub(crate) meta: Keyspace,
    pub(crate) poison: Poison,
    pub(crate) faults: FaultInjector,
    /// Per-shard seqs covered by successful syncs, for open to check against.
    pub(crate) watermark: Watermark,
    /// Held by the committer (append) and by checkpoints (to pop deleted seqs);
    /// never held across an fsync, only across one journal append.
    pub(crate) shards: Mutex<HashMap<u16, ShardLog>>,
    /// Serializes the read-modify-write paths on `state`/`expiry` (checkpoint
    /// and sweep): a sweep must not delete a key between a checkpoint's write
    /// and its own read. Appends and reads never take it.
    pub(crate) materialize: Mutex<()>,
    /// 1 + the highest seq ever seen, as of open.
    pub(crate) start_seq: u64,
}

impl Inner {
    /// Runs a write against fjall behind the poison check and fault hook;
    /// a failure poisons the store and is returned as it happened.
    pub(crate) fn write<T>(
        &self,
        fault: Fault,
        op: &'static str,
        f: impl FnOnce() -> fjall::Result<T>,
    ) -> Result<T> {
        self.poison.check()?;
        if let Err(e) = self.faults.take(fault, op) {
            self.poison.set(e.to_string());
            return Err(e);
        }
        f().map_err(|e| {
            let err = match e {
                fjall::Error::Poisoned => StoreError::Poisoned {
                    cause: format!(
                        "fjall refused {op}: an earlier journal write or background \
                         flush/compaction failed (see the log)"
                    ),
                },
                e => StoreError::fjall(op, e),
            };
            self.poison.set(err.to_string());
            err
        })
    }

    pub(crate) fn shards(&self) -> MutexGuard<'_, HashMap<u16, ShardLog>> {
        // The map holds plain numbers that are consistent after every statement,
        // so a panic elsewhere cannot leave it half-updated.
        self.shards.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn materialize_lock(&self) -> MutexGuard<'_, ()> {
        self.materialize
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Statecraft's embedded store. Cheap to clone (one `Arc`); `Send + Sync`.
/// All methods block on disk I/O: call them from dedicated threads or
/// `spawn_blocking`, not from async tasks.
///
/// See the [crate docs](crate) for the layout and the protocol
/// (append → sync → ack; checkpoint in the background; recovery on open).
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("poisoned", &self.inner.poison.cause())
            .finish_non_exhaustive()
    }
}

fn open_err<'p>(path: &'p Path, op: &'static str) -> impl Fn(fjall::Error) -> StoreError + 'p {
    move |e| match e {
        fjall::Error::Locked => StoreError::Locked {
            path: path.to_path_buf(),
        },
        e => StoreError::fjall(op, e),
    }
}

impl Store {
    /// Opens (or creates) the store at `path` and recovers it: every log record
    /// above its shard's checkpoint is replayed into `state`/`dedup`/`meta` in
    /// seq order, checkpointed, and deleted. After `open` the log is empty, so
    /// the engine may come up with any shard count; every shard starts at
    /// [`next_seq`](Self::next_seq).
    ///
    /// # Errors
    ///
    /// [`StoreError::Locked`] if another handle holds the directory;
    /// [`StoreError::JournalCorrupt`] if fjall's journal is damaged beyond a
    /// torn tail; [`StoreError::Corrupt`] if a log record or meta value does not
    /// decode; [`StoreError::UnsupportedFormat`]; I/O errors.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<(Self, RecoveryReport)> {
        let started = std::time::Instant::now();
        let path = path.as_ref().to_path_buf();
        let mut builder = Database::builder(&path)
            .cache_size(options.cache_bytes)
            .journal_compression(if options.journal_compression {
                fjall::CompressionType::Lz4
            } else {
                fjall::CompressionType::None
            });
        if let Some(n) = options.worker_threads {
            builder = builder.worker_threads(n.max(1));
        }
        if let Some(b) = options.max_journal_bytes {
            builder = builder.max_journaling_size(b.max(64 << 20));
        }
        // fjall's journal reader trusts some length fields it has not checked
        // (a `debug_assert` fires on a damaged one in debug builds): a panic
        // while recovering is damage on disk, reported as such, not a crash.
        let db = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.open()))
            .map_err(|panic| StoreError::Corrupt {
                what: format!(
                    "fjall panicked while recovering {}: {}",
                    path.display(),
                    panic_message(panic.as_ref())
                ),
            })?
            .map_err(open_err(&path, "opening the database"))?;
        let ks = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(open_err(&path, "opening a keyspace"))
        };
        let log = ks("log")?;
        let state = ks("state")?;
        let dedup = ks("dedup")?;
        let expiry = ks("expiry")?;
        let meta = ks("meta")?;

        match meta
            .get(keys::META_FORMAT)
            .map_err(open_err(&path, "reading the format version"))?
        {
            Some(v) => {
                let found = keys::u32_value(&v, "meta format")?;
                if found != FORMAT_VERSION {
                    return Err(StoreError::UnsupportedFormat {
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
            }
            None => meta
                .insert(keys::META_FORMAT, FORMAT_VERSION.to_be_bytes())
                .map_err(open_err(&path, "writing the format version"))?,
        }

        let synced = watermark::read(&path);
        let watermark = Watermark::new(&path);
        let mut inner = Inner {
            path,
            db,
            log,
            state,
            dedup,
            expiry,
            meta,
            poison: Poison::default(),
            faults: FaultInjector::default(),
            watermark,
            shards: Mutex::default(),
            materialize: Mutex::default(),
            start_seq: 1,
        };
        let mut report = recovery::recover(&inner, &options, &synced)?;
        if report.lost_records_accepted {
            // The loss is accepted: the old watermark no longer describes this
            // data; the next sync writes a fresh one.
            if let Err(e) = std::fs::remove_file(inner.path.join(watermark::FILE_NAME)) {
                tracing::warn!(error = %e, "cannot remove the stale synced watermark");
            }
        }
        inner.start_seq = report.next_seq;
        {
            let mut shards = inner.shards();
            for (&shard, &ckpt) in &report.checkpoints {
                shards.insert(
                    shard,
                    ShardLog {
                        pending: VecDeque::new(),
                        last_appended: report.next_seq - 1,
                        ckpt,
                    },
                );
            }
        }
        report.duration = started.elapsed();
        tracing::info!(
            path = %inner.path.display(),
            records_replayed = report.records_replayed,
            records_discarded = report.records_discarded,
            changes_applied = report.changes_applied,
            next_seq = report.next_seq,
            ms = report.duration.as_secs_f64() * 1e3,
            "store opened"
        );
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            report,
        ))
    }

    /// The data directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The first seq every shard may use after this open: 1 + the highest seq
    /// ever seen (in the log or a checkpoint), persisted as `meta hwm`, so seqs
    /// never go backwards across restarts or shard-count changes.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.inner.start_seq
    }

    /// Encodes `record` and appends it (see [`append_encoded`](Self::append_encoded)).
    ///
    /// # Errors
    ///
    /// As `append_encoded`; also [`StoreError::TooLong`] if a key or id is
    /// longer than [`MAX_KEY_BYTES`]/[`MAX_ID_BYTES`] (nothing is written).
    pub fn append(&self, record: &LogRecord) -> Result<()> {
        for (k, _) in &record.changes {
            check_key(k)?;
        }
        for d in &record.dedup {
            check_key(&d.key)?;
            check_id(&d.id)?;
        }
        let mut buf = Vec::with_capacity(64 + 32 * record.changes.len());
        encode_record(record, &mut buf);
        self.append_encoded(record.shard, record.seq, &buf)
    }

    /// Appends one encoded log record (see [`RecordEncoder`](crate::RecordEncoder))
    /// for `shard` at `seq` **without** fsync: it is handed to the OS, so it
    /// survives a process crash, but not a power loss until the next
    /// [`sync`](Self::sync). The committer appends every batch that arrived,
    /// then syncs once, then acks them all.
    ///
    /// `bytes` must be a record encoded for this `shard` and `seq` whose keys
    /// respect [`MAX_KEY_BYTES`] and ids [`MAX_ID_BYTES`]; it is not decoded
    /// here (hot path) but at recovery, which refuses a record that breaks this.
    ///
    /// # Errors
    ///
    /// [`StoreError::SeqOutOfOrder`] (nothing written) if `seq` is not above
    /// the shard's last appended seq; [`StoreError::Poisoned`] after an earlier
    /// failure; an I/O or fjall error, which poisons the store.
    pub fn append_encoded(&self, shard: u16, seq: u64, bytes: &[u8]) -> Result<()> {
        let inner = &*self.inner;
        let mut shards = inner.shards();
        let entry = shards.entry(shard).or_insert_with(|| ShardLog {
            last_appended: inner.start_seq - 1,
            ..ShardLog::default()
        });
        if seq <= entry.last_appended {
            return Err(StoreError::SeqOutOfOrder {
                shard,
                seq,
                last: entry.last_appended,
            });
        }
        inner.write(Fault::Append, "appending a log record", || {
            inner.log.insert(keys::log_key(shard, seq), bytes)
        })?;
        entry.last_appended = seq;
        entry.pending.push_back(seq);
        Ok(())
    }

    /// Makes every append (and checkpoint) issued before it durable:
    /// flushes fjall's journal buffer and `fdatasync`s it
    /// (`PersistMode::SyncData`). One call covers all of them — group commit.
    ///
    /// # Errors
    ///
    /// [`StoreError::Poisoned`] after an earlier failure; an I/O error, which
    /// poisons the store: nothing appended since the last successful sync may
    /// be acknowledged.
    pub fn sync(&self) -> Result<()> {
        let inner = &*self.inner;
        // What this sync will cover: everything appended before it starts.
        let covered: BTreeMap<u16, u64> = inner
            .shards()
            .iter()
            .filter(|(_, l)| l.last_appended >= inner.start_seq)
            .map(|(&s, l)| (s, l.last_appended))
            .collect();
        inner.write(Fault::Sync, "syncing the journal", || {
            inner.db.persist(PersistMode::SyncData)
        })?;
        inner.watermark.advance(&covered);
        Ok(())
    }

    /// Syncs the journal with `fsync` (data and metadata) and closes this
    /// handle — the end of a graceful shutdown. Other clones stay open; the
    /// database closes when the last one goes. Unlike dropping, reports a
    /// failure.
    ///
    /// # Errors
    ///
    /// As [`sync`](Self::sync).
    pub fn close(self) -> Result<()> {
        self.inner
            .write(Fault::Sync, "syncing the journal at close", || {
                self.inner.db.persist(PersistMode::SyncAll)
            })
    }

    /// The first failure's message if the store is poisoned. The store is
    /// the one owner of this state: the engine, the server's `/readyz` and
    /// stats all ask here.
    #[must_use]
    pub fn poisoned(&self) -> Option<String> {
        self.inner.poison.cause().map(str::to_owned)
    }

    /// Poisons the store from outside with `cause` (kept only if it is the
    /// first): for a caller whose write failed before reaching fjall — a
    /// record out of order, a checkpoint it could not build — and which must
    /// refuse later writes exactly as after a failed write. Never cleared;
    /// only a reopen starts unpoisoned.
    pub fn poison(&self, cause: impl Into<String>) {
        self.inner.poison.set(cause.into());
    }

    /// The materialized state of `key` as of the last checkpoint (or
    /// recovery), expired or not. Log records not yet checkpointed are not
    /// reflected: the engine's shards hold those keys in memory.
    ///
    /// # Errors
    ///
    /// I/O errors; [`StoreError::Corrupt`] if the stored bytes do not decode.
    pub fn get(&self, key: &str) -> Result<Option<KeyState>> {
        if key.len() > MAX_KEY_BYTES {
            return Ok(None);
        }
        self.inner.faults.take(Fault::Read, "reading a key")?;
        match self
            .inner
            .state
            .get(key)
            .map_err(|e| StoreError::fjall("reading a key", e))?
        {
            Some(v) => decode_state(&v).map(Some).map_err(|e| in_key(e, key)),
            None => Ok(None),
        }
    }

    /// Like [`get`](Self::get), but `None` for a key expired at `now_ms`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_live(&self, key: &str, now_ms: u64) -> Result<Option<KeyState>> {
        Ok(self.get(key)?.filter(|s| s.is_live(now_ms)))
    }

    /// Up to `limit` keys starting with `prefix` and greater than `after`,
    /// ordered by key bytes. With `now_ms`, expired keys are skipped (and do
    /// not count toward `limit`); without, they are returned as stored.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: Option<u64>,
    ) -> Result<Vec<(String, KeyState)>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let iter = match after {
            Some(a) if a.as_bytes() >= prefix.as_bytes() => self
                .inner
                .state
                .range::<&[u8], _>((Bound::Excluded(a.as_bytes()), Bound::Unbounded)),
            _ => self.inner.state.prefix(prefix),
        };
        for guard in iter {
            let (k, v) = guard
                .into_inner()
                .map_err(|e| StoreError::fjall("scanning keys", e))?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let key = String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt {
                what: "a state key is not UTF-8".into(),
            })?;
            let state = decode_state(&v).map_err(|e| in_key(e, &key))?;
            if now_ms.is_some_and(|now| !state.is_live(now)) {
                continue;
            }
            out.push((key, state));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The expiry of idempotency id `id` on `key`, if it was recorded (by a
    /// checkpoint or recovery) and not yet swept. The caller compares it with
    /// the clock: an id at or past its expiry is no longer a duplicate.
    ///
    /// # Errors
    ///
    /// I/O errors; [`StoreError::Corrupt`].
    pub fn dedup_get(&self, key: &str, id: &str) -> Result<Option<u64>> {
        if key.len() > MAX_KEY_BYTES || id.len() > MAX_ID_BYTES {
            return Ok(None);
        }
        self.inner.faults.take(Fault::Read, "reading a dedup id")?;
        self.inner
            .dedup
            .get(keys::dedup_key(key, id))
            .map_err(|e| StoreError::fjall("reading a dedup id", e))?
            .map(|v| keys::u64_value(&v, "dedup expiry"))
            .transpose()
    }

    /// The stored position of source `name` (e.g. `"nats/3"`): the highest
    /// sequence any checkpoint or replayed record wrote for it.
    ///
    /// # Errors
    ///
    /// I/O errors; [`StoreError::Corrupt`].
    pub fn offset(&self, name: &str) -> Result<Option<u64>> {
        self.inner.faults.take(Fault::Read, "reading an offset")?;
        self.inner
            .meta
            .get(keys::offset_key(name))
            .map_err(|e| StoreError::fjall("reading an offset", e))?
            .map(|v| keys::u64_value(&v, "offset"))
            .transpose()
    }

    /// The checkpoint position of `shard` (0 if it never checkpointed).
    #[must_use]
    pub fn checkpoint_seq(&self, shard: u16) -> u64 {
        self.inner.shards().get(&shard).map_or(0, |s| s.ckpt)
    }

    /// Approximate number of materialized keys. Cheap (fjall's table
    /// metadata, not a scan), but it counts entries, not keys: expired keys
    /// until swept, and older versions and deletions until compaction has
    /// merged them, so it overestimates after heavy rewriting.
    #[must_use]
    pub fn approx_len(&self) -> usize {
        self.inner.state.approximate_len()
    }

    /// Bytes the data directory takes on disk (tables and journals).
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn disk_space(&self) -> Result<u64> {
        self.inner
            .db
            .disk_space()
            .map_err(|e| StoreError::fjall("measuring disk space", e))
    }

    /// Test hook: arm one-shot failures of the write paths.
    #[doc(hidden)]
    #[must_use]
    pub fn fault_injector(&self) -> &FaultInjector {
        &self.inner.faults
    }
}

pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::TooLong {
            what: "key",
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.len() > MAX_ID_BYTES {
        return Err(StoreError::TooLong {
            what: "idempotency id",
            len: id.len(),
            max: MAX_ID_BYTES,
        });
    }
    Ok(())
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

fn in_key(e: StoreError, key: &str) -> StoreError {
    match e {
        StoreError::Corrupt { what } => StoreError::Corrupt {
            what: format!("state of key {key:?}: {what}"),
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_is_send_and_sync() {
        fn assert<T: Send + Sync + Clone>() {}
        assert::<super::Store>();
    }
}
