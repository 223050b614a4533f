//! Attack suite, hostile *events* (issue 16, findings 1, 3 and 9): sizes the
//! store cannot hold are refused at admission, never acked and then
//! bricking the data dir; flags beyond the store's hard limits are refused
//! at start; `append`/`merge`/path writes cannot grow a key past
//! `max_value_bytes`; an empty id is refused.
//!
//! Each test failed on the code before the fix (see the issue's notes).
//! Loopback only, bounded, no wall-time verdicts.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use statecraft_engine::Limits;
use statecraft_server::{ServeConfig, Server};

fn durable(dir: &std::path::Path) -> ServeConfig {
    let mut c = config();
    c.engine.data_dir = Some(dir.to_owned());
    c.engine.ack = statecraft_engine::AckMode::Durable;
    c.engine.checkpoint_interval = Duration::from_millis(50);
    c
}

fn with_limits(mut c: ServeConfig, limits: Limits) -> ServeConfig {
    c.engine.limits = limits;
    c
}

fn result(v: &Value) -> (String, String) {
    let r = &v["results"][0];
    (
        r["status"].as_str().unwrap_or_default().to_owned(),
        r["code"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_the_store_cannot_hold_is_refused_and_the_data_dir_survives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(durable(dir.path())).await;
    let base = running.http_url();
    let huge_id = "i".repeat(40_000);
    for id in [
        huge_id.as_str(),
        &"j".repeat(statecraft_engine::limits::MAX_ID_BYTES + 1),
    ] {
        let ev = json!({"key": "k", "op": "incr", "id": id});
        let (st, v) = post_events(&base, "", "application/json", ev.to_string()).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            result(&v),
            ("rejected".into(), "invalid_event".into()),
            "an id of {} bytes must be refused at admission: {v}",
            id.len()
        );
    }
    // The longest allowed id is acked, checkpointed and survives a restart.
    let longest = "x".repeat(statecraft_engine::limits::MAX_ID_BYTES);
    let ev = json!({"key": "k", "op": "incr", "id": longest});
    let (_, v) = post_events(&base, "", "application/json", ev.to_string()).await;
    assert_eq!(result(&v).0, "applied", "{v}");
    tokio::time::sleep(Duration::from_millis(200)).await; // a checkpoint or two
    let (_, v) = post_events(&base, "", "application/json", r#"{"key":"k","op":"incr"}"#).await;
    assert_eq!(result(&v).0, "applied", "writes still work: {v}");
    running.shutdown().await.expect("clean shutdown");

    let running = start(durable(dir.path())).await;
    let (st, v) = get_json(&running.http_url(), "/v1/state/k").await;
    assert_eq!((st, v["value"].clone()), (200, json!(2)), "{v}");
    let ev = json!({"key": "k", "op": "incr", "id": longest});
    let (_, v) = post_events(&running.http_url(), "", "application/json", ev.to_string()).await;
    assert_eq!(result(&v).0, "duplicate", "the id was kept: {v}");
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limit_beyond_the_store_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let too_big = with_limits(
        durable(dir.path()),
        Limits {
            max_key_bytes: 100_000,
            ..Limits::DEFAULT
        },
    );
    let err = Server::start(too_big)
        .await
        .expect_err("max_key_bytes 100000 exceeds what the store can hold");
    assert!(err.to_string().contains("max_key_bytes"), "{err}");

    // At the store's own limit a key of that size is fine, one more byte is not.
    let at_limit = with_limits(
        durable(dir.path()),
        Limits {
            max_key_bytes: statecraft_engine::limits::MAX_KEY_BYTES,
            ..Limits::DEFAULT
        },
    );
    let running = start(at_limit.clone()).await;
    let base = running.http_url();
    for (len, want) in [
        (statecraft_engine::limits::MAX_KEY_BYTES, "applied"),
        (statecraft_engine::limits::MAX_KEY_BYTES + 1, "rejected"),
    ] {
        let ev = json!({"key": "k".repeat(len), "op": "set", "value": 1, "id": "a"});
        let (_, v) = post_events(&base, "", "application/json", ev.to_string()).await;
        assert_eq!(result(&v).0, want, "key of {len} bytes: {v}");
    }
    running.shutdown().await.expect("clean shutdown");
    let running = start(at_limit).await;
    let (st, _) = get_json(
        &running.http_url(),
        &format!(
            "/v1/state/{}",
            "k".repeat(statecraft_engine::limits::MAX_KEY_BYTES)
        ),
    )
    .await;
    assert_eq!(st, 200);
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_merge_and_path_writes_cannot_grow_a_key_past_max_value_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = with_limits(
        durable(dir.path()),
        Limits {
            max_value_bytes: 1_000,
            ..Limits::DEFAULT
        },
    );
    let running = start(cfg).await;
    let base = running.http_url();
    let chunk = "x".repeat(100);
    let mut refused = 0;
    for i in 0..30 {
        let events = [
            json!({"key": "list", "op": "append", "value": chunk}),
            json!({"key": "obj", "op": "merge", "value": {format!("f{i}"): chunk}}),
            json!({"key": "doc", "op": "set", "path": format!("/f{i}"), "value": chunk}),
            json!({"key": "nest", "op": "append", "path": format!("/l{}", i % 3), "value": chunk}),
        ];
        for ev in events {
            let (_, v) = post_events(&base, "", "application/json", ev.to_string()).await;
            match result(&v) {
                (s, _) if s == "applied" => {}
                (s, c) if s == "rejected" && c == "value_too_large" => refused += 1,
                other => panic!("unexpected {other:?}: {v}"),
            }
        }
    }
    assert!(refused > 0, "growth past the limit must be refused");
    for key in ["list", "obj", "doc", "nest"] {
        let (st, v) = get_json(&base, &format!("/v1/state/{key}")).await;
        assert_eq!(st, 200);
        let size = statecraft_engine::limits::approx_value_bytes(&v["value"]);
        assert!(size <= 1_000, "{key} grew to {size} bytes");
        assert!(
            size >= 700,
            "{key} must still accept writes up to the limit"
        );
    }
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_id_is_refused() {
    let running = start(config()).await;
    let ev = json!({"key": "k", "op": "incr", "id": ""});
    let (_, v) = post_events(&running.http_url(), "", "application/json", ev.to_string()).await;
    assert_eq!(
        result(&v),
        ("rejected".into(), "invalid_event".into()),
        "{v}"
    );
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_is_never_visible_and_readyz_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(durable(dir.path())).await;
    let base = running.http_url();
    let (_, v) = post_events(&base, "", "application/json", r#"{"key":"a","op":"incr"}"#).await;
    assert_eq!(result(&v).0, "applied", "{v}");
    // The disk refuses the next log append (as a full disk does).
    let engine = running.engine().expect("open");
    assert!(engine.inject_store_fault(statecraft_store::Fault::Append));
    let (_, v) = post_events(&base, "", "application/json", r#"{"key":"b","op":"incr"}"#).await;
    assert_eq!(
        result(&v),
        ("rejected".into(), "store_unavailable".into()),
        "{v}"
    );
    // The refused event's effect must not be readable.
    let (st, v) = get_json(&base, "/v1/state/b").await;
    assert_ne!(st, 200, "a refused event is visible: {v}");
    let (st, v) = get_json(&base, "/v1/state?prefix=").await;
    assert!(
        st != 200 || !v.to_string().contains("\"b\""),
        "a refused event is visible in a scan: {v}"
    );
    // Not ready, and the reason is there.
    let (st, v) = get_json(&base, "/readyz").await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["status"], "store_failed", "{v}");
    let metrics = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("statecraft_store_poisoned 1"), "{metrics}");
    // Not "up" while the store refuses writes.
    assert!(
        metrics.lines().any(|l| l == "statecraft_up 0"),
        "statecraft_up must be 0 while the store is poisoned: {metrics}"
    );
    running.shutdown().await.ok();
    // A restart recovers what was durable, and takes writes again.
    let running = start(durable(dir.path())).await;
    let base = running.http_url();
    assert_eq!(get_json(&base, "/v1/state/a").await.0, 200);
    assert_eq!(get_json(&base, "/v1/state/b").await.0, 404);
    let (_, v) = post_events(&base, "", "application/json", r#"{"key":"b","op":"incr"}"#).await;
    assert_eq!(result(&v).0, "applied", "{v}");
    assert_eq!(get_json(&base, "/readyz").await.0, 200);
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_with_an_unrecoverable_key_names_a_flag_that_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // What an engine that did not check key sizes could leave behind.
        let (store, _) =
            statecraft_store::Store::open(dir.path(), statecraft_store::StoreOptions::default())
                .expect("open");
        let record = statecraft_store::LogRecord {
            shard: 0,
            seq: store.next_seq(),
            changes: vec![
                (
                    "k".repeat(statecraft_store::MAX_KEY_BYTES + 1),
                    Some(statecraft_store::KeyState {
                        value: json!(1),
                        version: 1,
                        updated_at: 0,
                        expires_at: None,
                    }),
                ),
                (
                    "ok".to_owned(),
                    Some(statecraft_store::KeyState {
                        value: json!(2),
                        version: 1,
                        updated_at: 0,
                        expires_at: None,
                    }),
                ),
            ],
            dedup: vec![],
            offsets: vec![],
        };
        let mut bytes = Vec::new();
        statecraft_store::encode_record(&record, &mut bytes);
        store
            .append_encoded(record.shard, record.seq, &bytes)
            .expect("append");
        store.sync().expect("sync");
    }
    let running = Server::start(durable(dir.path())).await.expect("listens");
    let why = running
        .wait_ready()
        .await
        .expect_err("an unrecoverable key needs the operator's consent");
    assert!(why.to_string().contains("--accept-lost-records"), "{why}");
    running.shutdown().await.ok();
    // The flag the message names exists and opens the data dir.
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        serve: statecraft_server::ServeArgs,
    }
    let cli = <Cli as clap::Parser>::try_parse_from(["serve", "--accept-lost-records"])
        .expect("the flag exists");
    assert_eq!(cli.serve.accept_lost_records, Some(true));
    let mut cfg = durable(dir.path());
    cfg.engine.accept_lost_records = true;
    let running = start(cfg).await;
    let (st, v) = get_json(&running.http_url(), "/v1/state/ok").await;
    assert_eq!((st, v["value"].clone()), (200, json!(2)));
    running.shutdown().await.expect("clean shutdown");
}
