//! The compact binary encodings of protocol version 1: events (the body of an
//! `EVENTS_BIN` frame) and results (the body of an `ACK` frame). The layout is
//! specified in docs/protocol.md; this module is its only implementation.
//!
//! Invariants:
//! - Decoding never panics and never reads past its input; a length or count
//!   is checked against the bytes left before anything is allocated for it.
//! - Structure errors (truncation, an unknown value tag, reserved flag bits,
//!   trailing bytes) fail the whole body with [`Malformed`]: past one of them
//!   the event boundaries are lost. Content errors inside a well-framed event
//!   (a key that is not UTF-8, JSON text that does not parse, an unknown op
//!   code, a non-finite float) reject only that event, as a
//!   [`Rejection`], and decoding goes on with the next event.
//! - Encoding an `incr` appends bytes to the caller's buffer and allocates
//!   nothing.

use bytes::{BufMut, BytesMut};
use serde_json::{Number, Value};
use statecraft_engine::{Event, EventResult, Op, RejectCode, Rejection};

use super::varint;

/// Op codes on the wire.
pub mod op {
    /// `set`
    pub const SET: u8 = 0;
    /// `merge`
    pub const MERGE: u8 = 1;
    /// `incr`
    pub const INCR: u8 = 2;
    /// `append`
    pub const APPEND: u8 = 3;
    /// `max`
    pub const MAX: u8 = 4;
    /// `min`
    pub const MIN: u8 = 5;
    /// `delete`
    pub const DELETE: u8 = 6;
    /// A custom op; its name (a string) follows the op byte.
    pub const CUSTOM: u8 = 0xff;
}

/// Flag bits: which optional fields follow the key, in this order.
pub mod flag {
    /// A value (tag + payload) follows.
    pub const VALUE: u8 = 1 << 0;
    /// A `path` string follows.
    pub const PATH: u8 = 1 << 1;
    /// An `id` string follows.
    pub const ID: u8 = 1 << 2;
    /// An `if_version` varint follows.
    pub const IF_VERSION: u8 = 1 << 3;
    /// A `ttl_s` varint follows.
    pub const TTL: u8 = 1 << 4;
    /// A `max_len` varint follows.
    pub const MAX_LEN: u8 = 1 << 5;
    /// Bits that must be zero in version 1.
    pub const RESERVED: u8 = 0b1100_0000;
}

/// Value tags.
pub mod tag {
    /// JSON `null`.
    pub const NULL: u8 = 0;
    /// JSON `false`.
    pub const FALSE: u8 = 1;
    /// JSON `true`.
    pub const TRUE: u8 = 2;
    /// A signed integer, zigzag varint (the counter fast path).
    pub const INT: u8 = 3;
    /// An unsigned integer above `i64::MAX`, varint.
    pub const UINT: u8 = 4;
    /// A float: 8 bytes, IEEE 754 binary64, little-endian.
    pub const FLOAT: u8 = 5;
    /// A string: varint length + UTF-8 bytes.
    pub const STRING: u8 = 6;
    /// Any JSON (objects, arrays): varint length + JSON text.
    pub const JSON: u8 = 7;
}

/// Result status codes in an `ACK` body.
pub mod status {
    /// `applied` + version varint.
    pub const APPLIED: u8 = 0;
    /// `duplicate`.
    pub const DUPLICATE: u8 = 1;
    /// `conflict` + current_version varint.
    pub const CONFLICT: u8 = 2;
    /// `rejected` + code string + message string.
    pub const REJECTED: u8 = 3;
    /// `overloaded`.
    pub const OVERLOADED: u8 = 4;
    /// `accepted` (ack = none).
    pub const ACCEPTED: u8 = 5;
}

/// A body whose structure is broken: the whole frame is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

impl Malformed {
    fn new(what: impl Into<String>) -> Self {
        Malformed(what.into())
    }
}

// ---------------------------------------------------------------- encoding

/// Appends a string: varint length + bytes.
#[inline]
pub fn put_str(buf: &mut BytesMut, s: &str) {
    varint::put_u64(buf, s.len() as u64);
    buf.put_slice(s.as_bytes());
}

/// Appends an `incr` of `key` by `by`: the fast path of the load generator.
#[inline]
pub fn put_incr(buf: &mut BytesMut, key: &str, by: i64) {
    buf.put_u8(op::INCR);
    buf.put_u8(flag::VALUE);
    put_str(buf, key);
    buf.put_u8(tag::INT);
    varint::put_i64(buf, by);
}

