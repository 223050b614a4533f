//! `GET /v1/watch?prefix=`: SSE `change` events for matching keys only; the
//! stream ends when the server shuts down.

mod common;

use std::time::Duration;

use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_changes_for_a_prefix() {
    let running = common::start(common::config()).await;
    let base = running.http_url();
    let resp = common::http()
        .get(format!("{base}/v1/watch?prefix=w/"))
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/event-stream")
    );
    let mut body = resp.bytes_stream();
    // Give the subscription a moment to be in place before writing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let nd = "{\"key\":\"other\",\"op\":\"incr\"}\n{\"key\":\"w/1\",\"op\":\"set\",\"value\":{\"a\":1}}\n{\"key\":\"w/1\",\"op\":\"delete\"}\n";
    let (st, _) = common::post_events(&base, "", "application/x-ndjson", nd).await;
    assert_eq!(st, 200);

    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while text.matches("event: change").count() < 2 {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("changes arrive in time")
            .expect("stream open")
            .expect("chunk");
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    assert!(!text.contains("\"other\""), "prefix filter: {text}");
    let datas: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("json data"))
        .collect();
    assert_eq!(datas[0]["key"], "w/1");
    assert_eq!(datas[0]["value"], serde_json::json!({"a": 1}));
    assert_eq!(
        datas[1]["value"],
        serde_json::Value::Null,
        "delete carries no value"
    );

    // Shutdown ends the stream (and does not wait on it).
    let shutdown = tokio::spawn(running.shutdown());
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = body.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the SSE stream ends on shutdown");
    shutdown.await.expect("joined").expect("clean shutdown");
}
