//! `statecraft bench`: BENCH.md's workloads W1–W6 against Statecraft and its
//! peers, on this machine, in one run.
//!
//! ```text
//! statecraft bench [--workloads W1,W3,W6] [--quick] [--runs 3] [--out bench-results/] [--limits]
//! ```
//!
//! Layout: this module plans and runs the workloads; `procs` starts and
//! stops the servers (`statecraft serve` — this binary — on ports it picks,
//! with a fresh data dir; `redis-server` with each persistence setting);
//! `plan` names the workloads, contenders, ratios and targets as types and
//! grades the targets; `inproc` runs W6 through the library API and the
//! Python asyncio peer;
//! `limits` measures the machine's physical limits; `report` holds the
//! results, medians, ratios and their Markdown/JSON/table renderings;
//! `chart` draws `chart.svg`. Network workloads use `statecraft load`'s
//! generator and recorder ([`crate::cmd::load`]), so every target pays the
//! same client cost.
//!
//! Method: each workload runs in rounds; a round runs every contender once,
//! in a fixed order (A B C … A B C …), so the pairs compared in a ratio ran
//! next to each other. Figures are medians of the rounds; ratios are
//! medians of per-round ratios. A contender that fails a round is recorded
//! as failed for it and the bench goes on.
//!
//! Invariant: every process the bench starts is stopped when the bench
//! ends, however it ends (their handles kill them on drop), and every temp
//! dir is removed.

mod chart;
mod inproc;
mod limits;
mod plan;
mod procs;
mod report;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use statecraft_engine::AckMode;

use crate::cmd::load::generator::{Dist, GenOp, KeySpace, OpMix};
use crate::cmd::load::recorder::LoadReport;
use crate::cmd::load::{LoadConfig, run_load};
use crate::cmd::remote::Endpoint;
use plan::{Needs, Overload, Who, Workload};
use procs::{RedisPersistence, RedisProc, ServeProc};
use report::{BenchResults, Contender, Machine, RunFigure, WorkloadResult, si};

/// Arguments of `statecraft bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Workloads to run, comma-separated (W1..W6).
    #[arg(long, value_delimiter = ',', default_value = "W1,W2,W3,W4,W5,W6")]
    pub workloads: Vec<String>,
    /// Small sizes for a smoke run (finishes in under two minutes).
    #[arg(long)]
    pub quick: bool,
    /// Rounds per workload [default: 3, or 1 with --quick].
    #[arg(long, value_name = "N")]
    pub runs: Option<usize>,
    /// Results go to OUT/<timestamp>/{results.json,report.md,chart.svg}.
    #[arg(long, default_value = "bench-results", value_name = "DIR")]
    pub out: PathBuf,
    /// Only measure the physical limits (fdatasync, loopback, hash map).
    #[arg(long)]
    pub limits: bool,
    /// Skip the physical limits.
    #[arg(long, conflicts_with = "limits")]
    pub no_limits: bool,
    /// Events of W1 and W6 [default: 10 M, or 300 k / 1 M with --quick].
    #[arg(long, value_name = "N")]
    pub events: Option<u64>,
    /// Keys written in W5 [default: 10 M, or 200 k with --quick].
    #[arg(long, value_name = "N")]
    pub w5_keys: Option<u64>,
    /// Where temp data dirs go (must be on the disk you mean to measure).
    #[arg(long, value_name = "DIR")]
    pub tmp_dir: Option<PathBuf>,
    /// The redis-server binary (peers are skipped if it is missing).
    #[arg(long, default_value = "redis-server", value_name = "PATH")]
    pub redis_server: String,
    /// The Python interpreter for the asyncio peer (skipped if missing).
    #[arg(long, default_value = "python3", value_name = "PATH")]
    pub python: String,
    /// Skip the peers (Redis, Python).
    #[arg(long)]
    pub no_peers: bool,
}

/// Sizes of each workload.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Sizes {
    w1_events: u64,
    w2_events: u64,
    w2_keys: u64,
    w3_seconds: f64,
    w3_probe_events: u64,
    w4_events: u64,
    w4_connections: usize,
    w5_keys: u64,
    w5_reads: usize,
    w6_events: u64,
    python_drain_events: u64,
    python_wait_for_events: u64,
    limits_budget_s: f64,
}

impl Sizes {
    fn new(args: &BenchArgs) -> Sizes {
        let mut s = if args.quick {
            Sizes {
                w1_events: 300_000,
                w2_events: 200_000,
                w2_keys: 1_000_000,
                w3_seconds: 2.0,
                w3_probe_events: 300_000,
                w4_events: 600_000,
                w4_connections: 64,
                w5_keys: 200_000,
                w5_reads: 500,
                w6_events: 1_000_000,
                python_drain_events: 200_000,
                python_wait_for_events: 50_000,
                limits_budget_s: 0.25,
            }
        } else {
            Sizes {
                w1_events: 10_000_000,
                w2_events: 2_000_000,
                w2_keys: 1_000_000,
                w3_seconds: 10.0,
                w3_probe_events: 3_000_000,
                w4_events: 5_000_000,
                w4_connections: 64,
                w5_keys: 10_000_000,
                w5_reads: 2_000,
                w6_events: 10_000_000,
                python_drain_events: 1_000_000,
                python_wait_for_events: 1_000_000,
                limits_budget_s: 2.0,
            }
        };
        if let Some(n) = args.events {
            s.w1_events = n;
            s.w6_events = n;
        }
        if let Some(n) = args.w5_keys {
            s.w5_keys = n;
        }
        s
    }
}

