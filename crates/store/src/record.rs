//! [`LogRecord`] — one committed shard batch as after-images — and its binary form.
//!
//! A record holds what a batch *produced* (the state of each touched key after
//! the batch, the idempotency ids it consumed, the source offsets it covered),
//! never the input events, so replay is a blind overwrite: idempotent, and
//! independent of the op implementations of the build that replays it.
//!
//! Layout:
//!
//! ```text
//! format   1 byte    = 1
//! shard    2 bytes   big endian
//! seq      varint
//! entries  repeated: tag byte, then
//!            1 put      key (varint len + UTF-8), state (see `state`)
//!            2 delete   key
//!            3 dedup    key, id (varint len + UTF-8), expires_at (varint)
//!            4 offset   name (varint len + UTF-8), sequence (varint)
//! end      tag byte 0, then nothing
//! ```
//!
//! Invariants: a record is written by [`RecordEncoder`] (which always closes it
//! with the end tag) and decoding is total ([`StoreError::Corrupt`] on any
//! malformed input). Entries of one kind keep their order.

use crate::{
    error::StoreError,
    state::{KeyState, encode_state, encode_state_parts, read_state},
    varint::{Reader, put_bytes, put_varint},
};

const FORMAT: u8 = 1;
const END: u8 = 0;
const PUT: u8 = 1;
const DELETE: u8 = 2;
const DEDUP: u8 = 3;
const OFFSET: u8 = 4;

/// One idempotency id consumed by a batch: a repeat of `id` on `key` before
/// `expires_at` is a duplicate. Ids are scoped to their key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupEntry {
    /// The key the event named.
    pub key: String,
    /// The event's idempotency id.
    pub id: String,
    /// Milliseconds since the Unix epoch after which the id may be reused.
    pub expires_at: u64,
}

/// One committed shard batch, as after-images.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogRecord {
    /// The shard that committed the batch.
    pub shard: u16,
    /// Per-shard, strictly increasing; see [`Store::next_seq`](crate::Store::next_seq).
    pub seq: u64,
    /// Each touched key with its state after the batch (`None` = deleted).
    pub changes: Vec<(String, Option<KeyState>)>,
    /// Idempotency ids the batch consumed.
    pub dedup: Vec<DedupEntry>,
    /// Source positions the batch covered, e.g. `("nats/3", 1234)`.
    pub offsets: Vec<(String, u64)>,
}

/// Appends the binary form of `record` to `out`.
pub fn encode_record(record: &LogRecord, out: &mut Vec<u8>) {
    let mut enc = RecordEncoder::new(out, record.shard, record.seq);
    for (key, state) in &record.changes {
        enc.change(key, state.as_ref());
    }
    for d in &record.dedup {
        enc.dedup(&d.key, &d.id, d.expires_at);
    }
    for (name, seq) in &record.offsets {
        enc.offset(name, *seq);
    }
    enc.finish();
}

/// Decodes one record that occupies all of `bytes`.
///
/// # Errors
///
/// [`StoreError::Corrupt`] if the bytes are not exactly one encoded record.
pub fn decode_record(bytes: &[u8]) -> Result<LogRecord, StoreError> {
    let mut r = Reader::new(bytes, "log record");
    if r.u8()? != FORMAT {
        return Err(r.corrupt("unknown record format"));
    }
    let shard = u16::from_be_bytes(r.array::<2>()?);
    let seq = r.varint()?;
    let mut rec = LogRecord {
        shard,
        seq,
        ..LogRecord::default()
    };
    loop {
        match r.u8()? {
            END => break,
            PUT => {
                let key = r.str()?.to_owned();
                let state = read_state(&mut r)?;
                rec.changes.push((key, Some(state)));
            }
            DELETE => rec.changes.push((r.str()?.to_owned(), None)),
            DEDUP => {
                let key = r.str()?.to_owned();
                let id = r.str()?.to_owned();
                let expires_at = r.varint()?;
                rec.dedup.push(DedupEntry {
                    key,
                    id,
                    expires_at,
                });
            }
            OFFSET => {
                let name = r.str()?.to_owned();
                let seq = r.varint()?;
                rec.offsets.push((name, seq));
            }
            _ => return Err(r.corrupt("unknown entry tag")),
        }
    }
    r.expect_end()?;
    Ok(rec)
}

