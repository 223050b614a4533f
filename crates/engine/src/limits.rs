//! Input limits and the decoders that enforce them: the "decode/validate"
//! stage of DESIGN.md §1, turning bytes into [`Event`]s or per-event
//! [`Rejection`]s.
//!
//! Owns: [`Limits`] (key size, value size, nesting depth), [`Rejection`] (a
//! [`RejectCode`] plus a human message), size/depth measurement of values,
//! and the JSON / NDJSON / array-body decoders.
//!
//! Invariants:
//! - Nothing here recurses over a value: [`approx_value_bytes`],
//!   [`value_depth`] and validation walk with an explicit stack, so a value of
//!   any depth built by a library caller is measured without growing the call
//!   stack. Parsing leans on serde_json's recursion limit (128 nested
//!   containers), so hostile input such as 100,000 `[` is an error, never a
//!   stack overflow. (Do not enable serde_json's `unbounded_depth` feature: a
//!   test here would catch it.)
//! - An event that passes [`Limits::validate`] writes nothing deeper than
//!   `max_depth` levels into its key: the path's tokens (plus one for the
//!   array `append` pushes onto) count toward the depth of `value`. Stored
//!   values therefore stay re-readable by serde_json's parser, and the
//!   recursive parts of serde_json that ops and the store use (`clone`, `drop`,
//!   serialization) stay shallow.
//! - A bad event is a per-event `Err`, never a failure of its neighbours: one
//!   malformed NDJSON line or array element does not affect the others.

use std::fmt;

use serde::de::IgnoredAny;
use serde_json::error::Category;
use serde_json::{Map, Value};

use crate::event::{Event, EventResult, Op, RejectCode};
use crate::pointer::Pointer;

/// Longest key any configuration may allow (bytes): what the store can hold
/// ([`statecraft_store::MAX_KEY_BYTES`]). `max_key_bytes` above it is a
/// configuration error (`EngineConfig::validate`), and [`Limits::validate`] never
/// admits a longer key whatever the configuration says.
pub const MAX_KEY_BYTES: usize = statecraft_store::MAX_KEY_BYTES;

/// Longest idempotency id (bytes). Ids are kept in memory for the dedup
/// window and logged with every event, so they are short tokens (a UUID is
/// 36 bytes); far below what the store can hold
/// ([`statecraft_store::MAX_ID_BYTES`]). An id must also be non-empty.
pub const MAX_ID_BYTES: usize = 1024;

/// Limits every event is checked against before it reaches a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest key, in UTF-8 bytes (keys are 1..=this). Default 1024.
    pub max_key_bytes: usize,
    /// Largest operand, as an estimate of its serialized JSON size
    /// ([`approx_value_bytes`]). Default 1 MiB.
    pub max_value_bytes: usize,
    /// Deepest nesting of containers an event may write into its key, path
    /// levels included ([`Limits::validate`]). Default 64. Keep it well under
    /// serde_json's parser limit of 128, or stored values could become
    /// unreadable at recovery.
    pub max_depth: usize,
}

impl Limits {
    /// The defaults: 1024-byte keys, 1 MiB values, depth 64.
    pub const DEFAULT: Limits = Limits {
        max_key_bytes: 1024,
        max_value_bytes: 1 << 20,
        max_depth: 64,
    };

