//! Every limit: body (413 without buffering: by Content-Length before any
//! body byte, and mid-stream for a chunked body), key, value, nesting depth
//! (100k-deep) and concurrent requests — and the server keeps serving.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use statecraft_server::ServeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn read_head(s: &mut TcpStream, within: Duration) -> String {
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let _ = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_413_before_the_body_is_sent() {
    // The default limit, 16 MiB: announce 17 MiB and send none of it.
    let running = start(config()).await;
    let mut s = TcpStream::connect(running.http_addr)
        .await
        .expect("connects");
    s.write_all(
        format!(
            "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\n\r\n",
            17 << 20
        )
        .as_bytes(),
    )
    .await
    .expect("writes");
    let head = read_head(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("application/problem+json"), "{head}");
    // The server still serves.
    assert_eq!(get_json(&running.http_url(), "/healthz").await.0, 200);
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_the_limit_is_cut_off() {
    let running = start(ServeConfig {
        max_body_bytes: 64 << 10,
        ..config()
    })
    .await;
    let s = TcpStream::connect(running.http_addr)
        .await
        .expect("connects");
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .expect("writes");
    // Keep streaming (far past the limit) until the server answers; it must
    // answer without us ever finishing the body.
    let line = "{\"key\":\"k\",\"op\":\"incr\"}\n".repeat(400);
    let writer = tokio::spawn(async move {
        for _ in 0..2_000 {
            let chunk = format!("{:x}\r\n{line}\r\n", line.len());
            if wr.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf))
        .await
        .expect("an answer before the body ends")
        .expect("reads");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    writer.abort();
    // Nothing of the refused body was applied.
    assert_eq!(get_json(&running.http_url(), "/v1/state/k").await.0, 404);
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_and_depth_limits_reject_one_event_each() {
    let running = start(ServeConfig {
        engine: statecraft_engine::EngineConfig {
            limits: statecraft_engine::Limits {
                max_value_bytes: 1000,
                ..statecraft_engine::Limits::DEFAULT
            },
            ..config().engine
        },
        ..config()
    })
    .await;
    let base = running.http_url();
    let deep = format!(
        "{{\"key\":\"d\",\"op\":\"set\",\"value\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let medium = format!(
        "{{\"key\":\"d\",\"op\":\"set\",\"value\":{}1{}}}",
        "[".repeat(70),
        "]".repeat(70)
    );
    let lines = [
        json!({"key": "ok1", "op": "incr"}).to_string(),
        json!({"key": "k".repeat(1025), "op": "incr"}).to_string(),
        json!({"key": "", "op": "incr"}).to_string(),
        json!({"key": "v", "op": "set", "value": "x".repeat(2000)}).to_string(),
        deep,
        medium,
        json!({"key": "ok2", "op": "incr"}).to_string(),
    ];
    let (st, v) = post_events(&base, "", "application/x-ndjson", lines.join("\n")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        statuses(&v),
        [
            "applied", "rejected", "rejected", "rejected", "rejected", "rejected", "applied"
        ]
    );
    let codes: Vec<&str> = v["results"]
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["code"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        codes,
        [
            "",
            "invalid_key",
            "invalid_key",
            "value_too_large",
            "too_deep",
            "too_deep",
            ""
        ]
    );

    // A single 100k-deep JSON body cannot be answered per event: 400.
    let deep_body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (st, p) = post_events(&base, "", "application/json", deep_body).await;
    assert_eq!(st, 400, "{p}");
    assert_eq!(p["reject_code"], "too_deep");

    // GET with a key over the limit: 400.
    assert_eq!(
        get_json(&base, &format!("/v1/state/{}", "k".repeat(1025)))
            .await
            .0,
        400
    );

    // Still serving; the good events applied.
    assert_eq!(get_json(&base, "/v1/state/ok2").await.1["value"], 1);
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_over_the_limit_get_503() {
    let running = start(ServeConfig {
        max_connections: 1,
        ..config()
    })
    .await;
    let base = running.http_url();
    // Hold the only slot: a request whose body is still being read.
    let mut s = TcpStream::connect(running.http_addr)
        .await
        .expect("connects");
    s.write_all(b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .expect("writes");
    let first = "{\"key\":\"held\",\"op\":\"incr\"}\n";
    s.write_all(format!("{:x}\r\n{first}\r\n", first.len()).as_bytes())
        .await
        .expect("writes");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = http()
        .get(format!("{base}/v1/stats"))
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    // Finish the held request; the slot frees.
    s.write_all(b"0\r\n\r\n").await.expect("writes");
    let head = read_head(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // max_connections counts sockets (issue 16): the keep-alive socket
    // holds the only slot until it closes.
    drop(s);
    let mut status = 0;
    for _ in 0..100 {
        status = get_json(&base, "/v1/state/held").await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
    running.shutdown().await.expect("clean shutdown");
}
