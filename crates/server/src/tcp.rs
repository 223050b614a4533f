//! The TCP ingest front end: the accept loop and one pipelined connection
//! task pair per client, speaking [`crate::protocol`].
//!
//! A connection is a **reader** (this task: reads frames, decodes, admits the
//! events with `engine.enqueue_decoded`) and a **writer** (a spawned task:
//! waits for each frame's results in order and writes its ACK). Between them
//! runs [`Outgoing`] on a bounded channel of `max_in_flight_frames` slots.
//!
//! Invariants:
//! - One answer per events frame, in input order: the reader reserves the
//!   frame's slot in the channel *before* admitting its events, and the
//!   writer answers slots in channel order (an ACK, or an ERROR with the
//!   frame's seq in its place).
//! - Backpressure reaches the socket: when the engine's queues are full under
//!   `block`, `enqueue` waits, the reader stops reading, the kernel buffers
//!   fill and TCP flow control stops the client. When the client does not
//!   read its ACKs, the writer blocks, the channel fills, and the reader
//!   stops too. Memory per connection is bounded by a budget of
//!   `max_in_flight_frames × max_body_bytes`: each frame is charged for its
//!   bytes and its answers before it is admitted, and its charge comes back
//!   when its ACK was written to the socket; a frame larger than the budget
//!   takes all of it (one such frame at a time).
//! - On stop, the reader reads no new frame; the writer answers every frame
//!   already admitted, then sends `ERROR shutting_down` and closes. The
//!   connection's [`TaskGuard`] is dropped only after that, so the engine
//!   shuts down after every admitted frame was acknowledged.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use statecraft_engine::{AckMode, EngineError, Ticket};
use subtle::ConstantTimeEq;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::codec::FramedRead;

use crate::error::ServerError;
use crate::observe::{Source, Stage};
use crate::protocol::{
    self, ClientFrame, ErrorCode, ErrorFrame, FrameCodec, FrameError, HelloOk, PROTOCOL_VERSION,
    frame_type,
};
use crate::server::Shared;
use crate::shutdown::{Shutdown, TaskGuard};

/// How long a closing connection keeps discarding what the client sends.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Flush the writer's buffer once it holds this much, even with more queued.
const WRITE_CHUNK: usize = 256 << 10;

/// The memory budget of a connection is counted in units of this many bytes.
const BUDGET_UNIT: usize = 1024;

/// What one event's answer may hold until its ACK is written, bytes: its
/// decoded form or rejection, its result and its encoded ACK entry.
const ANSWER_BYTES_PER_EVENT: usize = 160;

/// A frame's charge against its connection's budget, in [`BUDGET_UNIT`]s:
/// its bytes twice (read buffer and decoded events) plus its answers,
/// at most the whole budget (one frame at a time then).
fn frame_charge(frame_bytes: usize, events: usize, budget_units: u32) -> u32 {
    let bytes = frame_bytes
        .saturating_mul(2)
        .saturating_add(events.saturating_mul(ANSWER_BYTES_PER_EVENT));
    u32::try_from(bytes.div_ceil(BUDGET_UNIT))
        .unwrap_or(u32::MAX)
        .clamp(1, budget_units)
}

