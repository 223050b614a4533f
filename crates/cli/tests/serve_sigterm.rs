//! `statecraft serve` as a process: SIGTERM under load loses no acknowledged
//! event (ack=durable, then a restart on the same data dir finds every acked
//! increment exactly once), exits 0; a second signal exits at once with 130.

mod serve_ready;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use statecraft_engine::{AckMode, EventResult};
use statecraft_server::TcpClient;
use statecraft_server::protocol::ServerFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Serve {
    child: Child,
    http: SocketAddr,
    tcp: SocketAddr,
}

/// Starts `statecraft serve` on ephemeral ports; returns once it printed
/// `statecraft: ready`.
fn serve(data_dir: &std::path::Path) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:0",
            "--shards",
            "2",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--log-format", "json", "--log-level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("statecraft serve starts");
    let listening = serve_ready::await_ready(&mut child);
    Serve {
        child,
        http: listening.http,
        tcp: listening.tcp.expect("printed the tcp address"),
    }
}

fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid fits");
    // SAFETY: kill(2) with a pid we spawned and own; no memory is shared.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill failed");
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("statecraft serve did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A minimal HTTP/1.1 GET (the CLI crate has no HTTP client dependency).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .expect("writes");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("reads");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let status = head[9..12].parse().expect("status");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

const CLIENTS: u32 = 4;
const PER_FRAME: usize = 200;
const KEYS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = serve(dir.path());

    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = TcpClient::connect(server.tcp, None).await.expect("greeted");
        let (mut tx, mut rx) = client.split();
        let sender = tokio::spawn(async move {
            loop {
                let mut batch = tx.batch(Some(AckMode::Durable));
                for i in 0..PER_FRAME {
                    batch.incr(&format!("c{c}:{}", i % KEYS), 1);
                }
                if batch.send().await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let receiver = tokio::spawn(async move {
            let mut acked: HashMap<String, u64> = HashMap::new();
            while let Ok(frame) = rx.recv().await {
                if let ServerFrame::Ack { results, .. } = frame {
                    for (i, r) in results.iter().enumerate() {
                        assert!(matches!(r, EventResult::Applied { .. }), "{r:?}");
                        *acked.entry(format!("c{c}:{}", i % KEYS)).or_default() += 1;
                    }
                }
            }
            acked
        });
        tasks.push((sender, receiver));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    signal(&server.child, libc::SIGTERM);
    let status =
        tokio::task::block_in_place(|| wait_exit(&mut server.child, Duration::from_secs(30)));
    assert!(status.success(), "exit status {status:?}");

    let mut acked: HashMap<String, u64> = HashMap::new();
    for (sender, receiver) in tasks {
        acked.extend(receiver.await.expect("receiver"));
        sender.abort();
    }
    let total: u64 = acked.values().sum();
    assert!(total > 0, "load ran before the signal");

    // Restart on the same data dir: every acknowledged increment is there,
    // exactly once.
    let mut again = tokio::task::block_in_place(|| serve(dir.path()));
    for c in 0..CLIENTS {
        let (st, page) = http_get(again.http, &format!("/v1/state?prefix=c{c}:&limit=1000")).await;
        assert_eq!(st, 200);
        let stored: HashMap<String, u64> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|r| {
                (
                    r["key"].as_str().expect("key").to_owned(),
                    r["value"].as_u64().expect("value"),
                )
            })
            .collect();
        for i in 0..KEYS {
            let key = format!("c{c}:{i}");
            assert_eq!(
                stored.get(&key).copied().unwrap_or(0),
                acked.get(&key).copied().unwrap_or(0),
                "key {key}: stored vs acknowledged increments"
            );
        }
    }
    signal(&again.child, libc::SIGTERM);
    let status =
        tokio::task::block_in_place(|| wait_exit(&mut again.child, Duration::from_secs(30)));
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = serve(dir.path());
    // Hold an HTTP request open (a body never finished): the graceful
    // shutdown waits for it (up to its 30 s grace).
    let mut held = tokio::net::TcpStream::connect(server.http)
        .await
        .expect("connects");
    held.write_all(b"POST /v1/events HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .expect("writes");
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&server.child, libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "still draining"
    );
    signal(&server.child, libc::SIGINT);
    let status =
        tokio::task::block_in_place(|| wait_exit(&mut server.child, Duration::from_secs(5)));
    assert_eq!(status.code(), Some(130));
}
