//! [`KeyState`] — what the store keeps per key — and its compact binary form.
//!
//! Layout (all integers LEB128 varints unless noted):
//!
//! ```text
//! header   1 byte   low nibble = value tag, 0x10 = has expires_at, 0xE0 = 0 (reserved)
//! version  varint
//! updated  varint   ms since the Unix epoch
//! expires  varint   ms since the Unix epoch; present only if the header says so
//! payload  by tag:  0 null, 1 false, 2 true            (nothing)
//!                   3 i64                              (zigzag varint)
//!                   4 u64 above i64::MAX               (varint)
//!                   5 f64                              (8 bytes, little endian)
//!                   6 string                           (varint length + UTF-8)
//!                   7 array/object                     (varint length + compact JSON text)
//! ```
//!
//! A counter at version 1,000 costs 10–12 bytes and never goes through JSON.
//!
//! Invariants: the encoding is self-delimiting (log records embed states back
//! to back) and decoding is total — any byte string either decodes to a
//! `KeyState` or yields [`StoreError::Corrupt`]; it never panics.
//! `decode_state(encode_state(s)) == s` for every state whose value nests at
//! most 127 levels deep (serde_json's parser limit; the engine's nesting limit
//! is far below it).

use crate::{
    error::StoreError,
    varint::{Reader, put_bytes, put_varint, unzigzag, zigzag},
};
use serde_json::{Number, Value};

/// The materialized state of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyState {
    /// The key's current JSON value.
    pub value: Value,
    /// Grows by one per applied event on the key.
    pub version: u64,
    /// Milliseconds since the Unix epoch of the last applied event.
    pub updated_at: u64,
    /// Milliseconds since the Unix epoch at which the key expires. The store
    /// returns expired keys from [`get`](crate::Store::get) as they are; the
    /// engine decides visibility ([`KeyState::is_live`]).
    pub expires_at: Option<u64>,
}

impl KeyState {
    /// True unless the key has an expiry at or before `now_ms`.
    #[must_use]
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at.is_none_or(|e| e > now_ms)
    }
}

const TAG_NULL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_I64: u8 = 3;
const TAG_U64: u8 = 4;
const TAG_F64: u8 = 5;
const TAG_STRING: u8 = 6;
const TAG_JSON: u8 = 7;
const FLAG_EXPIRES: u8 = 0x10;
const RESERVED_BITS: u8 = 0xE0;

/// Appends the binary form of `state` to `out`.
pub fn encode_state(state: &KeyState, out: &mut Vec<u8>) {
    encode_state_parts(
        &state.value,
        state.version,
        state.updated_at,
        state.expires_at,
        out,
    );
}

/// Appends the binary form of a state given by its parts (no `KeyState` to
/// build, so the caller's value is not cloned): the same bytes as
/// [`encode_state`].
pub fn encode_state_parts(
    value: &Value,
    version: u64,
    updated_at: u64,
    expires_at: Option<u64>,
    out: &mut Vec<u8>,
) {
    let header_at = out.len();
    out.push(0);
    put_varint(out, version);
    put_varint(out, updated_at);
    let mut header = 0u8;
    if let Some(e) = expires_at {
        header |= FLAG_EXPIRES;
        put_varint(out, e);
    }
    header |= match value {
        Value::Null => TAG_NULL,
        Value::Bool(false) => TAG_FALSE,
        Value::Bool(true) => TAG_TRUE,
        Value::Number(n) => encode_number(n, out),
        Value::String(s) => {
            put_bytes(out, s.as_bytes());
            TAG_STRING
        }
        v @ (Value::Array(_) | Value::Object(_)) => {
            encode_json_text(v, out);
            TAG_JSON
        }
    };
    out[header_at] = header;
}

fn encode_number(n: &Number, out: &mut Vec<u8>) -> u8 {
    if let Some(i) = n.as_i64() {
        put_varint(out, zigzag(i));
        TAG_I64
    } else if let Some(u) = n.as_u64() {
        put_varint(out, u);
        TAG_U64
    } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
        out.extend_from_slice(&f.to_le_bytes());
        TAG_F64
    } else {
        // Only reachable with serde_json's `arbitrary_precision`: keep the text.
        encode_json_text(&Value::Number(n.clone()), out);
        TAG_JSON
    }
}

fn encode_json_text(v: &Value, out: &mut Vec<u8>) {
    thread_local! {
        /// The text before its length is known; reused (no allocation per
        /// document on the apply path).
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        let Ok(mut text) = scratch.try_borrow_mut() else {
            // Re-entered (cannot happen: serializing calls no encoder).
            let text = serde_json::to_vec(v).unwrap_or_default();
            put_bytes(out, &text);
            return;
        };
        text.clear();
        // Serializing a `Value` into memory cannot fail: its map keys are
        // strings and `Vec<u8>` writes are infallible.
        let _ = serde_json::to_writer(&mut *text, v);
        put_bytes(out, &text);
        if text.capacity() > 1 << 20 {
            *text = Vec::new();
        }
    });
}

/// Decodes one state that occupies all of `bytes`.
///
/// # Errors
///
/// [`StoreError::Corrupt`] if the bytes are not exactly one encoded state.
pub fn decode_state(bytes: &[u8]) -> Result<KeyState, StoreError> {
    let mut r = Reader::new(bytes, "key state");
    let s = read_state(&mut r)?;
    r.expect_end()?;
    Ok(s)
}