/// What the bench holds while it runs.
struct Bench {
    exe: PathBuf,
    tmp: tempfile::TempDir,
    runs: usize,
    sizes: Sizes,
    rt: tokio::runtime::Runtime,
    redis_bin: Option<PathBuf>,
    /// `redis-benchmark`, found next to redis-server or on PATH.
    redis_benchmark: Option<PathBuf>,
    python: Option<PathBuf>,
    bar: ProgressBar,
    keys_100k: Arc<KeySpace>,
    /// The server of W1–W3 (started on first use).
    main_server: Option<ServeProc>,
    /// Redis peers of W1–W3 (started on first use).
    redis: BTreeMap<&'static str, RedisProc>,
    workloads: Vec<WorkloadResult>,
    notes: Vec<String>,
}

/// Runs `statecraft bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let started_at = utc_timestamp(std::time::SystemTime::now());
    let mut machine = Machine::probe();
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let sizes = Sizes::new(&args);
    let mut wanted = args
        .workloads
        .iter()
        .map(|w| Workload::parse(w))
        .collect::<anyhow::Result<Vec<Workload>>>()?;
    if args.limits {
        wanted.clear();
    }
    let tmp = match &args.tmp_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("statecraft-bench-")
            .tempdir_in(d),
        None => tempfile::Builder::new()
            .prefix("statecraft-bench-")
            .tempdir(),
    }
    .context("creating the bench's temp dir")?;
    let (redis_bin, python) = if args.no_peers {
        (None, None)
    } else {
        (procs::which(&args.redis_server), procs::which(&args.python))
    };
    machine.redis_version = redis_bin
        .as_deref()
        .and_then(|b| version_line(b, "--version"));
    machine.python_version = python.as_deref().and_then(|p| version_line(p, "--version"));
    let mut notes = Vec::new();
    if cfg!(debug_assertions) {
        notes.push(
            "DEBUG BUILD: these figures are not representative; build with --release.".into(),
        );
    }
    if args.quick {
        notes.push("--quick: small sizes for a smoke run; not BENCH.md's shapes.".into());
    }
    if !args.no_peers && redis_bin.is_none() {
        notes.push(format!(
            "`{}` not found: Redis peers skipped.",
            args.redis_server
        ));
    }
    if !args.no_peers && python.is_none() {
        notes.push(format!(
            "`{}` not found: the Python peer skipped.",
            args.python
        ));
    }
    notes.push(format!(
        "Statecraft server: `{} serve` with default settings (shards = {} cores) on a fresh data dir under {}; \
         load generator in the bench process on the same machine (it competes for the same cores, as the peers' clients do).",
        std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
        machine.nproc,
        tmp.path().display()
    ));

    let bar = progress(&wanted, runs, !args.no_limits || args.limits);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("statecraft-bench")
        .build()
        .context("starting the Tokio runtime")?;
    let mut bench = Bench {
        exe: std::env::current_exe().context("finding this executable")?,
        tmp,
        runs,
        sizes,
        rt,
        redis_benchmark: redis_bin.as_ref().and_then(|b| {
            let sibling = b.with_file_name("redis-benchmark");
            if sibling.is_file() {
                Some(sibling)
            } else {
                procs::which("redis-benchmark")
            }
        }),
        redis_bin,
        python,
        bar,
        keys_100k: Arc::new(KeySpace::new("key:", 100_000)?),
        main_server: None,
        redis: BTreeMap::new(),
        workloads: Vec::new(),
        notes,
    };

    let limits = if args.no_limits {
        None
    } else {
        bench.bar.set_message("physical limits");
        let l = limits::measure(
            bench.tmp.path(),
            Duration::from_secs_f64(sizes.limits_budget_s),
        )?;
        bench.bar.inc(1);
        bench.say(format!(
            "limits: fdatasync 4 KiB {:.0}/s (p99 {:.3} ms), 64 KiB {:.0} MB/s, loopback {:.2} GB/s, FxHashMap {} ops/s",
            l.fsync_4k.per_s,
            l.fsync_4k.p99_ms,
            l.fsync_64k.mb_per_s,
            l.loopback_bytes_per_s / 1e9,
            si(l.hashmap_ops_per_s)
        ));
        Some(l)
    };

    for &w in &wanted {
        let result = match w {
            Workload::W1 => bench.w1(),
            Workload::W2 => bench.w2(),
            Workload::W3 => bench.w3(),
            Workload::W4 => bench.w4(),
            Workload::W5 => bench.w5(),
            Workload::W6 => bench.w6(),
        };
        match result {
            Ok(mut wr) => {
                for c in &mut wr.contenders {
                    c.finish();
                }
                plan::add_ratios(w, &mut wr);
                bench.workloads.push(wr);
            }
            Err(e) => bench.notes.push(format!("{} could not run: {e:#}", w.id())),
        }
    }
    // Stop the servers before writing (and before the temp dir goes).
    if let Some(s) = bench.main_server.take() {
        s.stop(Duration::from_secs(10));
    }
    bench.redis.clear();
    bench.bar.finish_and_clear();

    machine.loadavg_end = report::loadavg();
    let targets = plan::grade_all(&bench.workloads);
    let results = BenchResults {
        started_at: started_at.clone(),
        seconds: started.elapsed().as_secs_f64(),
        machine,
        settings: serde_json::json!({
            "workloads": wanted.iter().map(|w| w.id()).collect::<Vec<_>>(),
            "quick": args.quick,
            "runs": runs,
            "sizes": sizes,
            "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        }),
        limits,
        workloads: std::mem::take(&mut bench.workloads),
        targets,
        notes: std::mem::take(&mut bench.notes),
    };
    let dir = args.out.join(started_at.replace([':', '-'], ""));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text)
            .with_context(|| format!("writing {}", dir.join(name).display()))
    };
    write("results.json", &serde_json::to_string_pretty(&results)?)?;
    write("report.md", &report::markdown(&results))?;
    write("chart.svg", &chart::svg(&results))?;
    print!("{}", report::table(&results));
    for n in &results.notes {
        println!("note: {n}");
    }
    println!("results: {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// The first line of `bin --version`.
fn version_line(bin: &Path, flag: &str) -> Option<String> {
    let out = std::process::Command::new(bin).arg(flag).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}

/// The progress bar: one step per contender run (and one for the limits).
fn progress(wanted: &[Workload], runs: usize, limits: bool) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let steps: usize = wanted
        .iter()
        .map(|w| w.contenders().len() * runs)
        .sum::<usize>()
        + usize::from(limits);
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) without a date library.
fn utc_timestamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Bench {
    /// A line for the user: above the bar on a terminal, else on stderr.
    fn say(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    fn step(&self, msg: String) {
        self.bar.set_message(msg);
    }

    fn done_step(&self) {
        self.bar.inc(1);
    }

    /// The W1–W3 server, started on first use.
    fn main_server(&mut self) -> anyhow::Result<&ServeProc> {
        if self.main_server.is_none() {
            let dir = self.tmp.path().join("main-data");
            let log = self.tmp.path().join("main-serve.log");
            self.main_server = Some(ServeProc::spawn(
                &self.exe,
                &dir,
                &[],
                &log,
                Duration::from_secs(60),
            )?);
        }
        self.main_server.as_ref().context("the main server")
    }

    /// A Redis peer of W1–W3, started on first use.
    fn redis(&mut self, p: RedisPersistence) -> anyhow::Result<u16> {
        let bin = self
            .redis_bin
            .clone()
            .context("redis-server is not available")?;
        let label = p.label();
        if !self.redis.contains_key(label) {
            let dir = self
                .tmp
                .path()
                .join(format!("redis-{}", label.replace(' ', "-")));
            std::fs::create_dir_all(&dir)?;
            let proc = RedisProc::spawn(&bin, p, &dir, None, Duration::from_secs(20))?;
            self.redis.insert(label, proc);
        }
        self.redis
            .get(label)
            .map(|r| r.port)
            .context("the redis peer")
    }

    /// The endpoint of a network contender (starting its server if needed).
    fn endpoint(&mut self, who: Who) -> anyhow::Result<Endpoint> {
        Ok(match who {
            Who::Tcp(_) => Endpoint::Tcp(self.main_server()?.tcp.clone()),
            Who::Http(_) => Endpoint::Http(self.main_server()?.http.clone()),
            Who::Redis(p) | Who::RedisBenchmark(p) => {
                Endpoint::Redis(format!("127.0.0.1:{}", self.redis(p)?))
            }
            other => anyhow::bail!("{} is not a network contender", other.name()),
        })
    }

    /// The contenders of `w` that can run here (peers only when their
    /// programs are available).
    fn available(&self, w: Workload) -> Vec<Who> {
        w.contenders()
            .iter()
            .copied()
            .filter(|c| match c.needs() {
                Needs::Nothing => true,
                Needs::Redis => self.redis_bin.is_some(),
                Needs::RedisBenchmark => self.redis_bin.is_some() && self.redis_benchmark.is_some(),
                Needs::Python => self.python.is_some(),
            })
            .collect()
    }

    /// The round loop every workload shares: `runs` rounds, each running
    /// every available contender of `w` once in a fixed order; `one` runs a
    /// contender once and returns its figure and a line for the user. A
    /// failed run is recorded as that contender's failure and the rounds go
    /// on.
    fn rounds(
        &mut self,
        w: Workload,
        mut one: impl FnMut(&mut Bench, usize, Who) -> anyhow::Result<(RunFigure, String)>,
    ) -> Vec<Contender> {
        let who = self.available(w);
        let mut contenders: Vec<Contender> = who
            .iter()
            .map(|c| Contender::new(c.name(), c.peer()))
            .collect();
        for run in 0..self.runs {
            for (&c, contender) in who.iter().zip(contenders.iter_mut()) {
                self.step(format!(
                    "{} round {}/{}: {}",
                    w.id(),
                    run + 1,
                    self.runs,
                    contender.name
                ));
                match one(self, run, c) {
                    Ok((fig, line)) => {
                        self.say(format!("{} {}: {line}", w.id(), contender.name));
                        contender.runs.push(fig);
                    }
                    Err(e) => {
                        self.say(format!("{} {}: failed: {e:#}", w.id(), contender.name));
                        contender.failures.push(format!("round {}: {e:#}", run + 1));
                    }
                }
                self.done_step();
            }
        }
        contenders
    }

    /// A workload's results with its id and title.
    fn result(
        w: Workload,
        shape: String,
        contenders: Vec<Contender>,
        notes: Vec<String>,
    ) -> WorkloadResult {
        WorkloadResult {
            id: w.id().into(),
            title: w.title().into(),
            shape,
            contenders,
            ratios: Vec::new(),
            notes,
        }
    }

    /// One closed-loop run of a network contender with the load `shape`
    /// (`target` and `ack` filled in for it).
    fn network_run(
        &mut self,
        run: usize,
        who: Who,
        keys: &Arc<KeySpace>,
        shape: &LoadConfig,
    ) -> anyhow::Result<(RunFigure, String)> {
        let mut cfg = shape.clone();
        cfg.target = self.endpoint(who)?;
        cfg.ack = ack_of(who);
        let r = match (who, &cfg.target) {
            (Who::RedisBenchmark(_), Endpoint::Redis(addr)) => self.redis_benchmark(addr, &cfg)?,
            _ => self.load(&cfg, keys)?,
        };
        let line = format!(
            "{} events/s, p99 {:.3} ms, errors {}",
            si(r.events_per_s),
            r.p99_ms,
            r.errors
        );
        let with_latency = !matches!(who, Who::RedisBenchmark(_));
        let mut fig = RunFigure::from_load(run, &r, with_latency);
        if let Some(rate) = r.config["rate"].as_f64() {
            fig.extra.insert("offered_rate".into(), rate);
        }
        Ok((fig, line))
    }

    /// Runs one load; a run in which a connection failed is an error
    /// (its figure would be about the failure, not the target).
    fn load(&self, cfg: &LoadConfig, keys: &Arc<KeySpace>) -> anyhow::Result<LoadReport> {
        let r = self.rt.block_on(run_load(cfg, Arc::clone(keys)))?;
        if let Some(why) = r.failures.first() {
            anyhow::bail!(
                "{} of {} events not sent or lost: {why}",
                r.not_sent + r.errors_by_kind.get("connection").copied().unwrap_or(0),
                cfg.events
            );
        }
        Ok(r)
    }

    fn shape(
        &self,
        events: u64,
        dist: Dist,
        op: GenOp,
        batch: usize,
        connections: usize,
    ) -> LoadConfig {
        LoadConfig {
            target: Endpoint::Tcp(String::new()),
            events,
            dist,
            zipf_s: 0.99,
            ops: OpMix::single(op),
            batch,
            connections,
            window: 16,
            rate: None,
            ack: AckMode::Durable,
            token: None,
            seed: 42,
            progress: false,
        }
    }

    /// `redis-benchmark -t incr -P B -c C -n N -r K -q` against `addr`: the
    /// reference client's figure for the same shape (its `INCR` on random
    /// keys; no latency histogram).
    fn redis_benchmark(&self, addr: &str, cfg: &LoadConfig) -> anyhow::Result<LoadReport> {
        let bin = self
            .redis_benchmark
            .as_ref()
            .context("redis-benchmark is not available")?;
        let (host, port) = addr.rsplit_once(':').context("redis address")?;
        let out = std::process::Command::new(bin)
            .args(["-h", host, "-p", port, "-t", "incr", "-q"])
            .args(["-P", &cfg.batch.to_string()])
            .args(["-c", &cfg.connections.to_string()])
            .args(["-n", &cfg.events.to_string()])
            .args(["-r", "100000"])
            .output()
            .context("running redis-benchmark")?;
        anyhow::ensure!(
            out.status.success(),
            "redis-benchmark exited with {}",
            out.status
        );
        // The last `INCR: 1234.56 requests per second, …` record.
        let text = String::from_utf8_lossy(&out.stdout);
        let rps = text
            .rsplit("INCR: ")
            .next()
            .and_then(|t| t.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .context("could not read redis-benchmark's requests per second")?;
        let mut r = LoadReport::new(
            &crate::cmd::load::recorder::Recorder::default(),
            Duration::from_secs_f64(cfg.events as f64 / rps),
            serde_json::json!({"target": format!("redis://{addr}"), "client": "redis-benchmark"}),
        );
        r.events = cfg.events;
        r.ok = cfg.events;
        r.events_per_s = rps;
        r.ok_per_s = rps;
        Ok(r)
    }

    fn w1(&mut self) -> anyhow::Result<WorkloadResult> {
        let events = self.sizes.w1_events;
        let shape = self.shape(events, Dist::Uniform, GenOp::Incr, 1000, 8);
        let keys = Arc::clone(&self.keys_100k);
        let contenders = self.rounds(Workload::W1, |b, run, who| {
            b.network_run(run, who, &keys, &shape)
        });
        Ok(Self::result(
            Workload::W1,
            format!(
                "`incr` by 1 on 100,000 keys, uniform; {events} events, batches of 1,000, 8 connections, 16 frames in flight per connection (HTTP: one request per connection); Redis: pipelined `INCRBY key 1`, pipeline = batch, same window."
            ),
            contenders,
            Vec::new(),
        ))
    }

    fn w2(&mut self) -> anyhow::Result<WorkloadResult> {
        let events = self.sizes.w2_events;
        let keys = Arc::new(KeySpace::new("doc:", self.sizes.w2_keys)?);
        let shape = self.shape(events, Dist::Zipf, GenOp::Merge, 500, 8);
        let contenders = self.rounds(Workload::W2, |b, run, who| {
            b.network_run(run, who, &keys, &shape)
        });
        Ok(Self::result(
            Workload::W2,
            format!(
                "`merge` of a ~200-byte JSON patch into {} keys, zipf 0.99; {events} events, batches of 500, 8 connections; Redis: `HSET key doc <patch>` (stores the patch, does not merge it: cheaper work than Statecraft's).",
                self.sizes.w2_keys
            ),
            contenders,
            Vec::new(),
        ))
    }

    fn w3(&mut self) -> anyhow::Result<WorkloadResult> {
        let keys = Arc::clone(&self.keys_100k);
        let probe_events = self.sizes.w3_probe_events;
        let seconds = self.sizes.w3_seconds;
        let contenders = self.rounds(Workload::W3, |b, run, who| {
            let target = b.endpoint(who)?;
            let ack = ack_of(who);
            // W1's maximum, measured right before (the machine's capacity
            // drifts): a closed-loop W1-shaped probe.
            let mut probe = b.shape(probe_events, Dist::Uniform, GenOp::Incr, 1000, 8);
            probe.target = target.clone();
            probe.ack = ack;
            let max = b.load(&probe, &keys)?.events_per_s;
            let rate = max * 0.5;
            let events = ((rate * seconds) as u64).max(8_000);
            let mut cfg = b.shape(events, Dist::Uniform, GenOp::Incr, 1000, 8);
            cfg.target = target;
            cfg.ack = ack;
            cfg.rate = Some(rate);
            let r = b.load(&cfg, &keys)?;
            let offered = r.config["rate"].as_f64().unwrap_or(0.0);
            let line = format!(
                "{} events/s offered (max {}), p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
                si(offered),
                si(max),
                r.p50_ms,
                r.p99_ms,
                r.p999_ms
            );
            let mut fig = RunFigure::from_load(run, &r, true);
            fig.extra.insert("max_probe_per_s".into(), max);
            fig.extra.insert("offered_rate".into(), offered);
            Ok((fig, line))
        });
        Ok(Self::result(
            Workload::W3,
            format!(
                "W1's shape, open loop at a fixed rate of half of W1's maximum for {seconds:.0} s. The maximum is measured right before each run (a closed-loop W1-shaped probe of {probe_events} events on the same contender), because this machine's capacity drifts with its neighbours' load. Latency counts from each frame's scheduled send time whenever the target held the sender back (no coordinated omission)."
            ),
            contenders,
            Vec::new(),
        ))
    }

    fn w4(&mut self) -> anyhow::Result<WorkloadResult> {
        let conns = self.sizes.w4_connections;
        let events = self.sizes.w4_events;
        let keys = Arc::clone(&self.keys_100k);
        let shards = std::thread::available_parallelism().map_or(1, |n| n.get());
        let contenders = self.rounds(Workload::W4, |b, run, who| {
            let Who::Overload(variant) = who else {
                anyhow::bail!("{} is not a W4 contender", who.name());
            };
            let fig = b.w4_run(run, variant, &keys, conns, events, shards)?;
            let line = format!(
                "offered {} events/s, admitted {} events/s, admitted p99 {:.3} ms, peak RSS {:.0} MiB",
                si(fig.events_per_s),
                si(fig.ok_per_s),
                fig.ok_latency.map_or(0.0, |l| l.p99_ms),
                fig.extra["peak_rss_mib"]
            );
            Ok((fig, line))
        });
        Ok(Self::result(
            Workload::W4,
            format!(
                "W1's events offered closed-loop as fast as {conns} connections × 16 frames of 1,000 can go ({events} events, ack=durable) to a fresh server with small queues (--queue-capacity {W4_QUEUE_EVENTS} events and {} MiB per shard); 'ok/s' is the admitted rate, its latency the admitted events' latency (extras: admitted_p99_ms).",
                W4_QUEUE_BYTES >> 20
            ),
            contenders,
            vec![
                "Adaptive capacity: `--adaptive --target-wait-ms 1 --min-capacity 512 --max-capacity 65536` (per shard), against fixed capacity 4,096 events per shard; the queue bytes bound is the same for all.".into(),
                format!(
                    "Memory: baseline_rss_mib is the server's RSS after a warm-up (every key exists), peak_rss_mib its VmHWM after the overload; queue_bound_mib = shards × --queue-capacity-bytes ({shards} × {} MiB). Statecraft has no setting that bounds its total memory, so 'within the configured bound' cannot be graded; the growth over the baseline is the figure to watch.",
                    W4_QUEUE_BYTES >> 20
                ),
                "The client cannot offer 10× the engine's commit rate on this machine (it shares the cores): the offered rate is what it reached; 'offered/admitted' says how far past capacity that was.".into(),
            ],
        ))
    }

    /// One W4 run: a fresh server of `variant`, a warm-up, the baseline
    /// RSS, the overload, the peak RSS and whether it still answers.
    fn w4_run(
        &mut self,
        run: usize,
        variant: Overload,
        keys: &Arc<KeySpace>,
        conns: usize,
        events: u64,
        shards: usize,
    ) -> anyhow::Result<RunFigure> {
        let tag = variant.tag();
        let dir = self.tmp.path().join(format!("w4-{run}-{tag}"));
        let log = self.tmp.path().join(format!("w4-{run}-{tag}.log"));
        let mut extra = vec![
            "--queue-capacity".to_owned(),
            W4_QUEUE_EVENTS.to_string(),
            "--queue-capacity-bytes".to_owned(),
            W4_QUEUE_BYTES.to_string(),
        ];
        extra.extend(variant.flags().iter().map(|f| (*f).to_owned()));
        let server = ServeProc::spawn(&self.exe, &dir, &extra, &log, Duration::from_secs(60))?;
        // Warm up (every key exists), then take the baseline RSS.
        let mut warm = self.shape(200_000, Dist::Uniform, GenOp::Incr, 1000, 8);
        warm.target = Endpoint::Tcp(server.tcp.clone());
        self.load(&warm, keys)?;
        let base_kib = procs::proc_status_kib(server.pid(), "VmRSS").unwrap_or(0);
        let mut cfg = self.shape(events, Dist::Uniform, GenOp::Incr, 1000, conns);
        cfg.target = Endpoint::Tcp(server.tcp.clone());
        let r = self.load(&cfg, keys)?;
        let peak_kib = procs::proc_status_kib(server.pid(), "VmHWM").unwrap_or(0);
        let addr = server.http.trim_start_matches("http://").to_owned();
        let up = procs::healthz_ok(&addr);
        server.stop(Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&dir);
        let mut fig = RunFigure::from_load(run, &r, true);
        let queue_bound_mib = shards as f64 * W4_QUEUE_BYTES as f64 / (1 << 20) as f64;
        fig.extra.insert("offered_per_s".into(), r.events_per_s);
        fig.extra.insert("admitted_per_s".into(), r.ok_per_s);
        fig.extra
            .insert("admitted_p99_ms".into(), r.ok_latency.p99_ms);
        fig.extra
            .insert("baseline_rss_mib".into(), base_kib as f64 / 1024.0);
        fig.extra
            .insert("peak_rss_mib".into(), peak_kib as f64 / 1024.0);
        fig.extra.insert("queue_bound_mib".into(), queue_bound_mib);
        fig.extra
            .insert("stayed_up".into(), if up { 1.0 } else { 0.0 });
        Ok(fig)
    }

    fn w5(&mut self) -> anyhow::Result<WorkloadResult> {
        let n = self.sizes.w5_keys;
        let keys = Arc::new(KeySpace::new("cold:", n)?);
        let contenders = self.rounds(Workload::W5, |b, run, who| {
            let fig = match who {
                Who::RecoveryStatecraft => b.w5_statecraft(run, &keys)?,
                Who::RecoveryRedis => b.w5_redis(run, &keys)?,
                other => anyhow::bail!("{} is not a W5 contender", other.name()),
            };
            let line = format!(
                "wrote {} keys at {} events/s; ready {:.0} ms after restart; cold read p99 {:.3} ms",
                n,
                si(fig.events_per_s),
                fig.extra["ready_ms"],
                fig.extra["cold_read_p99_ms"]
            );
            Ok((fig, line))
        });
        Ok(Self::result(
            Workload::W5,
            format!(
                "{n} keys written once each (`incr`, ack=durable / Redis `INCRBY` with appendfsync always; batches of 1,000, 8 connections), then `kill -9`, restart on the same data; ready_ms = spawn → first /healthz 200 (Redis: first PONG); then the first read of {} random keys, one at a time (HTTP GET / RESP GET), each checked for its value.",
                self.sizes.w5_reads
            ),
            contenders,
            vec!["events/s is the write phase's rate; the latency columns are the write phase's; ready_ms and cold_read_* are the recovery figures.".into()],
        ))
    }

    fn w5_statecraft(&mut self, run: usize, keys: &Arc<KeySpace>) -> anyhow::Result<RunFigure> {
        let dir = self.tmp.path().join(format!("w5-{run}"));
        let log = self.tmp.path().join(format!("w5-{run}.log"));
        let server = ServeProc::spawn(&self.exe, &dir, &[], &log, Duration::from_secs(60))?;
        let mut cfg = self.shape(keys.len(), Dist::Sequential, GenOp::Incr, 1000, 8);
        cfg.target = Endpoint::Tcp(server.tcp.clone());
        let write = self.load(&cfg, keys)?;
        anyhow::ensure!(
            write.errors == 0,
            "the write phase had {} errors",
            write.errors
        );
        server.kill9();
        let log2 = self.tmp.path().join(format!("w5-{run}-restart.log"));
        let restarted = ServeProc::spawn(&self.exe, &dir, &[], &log2, Duration::from_secs(600))?;
        let ready = restarted.time_to_ready();
        let sample = sample_keys(keys.len(), self.sizes.w5_reads, run as u64);
        let base = restarted.http.clone();
        // First reads (cold), then the same keys again (warm: what a read
        // costs over HTTP once the key is in memory).
        let (cold, wrong) = self.rt.block_on(http_gets(&base, keys, &sample))?;
        let (warm, _) = self.rt.block_on(http_gets(&base, keys, &sample))?;
        let du = dir_size(&dir);
        restarted.stop(Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(w5_figure(run, &write, ready, &cold, &warm, wrong, du))
    }

    fn w5_redis(&mut self, run: usize, keys: &Arc<KeySpace>) -> anyhow::Result<RunFigure> {
        let bin = self
            .redis_bin
            .clone()
            .context("redis-server is not available")?;
        let dir = self.tmp.path().join(format!("w5-redis-{run}"));
        std::fs::create_dir_all(&dir)?;
        let redis = RedisProc::spawn(
            &bin,
            RedisPersistence::Always,
            &dir,
            None,
            Duration::from_secs(20),
        )?;
        let port = redis.port;
        let mut cfg = self.shape(keys.len(), Dist::Sequential, GenOp::Incr, 1000, 8);
        cfg.target = Endpoint::Redis(format!("127.0.0.1:{port}"));
        let write = self.load(&cfg, keys)?;
        anyhow::ensure!(
            write.errors == 0,
            "the write phase had {} errors",
            write.errors
        );
        redis.kill9();
        let t = Instant::now();
        let restarted = RedisProc::spawn(
            &bin,
            RedisPersistence::Always,
            &dir,
            Some(port),
            Duration::from_secs(600),
        )?;
        let ready = t.elapsed();
        let sample = sample_keys(keys.len(), self.sizes.w5_reads, run as u64);
        let (cold, wrong) = redis_gets(restarted.port, keys, &sample)?;
        let (warm, _) = redis_gets(restarted.port, keys, &sample)?;
        let du = dir_size(&dir);
        drop(restarted);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(w5_figure(run, &write, ready, &cold, &warm, wrong, du))
    }

    fn w6(&mut self) -> anyhow::Result<WorkloadResult> {
        let events = self.sizes.w6_events;
        let keys = Arc::clone(&self.keys_100k);
        let contenders = self.rounds(Workload::W6, |b, run, who| {
            let fig = match who {
                Who::InProc(ack) => {
                    let dir = b.tmp.path().join(format!("w6-{run}"));
                    let r = inproc::run_engine(
                        &keys,
                        events,
                        1000,
                        ack,
                        (ack == AckMode::Durable).then_some(dir.as_path()),
                        42 + run as u64,
                    );
                    let _ = std::fs::remove_dir_all(&dir);
                    RunFigure::from_load(run, &r?, false)
                }
                Who::PythonDrain | Who::PythonWaitFor => {
                    let (mode, n) = if who == Who::PythonDrain {
                        ("drain", b.sizes.python_drain_events)
                    } else {
                        ("wait_for", b.sizes.python_wait_for_events)
                    };
                    let python = b.python.clone().context("python is not available")?;
                    let p = inproc::run_python(
                        &python,
                        b.tmp.path(),
                        n,
                        100_000,
                        mode,
                        Duration::from_secs(600),
                    )?;
                    RunFigure {
                        run,
                        events: p.events,
                        seconds: p.seconds,
                        events_per_s: p.events_per_s,
                        ok_per_s: p.events_per_s,
                        ..RunFigure::default()
                    }
                }
                other => anyhow::bail!("{} is not a W6 contender", other.name()),
            };
            let line = format!("{} events/s", si(fig.events_per_s));
            Ok((fig, line))
        });
        Ok(Self::result(
            Workload::W6,
            format!(
                "W1 through the library API, no network: {events} `incr` events on 100,000 uniform keys in batches of 1,000, built before the clock starts, 64 submissions in flight (`Engine::enqueue` → `Ticket::wait`), default shards; durable on a fresh data dir. Python peer (bench/peers/asyncio_peer.py): the same key distribution, events generated in the script before its clock starts, {} events (drain) / {} events (wait_for), batches of 1,000, 5 ms deadline.",
                self.sizes.python_drain_events, self.sizes.python_wait_for_events
            ),
            contenders,
            vec![
                "Latency is not reported for W6 (pipelined submissions; throughput is the figure)."
                    .into(),
            ],
        ))
    }
}

/// The ack mode a network contender is driven with (Redis peers: none).
fn ack_of(who: Who) -> AckMode {
    match who {
        Who::Tcp(a) | Who::Http(a) => a,
        _ => AckMode::None,
    }
}

/// W4's queue capacity per shard, events: small, so that W1's offered load
/// overflows it (BENCH.md: "small queues").
const W4_QUEUE_EVENTS: usize = 4096;
/// W4's queue capacity per shard, bytes (8 MiB): the same bound for every
/// W4 variant, so their memory figures compare.
const W4_QUEUE_BYTES: u64 = 8 << 20;

/// `n` distinct random key indices below `len`.
fn sample_keys(len: u64, n: usize, seed: u64) -> Vec<u64> {
    use rand::SeedableRng;
    use rand::seq::index::sample;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0xC01D ^ seed);
    let n = n.min(len as usize);
    sample(&mut rng, len as usize, n)
        .into_iter()
        .map(|i| i as u64)
        .collect()
}

/// Bytes under `dir` (files only).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// `GET /v1/state/{key}` for each sampled key over one keep-alive
/// connection, one at a time; the latencies and how many answers were not
/// the value 1.
async fn http_gets(
    base: &str,
    keys: &KeySpace,
    sample: &[u64],
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let client = crate::cmd::remote::http_client(None, Some(Duration::from_secs(30)))?;
    let mut lat = Vec::with_capacity(sample.len());
    let mut wrong = 0u64;
    for i in sample {
        let url = format!("{base}/v1/state/{}", keys.key(*i));
        let t = Instant::now();
        let resp = client.get(&url).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        lat.push(t.elapsed());
        let value = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["value"].as_i64());
        if !status.is_success() || value != Some(1) {
            wrong += 1;
        }
    }
    Ok((lat, wrong))
}

/// `GET key` for each sampled key over one connection, one at a time.
fn redis_gets(port: u16, keys: &KeySpace, sample: &[u64]) -> anyhow::Result<(Vec<Duration>, u64)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).context("connecting to redis")?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut lat = Vec::with_capacity(sample.len());
    let mut wrong = 0;
    let mut out = bytes::BytesMut::new();
    let mut buf = vec![0u8; 4096];
    for i in sample {
        out.clear();
        crate::cmd::load::resp::put_command(&mut out, &[b"GET", keys.key(*i).as_bytes()]);
        let t = Instant::now();
        s.write_all(&out)?;
        let mut have = 0;
        loop {
            let n = s.read(&mut buf[have..])?;
            anyhow::ensure!(n > 0, "redis closed the connection");
            have += n;
            if let Some((reply, _)) = crate::cmd::load::resp::parse_reply(&buf[..have])? {
                if reply != crate::cmd::load::resp::Reply::Bulk(Some(b"1")) {
                    wrong += 1;
                }
                break;
            }
            anyhow::ensure!(have < buf.len(), "a GET reply over 4 KiB");
        }
        lat.push(t.elapsed());
    }
    Ok((lat, wrong))
}

