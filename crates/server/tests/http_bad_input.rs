//! Bad input of every kind over HTTP (DESIGN §6): malformed JSON, invalid
//! UTF-8, wrong types, truncated NDJSON, unknown media types. Each gets a
//! clear per-event or per-request error; the other events apply; the server
//! keeps serving.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_and_the_rest_applies() {
    let running = start(config()).await;
    let base = running.http_url();

    // Malformed JSON as the whole application/json body: 400 problem.
    for body in ["{\"key\":", "not json", "", "42", "\"str\""] {
        let (st, p) = post_events(&base, "", "application/json", body).await;
        assert_eq!(st, 400, "body {body:?}: {p}");
        assert_eq!(p["status"], 400);
        assert!(p["detail"].as_str().expect("detail").len() > 10);
    }

    // NDJSON: a malformed line, invalid UTF-8, wrong types, unknown field,
    // unknown op — each its own rejection; the good lines apply.
    let mut nd: Vec<u8> = Vec::new();
    nd.extend_from_slice(b"{\"key\":\"g1\",\"op\":\"incr\"}\n");
    nd.extend_from_slice(b"{\"key\":\"bad\",\"op\":\n");
    nd.extend_from_slice(b"{\"key\":\"u\xff\xfe\",\"op\":\"incr\"}\n");
    nd.extend_from_slice(b"{\"key\":42,\"op\":\"incr\"}\n");
    nd.extend_from_slice(b"{\"key\":\"t\",\"op\":\"incr\",\"if_version\":\"x\"}\n");
    nd.extend_from_slice(b"{\"key\":\"t\",\"op\":\"incr\",\"colour\":1}\n");
    nd.extend_from_slice(b"[1,2]\n");
    nd.extend_from_slice(b"{\"key\":\"t\",\"op\":\"teleport\"}\n");
    nd.extend_from_slice(b"\n   \n");
    nd.extend_from_slice(b"{\"key\":\"g2\",\"op\":\"incr\"}");
    let (st, v) = post_events(&base, "", "application/x-ndjson", nd).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        statuses(&v),
        [
            "applied", "rejected", "rejected", "rejected", "rejected", "rejected", "rejected",
            "rejected", "applied"
        ],
        "blank lines are skipped; the last line without a newline is parsed"
    );
    let codes: Vec<&str> = v["results"]
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["code"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(codes[1], "invalid_json");
    assert_eq!(codes[2], "invalid_json", "invalid UTF-8");
    assert_eq!(codes[3], "invalid_event", "key of the wrong type");
    assert_eq!(codes[4], "invalid_event");
    assert_eq!(codes[5], "invalid_event", "unknown field");
    assert_eq!(codes[6], "invalid_event", "not an object");
    assert_eq!(codes[7], "unknown_op");

    // A truncated NDJSON body: the half line at the end is rejected alone.
    let (st, v) = post_events(
        &base,
        "",
        "application/x-ndjson",
        "{\"key\":\"g3\",\"op\":\"incr\"}\n{\"key\":\"g4\",\"op\":\"in",
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(statuses(&v), ["applied", "rejected"]);

    // An array with a bad element: that element alone.
    let (st, v) = post_events(
        &base,
        "",
        "application/json",
        r#"[{"key":"g5","op":"incr"},"oops",{"op":"incr"}]"#,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(statuses(&v), ["applied", "rejected", "rejected"]);

    // A single object that is valid JSON but not an event: a per-event result.
    let (st, v) = post_events(&base, "", "application/json", r#"{"key":"x"}"#).await;
    assert_eq!((st, statuses(&v)), (200, vec!["rejected".to_owned()]));

    // Unknown media type: 415.
    let (st, p) = post_events(&base, "", "text/plain", "{\"key\":\"k\",\"op\":\"incr\"}").await;
    assert_eq!(st, 415, "{p}");

    // Invalid percent-encoding in a key (not UTF-8): 400.
    assert_eq!(get_json(&base, "/v1/state/%FF%FE").await.0, 400);

    // Still serving, and the good events applied.
    for k in ["g1", "g2", "g3", "g5"] {
        assert_eq!(
            get_json(&base, &format!("/v1/state/{k}")).await.1["value"],
            1,
            "{k}"
        );
    }
    running.shutdown().await.expect("clean shutdown");
}