/// Appends a `set` of `key` to `value`.
pub fn put_set(buf: &mut BytesMut, key: &str, value: &Value) {
    buf.put_u8(op::SET);
    buf.put_u8(flag::VALUE);
    put_str(buf, key);
    put_value(buf, value);
}

/// Appends one event with every field it has.
pub fn put_event(buf: &mut BytesMut, e: &Event) {
    match &e.op {
        Op::Set => buf.put_u8(op::SET),
        Op::Merge => buf.put_u8(op::MERGE),
        Op::Incr => buf.put_u8(op::INCR),
        Op::Append => buf.put_u8(op::APPEND),
        Op::Max => buf.put_u8(op::MAX),
        Op::Min => buf.put_u8(op::MIN),
        Op::Delete => buf.put_u8(op::DELETE),
        other => {
            buf.put_u8(op::CUSTOM);
            put_str(buf, other.as_str());
        }
    }
    let mut flags = 0u8;
    if e.value.is_some() {
        flags |= flag::VALUE;
    }
    if e.path.is_some() {
        flags |= flag::PATH;
    }
    if e.id.is_some() {
        flags |= flag::ID;
    }
    if e.if_version.is_some() {
        flags |= flag::IF_VERSION;
    }
    if e.ttl_s.is_some() {
        flags |= flag::TTL;
    }
    if e.max_len.is_some() {
        flags |= flag::MAX_LEN;
    }
    buf.put_u8(flags);
    put_str(buf, &e.key);
    if let Some(v) = &e.value {
        put_value(buf, v);
    }
    if let Some(p) = &e.path {
        put_str(buf, p);
    }
    if let Some(id) = &e.id {
        put_str(buf, id);
    }
    if let Some(v) = e.if_version {
        varint::put_u64(buf, v);
    }
    if let Some(t) = e.ttl_s {
        varint::put_u64(buf, t);
    }
    if let Some(m) = e.max_len {
        varint::put_u64(buf, m as u64);
    }
}

/// Appends a value: tag + payload. Objects and arrays go as JSON text,
/// serialized straight into `buf` behind a fixed-width (5-byte, non-minimal)
/// length varint, so no scratch buffer is needed.
pub fn put_value(buf: &mut BytesMut, v: &Value) {
    match v {
        Value::Null => buf.put_u8(tag::NULL),
        Value::Bool(false) => buf.put_u8(tag::FALSE),
        Value::Bool(true) => buf.put_u8(tag::TRUE),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                buf.put_u8(tag::INT);
                varint::put_i64(buf, i);
            } else if let Some(u) = n.as_u64() {
                buf.put_u8(tag::UINT);
                varint::put_u64(buf, u);
            } else {
                buf.put_u8(tag::FLOAT);
                buf.put_f64_le(n.as_f64().unwrap_or(0.0));
            }
        }
        Value::String(s) => {
            buf.put_u8(tag::STRING);
            put_str(buf, s);
        }
        Value::Array(_) | Value::Object(_) => {
            buf.put_u8(tag::JSON);
            let at = buf.len();
            buf.put_slice(&[0x80, 0x80, 0x80, 0x80, 0x00]);
            let start = buf.len();
            // Writing into a BytesMut cannot fail; serializing a Value has no
            // other error source.
            let _ = serde_json::to_writer(buf.writer_ref(), v);
            let len = (buf.len() - start) as u64;
            let slot = &mut buf[at..at + 5];
            for (i, b) in slot.iter_mut().enumerate() {
                let bits = ((len >> (7 * i)) & 0x7f) as u8;
                *b = if i < 4 { bits | 0x80 } else { bits };
            }
        }
    }
}

/// `BytesMut::writer` takes the buffer by value; this borrows it instead.
trait WriterRef {
    fn writer_ref(&mut self) -> BytesMutWriter<'_>;
}

impl WriterRef for BytesMut {
    fn writer_ref(&mut self) -> BytesMutWriter<'_> {
        BytesMutWriter(self)
    }
}

struct BytesMutWriter<'a>(&'a mut BytesMut);

