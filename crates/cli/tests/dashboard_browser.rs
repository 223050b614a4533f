//! The live dashboard in a real browser: a server under load (TCP and HTTP
//! producers, a slowed consumer so the queues have something to show, an
//! auth token), headless Chromium driven through chromedriver's W3C
//! WebDriver HTTP API. Asserts that every chart drew data (points drawn and
//! pixels painted on each `<canvas>`), that the figures in the DOM change
//! between two reads a few seconds apart, and saves a screenshot to
//! `target/test-artifacts/dashboard.png`.
//!
//! Without Chromium or chromedriver the test prints why and passes, unless
//! `CI=true`, where a missing browser is a failure (`.ci/run` installs the
//! Debian packages `chromium` and `chromium-driver`). `CHROME` and
//! `CHROMEDRIVER` override the binaries' paths.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use statecraft_engine::{AckMode, Event};
use statecraft_server::{RunningServer, Secret, ServeConfig, Server, TcpClient};

const TOKEN: &str = "dash-s3cret";

fn binary(env: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.exists().then_some(path)
}

/// The browser and its driver, or `None` (skip) when absent outside CI.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chrome = binary("CHROME", "/usr/bin/chromium");
    let driver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
    match (chrome, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        (c, d) => {
            let why = format!(
                "dashboard_browser: skipped: chromium {} / chromedriver {} \
                 (apt-get install -y chromium chromium-driver)",
                if c.is_some() { "found" } else { "missing" },
                if d.is_some() { "found" } else { "missing" },
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("{why}");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// chromedriver as a child process, killed on drop.
struct Chromedriver {
    child: Child,
    base: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session.
struct Session {
    http: reqwest::Client,
    url: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("webdriver answers");
        let status = resp.status();
        let v: Value = resp.json().await.expect("webdriver JSON");
        assert!(status.is_success(), "webdriver {path}: {status} {v}");
        v["value"].clone()
    }

    async fn exec(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }
}

async fn start_driver(driver: &Path) -> Chromedriver {
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let cd = Chromedriver {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{}/status", cd.base)).send().await
            && let Ok(v) = r.json::<Value>().await
            && v["value"]["ready"] == true
        {
            return cd;
        }
        assert!(Instant::now() < deadline, "chromedriver did not get ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn new_session(cd: &Chromedriver, chrome: &Path, profile: &Path) -> Session {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let caps = json!({
        "capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome.to_string_lossy(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", "--window-size=1600,1500",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}
    });
    let resp = http
        .post(format!("{}/session", cd.base))
        .json(&caps)
        .send()
        .await
        .expect("session request");
    let v: Value = resp.json().await.expect("session JSON");
    let id = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {v}"))
        .to_owned();
    Session {
        http,
        url: format!("{}/session/{id}", cd.base),
    }
}

/// Producers until `stop`: TCP frames of incr events (ack=applied) and small
/// HTTP NDJSON posts, so every chart has figures.
fn spawn_load(running: &RunningServer, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for conn in 0..2u64 {
        let addr = running.tcp_addr;
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut client = TcpClient::connect(addr, Some(TOKEN))
                .await
                .expect("tcp client");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let events: Vec<Event> = (0..400)
                    .map(|k| Event::incr(format!("k{}", (i * 400 + k + conn * 7) % 5_000), 1))
                    .collect();
                if client
                    .submit(&events, Some(AckMode::Applied))
                    .await
                    .is_err()
                {
                    break;
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
        }));
    }
    let base = running.http_url();
    let stop2 = Arc::clone(&stop);
    tasks.push(tokio::spawn(async move {
        let http = reqwest::Client::new();
        let body: String = (0..20)
            .map(|i| format!("{{\"key\":\"h{i}\",\"op\":\"incr\"}}\n"))
            .collect();
        while !stop2.load(Ordering::Relaxed) {
            let _ = http
                .post(format!("{base}/v1/events?ack=applied"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/x-ndjson")
                .body(body.clone())
                .send()
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }));
    tasks
}

/// What the page shows: sample seq, headline figures, and per canvas the
/// points drawn and the pixels painted.
const READ_PAGE: &str = r#"
const canvases = [...document.querySelectorAll('canvas[data-chart]')].map((c) => {
  const ctx = c.getContext('2d');
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let painted = 0, hash = 0;
  for (let i = 3; i < d.length; i += 4) {
    if (d[i] > 0) { painted++; hash = (hash * 31 + d[i - 3] + d[i - 2] * 7 + d[i - 1] * 13 + i) | 0; }
  }
  return { chart: c.dataset.chart, points: Number(c.dataset.points || 0), painted, hash, w: c.width, h: c.height };
});
const kpi = (id) => { const el = document.getElementById(id); return el ? el.querySelector('.v').textContent + ' | ' + el.querySelector('.s').textContent : null; };
return {
  seq: Number(document.body.dataset.seq || 0),
  conn: document.getElementById('conn').dataset.state,
  login_open: document.getElementById('login').classList.contains('open'),
  applied: kpi('kpi-applied'),
  ack: kpi('kpi-ack'),
  wait: kpi('kpi-wait'),
  mode: document.getElementById('mode').textContent,
  shard_rows: document.querySelectorAll('#shard-table tbody tr').length,
  legend: [...document.querySelectorAll('.legend b')].map((b) => b.textContent),
  canvases,
};
"#;

async fn wait_for_seq(s: &Session, at_least: u64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let page = s.exec(READ_PAGE).await;
        if page["seq"].as_u64().unwrap_or(0) >= at_least {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "the page did not reach sample {at_least}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("test-artifacts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_draws_live_charts_in_chromium() {
    let Some((chrome, driver)) = browser() else {
        return;
    };
    let running = Server::start(ServeConfig {
        engine: statecraft_engine::EngineConfig {
            adaptive: Some(statecraft_engine::adaptive::AdaptiveConfig::new(
                Duration::from_millis(5),
                64,
                20_000,
            )),
            queue_capacity: 20_000,
            // A slow consumer (≈ 60 k events/s per shard) so queues fill.
            apply_delay: Duration::from_micros(15),
            ..ServeConfig::ephemeral().engine
        },
        auth_token: Some(Secret::new(TOKEN)),
        ..ServeConfig::ephemeral()
    })
    .await
    .expect("server starts");
    running.wait_ready().await.expect("engine opens");
    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_load(&running, Arc::clone(&stop));

    let profile = tempfile::tempdir().expect("profile dir");
    let cd = start_driver(&driver).await;
    let s = new_session(&cd, &chrome, profile.path()).await;
    // The token rides in the fragment: the page moves it to sessionStorage.
    s.call(
        reqwest::Method::POST,
        "/url",
        Some(json!({"url": format!("{}/#token={TOKEN}", running.http_url())})),
    )
    .await;

    let first = wait_for_seq(&s, 6, Duration::from_secs(40)).await;
    assert_eq!(first["login_open"], false, "the fragment token was used");
    assert_eq!(first["conn"], "live", "{first}");
    assert!(
        first["mode"].as_str().unwrap_or("").starts_with("adaptive"),
        "{first}"
    );
    assert_eq!(first["shard_rows"], 2, "{first}");
    let canvases = first["canvases"].as_array().expect("canvases");
    let charts: Vec<&str> = canvases
        .iter()
        .filter_map(|c| c["chart"].as_str())
        .collect();
    for want in [
        "throughput",
        "stages",
        "wait",
        "refusals",
        "depth-0",
        "depth-1",
    ] {
        assert!(charts.contains(&want), "no {want} chart in {charts:?}");
    }
    for c in canvases {
        assert!(c["w"].as_u64() > Some(100), "{c}");
        assert!(c["points"].as_u64() > Some(0), "chart drew no data: {c}");
        assert!(c["painted"].as_u64() > Some(500), "chart nearly blank: {c}");
    }

    // Figures move: a later read shows a newer sample, another total and
    // different pixels.
    let seq = first["seq"].as_u64().unwrap_or(0);
    let second = wait_for_seq(&s, seq + 3, Duration::from_secs(20)).await;
    assert_ne!(
        first["applied"], second["applied"],
        "applied figures did not change"
    );
    assert_ne!(
        first["canvases"][0]["hash"], second["canvases"][0]["hash"],
        "the throughput chart did not change"
    );
    assert_ne!(first["legend"], second["legend"]);

    let png = s.call(reqwest::Method::GET, "/screenshot", None).await;
    let png = decode_base64(png.as_str().expect("base64 screenshot"));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    let path = dir.join("dashboard.png");
    std::fs::write(&path, &png).expect("screenshot written");
    eprintln!("dashboard screenshot: {}", path.display());

    let _ = s.call(reqwest::Method::DELETE, "", None).await;
    drop(cd);
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = t.await;
    }
    running.shutdown().await.expect("clean shutdown");
}
