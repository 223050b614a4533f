//! Test support for the cluster scenarios (`cluster_*.rs`): a private
//! `nats-server -js` on a free loopback port with a temporary store dir,
//! `statecraft serve --nats` node processes, an in-test producer, and the
//! readers that check every key.
//!
//! Without `nats-server` the tests print why and pass as skipped — unless
//! `CI` is set, where a missing binary is a failure (`.ci/run` installs it).

#![allow(dead_code)]

#[path = "../serve_ready/mod.rs"]
mod serve_ready;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use statecraft_cluster::{Producer, ProducerOptions};
use statecraft_engine::{AckMode, Event, EventResult};

/// Lease TTL of every scenario.
pub const TTL: Duration = Duration::from_secs(2);
/// Partitions of every scenario.
pub const PARTITIONS: u32 = 6;

/// A running nats-server, killed on drop.
pub struct NatsServer {
    child: Child,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin"])
        .map(|d| PathBuf::from(d).join("nats-server"))
        .find(|p| p.is_file())
}

/// Lowest and highest port the tests pick from: below Linux's ephemeral
/// range (32768-60999), so the kernel does not hand the port to an
/// outgoing connection between our probe and the server's bind.
pub const TEST_PORTS: (u16, u16) = (20_000, 32_000);

/// A free loopback port in [`TEST_PORTS`], probed from a per-process start.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let seed = u64::from(std::process::id()) * 7_919 + nanos;
    let span = u64::from(TEST_PORTS.1 - TEST_PORTS.0);
    for _ in 0..1_000 {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = TEST_PORTS.0 + ((seed + i * 104_729) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {TEST_PORTS:?}");
}

/// Starts a private server, or `None` (after printing why) when the binary
/// is missing outside CI. Panics under CI when it is missing.
pub fn nats() -> Option<NatsServer> {
    let Some(bin) = nats_binary() else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(
            !ci,
            "nats-server is not installed but CI is set: .ci/run must install it (apt package `nats-server`)"
        );
        eprintln!(
            "SKIPPED: nats-server is not installed (apt-get install nats-server); set CI=true to make this a failure"
        );
        return None;
    };
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(NatsServer {
                    child,
                    url: format!("nats://127.0.0.1:{port}"),
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("nats-server did not start");
}

/// A `statecraft serve --nats` process.
pub struct Node {
    pub id: String,
    pub child: Child,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts node `id` on `data_dir`; returns once it printed `ready` (it has
/// joined the cluster; its partitions come a tick or two later).
pub fn start_node(nats: &str, id: &str, data_dir: &Path, extra: &[&str]) -> Node {
    start_node_with(nats, id, data_dir, PARTITIONS, extra)
}

/// [`start_node`] with another partition count.
pub fn start_node_with(
    nats: &str,
    id: &str,
    data_dir: &Path,
    partitions: u32,
    extra: &[&str],
) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .args(["serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0"])
        .args(["--shards", "2", "--nats", nats, "--node-id", id])
        .args(["--partitions", &partitions.to_string()])
        .args(["--lease-ttl-ms", &TTL.as_millis().to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--log-format", "json", "--log-level", "warn"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("statecraft serve starts");
    let listening = serve_ready::await_ready(&mut child);
    Node {
        id: id.to_owned(),
        child,
        http: listening.http,
        data_dir: data_dir.to_owned(),
    }
}

/// Sends `sig` to the node.
pub fn signal(node: &Node, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(node.child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill({sig})");
}

/// SIGTERM, then waits for a clean exit.
pub fn stop(mut node: Node) {
    signal(&node, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = node.child.try_wait().expect("wait") {
            assert!(status.success(), "node {} exited with {status}", node.id);
            return;
        }
        assert!(Instant::now() < deadline, "node {} did not stop", node.id);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The node's `/v1/stats` `cluster` object.
pub async fn stats(http: &reqwest::Client, node: &Node) -> serde_json::Value {
    let v: serde_json::Value = http
        .get(format!("http://{}/v1/stats", node.http))
        .send()
        .await
        .expect("stats request")
        .json()
        .await
        .expect("stats json");
    v["cluster"].clone()
}

/// Partitions the node serves.
pub async fn serving(http: &reqwest::Client, node: &Node) -> Vec<u64> {
    stats(http, node).await["serving"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default()
}

/// Waits until the nodes serve every partition between them, each at most
/// its fair share; returns how long it took.
pub async fn wait_balanced(http: &reqwest::Client, nodes: &[&Node], within: Duration) -> Duration {
    let began = Instant::now();
    let fair = (PARTITIONS as usize).div_ceil(nodes.len());
    loop {
        let mut all = Vec::new();
        let mut balanced = true;
        for n in nodes {
            let s = serving(http, n).await;
            balanced &= s.len() <= fair && !s.is_empty();
            all.extend(s);
        }
        all.sort_unstable();
        all.dedup();
        if balanced && all.len() == PARTITIONS as usize {
            return began.elapsed();
        }
        assert!(
            began.elapsed() < within,
            "not balanced after {within:?}: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The workload: `n` incr events with ids over `keys` keys.
pub fn workload(n: usize, keys: usize) -> (Vec<Event>, HashMap<String, i64>) {
    let mut expected: HashMap<String, i64> = HashMap::new();
    let events = (0..n)
        .map(|i| {
            let key = format!("user:{}", (i * 7919) % keys);
            *expected.entry(key.clone()).or_default() += 1;
            Event::incr(key, 1).with_id(format!("evt-{i}"))
        })
        .collect();
    (events, expected)
}

/// The test's producer (a process of its own is not needed: it is a NATS
/// client like any other).
pub async fn producer(nats: &str) -> Producer {
    producer_with(nats, ProducerOptions::default()).await
}

/// A producer that groups up to 1,000 events of a call per partition into
/// one message (record batches).
pub async fn batching_producer(nats: &str) -> Producer {
    producer_with(
        nats,
        ProducerOptions {
            max_events_per_message: 1_000,
            ..ProducerOptions::default()
        },
    )
    .await
}

/// [`producer`] with `options`.
pub async fn producer_with(nats: &str, options: ProducerOptions) -> Producer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Producer::connect(nats, options.clone()).await {
            Ok(p) => return p,
            Err(e) if Instant::now() < deadline => {
                eprintln!("producer: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("producer: {e}"),
        }
    }
}

/// Publishes `events` in chunks with `ack=durable`; every event must be
/// accepted (or a duplicate of an accepted one).
pub async fn publish(producer: &Producer, events: &[Event]) {
    for chunk in events.chunks(500) {
        let results = producer
            .publish_events(chunk.to_vec(), AckMode::Durable)
            .await
            .expect("publish");
        for r in &results {
            assert!(
                matches!(r, EventResult::Accepted | EventResult::Duplicate),
                "{r:?}"
            );
        }
    }
}

/// Reads `key` from a node over HTTP (404 = 0).
pub async fn read(http: &reqwest::Client, node: &Node, key: &str) -> Option<i64> {
    let r = http
        .get(format!("http://{}/v1/state/{key}", node.http))
        .send()
        .await
        .ok()?;
    match r.status().as_u16() {
        200 => r.json::<serde_json::Value>().await.ok()?["value"].as_i64(),
        404 => Some(0),
        _ => None,
    }
}

/// Waits until every key reads exactly its expected count on every node
/// (events acked `durable` are applied a little later); panics with the
/// first difference after `within`.
pub async fn assert_exact(
    http: &reqwest::Client,
    nodes: &[&Node],
    expected: &HashMap<String, i64>,
    within: Duration,
) {
    let began = Instant::now();
    for node in nodes {
        for (key, want) in expected {
            loop {
                let got = read(http, node, key).await;
                if got == Some(*want) {
                    break;
                }
                if let Some(g) = got {
                    assert!(
                        g <= *want,
                        "key {key} on {} = {g} > {want}: applied twice",
                        node.id
                    );
                }
                assert!(
                    began.elapsed() < within,
                    "key {key} on {} = {got:?}, expected {want}",
                    node.id
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Sum of a counter over nodes' stats.
pub async fn total(http: &reqwest::Client, nodes: &[&Node], field: &str) -> u64 {
    let mut t = 0;
    for n in nodes {
        t += stats(http, n).await[field].as_u64().unwrap_or(0);
    }
    t
}

/// Like [`workload`], over keys `<prefix>:<k>`, with ids (`<prefix>-<i>`)
/// or without.
pub fn workload_named(
    prefix: &str,
    n: usize,
    keys: usize,
    ids: bool,
) -> (Vec<Event>, HashMap<String, i64>) {
    let mut expected: HashMap<String, i64> = HashMap::new();
    let events = (0..n)
        .map(|i| {
            let key = format!("{prefix}:{}", (i * 7919) % keys);
            *expected.entry(key.clone()).or_default() += 1;
            let e = Event::incr(key, 1);
            if ids {
                e.with_id(format!("{prefix}-{i}"))
            } else {
                e
            }
        })
        .collect();
    (events, expected)
}

/// Publishes `events` in calls of `chunk` with `ack`; returns how many
/// results of each kind came back (`applied`, `accepted`, `duplicate`,
/// `other`). A publish call that fails outright panics.
pub async fn publish_counting(
    producer: &Producer,
    events: &[Event],
    chunk: usize,
    ack: AckMode,
) -> [u64; 4] {
    let mut counts = [0u64; 4];
    for part in events.chunks(chunk) {
        let results = producer
            .publish_events(part.to_vec(), ack)
            .await
            .expect("publish");
        for r in &results {
            let slot = match r {
                EventResult::Applied { .. } => 0,
                EventResult::Accepted => 1,
                EventResult::Duplicate => 2,
                _ => {
                    eprintln!("unexpected result {r:?}");
                    3
                }
            };
            counts[slot] += 1;
        }
    }
    counts
}

/// Waits until the nodes serve all `partitions` between them with shares
/// that differ by at most one; returns the shares.
pub async fn wait_shares_within_one(
    http: &reqwest::Client,
    nodes: &[&Node],
    partitions: u32,
    within: Duration,
) -> Vec<usize> {
    let began = Instant::now();
    loop {
        let mut all = Vec::new();
        let mut shares = Vec::new();
        for n in nodes {
            let s = serving(http, n).await;
            shares.push(s.len());
            all.extend(s);
        }
        all.sort_unstable();
        all.dedup();
        let spread = shares.iter().max().unwrap_or(&0) - shares.iter().min().unwrap_or(&0);
        if all.len() == partitions as usize && spread <= 1 {
            return shares;
        }
        assert!(
            began.elapsed() < within,
            "shares {shares:?} (serving {} of {partitions}) not within one of each other after {within:?}",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