    /// Checks one event against the limits:
    /// - the key is 1..=`max_key_bytes` bytes ([`RejectCode::InvalidKey`]);
    /// - the path, if any, is a valid JSON Pointer ([`RejectCode::InvalidPath`]);
    /// - the value's estimated size is at most `max_value_bytes`
    ///   ([`RejectCode::ValueTooLarge`]);
    /// - path tokens + (1 for `append`) + the value's nesting depth is at most
    ///   `max_depth` ([`RejectCode::TooDeep`]).
    ///
    /// Walks the value once, iteratively, stopping at the first excess. Op
    /// operands (an `incr` by a string, …) are checked by
    /// [`ops::apply`](crate::ops::apply), not here.
    pub fn validate(&self, event: &Event) -> Result<(), Rejection> {
        let key_len = event.key.len();
        if key_len == 0 {
            return Err(Rejection::new(RejectCode::InvalidKey, "the key is empty"));
        }
        let max_key = self.max_key_bytes.min(MAX_KEY_BYTES);
        if key_len > max_key {
            return Err(Rejection::new(
                RejectCode::InvalidKey,
                format!("the key is {key_len} bytes; the limit is {max_key} bytes"),
            ));
        }
        if let Some(id) = &event.id {
            if id.is_empty() {
                return Err(Rejection::new(
                    RejectCode::InvalidEvent,
                    "the id is empty (leave it out for no idempotency)",
                ));
            }
            if id.len() > MAX_ID_BYTES {
                return Err(Rejection::new(
                    RejectCode::InvalidEvent,
                    format!(
                        "the id is {} bytes; the limit is {MAX_ID_BYTES} bytes",
                        id.len()
                    ),
                ));
            }
        }
        let path_levels = match event.path.as_deref() {
            Some(path) => Pointer::check(path)?,
            None => 0,
        };
        let container_levels = usize::from(event.op == Op::Append);
        let base = path_levels.saturating_add(container_levels);
        let measured = match &event.value {
            Some(value) => measure(value, base, self.max_value_bytes, self.max_depth),
            None => Measured {
                bytes: 0,
                depth: base,
            },
        };
        if measured.bytes > self.max_value_bytes {
            return Err(Rejection::new(
                RejectCode::ValueTooLarge,
                format!(
                    "the value is larger than the limit of {} bytes (estimated as serialized JSON)",
                    self.max_value_bytes
                ),
            ));
        }
        if measured.depth > self.max_depth {
            let message = if base == 0 {
                format!(
                    "the value nests more than {} levels deep (the limit)",
                    self.max_depth
                )
            } else {
                format!(
                    "the event would write more than {} levels deep into its key (the limit): \
                     the value's depth counts on top of the path's {path_levels} level(s){}",
                    self.max_depth,
                    if container_levels > 0 {
                        " and the array that append pushes onto"
                    } else {
                        ""
                    }
                )
            };
            return Err(Rejection::new(RejectCode::TooDeep, message));
        }
        Ok(())
    }
}

impl Limits {
    /// True if `value` is at most `max_value_bytes` (estimated as
    /// [`approx_value_bytes`]; stops walking as soon as it is over).
    pub fn value_fits(&self, value: &Value) -> bool {
        measure(value, 0, self.max_value_bytes, usize::MAX).bytes <= self.max_value_bytes
    }

    /// The rejection for a key whose value would grow past
    /// `max_value_bytes` (an `append`, `merge` or path write).
    pub fn grown_too_large(&self) -> Rejection {
        Rejection::new(
            RejectCode::ValueTooLarge,
            format!(
                "the key's value would grow past the limit of {} bytes (estimated as \
                 serialized JSON); the key is unchanged",
                self.max_value_bytes
            ),
        )
    }
}

/// How much an event can add to its key's value ([`growth_bound`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// It cannot make the value larger than its operand alone (a whole-key
    /// `set`/`incr`/`max`/`min`, or `delete`; the operand was measured by
    /// [`Limits::validate`]).
    Bounded,
    /// It adds at most this many bytes (estimated like [`approx_value_bytes`]).
    AtMost(usize),
    /// Unknown (a custom op): the result must be measured.
    Unknown,
}

/// How much `event`, whose operand is `operand` (wherever the caller keeps
/// it), can add to its key's value: `append`, `merge` and any op with a path
/// into the value can grow it by about the operand plus what the path
/// creates (one container per token, each its token's bytes plus a few of
/// punctuation; a number written by `incr`/`max`/`min` is at most 24).
pub fn growth_bound(event: &Event, operand: Option<&Value>) -> Growth {
    let path = event.path.as_deref().map_or(0, str::len);
    match event.op {
        Op::Custom(_) => Growth::Unknown,
        Op::Delete => Growth::Bounded,
        Op::Append | Op::Merge => {
            Growth::AtMost(operand.map_or(0, approx_value_bytes) + path.saturating_mul(9) + 32)
        }
        _ if path > 0 => {
            Growth::AtMost(operand.map_or(0, approx_value_bytes) + path.saturating_mul(9) + 32)
        }
        _ => Growth::Bounded,
    }
}

