//! Every HTTP route and every per-event result status, against a real
//! server on 127.0.0.1:0.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers() {
    let running = start(config()).await;
    let base = running.http_url();

    // POST one event (application/json object).
    let (st, v) = post_events(
        &base,
        "",
        "application/json",
        r#"{"key":"user:1/clicks","op":"incr","value":2}"#,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["results"][0], json!({"status": "applied", "version": 1}));

    // POST an array; results in input order.
    let body = json!([
        {"key": "a", "op": "set", "value": {"x": 1}},
        {"key": "b", "op": "set", "value": "hello"},
        {"key": "a", "op": "merge", "value": {"y": 2}},
    ]);
    let (st, v) = post_events(&base, "", "application/json", body.to_string()).await;
    assert_eq!(st, 200);
    assert_eq!(statuses(&v), ["applied", "applied", "applied"]);
    assert_eq!(v["results"][2]["version"], 2);

    // POST NDJSON.
    let nd = "{\"key\":\"c\",\"op\":\"incr\"}\n{\"key\":\"c\",\"op\":\"incr\",\"value\":5}\n";
    let (st, v) = post_events(&base, "", "application/x-ndjson", nd).await;
    assert_eq!(st, 200);
    assert_eq!(statuses(&v), ["applied", "applied"]);

    // GET a key (keys may contain `/`, and percent-encoded characters).
    let (st, v) = get_json(&base, "/v1/state/user:1/clicks").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["value"], 2);
    assert_eq!(v["version"], 1);
    let (st, v) = get_json(&base, "/v1/state/a").await;
    assert_eq!((st, &v["value"]), (200, &json!({"x": 1, "y": 2})));
    let (st, v) = post_events(
        &base,
        "",
        "application/json",
        r#"{"key":"sp ace/é","op":"set","value":1}"#,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = get_json(&base, "/v1/state/sp%20ace%2F%C3%A9").await;
    assert_eq!((st, &v["key"]), (200, &json!("sp ace/é")), "{v}");

    // GET an absent key: 404 problem.
    let resp = http()
        .get(format!("{base}/v1/state/nope"))
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let p: Value = resp.json().await.expect("json");
    assert_eq!(p["status"], 404);
    assert_eq!(p["type"], "/problems/key-not-found");
    assert!(p["title"].is_string() && p["detail"].is_string());

    // Scan with paging: 6 keys under "p/", pages of 4.
    for i in 0..6 {
        let e = json!({"key": format!("p/{i}"), "op": "set", "value": i});
        assert_eq!(
            post_events(&base, "", "application/json", e.to_string())
                .await
                .0,
            200
        );
    }
    let (st, page1) = get_json(&base, "/v1/state?prefix=p/&limit=4").await;
    assert_eq!(st, 200);
    let keys: Vec<&str> = page1["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys, ["p/0", "p/1", "p/2", "p/3"]);
    assert_eq!(page1["next"], "p/3");
    let (_, page2) = get_json(&base, "/v1/state?prefix=p/&limit=4&after=p/3").await;
    assert_eq!(page2["items"].as_array().expect("items").len(), 2);
    assert_eq!(page2["next"], Value::Null);
    let (st, _) = get_json(&base, "/v1/state?limit=1001").await;
    assert_eq!(st, 400, "limit over 1000");
    let (st, all) = get_json(&base, "/v1/state").await;
    assert_eq!(st, 200);
    assert!(all["items"].as_array().expect("items").len() >= 10);

    // DELETE a key; then it is gone. With a wrong if_version: 409.
    let resp = http()
        .delete(format!("{base}/v1/state/b?if_version=7"))
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 409);
    let resp = http()
        .delete(format!("{base}/v1/state/b"))
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.expect("json");
    assert_eq!(r["status"], "applied");
    assert_eq!(get_json(&base, "/v1/state/b").await.0, 404);

    // Health, readiness, stats, metrics, index.
    assert_eq!(
        get_json(&base, "/healthz").await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(
        get_json(&base, "/readyz").await,
        (200, json!({"status": "ready"}))
    );
    let (st, stats) = get_json(&base, "/v1/stats").await;
    assert_eq!(st, 200);
    assert!(stats["results"]["applied"].as_u64().expect("applied") >= 10);
    assert!(stats["uptime_s"].is_number() && stats["version"].is_string());
    assert!(stats["shards"].is_array());
    let metrics = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("ok")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("statecraft_events_total{status=\"applied\"}"),
        "{metrics}"
    );
    let index = http()
        .get(format!("{base}/"))
        .send()
        .await
        .expect("ok")
        .text()
        .await
        .expect("text");
    assert!(index.contains("/v1/stats"));

    // Unknown route and wrong method: problems.
    let resp = http()
        .get(format!("{base}/v2/nothing"))
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = http()
        .put(format!("{base}/v1/events"))
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 405);

    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_result_status() {
    let running = start(config()).await;
    let base = running.http_url();
    let body = json!([
        {"key": "k", "op": "set", "value": 1, "id": "once"},
        {"key": "k", "op": "set", "value": 2, "id": "once"},
        {"key": "k", "op": "set", "value": 3, "if_version": 99},
        {"key": "s", "op": "set", "value": "text"},
        {"key": "s", "op": "incr", "value": 1},
    ]);
    let (st, v) = post_events(&base, "", "application/json", body.to_string()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        statuses(&v),
        ["applied", "duplicate", "conflict", "applied", "rejected"]
    );
    assert_eq!(v["results"][2]["current_version"], 1);
    assert_eq!(v["results"][4]["code"], "type_error");
    assert!(v["results"][4]["message"].is_string());

    // ack=none: admitted, outcome not reported.
    let (st, v) = post_events(
        &base,
        "?ack=none",
        "application/json",
        r#"{"key":"n","op":"incr"}"#,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(statuses(&v), ["accepted"]);

    // `overloaded` is covered by http_overload.rs.
    running.shutdown().await.expect("clean shutdown");
}
