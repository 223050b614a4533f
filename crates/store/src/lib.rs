//! Statecraft's embedded store, on [fjall](https://docs.rs/fjall).
//!
//! # Tour
//!
//! One fjall `Database`, five keyspaces (layouts in [`keys`](crate#key-layouts)):
//!
//! - **`log`** — one [`LogRecord`] per committed shard batch, keyed by
//!   shard ++ seq. This is the write-ahead log of group commit, and it is
//!   fjall's own journal that makes it durable: nothing here is hand-written.
//! - **`state`** — the materialized [`KeyState`] of every key, as of the last
//!   checkpoint, in a compact binary form ([`encode_state`]).
//! - **`dedup`** — idempotency ids (scoped to their key) with their expiry.
//! - **`expiry`** — an index `expires_at ++ kind ++ key` over TTL keys and dedup
//!   ids, so [`Store::sweep_expired`] does bounded work per call.
//! - **`meta`** — format version, per-shard checkpoint positions, the seq
//!   high-water mark, source offsets.
//!
//! # The protocol
//!
//! 1. **Ack path.** The committer encodes each applied shard batch as a
//!    [`LogRecord`] of *after-images* ([`RecordEncoder`]), calls
//!    [`Store::append_encoded`] for every batch that arrived (no fsync), then
//!    [`Store::sync`] once (`fdatasync` of the journal), then acks them all.
//!    Writing one ~25–40 KB record per batch instead of one LSM entry per key
//!    is what makes durable acks fast (BENCH.md: ≈ 0.3 M single-key writes/s
//!    vs ≈ 2.7–4.5 M events/s as one record per batch).
//! 2. **Background.** Shards keep dirty keys in memory and periodically call
//!    [`Store::checkpoint`]: coalesced states + dedup ids + offsets + the
//!    shard's checkpoint position + deletion of its covered log records, in one
//!    atomic fjall batch, not fsynced (the next sync covers it; a lost
//!    checkpoint loses its log deletions with it, so recovery replays instead).
//! 3. **Open.** [`Store::open`] replays, per shard, the records above the
//!    shard's checkpoint and empties the log ([`RecoveryReport`]). Every shard
//!    then starts at [`Store::next_seq`], so seqs never go backwards.
//! 4. **Failure.** A failed write or sync poisons the store: later writes
//!    answer [`StoreError::Poisoned`] with the first cause, reads keep
//!    working, reopening recovers. If the journal comes back *without*
//!    records that a successful sync covered (damage mid-journal, which fjall's
//!    torn-tail recovery cannot tell from a torn tail), open refuses with
//!    [`StoreError::SyncedRecordsMissing`] instead of losing acks silently.
//!
//! # Modules
//!
//! - `store` — [`Store`], [`StoreOptions`], open, append/sync, reads.
//! - `checkpoint` — [`Checkpoint`], the atomic materialization batch and the
//!   expiry-index upkeep.
//! - `recovery` — replay on open.
//! - `sweep` — bounded removal of expired keys and dedup ids.
//! - `backup` — consistent copies that open as data dirs.
//! - `state`, `record`, `varint` — the binary formats; total decoders.
//! - `keys` — key layouts.
//! - `fault` — poisoning and the test-only fault injector.
//! - `watermark` — the sidecar file of per-shard synced seqs that lets open
//!   detect synced records lost in the middle of fjall's journal.
//! - `error` — [`StoreError`].
//!
//! # Key layouts
//!
//! | keyspace | key                                         | value                    |
//! |----------|---------------------------------------------|--------------------------|
//! | `log`    | shard (u16 BE) ++ seq (u64 BE)              | encoded [`LogRecord`]    |
//! | `state`  | the key's UTF-8 bytes                       | encoded [`KeyState`]     |
//! | `dedup`  | key length (u16 BE) ++ key ++ id            | expires_at (u64 BE)      |
//! | `expiry` | expires_at (u64 BE) ++ `s`/`d` ++ target key | empty                   |
//! | `meta`   | `format`, `hwm`, `ckpt/` ++ shard (u16 BE), `off/` ++ name | u32/u64 BE |

mod backup;
mod checkpoint;
mod error;
mod fault;
mod keys;
mod record;
mod recovery;
mod state;
mod store;
mod sweep;
mod varint;
mod watermark;

pub use backup::BackupReport;
pub use checkpoint::{Checkpoint, CheckpointReport, PART_BYTES, PART_STATES};
pub use error::{Result, StoreError};
#[doc(hidden)]
pub use fault::{Fault, FaultInjector};
pub use record::{
    DedupEntry, LogRecord, RecordBuilder, RecordEncoder, decode_record, encode_record,
};
pub use recovery::RecoveryReport;
pub use state::{KeyState, decode_state, encode_state, encode_state_parts, encoded_state_len};
pub use store::{FORMAT_VERSION, MAX_ID_BYTES, MAX_KEY_BYTES, Store, StoreOptions};
pub use sweep::SweepReport;