impl std::io::Write for BytesMutWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Appends the results of one frame: count varint, then per result a status
/// byte and its fields.
pub fn put_results(buf: &mut BytesMut, results: &[EventResult]) {
    varint::put_u64(buf, results.len() as u64);
    for r in results {
        match r {
            EventResult::Applied { version } => {
                buf.put_u8(status::APPLIED);
                varint::put_u64(buf, *version);
            }
            EventResult::Duplicate => buf.put_u8(status::DUPLICATE),
            EventResult::Conflict { current_version } => {
                buf.put_u8(status::CONFLICT);
                varint::put_u64(buf, *current_version);
            }
            EventResult::Rejected { code, message } => {
                buf.put_u8(status::REJECTED);
                put_str(buf, code.as_str());
                put_str(buf, message);
            }
            EventResult::Overloaded => buf.put_u8(status::OVERLOADED),
            EventResult::Accepted => buf.put_u8(status::ACCEPTED),
            // A status added to the engine later: say so rather than lie.
            other => {
                buf.put_u8(status::REJECTED);
                put_str(buf, "unknown_status");
                put_str(buf, other.status());
            }
        }
    }
}

// ---------------------------------------------------------------- decoding

/// A cursor over a body. Every read checks the bytes left.
struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    fn u8(&mut self, what: &str) -> Result<u8, Malformed> {
        match self.input.split_first() {
            Some((&b, rest)) => {
                self.input = rest;
                Ok(b)
            }
            None => Err(truncated(what)),
        }
    }

    #[inline]
    fn varint(&mut self, what: &str) -> Result<u64, Malformed> {
        varint::get_u64(&mut self.input).ok_or_else(|| bad_varint(what))
    }

    #[inline]
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], Malformed> {
        let len = self.varint(what)?;
        if len > self.input.len() as u64 {
            return Err(Malformed::new(format!(
                "{what}: length {len} runs past the end of the frame ({} bytes left)",
                self.input.len()
            )));
        }
        let (head, rest) = self.input.split_at(len as usize);
        self.input = rest;
        Ok(head)
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Malformed> {
        if self.input.len() < N {
            return Err(truncated(what));
        }
        let (head, rest) = self.input.split_at(N);
        self.input = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }
}

fn truncated(what: &str) -> Malformed {
    Malformed::new(format!("{what}: the frame ends early"))
}

fn bad_varint(what: &str) -> Malformed {
    Malformed::new(format!(
        "{what}: bad varint (truncated, longer than 10 bytes, or over u64)"
    ))
}

/// A string field: the first content error of the event is kept in `err`
/// and decoding goes on (the bounds are known).
fn string(
    bytes: &[u8],
    what: &str,
    code: RejectCode,
    err: &mut Option<Rejection>,
) -> Option<String> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Some(s.to_owned()),
        Err(e) => {
            if err.is_none() {
                *err = Some(Rejection::new(
                    code,
                    format!("the {what} is not valid UTF-8: {e}"),
                ));
            }
            None
        }
    }
}

/// Decodes an `EVENTS_BIN` body after its header: a u32 big-endian count,
/// then that many events. One item per event, in order.
pub fn decode_events(body: &[u8]) -> Result<Vec<Result<Event, Rejection>>, Malformed> {
    let mut r = Reader { input: body };
    let count = u32::from_be_bytes(r.array::<4>("event count")?);
    // Every event takes at least 3 bytes (op, flags, key length): a hostile
    // count cannot make us allocate more than the body can hold.
    let cap = (count as usize).min(r.input.len() / 3);
    let mut out = Vec::with_capacity(cap);
    for i in 0..count {
        out.push(decode_one(&mut r).map_err(|m| Malformed(format!("event {i}: {}", m.0)))?);
    }
    if !r.input.is_empty() {
        return Err(Malformed::new(format!(
            "{} bytes after the last of {count} events",
            r.input.len()
        )));
    }
    Ok(out)
}

