//! The store's one error type.
//!
//! Invariant: a variant says what went wrong *and* what it means for the caller.
//! In particular [`StoreError::Poisoned`] is the only answer to a write after a
//! failed write or sync, and it carries the first failure's message, so the
//! cause is never lost behind a generic "poisoned".

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An operating-system I/O error (disk full, permission, …) while doing `op`.
    #[error("I/O error while {op}: {source}")]
    Io {
        /// What the store was doing ("appending a log record", "syncing the journal", …).
        op: &'static str,
        /// The underlying error; `source.kind()` tells disk-full (`StorageFull`) apart.
        #[source]
        source: std::io::Error,
    },

    /// fjall reported an error that is not plain I/O while doing `op`.
    #[error("storage engine error while {op}: {source}")]
    Fjall {
        /// What the store was doing.
        op: &'static str,
        /// fjall's error.
        #[source]
        source: fjall::Error,
    },

    /// fjall's journal is damaged in a way its recovery mode
    /// (`TolerateCorruptTail`: a torn last batch is dropped) does not tolerate,
    /// e.g. a batch whose checksum does not match. The store refuses to open
    /// rather than come up with silently wrong state; restore from a backup.
    #[error("journal is corrupt ({reason}); refusing to open — restore from a backup")]
    JournalCorrupt {
        /// fjall's classification of the damage.
        reason: fjall::JournalRecoveryError,
    },

    /// Data on disk did not decode: a state, log record, meta value or key
    /// layout of ours, or fjall's journal in a way that made fjall panic while
    /// recovering. Never silently skipped.
    #[error("corrupt data: {what}")]
    Corrupt {
        /// What did not decode, and where.
        what: String,
    },

    /// An earlier write or sync failed; writes are refused until the store is
    /// reopened (reopening recovers from the journal). Reads keep working.
    #[error("store is poisoned, writes are refused until it is reopened; first failure: {cause}")]
    Poisoned {
        /// The first failure's message.
        cause: String,
    },

    /// A shard came back from the journal below the seq that an earlier
    /// successful sync covered (the synced watermark): fjall's journal lost
    /// acknowledged records — damage in the middle of the journal, which its
    /// `TolerateCorruptTail` recovery cannot tell from a torn tail. The store
    /// refuses to open rather than continue silently without them.
    #[error(
        "shard {shard}: log records up to seq {synced} were synced, but only up to {recovered} \
         came back — the journal lost acknowledged data (damage, not a torn tail); refusing \
         to open. Restore from a backup, or start with `statecraft serve --accept-lost-records` \
         (`StoreOptions::accept_lost_records`) to go on without them"
    )]
    SyncedRecordsMissing {
        /// The shard.
        shard: u16,
        /// The highest seq a successful sync covered.
        synced: u64,
        /// The highest seq recovered (log or checkpoint).
        recovered: u64,
    },

    /// A replayed log record changes a key longer than
    /// [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES): an engine that did not check
    /// the limit at admission acked it. The key cannot be materialized, so
    /// opening means losing it: only `accept_lost_records` does.
    #[error(
        "shard {shard} seq {seq}: the log holds a key of {len} bytes, over the store's limit \
         of {max} bytes; it cannot be recovered. Start with `statecraft serve \
         --accept-lost-records` (`StoreOptions::accept_lost_records`) to drop it and open"
    )]
    OversizedKey {
        /// The shard.
        shard: u16,
        /// The record's seq.
        seq: u64,
        /// The key's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// `backup` refuses to write into a directory that already has entries.
    #[error("backup target {} is not empty", path.display())]
    BackupTargetNotEmpty {
        /// The target directory.
        path: PathBuf,
    },

    /// A log record's seq was not above the shard's last appended seq (or the
    /// store's high-water mark at open). Nothing was written.
    #[error("log seq {seq} for shard {shard} is not above the last seq {last}")]
    SeqOutOfOrder {
        /// The shard.
        shard: u16,
        /// The seq that was refused.
        seq: u64,
        /// The highest seq this shard may not repeat.
        last: u64,
    },

    /// A checkpoint claimed to cover log records that were never appended.
    /// Nothing was written.
    #[error(
        "checkpoint of shard {shard} up to seq {upto_seq} is beyond the last appended seq {last}"
    )]
    CheckpointBeyondLog {
        /// The shard.
        shard: u16,
        /// The requested checkpoint position.
        upto_seq: u64,
        /// The highest seq appended for this shard (or the high-water mark at open).
        last: u64,
    },

    /// A key or idempotency id is longer than the store accepts
    /// ([`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES), [`MAX_ID_BYTES`](crate::MAX_ID_BYTES)).
    /// Nothing was written.
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// "key" or "idempotency id".
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The data directory was written by a different on-disk format version.
    #[error("unsupported store format version {found}; this build reads version {supported}")]
    UnsupportedFormat {
        /// The version found in `meta`.
        found: u32,
        /// The version this build writes and reads.
        supported: u32,
    },

    /// Another open handle (this or another process) holds the data directory.
    #[error("data directory {} is locked by another open store", path.display())]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
}

impl StoreError {
    /// Wraps a fjall error, lifting plain I/O errors and journal damage into
    /// their own variants so callers can match on them.
    pub(crate) fn fjall(op: &'static str, e: fjall::Error) -> Self {
        match e {
            fjall::Error::Io(source) => Self::Io { op, source },
            fjall::Error::Storage(fjall::LsmError::Io(source)) => Self::Io { op, source },
            fjall::Error::JournalRecovery(reason) => Self::JournalCorrupt { reason },
            source => Self::Fjall { op, source },
        }
    }

    /// True if this error is (or was caused by) a full disk.
    #[must_use]
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Io { source, .. } => is_enospc(source),
            Self::Poisoned { cause } => cause.contains("No space left on device"),
            _ => false,
        }
    }
}

fn is_enospc(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
