//! The TCP ingest protocol, version 1 (specified in docs/protocol.md): frames,
//! their types, and the messages they carry. Both ends use this module — the
//! server's connection tasks ([`crate::tcp`]) and the client
//! ([`crate::client`]).
//!
//! A frame is a `u32` big-endian payload length followed by the payload; the
//! payload's first byte is the frame type. [`FrameCodec`] cuts a byte stream
//! into [`RawFrame`]s; [`parse_client_frame`] and [`parse_server_frame`] turn
//! a raw frame into a message.
//!
//! Invariants:
//! - [`FrameCodec`] never buffers more than `4 + max_frame_bytes` bytes for a
//!   frame: a longer length prefix is [`FrameError::TooLarge`] at once, before
//!   any of its payload is read. That is the one framing error after which
//!   the stream cannot be resynchronized (with [`FrameError::Truncated`] at
//!   end of stream).
//! - A frame whose length prefix was acceptable but whose payload is wrong
//!   (unknown type, short header, bad binary encoding) is a [`FrameProblem`]:
//!   the next frame starts right after it, so a connection can go on.

pub mod binary;
pub mod varint;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use statecraft_engine::{AckMode, Event, EventResult, Limits, Rejection};
use tokio_util::codec::Decoder;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Bytes of an events frame's header after the type: seq (u32) + ack (u8).
pub const EVENTS_HEADER: usize = 5;

/// Frame types.
pub mod frame_type {
    /// Client → server: the opening handshake (JSON).
    pub const HELLO: u8 = 0x01;
    /// Client → server: events as NDJSON.
    pub const EVENTS_NDJSON: u8 = 0x02;
    /// Client → server: events in the binary encoding.
    pub const EVENTS_BIN: u8 = 0x03;
    /// Server → client: the handshake answer (JSON).
    pub const HELLO_OK: u8 = 0x81;
    /// Server → client: the results of one events frame (binary).
    pub const ACK: u8 = 0x82;
    /// Server → client: an error (JSON).
    pub const ERROR: u8 = 0x83;
}

/// The ack byte of an events frame.
pub mod ack_byte {
    /// The connection's default (from HELLO, else the server's).
    pub const DEFAULT: u8 = 0;
    /// `durable`
    pub const DURABLE: u8 = 1;
    /// `applied`
    pub const APPLIED: u8 = 2;
    /// `none`
    pub const NONE: u8 = 3;
}

/// The ack byte for a mode (`None` = the connection's default).
pub fn ack_to_byte(ack: Option<AckMode>) -> u8 {
    match ack {
        None => ack_byte::DEFAULT,
        Some(AckMode::Durable) => ack_byte::DURABLE,
        Some(AckMode::Applied) => ack_byte::APPLIED,
        Some(AckMode::None) => ack_byte::NONE,
    }
}

/// Machine-readable codes of `ERROR` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// A frame's payload was wrong; the connection goes on.
    MalformedFrame,
    /// A length prefix over the limit; the connection closes.
    FrameTooLarge,
    /// The stream ended inside a frame; the connection closes.
    TruncatedFrame,
    /// The first frame was not a HELLO; the connection closes.
    HelloRequired,
    /// The HELLO asked for a version the server does not speak; closes.
    UnsupportedVersion,
    /// A token was required and missing or wrong; closes.
    Unauthorized,
    /// The server has as many connections as it allows; closes.
    TooManyConnections,
    /// The server is shutting down: frames before this one were answered,
    /// frames after it were not read; closes.
    ShuttingDown,
    /// The engine failed to start; closes.
    Unavailable,
    /// Anything else.
    Internal,
    /// A code this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// True when the server closes the connection after this error.
    pub fn is_fatal(self) -> bool {
        !matches!(self, ErrorCode::MalformedFrame | ErrorCode::Internal)
    }
}

/// The body of an `ERROR` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// What went wrong.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// The seq of the events frame this answers, when it answers one (it
    /// then stands in for that frame's ACK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_seq: Option<u32>,
}

impl ErrorFrame {
    /// An error with no frame seq.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorFrame {
            code,
            message: message.into(),
            frame_seq: None,
        }
    }
}

/// The body of a `HELLO` frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks.
    pub version: u32,
    /// The bearer token, when the server requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The ack mode of events frames whose ack byte is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<AckMode>,
    /// A free-form client name, for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

impl std::fmt::Display for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "version {}", self.version)
    }
}

/// The body of a `HELLO_OK` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloOk {
    /// The protocol version in use.
    pub version: u32,
    /// The server's name and version.
    pub server: String,
    /// The largest payload the server accepts.
    pub max_frame_bytes: u32,
    /// Frames the server reads ahead of their ACKs per connection.
    pub max_in_flight: u32,
    /// The connection's default ack mode.
    pub ack: AckMode,
}

/// A framing failure after which the stream cannot go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A length prefix over the limit.
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The announced payload length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("the stream ended inside a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes received of the frame (prefix included).
        have: usize,
        /// Bytes the frame needs (prefix included; 4 when the prefix itself is cut).
        need: usize,
    },
    /// Reading failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// One frame as cut from the stream: its type byte and the rest of its
