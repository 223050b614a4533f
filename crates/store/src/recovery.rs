//! Recovery on open: replay the log above each shard's checkpoint, then empty it.
//!
//! Invariants:
//! - Records of a shard are applied in seq order (the log key is
//!   shard BE ++ seq BE, so iteration order is replay order) and only those
//!   above the shard's checkpoint; records at or below it are deleted unread.
//! - Each chunk (at most about `recovery_chunk` distinct keys, dedup ids and
//!   log records, so its memory is bounded) is one atomic batch that
//!   writes the coalesced after-images, advances `ckpt/<shard>` to the last
//!   record in the chunk and deletes the chunk's records — i.e. it *is* a
//!   checkpoint. A crash mid-recovery leaves a shorter log and a later
//!   checkpoint, and the next open continues; nothing is applied twice in a
//!   way that matters (after-images are idempotent) and nothing is skipped.
//! - A record that does not decode, or whose header disagrees with its key,
//!   stops the open with [`StoreError::Corrupt`]: skipping it would silently
//!   lose acknowledged events.
//! - Before anything is written, every shard must reach the seq that the
//!   synced watermark (see `watermark`) says a successful sync covered;
//!   otherwise the open fails with [`StoreError::SyncedRecordsMissing`].
//! - The high-water mark `meta hwm` = max(old hwm, every checkpoint, every
//!   seq in the log) is written, and `next_seq = hwm + 1`.

use crate::{
    checkpoint::Materializer,
    error::{Result, StoreError},
    fault::Fault,
    keys,
    record::decode_record,
    state::KeyState,
    store::{Inner, StoreOptions},
};
use rustc_hash::FxHashMap as HashMap;
use std::{collections::BTreeMap, time::Duration};

/// What [`Store::open`](crate::Store::open) found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Log records above their shard's checkpoint, replayed.
    pub records_replayed: u64,
    /// Log records at or below their shard's checkpoint, deleted unread
    /// (a checkpoint whose deletions were interrupted, or lost in a crash).
    pub records_discarded: u64,
    /// Key changes in the replayed records (before coalescing).
    pub changes_applied: u64,
    /// Idempotency ids in the replayed records.
    pub dedup_applied: u64,
    /// Checkpoint position of every shard known to `meta` after recovery.
    pub checkpoints: BTreeMap<u16, u64>,
    /// The first seq every shard uses after this open (1 + high-water mark).
    pub next_seq: u64,
    /// True if synced records were missing and `accept_lost_records` let the
    /// open go on without them.
    pub lost_records_accepted: bool,
    /// Wall time of the whole open, recovery included.
    pub duration: Duration,
    /// Replayed ids and keys longer than [`MAX_ID_BYTES`](crate::MAX_ID_BYTES)
    /// / [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES), dropped (logged as errors)
    /// instead of bricking the open: an engine that did not check them at
    /// admission could log them. An id is only a duplicate guard; a key is
    /// lost data, so it needs `accept_lost_records`.
    pub oversized_dropped: u64,
}

/// After-images of one chunk, coalesced: the last state per key wins, the
/// latest expiry per dedup id, the highest position per offset.
#[derive(Default)]
struct Chunk {
    states: HashMap<String, Option<KeyState>>,
    dedup: HashMap<(String, String), u64>,
    offsets: HashMap<String, u64>,
    /// Log keys (seqs) to delete, replayed or discarded.
    seqs: Vec<u64>,
    /// The highest replayed seq in the chunk (the new checkpoint), if any.
    last_replayed: Option<u64>,
}

impl Chunk {
    fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    fn flush(&mut self, inner: &Inner, shard: u16, ckpt: &mut u64) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(self);
        let mut m = Materializer::new(inner);
        for (key, state) in &chunk.states {
            m.state(key, state.as_ref())?;
        }
        for ((key, id), exp) in &chunk.dedup {
            m.dedup(key, id, *exp)?;
        }
        for (name, seq) in &chunk.offsets {
            m.offset(name, *seq)?;
        }
        for &seq in &chunk.seqs {
            m.delete_log(shard, seq);
        }
        if let Some(last) = chunk.last_replayed {
            *ckpt = (*ckpt).max(last);
            m.set_ckpt(shard, *ckpt);
        }
        m.commit(Fault::Checkpoint, "writing replayed log records")?;
        Ok(())
    }
}

