//! `statecraft load --target nats://…` publishes straight to a cluster's
//! stream: with `ack=applied` every event is answered once the owner applied
//! it, the JSON report counts them all, and the keys hold exactly what was
//! sent (uniform keys: every key of the key space gets its share).
//!
//! And the leases hold under load at the documented minimum TTL (2 s, the
//! scenarios' TTL): two nodes, `load` publishing as fast as it can for
//! 150,000 events: no lease lost, no commit refused, no partition acquired
//! twice, and every event applied once.

mod cluster_common;

use std::process::Command;
use std::time::Duration;

use cluster_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_publishes_to_the_stream_and_every_event_applies_once() {
    // `load --help` names every target, nats:// included.
    let help = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .args(["load", "--help"])
        .output()
        .expect("load --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("nats://"), "load --help: {help}");
    let Some(nats) = nats() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let n1 = start_node(&nats.url, "n1", dir.path(), &[]);
    let http = reqwest::Client::new();
    wait_balanced(&http, &[&n1], Duration::from_secs(20)).await;
    let out = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .args([
            "load",
            "--target",
            &nats.url,
            "--events",
            "3000",
            "--keys",
            "50",
            "--batch",
            "100",
            "--connections",
            "2",
            "--ack",
            "applied",
            "--json",
        ])
        .output()
        .expect("run load");
    assert!(
        out.status.success(),
        "load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert_eq!(report["events"], 3000);
    assert_eq!(report["errors"], 0);
    for field in ["seconds", "events_per_s", "p50_ms", "p99_ms", "p999_ms"] {
        assert!(report[field].is_number(), "{field} in {report}");
    }
    // The load's key space: `key:0` … `key:49`; its values add up to 3,000.
    let mut sum = 0;
    for k in 0..50 {
        sum += read(&http, &n1, &format!("key:{k}")).await.unwrap_or(0);
    }
    assert_eq!(sum, 3000, "every event applied exactly once");
    stop(n1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_hold_under_load_at_the_minimum_ttl() {
    let Some(nats) = nats() else { return };
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
    let n1 = start_node(&nats.url, "n1", dirs[0].path(), &[]);
    let n2 = start_node(&nats.url, "n2", dirs[1].path(), &[]);
    let http = reqwest::Client::new();
    wait_balanced(&http, &[&n1, &n2], Duration::from_secs(20)).await;
    let events = 150_000u64;
    let out = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .args([
            "load",
            "--target",
            &nats.url,
            "--events",
            &events.to_string(),
        ])
        .args(["--keys", "2000", "--batch", "500", "--connections", "4"])
        .args(["--ack", "durable", "--json"])
        .output()
        .expect("run load");
    assert!(
        out.status.success(),
        "load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    eprintln!(
        "load: {} events/s, p99 {} ms",
        report["events_per_s"], report["p99_ms"]
    );
    // Wait until the nodes consumed everything, then check the leases.
    let began = std::time::Instant::now();
    while total(&http, &[&n1, &n2], "consumed").await < events {
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "not consumed after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for field in ["leases_lost", "stale_commits_refused", "fenced"] {
        assert_eq!(total(&http, &[&n1, &n2], field).await, 0, "{field}");
    }
    assert_eq!(
        total(&http, &[&n1, &n2], "acquisitions").await,
        u64::from(PARTITIONS),
        "every partition acquired once: none moved under load"
    );
    let mut sum = 0;
    for k in 0..2000 {
        sum += read(&http, &n1, &format!("key:{k}")).await.unwrap_or(0);
    }
    assert_eq!(sum as u64, events, "every event applied exactly once");
    stop(n1);
    stop(n2);
}
