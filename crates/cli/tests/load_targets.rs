//! `statecraft load` against an in-process server (`Server::start` on
//! 127.0.0.1:0), over TCP and HTTP: the `--json` report carries BENCH.md's
//! contract fields, every event is counted once, and the server's state
//! agrees with what the report says was applied.

use std::process::Command;

use serde_json::Value;
use statecraft_engine::Engine;
use statecraft_server::{RunningServer, ServeConfig, Server};

/// Runs the binary with `args`; the parsed JSON of stdout.
fn load(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .arg("load")
        .args(args)
        .arg("--json")
        .output()
        .expect("statecraft load runs");
    assert!(
        out.status.success(),
        "load failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object on stdout: {stdout}"
    );
    serde_json::from_str(&stdout).expect("valid JSON")
}

fn assert_contract(r: &Value, events: u64) {
    for field in [
        "events",
        "seconds",
        "events_per_s",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "errors",
    ] {
        assert!(
            r[field].is_number(),
            "contract field `{field}` missing: {r}"
        );
    }
    for field in ["max_ms", "ok", "errors_by_kind", "config"] {
        assert!(!r[field].is_null(), "field `{field}` missing: {r}");
    }
    assert_eq!(r["events"], events);
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["ok"], events);
    assert_eq!(r["not_sent"], 0);
    let p50 = r["p50_ms"].as_f64().expect("p50");
    let p99 = r["p99_ms"].as_f64().expect("p99");
    let p999 = r["p999_ms"].as_f64().expect("p999");
    let max = r["max_ms"].as_f64().expect("max");
    assert!(p50 <= p99 && p99 <= p999 && p999 <= max, "{r}");
    assert!(r["events_per_s"].as_f64().expect("eps") > 0.0);
}

/// The sum of every counter under `prefix`.
async fn total(engine: &Engine, prefix: &str) -> i64 {
    let mut sum = 0;
    let mut after: Option<String> = None;
    loop {
        let page = engine
            .scan(prefix, after.as_deref(), 500)
            .await
            .expect("scan");
        if page.is_empty() {
            return sum;
        }
        sum += page
            .iter()
            .map(|r| r.value.as_i64().unwrap_or(0))
            .sum::<i64>();
        after = page.last().map(|r| r.key.clone());
    }
}

async fn start() -> (RunningServer, Engine) {
    let server = Server::start(ServeConfig::ephemeral())
        .await
        .expect("server starts");
    let engine = server.wait_ready().await.expect("engine opens");
    (server, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_load_reports_the_contract_and_every_increment_lands() {
    let (server, engine) = start().await;
    let target = format!("tcp://{}", server.tcp_addr);
    let report = tokio::task::spawn_blocking(move || {
        load(&[
            "--target",
            &target,
            "--events",
            "5003",
            "--keys",
            "50",
            "--batch",
            "100",
            "--connections",
            "3",
            "--ack",
            "applied",
        ])
    })
    .await
    .expect("join");
    assert_contract(&report, 5003);
    assert_eq!(report["config"]["connections"], 3);
    assert_eq!(report["config"]["ack"], "applied");
    assert_eq!(report["config"]["dist"], "uniform");
    // 5003 events over 3 connections in frames of ≤ 100: 17 + 17 + 17.
    assert_eq!(report["frames"], 51);
    assert_eq!(total(&engine, "key:").await, 5003);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_load_with_zipf_keys_and_an_op_mix_counts_every_event() {
    let (server, engine) = start().await;
    let target = format!("http://{}", server.http_addr);
    let report = tokio::task::spawn_blocking(move || {
        load(&[
            "--target",
            &target,
            "--events",
            "3000",
            "--keys",
            "1000",
            "--dist",
            "zipf",
            "--op",
            "incr=70,set=30",
            "--batch",
            "250",
            "--connections",
            "2",
            "--ack",
            "durable",
            "--key-prefix",
            "z:",
        ])
    })
    .await
    .expect("join");
    assert_contract(&report, 3000);
    assert_eq!(report["config"]["op"], "incr=70,set=30");
    assert_eq!(report["config"]["zipf_s"], 0.99);
    // Zipf: the hottest key (rank 1 = z:0) was written, and far fewer than
    // 1000 distinct keys were.
    assert!(engine.get("z:0").await.expect("get").is_some());
    let keys = engine.scan("z:", None, 1000).await.expect("scan").len();
    assert!(keys < 1000, "zipf touched {keys} keys");
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_rate_and_ack_none_still_count_every_event() {
    let (server, _engine) = start().await;
    let target = format!("tcp://{}", server.tcp_addr);
    let report = tokio::task::spawn_blocking(move || {
        load(&[
            "--target",
            &target,
            "--events",
            "2000",
            "--keys",
            "10",
            "--batch",
            "100",
            "--connections",
            "2",
            "--rate",
            "40000",
            "--ack",
            "none",
        ])
    })
    .await
    .expect("join");
    assert_contract(&report, 2000);
    assert_eq!(report["config"]["rate"], 40000.0);
    server.shutdown().await.expect("shutdown");
}

#[test]
fn a_refused_connection_says_what_to_check() {
    // A port nothing listens on: bind, read the port, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .args([
            "load",
            "--target",
            &format!("tcp://127.0.0.1:{port}"),
            "--events",
            "10",
        ])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is `statecraft serve` running"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_documents_over_tcp_are_merged() {
    let (server, engine) = start().await;
    let target = format!("tcp://{}", server.tcp_addr);
    let report = tokio::task::spawn_blocking(move || {
        load(&[
            "--target",
            &target,
            "--events",
            "1000",
            "--keys",
            "20",
            "--op",
            "merge",
            "--dist",
            "zipf",
            "--batch",
            "50",
            "--connections",
            "2",
            "--ack",
            "applied",
            "--key-prefix",
            "doc:",
        ])
    })
    .await
    .expect("join");
    assert_contract(&report, 1000);
    let doc = engine
        .get("doc:0")
        .await
        .expect("get")
        .expect("the hottest doc");
    assert_eq!(doc.value["name"], "Ada Lovelace");
    assert!(doc.value["seq"].as_u64().is_some());
    server.shutdown().await.expect("shutdown");
}
