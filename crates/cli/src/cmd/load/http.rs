//! The Statecraft HTTP target: `POST /v1/events?ack=…` with an NDJSON body
//! of `--batch` events per request; each connection has one request in
//! flight (HTTP/1.1 has no pipelining), on its own keep-alive connection
//! from the shared pool.
//!
//! Invariant: every event of a request is counted once — by its result
//! when the server answered `{"results":[…]}`, else all of them under the
//! whole request's failure (`http_<status>` or `connection`).

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use serde::Deserialize;

use super::generator::{EventGen, GenOp, merge_patch, set_patch_seq};
use super::recorder::{FrameTally, Recorder};
use super::{ConnOutcome, ConnPlan, LoadConfig, pace};
use crate::cmd::remote::{http_client, http_error};

/// The shared client and the events URL.
#[derive(Debug, Clone)]
pub(super) struct HttpTarget {
    client: reqwest::Client,
    /// `{base}/v1/events?ack={mode}`.
    url: String,
    base: String,
}

/// Builds the client and checks that the server answers `/healthz`.
pub(super) async fn connect(
    base: &str,
    _conns: usize,
    config: &LoadConfig,
) -> anyhow::Result<HttpTarget> {
    let client = http_client(config.token.as_deref(), Some(Duration::from_secs(120)))?;
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_err(|e| http_error(e, base))?;
    anyhow::ensure!(
        health.status().is_success(),
        "{base}/healthz answered {}: the server is not ready",
        health.status()
    );
    Ok(HttpTarget {
        client,
        url: format!("{base}/v1/events?ack={}", config.ack.as_str()),
        base: base.to_owned(),
    })
}

/// One result as the load generator reads it (other fields are skipped).
#[derive(Deserialize)]
struct Row<'a> {
    #[serde(borrow)]
    status: &'a str,
    #[serde(default, borrow)]
    code: Option<&'a str>,
}

/// The body of a `POST /v1/events` answer (or of a 429/503 problem, which
/// carries the results too).
#[derive(Deserialize)]
struct Results<'a> {
    #[serde(borrow, default)]
    results: Vec<Row<'a>>,
}

/// Appends one event as an NDJSON line (keys never need escaping: the key
/// space refuses prefixes that would).
#[inline]
pub(crate) fn put_ndjson(
    buf: &mut BytesMut,
    key: &str,
    op: GenOp,
    n: u64,
    patch: &mut serde_json::Value,
) {
    buf.put_slice(b"{\"key\":\"");
    buf.put_slice(key.as_bytes());
    match op {
        GenOp::Incr => buf.put_slice(b"\",\"op\":\"incr\",\"value\":1}\n"),
        GenOp::Set => {
            buf.put_slice(b"\",\"op\":\"set\",\"value\":");
            let _ = write!((&mut *buf).writer(), "{n}");
            buf.put_slice(b"}\n");
        }
        GenOp::Merge => {
            buf.put_slice(b"\",\"op\":\"merge\",\"value\":");
            set_patch_seq(patch, n);
            let _ = serde_json::to_writer((&mut *buf).writer(), patch);
            buf.put_slice(b"}\n");
        }
    }
}

/// Counts the results of one answered request.
fn tally_body(body: &[u8], events: u64, tally: &mut FrameTally) {
    match serde_json::from_slice::<Results<'_>>(body) {
        Ok(r) if r.results.len() as u64 == events => {
            for row in &r.results {
                match row.status {
                    "applied" | "accepted" => tally.ok += 1,
                    "overloaded" => tally.error("overloaded", "", 1),
                    "duplicate" => tally.error("duplicate", "", 1),
                    "conflict" => tally.error("conflict", "", 1),
                    "rejected" => {
                        tally.error_named(&format!("rejected:{}", row.code.unwrap_or("?")), 1)
                    }
                    other => tally.error_named(&format!("status:{other}"), 1),
                }
            }
        }
        _ => tally.error("bad_answer", "", events),
    }
}

/// Runs one connection's share of the load.
pub(super) async fn drive(
    target: HttpTarget,
    plan: ConnPlan,
    mut source: EventGen,
    progress: &AtomicU64,
) -> ConnOutcome {
    let mut pacer = plan.pacer;
    let mut rec = Recorder::default();
    let mut tally = FrameTally::default();
    let mut patch = merge_patch(0);
    let mut buf = BytesMut::with_capacity(plan.batch * 64);
    let mut sent = 0u64;
    let mut failure = None;
    while sent < plan.events {
        let n = (plan.events - sent).min(plan.batch as u64);
        let late = pace(&mut pacer).await;
        for _ in 0..n {
            let e = source.next_event();
            put_ndjson(&mut buf, e.key, e.op, e.n, &mut patch);
        }
        let body = buf.split().freeze();
        let origin = late.unwrap_or_else(Instant::now);
        let answer = target
            .client
            .post(&target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await;
        sent += n;
        tally.clear();
        match answer {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(bytes) => match status {
                        200 => tally_body(&bytes, n, &mut tally),
                        429 | 503 => tally_overloaded_problem(&bytes, status, n, &mut tally),
                        other => tally.error_named(&format!("http_{other}"), n),
                    },
                    Err(e) => {
                        rec.lost("connection", n);
                        failure = Some(format!(
                            "reading an answer failed: {}",
                            http_error(e, &target.base)
                        ));
                    }
                }
            }
            Err(e) => {
                rec.lost("connection", n);
                failure = Some(format!("{}", http_error(e, &target.base)));
            }
        }
        if tally.total() > 0 {
            rec.frame(origin.elapsed(), &tally);
        }
        progress.fetch_add(n, Ordering::Relaxed);
        if failure.is_some() {
            break;
        }
    }
    ConnOutcome {
        rec,
        not_sent: plan.events - sent,
        failure,
    }
}

/// A 429/503 problem: when it carries the results (every one `overloaded`),
/// count them; otherwise count the request under its status.
fn tally_overloaded_problem(body: &[u8], status: u16, events: u64, tally: &mut FrameTally) {
    match serde_json::from_slice::<Results<'_>>(body) {
        Ok(r) if r.results.len() as u64 == events => tally_body(body, events, tally),
        _ => tally.error(
            if status == 429 {
                "http_429"
            } else {
                "http_503"
            },
            "",
            events,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_lines_are_valid_events() {
        let mut buf = BytesMut::new();
        let mut patch = merge_patch(0);
        put_ndjson(&mut buf, "k:1", GenOp::Incr, 1, &mut patch);
        put_ndjson(&mut buf, "k:2", GenOp::Set, 7, &mut patch);
        put_ndjson(&mut buf, "k:3", GenOp::Merge, 9, &mut patch);
        let lines: Vec<serde_json::Value> = buf[..]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("valid JSON"))
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"key":"k:1","op":"incr","value":1})
        );
        assert_eq!(
            lines[1],
            serde_json::json!({"key":"k:2","op":"set","value":7})
        );
        assert_eq!(lines[2]["op"], "merge");
        assert_eq!(lines[2]["value"]["seq"], 9);
    }

    #[test]
    fn answers_are_tallied_by_status() {
        let body = br#"{"results":[{"status":"applied","version":1},{"status":"overloaded"},{"status":"rejected","code":"invalid_op","message":"x\"y"}]}"#;
        let mut t = FrameTally::default();
        tally_body(body, 3, &mut t);
        assert_eq!(t.ok, 1);
        assert_eq!(t.total(), 3);
        let mut t = FrameTally::default();
        tally_body(b"not json", 5, &mut t);
        assert_eq!((t.ok, t.total()), (0, 5));
    }
}
