//! HTTPS with rustls: a self-signed certificate made in the test; a client
//! trusting it talks to every route; a plain-HTTP request gets no answer.

mod common;

use std::time::Duration;

use statecraft_server::ServeConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");

    let running = common::start(ServeConfig {
        tls_cert: Some(cert_path),
        tls_key: Some(key_path),
        ..common::config()
    })
    .await;
    let url = running.http_url();
    assert!(url.starts_with("https://"), "{url}");
    let url = url.replace("127.0.0.1", "localhost");

    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).expect("pem"),
        )
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let resp = client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("TLS handshake and answer");
    assert_eq!(resp.status(), 200);
    let resp = client
        .post(format!("{url}/v1/events"))
        .body(r#"{"key":"t","op":"incr"}"#)
        .send()
        .await
        .expect("ok");
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = client
        .get(format!("{url}/v1/state/t"))
        .send()
        .await
        .expect("ok")
        .json()
        .await
        .expect("json");
    assert_eq!(v["value"], 1);

    // A client that does not trust the certificate fails the handshake.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    assert!(
        untrusting
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_err()
    );

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = common::raw_exchange(
        running.http_addr,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(!plain.starts_with(b"HTTP/1.1 200"));

    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_certificate_is_a_start_error() {
    let err = statecraft_server::Server::start(ServeConfig {
        tls_cert: Some("/nonexistent/cert.pem".into()),
        tls_key: Some("/nonexistent/key.pem".into()),
        ..common::config()
    })
    .await
    .expect_err("no such files");
    assert!(err.to_string().contains("TLS"), "{err}");
}
