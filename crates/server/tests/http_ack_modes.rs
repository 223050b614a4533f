//! `?ack=durable|applied|none`, the configured default, and a bad value.

mod common;

use common::*;
use serde_json::json;
use statecraft_engine::AckMode;
use statecraft_server::ServeConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_modes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(ServeConfig {
        engine: statecraft_engine::EngineConfig {
            data_dir: Some(dir.path().to_owned()),
            ack: AckMode::Durable,
            ..ServeConfig::ephemeral().engine
        },
        ..ServeConfig::ephemeral()
    })
    .await;
    let base = running.http_url();
    let ev = r#"{"key":"k","op":"incr"}"#;

    // Default (durable): applied with a version, visible at once.
    let (st, v) = post_events(&base, "", "application/json", ev).await;
    assert_eq!((st, statuses(&v)), (200, vec!["applied".to_owned()]));
    assert_eq!(get_json(&base, "/v1/state/k").await.1["value"], 1);

    let (st, v) = post_events(&base, "?ack=durable", "application/json", ev).await;
    assert_eq!(
        (st, &v["results"][0]),
        (200, &json!({"status": "applied", "version": 2}))
    );
    let (st, v) = post_events(&base, "?ack=applied", "application/json", ev).await;
    assert_eq!(
        (st, &v["results"][0]),
        (200, &json!({"status": "applied", "version": 3}))
    );
    let (st, v) = post_events(&base, "?ack=none", "application/json", ev).await;
    assert_eq!((st, statuses(&v)), (200, vec!["accepted".to_owned()]));

    let resp = http()
        .post(format!("{base}/v1/events?ack=sometimes"))
        .body(ev)
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 400);
    let p: serde_json::Value = resp.json().await.expect("json");
    assert!(p["detail"].as_str().expect("detail").contains("sometimes"));

    running.shutdown().await.expect("clean shutdown");
}