/// W5's figure: the write phase's throughput and latency, plus the
/// recovery figures as extras.
fn w5_figure(
    run: usize,
    write: &LoadReport,
    ready: Duration,
    cold: &[Duration],
    warm: &[Duration],
    wrong: u64,
    bytes: u64,
) -> RunFigure {
    let quantile = |lat: &[Duration], p: f64| -> f64 {
        let mut ms: Vec<f64> = lat.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        if ms.is_empty() {
            return f64::NAN;
        }
        let i = ((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1;
        ms[i]
    };
    let mut fig = RunFigure::from_load(run, write, true);
    fig.extra
        .insert("ready_ms".into(), ready.as_secs_f64() * 1e3);
    fig.extra
        .insert("cold_read_p50_ms".into(), quantile(cold, 0.5));
    fig.extra
        .insert("cold_read_p99_ms".into(), quantile(cold, 0.99));
    fig.extra
        .insert("cold_read_max_ms".into(), quantile(cold, 1.0));
    fig.extra
        .insert("warm_read_p50_ms".into(), quantile(warm, 0.5));
    fig.extra
        .insert("warm_read_p99_ms".into(), quantile(warm, 0.99));
    fig.extra.insert("cold_read_wrong".into(), wrong as f64);
    fig.extra
        .insert("data_mib".into(), bytes as f64 / (1 << 20) as f64);
    fig.extra.insert("keys".into(), write.events as f64);
    fig
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_795_564_800 + 3_661);
        assert_eq!(utc_timestamp(t), "2026-11-25T01:01:01Z");
        assert_eq!(utc_timestamp(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = std::time::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_timestamp(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn sampled_keys_are_distinct_and_in_range() {
        let s = sample_keys(1000, 100, 1);
        let mut d = s.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 100);
        assert!(s.iter().all(|&i| i < 1000));
    }
}