/// Runs `apply` (which applies the event to its slot, e.g.
/// [`ops::apply`](crate::ops::apply)) on `slot`, but refuses a result larger
/// than `max_value_bytes` with [`Limits::grown_too_large`], leaving `slot`
/// unchanged. `growth` is the event's [`growth_bound`]. Cheap in the common
/// case: an event that cannot grow the value is applied at once; one that
/// can is applied in place when the current size plus its growth fits; only
/// near the limit (or for a custom op) is it applied to a copy that is
/// measured before it replaces the value.
pub fn apply_bounded(
    limits: &Limits,
    slot: &mut Option<Value>,
    growth: Growth,
    apply: impl FnOnce(&mut Option<Value>) -> Result<(), Rejection>,
) -> Result<(), Rejection> {
    let max = limits.max_value_bytes;
    match growth {
        Growth::Bounded => return apply(slot),
        Growth::AtMost(bytes) => {
            let now = slot
                .as_ref()
                .map_or(0, |v| measure(v, 0, max, usize::MAX).bytes);
            if now.saturating_add(bytes) <= max {
                return apply(slot);
            }
        }
        Growth::Unknown => {}
    }
    let mut trial = slot.clone();
    apply(&mut trial)?;
    if trial.as_ref().is_some_and(|v| !limits.value_fits(v)) {
        return Err(limits.grown_too_large());
    }
    *slot = trial;
    Ok(())
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// Why one event was refused: a machine-readable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable reason.
    pub code: RejectCode,
    /// Human-readable explanation, naming the offending field or path.
    pub message: String,
}

impl Rejection {
    /// A rejection with the given code and message.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Rejection {}

impl From<Rejection> for EventResult {
    fn from(r: Rejection) -> EventResult {
        EventResult::Rejected {
            code: r.code,
            message: r.message,
        }
    }
}

/// An estimate of `value`'s serialized JSON size in bytes: exact for
/// integers, booleans, null and the punctuation; strings count without escape
/// sequences; floats count as 24 bytes (the longest shortest-round-trip form).
/// Iterative: any depth is fine. A scalar costs no allocation.
pub fn approx_value_bytes(value: &Value) -> usize {
    measure(value, 0, usize::MAX, usize::MAX).bytes
}

/// How many containers nest in `value`: 0 for a scalar, 1 for `[]` or
/// `{"a": 1}`, 2 for `[[1]]` or `{"a": {}}`. Iterative: any depth is fine.
pub fn value_depth(value: &Value) -> usize {
    measure(value, 0, usize::MAX, usize::MAX).depth
}

/// Size and depth of a value, as far as [`measure`] walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Measured {
    /// Estimated serialized bytes.
    bytes: usize,
    /// Deepest container level seen, starting from `base`.
    depth: usize,
}

/// Walks `value` once with an explicit stack, adding `base` levels to every
/// depth. Stops as soon as `bytes > stop_bytes` or `depth > stop_depth` (the
/// result then exceeds that threshold but is otherwise partial).
fn measure(value: &Value, base: usize, stop_bytes: usize, stop_depth: usize) -> Measured {
    let mut out = Measured {
        bytes: 0,
        depth: base,
    };
    if !is_container(value) {
        out.bytes = scalar_bytes(value);
        return out;
    }
    let mut stack: Vec<(&Value, usize)> = vec![(value, base.saturating_add(1))];
    while let Some((node, level)) = stack.pop() {
        out.depth = out.depth.max(level);
        if out.depth > stop_depth {
            return out;
        }
        let child_level = level.saturating_add(1);
        match node {
            Value::Array(items) => {
                // "[" "]" and a comma between elements.
                out.bytes = out.bytes.saturating_add(2 + items.len().saturating_sub(1));
                for item in items {
                    visit_child(item, child_level, &mut out, &mut stack);
                }
            }
            Value::Object(members) => {
                out.bytes = out.bytes.saturating_add(object_overhead(members));
                for item in members.values() {
                    visit_child(item, child_level, &mut out, &mut stack);
                }
            }
            scalar => out.bytes = out.bytes.saturating_add(scalar_bytes(scalar)),
        }
        if out.bytes > stop_bytes {
            return out;
        }
    }
    out
}

/// Counts a scalar child at once; queues a container child for the walk.
fn visit_child<'v>(
    child: &'v Value,
    level: usize,
    out: &mut Measured,
    stack: &mut Vec<(&'v Value, usize)>,
) {
    if is_container(child) {
        stack.push((child, level));
    } else {
        out.bytes = out.bytes.saturating_add(scalar_bytes(child));
    }
}