/// Streams a record into a buffer without building a [`LogRecord`] first —
/// the committer's hot path: borrow the shard's keys and states, write bytes.
///
/// ```
/// # use statecraft_store::{RecordEncoder, KeyState, decode_record};
/// let mut buf = Vec::new();
/// let state = KeyState { value: 3.into(), version: 3, updated_at: 0, expires_at: None };
/// let mut enc = RecordEncoder::new(&mut buf, 0, 17);
/// enc.change("user:1", Some(&state));
/// enc.dedup("user:1", "evt-9", 86_400_000);
/// enc.finish();
/// assert_eq!(decode_record(&buf)?.changes.len(), 1);
/// # Ok::<(), statecraft_store::StoreError>(())
/// ```
///
/// Dropping the encoder without calling [`finish`](Self::finish) still writes
/// the end tag (the `Drop` impl keeps every record well-formed).
pub struct RecordEncoder<'a> {
    out: &'a mut Vec<u8>,
    finished: bool,
}

impl<'a> RecordEncoder<'a> {
    /// Starts a record for `shard`/`seq` at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>, shard: u16, seq: u64) -> Self {
        out.push(FORMAT);
        out.extend_from_slice(&shard.to_be_bytes());
        put_varint(out, seq);
        Self {
            out,
            finished: false,
        }
    }

    /// Records the state of `key` after the batch (`None` = deleted).
    pub fn change(&mut self, key: &str, state: Option<&KeyState>) {
        match state {
            Some(s) => {
                self.out.push(PUT);
                put_bytes(self.out, key.as_bytes());
                encode_state(s, self.out);
            }
            None => {
                self.out.push(DELETE);
                put_bytes(self.out, key.as_bytes());
            }
        }
    }

    /// Records an idempotency id consumed by the batch.
    pub fn dedup(&mut self, key: &str, id: &str, expires_at: u64) {
        self.out.push(DEDUP);
        put_bytes(self.out, key.as_bytes());
        put_bytes(self.out, id.as_bytes());
        put_varint(self.out, expires_at);
    }

    /// Records a source position covered by the batch.
    pub fn offset(&mut self, name: &str, seq: u64) {
        self.out.push(OFFSET);
        put_bytes(self.out, name.as_bytes());
        put_varint(self.out, seq);
    }

    /// Closes the record.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        if !self.finished {
            self.out.push(END);
            self.finished = true;
        }
    }
}

/// An owned record being built, for a producer that adds changes one at a
/// time while it applies a batch (the engine's shards): the same format as
/// [`RecordEncoder`], without borrowing the buffer. A key may be put more than
/// once in a record; replay keeps the last state (a blind overwrite).
#[derive(Debug)]
pub struct RecordBuilder {
    out: Vec<u8>,
    entries: usize,
}

impl RecordBuilder {
    /// Starts a record for `shard`/`seq`, reusing `buf`'s allocation.
    pub fn new(mut buf: Vec<u8>, shard: u16, seq: u64) -> Self {
        buf.clear();
        buf.push(FORMAT);
        buf.extend_from_slice(&shard.to_be_bytes());
        put_varint(&mut buf, seq);
        Self {
            out: buf,
            entries: 0,
        }
    }

    /// Records the state of `key` after the change, by its parts. Returns
    /// where the encoded state starts in the finished record's bytes (the
    /// same bytes a checkpoint stores: see
    /// [`Checkpoint::state_encoded`](crate::Checkpoint::state_encoded)).
    pub fn put(
        &mut self,
        key: &str,
        value: &serde_json::Value,
        version: u64,
        updated_at: u64,
        expires_at: Option<u64>,
    ) -> usize {
        self.out.push(PUT);
        put_bytes(&mut self.out, key.as_bytes());
        let at = self.out.len();
        encode_state_parts(value, version, updated_at, expires_at, &mut self.out);
        self.entries += 1;
        at
    }

    /// Records that `key` was deleted.
    pub fn delete(&mut self, key: &str) {
        self.out.push(DELETE);
        put_bytes(&mut self.out, key.as_bytes());
        self.entries += 1;
    }

