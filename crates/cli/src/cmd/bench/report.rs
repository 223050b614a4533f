//! The bench's results: what each run of each contender measured, medians
//! across runs, per-pair ratios, the BENCH.md target checks, and their
//! renderings — `results.json`, `report.md` and the terminal table.
//!
//! Invariants:
//! - A median is taken per figure across the runs of one contender (the
//!   events/s median and the p99 median may come from different runs).
//! - A ratio is computed per run, pairing run i of the numerator with run i
//!   of the denominator (measured next to each other, A B A B), and the
//!   median of those per-pair ratios is reported — never a ratio of medians
//!   from different moments.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::limits::Limits;
use crate::cmd::load::recorder::{Latency, LoadReport};

/// One run of one contender.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunFigure {
    /// Run index (0-based).
    pub run: usize,
    /// Events answered.
    pub events: u64,
    /// Wall time.
    pub seconds: f64,
    /// events / seconds.
    pub events_per_s: f64,
    /// Succeeded events / seconds (W4: admitted).
    pub ok_per_s: f64,
    /// Events that did not succeed.
    pub errors: u64,
    /// By kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Latency of every event (absent where it is not meaningful).
    pub latency: Option<Latency>,
    /// Latency of the events that succeeded.
    pub ok_latency: Option<Latency>,
    /// Workload-specific figures (`peak_rss_mib`, `ready_ms`, …).
    pub extra: BTreeMap<String, f64>,
}

impl RunFigure {
    /// From a load report.
    pub fn from_load(run: usize, r: &LoadReport, with_latency: bool) -> RunFigure {
        RunFigure {
            run,
            events: r.events,
            seconds: r.seconds,
            events_per_s: r.events_per_s,
            ok_per_s: r.ok_per_s,
            errors: r.errors,
            errors_by_kind: r.errors_by_kind.clone(),
            latency: with_latency.then_some(r.latency),
            ok_latency: with_latency.then_some(r.ok_latency),
            extra: BTreeMap::new(),
        }
    }
}

/// Medians across runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MedianFigure {
    /// Runs that produced a figure.
    pub runs: usize,
    /// Median events/s.
    pub events_per_s: f64,
    /// Lowest events/s.
    pub min_events_per_s: f64,
    /// Highest events/s.
    pub max_events_per_s: f64,
    /// Median ok/s.
    pub ok_per_s: f64,
    /// Errors, summed over runs.
    pub errors: u64,
    /// Median of each latency percentile.
    pub latency: Option<Latency>,
    /// Median of each percentile of the succeeded events' latency.
    pub ok_latency: Option<Latency>,
    /// Median of each extra figure.
    pub extra: BTreeMap<String, f64>,
}

/// Who is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    /// Statecraft itself.
    Statecraft,
    /// A redis-server the bench started.
    Redis,
    /// The textbook Python asyncio design.
    Python,
}

/// One contender of a workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contender {
    /// Its label (`statecraft tcp ack=durable`, `redis aof always`, …).
    pub name: String,
    /// Which system.
    pub peer: Peer,
    /// Each run.
    pub runs: Vec<RunFigure>,
    /// Runs that failed, with why.
    pub failures: Vec<String>,
    /// Medians (set by [`Contender::finish`]).
    pub median: Option<MedianFigure>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn median_latency(ls: &[Latency]) -> Option<Latency> {
    if ls.is_empty() {
        return None;
    }
    let m = |f: fn(&Latency) -> f64| median(ls.iter().map(f).collect());
    Some(Latency {
        p50_ms: m(|l| l.p50_ms),
        p90_ms: m(|l| l.p90_ms),
        p99_ms: m(|l| l.p99_ms),
        p999_ms: m(|l| l.p999_ms),
        max_ms: m(|l| l.max_ms),
        mean_ms: m(|l| l.mean_ms),
    })
}

impl Contender {
    /// A contender with no runs yet.
    pub fn new(name: impl Into<String>, peer: Peer) -> Contender {
        Contender {
            name: name.into(),
            peer,
            runs: Vec::new(),
            failures: Vec::new(),
            median: None,
        }
    }