/// Braces, commas, and each key with its quotes and colon.
fn object_overhead(members: &Map<String, Value>) -> usize {
    let keys: usize = members.keys().map(|k| k.len() + 3).sum();
    keys.saturating_add(2 + members.len().saturating_sub(1))
}

fn is_container(value: &Value) -> bool {
    matches!(value, Value::Array(_) | Value::Object(_))
}

/// Serialized size of a scalar (0 for containers, which [`measure`] walks).
fn scalar_bytes(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                decimal_digits(u)
            } else if let Some(i) = n.as_i64() {
                1 + decimal_digits(i.unsigned_abs())
            } else {
                24
            }
        }
        Value::String(s) => s.len() + 2,
        Value::Array(_) | Value::Object(_) => 0,
    }
}

fn decimal_digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Decodes one event from JSON bytes, straight into [`Event`] (no
/// intermediate [`Value`]), then [`Limits::validate`]s it.
///
/// Errors: not UTF-8 or not JSON → [`RejectCode::InvalidJson`] with serde's
/// line/column message; nesting past the parser's limit (128) →
/// [`RejectCode::TooDeep`]; valid JSON that is not an event object (not an
/// object, a missing `key`/`op`, a mistyped or unknown field) →
/// [`RejectCode::InvalidEvent`]; then the limits' own codes.
pub fn decode_event(bytes: &[u8], limits: &Limits) -> Result<Event, Rejection> {
    let event = parse_event(bytes)?;
    limits.validate(&event)?;
    Ok(event)
}

/// [`decode_event`] without the validation step.
fn parse_event(bytes: &[u8]) -> Result<Event, Rejection> {
    if first_json_byte(bytes) != Some(b'{') {
        return Err(not_an_object(bytes, "an event"));
    }
    serde_json::from_slice(bytes).map_err(serde_rejection)
}

/// Decodes an NDJSON body: one result per non-blank line, in order. Blank
/// (whitespace-only) lines are skipped and a trailing `\r` is stripped; a
/// malformed line gets its own `Err` while the other lines decode.
pub fn decode_ndjson(body: &[u8], limits: &Limits) -> Vec<Result<Event, Rejection>> {
    body.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| decode_event(line, limits))
        .collect()
}

