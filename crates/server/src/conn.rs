//! Connection hygiene (issue 16): what a hostile or broken client can hold
//! and for how long.
//!
//! Owns: the HTTP acceptor ([`HttpAcceptor`]) that counts *sockets* against
//! `max_connections` and refuses the one past the limit before reading a
//! byte of it; the stream wrapper ([`Guarded`]) that holds a socket's slot
//! for the socket's life and closes it after `idle_timeout` without any
//! progress in either direction; the bounded farewell for refused sockets;
//! and the descriptor budget ([`raise_nofile_limit`], [`fd_budget`]).
//!
//! Invariants:
//! - An accepted HTTP or TCP socket holds one slot of its front end until it
//!   is closed; refused sockets get at most [`FAREWELL_MAX`] farewell tasks at
//!   once (beyond that they are closed at once), each bounded by
//!   [`FAREWELL_TIMEOUT`].
//! - The descriptors clients can hold are at most `2 × max_connections +
//!   FAREWELL_MAX`, and start-up shrinks `max_connections` so that this
//!   leaves [`STORE_FD_RESERVE`] descriptors for the store: a flood of
//!   clients meets `EMFILE` on accept (back-pressure: the accept loop backs
//!   off) or a refusal, never a store that cannot open a journal file.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use crate::server::Shared;

/// Descriptors kept for the store (journal and table files, fjall's
/// workers) and the process itself: client sockets never take these.
pub(crate) const STORE_FD_RESERVE: u64 = 512;

/// Most refused sockets being told why at once (the rest are just closed).
pub(crate) const FAREWELL_MAX: usize = 64;

/// Most bytes of a refused HTTP request head read (and discarded) before
/// the 503 is written.
pub(crate) const REFUSAL_HEAD_BYTES: usize = 8 << 10;

/// How long a refused socket gets to read its refusal.
pub(crate) const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (capped at 1 Mi when
/// the hard limit is unlimited). Returns the soft limit in force after.
pub(crate) fn raise_nofile_limit() -> io::Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into `r`, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let target = if r.rlim_max == libc::RLIM_INFINITY {
        1 << 20
    } else {
        r.rlim_max
    };
    if r.rlim_cur != libc::RLIM_INFINITY && r.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: r.rlim_max,
        };
        // SAFETY: setrlimit only reads `raised`, which we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        tracing::info!(
            from = r.rlim_cur,
            to = target,
            "raised the soft open-file limit to the hard limit"
        );
        return Ok(target);
    }
    Ok(r.rlim_cur)
}

/// Client sockets allowed per front end (HTTP, TCP) under a soft
/// descriptor limit of `soft`: `max_connections`, or less when both front
/// ends at that many plus the farewells would eat into
/// [`STORE_FD_RESERVE`].
pub(crate) fn fd_budget(max_connections: usize, soft: u64) -> usize {
    let for_clients = soft.saturating_sub(STORE_FD_RESERVE + FAREWELL_MAX as u64) / 2;
    let allowed = usize::try_from(for_clients).unwrap_or(usize::MAX).max(1);
    max_connections.min(allowed)
}

/// Tells a refused socket why (`answer`, written as is) and closes it, in
/// the background, if a farewell slot is free; otherwise closes it at once.
///
/// With `wait_for_head` (HTTP), up to [`REFUSAL_HEAD_BYTES`] of the request
/// head are read and discarded first (never parsed): an HTTP client treats
/// an answer that arrives before its request was sent as a broken
/// connection, not as the 503 it is.
pub(crate) fn farewell(
    shared: &Shared,
    mut stream: TcpStream,
    answer: Vec<u8>,
    wait_for_head: bool,
) {
    let Ok(slot) = Arc::clone(&shared.farewells).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        if wait_for_head {
            let _ = tokio::time::timeout(FAREWELL_TIMEOUT, async {
                let mut head = Vec::with_capacity(1024);
                let mut scratch = [0u8; 1024];
                while head.len() < REFUSAL_HEAD_BYTES && !head.windows(4).any(|w| w == b"\r\n\r\n")
                {
                    match stream.read(&mut scratch).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&scratch[..n]),
                    }
                }
            })
            .await;
        }
        // Answer, half-close, then discard what the client still sends
        // until it closes (or the timeout): closing with unread input would
        // reset the connection and could destroy the answer before the
        // client reads it. Nothing read is parsed.
        let _ = tokio::time::timeout(FAREWELL_TIMEOUT, async {
            stream.write_all(&answer).await?;
            stream.shutdown().await?;
            let mut scratch = [0u8; 4096];
            while stream.read(&mut scratch).await? > 0 {}
            Ok::<(), io::Error>(())
        })
        .await;
        drop(slot);
    });
}

/// The HTTP refusal: a complete 503 problem response, then close.
fn http_refusal(max: usize) -> Vec<u8> {
    let body = format!(
        "{{\"type\":\"/problems/too-many-connections\",\"title\":\"Too many connections\",\
         \"status\":503,\"detail\":\"the server allows {max} HTTP connections at once\"}}"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// axum-server acceptor of the HTTP listener: takes a slot for the socket
/// or refuses it before anything is read.
#[derive(Clone)]
pub(crate) struct HttpAcceptor {
    pub shared: Arc<Shared>,
}

impl<S: Send + 'static> axum_server::accept::Accept<TcpStream, S> for HttpAcceptor {
    type Stream = Guarded<TcpStream>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Guarded<TcpStream>, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let shared = &self.shared;
        match Arc::clone(&shared.http_conn_slots).try_acquire_owned() {
            Ok(slot) => {
                let _ = stream.set_nodelay(true);
                std::future::ready(Ok((
                    Guarded::new(stream, slot, shared.config.idle_timeout),
                    service,
                )))
            }
            Err(_) => {
                shared.counters.http_busy.fetch_add(1, Ordering::Relaxed);
                farewell(shared, stream, http_refusal(shared.http_conn_limit), true);
                std::future::ready(Err(io::Error::other("refused: too many HTTP connections")))
            }
        }
    }
}

/// A client socket with its slot and its idle deadline: a read or write
/// that waits while no byte moved in either direction for `idle` fails with
/// `TimedOut`, which closes the connection. A request being handled is not
/// idle (nothing waits on the socket then).
pub(crate) struct Guarded<S> {
    inner: S,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    pub(crate) fn new(inner: S, slot: OwnedSemaphorePermit, idle: Duration) -> Self {
        Guarded {
            inner,
            _slot: slot,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn touch(&mut self) {
        let at = Instant::now() + self.idle;
        self.deadline.as_mut().reset(at);
    }

    /// On a wait: the idle error once the deadline passed.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle past idle_timeout",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.idle_expired(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // A client that does not read its answers is idle too.
            Poll::Pending => this.idle_expired(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.idle_expired(cx).map(Err),
            done => done,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_the_store_reserve() {
        assert_eq!(fd_budget(1024, 20_000), 1024);
        // ulimit -n 1024: both front ends share what the reserve leaves.
        assert_eq!(fd_budget(1024, 1024), (1024 - 512 - 64) / 2);
        assert_eq!(fd_budget(1024, 100), 1);
    }
}
