//! The client side of the TCP ingest protocol, for the CLI (`send`, `load`)
//! and for tests: connect + HELLO, then a [`FrameSender`] that encodes
//! events frames into one reused buffer and an [`AckReceiver`] that reads the
//! answers. The two halves are independent, so a producer can keep many
//! frames in flight (pipelining) while another task reads ACKs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), statecraft_server::client::ClientError> {
//! use statecraft_server::client::TcpClient;
//! use statecraft_server::protocol::ServerFrame;
//! use statecraft_engine::AckMode;
//!
//! let client = TcpClient::connect("127.0.0.1:7471", None).await?;
//! let (mut tx, mut rx) = client.split();
//! let mut batch = tx.batch(Some(AckMode::Applied));
//! for i in 0..1000 {
//!     batch.incr(&format!("key:{i}"), 1);
//! }
//! let seq = batch.send().await?;
//! match rx.recv().await? {
//!     ServerFrame::Ack { seq: s, results } => assert_eq!((s, results.len()), (seq, 1000)),
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! Invariant: the sender's buffer holds only whole frames between calls
//! (a [`Batch`] that is dropped without `finish`/`send` is rolled back), so
//! a flush never puts half a frame on the wire.

use bytes::{BufMut, BytesMut};
use futures::StreamExt;
use serde_json::Value;
use statecraft_engine::{AckMode, Event, EventResult};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_util::codec::FramedRead;

use crate::protocol::{
    self, ErrorFrame, FrameCodec, FrameError, Hello, HelloOk, PROTOCOL_VERSION, ServerFrame,
    binary, frame_type,
};

/// The largest frame a client accepts from the server (ACKs of big frames
/// with long rejection messages stay far below it).
const CLIENT_MAX_FRAME: usize = 256 << 20;

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server's byte stream could not be framed.
    #[error("framing error: {0}")]
    Frame(#[from] FrameError),
    /// The server sent something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server answered the HELLO with an error.
    #[error("the server refused the connection: {code:?}: {message}", code = .0.code, message = .0.message)]
    Refused(ErrorFrame),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
}

/// Options of [`TcpClient::connect_with`].
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// The bearer token, when the server requires one.
    pub token: Option<String>,
    /// The connection's default ack mode (frames sent with `None`).
    pub ack: Option<AckMode>,
    /// A name for the server's logs.
    pub name: Option<String>,
}

/// A connected, greeted client.
#[derive(Debug)]
pub struct TcpClient {
    sender: FrameSender,
    receiver: AckReceiver,
    hello: HelloOk,
}

impl TcpClient {
    /// Connects and sends HELLO with `token`; returns after HELLO_OK (which
    /// the server sends once its engine is open).
    pub async fn connect(
        addr: impl ToSocketAddrs,
        token: Option<&str>,
    ) -> Result<Self, ClientError> {
        Self::connect_with(
            addr,
            ClientOptions {
                token: token.map(str::to_owned),
                ..ClientOptions::default()
            },
        )
        .await
    }

    /// Connects with options.
    pub async fn connect_with(
        addr: impl ToSocketAddrs,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut sender = FrameSender {
            wr,
            buf: BytesMut::with_capacity(64 << 10),
            next_seq: 0,
        };
        let mut receiver = AckReceiver {
            frames: FramedRead::with_capacity(rd, FrameCodec::new(CLIENT_MAX_FRAME), 64 << 10),
        };
        let hello = Hello {
            version: PROTOCOL_VERSION,
            token: options.token,
            ack: options.ack,
            client: options.name,
        };
        protocol::put_json_frame(&mut sender.buf, frame_type::HELLO, &hello);
        sender.flush().await?;
        match receiver.recv().await? {
            ServerFrame::HelloOk(ok) => Ok(TcpClient {
                sender,
                receiver,
                hello: ok,
            }),
            ServerFrame::Error(e) => Err(ClientError::Refused(e)),
            other => Err(ClientError::Protocol(format!(
                "expected HELLO_OK, got {other:?}"
            ))),
        }
    }

    /// What the server said in HELLO_OK.
    pub fn server_hello(&self) -> &HelloOk {
        &self.hello
    }

    /// The two halves, to send and receive from different tasks.
    pub fn split(self) -> (FrameSender, AckReceiver) {
        (self.sender, self.receiver)
    }

    /// The sending half.
    pub fn sender(&mut self) -> &mut FrameSender {
        &mut self.sender
    }

    /// The receiving half.
    pub fn receiver(&mut self) -> &mut AckReceiver {
        &mut self.receiver
    }

    /// Sends one frame of `events` and waits for its answer (no pipelining:
    /// for simple uses and tests). An ERROR in place of the ACK is returned
    /// as `Err(ClientError::Refused)`.
    pub async fn submit(
        &mut self,
        events: &[Event],
        ack: Option<AckMode>,
    ) -> Result<Vec<EventResult>, ClientError> {
        let seq = self.sender.send_events(events, ack).await?;
        loop {
            match self.receiver.recv().await? {
                ServerFrame::Ack { seq: s, results } if s == seq => return Ok(results),
                ServerFrame::Error(e) => return Err(ClientError::Refused(e)),
                _ => continue,
            }
        }
    }
}