    /// Computes the medians.
    pub fn finish(&mut self) {
        if self.runs.is_empty() {
            self.median = None;
            return;
        }
        let eps: Vec<f64> = self.runs.iter().map(|r| r.events_per_s).collect();
        let mut extra_keys: Vec<&String> = self.runs.iter().flat_map(|r| r.extra.keys()).collect();
        extra_keys.sort();
        extra_keys.dedup();
        let extra = extra_keys
            .into_iter()
            .map(|k| {
                let vals: Vec<f64> = self
                    .runs
                    .iter()
                    .filter_map(|r| r.extra.get(k).copied())
                    .collect();
                (k.clone(), median(vals))
            })
            .collect();
        let lat: Vec<Latency> = self.runs.iter().filter_map(|r| r.latency).collect();
        let ok_lat: Vec<Latency> = self.runs.iter().filter_map(|r| r.ok_latency).collect();
        self.median = Some(MedianFigure {
            runs: self.runs.len(),
            events_per_s: median(eps.clone()),
            min_events_per_s: eps.iter().copied().fold(f64::INFINITY, f64::min),
            max_events_per_s: eps.iter().copied().fold(0.0, f64::max),
            ok_per_s: median(self.runs.iter().map(|r| r.ok_per_s).collect()),
            errors: self.runs.iter().map(|r| r.errors).sum(),
            latency: median_latency(&lat),
            ok_latency: median_latency(&ok_lat),
            extra,
        });
    }

    /// The run with index `run`, if it succeeded.
    pub fn run(&self, run: usize) -> Option<&RunFigure> {
        self.runs.iter().find(|r| r.run == run)
    }
}

/// A per-pair ratio of two contenders' figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratio {
    /// What it compares, for people.
    pub label: String,
    /// Numerator contender.
    pub numerator: String,
    /// Denominator contender.
    pub denominator: String,
    /// The figure compared (`events_per_s`, or an extra's name).
    pub metric: String,
    /// Ratio of each run pair.
    pub per_run: Vec<f64>,
    /// Median of `per_run`.
    pub median: f64,
}

/// One workload's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// `W1` … `W6`.
    pub id: String,
    /// What it is.
    pub title: String,
    /// Its shape as run (events, keys, batch, …).
    pub shape: String,
    /// The contenders, in the order they ran within each round.
    pub contenders: Vec<Contender>,
    /// Ratios.
    pub ratios: Vec<Ratio>,
    /// Notes (what could not be run, deviations from BENCH.md's shape).
    pub notes: Vec<String>,
}

impl WorkloadResult {
    /// The contender named `name`.
    pub fn contender(&self, name: &str) -> Option<&Contender> {
        self.contenders.iter().find(|c| c.name == name)
    }

    /// Adds the per-pair ratio `num / den` of `metric` (skipped when either
    /// side has no run).
    pub fn add_ratio(&mut self, label: &str, num: &str, den: &str, metric: &str) {
        let (Some(a), Some(b)) = (self.contender(num), self.contender(den)) else {
            return;
        };
        let get = |r: &RunFigure| -> Option<f64> {
            match metric {
                "events_per_s" => Some(r.events_per_s),
                "ok_per_s" => Some(r.ok_per_s),
                other => r.extra.get(other).copied(),
            }
        };
        let per_run: Vec<f64> = a
            .runs
            .iter()
            .filter_map(|ra| {
                let rb = b.run(ra.run)?;
                let (x, y) = (get(ra)?, get(rb)?);
                (y > 0.0).then(|| x / y)
            })
            .collect();
        if per_run.is_empty() {
            return;
        }
        self.ratios.push(Ratio {
            label: label.to_owned(),
            numerator: num.to_owned(),
            denominator: den.to_owned(),
            metric: metric.to_owned(),
            median: median(per_run.clone()),
            per_run,
        });
    }
}

/// The machine the figures come from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// `nproc`.
    pub nproc: usize,
    /// `/proc/cpuinfo` model name.
    pub cpu_model: String,
    /// `uname -r`.
    pub kernel: String,
    /// Memory, GiB.
    pub mem_total_gib: f64,
    /// `/proc/loadavg` when the bench started.
    pub loadavg_start: String,
    /// `/proc/loadavg` when it ended.
    pub loadavg_end: String,
    /// redis-server's version line, when used.
    pub redis_version: Option<String>,
    /// Python's version, when used.
    pub python_version: Option<String>,
}

impl Machine {
    /// Reads what it can from `/proc`.
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let mem_total_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel,
            mem_total_gib,
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
            redis_version: None,
            python_version: None,
        }
    }
}

/// `/proc/loadavg`'s three load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One BENCH.md target and the figure reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetCheck {
    /// Workload.
    pub workload: String,
    /// The target as BENCH.md states it.
    pub target: String,
    /// The figure reached.
    pub figure: String,
    /// Met, missed, or not measured in this run (`None`).
    pub met: Option<bool>,
}