/// Decodes an `application/json` body: a single event object gives one
/// result; an array gives one result per element, each decoded on its own (a
/// bad element is its own `Err`).
///
/// The outer `Err` is for a body that is not usable at all: not JSON
/// ([`RejectCode::InvalidJson`]), too deep to parse
/// ([`RejectCode::TooDeep`]), or JSON that is neither an object nor an array
/// ([`RejectCode::InvalidEvent`]). A single object that parses but is not a
/// valid event is an inner `Err`, like a bad array element.
pub fn decode_body(
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<Result<Event, Rejection>>, Rejection> {
    match first_json_byte(body) {
        Some(b'{') => match parse_event(body) {
            // The body does not parse: nothing in it can be answered alone.
            Err(r) if matches!(r.code, RejectCode::InvalidJson | RejectCode::TooDeep) => Err(r),
            Err(not_an_event) => Ok(vec![Err(not_an_event)]),
            Ok(event) => Ok(vec![limits.validate(&event).map(|()| event)]),
        },
        Some(b'[') => {
            let elements: Vec<Value> = serde_json::from_slice(body).map_err(serde_rejection)?;
            Ok(elements
                .into_iter()
                .map(|element| decode_value(element, limits))
                .collect())
        }
        _ => Err(not_an_object(
            body,
            "a body of events (an object or an array)",
        )),
    }
}

/// Decodes one already-parsed element of an array body.
fn decode_value(value: Value, limits: &Limits) -> Result<Event, Rejection> {
    if !value.is_object() {
        return Err(Rejection::new(
            RejectCode::InvalidEvent,
            format!(
                "an event must be a JSON object, found {}",
                crate::pointer::type_name(&value)
            ),
        ));
    }
    let event: Event = serde_json::from_value(value)
        .map_err(|e| Rejection::new(RejectCode::InvalidEvent, e.to_string()))?;
    limits.validate(&event)?;
    Ok(event)
}

/// The first byte that is not JSON whitespace.
fn first_json_byte(bytes: &[u8]) -> Option<u8> {
    bytes
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// The rejection for input that does not start with `{` (`what` is what we
/// expected): InvalidJson/TooDeep if it does not even parse, InvalidEvent
/// naming the JSON type found if it does. Only runs on the error path.
fn not_an_object(bytes: &[u8], what: &str) -> Rejection {
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(bytes) {
        return serde_rejection(e);
    }
    let found = match first_json_byte(bytes) {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    };
    Rejection::new(
        RejectCode::InvalidEvent,
        format!("expected {what}, found {found}"),
    )
}

/// Maps a serde_json error to a rejection, keeping serde's line/column text.
fn serde_rejection(e: serde_json::Error) -> Rejection {
    let text = e.to_string();
    // serde_json exposes no error code for this, only its message.
    if text.starts_with("recursion limit exceeded") {
        return Rejection::new(
            RejectCode::TooDeep,
            format!("the JSON nests more than 128 levels deep: {text}"),
        );
    }
    let code = match e.classify() {
        Category::Data => RejectCode::InvalidEvent,
        Category::Syntax | Category::Eof | Category::Io => RejectCode::InvalidJson,
    };
    Rejection::new(code, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code<T: fmt::Debug>(r: Result<T, Rejection>) -> RejectCode {
        r.expect_err("expected a rejection").code
    }

    /// `depth` nested arrays around `1`.
    fn nested_arrays(depth: usize) -> Value {
        let mut v = json!(1);
        for _ in 0..depth {
            v = Value::Array(vec![v]);
        }
        v
    }

    /// Drops a deep value without recursion (serde_json's `Drop` recurses).
    fn drop_iteratively(value: Value) {
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            match v {
                Value::Array(items) => stack.extend(items),
                Value::Object(members) => stack.extend(members.into_iter().map(|(_, v)| v)),
                _ => {}
            }
        }
    }

    fn deep_json(depth: usize, open: &str, inner: &str, close: &str) -> String {
        format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn defaults_match_the_contract() {
        let l = Limits::default();
        assert_eq!(l.max_key_bytes, 1024);
        assert_eq!(l.max_value_bytes, 1024 * 1024);
        assert_eq!(l.max_depth, 64);
    }

    #[test]
    fn rejection_displays_and_becomes_a_result() {
        let r = Rejection::new(RejectCode::TypeError, "incr needs a number");
        assert_eq!(r.to_string(), "type_error: incr needs a number");
        let boxed: Box<dyn std::error::Error> = Box::new(r.clone());
        assert!(boxed.to_string().contains("incr"));
        assert_eq!(
            EventResult::from(r),
            EventResult::rejected(RejectCode::TypeError, "incr needs a number")
        );
    }

    #[test]
    fn approx_bytes_is_exact_for_plain_values() {
        for v in [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(9),
            json!(10),
            json!(-1),
            json!(i64::MIN),
            json!(u64::MAX),
            json!("hello"),
            json!([]),
            json!({}),
            json!([1, "two", [3, [4]], {"k": null}]),
            json!({"a": {"b": [1, 2, 3]}, "longer key": "v", "": false}),
        ] {
            let serialized = serde_json::to_string(&v).expect("ser").len();
            assert_eq!(approx_value_bytes(&v), serialized, "{v}");
        }
        // Floats are an upper-bound estimate.
        assert!(approx_value_bytes(&json!(1.5)) >= 3);
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(value_depth(&json!(1)), 0);
        assert_eq!(value_depth(&json!([])), 1);
        assert_eq!(value_depth(&json!({"a": 1})), 1);
        assert_eq!(value_depth(&json!([[1]])), 2);
        assert_eq!(value_depth(&json!({"a": {"b": []}, "c": 1})), 3);
        assert_eq!(value_depth(&json!([1, [2, [3]], {}])), 3);
    }

    #[test]
    fn measuring_a_very_deep_value_does_not_recurse() {
        let deep = nested_arrays(100_000);
        assert_eq!(value_depth(&deep), 100_000);
        assert_eq!(approx_value_bytes(&deep), 200_001);
        let event = Event::set("k", deep);
        let rej = Limits::default().validate(&event).expect_err("too deep");
        assert_eq!(rej.code, RejectCode::TooDeep);
        if let Some(v) = event.value {
            drop_iteratively(v);
        }
    }

    #[test]
    fn validate_checks_key_length() {
        let l = Limits::default();
        assert_eq!(
            code(l.validate(&Event::incr("", 1))),
            RejectCode::InvalidKey
        );
        assert!(l.validate(&Event::incr("k".repeat(1024), 1)).is_ok());
        let rej = l
            .validate(&Event::incr("k".repeat(1025), 1))
            .expect_err("long key");
        assert_eq!(rej.code, RejectCode::InvalidKey);
        assert!(rej.message.contains("1025"), "{}", rej.message);
        // Bytes, not characters: 342 three-byte chars = 1026 bytes.
        assert_eq!(
            code(l.validate(&Event::incr("€".repeat(342), 1))),
            RejectCode::InvalidKey
        );
    }

    #[test]
    fn validate_checks_value_size() {
        let l = Limits {
            max_value_bytes: 100,
            ..Limits::default()
        };
        assert!(l.validate(&Event::set("k", json!("x".repeat(98)))).is_ok());
        assert_eq!(
            code(l.validate(&Event::set("k", json!("x".repeat(99))))),
            RejectCode::ValueTooLarge
        );
        let big_array = Value::Array((0..100).map(Value::from).collect());
        assert_eq!(
            code(l.validate(&Event::set("k", big_array))),
            RejectCode::ValueTooLarge
        );
        let default = Limits::default();
        assert_eq!(
            code(default.validate(&Event::set("k", json!("x".repeat(1 << 20))))),
            RejectCode::ValueTooLarge
        );
    }

    #[test]
    fn validate_counts_path_and_append_levels_toward_depth() {
        let l = Limits::default();
        assert!(l.validate(&Event::set("k", nested_arrays(64))).is_ok());
        assert_eq!(
            code(l.validate(&Event::set("k", nested_arrays(65)))),
            RejectCode::TooDeep
        );
        // 2 path levels + 62 = 64: fine; + 63 = 65: too deep.
        assert!(
            l.validate(&Event::set("k", nested_arrays(62)).with_path("/a/b"))
                .is_ok()
        );
        let rej = l
            .validate(&Event::set("k", nested_arrays(63)).with_path("/a/b"))
            .expect_err("too deep with path");
        assert_eq!(rej.code, RejectCode::TooDeep);
        assert!(rej.message.contains("2 level"), "{}", rej.message);
        // append pushes into an array: one more level.
        let append = |depth| Event::new("k", Op::Append).with_value(nested_arrays(depth));
        assert!(l.validate(&append(63)).is_ok());
        assert_eq!(code(l.validate(&append(64))), RejectCode::TooDeep);
        // A path alone can be too deep (incr would create 65 levels).
        let long_path = "/a".repeat(65);
        assert_eq!(
            code(l.validate(&Event::new("k", Op::Incr).with_path(long_path))),
            RejectCode::TooDeep
        );
    }

    #[test]
    fn validate_checks_path_syntax() {
        let l = Limits::default();
        assert!(l.validate(&Event::incr("k", 1).with_path("/a~1b")).is_ok());
        assert!(l.validate(&Event::incr("k", 1).with_path("")).is_ok());
        for bad in ["clicks", "/a~2"] {
            assert_eq!(
                code(l.validate(&Event::incr("k", 1).with_path(bad))),
                RejectCode::InvalidPath,
                "{bad}"
            );
        }
    }

    #[test]
    fn decodes_a_full_event() {
        let bytes = br#" {"key": "user:42", "op": "incr", "path": "/clicks", "value": 1,
            "id": "evt-9f2", "if_version": 7, "ttl_s": 3600} "#;
        let e = decode_event(bytes, &Limits::default()).expect("valid");
        assert_eq!(e.key, "user:42");
        assert_eq!(e.op, Op::Incr);
        assert_eq!(e.path.as_deref(), Some("/clicks"));
        assert_eq!(e.value, Some(json!(1)));
        assert_eq!(e.if_version, Some(7));
    }

    #[test]
    fn explicit_null_value_is_an_operand() {
        let e = decode_event(
            br#"{"key":"k","op":"set","value":null}"#,
            &Limits::default(),
        )
        .expect("valid");
        assert_eq!(e.value, Some(Value::Null));
    }

    #[test]
    fn bad_json_is_invalid_json_with_position() {
        let l = Limits::default();
        for bad in [
            &b"{\"key\": \"k\", \"op\": "[..],
            b"{\"key\" \"k\"}",
            b"",
            b"   ",
            b"{\"key\": \"k\", \"op\": \"set\"} trailing",
            b"nope",
        ] {
            let rej = decode_event(bad, &l).expect_err("bad json");
            assert_eq!(rej.code, RejectCode::InvalidJson, "{bad:?}: {rej}");
            assert!(rej.message.contains("line 1 column"), "{}", rej.message);
        }
    }

    #[test]
    fn invalid_utf8_is_invalid_json() {
        let l = Limits::default();
        let in_string = b"{\"key\": \"k\xff\", \"op\": \"set\", \"value\": 1}";
        assert_eq!(code(decode_event(in_string, &l)), RejectCode::InvalidJson);
        let outside = b"{\xc3\x28}";
        assert_eq!(code(decode_event(outside, &l)), RejectCode::InvalidJson);
    }

    #[test]
    fn valid_json_that_is_not_an_event_is_invalid_event() {
        let l = Limits::default();
        for (bad, needle) in [
            (&br#"{"op": "set"}"#[..], "missing field `key`"),
            (br#"{"key": "k"}"#, "missing field `op`"),
            (br#"{"key": 5, "op": "set"}"#, "invalid type"),
            (br#"{"key": "k", "op": "set", "if_version": -1}"#, "invalid"),
            (br#"{"key": "k", "op": "set", "valeu": 1}"#, "unknown field"),
            (br#"["k", "set"]"#, "found an array"),
            (br#"42"#, "found a number"),
            (br#""k""#, "found a string"),
            (br#"null"#, "found null"),
        ] {
            let rej = decode_event(bad, &l).expect_err("not an event");
            assert_eq!(rej.code, RejectCode::InvalidEvent, "{rej}");
            assert!(rej.message.contains(needle), "{}", rej.message);
        }
    }

    #[test]
    fn decoded_events_are_validated() {
        let l = Limits::default();
        assert_eq!(
            code(decode_event(br#"{"key": "", "op": "set"}"#, &l)),
            RejectCode::InvalidKey
        );
        assert_eq!(
            code(decode_event(
                br#"{"key": "k", "op": "set", "path": "x"}"#,
                &l
            )),
            RejectCode::InvalidPath
        );
    }

    #[test]
    fn hundred_thousand_deep_input_is_an_error_not_a_stack_overflow() {
        let l = Limits::default();
        let arrays = deep_json(100_000, "[", "1", "]");
        let objects = deep_json(100_000, "{\"a\":", "1", "}");
        // As the whole document: refused before any deep descent (the shape
        // check skips an array iteratively; `a` is an unknown event field).
        let rej = decode_event(arrays.as_bytes(), &l).expect_err("deep array");
        assert_eq!(rej.code, RejectCode::InvalidEvent, "{rej}");
        assert!(rej.message.contains("found an array"), "{rej}");
        let rej = decode_event(objects.as_bytes(), &l).expect_err("deep object");
        assert_eq!(rej.code, RejectCode::InvalidEvent, "{rej}");
        assert_eq!(
            code(decode_body(arrays.as_bytes(), &l)),
            RejectCode::TooDeep
        );
        let single = decode_body(objects.as_bytes(), &l).expect("parses as one bad event");
        assert_eq!(code(single[0].clone()), RejectCode::InvalidEvent);
        for doc in [&arrays, &objects] {
            // As an event's value: the parser's recursion limit stops it…
            let event = format!(r#"{{"key": "k", "op": "set", "value": {doc}}}"#);
            let rej = decode_event(event.as_bytes(), &l).expect_err("deep value");
            assert_eq!(rej.code, RejectCode::TooDeep, "{rej}");
            // …as an NDJSON line and inside an array body.
            let ndjson = format!("{event}\n{{\"key\":\"ok\",\"op\":\"incr\"}}\n");
            let results = decode_ndjson(ndjson.as_bytes(), &l);
            assert_eq!(results.len(), 2);
            assert_eq!(code(results[0].clone()), RejectCode::TooDeep);
            assert!(results[1].is_ok());
            let body = format!("[{event}]");
            assert_eq!(code(decode_body(body.as_bytes(), &l)), RejectCode::TooDeep);
            let single = decode_body(event.as_bytes(), &l);
            assert_eq!(code(single), RejectCode::TooDeep);
        }
    }

    #[test]
    fn depth_100_passes_the_parser_but_not_max_depth() {
        let value = deep_json(100, "[", "1", "]");
        let event = format!(r#"{{"key": "k", "op": "set", "value": {value}}}"#);
        let roomy = Limits {
            max_depth: 120,
            ..Limits::default()
        };
        let e = decode_event(event.as_bytes(), &roomy).expect("the parser accepts depth 100");
        assert_eq!(e.value.as_ref().map(value_depth), Some(100));
        let rej = decode_event(event.as_bytes(), &Limits::default()).expect_err("max_depth 64");
        assert_eq!(rej.code, RejectCode::TooDeep);
        assert!(rej.message.contains("64"), "{}", rej.message);
        let objects = deep_json(100, "{\"a\":", "1", "}");
        let event = format!(r#"{{"key": "k", "op": "set", "value": {objects}}}"#);
        assert_eq!(
            code(decode_event(event.as_bytes(), &Limits::default())),
            RejectCode::TooDeep
        );
    }

    #[test]
    fn ndjson_gives_one_result_per_non_blank_line() {
        let body = b"{\"key\":\"a\",\"op\":\"incr\"}\r\n\
                     \n\
                     \t \r\n\
                     {\"key\":\"b\",\"op\":\n\
                     [1]\n\
                     {\"key\":\"c\",\"op\":\"set\",\"value\":3}";
        let results = decode_ndjson(body, &Limits::default());
        assert_eq!(results.len(), 4);
        assert_eq!(results[0].as_ref().map(|e| e.key.as_str()), Ok("a"));
        assert_eq!(code(results[1].clone()), RejectCode::InvalidJson);
        assert_eq!(code(results[2].clone()), RejectCode::InvalidEvent);
        assert_eq!(results[3].as_ref().map(|e| e.key.as_str()), Ok("c"));
        assert!(decode_ndjson(b"", &Limits::default()).is_empty());
        assert_eq!(
            decode_ndjson(b"{\"key\":\"a\",\"op\":\"incr\"}\n", &Limits::default()).len(),
            1
        );
    }

    #[test]
    fn body_single_object_or_array() {
        let l = Limits::default();
        let one = decode_body(br#"{"key": "a", "op": "incr"}"#, &l).expect("body");
        assert_eq!(one.len(), 1);
        assert!(one[0].is_ok());
        // A single bad event is a per-event result, not a body error.
        let bad_one = decode_body(br#"{"key": "a"}"#, &l).expect("body");
        assert_eq!(code(bad_one[0].clone()), RejectCode::InvalidEvent);

        let many = decode_body(
            br#" [{"key": "a", "op": "incr"}, 7, {"key": "b"}, {"key": "", "op": "set"},
                 {"key": "c", "op": "set", "value": null}] "#,
            &l,
        )
        .expect("body");
        assert_eq!(many.len(), 5);
        assert!(many[0].is_ok());
        assert_eq!(code(many[1].clone()), RejectCode::InvalidEvent);
        assert_eq!(code(many[2].clone()), RejectCode::InvalidEvent);
        assert_eq!(code(many[3].clone()), RejectCode::InvalidKey);
        assert_eq!(
            many[4].as_ref().map(|e| e.value.clone()),
            Ok(Some(Value::Null))
        );
        assert!(decode_body(b"[]", &l).expect("empty array").is_empty());
    }

    #[test]
    fn unusable_bodies_are_refused_whole() {
        let l = Limits::default();
        assert_eq!(code(decode_body(b"", &l)), RejectCode::InvalidJson);
        assert_eq!(code(decode_body(b"[1, 2", &l)), RejectCode::InvalidJson);
        assert_eq!(
            code(decode_body(br#"{"key": "a", "op": "#, &l)),
            RejectCode::InvalidJson
        );
        assert_eq!(code(decode_body(b"42", &l)), RejectCode::InvalidEvent);
        assert_eq!(code(decode_body(b"\"x\"", &l)), RejectCode::InvalidEvent);
    }
}
