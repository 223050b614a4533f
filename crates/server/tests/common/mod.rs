//! Helpers shared by the scenario tests: start a real server on
//! `127.0.0.1:0`, talk HTTP (reqwest, or raw bytes for the framing tests)
//! and TCP (the crate's own client).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use statecraft_server::{RunningServer, ServeConfig, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts a server with `config` and waits until its engine is open.
pub async fn start(config: ServeConfig) -> RunningServer {
    let running = Server::start(config).await.expect("server starts");
    running.wait_ready().await.expect("engine opens");
    running
}

/// An in-memory config on ephemeral ports, acks `applied` by default (tests
/// that need `durable` say so).
pub fn config() -> ServeConfig {
    let mut config = ServeConfig::ephemeral();
    config.engine.ack = statecraft_engine::AckMode::Applied;
    config
}

/// A plain HTTP client.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client builds")
}

/// POSTs `body` to /v1/events with `content_type`; returns status and JSON.
pub async fn post_events(
    base: &str,
    query: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let resp = http()
        .post(format!("{base}/v1/events{query}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request succeeds");
    let status = resp.status().as_u16();
    let json = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, json)
}

/// GETs a path; status and JSON (Null if the body is not JSON).
pub async fn get_json(base: &str, path: &str) -> (u16, Value) {
    let resp = http()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("request succeeds");
    let status = resp.status().as_u16();
    (status, resp.json::<Value>().await.unwrap_or(Value::Null))
}

/// The statuses of a `{"results":[…]}` body.
pub fn statuses(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .expect("results array")
        .iter()
        .map(|r| r["status"].as_str().expect("status").to_owned())
        .collect()
}

/// Sends raw bytes on a fresh connection and reads until the server closes
/// or `within` passes; returns what was read.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], within: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    s.write_all(bytes).await.expect("writes");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    out
}
