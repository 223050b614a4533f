//! `statecraft load`: the load generator of BENCH.md's contract.
//!
//! ```text
//! statecraft load --target tcp://HOST:PORT|http://HOST:PORT|redis://HOST:PORT|nats://HOST:PORT
//!   --events N --keys K --dist uniform|zipf [--zipf-s 0.99] --op incr|set|merge|incr=80,set=20
//!   --batch B --connections C [--rate R] --ack durable|applied|none [--json] [--token T]
//! ```
//!
//! Layout: [`generator`] picks events (pre-generated keys, distributions, op
//! mix); [`recorder`] measures (HDR histograms, outcome counts, the
//! report); one driver per target speaks its wire protocol — `tcp` (the
//! binary EVENTS frames of docs/protocol.md), `http` (NDJSON
//! `POST /v1/events`), `redis` (pipelined RESP, [`resp`]) — all fed by the
//! same generator and measured by the same recorder, so every target pays
//! the same client cost.
//!
//! How a run goes: every connection is opened first; then the clock starts;
//! each connection sends its share of the events in frames of `--batch`
//! events with at most `--window` frames unanswered (pipelining; HTTP/1.1
//! has no pipelining, so an HTTP connection has one request in flight);
//! each frame's send→answer time is recorded once per event it carried.
//!
//! With `--rate`, the run is open loop: frame k of a connection is due at
//! `start + k × interval` whatever the answers do. A frame that goes out
//! late because the target held the sender back (a full window) is charged
//! from its due time, not from when it finally left — so a stall counts
//! against every frame it delayed (no coordinated omission). The client's
//! own timer slack (Tokio's 1 ms timer) is not charged: a frame whose
//! sender was idle counts from its actual send.
//!
//! Invariant: `events == ok + errors` in every report, and it counts only
//! events that were sent; events a failed connection never sent are
//! `not_sent` (and the command exits 1).

pub mod generator;
mod http;
mod nats;
pub mod recorder;
mod redis;
pub mod resp;
mod tcp;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use statecraft_engine::AckMode;

use crate::cmd::remote::Endpoint;
use generator::{Dist, EventGen, KeySpace, OpMix};
use recorder::{LoadReport, Recorder};

/// Arguments of `statecraft load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// tcp://HOST:PORT (binary frames), http://HOST:PORT (NDJSON),
    /// redis://HOST:PORT (a Redis peer, pipelined RESP), or
    /// nats://HOST:PORT (a cluster's stream, published with the cluster
    /// producer; the cluster must exist). Also `--server`,
    /// and STATECRAFT_SERVER like every client command.
    #[arg(
        long,
        visible_alias = "server",
        env = "STATECRAFT_SERVER",
        value_name = "URL"
    )]
    pub target: String,
    /// Events to send in all.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub events: u64,
    /// Distinct keys (pre-generated as `<key-prefix><i>`).
    #[arg(long, default_value_t = 100_000, value_name = "K")]
    pub keys: u64,
    /// Key distribution.
    #[arg(long, value_enum, default_value = "uniform")]
    pub dist: Dist,
    /// Zipf exponent (with --dist zipf).
    #[arg(long, default_value_t = 0.99, value_name = "S")]
    pub zipf_s: f64,
    /// Op, or a weighted mix such as incr=80,set=20. Redis: incr = INCRBY
    /// key 1; set and merge = HSET key field value.
    #[arg(long, default_value = "incr", value_name = "OPS")]
    pub op: OpMix,
    /// Events per frame (per HTTP request; per Redis pipeline).
    #[arg(long, default_value_t = 1_000, value_name = "B")]
    pub batch: usize,
    /// Connections, each with its own share of the events.
    #[arg(long, default_value_t = 8, value_name = "C")]
    pub connections: usize,
    /// Open loop: offer this many events/s in all, on a fixed schedule.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// When the server answers: durable, applied, none (ignored by Redis).
    #[arg(long, default_value = "durable", value_parser = parse_ack)]
    pub ack: AckMode,
    /// Frames a connection may have unanswered (TCP and Redis).
    #[arg(long, default_value_t = 16, value_name = "W")]
    pub window: usize,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Bearer token (TCP HELLO, HTTP Authorization; Redis AUTH).
    #[arg(
        long,
        env = "STATECRAFT_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Seed of the event generator (same seed, same events).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Key names' prefix.
    #[arg(long, default_value = "key:", value_name = "PREFIX")]
    pub key_prefix: String,
}

fn parse_ack(s: &str) -> Result<AckMode, String> {
    AckMode::parse(s).ok_or_else(|| format!("`{s}`: expected durable, applied or none"))
}

