//! `/metrics`, `/v1/stats` and `/` of a server under traffic: every family
//! of docs/metrics.md is exported with its type, each server has its own
//! recorder (two servers in one process do not mix figures), the sampler's
//! ring answers `?history=` and `?since=`, and the dashboard page is served
//! whole, with a policy that forbids loading anything from elsewhere.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use statecraft_engine::{AckMode, Event};
use statecraft_server::{ServeConfig, TcpClient};

async fn text(url: String) -> (u16, String, reqwest::header::HeaderMap) {
    let resp = http().get(url).send().await.expect("request succeeds");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.text().await.expect("text"), headers)
}

/// The value of the first sample line starting with `prefix` (name and labels).
fn value(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn wait_for_samples(base: &str, n: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (st, v) = get_json(base, "/v1/stats?history=10").await;
        assert_eq!(st, 200);
        if v["observe"]["latest"]["seq"].as_u64().unwrap_or(0) >= n {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "no sample {n}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_stats_and_dashboard_under_traffic() {
    let running = start(ServeConfig {
        engine: statecraft_engine::EngineConfig {
            adaptive: Some(statecraft_engine::adaptive::AdaptiveConfig::new(
                Duration::from_millis(10),
                16,
                4_096,
            )),
            ..config().engine
        },
        ..config()
    })
    .await;
    let other = start(config()).await;
    let base = running.http_url();

    // Traffic: TCP frames and HTTP posts, one bad request, one 404.
    let mut client = TcpClient::connect(running.tcp_addr, None)
        .await
        .expect("tcp");
    for i in 0..20 {
        let events: Vec<Event> = (0..50)
            .map(|k| Event::incr(format!("k{}", i * 50 + k), 1))
            .collect();
        client
            .submit(&events, Some(AckMode::Applied))
            .await
            .expect("acked");
    }
    let (st, _) = post_events(&base, "", "application/json", r#"{"key":"a","op":"incr"}"#).await;
    assert_eq!(st, 200);
    let (st, _) = post_events(&base, "", "application/json", "not json").await;
    assert_eq!(st, 400);
    assert_eq!(get_json(&base, "/v2/none").await.0, 404);

    let stats = wait_for_samples(&base, 2).await;
    let (st, metrics, headers) = text(format!("{base}/metrics")).await;
    assert_eq!(st, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/plain")
    );

    for (family, kind) in [
        ("statecraft_up", "gauge"),
        ("statecraft_events_total", "counter"),
        ("statecraft_queue_depth", "gauge"),
        ("statecraft_queue_capacity", "gauge"),
        ("statecraft_queue_wait_recent_p50_seconds", "gauge"),
        ("statecraft_queue_wait_recent_p95_seconds", "gauge"),
        ("statecraft_cache_keys", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_open_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("statecraft_queue_wait_target_seconds", "gauge"),
        ("statecraft_queue_arrival_rate", "gauge"),
        ("statecraft_queue_service_rate", "gauge"),
        ("statecraft_queue_admitted_total", "counter"),
        ("statecraft_queue_refused_total", "counter"),
        ("statecraft_capacity_changes_total", "counter"),
        ("statecraft_batches_total", "counter"),
        ("statecraft_queue_wait_seconds", "histogram"),
        ("statecraft_apply_seconds", "summary"),
        ("statecraft_batch_events", "summary"),
        ("statecraft_stage_seconds", "histogram"),
        ("statecraft_http_requests_total", "counter"),
        ("statecraft_http_request_duration_seconds", "histogram"),
        ("statecraft_tcp_connections_open", "gauge"),
        ("statecraft_tcp_frames_total", "counter"),
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} {kind}\n")),
            "no {kind} {family} in\n{metrics}"
        );
    }
    assert_eq!(
        value(&metrics, "statecraft_events_total{status=\"applied\"}"),
        Some(1_001.0)
    );
    assert_eq!(
        value(
            &metrics,
            "statecraft_queue_wait_target_seconds{shard=\"0\"}"
        ),
        Some(0.01)
    );
    for stage in ["decode", "admit", "ack"] {
        for source in ["http", "tcp"] {
            let count = value(
                &metrics,
                &format!("statecraft_stage_seconds_count{{stage=\"{stage}\",source=\"{source}\"}}"),
            );
            assert!(count >= Some(1.0), "{stage}/{source}: {count:?}\n{metrics}");
        }
    }
    assert_eq!(
        value(
            &metrics,
            "statecraft_http_requests_total{route=\"/v1/events\",status=\"400\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &metrics,
            "statecraft_http_requests_total{route=\"unmatched\",status=\"404\"}"
        ),
        Some(1.0)
    );

    // The other server's recorder saw none of it.
    let (_, other_metrics, _) = text(format!("{}/metrics", other.http_url())).await;
    assert_eq!(
        value(
            &other_metrics,
            "statecraft_events_total{status=\"applied\"}"
        ),
        Some(0.0),
        "{other_metrics}"
    );
    // Its stage histograms exist from the start, at zero.
    assert_eq!(
        value(
            &other_metrics,
            "statecraft_stage_seconds_count{stage=\"decode\",source=\"http\"}"
        ),
        Some(0.0),
        "{other_metrics}"
    );
    // Both pass promtool's lint (when installed; required under CI=true).
    for text in [&metrics, &other_metrics] {
        if let Some(verdict) = promtool_check(text) {
            verdict.unwrap_or_else(|e| panic!("promtool check metrics: {e}\n{text}"));
        }
    }
    // Queue wait is a real histogram: cumulative buckets up to +Inf = count.
    let inf = value(
        &metrics,
        "statecraft_queue_wait_seconds_bucket{shard=\"0\",le=\"+Inf\"}",
    );
    assert_eq!(
        inf,
        value(&metrics, "statecraft_queue_wait_seconds_count{shard=\"0\"}")
    );
    assert!(inf >= Some(1.0), "{metrics}");
    // /v1/stats carries the keyspace and process figures.
    let (_, now) = get_json(&base, "/v1/stats").await;
    assert!(
        now["keyspace"]["cache_keys"].as_u64() >= Some(1_000),
        "{now}"
    );
    assert!(
        now["process"]["resident_memory_bytes"].as_u64() > Some(0),
        "{now}"
    );

    // /v1/stats: engine figures, adaptive settings, samples and the cursor.
    assert!(stats["results"]["applied"].as_u64() >= Some(1_001));
    let observe = &stats["observe"];
    assert_eq!(observe["interval_ms"], 1000);
    assert_eq!(observe["adaptive"]["target_ms"], 10.0);
    let samples = observe["samples"].as_array().expect("samples");
    assert!(!samples.is_empty());
    let latest = &observe["latest"];
    for key in [
        "events_per_s",
        "refusals_per_s",
        "stages_ms",
        "shards",
        "admitted_per_s",
    ] {
        assert!(
            !latest[key].is_null(),
            "latest sample lacks {key}: {latest}"
        );
    }
    assert_eq!(latest["shards"].as_array().map(Vec::len), Some(2));
    let seq = latest["seq"].as_u64().expect("seq");
    let (_, later) = get_json(&base, &format!("/v1/stats?since={seq}")).await;
    assert!(
        later["observe"]["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .all(|s| s["seq"].as_u64() > Some(seq))
    );
    let (_, plain) = get_json(&base, "/v1/stats").await;
    assert!(
        plain["observe"]["samples"].is_null(),
        "no history unless asked"
    );
    assert_eq!(get_json(&base, "/v1/stats?since=x").await.0, 400);

    // The dashboard: the whole page, nothing from elsewhere.
    let (st, page, headers) = text(format!("{base}/")).await;
    assert_eq!(st, 200);
    assert!(page.contains("<canvas") && page.contains("/v1/stats"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external URL"
    );
    let csp = headers["content-security-policy"].to_str().unwrap_or("");
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));

    other.shutdown().await.expect("clean shutdown");
    running.shutdown().await.expect("clean shutdown");
}

/// Runs `promtool check metrics` on `text`: `None` when promtool is not
/// installed (a printed skip; a failure under `CI=true`).
fn promtool_check(text: &str) -> Option<Result<(), String>> {
    use std::io::Write as _;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is required under CI=true: {e}"
            );
            eprintln!("skip: promtool not installed ({e})");
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(said)
    })
}

/// The lint is not vacuous: the gauge-with-`quantile` family the server
/// used to export, and a histogram without `+Inf`, are refused.
#[test]
fn promtool_refuses_what_the_server_used_to_export() {
    let old = "# HELP statecraft_queue_wait_recent_seconds Queue wait quantile.\n\
# TYPE statecraft_queue_wait_recent_seconds gauge\n\
statecraft_queue_wait_recent_seconds{shard=\"0\",quantile=\"0.5\"} 0.001\n";
    if let Some(verdict) = promtool_check(old) {
        let err = verdict.expect_err("a gauge with a quantile label is refused");
        assert!(err.contains("quantile"), "{err}");
    }
}