/// Runs the accept loop until the stop signal; then returns, after which the
/// connections finish on their own (each holds its own guard).
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: Shutdown,
    guard: TaskGuard,
    _fail: mpsc::Sender<ServerError>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.recv() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared
            .counters
            .tcp_connections
            .fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        match Arc::clone(&shared.tcp_slots).try_acquire_owned() {
            Ok(slot) => {
                let conn = Connection {
                    shared: Arc::clone(&shared),
                    stop: stop.clone(),
                    peer,
                };
                let guard = guard.clone();
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    shared.counters.tcp_open.fetch_add(1, Ordering::Relaxed);
                    conn.run(stream).await;
                    shared.counters.tcp_open.fetch_sub(1, Ordering::Relaxed);
                    drop(slot);
                    // Last: this connection no longer holds up the engine's shutdown.
                    drop(guard);
                });
            }
            Err(_) => {
                shared.counters.tcp_refused.fetch_add(1, Ordering::Relaxed);
                let max = shared.http_conn_limit;
                tracing::warn!(%peer, max, "tcp connection refused: too many connections");
                let err = ErrorFrame::new(
                    ErrorCode::TooManyConnections,
                    format!("the server allows {max} connections at once"),
                );
                let mut buf = BytesMut::new();
                protocol::put_json_frame(&mut buf, frame_type::ERROR, &err);
                crate::conn::farewell(&shared, stream, buf.to_vec(), false);
            }
        }
    }
    tracing::info!("tcp: stopped accepting");
    drop(listener);
    drop(guard);
}