/// The sending half: builds frames in a reused buffer and writes them.
#[derive(Debug)]
pub struct FrameSender {
    wr: OwnedWriteHalf,
    /// Whole frames not yet written.
    buf: BytesMut,
    next_seq: u32,
}

impl FrameSender {
    /// Begins an `EVENTS_BIN` frame; add events to the [`Batch`], then
    /// `send` it (or `finish` it and [`flush`](Self::flush) later, to write
    /// several frames in one syscall).
    pub fn batch(&mut self, ack: Option<AckMode>) -> Batch<'_> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let start = protocol::begin_frame(&mut self.buf, frame_type::EVENTS_BIN);
        self.buf.put_u32(seq);
        self.buf.put_u8(protocol::ack_to_byte(ack));
        let count_at = self.buf.len();
        self.buf.put_u32(0);
        Batch {
            sender: self,
            start,
            count_at,
            count: 0,
            seq,
            done: false,
        }
    }

    /// Sends `events` as one binary frame; returns its seq.
    pub async fn send_events(
        &mut self,
        events: &[Event],
        ack: Option<AckMode>,
    ) -> Result<u32, ClientError> {
        let mut batch = self.batch(ack);
        for e in events {
            batch.event(e);
        }
        batch.send().await
    }

    /// Sends `ndjson` (lines of JSON events) as one NDJSON frame; returns its seq.
    pub async fn send_ndjson(
        &mut self,
        ndjson: &[u8],
        ack: Option<AckMode>,
    ) -> Result<u32, ClientError> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        protocol::put_ndjson_frame(&mut self.buf, seq, ack, ndjson);
        self.flush().await?;
        Ok(seq)
    }

    /// Writes raw bytes (after any buffered frames): for tests of the
    /// server's handling of bad input.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.flush().await?;
        self.wr.write_all(bytes).await?;
        Ok(())
    }

    /// The seq the next frame will get.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Bytes of finished frames waiting for [`flush`](Self::flush).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Writes every finished frame.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        if !self.buf.is_empty() {
            self.wr.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Closes the sending direction (the server answers what it has, then
    /// closes too).
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.flush().await?;
        self.wr.shutdown().await?;
        Ok(())
    }
}

/// An `EVENTS_BIN` frame being built in the sender's buffer.
#[derive(Debug)]
pub struct Batch<'a> {
    sender: &'a mut FrameSender,
    start: usize,
    count_at: usize,
    count: u32,
    seq: u32,
    done: bool,
}

impl Batch<'_> {
    /// Adds an `incr` of `key` by `by` (the allocation-free fast path).
    #[inline]
    pub fn incr(&mut self, key: &str, by: i64) -> &mut Self {
        binary::put_incr(&mut self.sender.buf, key, by);
        self.count += 1;
        self
    }

    /// Adds a `set` of `key` to `value`.
    pub fn set(&mut self, key: &str, value: &Value) -> &mut Self {
        binary::put_set(&mut self.sender.buf, key, value);
        self.count += 1;
        self
    }

    /// Adds any event.
    pub fn event(&mut self, event: &Event) -> &mut Self {
        binary::put_event(&mut self.sender.buf, event);
        self.count += 1;
        self
    }

    /// Events in the frame so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// True when no event was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the frame so far.
    pub fn frame_bytes(&self) -> usize {
        self.sender.buf.len() - self.start
    }

    /// The frame's seq.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Completes the frame in the buffer without writing it; returns its seq.
    pub fn finish(mut self) -> u32 {
        self.complete();
        self.seq
    }

    /// Completes the frame and writes the buffer; returns the frame's seq.
    pub async fn send(mut self) -> Result<u32, ClientError> {
        self.complete();
        let seq = self.seq;
        self.sender.flush().await?;
        Ok(seq)
    }

    fn complete(&mut self) {
        let at = self.count_at;
        self.sender.buf[at..at + 4].copy_from_slice(&self.count.to_be_bytes());
        protocol::finish_frame(&mut self.sender.buf, self.start);
        self.done = true;
    }
}

impl Drop for Batch<'_> {
    /// An unfinished frame is removed, so the buffer holds whole frames only.
    fn drop(&mut self) {
        if !self.done {
            self.sender.buf.truncate(self.start);
        }
    }
}

/// The receiving half: reads HELLO_OK, ACK and ERROR frames.
#[derive(Debug)]
pub struct AckReceiver {
    frames: FramedRead<OwnedReadHalf, FrameCodec>,
}

impl AckReceiver {
    /// The next frame from the server; `Err(Closed)` at end of stream.
    pub async fn recv(&mut self) -> Result<ServerFrame, ClientError> {
        match self.frames.next().await {
            None => Err(ClientError::Closed),
            Some(Err(e)) => Err(ClientError::Frame(e)),
            Some(Ok(raw)) => {
                protocol::parse_server_frame(raw).map_err(|p| ClientError::Protocol(p.message))
            }
        }
    }
}