/// A whole load run's settings (what [`LoadArgs`] become; `bench` builds
/// them directly).
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Where to send.
    pub target: Endpoint,
    /// Events in all.
    pub events: u64,
    /// Key distribution.
    pub dist: Dist,
    /// Zipf exponent.
    pub zipf_s: f64,
    /// Op mix.
    pub ops: OpMix,
    /// Events per frame.
    pub batch: usize,
    /// Connections.
    pub connections: usize,
    /// Unanswered frames per connection.
    pub window: usize,
    /// Open-loop rate, events/s in all.
    pub rate: Option<f64>,
    /// Ack mode.
    pub ack: AckMode,
    /// Token.
    pub token: Option<String>,
    /// Generator seed.
    pub seed: u64,
    /// Show a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

impl LoadConfig {
    /// The configuration echo of the report.
    fn echo(&self, keys: &KeySpace) -> serde_json::Value {
        json!({
            "target": self.target.url(),
            "events": self.events,
            "keys": keys.len(),
            "key_prefix": keys.prefix(),
            "dist": self.dist,
            "zipf_s": (self.dist == Dist::Zipf).then_some(self.zipf_s),
            "op": self.ops.to_string(),
            "batch": self.batch,
            "connections": self.connections,
            "window": match self.target { Endpoint::Http(_) => 1, _ => self.window },
            "rate": self.rate,
            "ack": self.ack.as_str(),
            "seed": self.seed,
        })
    }
}

/// Runs `statecraft load`.
pub fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let config = LoadConfig {
        target: Endpoint::parse(&args.target)?,
        events: args.events,
        dist: args.dist,
        zipf_s: args.zipf_s,
        ops: args.op.clone(),
        batch: args.batch,
        connections: args.connections,
        window: args.window,
        rate: args.rate,
        ack: args.ack,
        token: args.token.clone(),
        seed: args.seed,
        progress: true,
    };
    let keys = Arc::new(KeySpace::new(&args.key_prefix, args.keys)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("statecraft-load")
        .build()
        .context("starting the Tokio runtime")?;
    let report = runtime.block_on(run_load(&config, keys))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_human(&report);
    }
    Ok(if report.not_sent > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints the report as a short table.
fn print_human(r: &LoadReport) {
    let c = &r.config;
    println!(
        "target {}  op {}  dist {}  keys {}  batch {}  connections {}  window {}  ack {}{}",
        c["target"].as_str().unwrap_or("?"),
        c["op"].as_str().unwrap_or("?"),
        c["dist"].as_str().unwrap_or("?"),
        c["keys"],
        c["batch"],
        c["connections"],
        c["window"],
        c["ack"].as_str().unwrap_or("?"),
        match r.config["rate"].as_f64() {
            Some(rate) => format!("  rate {rate:.0}/s"),
            None => String::new(),
        }
    );
    println!(
        "events   {} in {:.3} s = {:.0} events/s ({} ok, {:.0} ok/s)",
        r.events, r.seconds, r.events_per_s, r.ok, r.ok_per_s
    );
    println!(
        "latency  p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  (per event = its frame's send→answer)",
        r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms
    );
    if r.errors == 0 {
        println!("errors   0");
    } else {
        let kinds: Vec<String> = r
            .errors_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!("errors   {} ({})", r.errors, kinds.join(", "));
    }
    if r.not_sent > 0 {
        println!("not sent {} (a connection failed)", r.not_sent);
    }
    for f in &r.failures {
        println!("failure  {f}");
    }
}

/// What each connection is asked to do.
#[derive(Debug, Clone, Copy)]
struct ConnPlan {
    /// Events this connection sends.
    events: u64,
    /// Events per frame.
    batch: usize,
    /// Unanswered frames allowed.
    window: usize,
    /// The open-loop schedule, if any.
    pacer: Option<Pacer>,
    /// The ack mode.
    ack: AckMode,
}

/// An open-loop schedule: frame k is due at `start + k × interval`.
#[derive(Debug, Clone, Copy)]
struct Pacer {
    start: Instant,
    interval: Duration,
    next: u32,
}

impl Pacer {
    /// The due time of the next frame.
    fn next_due(&mut self) -> Instant {
        let due = self.start + self.interval * self.next;
        self.next += 1;
        due
    }
}

/// When a frame is sent under `pacer`: sleeps until it is due (when the
/// sender is early) and answers the instant its latency counts from (see
/// the module doc on coordinated omission).
async fn pace(pacer: &mut Option<Pacer>) -> Option<Instant> {
    let p = pacer.as_mut()?;
    let due = p.next_due();
    let now = Instant::now();
    if now < due {
        tokio::time::sleep_until(due.into()).await;
        None
    } else {
        Some(due)
    }
}

/// How one connection ended.
#[derive(Debug)]
struct ConnOutcome {
    rec: Recorder,
    /// Events this connection never sent.
    not_sent: u64,
    /// Why it stopped early, if it did.
    failure: Option<String>,
}

/// A frame sent and not yet answered: when its latency counts from, and
/// how many events it carries. The sender pushes it *before* writing the
/// frame, so the receiver always finds it when the answer arrives.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    origin: Instant,
    events: u64,
}

