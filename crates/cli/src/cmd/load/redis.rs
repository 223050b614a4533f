//! The Redis peer target: the same events as pipelined commands over RESP
//! (`INCRBY key 1` for `incr`; `HSET key v <n>` for `set`; `HSET key doc
//! <patch>` for `merge`), a pipeline of `--batch` commands per frame and up
//! to `--window` frames unanswered — the same shape and the same client
//! code as the Statecraft targets, so both sides pay the same client cost.
//!
//! Invariant: Redis answers commands in order, so the replies to read next
//! belong to the oldest frame in flight; a frame is answered once as many
//! replies as it had commands were read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc};

use super::generator::{EventGen, GenOp, merge_patch, set_patch_seq};
use super::recorder::{FrameTally, Recorder};
use super::resp::{self, Reply};
use super::{ConnOutcome, ConnPlan, InFlight, LoadConfig, pace};
use crate::cmd::remote::tcp_error;

/// One open connection to Redis.
#[derive(Debug)]
pub(super) struct RedisConn {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    /// Bytes read and not yet parsed (kept across frames).
    rbuf: BytesMut,
}

/// Sends one command and reads its reply (setup only: PING, AUTH).
async fn call(conn: &mut RedisConn, args: &[&[u8]]) -> anyhow::Result<String> {
    let mut buf = BytesMut::new();
    resp::put_command(&mut buf, args);
    conn.wr.write_all(&buf).await?;
    loop {
        if let Some((reply, used)) = resp::parse_reply(&conn.rbuf)? {
            let text = match reply {
                Reply::Error(e) => anyhow::bail!("{}", String::from_utf8_lossy(e)),
                Reply::Simple(s) | Reply::Bulk(Some(s)) => String::from_utf8_lossy(s).into_owned(),
                other => format!("{other:?}"),
            };
            conn.rbuf.advance(used);
            return Ok(text);
        }
        if conn.rd.read_buf(&mut conn.rbuf).await? == 0 {
            anyhow::bail!("the connection closed");
        }
    }
}

/// Opens `n` connections to `addr` (AUTH with the token if given) and PINGs
/// each.
pub(super) async fn connect_all(
    addr: &str,
    n: usize,
    config: &LoadConfig,
) -> anyhow::Result<Vec<RedisConn>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| tcp_error(&e, addr, "redis-server"))?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut conn = RedisConn {
            rd,
            wr,
            rbuf: BytesMut::with_capacity(64 << 10),
        };
        if let Some(token) = &config.token {
            call(&mut conn, &[b"AUTH", token.as_bytes()])
                .await
                .map_err(|e| anyhow::anyhow!("redis://{addr}: AUTH failed: {e}"))?;
        }
        let pong = call(&mut conn, &[b"PING"])
            .await
            .map_err(|e| anyhow::anyhow!("redis://{addr}: PING failed: {e}"))?;
        anyhow::ensure!(pong == "PONG", "redis://{addr} answered PING with {pong:?}");
        conns.push(conn);
    }
    Ok(conns)
}

/// Runs one connection's share of the load.
pub(super) async fn drive(
    conn: RedisConn,
    plan: ConnPlan,
    mut source: EventGen,
    progress: &AtomicU64,
) -> ConnOutcome {
    let RedisConn {
        mut rd,
        mut wr,
        mut rbuf,
    } = conn;
    let window = Semaphore::new(plan.window);
    let window = &window;
    let (fl_tx, mut fl_rx) = mpsc::unbounded_channel::<InFlight>();

    let send = async move {
        let mut pacer = plan.pacer;
        let mut patch = merge_patch(0);
        let mut buf = BytesMut::with_capacity(plan.batch * 48);
        // The value of the event being encoded (reused: no allocation per
        // event once it has grown).
        let mut value: Vec<u8> = Vec::with_capacity(256);
        let mut sent = 0u64;
        while sent < plan.events {
            let n = (plan.events - sent).min(plan.batch as u64);
            let Ok(permit) = window.acquire().await else {
                break;
            };
            permit.forget();
            let late = pace(&mut pacer).await;
            buf.clear();
            for _ in 0..n {
                let e = source.next_event();
                match e.op {
                    GenOp::Incr => resp::put_incrby(&mut buf, e.key, 1),
                    GenOp::Set => {
                        use std::io::Write as _;
                        value.clear();
                        let _ = write!(value, "{}", e.n);
                        resp::put_hset(&mut buf, e.key, b"v", &value);
                    }
                    GenOp::Merge => {
                        set_patch_seq(&mut patch, e.n);
                        value.clear();
                        let _ = serde_json::to_writer(&mut value, &patch);
                        resp::put_hset(&mut buf, e.key, b"doc", &value);
                    }
                }
            }
            let origin = late.unwrap_or_else(Instant::now);
            let _ = fl_tx.send(InFlight { origin, events: n });
            if let Err(e) = wr.write_all(&buf).await {
                return (sent, Some(format!("writing a pipeline failed: {e}")));
            }
            sent += n;
        }
        (sent, None)
    };

    let recv = async {
        let mut rec = Recorder::default();
        let mut tally = FrameTally::default();
        let mut failure = None;
        'frames: while let Some(frame) = fl_rx.recv().await {
            tally.clear();
            let mut answered = 0u64;
            while answered < frame.events {
                // Parse every complete reply already buffered.
                let mut at = 0;
                let mut bad = None;
                while answered < frame.events {
                    match resp::parse_reply(&rbuf[at..]) {
                        Ok(Some((reply, used))) => {
                            if reply.is_error() {
                                tally.error("redis_error", "", 1);
                            } else {
                                tally.ok += 1;
                            }
                            at += used;
                            answered += 1;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            bad = Some(e.to_string());
                            break;
                        }
                    }
                }
                rbuf.advance(at);
                if let Some(why) = bad {
                    failure = Some(why);
                } else if answered < frame.events {
                    rbuf.reserve(64 << 10);
                    match rd.read_buf(&mut rbuf).await {
                        Ok(0) => failure = Some("redis closed the connection".to_owned()),
                        Ok(_) => {}
                        Err(e) => failure = Some(format!("reading replies failed: {e}")),
                    }
                }
                if failure.is_some() {
                    if tally.total() > 0 {
                        rec.frame(frame.origin.elapsed(), &tally);
                    }
                    rec.lost("connection", frame.events - answered);
                    progress.fetch_add(frame.events, Ordering::Relaxed);
                    window.close();
                    while let Some(lost) = fl_rx.recv().await {
                        rec.lost("connection", lost.events);
                        progress.fetch_add(lost.events, Ordering::Relaxed);
                    }
                    break 'frames;
                }
            }
            rec.frame(frame.origin.elapsed(), &tally);
            progress.fetch_add(frame.events, Ordering::Relaxed);
            window.add_permits(1);
        }
        (rec, failure)
    };

    let ((sent, send_failure), (rec, recv_failure)) = tokio::join!(send, recv);
    ConnOutcome {
        rec,
        not_sent: plan.events - sent,
        failure: recv_failure.or(send_failure),
    }
}