    /// Records an idempotency id consumed by the batch.
    pub fn dedup(&mut self, key: &str, id: &str, expires_at: u64) {
        self.out.push(DEDUP);
        put_bytes(&mut self.out, key.as_bytes());
        put_bytes(&mut self.out, id.as_bytes());
        put_varint(&mut self.out, expires_at);
        self.entries += 1;
    }

    /// Records a source position covered by the batch.
    pub fn offset(&mut self, name: &str, seq: u64) {
        self.out.push(OFFSET);
        put_bytes(&mut self.out, name.as_bytes());
        put_varint(&mut self.out, seq);
        self.entries += 1;
    }

    /// Entries added so far.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Closes the record and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(END);
        self.out
    }
}

impl Drop for RecordEncoder<'_> {
    /// Writes the end tag if `finish` was not called, so a record is never left open.
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_writes_what_the_encoder_writes() {
        let state = KeyState {
            value: serde_json::json!({"a": [1, 2.5, "x"]}),
            version: 7,
            updated_at: 1_700_000_000_000,
            expires_at: Some(1_800_000_000_000),
        };
        let mut a = Vec::new();
        {
            let mut enc = RecordEncoder::new(&mut a, 3, 42);
            enc.change("k", Some(&state));
            enc.change("gone", None);
            enc.dedup("k", "id-1", 9);
            enc.offset("nats/0", 11);
            enc.finish();
        }
        let mut b = RecordBuilder::new(Vec::with_capacity(8), 3, 42);
        b.put(
            "k",
            &state.value,
            state.version,
            state.updated_at,
            state.expires_at,
        );
        b.delete("gone");
        b.dedup("k", "id-1", 9);
        b.offset("nats/0", 11);
        assert_eq!(b.entries(), 4);
        assert_eq!(b.finish(), a);
    }

    use crate::state::tests::arb_state;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = LogRecord> {
        (
            any::<u16>(),
            any::<u64>(),
            prop::collection::vec((".{0,8}", proptest::option::of(arb_state())), 0..8),
            prop::collection::vec((".{0,8}", ".{0,8}", any::<u64>()), 0..4),
            prop::collection::vec((".{0,8}", any::<u64>()), 0..3),
        )
            .prop_map(|(shard, seq, changes, dedup, offsets)| LogRecord {
                shard,
                seq,
                changes,
                dedup: dedup
                    .into_iter()
                    .map(|(key, id, expires_at)| DedupEntry {
                        key,
                        id,
                        expires_at,
                    })
                    .collect(),
                offsets,
            })
    }

    proptest! {
        #[test]
        fn round_trips(rec in arb_record()) {
            let mut buf = Vec::new();
            encode_record(&rec, &mut buf);
            prop_assert_eq!(decode_record(&buf).ok(), Some(rec));
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_record(&bytes);
        }

        #[test]
        fn damaged_records_never_panic(rec in arb_record(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut buf = Vec::new();
            encode_record(&rec, &mut buf);
            prop_assert!(decode_record(&buf[..cut.index(buf.len())]).is_err());
            let i = flip.index(buf.len());
            buf[i] ^= 1 << bit;
            let _ = decode_record(&buf);
        }
    }

    #[test]
    fn dropping_the_encoder_closes_the_record() {
        let mut buf = Vec::new();
        {
            let mut enc = RecordEncoder::new(&mut buf, 1, 2);
            enc.change("k", None);
        }
        let rec = decode_record(&buf).expect("closed by drop");
        assert_eq!(rec.changes, vec![("k".to_owned(), None)]);
    }

    #[test]
    fn a_counter_change_costs_about_27_bytes() {
        let mut buf = Vec::new();
        let mut enc = RecordEncoder::new(&mut buf, 0, 1);
        for i in 0..1000u64 {
            let s = KeyState {
                value: serde_json::Value::from(i),
                version: i,
                updated_at: 1_764_000_000_000,
                expires_at: None,
            };
            enc.change(&format!("counter:{i:06}"), Some(&s));
        }
        enc.finish();
        // 1 tag + 1 len + 14 key + 1 header + 2 version + 6 updated_at + 2 value
        assert!(buf.len() <= 27 * 1000 + 16, "{} bytes", buf.len());
    }
}