/// Decodes one state from the reader's position (states are self-delimiting).
pub(crate) fn read_state(r: &mut Reader<'_>) -> Result<KeyState, StoreError> {
    let header = r.u8()?;
    if header & RESERVED_BITS != 0 {
        return Err(r.corrupt("reserved header bits set"));
    }
    let version = r.varint()?;
    let updated_at = r.varint()?;
    let expires_at = if header & FLAG_EXPIRES != 0 {
        Some(r.varint()?)
    } else {
        None
    };
    let value = match header & 0x0f {
        TAG_NULL => Value::Null,
        TAG_FALSE => Value::Bool(false),
        TAG_TRUE => Value::Bool(true),
        TAG_I64 => Value::from(unzigzag(r.varint()?)),
        TAG_U64 => Value::from(r.varint()?),
        TAG_F64 => {
            let f = f64::from_le_bytes(r.array::<8>()?);
            Value::Number(Number::from_f64(f).ok_or_else(|| r.corrupt("non-finite float"))?)
        }
        TAG_STRING => Value::String(r.str()?.to_owned()),
        TAG_JSON => {
            let text = r.bytes()?;
            serde_json::from_slice(text).map_err(|e| r.corrupt(&format!("bad JSON text: {e}")))?
        }
        _ => return Err(r.corrupt("unknown value tag")),
    };
    Ok(KeyState {
        value,
        version,
        updated_at,
        expires_at,
    })
}

/// The length of the one encoded state at the start of `bytes` (states are
/// self-delimiting), found without decoding its value: how a checkpoint
/// reuses the after-image bytes of a log record instead of encoding the
/// value again.
///
/// # Errors
///
/// [`StoreError::Corrupt`] if `bytes` does not start with a whole state.
pub fn encoded_state_len(bytes: &[u8]) -> Result<usize, StoreError> {
    let mut r = Reader::new(bytes, "key state");
    let header = r.u8()?;
    if header & RESERVED_BITS != 0 {
        return Err(r.corrupt("reserved header bits set"));
    }
    r.varint()?;
    r.varint()?;
    if header & FLAG_EXPIRES != 0 {
        r.varint()?;
    }
    match header & 0x0f {
        TAG_NULL | TAG_FALSE | TAG_TRUE => {}
        TAG_I64 | TAG_U64 => {
            r.varint()?;
        }
        TAG_F64 => {
            r.array::<8>()?;
        }
        TAG_STRING | TAG_JSON => {
            r.bytes()?;
        }
        _ => return Err(r.corrupt("unknown value tag")),
    }
    Ok(bytes.len() - r.remaining())
}

/// Reads only the expiry of an encoded state (for index upkeep), without
/// decoding its value.
pub(crate) fn peek_expires_at(bytes: &[u8]) -> Result<Option<u64>, StoreError> {
    let mut r = Reader::new(bytes, "key state");
    let header = r.u8()?;
    if header & RESERVED_BITS != 0 {
        return Err(r.corrupt("reserved header bits set"));
    }
    r.varint()?;
    r.varint()?;
    if header & FLAG_EXPIRES != 0 {
        Ok(Some(r.varint()?))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Arbitrary JSON values, nested a few levels (numbers of every kind).
    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter_map("finite", Number::from_f64)
                .prop_map(Value::Number),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    pub(crate) fn arb_state() -> impl Strategy<Value = KeyState> {
        (
            arb_value(),
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(value, version, updated_at, expires_at)| KeyState {
                value,
                version,
                updated_at,
                expires_at,
            })
    }

    proptest! {
        #[test]
        fn round_trips(s in arb_state()) {
            let mut buf = Vec::new();
            encode_state(&s, &mut buf);
            prop_assert_eq!(decode_state(&buf).ok(), Some(s));
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_state(&bytes);
        }

        #[test]
        fn damaged_encodings_never_panic(s in arb_state(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut buf = Vec::new();
            encode_state(&s, &mut buf);
            let _ = decode_state(&buf[..cut.index(buf.len())]);
            let i = flip.index(buf.len());
            buf[i] ^= 1 << bit;
            let _ = decode_state(&buf);
        }
    }

    #[test]
    fn counters_are_small() {
        let s = KeyState {
            value: json!(1000),
            version: 1000,
            updated_at: 1_764_000_000_000,
            expires_at: None,
        };
        let mut buf = Vec::new();
        encode_state(&s, &mut buf);
        assert!(buf.len() <= 12, "{} bytes", buf.len());
    }

    #[test]
    fn numbers_keep_their_kind() {
        for v in [
            json!(1.0),
            json!(-1),
            json!(u64::MAX),
            json!(0.5),
            json!(i64::MIN),
        ] {
            let s = KeyState {
                value: v.clone(),
                version: 1,
                updated_at: 2,
                expires_at: Some(3),
            };
            let mut buf = Vec::new();
            encode_state(&s, &mut buf);
            let back = decode_state(&buf).expect("decodes");
            assert_eq!(peek_expires_at(&buf).ok(), Some(Some(3)));
            assert_eq!(back.value, v);
            assert_eq!(back.value.is_f64(), v.is_f64());
        }
    }

    #[test]
    fn truncation_and_trailing_bytes_are_corrupt() {
        let s = KeyState {
            value: json!({"a": [1, 2, "x"]}),
            version: 7,
            updated_at: 9,
            expires_at: None,
        };
        let mut buf = Vec::new();
        encode_state(&s, &mut buf);
        for n in 0..buf.len() {
            assert!(
                matches!(decode_state(&buf[..n]), Err(StoreError::Corrupt { .. })),
                "prefix {n}"
            );
        }
        buf.push(0);
        assert!(matches!(
            decode_state(&buf),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