#[inline]
fn decode_one(r: &mut Reader<'_>) -> Result<Result<Event, Rejection>, Malformed> {
    let mut err: Option<Rejection> = None;
    let op_code = r.u8("op")?;
    let op = match op_code {
        op::SET => Some(Op::Set),
        op::MERGE => Some(Op::Merge),
        op::INCR => Some(Op::Incr),
        op::APPEND => Some(Op::Append),
        op::MAX => Some(Op::Max),
        op::MIN => Some(Op::Min),
        op::DELETE => Some(Op::Delete),
        op::CUSTOM => {
            let name = r.bytes("custom op name")?;
            string(name, "op name", RejectCode::UnknownOp, &mut err).map(|n| Op::parse(&n))
        }
        other => {
            err = Some(Rejection::new(
                RejectCode::UnknownOp,
                format!("unknown op code {other}"),
            ));
            None
        }
    };
    let flags = r.u8("flags")?;
    if flags & flag::RESERVED != 0 {
        return Err(Malformed::new(format!(
            "flags {flags:#04x} set reserved bits"
        )));
    }
    let key_bytes = r.bytes("key")?;
    let key = string(key_bytes, "key", RejectCode::InvalidKey, &mut err);
    let value = if flags & flag::VALUE != 0 {
        decode_value(r, &mut err)?
    } else {
        None
    };
    let path = if flags & flag::PATH != 0 {
        string(r.bytes("path")?, "path", RejectCode::InvalidPath, &mut err)
    } else {
        None
    };
    let id = if flags & flag::ID != 0 {
        string(r.bytes("id")?, "id", RejectCode::InvalidEvent, &mut err)
    } else {
        None
    };
    let if_version = if flags & flag::IF_VERSION != 0 {
        Some(r.varint("if_version")?)
    } else {
        None
    };
    let ttl_s = if flags & flag::TTL != 0 {
        Some(r.varint("ttl_s")?)
    } else {
        None
    };
    let max_len = if flags & flag::MAX_LEN != 0 {
        let m = r.varint("max_len")?;
        Some(usize::try_from(m).unwrap_or(usize::MAX))
    } else {
        None
    };
    if let Some(rejection) = err {
        return Ok(Err(rejection));
    }
    match (key, op) {
        (Some(key), Some(op)) => Ok(Ok(Event {
            key,
            op,
            path,
            value,
            id,
            if_version,
            ttl_s,
            max_len,
        })),
        // Unreachable in practice: a None above always recorded `err`.
        _ => Ok(Err(Rejection::new(
            RejectCode::InvalidEvent,
            "the event could not be decoded",
        ))),
    }
}

/// Decodes a value; `Ok(None)` with `err` set when the value is well framed
/// but unusable (bad UTF-8, bad JSON text, a non-finite float).
#[inline]
fn decode_value(
    r: &mut Reader<'_>,
    err: &mut Option<Rejection>,
) -> Result<Option<Value>, Malformed> {
    let t = r.u8("value tag")?;
    let v = match t {
        tag::NULL => Value::Null,
        tag::FALSE => Value::Bool(false),
        tag::TRUE => Value::Bool(true),
        tag::INT => Value::Number(Number::from(
            varint::get_i64(&mut r.input).ok_or_else(|| bad_varint("int value"))?,
        )),
        tag::UINT => Value::Number(Number::from(r.varint("uint value")?)),
        tag::FLOAT => {
            let f = f64::from_le_bytes(r.array::<8>("float value")?);
            match Number::from_f64(f) {
                Some(n) => Value::Number(n),
                None => {
                    if err.is_none() {
                        *err = Some(Rejection::new(
                            RejectCode::InvalidOperand,
                            format!("the value {f} is not a finite number (JSON has none)"),
                        ));
                    }
                    return Ok(None);
                }
            }
        }
        tag::STRING => {
            let b = r.bytes("string value")?;
            match string(b, "string value", RejectCode::InvalidJson, err) {
                Some(s) => Value::String(s),
                None => return Ok(None),
            }
        }
        tag::JSON => {
            let b = r.bytes("JSON value")?;
            match serde_json::from_slice::<Value>(b) {
                Ok(v) => v,
                Err(e) => {
                    if err.is_none() {
                        *err = Some(json_rejection(&e));
                    }
                    return Ok(None);
                }
            }
        }
        other => {
            return Err(Malformed::new(format!("unknown value tag {other}")));
        }
    };
    Ok(Some(v))
}

/// The rejection for JSON text that did not parse (mirrors the engine's
/// decoder: serde's recursion limit is `too_deep`, the rest `invalid_json`).
fn json_rejection(e: &serde_json::Error) -> Rejection {
    let text = e.to_string();
    if text.starts_with("recursion limit exceeded") {
        Rejection::new(
            RejectCode::TooDeep,
            format!("the JSON value nests more than 128 levels deep: {text}"),
        )
    } else {
        Rejection::new(RejectCode::InvalidJson, format!("the JSON value: {text}"))
    }
}

/// Maps a code's wire name back to the code. Unknown names (a newer server)
/// come back as `invalid_event`, with the name kept in the message.
pub fn reject_code(name: &str) -> Option<RejectCode> {
    serde_json::from_value(Value::String(name.to_owned())).ok()
}

