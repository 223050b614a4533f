//! The event model of DESIGN.md §2: what a producer sends ([`Event`]), what it
//! hears back ([`EventResult`]), and what a key holds ([`StateRecord`]).
//!
//! Invariant: every event submitted to the engine gets exactly one
//! [`EventResult`], in input order. Nothing in this module panics on input.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The operation an event applies to its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Replace the value (or the value at `path`).
    Set,
    /// JSON Merge Patch (RFC 7386) of `value` into the target.
    Merge,
    /// Add a number (default 1); a missing target counts as 0; ints stay ints.
    Incr,
    /// Push `value` onto an array (a missing target is an empty array);
    /// `max_len` keeps only the newest elements.
    Append,
    /// Keep the larger of the current number and `value`.
    Max,
    /// Keep the smaller of the current number and `value`.
    Min,
    /// Remove the key (or the member at `path`).
    Delete,
    /// An operation registered by a library user with
    /// [`EngineBuilder::custom_op`](crate::EngineBuilder::custom_op).
    Custom(Arc<str>),
}

impl Op {
    /// The op's name on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Op::Set => "set",
            Op::Merge => "merge",
            Op::Incr => "incr",
            Op::Append => "append",
            Op::Max => "max",
            Op::Min => "min",
            Op::Delete => "delete",
            Op::Custom(name) => name,
        }
    }

    /// Parses a wire name; unknown names become [`Op::Custom`] and are rejected
    /// at apply time unless registered.
    pub fn parse(name: &str) -> Op {
        match name {
            "set" => Op::Set,
            "merge" => Op::Merge,
            "incr" => Op::Incr,
            "append" => Op::Append,
            "max" => Op::Max,
            "min" => Op::Min,
            "delete" => Op::Delete,
            other => Op::Custom(Arc::from(other)),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Op {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Op::parse(&name))
    }
}

/// One event: a key, an operation and its operand (DESIGN.md §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The key; UTF-8, 1..=`max_key_bytes` bytes.
    pub key: String,
    /// The operation.
    pub op: Op,
    /// Optional JSON Pointer (RFC 6901) inside the value; absent = whole value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The operand. An explicit `"value": null` is `Some(Value::Null)` (set a
    /// key to null, a null merge patch); only an absent field is `None`.
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<Value>,
    /// Idempotency id: a repeat inside the dedup window answers `duplicate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Apply only if the key's version equals this (0 = key absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_version: Option<u64>,
    /// The key expires this many seconds after this write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u64>,
    /// With `append`: keep only the newest `max_len` elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
}

impl Event {
    /// An event with the given key and op and no other field set.
    pub fn new(key: impl Into<String>, op: Op) -> Self {
        Event {
            key: key.into(),
            op,
            path: None,
            value: None,
            id: None,
            if_version: None,
            ttl_s: None,
            max_len: None,
        }
    }

    /// `incr` of `key` by `by`.
    pub fn incr(key: impl Into<String>, by: i64) -> Self {
        Event::new(key, Op::Incr).with_value(Value::from(by))
    }

    /// `set` of `key` to `value`.
    pub fn set(key: impl Into<String>, value: Value) -> Self {
        Event::new(key, Op::Set).with_value(value)
    }

    /// Sets the operand.
    pub fn with_value(mut self, value: Value) -> Self {
        self.value = Some(value);
        self
    }

    /// Sets the JSON Pointer path.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Sets the idempotency id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the expected version.
    pub fn with_if_version(mut self, version: u64) -> Self {
        self.if_version = Some(version);
        self
    }

    /// Sets the time to live in seconds.
    pub fn with_ttl(mut self, ttl_s: u64) -> Self {
        self.ttl_s = Some(ttl_s);
        self
    }

    /// Sets `max_len` (for `append`).
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = Some(max_len);
        self
    }

    /// A cheap estimate of the event's size in bytes, used for queue byte
    /// accounting. It never walks large values twice per event.
    pub fn approx_bytes(&self) -> usize {
        64 + self.key.len()
            + self.path.as_ref().map_or(0, String::len)
            + self.id.as_ref().map_or(0, String::len)
            + self
                .value
                .as_ref()
                .map_or(0, crate::limits::approx_value_bytes)
    }
}

/// Deserializes a present `value` field, keeping an explicit JSON `null` as
/// `Some(Value::Null)` (serde's default for `Option` would turn it into `None`,
/// so `set` to null would read as a missing operand and a logged
/// `Some(Value::Null)` would not round-trip). An absent field is `None` via
/// `#[serde(default)]`.
fn present_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Why an event was rejected: a machine-readable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectCode {
    /// The input was not valid JSON (or not UTF-8).
    InvalidJson,
    /// Valid JSON, but not an event: a missing or mistyped field.
    InvalidEvent,
    /// The key is empty or longer than the limit.
    InvalidKey,
    /// The value is larger than the limit.
    ValueTooLarge,
    /// The value nests deeper than the limit.
    TooDeep,
    /// The path is not a valid JSON Pointer, or leads through a non-container.
    InvalidPath,
    /// The op does not fit the current value (e.g. `incr` on a string).
    TypeError,
    /// A number would overflow.
    Overflow,
    /// The op is unknown (not built in and not registered).
    UnknownOp,
    /// The operand is missing or of the wrong type for this op.
    InvalidOperand,
    /// The engine is shutting down and admits nothing new.
    ShuttingDown,
    /// The store failed; the engine refuses writes until restarted.
    StoreUnavailable,
    /// The shard worker failed before answering (a bug: it panicked). The
    /// event may or may not have been applied; unlike `overloaded` this is
    /// not back-pressure, and a blind retry is not the cure.
    WorkerFailed,
}