/// payload. An empty payload has type 0 (which no frame type uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The type byte.
    pub kind: u8,
    /// The payload after the type byte.
    pub body: Bytes,
}

/// Cuts a byte stream into frames (a `tokio_util` [`Decoder`]).
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame_bytes: usize,
}

impl FrameCodec {
    /// A codec refusing payloads longer than `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameCodec { max_frame_bytes }
    }
}

impl Decoder for FrameCodec {
    type Item = RawFrame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RawFrame>, FrameError> {
        if src.len() < LEN_PREFIX {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                len: len as u64,
                max: self.max_frame_bytes,
            });
        }
        let need = LEN_PREFIX + len;
        if src.len() < need {
            // Bounded by the check above.
            src.reserve(need - src.len());
            return Ok(None);
        }
        src.advance(LEN_PREFIX);
        let mut payload = src.split_to(len).freeze();
        if payload.is_empty() {
            return Ok(Some(RawFrame {
                kind: 0,
                body: payload,
            }));
        }
        let kind = payload.get_u8();
        Ok(Some(RawFrame {
            kind,
            body: payload,
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<RawFrame>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let need = if src.len() < LEN_PREFIX {
                    LEN_PREFIX
                } else {
                    LEN_PREFIX + u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize
                };
                let have = src.len();
                src.clear();
                Err(FrameError::Truncated { have, need })
            }
        }
    }
}

/// How an events frame's events are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// NDJSON text, decoded by the engine's decoder.
    Ndjson,
    /// The binary encoding of [`binary`].
    Binary,
}

/// An events frame, header parsed, events not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsFrame {
    /// The client's frame sequence number, echoed in the ACK.
    pub seq: u32,
    /// The ack mode; `None` = the connection's default.
    pub ack: Option<AckMode>,
    /// How the body is encoded.
    pub encoding: Encoding,
    /// The events.
    pub body: Bytes,
}

impl EventsFrame {
    /// Decodes the events: one item per event (a bad event is its own
    /// `Err`), or [`FrameProblem`] when the body's structure is broken
    /// (binary only: NDJSON lines are always separable).
    pub fn decode(&self, limits: &Limits) -> Result<Vec<Result<Event, Rejection>>, FrameProblem> {
        match self.encoding {
            Encoding::Ndjson => Ok(statecraft_engine::limits::decode_ndjson(&self.body, limits)),
            Encoding::Binary => binary::decode_events(&self.body).map_err(|m| FrameProblem {
                seq: Some(self.seq),
                message: format!("bad binary events: {}", m.0),
            }),
        }
    }
}

/// A client → server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// The handshake.
    Hello(Hello),
    /// A frame of events.
    Events(EventsFrame),
}

/// A frame whose length was fine and whose content was not: answered with a
/// `malformed_frame` ERROR, and the connection goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FrameProblem {
    /// The frame's seq, when its header was readable.
    pub seq: Option<u32>,
    /// What was wrong.
    pub message: String,
}

impl FrameProblem {
    /// The ERROR frame answering this problem.
    pub fn to_error(&self) -> ErrorFrame {
        ErrorFrame {
            code: ErrorCode::MalformedFrame,
            message: self.message.clone(),
            frame_seq: self.seq,
        }
    }
}

fn problem(seq: Option<u32>, message: impl Into<String>) -> FrameProblem {
    FrameProblem {
        seq,
        message: message.into(),
    }
}

/// Parses a frame the server received.
pub fn parse_client_frame(frame: RawFrame) -> Result<ClientFrame, FrameProblem> {
    match frame.kind {
        frame_type::HELLO => serde_json::from_slice::<Hello>(&frame.body)
            .map(ClientFrame::Hello)
            .map_err(|e| problem(None, format!("bad HELLO: {e}"))),
        frame_type::EVENTS_NDJSON | frame_type::EVENTS_BIN => {
            let mut body = frame.body;
            if body.len() < EVENTS_HEADER {
                return Err(problem(
                    None,
                    format!(
                        "events frame of {} bytes is shorter than its {EVENTS_HEADER}-byte header",
                        body.len() + 1
                    ),
                ));
            }
            let seq = body.get_u32();
            let ack = match body.get_u8() {
                ack_byte::DEFAULT => None,
                ack_byte::DURABLE => Some(AckMode::Durable),
                ack_byte::APPLIED => Some(AckMode::Applied),
                ack_byte::NONE => Some(AckMode::None),
                other => {
                    return Err(problem(
                        Some(seq),
                        format!("unknown ack mode byte {other} (0..=3)"),
                    ));
                }
            };
            let encoding = if frame.kind == frame_type::EVENTS_NDJSON {
                Encoding::Ndjson
            } else {
                Encoding::Binary
            };
            Ok(ClientFrame::Events(EventsFrame {
                seq,
                ack,
                encoding,
                body,
            }))
        }
        other => Err(problem(
            None,
            format!("unknown frame type {other:#04x} (client frames are 0x01, 0x02, 0x03)"),
        )),
    }
}