/// Decodes an `ACK` body after its seq: count varint + results.
pub fn decode_results(body: &[u8]) -> Result<Vec<EventResult>, Malformed> {
    let mut r = Reader { input: body };
    let count = r.varint("result count")?;
    // Every result takes at least one byte.
    if count > r.input.len() as u64 {
        return Err(Malformed::new(format!(
            "result count {count} is more than the {} bytes left",
            r.input.len()
        )));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let s = r.u8("status")?;
        out.push(match s {
            status::APPLIED => EventResult::Applied {
                version: r.varint("version")?,
            },
            status::DUPLICATE => EventResult::Duplicate,
            status::CONFLICT => EventResult::Conflict {
                current_version: r.varint("current_version")?,
            },
            status::REJECTED => {
                let code = String::from_utf8_lossy(r.bytes("reject code")?).into_owned();
                let message = String::from_utf8_lossy(r.bytes("reject message")?).into_owned();
                match reject_code(&code) {
                    Some(code) => EventResult::Rejected { code, message },
                    None => EventResult::Rejected {
                        code: RejectCode::InvalidEvent,
                        message: format!("[{code}] {message}"),
                    },
                }
            }
            status::OVERLOADED => EventResult::Overloaded,
            status::ACCEPTED => EventResult::Accepted,
            other => return Err(Malformed::new(format!("unknown result status {other}"))),
        });
    }
    if !r.input.is_empty() {
        return Err(Malformed::new(format!(
            "{} bytes after the last result",
            r.input.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(events: &[Event]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32(events.len() as u32);
        for e in events {
            put_event(&mut buf, e);
        }
        buf
    }

    #[test]
    fn events_round_trip() {
        let events = vec![
            Event::incr("user:1/clicks", 1),
            Event::incr("neg", -5),
            Event::set("doc", json!({"a": [1, 2, {"b": null}], "c": "x"})),
            Event::set("big", json!(u64::MAX)),
            Event::set("float", json!(1.5)),
            Event::set("s", json!("hé")),
            Event::set("n", Value::Null),
            Event::set("t", json!(true)),
            Event::new("gone", Op::Delete),
            Event::new("a", Op::Append)
                .with_value(json!(3))
                .with_max_len(10)
                .with_path("/list")
                .with_id("evt-1")
                .with_if_version(7)
                .with_ttl(60),
            Event::new("c", Op::parse("double")).with_value(json!(2)),
        ];
        let buf = body(&events);
        let decoded: Vec<Event> = decode_events(&buf)
            .expect("well formed")
            .into_iter()
            .map(|r| r.expect("valid"))
            .collect();
        assert_eq!(decoded, events);
    }

    #[test]
    fn content_errors_reject_one_event_only() {
        let mut buf = BytesMut::new();
        buf.put_u32(3);
        put_incr(&mut buf, "ok1", 1);
        // A key that is not UTF-8.
        buf.put_u8(op::INCR);
        buf.put_u8(flag::VALUE);
        varint::put_u64(&mut buf, 2);
        buf.put_slice(&[0xff, 0xfe]);
        buf.put_u8(tag::INT);
        varint::put_i64(&mut buf, 1);
        put_incr(&mut buf, "ok2", 2);
        let items = decode_events(&buf).expect("well formed");
        assert!(items[0].is_ok());
        assert_eq!(
            items[1].as_ref().expect_err("bad key").code,
            RejectCode::InvalidKey
        );
        assert!(items[2].is_ok());
    }

    #[test]
    fn structure_errors_fail_the_body() {
        let mut buf = body(&[Event::incr("k", 1)]);
        buf.truncate(buf.len() - 1);
        assert!(decode_events(&buf).is_err());
        let mut buf = body(&[Event::incr("k", 1)]);
        buf.put_u8(0);
        assert!(decode_events(&buf).is_err(), "trailing bytes");
        let mut buf = BytesMut::new();
        buf.put_u32(1);
        buf.put_slice(&[op::SET, flag::VALUE, 1, b'k', 99]);
        assert!(decode_events(&buf).is_err(), "unknown tag");
        let mut buf = BytesMut::new();
        buf.put_u32(u32::MAX);
        assert!(decode_events(&buf).is_err(), "count past the body");
    }

    #[test]
    fn results_round_trip() {
        let results = vec![
            EventResult::Applied { version: 1 },
            EventResult::Applied { version: 300 },
            EventResult::Duplicate,
            EventResult::Conflict { current_version: 9 },
            EventResult::rejected(RejectCode::TypeError, "incr on a string"),
            EventResult::Overloaded,
            EventResult::Accepted,
        ];
        let mut buf = BytesMut::new();
        put_results(&mut buf, &results);
        assert_eq!(decode_results(&buf).expect("decodes"), results);
    }

    #[test]
    fn incr_is_compact() {
        let mut buf = BytesMut::new();
        put_incr(&mut buf, "key:00001", 1);
        assert_eq!(buf.len(), 1 + 1 + 1 + 9 + 1 + 1);
    }
}