/// Everything a bench run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResults {
    /// UTC start, `YYYY-MM-DDTHH:MM:SSZ`.
    pub started_at: String,
    /// Wall time of the whole bench.
    pub seconds: f64,
    /// The machine.
    pub machine: Machine,
    /// The settings the bench ran with.
    pub settings: serde_json::Value,
    /// Physical limits measured in the same run.
    pub limits: Option<Limits>,
    /// Per workload.
    pub workloads: Vec<WorkloadResult>,
    /// BENCH.md's targets with the figures reached.
    pub targets: Vec<TargetCheck>,
    /// General notes.
    pub notes: Vec<String>,
}

/// `12.3 M`, `456 k`, `789`.
pub fn si(v: f64) -> String {
    if !v.is_finite() {
        "—".to_owned()
    } else if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// A latency in ms with sensible precision.
pub fn ms(v: f64) -> String {
    if !v.is_finite() {
        "—".to_owned()
    } else if v < 1.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

fn lat_cells(l: Option<Latency>) -> [String; 4] {
    match l {
        Some(l) => [ms(l.p50_ms), ms(l.p99_ms), ms(l.p999_ms), ms(l.max_ms)],
        None => ["—".into(), "—".into(), "—".into(), "—".into()],
    }
}

fn extras_cell(m: &MedianFigure) -> String {
    m.extra
        .iter()
        .map(|(k, v)| {
            format!(
                "{k} {}",
                if v.abs() >= 1000.0 {
                    si(*v)
                } else {
                    format!("{v:.2}")
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table of one workload, Markdown.
fn workload_table(w: &WorkloadResult, out: &mut String) {
    let _ = writeln!(
        out,
        "| contender | runs | events/s (median) | min–max | ok/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | other |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for c in &w.contenders {
        match &c.median {
            Some(m) => {
                let [p50, p99, p999, max] = lat_cells(m.latency);
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {}–{} | {} | {p50} | {p99} | {p999} | {max} | {} | {} |",
                    c.name,
                    m.runs,
                    si(m.events_per_s),
                    si(m.min_events_per_s),
                    si(m.max_events_per_s),
                    si(m.ok_per_s),
                    m.errors,
                    extras_cell(m)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "| {} | 0 | — | — | — | — | — | — | — | — | failed: {} |",
                    c.name,
                    c.failures.join("; ")
                );
            }
        }
    }
}

/// `report.md`.
pub fn markdown(r: &BenchResults) -> String {
    let mut out = String::new();
    let m = &r.machine;
    let _ = writeln!(out, "# statecraft bench — {}\n", r.started_at);
    let _ = writeln!(
        out,
        "Machine: {} cores, {}, {:.1} GiB, kernel {}. Load average at start {}, at end {}.",
        m.nproc, m.cpu_model, m.mem_total_gib, m.kernel, m.loadavg_start, m.loadavg_end
    );
    if let Some(v) = &m.redis_version {
        let _ = writeln!(out, "Redis: {v}.");
    }
    if let Some(v) = &m.python_version {
        let _ = writeln!(out, "Python: {v}.");
    }
    let _ = writeln!(
        out,
        "\nSettings: `{}`. Wall time {:.0} s. Medians of runs; ratios are medians of per-run pairs measured side by side (A B A B).\n",
        r.settings, r.seconds
    );
    for n in &r.notes {
        let _ = writeln!(out, "- {n}");
    }
    if let Some(l) = &r.limits {
        let _ = writeln!(out, "\n## Physical limits (same machine, same run)\n");
        let _ = writeln!(out, "| measurement | figure |\n|---|---|");
        let _ = writeln!(
            out,
            "| fdatasync after a 4 KiB append | {:.0}/s, p50 {} ms, p99 {} ms |",
            l.fsync_4k.per_s,
            ms(l.fsync_4k.p50_ms),
            ms(l.fsync_4k.p99_ms)
        );
        let _ = writeln!(
            out,
            "| fdatasync after a 64 KiB append | {:.0}/s, {:.0} MB/s, p99 {} ms |",
            l.fsync_64k.per_s,
            l.fsync_64k.mb_per_s,
            ms(l.fsync_64k.p99_ms)
        );
        let _ = writeln!(
            out,
            "| loopback TCP, one connection | {:.2} GB/s |",
            l.loopback_bytes_per_s / 1e9
        );
        let _ = writeln!(
            out,
            "| FxHashMap<u64,u64> += 1, 1 M random keys, one thread | {} ops/s |",
            si(l.hashmap_ops_per_s)
        );
        let _ = writeln!(
            out,
            "| same through a channel in batches of 1,024 | {} ops/s |",
            si(l.hashmap_channel_ops_per_s)
        );
        let _ = writeln!(out, "\n(fsync probes in `{}`.)", l.fsync_dir);
    }
    for w in &r.workloads {
        let _ = writeln!(out, "\n## {} — {}\n\n{}\n", w.id, w.title, w.shape);
        workload_table(w, &mut out);
        if !w.ratios.is_empty() {
            let _ = writeln!(out);
            for ratio in &w.ratios {
                let _ = writeln!(
                    out,
                    "- **{}**: {:.2}× (per run: {})",
                    ratio.label,
                    ratio.median,
                    ratio
                        .per_run
                        .iter()
                        .map(|x| format!("{x:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        for n in &w.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    if !r.targets.is_empty() {
        let _ = writeln!(out, "\n## BENCH.md targets\n");
        let _ = writeln!(
            out,
            "| workload | target | reached | met |\n|---|---|---|---|"
        );
        for t in &r.targets {
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {met} |",
                t.workload, t.target, t.figure
            );
        }
    }
    let _ = writeln!(out, "\n![throughput and latency](chart.svg)");
    out
}

/// The terminal table (plain text).
pub fn table(r: &BenchResults) -> String {
    let mut out = String::new();
    if let Some(l) = &r.limits {
        let _ = writeln!(
            out,
            "limits: fdatasync after 4 KiB {:.0}/s (p50 {} ms, p99 {} ms); after 64 KiB {:.0}/s = {:.0} MB/s; \
             loopback TCP {:.2} GB/s; FxHashMap += 1 {} ops/s, through a channel {} ops/s",
            l.fsync_4k.per_s,
            ms(l.fsync_4k.p50_ms),
            ms(l.fsync_4k.p99_ms),
            l.fsync_64k.per_s,
            l.fsync_64k.mb_per_s,
            l.loopback_bytes_per_s / 1e9,
            si(l.hashmap_ops_per_s),
            si(l.hashmap_channel_ops_per_s)
        );
    }
    if r.workloads.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<4} {:<46} {:>4} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8}",
        "", "contender", "runs", "events/s", "ok/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"
    );
    for w in &r.workloads {
        for c in &w.contenders {
            match &c.median {
                Some(m) => {
                    let [p50, p99, p999, _] = lat_cells(m.latency);
                    let _ = writeln!(
                        out,
                        "{:<4} {:<46} {:>4} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8}",
                        w.id,
                        c.name,
                        m.runs,
                        si(m.events_per_s),
                        si(m.ok_per_s),
                        p50,
                        p99,
                        p999,
                        m.errors
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{:<4} {:<46} failed: {}",
                        w.id,
                        c.name,
                        c.failures.join("; ")
                    );
                }
            }
        }
        for ratio in &w.ratios {
            let _ = writeln!(out, "{:<4}   {}: {:.2}×", w.id, ratio.label, ratio.median);
        }
    }
    if r.targets.iter().any(|t| t.met.is_some()) {
        let _ = writeln!(out, "\ntargets (measured in this run):");
        for t in r.targets.iter().filter(|t| t.met.is_some()) {
            let met = match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            };
            let _ = writeln!(
                out,
                "  {:<4} {:<60} {:<40} {met}",
                t.workload, t.target, t.figure
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(run: usize, eps: f64) -> RunFigure {
        RunFigure {
            run,
            events_per_s: eps,
            ..RunFigure::default()
        }
    }

    #[test]
    fn medians_and_per_pair_ratios() {
        let mut a = Contender::new("a", Peer::Statecraft);
        a.runs = vec![run(0, 10.0), run(1, 30.0), run(2, 20.0)];
        let mut b = Contender::new("b", Peer::Redis);
        b.runs = vec![run(0, 5.0), run(1, 10.0), run(2, 20.0)];
        a.finish();
        b.finish();
        assert_eq!(a.median.as_ref().map(|m| m.events_per_s), Some(20.0));
        let mut w = WorkloadResult {
            id: "W1".into(),
            title: "t".into(),
            shape: "s".into(),
            contenders: vec![a, b],
            ratios: vec![],
            notes: vec![],
        };
        w.add_ratio("a/b", "a", "b", "events_per_s");
        // Pairs: 2, 3, 1 → median 2 (the ratio of medians would be 2 too,
        // but from different moments).
        assert_eq!(w.ratios[0].median, 2.0);
        assert_eq!(w.ratios[0].per_run, vec![2.0, 3.0, 1.0]);
        w.add_ratio("missing", "a", "nobody", "events_per_s");
        assert_eq!(w.ratios.len(), 1, "no ratio without a denominator");
    }

    #[test]
    fn numbers_format_for_people() {
        assert_eq!(si(12_345_678.0), "12.35 M");
        assert_eq!(si(65_400.0), "65 k");
        assert_eq!(ms(0.2234), "0.223");
        assert_eq!(ms(12.345), "12.35");
    }
}
