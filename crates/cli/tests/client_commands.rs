//! The client commands against an in-process server (`Server::start` on
//! 127.0.0.1:0): `send` (HTTP and TCP; summary by status; exit status on
//! rejections), `get`, `scan` (following `next`), `watch` (SSE to NDJSON),
//! and the offline `backup` (including its refusal while the store is open).

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use statecraft_engine::{AckMode, Engine, Event};
use statecraft_server::{RunningServer, ServeConfig, Server};

fn statecraft(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("statecraft runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("statecraft ends")
}

async fn run(args: Vec<String>, stdin: Option<Vec<u8>>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        statecraft(&args, stdin.as_deref())
    })
    .await
    .expect("join")
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

async fn start() -> (RunningServer, Engine) {
    let config = ServeConfig {
        engine: statecraft_engine::EngineConfig {
            ack: AckMode::Applied,
            ..ServeConfig::ephemeral().engine
        },
        ..ServeConfig::ephemeral()
    };
    let server = Server::start(config).await.expect("server starts");
    let engine = server.wait_ready().await.expect("engine opens");
    (server, engine)
}

const EVENTS: &str = r#"{"key":"user:1","op":"set","value":{"name":"ada"}}

{"key":"user:1","op":"merge","value":{"plan":"pro"}}
this is not json
{"key":"user:2","op":"incr","value":5}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_over_http_summarizes_by_status_and_fails_on_rejections() {
    let (server, engine) = start().await;
    let url = format!("http://{}", server.http_addr);
    let out = run(
        strs(&["send", "-", "--server", &url, "--batch", "2", "--json"]),
        Some(EVENTS.as_bytes().to_vec()),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "a rejected line fails the send");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(summary["events"], 4);
    assert_eq!(summary["by_status"]["applied"], 3);
    assert_eq!(summary["by_status"]["rejected"], 1);
    assert_eq!(summary["rejected_by_code"]["invalid_json"], 1);
    // The rejection names its input line (blank lines count as lines).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 4: rejected"), "{stderr}");
    let rec = engine.get("user:1").await.expect("get").expect("present");
    assert_eq!(rec.value, serde_json::json!({"name": "ada", "plan": "pro"}));
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_over_tcp_from_a_file_keeps_order_and_allow_errors_exits_zero() {
    let (server, engine) = start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("events.ndjson");
    let mut text = String::from(EVENTS);
    // Per-key order across frames: 300 sets of one key, the last one wins.
    for i in 1..=300 {
        text.push_str(&format!(
            "{{\"key\":\"order\",\"op\":\"set\",\"value\":{i}}}\n"
        ));
    }
    std::fs::write(&file, text).expect("write file");
    let tcp = format!("tcp://{}", server.tcp_addr);
    let out = run(
        vec![
            "send".into(),
            file.display().to_string(),
            "--server".into(),
            tcp,
            "--batch".into(),
            "7".into(),
            "--allow-errors".into(),
        ],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("sent 304 events"), "{stdout}");
    assert!(stdout.contains("applied 303, rejected 1"), "{stdout}");
    let rec = engine.get("order").await.expect("get").expect("present");
    assert_eq!(rec.value, 300);
    assert_eq!(rec.version, 300);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_scan_and_watch_read_what_was_written() {
    let (server, engine) = start().await;
    let url = format!("http://{}", server.http_addr);
    let events: Vec<Event> = (0..250)
        .map(|i| Event::incr(format!("s:{i:03}"), i))
        .collect();
    engine
        .submit_with(events, AckMode::Applied)
        .await
        .expect("submit");

    let out = run(strs(&["get", "s:007", "--server", &url]), None).await;
    assert!(out.status.success());
    let rec: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (rec["key"].clone(), rec["value"].clone()),
        ("s:007".into(), 7.into())
    );
    let out = run(strs(&["get", "s:nope", "--server", &url]), None).await;
    assert_eq!(out.status.code(), Some(1));

    // --all follows `next` across pages of 40: every key once, in order.
    let out = run(
        strs(&[
            "scan", "--prefix", "s:", "--limit", "40", "--all", "--server", &url,
        ]),
        None,
    )
    .await;
    assert!(out.status.success());
    let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("NDJSON")["key"]
                .as_str()
                .expect("key")
                .to_owned()
        })
        .collect();
    let want: Vec<String> = (0..250).map(|i| format!("s:{i:03}")).collect();
    assert_eq!(keys, want);
    // One page: its items and where to continue.
    let out = run(
        strs(&["scan", "--prefix", "s:", "--limit", "10", "--server", &url]),
        None,
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 10);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--after \"s:009\""));

    // watch: start it, then write until it has printed two changes.
    let watcher = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            statecraft(
                &["watch", "--prefix", "w:", "--count", "2", "--server", &url],
                None,
            )
        })
    };
    let mut n = 0;
    while !watcher.is_finished() {
        n += 1;
        engine
            .submit_with(
                vec![Event::incr(format!("w:{n}"), 1), Event::incr("other", 1)],
                AckMode::Applied,
            )
            .await
            .expect("submit");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(n < 200, "watch printed nothing");
    }
    let out = watcher.await.expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .all(|c| c["key"].as_str().is_some_and(|k| k.starts_with("w:")))
    );
    server.shutdown().await.expect("shutdown");
}

#[test]
fn client_errors_say_what_to_check() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let out = statecraft(
        &["get", "k", "--server", &format!("http://127.0.0.1:{port}")],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `statecraft serve` running there?"));
    let out = statecraft(
        &["scan", "--server", &format!("tcp://127.0.0.1:{port}")],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an http:// URL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_a_closed_store_and_refuses_an_open_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("data");
    let engine = Engine::builder()
        .shards(2)
        .data_dir(&src)
        .open()
        .await
        .expect("open");
    let events: Vec<Event> = (0..100).map(|i| Event::incr(format!("b:{i}"), 2)).collect();
    engine
        .submit_with(events, AckMode::Durable)
        .await
        .expect("submit");

    // While the store is open (as under a running server): refused.
    let dst = dir.path().join("backup");
    let args = vec![
        "backup".to_owned(),
        "--data-dir".into(),
        src.display().to_string(),
        dst.display().to_string(),
    ];
    let out = run(args.clone(), None).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in use") && err.contains("statecraft serve"),
        "{err}"
    );

    engine.shutdown().await.expect("shutdown");
    drop(engine);
    let out = run(args, None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backed up"));

    let copy = Engine::builder()
        .data_dir(&dst)
        .open()
        .await
        .expect("the backup opens");
    let recs = copy.scan("b:", None, 1000).await.expect("scan");
    assert_eq!(recs.len(), 100);
    assert!(recs.iter().all(|r| r.value == 2));
    copy.shutdown().await.expect("shutdown");

    // A non-empty destination is refused before anything is opened.
    let out = run(
        vec![
            "backup".into(),
            "--data-dir".into(),
            src.display().to_string(),
            dst.display().to_string(),
        ],
        None,
    )
    .await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}