/// A server → client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// The handshake answer.
    HelloOk(HelloOk),
    /// The results of events frame `seq`, in input order.
    Ack {
        /// The frame's seq.
        seq: u32,
        /// One result per event.
        results: Vec<EventResult>,
    },
    /// An error.
    Error(ErrorFrame),
}

/// Parses a frame the client received.
pub fn parse_server_frame(frame: RawFrame) -> Result<ServerFrame, FrameProblem> {
    match frame.kind {
        frame_type::HELLO_OK => serde_json::from_slice(&frame.body)
            .map(ServerFrame::HelloOk)
            .map_err(|e| problem(None, format!("bad HELLO_OK: {e}"))),
        frame_type::ERROR => serde_json::from_slice(&frame.body)
            .map(ServerFrame::Error)
            .map_err(|e| problem(None, format!("bad ERROR: {e}"))),
        frame_type::ACK => {
            let mut body = frame.body;
            if body.len() < 4 {
                return Err(problem(None, "ACK shorter than its seq"));
            }
            let seq = body.get_u32();
            let results = binary::decode_results(&body)
                .map_err(|m| problem(Some(seq), format!("bad ACK: {}", m.0)))?;
            Ok(ServerFrame::Ack { seq, results })
        }
        other => Err(problem(None, format!("unknown frame type {other:#04x}"))),
    }
}

// ------------------------------------------------------------ frame writers

/// Starts a frame of `kind` in `buf`; returns the offset of its length
/// prefix for [`finish_frame`].
#[inline]
pub fn begin_frame(buf: &mut BytesMut, kind: u8) -> usize {
    let at = buf.len();
    buf.put_u32(0);
    buf.put_u8(kind);
    at
}

/// Fills in the length prefix of the frame begun at `at`.
#[inline]
pub fn finish_frame(buf: &mut BytesMut, at: usize) {
    let len = (buf.len() - at - LEN_PREFIX) as u32;
    buf[at..at + LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
}

/// Appends a JSON frame (HELLO, HELLO_OK, ERROR).
pub fn put_json_frame<T: Serialize>(buf: &mut BytesMut, kind: u8, body: &T) {
    let at = begin_frame(buf, kind);
    let json = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    buf.put_slice(&json);
    finish_frame(buf, at);
}

/// Appends an ACK frame.
pub fn put_ack_frame(buf: &mut BytesMut, seq: u32, results: &[EventResult]) {
    let at = begin_frame(buf, frame_type::ACK);
    buf.put_u32(seq);
    binary::put_results(buf, results);
    finish_frame(buf, at);
}

/// Appends an events frame carrying `ndjson` as is.
pub fn put_ndjson_frame(buf: &mut BytesMut, seq: u32, ack: Option<AckMode>, ndjson: &[u8]) {
    let at = begin_frame(buf, frame_type::EVENTS_NDJSON);
    buf.put_u32(seq);
    buf.put_u8(ack_to_byte(ack));
    buf.put_slice(ndjson);
    finish_frame(buf, at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_cuts_frames_and_keeps_partial_ones() {
        let mut buf = BytesMut::new();
        put_ndjson_frame(
            &mut buf,
            7,
            Some(AckMode::Applied),
            b"{\"key\":\"k\",\"op\":\"incr\"}\n",
        );
        put_json_frame(
            &mut buf,
            frame_type::HELLO,
            &Hello {
                version: 1,
                ..Hello::default()
            },
        );
        let total = buf.len();
        let mut codec = FrameCodec::new(1 << 20);
        let mut partial = buf.split_to(10);
        assert_eq!(codec.decode(&mut partial).expect("ok"), None);
        partial.unsplit(buf);
        assert_eq!(partial.len(), total);
        let first = codec.decode(&mut partial).expect("ok").expect("a frame");
        let ClientFrame::Events(ev) = parse_client_frame(first).expect("parses") else {
            panic!("expected events");
        };
        assert_eq!(
            (ev.seq, ev.ack, ev.encoding),
            (7, Some(AckMode::Applied), Encoding::Ndjson)
        );
        let second = codec.decode(&mut partial).expect("ok").expect("a frame");
        assert!(matches!(
            parse_client_frame(second),
            Ok(ClientFrame::Hello(_))
        ));
        assert_eq!(codec.decode(&mut partial).expect("ok"), None);
    }

    #[test]
    fn over_limit_prefix_is_fatal_and_truncation_is_reported() {
        let mut codec = FrameCodec::new(16);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 17, 1][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { len: 17, .. })
        ));
        let mut buf = BytesMut::from(&[0u8, 0, 0, 5, 2, 0][..]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(FrameError::Truncated { have: 6, need: 9 })
        ));
    }

    #[test]
    fn bad_payloads_are_problems_not_fatal() {
        let p = parse_client_frame(RawFrame {
            kind: 0x55,
            body: Bytes::new(),
        });
        assert!(p.is_err());
        let p = parse_client_frame(RawFrame {
            kind: frame_type::EVENTS_BIN,
            body: Bytes::from_static(&[0, 0, 0, 1, 9]),
        })
        .expect_err("bad ack byte");
        assert_eq!(p.seq, Some(1));
    }
}
