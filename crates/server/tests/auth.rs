//! `--auth-token`: every HTTP route but /healthz and the dashboard shell `/`
//! needs the bearer token; the TCP HELLO must carry it. Without a token configured, nothing is asked.

mod common;

use common::*;
use statecraft_server::protocol::ErrorCode;
use statecraft_server::{ClientError, Secret, ServeConfig, TcpClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_required_everywhere_but_healthz() {
    let running = start(ServeConfig {
        auth_token: Some(Secret::new("s3cret")),
        ..config()
    })
    .await;
    let base = running.http_url();
    let c = http();

    assert_eq!(
        c.get(format!("{base}/healthz"))
            .send()
            .await
            .expect("ok")
            .status(),
        200
    );
    for path in [
        "/readyz",
        "/v1/stats",
        "/v1/state",
        "/v1/state/k",
        "/metrics",
        "/v1/watch",
    ] {
        let resp = c.get(format!("{base}{path}")).send().await.expect("ok");
        assert_eq!(resp.status(), 401, "{path} without a token");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        assert!(resp.headers().contains_key("www-authenticate"));
        let resp = c
            .get(format!("{base}{path}"))
            .bearer_auth("wrong")
            .send()
            .await
            .expect("ok");
        assert_eq!(resp.status(), 401, "{path} with a wrong token");
    }
    // The dashboard shell is public (a browser cannot send a bearer header
    // when it navigates); it holds no data — its /v1/stats calls need the token.
    let resp = c.get(format!("{base}/")).send().await.expect("ok");
    assert_eq!(resp.status(), 200, "the dashboard page");
    let resp = c
        .post(format!("{base}/v1/events"))
        .body(r#"{"key":"k","op":"incr"}"#)
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 401);
    let resp = c
        .delete(format!("{base}/v1/state/k"))
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 401);

    let resp = c
        .post(format!("{base}/v1/events"))
        .bearer_auth("s3cret")
        .body(r#"{"key":"k","op":"incr"}"#)
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 200);
    let resp = c
        .get(format!("{base}/v1/state/k"))
        .header("authorization", "bearer s3cret")
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 200, "the scheme is case-insensitive");

    // TCP: no token, wrong token → unauthorized; right token → works.
    for token in [None, Some("nope")] {
        match TcpClient::connect(running.tcp_addr, token).await {
            Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::Unauthorized),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    let mut client = TcpClient::connect(running.tcp_addr, Some("s3cret"))
        .await
        .expect("greeted");
    let results = client
        .submit(&[statecraft_engine::Event::incr("k", 1)], None)
        .await
        .expect("acked");
    assert!(results[0].is_applied());

    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_configured_means_open() {
    let running = start(config()).await;
    let base = running.http_url();
    assert_eq!(get_json(&base, "/v1/stats").await.0, 200);
    // A token sent anyway is ignored.
    let mut client = TcpClient::connect(running.tcp_addr, Some("anything"))
        .await
        .expect("greeted");
    assert!(
        client
            .submit(&[statecraft_engine::Event::incr("k", 1)], None)
            .await
            .expect("acked")[0]
            .is_applied()
    );
    running.shutdown().await.expect("clean shutdown");
}