pub(crate) fn recover(
    inner: &Inner,
    options: &StoreOptions,
    synced: &BTreeMap<u16, u64>,
) -> Result<RecoveryReport> {
    let chunk_limit = options.recovery_chunk.max(1);
    let fj = |op| move |e| StoreError::fjall(op, e);
    let mut report = RecoveryReport::default();

    let mut ckpts = BTreeMap::new();
    for guard in inner.meta.prefix(keys::META_CKPT) {
        let (k, v) = guard.into_inner().map_err(fj("reading checkpoints"))?;
        let shard: [u8; 2] = k
            .get(keys::META_CKPT.len()..)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("meta checkpoint key {k:?}"),
            })?;
        ckpts.insert(
            u16::from_be_bytes(shard),
            keys::u64_value(&v, "checkpoint")?,
        );
    }
    let mut hwm = match inner.meta.get(keys::META_HWM).map_err(fj("reading hwm"))? {
        Some(v) => keys::u64_value(&v, "hwm")?,
        None => 0,
    };
    hwm = hwm.max(ckpts.values().copied().max().unwrap_or(0));

    // Before writing anything: did every shard come back at least as far as
    // the last successful sync said it was?
    for (&shard, &synced_seq) in synced {
        let in_log = match inner.log.prefix(shard.to_be_bytes()).next_back() {
            Some(guard) => keys::parse_log_key(&guard.key().map_err(fj("reading the log"))?)?.1,
            None => 0,
        };
        let recovered = in_log.max(ckpts.get(&shard).copied().unwrap_or(0));
        if recovered < synced_seq {
            let err = StoreError::SyncedRecordsMissing {
                shard,
                synced: synced_seq,
                recovered,
            };
            if !options.accept_lost_records {
                return Err(err);
            }
            tracing::error!(%err, "opening anyway: accept_lost_records is set");
            report.lost_records_accepted = true;
        }
    }

    let mut current: Option<(u16, u64)> = None; // (shard, its checkpoint)
    let mut chunk = Chunk::default();
    for guard in inner.log.iter() {
        let (k, v) = guard.into_inner().map_err(fj("reading the log"))?;
        let (shard, seq) = keys::parse_log_key(&k)?;
        hwm = hwm.max(seq);
        match current {
            Some((s, _)) if s == shard => {}
            _ => {
                if let Some((s, mut c)) = current.take() {
                    chunk.flush(inner, s, &mut c)?;
                    ckpts.insert(s, c);
                }
                current = Some((shard, ckpts.get(&shard).copied().unwrap_or(0)));
            }
        }
        let Some((_, ckpt)) = current.as_mut() else {
            continue;
        };
        chunk.seqs.push(seq);
        if seq <= *ckpt {
            report.records_discarded += 1;
        } else {
            let rec = decode_record(&v).map_err(|e| match e {
                StoreError::Corrupt { what } => StoreError::Corrupt {
                    what: format!("log record shard {shard} seq {seq}: {what}"),
                },
                e => e,
            })?;
            if rec.shard != shard || rec.seq != seq {
                return Err(StoreError::Corrupt {
                    what: format!(
                        "log record under key shard {shard} seq {seq} says shard {} seq {}",
                        rec.shard, rec.seq
                    ),
                });
            }
            report.records_replayed += 1;
            report.changes_applied += rec.changes.len() as u64;
            report.dedup_applied += rec.dedup.len() as u64;
            for (key, state) in rec.changes {
                if key.len() > crate::MAX_KEY_BYTES {
                    let err = StoreError::OversizedKey {
                        shard,
                        seq,
                        len: key.len(),
                        max: crate::MAX_KEY_BYTES,
                    };
                    if !options.accept_lost_records {
                        return Err(err);
                    }
                    tracing::error!(%err, "dropping the key: accept_lost_records is set");
                    report.oversized_dropped += 1;
                    continue;
                }
                chunk.states.insert(key, state);
            }
            for d in rec.dedup {
                if d.key.len() > crate::MAX_KEY_BYTES || d.id.len() > crate::MAX_ID_BYTES {
                    // Only a duplicate guard: an event with such an id is
                    // refused at admission, so no retry of it can arrive.
                    tracing::error!(
                        shard,
                        seq,
                        id_bytes = d.id.len(),
                        "dropping an idempotency id over the store's limit"
                    );
                    report.oversized_dropped += 1;
                    continue;
                }
                let e = chunk.dedup.entry((d.key, d.id)).or_insert(d.expires_at);
                *e = (*e).max(d.expires_at);
            }
            for (name, pos) in rec.offsets {
                let e = chunk.offsets.entry(name).or_insert(pos);
                *e = (*e).max(pos);
            }
            chunk.last_replayed = Some(seq);
        }
        if chunk.states.len() + chunk.dedup.len() + chunk.seqs.len() >= chunk_limit {
            chunk.flush(inner, shard, ckpt)?;
        }
    }
    if let Some((s, mut c)) = current.take() {
        chunk.flush(inner, s, &mut c)?;
        ckpts.insert(s, c);
    }

    let mut m = Materializer::new(inner);
    m.set_hwm(hwm);
    m.commit(Fault::Checkpoint, "writing the high-water mark")?;

    report.checkpoints = ckpts;
    report.next_seq = hwm.saturating_add(1);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use crate::{KeyState, LogRecord, Store, StoreOptions, keys};

    fn rec(seq: u64, key: &str) -> LogRecord {
        LogRecord {
            shard: 0,
            seq,
            changes: vec![(
                key.to_owned(),
                Some(KeyState {
                    value: seq.into(),
                    version: seq,
                    updated_at: 0,
                    expires_at: None,
                }),
            )],
            dedup: vec![],
            offsets: vec![("src".into(), seq)],
        }
    }

    #[test]
    fn records_at_or_below_the_checkpoint_are_deleted_unread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(dir.path(), StoreOptions::default()).expect("open");
        for seq in 1..=5 {
            store.append(&rec(seq, &format!("k{seq}"))).expect("append");
        }
        // A checkpoint position at 3 whose log deletions never happened.
        store
            .inner
            .meta
            .insert(keys::ckpt_key(0), 3u64.to_be_bytes())
            .expect("meta");
        // Corrupt record 2: it must not even be read.
        store
            .inner
            .log
            .insert(keys::log_key(0, 2), b"garbage")
            .expect("log");
        store.sync().expect("sync");
        drop(store);

        let (store, report) = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
        assert_eq!((report.records_discarded, report.records_replayed), (3, 2));
        assert_eq!(report.checkpoints.get(&0), Some(&5));
        assert!(store.get("k3").expect("get").is_none());
        assert!(store.get("k4").expect("get").is_some());
        assert_eq!(store.offset("src").expect("offset"), Some(5));
        assert_eq!(
            store.inner.log.iter().count(),
            0,
            "the log is empty after open"
        );
    }

    /// Issue 16: a record holding an id or key longer than the store's
    /// limits (acked by an engine that did not check them) must not brick
    /// the data dir. Ids are dropped (a retry of such an event is refused at
    /// admission now); a key is lost data, so only `accept_lost_records`
    /// opens past it, and the refusal names the serve flag.
    #[test]
    fn records_past_the_store_limits_do_not_brick_the_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(dir.path(), StoreOptions::default()).expect("open");
        let mut long_id = rec(1, "k1");
        long_id.dedup.push(crate::DedupEntry {
            key: "k1".into(),
            id: "i".repeat(crate::MAX_ID_BYTES + 8_000),
            expires_at: u64::MAX,
        });
        let mut long_key = rec(2, &"k".repeat(crate::MAX_KEY_BYTES + 1));
        long_key.changes.push(rec(2, "k2").changes.remove(0));
        for r in [&long_id, &long_key] {
            let mut buf = Vec::new();
            crate::record::encode_record(r, &mut buf);
            store
                .append_encoded(0, r.seq, &buf)
                .expect("append unchecked");
        }
        store.sync().expect("sync");
        drop(store);

        let Err(err) = Store::open(dir.path(), StoreOptions::default()) else {
            panic!("a lost key needs the operator's consent");
        };
        assert!(err.to_string().contains("--accept-lost-records"), "{err}");
        let (store, report) = Store::open(
            dir.path(),
            StoreOptions::default().accept_lost_records(true),
        )
        .expect("opens with accept_lost_records");
        assert_eq!(report.oversized_dropped, 2, "{report:?}");
        assert_eq!(store.get("k1").expect("get").map(|s| s.version), Some(1));
        assert_eq!(store.get("k2").expect("get").map(|s| s.version), Some(2));
        store.sync().expect("writable");
        drop(store);
        // The next open finds nothing to drop.
        let (_, report) = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
        assert_eq!(report.oversized_dropped, 0);
    }

    #[test]
    fn small_recovery_chunks_give_the_same_state() {
        let root = tempfile::tempdir().expect("tempdir");
        let a = root.path().join("a");
        let (store, _) = Store::open(&a, StoreOptions::default()).expect("open");
        for seq in 1..=40 {
            // Keys repeat across records, so coalescing matters.
            store
                .append(&rec(seq, &format!("k{}", seq % 7)))
                .expect("append");
        }
        drop(store);
        let b = root.path().join("b");
        std::fs::create_dir(&b).expect("mkdir");
        for e in std::fs::read_dir(&a).expect("ls") {
            let e = e.expect("entry");
            copy(&e.path(), &b.join(e.file_name()));
        }
        let (big, rb) = Store::open(&a, StoreOptions::default()).expect("a");
        let (small, rs) = Store::open(&b, StoreOptions::default().recovery_chunk(3)).expect("b");
        assert_eq!(rb.records_replayed, 40);
        assert_eq!(rs.records_replayed, 40);
        let all = |s: &Store| s.scan("", None, 100, None).expect("scan");
        assert_eq!(all(&big), all(&small));
        assert_eq!(all(&big).len(), 7);
        assert_eq!(big.get("k5").expect("get").map(|s| s.version), Some(40));
    }

    fn copy(from: &std::path::Path, to: &std::path::Path) {
        if from.is_dir() {
            std::fs::create_dir_all(to).expect("mkdir");
            for e in std::fs::read_dir(from).expect("ls") {
                let e = e.expect("entry");
                copy(&e.path(), &to.join(e.file_name()));
            }
        } else {
            std::fs::copy(from, to).expect("copy");
        }
    }
}
