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

/// Reads SSE events (`(event, id, data)`) until `n` `change` events (or any
/// `stop_at` event) arrived.
async fn read_events(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    n: usize,
    stop_at: &str,
) -> Vec<(String, String, serde_json::Value)> {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events: Vec<(String, String, serde_json::Value)> = text
            .split("\n\n")
            .filter(|b| b.contains("data: "))
            .map(|b| {
                let field = |name: &str| {
                    b.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .unwrap_or("")
                        .to_owned()
                };
                let data = field("data: ");
                (
                    field("event: "),
                    field("id: "),
                    serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect();
        if events.iter().filter(|e| e.0 == "change").count() >= n
            || events.iter().any(|e| e.0 == stop_at)
        {
            return events;
        }
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("events in time; so far:\n{text}"))
            .expect("stream open")
            .expect("chunk");
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
}

async fn watch(
    base: &str,
    last_id: Option<&str>,
) -> impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin {
    let mut req = common::http().get(format!("{base}/v1/watch?prefix=r/"));
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    let resp = req.send().await.expect("ok");
    assert_eq!(resp.status(), 200);
    Box::pin(resp.bytes_stream())
}

async fn set(base: &str, keys: &[&str]) {
    let nd: String = keys
        .iter()
        .map(|k| format!("{{\"key\":\"{k}\",\"op\":\"set\",\"value\":1}}\n"))
        .collect();
    let (st, _) = common::post_events(base, "?ack=applied", "application/x-ndjson", nd).await;
    assert_eq!(st, 200);
}

/// Every change carries an `id:`; a client that reconnects with
/// `Last-Event-ID` gets exactly the changes it missed, in order, then the
/// live ones; an id the server cannot resume from gets `reset`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_from_last_event_id() {
    let running = common::start(common::config()).await;
    let base = running.http_url();
    let mut first = watch(&base, None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    set(&base, &["r/1", "r/2", "r/3"]).await;
    let got = read_events(&mut first, 3, "").await;
    let seq = |id: &str| -> u64 {
        id.rsplit_once('-')
            .and_then(|(_, s)| s.parse().ok())
            .unwrap_or_else(|| panic!("id {id:?} is EPOCH-SEQ"))
    };
    let key =
        |e: &(String, String, serde_json::Value)| e.2["key"].as_str().unwrap_or("").to_owned();
    let mut keys: Vec<String> = got.iter().map(key).collect();
    keys.sort();
    assert_eq!(keys, ["r/1", "r/2", "r/3"], "{got:?}");
    // Ids increase in the order sent (shards interleave keys, not ids).
    assert!(
        got.windows(2).all(|w| seq(&w[0].1) < seq(&w[1].1)),
        "{got:?}"
    );
    let after = got[1].1.clone();
    let expect_first = key(&got[2]);
    drop(first);

    // Missed while disconnected.
    set(&base, &["r/4", "other", "r/5"]).await;
    let mut again = watch(&base, Some(&after)).await;
    let replayed = read_events(&mut again, 3, "").await;
    assert_eq!(key(&replayed[0]), expect_first, "{replayed:?}");
    let mut keys: Vec<String> = replayed.iter().map(key).collect();
    keys.sort();
    let mut want: Vec<String> = vec![expect_first.clone(), "r/4".into(), "r/5".into()];
    want.sort();
    assert_eq!(keys, want, "{replayed:?}");
    assert!(
        replayed.iter().all(|e| seq(&e.1) > seq(&after)),
        "{replayed:?}"
    );
    // Then live, without a repeat.
    set(&base, &["r/6"]).await;
    let more = read_events(&mut again, 1, "").await;
    let keys: Vec<String> = more.iter().map(key).collect();
    assert_eq!(keys, ["r/6"], "{more:?}");

    // An id from another epoch (a restarted server) cannot resume.
    let mut stale = watch(&base, Some("1-2")).await;
    let said = read_events(&mut stale, usize::MAX, "reset").await;
    assert_eq!(said[0].0, "reset", "{said:?}");
    drop((again, stale));
    running.shutdown().await.expect("shutdown");
}