/// Runs one load and returns its report (the progress bar, if asked for,
/// goes to stderr).
pub async fn run_load(config: &LoadConfig, keys: Arc<KeySpace>) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(config.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(config.connections >= 1, "--connections must be at least 1");
    anyhow::ensure!(config.window >= 1, "--window must be at least 1");
    if let Some(rate) = config.rate {
        anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be positive");
    }
    let conns = config.connections;
    // Connections first: the clock starts once every one is open.
    let targets = match &config.target {
        Endpoint::Tcp(addr) => Targets::Tcp(tcp::connect_all(addr, conns, config).await?),
        Endpoint::Http(base) => Targets::Http(http::connect(base, conns, config).await?),
        Endpoint::Redis(addr) => Targets::Redis(redis::connect_all(addr, conns, config).await?),
        Endpoint::Nats(url) => Targets::Nats(nats::connect(url).await?),
    };
    let mut sources = Vec::with_capacity(conns);
    for i in 0..conns {
        sources.push(EventGen::new(
            Arc::clone(&keys),
            config.dist,
            config.zipf_s,
            config.ops.clone(),
            config.seed,
            i,
            conns,
        )?);
    }
    let progress = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(config);
    let start = Instant::now();
    let plans: Vec<ConnPlan> = (0..conns)
        .map(|i| {
            let events =
                config.events / conns as u64 + u64::from((i as u64) < config.events % conns as u64);
            let pacer = config.rate.map(|rate| {
                // Each connection offers rate / conns; its frames are spread
                // evenly, and connections are staggered within an interval.
                let interval = Duration::from_secs_f64(config.batch as f64 * conns as f64 / rate);
                Pacer {
                    start: start + interval.mul_f64(i as f64 / conns as f64),
                    interval,
                    next: 0,
                }
            });
            ConnPlan {
                events,
                batch: config.batch,
                window: config.window,
                pacer,
                ack: config.ack,
            }
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    match targets {
        Targets::Tcp(clients) => {
            for ((client, plan), source) in clients.into_iter().zip(plans).zip(sources) {
                let p = Arc::clone(&progress);
                tasks.spawn(async move { tcp::drive(client, plan, source, &p).await });
            }
        }
        Targets::Http(client) => {
            for (plan, source) in plans.into_iter().zip(sources) {
                let p = Arc::clone(&progress);
                let c = client.clone();
                tasks.spawn(async move { http::drive(c, plan, source, &p).await });
            }
        }
        Targets::Redis(conns) => {
            for ((conn, plan), source) in conns.into_iter().zip(plans).zip(sources) {
                let p = Arc::clone(&progress);
                tasks.spawn(async move { redis::drive(conn, plan, source, &p).await });
            }
        }
        Targets::Nats(producer) => {
            for (plan, source) in plans.into_iter().zip(sources) {
                let p = Arc::clone(&progress);
                let producer = Arc::clone(&producer);
                tasks.spawn(async move { nats::drive(producer, plan, source, &p).await });
            }
        }
    }
    let ticker = bar.clone().map(|bar| {
        let p = Arc::clone(&progress);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                bar.set_position(p.load(Ordering::Relaxed));
            }
        })
    });
    let mut total = Recorder::default();
    let mut not_sent = 0;
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.context("a load connection task panicked")?;
        total.merge(&outcome.rec);
        not_sent += outcome.not_sent;
        if let Some(f) = outcome.failure {
            failures.push(f);
        }
    }
    let elapsed = start.elapsed();
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    failures.sort();
    failures.dedup();
    let mut report = LoadReport::new(&total, elapsed, config.echo(&keys));
    report.not_sent = not_sent;
    report.failures = failures;
    Ok(report)
}

/// The open connections of a run, by target kind.
enum Targets {
    Tcp(Vec<statecraft_server::TcpClient>),
    Http(http::HttpTarget),
    Redis(Vec<redis::RedisConn>),
    Nats(Arc<statecraft_cluster::Producer>),
}

fn progress_bar(config: &LoadConfig) -> Option<ProgressBar> {
    if !config.progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(config.events), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} events  {per_sec}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}
