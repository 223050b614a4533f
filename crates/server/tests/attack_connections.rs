//! Attack suite, hostile *connections* (issue 16, findings 2, 4 and 5):
//! idle sockets count against `max_connections` and the one past the limit
//! is refused before anything is read from it; slow headers, idle
//! keep-alive connections and silent TCP clients (no HELLO) are closed by
//! their timeouts, so they cannot hold every slot; the soft descriptor
//! limit is raised to the hard one at start; a TCP client that never reads
//! its ACKs stops being read once its unsent answers reach their bound.
//!
//! Each test failed on the code before the fix. Loopback only, bounded. The
//! only timing in a verdict is "closed within a generous multiple of its
//! timeout" — a hang fails, a slow machine does not.

mod common;

use std::time::Duration;

use common::*;
use statecraft_server::ServeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous: a connection whose timeout is 1 s must be gone well within it.
const CLOSED_WITHIN: Duration = Duration::from_secs(30);

/// Reads until EOF or error; true if the peer closed within `within`.
async fn closed_by_peer(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// One raw HTTP/1.1 GET on `s`; the status line's code.
async fn raw_get(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .expect("writes");
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got)
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http_sockets_count_and_the_next_is_refused_before_it_is_read() {
    let running = start(ServeConfig {
        max_connections: 8,
        ..config()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(
            TcpStream::connect(running.http_addr)
                .await
                .expect("connects"),
        );
    }
    // Give the accept loop time to see all eight (it is the only way to
    // observe them: they send nothing).
    let mut refused = String::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(running.http_addr)
            .await
            .expect("connects");
        refused = raw_get(&mut s, "/healthz").await;
        if refused == "503" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        refused, "503",
        "eight idle sockets fill max_connections = 8; the ninth is refused"
    );
    // Free the slots: a client gets in again.
    drop(idle);
    let mut status = String::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(running.http_addr)
            .await
            .expect("connects");
        status = raw_get(&mut s, "/healthz").await;
        if status == "200" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "200");
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_keep_alive_connections_are_closed() {
    let running = start(ServeConfig {
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..config()
    })
    .await;
    // Slowloris: half a request head, then nothing.
    let mut slow = TcpStream::connect(running.http_addr)
        .await
        .expect("connects");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("writes");
    // A keep-alive connection that finished a request and went quiet.
    let mut quiet = TcpStream::connect(running.http_addr)
        .await
        .expect("connects");
    assert_eq!(raw_get(&mut quiet, "/healthz").await, "200");
    // A connection that never sends a byte.
    let mut silent = TcpStream::connect(running.http_addr)
        .await
        .expect("connects");
    assert!(
        closed_by_peer(&mut slow, CLOSED_WITHIN).await,
        "slow headers"
    );
    assert!(
        closed_by_peer(&mut quiet, CLOSED_WITHIN).await,
        "idle keep-alive"
    );
    assert!(
        closed_by_peer(&mut silent, CLOSED_WITHIN).await,
        "silent socket"
    );
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tcp_clients_are_closed_by_the_hello_timeout() {
    let running = start(ServeConfig {
        max_connections: 4,
        hello_timeout: Duration::from_secs(1),
        ..config()
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(
            TcpStream::connect(running.tcp_addr)
                .await
                .expect("connects"),
        );
    }
    for s in &mut silent {
        assert!(
            closed_by_peer(s, CLOSED_WITHIN).await,
            "a client that sends no HELLO must not hold a slot"
        );
    }
    // The slots are free: a real client gets in.
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = statecraft_server::TcpClient::connect(running.tcp_addr, None).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        client.is_some(),
        "a real client connects once the silent ones are gone"
    );
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_descriptor_limit_is_raised_to_the_hard_limit() {
    // Lower our own soft limit, then start a server in this process.
    let (soft, hard) = nofile();
    let lowered = hard.min(4096).min(soft).max(256) - 128;
    set_soft_nofile(lowered);
    let running = start(config()).await;
    let (soft_after, hard_after) = nofile();
    assert_eq!(hard_after, hard);
    assert!(
        soft_after > lowered,
        "the server raises the soft limit (was {lowered}, now {soft_after}, hard {hard})"
    );
    running.shutdown().await.expect("clean shutdown");
}

fn nofile() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    assert_eq!(rc, 0);
    (r.rlim_cur, r.rlim_max)
}

fn set_soft_nofile(soft: u64) {
    let (_, hard) = nofile();
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we own.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    assert_eq!(rc, 0);
}

/// Resident memory of this process, bytes (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_acks_holds_a_bounded_amount_of_memory() {
    use bytes::BytesMut;
    use statecraft_server::protocol::{self, frame_type};
    const FRAME: usize = 256 << 10;
    const IN_FLIGHT: usize = 16;
    let mut cfg = config();
    cfg.max_body_bytes = FRAME + 64;
    cfg.max_in_flight_frames = IN_FLIGHT;
    let running = start(cfg).await;
    let mut s = TcpStream::connect(running.tcp_addr)
        .await
        .expect("connects");
    let mut hello = BytesMut::new();
    protocol::put_json_frame(
        &mut hello,
        frame_type::HELLO,
        &serde_json::json!({"version": 1}),
    );
    s.write_all(&hello).await.expect("hello");
    let mut head = [0u8; 64];
    let _ = s.read(&mut head).await.expect("hello ok");
    // The worst answer-to-input ratio: every 2-byte line is a malformed event
    // whose rejection is tens of bytes.
    let body = b"x\n".repeat(FRAME / 2);
    let mut frame = BytesMut::new();
    protocol::put_ndjson_frame(&mut frame, 0, None, &body);
    let before = rss_bytes();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..120 {
            peak = peak.max(rss_bytes());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak
    });
    // Write frames and never read: stop when the socket stays full.
    let mut sent = 0;
    for _ in 0..400 {
        match tokio::time::timeout(Duration::from_secs(2), s.write_all(&frame)).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
    }
    let peak = sampler.await.expect("sampler");
    let grew = peak.saturating_sub(before);
    // The documented bound (docs/hostile-input.md): the connection's budget
    // (max_in_flight × max_frame_bytes = 4 MiB here) plus one frame being
    // decoded and answered; 160 MiB leaves room for the allocator and for
    // the machine. Before the fix this attack held every in-flight frame's
    // answers (≈ 700 MB here).
    eprintln!(
        "non-reading client: {sent} frames written, RSS grew {} MiB (before {} MiB)",
        grew >> 20,
        before >> 20
    );
    // The server stops reading; how many frames the kernel buffers take
    // depends on the machine, a few at least.
    assert!(sent > 4, "the attack must fill the pipeline ({sent})");
    assert!(grew < 160 << 20, "RSS grew {} MiB", grew >> 20);
    drop(s);
    running.shutdown().await.expect("clean shutdown");
}
