//! The Statecraft TCP target: binary `EVENTS_BIN` frames through the
//! server crate's client ([`statecraft_server::client`]), pipelined up to the
//! window, one ACK per frame.
//!
//! A connection is one task running two loops joined together: the sender
//! (pace, take a window slot, encode the frame into the client's reused
//! buffer, note its origin, write) and the receiver (read an answer, match
//! it to the oldest frame in flight, record, free the slot).
//!
//! Invariants:
//! - ACKs come back in frame order (docs/protocol.md), so the answer to read
//!   next always belongs to the oldest [`InFlight`]; a seq that does not
//!   match ends the connection as a protocol failure rather than misfiling
//!   latencies.
//! - When the receiver fails it closes the window, so the sender stops at
//!   its next frame; every frame already in flight is counted as lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::Value;
use statecraft_engine::{Event, Op};
use statecraft_server::ClientError;
use statecraft_server::client::{ClientOptions, TcpClient};
use statecraft_server::protocol::{ErrorCode, ServerFrame};
use tokio::sync::{Semaphore, mpsc};

use super::generator::{EventGen, GenOp, merge_patch, set_patch_seq};
use super::recorder::{FrameTally, Recorder};
use super::{ConnOutcome, ConnPlan, InFlight, LoadConfig, pace};
use crate::cmd::remote::tcp_error;

/// Opens `n` greeted connections to `addr`.
pub(super) async fn connect_all(
    addr: &str,
    n: usize,
    config: &LoadConfig,
) -> anyhow::Result<Vec<TcpClient>> {
    let opts = ClientOptions {
        token: config.token.clone(),
        ack: Some(config.ack),
        name: Some("statecraft-load".to_owned()),
    };
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let client = TcpClient::connect_with(addr, opts.clone())
            .await
            .map_err(|e| match e {
                ClientError::Io(io) => tcp_error(&io, addr, "`statecraft serve`"),
                ClientError::Refused(frame) => anyhow::anyhow!(
                    "tcp://{addr} refused the connection: {}{}",
                    frame.message,
                    if frame.code == ErrorCode::Unauthorized {
                        " (pass --token)"
                    } else {
                        ""
                    }
                ),
                other => anyhow::anyhow!("tcp://{addr}: {other}"),
            })?;
        clients.push(client);
    }
    Ok(clients)
}

/// The name of an ERROR frame's code, for `errors_by_kind`.
fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Runs one connection's share of the load.
pub(super) async fn drive(
    client: TcpClient,
    plan: ConnPlan,
    mut source: EventGen,
    progress: &AtomicU64,
) -> ConnOutcome {
    let (mut tx, mut rx) = client.split();
    let window = Semaphore::new(plan.window);
    let window = &window;
    let (fl_tx, mut fl_rx) = mpsc::unbounded_channel::<InFlight>();

    let send = async move {
        let mut pacer = plan.pacer;
        let mut merge = Event::new(String::new(), Op::Merge).with_value(merge_patch(0));
        let mut sent = 0u64;
        while sent < plan.events {
            let n = (plan.events - sent).min(plan.batch as u64);
            let Ok(permit) = window.acquire().await else {
                break; // the receiver failed and closed the window
            };
            permit.forget();
            let late = pace(&mut pacer).await;
            let mut batch = tx.batch(Some(plan.ack));
            for _ in 0..n {
                let e = source.next_event();
                match e.op {
                    GenOp::Incr => {
                        batch.incr(e.key, 1);
                    }
                    GenOp::Set => {
                        batch.set(e.key, &Value::from(e.n));
                    }
                    GenOp::Merge => {
                        merge.key.clear();
                        merge.key.push_str(e.key);
                        if let Some(patch) = merge.value.as_mut() {
                            set_patch_seq(patch, e.n);
                        }
                        batch.event(&merge);
                    }
                }
            }
            batch.finish();
            let origin = late.unwrap_or_else(Instant::now);
            // The receiver is alive while the window is open; if it is gone
            // the next acquire fails.
            let _ = fl_tx.send(InFlight { origin, events: n });
            if let Err(e) = tx.flush().await {
                return (sent, Some(format!("writing a frame failed: {e}")));
            }
            sent += n;
        }
        (sent, None)
    };

    let recv = async {
        let mut rec = Recorder::default();
        let mut tally = FrameTally::default();
        let mut failure = None;
        while let Some(frame) = fl_rx.recv().await {
            tally.clear();
            let answer = rx.recv().await;
            let now = Instant::now();
            let fatal = match answer {
                Ok(ServerFrame::Ack { results, .. }) if results.len() as u64 != frame.events => {
                    rec.lost("protocol", frame.events);
                    Some(format!(
                        "an ACK carried {} results for a frame of {} events",
                        results.len(),
                        frame.events
                    ))
                }
                Ok(ServerFrame::Ack { results, .. }) => {
                    for r in &results {
                        tally.result(r);
                    }
                    None
                }
                Ok(ServerFrame::Error(e)) => {
                    tally.error_named(&format!("error_frame:{}", code_name(e.code)), frame.events);
                    (e.code.is_fatal() || e.frame_seq.is_none()).then(|| {
                        format!("the server sent ERROR {}: {}", code_name(e.code), e.message)
                    })
                }
                Ok(ServerFrame::HelloOk(_)) => {
                    rec.lost("protocol", frame.events);
                    Some("a second HELLO_OK".to_owned())
                }
                Err(e) => {
                    rec.lost("connection", frame.events);
                    Some(format!("reading answers failed: {e}"))
                }
            };
            if tally.total() > 0 {
                rec.frame(now.saturating_duration_since(frame.origin), &tally);
            }
            progress.fetch_add(frame.events, Ordering::Relaxed);
            window.add_permits(1);
            if let Some(why) = fatal {
                failure = Some(why);
                window.close();
                // Frames sent after the failure will get no answer.
                while let Some(lost) = fl_rx.recv().await {
                    rec.lost("connection", lost.events);
                    progress.fetch_add(lost.events, Ordering::Relaxed);
                }
                break;
            }
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