/// A lingering close: after our FIN, read and discard what the client still
/// sends, until it closes or [`LINGER_TIMEOUT`] passes. Closing a socket with
/// unread bytes in its receive buffer sends a TCP reset, which can destroy
/// the last ACKs and the final ERROR before the client reads them.
async fn linger(mut rd: tokio::net::tcp::OwnedReadHalf) {
    use tokio::io::AsyncReadExt;
    let mut scratch = vec![0u8; 16 << 10];
    let _ = tokio::time::timeout(LINGER_TIMEOUT, async {
        loop {
            match rd.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// What the reader hands the writer, in frame order.
enum Outgoing {
    /// The handshake answer.
    HelloOk(HelloOk),
    /// Admitted events: wait for their results, write the ACK.
    Ticket {
        seq: u32,
        ticket: Ticket,
        /// When the events were admitted (the ack stage starts here).
        admitted: std::time::Instant,
        /// The frame's share of the connection's memory budget, given back
        /// once its ACK is written to the socket.
        charge: OwnedSemaphorePermit,
    },
    /// An error (a malformed frame's answer, or the last word before closing).
    Error(ErrorFrame),
    /// Cluster mode: events being published to the stream; `n` of them.
    Published {
        seq: u32,
        n: usize,
        results: tokio::task::JoinHandle<Vec<statecraft_engine::EventResult>>,
        /// As in `Ticket`.
        charge: OwnedSemaphorePermit,
    },
}

struct Connection {
    shared: Arc<Shared>,
    stop: Shutdown,
    peer: std::net::SocketAddr,
}

/// Why the reader stopped.
enum Stop {
    /// The client closed its side.
    Eof,
    /// The server is shutting down.
    Shutdown,
    /// A fatal error: send it, then close.
    Fatal(ErrorFrame),
    /// The socket failed, or the writer is gone: nothing more can be sent.
    Broken,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let (rd, wr) = stream.into_split();
        let cfg = &self.shared.config;
        let mut frames =
            FramedRead::with_capacity(rd, FrameCodec::new(cfg.max_body_bytes), 64 << 10);
        // Capacity = frames read ahead of their ACKs; the reader reserves a
        // slot before admitting a frame. Closed by the reader (drop) when it
        // stops; the writer then drains what is queued and closes the socket.
        let (out_tx, out_rx) = mpsc::channel::<Outgoing>(cfg.max_in_flight_frames);
        let writer = tokio::spawn(write_loop(wr, out_rx, Arc::clone(&self.shared)));
        let stopped = self.read_loop(&mut frames, &out_tx).await;
        let last_word = match stopped {
            Stop::Eof | Stop::Broken => None,
            Stop::Shutdown => Some(ErrorFrame::new(
                ErrorCode::ShuttingDown,
                "the server is shutting down: every frame before this one was answered",
            )),
            Stop::Fatal(e) => Some(e),
        };
        if let Some(e) = last_word {
            tracing::debug!(peer = %self.peer, code = ?e.code, message = %e.message, "tcp: closing with an error");
            let _ = out_tx.send(Outgoing::Error(e)).await;
        }
        // Closing the channel tells the writer to finish and close.
        drop(out_tx);
        let _ = writer.await;
        linger(frames.into_inner()).await;
    }

    async fn read_loop(
        &self,
        frames: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, FrameCodec>,
        out: &mpsc::Sender<Outgoing>,
    ) -> Stop {
        let mut stop = self.stop.clone();
        let cfg = &self.shared.config;
        let mut default_ack: AckMode = cfg.engine.ack;
        let mut greeted = false;
        // The connection's memory budget: max_in_flight × max_frame_bytes
        // (docs/protocol.md), charged per frame for its input and its
        // answers and given back as ACKs are written — a client that does
        // not read its ACKs stops being read once its answers fill it.
        let budget_units = u32::try_from(
            cfg.max_in_flight_frames
                .saturating_mul(cfg.max_body_bytes)
                .div_ceil(BUDGET_UNIT),
        )
        .unwrap_or(u32::MAX)
        .max(1);
        let budget = Arc::new(Semaphore::new(budget_units as usize));
        // A client that sends no HELLO in time gives its slot back.
        let hello_deadline = tokio::time::sleep(cfg.hello_timeout);
        tokio::pin!(hello_deadline);
        loop {
            let next = tokio::select! {
                biased;
                _ = stop.recv() => return Stop::Shutdown,
                () = &mut hello_deadline, if !greeted => {
                    return Stop::Fatal(ErrorFrame::new(
                        ErrorCode::HelloRequired,
                        format!("no HELLO within {} ms", cfg.hello_timeout.as_millis()),
                    ));
                }
                f = frames.next() => f,
            };
            let raw = match next {
                None => return Stop::Eof,
                Some(Ok(raw)) => raw,
                Some(Err(FrameError::TooLarge { len, max })) => {
                    return Stop::Fatal(ErrorFrame::new(
                        ErrorCode::FrameTooLarge,
                        format!("a frame of {len} bytes is over the limit of {max} bytes"),
                    ));
                }
                Some(Err(e @ FrameError::Truncated { .. })) => {
                    return Stop::Fatal(ErrorFrame::new(ErrorCode::TruncatedFrame, e.to_string()));
                }
                Some(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "tcp: read failed");
                    return Stop::Broken;
                }
            };
            let raw_len = raw.body.len();
            let frame = match protocol::parse_client_frame(raw) {
                Ok(f) => f,
                Err(p) if greeted => {
                    if out.send(Outgoing::Error(p.to_error())).await.is_err() {
                        return Stop::Broken;
                    }
                    continue;
                }
                Err(p) => {
                    return Stop::Fatal(ErrorFrame::new(
                        ErrorCode::HelloRequired,
                        format!("the first frame must be a valid HELLO: {p}"),
                    ));
                }
            };
            match frame {
                ClientFrame::Hello(hello) => {
                    if greeted {
                        let e = ErrorFrame::new(ErrorCode::MalformedFrame, "HELLO sent twice");
                        if out.send(Outgoing::Error(e)).await.is_err() {
                            return Stop::Broken;
                        }
                        continue;
                    }
                    if hello.version != PROTOCOL_VERSION {
                        return Stop::Fatal(ErrorFrame::new(
                            ErrorCode::UnsupportedVersion,
                            format!(
                                "this server speaks protocol version {PROTOCOL_VERSION}, not {}",
                                hello.version
                            ),
                        ));
                    }
                    if let Some(expected) = &cfg.auth_token {
                        let given = hello.token.as_deref().unwrap_or("");
                        let ok: bool = given.as_bytes().ct_eq(expected.expose().as_bytes()).into();
                        if !ok {
                            tracing::warn!(peer = %self.peer, "tcp: HELLO with a missing or wrong token");
                            return Stop::Fatal(ErrorFrame::new(
                                ErrorCode::Unauthorized,
                                "a valid token is required in HELLO",
                            ));
                        }
                    }
                    // Answer only once the engine is open (or the server stops).
                    let ready = tokio::select! {
                        biased;
                        _ = stop.recv() => return Stop::Shutdown,
                        r = self.shared.wait_engine() => r,
                    };
                    if let Err(why) = ready {
                        return Stop::Fatal(ErrorFrame::new(
                            ErrorCode::Unavailable,
                            format!("the engine failed to start: {why}"),
                        ));
                    }
                    if let Some(ack) = hello.ack {
                        default_ack = ack;
                    }
                    greeted = true;
                    tracing::debug!(peer = %self.peer, client = ?hello.client, ack = %default_ack, "tcp: hello");
                    let ok = HelloOk {
                        version: PROTOCOL_VERSION,
                        server: format!("statecraft {}", env!("CARGO_PKG_VERSION")),
                        max_frame_bytes: cfg.max_body_bytes as u32,
                        max_in_flight: cfg.max_in_flight_frames as u32,
                        ack: default_ack,
                    };
                    if out.send(Outgoing::HelloOk(ok)).await.is_err() {
                        return Stop::Broken;
                    }
                }
                ClientFrame::Events(ev) => {
                    if !greeted {
                        return Stop::Fatal(ErrorFrame::new(
                            ErrorCode::HelloRequired,
                            "send HELLO before events",
                        ));
                    }
                    // Reserve the frame's answer slot first: this is the
                    // in-flight bound, and it fixes the frame's place in the
                    // answer order.
                    let Ok(slot) = out.reserve().await else {
                        return Stop::Broken;
                    };
                    let decode_began = std::time::Instant::now();
                    let decoded = ev.decode(&cfg.engine.limits);
                    self.shared
                        .observe
                        .record(Source::Tcp, Stage::Decode, decode_began.elapsed());
                    let items = match decoded {
                        Ok(items) => items,
                        Err(p) => {
                            slot.send(Outgoing::Error(p.to_error()));
                            continue;
                        }
                    };
                    self.shared
                        .counters
                        .tcp_events
                        .fetch_add(items.len() as u64, Ordering::Relaxed);
                    let units = frame_charge(raw_len, items.len(), budget_units);
                    let charge = tokio::select! {
                        biased;
                        _ = stop.recv() => return Stop::Shutdown,
                        c = Arc::clone(&budget).acquire_many_owned(units) => match c {
                            Ok(c) => c,
                            Err(_) => return Stop::Broken,
                        },
                    };
                    let Some(engine) = self.shared.engine() else {
                        // Greeted implies the engine was open.
                        slot.send(Outgoing::Error(ErrorFrame {
                            code: ErrorCode::Internal,
                            message: "the engine is not open".into(),
                            frame_seq: Some(ev.seq),
                        }));
                        continue;
                    };
                    let ack = ev.ack.unwrap_or(default_ack);
                    if let Some(cluster) = self.shared.cluster.get() {
                        // Cluster mode: into the stream (docs/scale-out.md).
                        let cluster = cluster.clone();
                        let n = items.len();
                        let results = tokio::spawn(async move {
                            match cluster.publish(items, ack).await {
                                Ok(r) => r,
                                Err(e) => vec![
                                    statecraft_engine::EventResult::rejected(
                                        statecraft_engine::RejectCode::StoreUnavailable,
                                        e.to_string(),
                                    );
                                    n
                                ],
                            }
                        });
                        slot.send(Outgoing::Published {
                            seq: ev.seq,
                            n,
                            results,
                            charge,
                        });
                        continue;
                    }
                    let admit_began = std::time::Instant::now();
                    // Under `block` a connection waits for room as long as it
                    // takes: it stops reading and TCP flow control pushes
                    // back on the producer (no timeout, unlike HTTP).
                    match engine
                        .enqueue_decoded_waiting(items, ack, statecraft_engine::BlockWait::Forever)
                        .await
                    {
                        Ok(ticket) => {
                            let admitted = std::time::Instant::now();
                            self.shared.observe.record(
                                Source::Tcp,
                                Stage::Admit,
                                admitted - admit_began,
                            );
                            slot.send(Outgoing::Ticket {
                                seq: ev.seq,
                                ticket,
                                admitted,
                                charge,
                            })
                        }
                        Err(EngineError::ShuttingDown) => {
                            slot.send(Outgoing::Error(ErrorFrame {
                                code: ErrorCode::ShuttingDown,
                                message: "the engine is shutting down; this frame was not admitted"
                                    .into(),
                                frame_seq: Some(ev.seq),
                            }));
                            return Stop::Eof;
                        }
                        Err(e) => slot.send(Outgoing::Error(ErrorFrame {
                            code: ErrorCode::Internal,
                            message: e.to_string(),
                            frame_seq: Some(ev.seq),
                        })),
                    }
                }
            }
        }
    }
}

/// Answers the reader's items in order; flushes when nothing more is queued,
/// when the next frame's results are not ready yet, or when the buffer is
/// large. Ends when the reader closes the channel (after
/// answering everything queued) or the socket fails.
async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Outgoing>, shared: Arc<Shared>) {
    let mut buf = BytesMut::with_capacity(64 << 10);
    // Charges of the ACKs in `buf`: given back once `buf` is written.
    let mut held: Vec<OwnedSemaphorePermit> = Vec::new();
    while let Some(item) = rx.recv().await {
        match item {
            Outgoing::HelloOk(ok) => protocol::put_json_frame(&mut buf, frame_type::HELLO_OK, &ok),
            Outgoing::Ticket {
                seq,
                ticket,
                admitted,
                charge,
            } => {
                held.push(charge);
                // Flush what is buffered before waiting: an ACK must not sit
                // in our buffer while we wait for a later frame's results.
                let mut results = std::pin::pin!(ticket.wait());
                let results = match futures::poll!(results.as_mut()) {
                    std::task::Poll::Ready(r) => r,
                    std::task::Poll::Pending => {
                        if !buf.is_empty() {
                            if wr.write_all(&buf).await.is_err() {
                                return;
                            }
                            buf.clear();
                        }
                        results.await
                    }
                };
                shared
                    .observe
                    .record(Source::Tcp, Stage::Ack, admitted.elapsed());
                protocol::put_ack_frame(&mut buf, seq, &results);
                shared.counters.tcp_frames.fetch_add(1, Ordering::Relaxed);
            }
            Outgoing::Published {
                seq,
                n,
                results,
                charge,
            } => {
                held.push(charge);
                if !buf.is_empty() {
                    if wr.write_all(&buf).await.is_err() {
                        return;
                    }
                    buf.clear();
                }
                let results = results.await.unwrap_or_else(|e| {
                    vec![
                        statecraft_engine::EventResult::rejected(
                            statecraft_engine::RejectCode::StoreUnavailable,
                            format!("publishing failed: {e}"),
                        );
                        n
                    ]
                });
                protocol::put_ack_frame(&mut buf, seq, &results);
                shared.counters.tcp_frames.fetch_add(1, Ordering::Relaxed);
            }
            Outgoing::Error(e) => {
                shared.counters.tcp_errors.fetch_add(1, Ordering::Relaxed);
                protocol::put_json_frame(&mut buf, frame_type::ERROR, &e);
            }
        }
        if buf.len() >= WRITE_CHUNK || rx.is_empty() {
            if wr.write_all(&buf).await.is_err() {
                // The client is gone. Dropping `rx` makes the reader stop;
                // admitted events still apply (their results are dropped).
                return;
            }
            buf.clear();
            held.clear();
        }
    }
    if !buf.is_empty() {
        let _ = wr.write_all(&buf).await;
    }
    let _ = tokio::time::timeout(crate::conn::FAREWELL_TIMEOUT, wr.shutdown()).await;
}