impl RejectCode {
    /// The code's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::InvalidJson => "invalid_json",
            RejectCode::InvalidEvent => "invalid_event",
            RejectCode::InvalidKey => "invalid_key",
            RejectCode::ValueTooLarge => "value_too_large",
            RejectCode::TooDeep => "too_deep",
            RejectCode::InvalidPath => "invalid_path",
            RejectCode::TypeError => "type_error",
            RejectCode::Overflow => "overflow",
            RejectCode::UnknownOp => "unknown_op",
            RejectCode::InvalidOperand => "invalid_operand",
            RejectCode::ShuttingDown => "shutting_down",
            RejectCode::StoreUnavailable => "store_unavailable",
            RejectCode::WorkerFailed => "worker_failed",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one result each event gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventResult {
    /// Applied; the key's version after this event.
    Applied {
        /// The key's version after this event.
        version: u64,
    },
    /// The id was seen inside the dedup window; not applied again.
    Duplicate,
    /// `if_version` did not match.
    Conflict {
        /// The key's version now (0 = absent).
        current_version: u64,
    },
    /// Not applied, with a reason.
    Rejected {
        /// Machine-readable reason.
        code: RejectCode,
        /// Human-readable explanation.
        message: String,
    },
    /// Refused by the overflow policy (queue full, or timed out waiting).
    Overloaded,
    /// Admitted under `ack=none`: the producer asked not to wait, so the
    /// outcome is not reported (an extension of DESIGN.md §2's five statuses,
    /// used only with `ack=none`).
    Accepted,
}

impl EventResult {
    /// A rejection with the given code and message.
    pub fn rejected(code: RejectCode, message: impl Into<String>) -> Self {
        EventResult::Rejected {
            code,
            message: message.into(),
        }
    }

    /// The status name on the wire (`applied`, `duplicate`, …).
    pub fn status(&self) -> &'static str {
        match self {
            EventResult::Applied { .. } => "applied",
            EventResult::Duplicate => "duplicate",
            EventResult::Conflict { .. } => "conflict",
            EventResult::Rejected { .. } => "rejected",
            EventResult::Overloaded => "overloaded",
            EventResult::Accepted => "accepted",
        }
    }

    /// True for `applied`.
    pub fn is_applied(&self) -> bool {
        matches!(self, EventResult::Applied { .. })
    }
}

/// The current state of one key, as reads and the change feed return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateRecord {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Applied events on this key so far (since its last deletion).
    pub version: u64,
    /// Milliseconds since the Unix epoch of the last applied write.
    pub updated_at: u64,
    /// Milliseconds since the Unix epoch at which the key expires, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// One change on the change feed ([`Engine::watch`](crate::Engine::watch)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The key that changed.
    pub key: String,
    /// The op that changed it.
    pub op: Op,
    /// The new value; `None` when the key was deleted.
    pub value: Option<Value>,
    /// The key's version after the change (0 after a delete).
    pub version: u64,
    /// Milliseconds since the Unix epoch of the change.
    pub updated_at: u64,
}

/// When the producer hears back (DESIGN.md §1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
pub enum AckMode {
    /// After the effect is fsynced (group commit). The default.
    #[default]
    Durable,
    /// After the effect is applied in memory (visible to reads).
    Applied,
    /// As soon as the events are admitted to the queues. The results then
    /// say only what admission decided; apply-time outcomes are counted in
    /// stats but not reported.
    None,
}

impl AckMode {
    /// Parses `durable`, `applied` or `none`.
    pub fn parse(s: &str) -> Option<AckMode> {
        match s {
            "durable" => Some(AckMode::Durable),
            "applied" => Some(AckMode::Applied),
            "none" => Some(AckMode::None),
            _ => None,
        }
    }

    /// The mode's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Durable => "durable",
            AckMode::Applied => "applied",
            AckMode::None => "none",
        }
    }
}

impl fmt::Display for AckMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_round_trips_through_json() {
        let e: Event = serde_json::from_value(json!({
            "key": "user:42", "op": "incr", "path": "/clicks", "value": 1,
            "id": "evt-9f2", "if_version": 7, "ttl_s": 3600
        }))
        .expect("valid event");
        assert_eq!(e.op, Op::Incr);
        assert_eq!(e.path.as_deref(), Some("/clicks"));
        let back = serde_json::to_value(&e).expect("serializes");
        assert_eq!(back["op"], "incr");
        assert_eq!(back["if_version"], 7);
    }

    #[test]
    fn explicit_null_value_is_kept_and_round_trips() {
        let e: Event = serde_json::from_str(r#"{"key": "k", "op": "set", "value": null}"#)
            .expect("valid event");
        assert_eq!(e.value, Some(Value::Null));
        let back: Event =
            serde_json::from_value(serde_json::to_value(&e).expect("ser")).expect("de");
        assert_eq!(back, e);
        let absent: Event =
            serde_json::from_str(r#"{"key": "k", "op": "delete"}"#).expect("valid event");
        assert_eq!(absent.value, None);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<Event, _> =
            serde_json::from_value(json!({"key": "k", "op": "set", "valeu": 1}));
        assert!(r.is_err());
    }

    #[test]
    fn results_serialize_with_status_tag() {
        let s = serde_json::to_value(EventResult::Applied { version: 3 }).expect("ser");
        assert_eq!(s, json!({"status": "applied", "version": 3}));
        let s =
            serde_json::to_value(EventResult::rejected(RejectCode::TypeError, "no")).expect("ser");
        assert_eq!(
            s,
            json!({"status": "rejected", "code": "type_error", "message": "no"})
        );
        let s = serde_json::to_value(EventResult::Conflict { current_version: 2 }).expect("ser");
        assert_eq!(s, json!({"status": "conflict", "current_version": 2}));
    }
}
