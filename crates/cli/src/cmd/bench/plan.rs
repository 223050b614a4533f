//! What the bench measures, as types: the workloads ([`Workload`]), their
//! contenders ([`Who`]), the per-pair ratios each workload reports
//! ([`RATIOS`]) and BENCH.md's targets ([`targets`]) with their grading.
//!
//! Invariant: ratios and targets refer to workloads and contenders by these
//! types, never by label; a contender's label is derived from its [`Who`]
//! in one place ([`Who::name`]), so renaming a label renames it everywhere
//! and cannot turn a target into "not measured". The tests below check that
//! every ratio and target refers to a contender its workload runs.

use statecraft_engine::AckMode;

use super::procs::RedisPersistence;
use super::report::{MedianFigure, Peer, TargetCheck, WorkloadResult, si};

/// One of BENCH.md's workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    /// Counters over the network.
    W1,
    /// Documents (merge) over the network.
    W2,
    /// Latency at half of W1's maximum.
    W3,
    /// Overload.
    W4,
    /// Recovery after `kill -9`.
    W5,
    /// In-process.
    W6,
}

impl Workload {
    /// Every workload, in the order the bench runs them.
    pub const ALL: [Workload; 6] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W4,
        Workload::W5,
        Workload::W6,
    ];

    /// `W1` … `W6` (the `--workloads` name and `results.json`'s `id`).
    pub fn id(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
            Workload::W5 => "W5",
            Workload::W6 => "W6",
        }
    }

    /// Its title in the report.
    pub fn title(self) -> &'static str {
        match self {
            Workload::W1 => "counters",
            Workload::W2 => "documents",
            Workload::W3 => "latency at 50 % of W1's maximum",
            Workload::W4 => "overload",
            Workload::W5 => "recovery",
            Workload::W6 => "in-process",
        }
    }

    /// `w1`, ` W3 ` … (case and surrounding blanks ignored).
    pub fn parse(s: &str) -> anyhow::Result<Workload> {
        let s = s.trim();
        Workload::ALL
            .into_iter()
            .find(|w| w.id().eq_ignore_ascii_case(s))
            .ok_or_else(|| anyhow::anyhow!("unknown workload `{s}` (W1..W6)"))
    }

    /// Every contender this workload runs when all peers are available, in
    /// the order they run within a round.
    pub fn contenders(self) -> &'static [Who] {
        use AckMode::{Applied, Durable};
        use RedisPersistence::{Always, EverySec};
        const NET: [Who; 4] = [
            Who::Tcp(Durable),
            Who::Tcp(Applied),
            Who::Redis(RedisPersistence::None),
            Who::Redis(Always),
        ];
        match self {
            Workload::W1 => &[
                Who::Tcp(AckMode::None),
                Who::Tcp(Applied),
                Who::Tcp(Durable),
                Who::Http(Durable),
                Who::Redis(RedisPersistence::None),
                Who::RedisBenchmark(RedisPersistence::None),
                Who::Redis(EverySec),
                Who::Redis(Always),
            ],
            Workload::W2 | Workload::W3 => &NET,
            Workload::W4 => &[
                Who::Overload(Overload::FixedReject),
                Who::Overload(Overload::AdaptiveReject),
                Who::Overload(Overload::FixedBlock),
            ],
            Workload::W5 => &[Who::RecoveryStatecraft, Who::RecoveryRedis],
            Workload::W6 => &[
                Who::InProc(AckMode::None),
                Who::InProc(Applied),
                Who::InProc(Durable),
                Who::PythonDrain,
                Who::PythonWaitFor,
            ],
        }
    }
}

/// W4's server variants (all TCP, ack=durable, small queues).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// Fixed capacity, `--overflow reject`.
    FixedReject,
    /// Adaptive capacity, `--overflow reject`.
    AdaptiveReject,
    /// Fixed capacity, `--overflow block` for 100 ms.
    FixedBlock,
}

impl Overload {
    /// A short tag for data dirs and logs.
    pub fn tag(self) -> &'static str {
        match self {
            Overload::FixedReject => "fixed-reject",
            Overload::AdaptiveReject => "adaptive-reject",
            Overload::FixedBlock => "fixed-block",
        }
    }

    /// The `serve` flags of this variant (beyond the queue sizes).
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Overload::FixedReject => &["--overflow", "reject"],
            Overload::AdaptiveReject => &[
                "--overflow",
                "reject",
                "--adaptive",
                "--target-wait-ms",
                "1",
                "--min-capacity",
                "512",
                "--max-capacity",
                "65536",
            ],
            Overload::FixedBlock => &["--overflow", "block", "--block-timeout-ms", "100"],
        }
    }
}

/// A contender: which system is measured and how it is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Statecraft over TCP with this ack mode.
    Tcp(AckMode),
    /// Statecraft over HTTP NDJSON with this ack mode.
    Http(AckMode),
    /// A Redis peer driven by our load generator.
    Redis(RedisPersistence),
    /// A Redis peer driven by `redis-benchmark` (its own client), for
    /// comparison with ours.
    RedisBenchmark(RedisPersistence),
    /// W4: a fresh Statecraft server with small queues.
    Overload(Overload),
    /// W5: Statecraft, durable, killed with `kill -9` and restarted.
    RecoveryStatecraft,
    /// W5: Redis with appendfsync always, killed and restarted.
    RecoveryRedis,
    /// W6: the engine through the library API.
    InProc(AckMode),
    /// W6: the Python asyncio peer, draining with `get_nowait`.
    PythonDrain,
    /// W6: the Python asyncio peer, `wait_for` per item (the textbook design).
    PythonWaitFor,
}

/// What a contender needs besides this binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing.
    Nothing,
    /// `redis-server`.
    Redis,
    /// `redis-server` and `redis-benchmark`.
    RedisBenchmark,
    /// The Python interpreter.
    Python,
}

impl Who {
    /// Its label in the results (`results.json`'s contender `name`).
    pub fn name(self) -> String {
        match self {
            Who::Tcp(a) => format!("statecraft tcp ack={a}"),
            Who::Http(a) => format!("statecraft http ack={a}"),
            Who::Redis(p) => format!("redis {}", p.label()),
            Who::RedisBenchmark(p) => format!("redis {} (redis-benchmark client)", p.label()),
            Who::Overload(Overload::FixedReject) => {
                "statecraft tcp durable, fixed capacity, reject".into()
            }
            Who::Overload(Overload::AdaptiveReject) => {
                "statecraft tcp durable, adaptive capacity, reject".into()
            }
            Who::Overload(Overload::FixedBlock) => {
                "statecraft tcp durable, fixed capacity, block 100 ms".into()
            }
            Who::RecoveryStatecraft => "statecraft (durable, kill -9)".into(),
            Who::RecoveryRedis => "redis aof always (kill -9)".into(),
            Who::InProc(a) => format!("statecraft in-process ack={a}"),
            Who::PythonDrain => "python asyncio, get_nowait drain (4 workers)".into(),
            Who::PythonWaitFor => "python asyncio, wait_for per item (4 workers)".into(),
        }
    }

    /// Which system it is.
    pub fn peer(self) -> Peer {
        match self {
            Who::Redis(_) | Who::RedisBenchmark(_) | Who::RecoveryRedis => Peer::Redis,
            Who::PythonDrain | Who::PythonWaitFor => Peer::Python,
            _ => Peer::Statecraft,
        }
    }

    /// What it needs to run.
    pub fn needs(self) -> Needs {
        match self {
            Who::Redis(_) | Who::RecoveryRedis => Needs::Redis,
            Who::RedisBenchmark(_) => Needs::RedisBenchmark,
            Who::PythonDrain | Who::PythonWaitFor => Needs::Python,
            _ => Needs::Nothing,
        }
    }
}

/// A per-pair ratio a workload reports: `num / den` of events/s (W5: of
/// `ready_ms`), labelled from its contenders ([`RatioDef::label`]).
#[derive(Debug, Clone, Copy)]
pub struct RatioDef {
    /// The workload.
    pub workload: Workload,
    /// Numerator.
    pub num: Who,
    /// Denominator.
    pub den: Who,
}

impl RatioDef {
    const fn new(workload: Workload, num: Who, den: Who) -> RatioDef {
        RatioDef { workload, num, den }
    }

    /// The figure compared (`events_per_s` or an extra's name).
    pub fn metric(&self) -> &'static str {
        match self.workload {
            Workload::W5 => "ready_ms",
            _ => "events_per_s",
        }
    }

    /// Its label in the report (`tcp ack=durable / redis aof always`).
    pub fn label(&self) -> String {
        match (self.num, self.den) {
            (Who::Redis(_), Who::RedisBenchmark(_)) => {
                "our redis client / redis-benchmark (same redis, same shape)".into()
            }
            (num, den) => format!("{} / {}", num.short(), den.short()),
        }
    }
}

impl Who {
    /// Its name in a ratio's label.
    fn short(self) -> String {
        match self {
            Who::Tcp(a) => format!("tcp ack={a}"),
            Who::Http(a) => format!("http ack={a}"),
            Who::InProc(a) => format!("ack={a}"),
            Who::RecoveryStatecraft => "ready time: statecraft".into(),
            Who::RecoveryRedis => "redis aof always".into(),
            Who::PythonWaitFor => "python wait_for (textbook)".into(),
            Who::PythonDrain => "python drain".into(),
            other => other.name(),
        }
    }
}

/// Every ratio the bench reports, in report order per workload.
pub const RATIOS: &[RatioDef] = {
    use AckMode::{Applied, Durable};
    use RedisPersistence::{Always, EverySec, None as NoPersistence};
    use Who::{Http, InProc, PythonDrain, PythonWaitFor, Redis, RedisBenchmark, Tcp};
    use Workload::{W1, W2, W5, W6};
    &[
        RatioDef::new(W1, Tcp(Applied), Redis(NoPersistence)),
        RatioDef::new(W1, Redis(NoPersistence), RedisBenchmark(NoPersistence)),
        RatioDef::new(W1, Tcp(Durable), Redis(NoPersistence)),
        RatioDef::new(W1, Tcp(Durable), Redis(EverySec)),
        RatioDef::new(W1, Tcp(Durable), Redis(Always)),
        RatioDef::new(W1, Http(Durable), Redis(Always)),
        RatioDef::new(W2, Tcp(Applied), Redis(NoPersistence)),
        RatioDef::new(W2, Tcp(Durable), Redis(Always)),
        RatioDef::new(W5, Who::RecoveryStatecraft, Who::RecoveryRedis),
        RatioDef::new(W6, InProc(Applied), PythonWaitFor),
        RatioDef::new(W6, InProc(Applied), PythonDrain),
        RatioDef::new(W6, InProc(Durable), PythonWaitFor),
        RatioDef::new(W6, InProc(Durable), PythonDrain),
    ]
};

/// Adds `w`'s ratios (those of [`RATIOS`] for its workload) to its results.
pub fn add_ratios(workload: Workload, w: &mut WorkloadResult) {
    for r in RATIOS.iter().filter(|r| r.workload == workload) {
        w.add_ratio(&r.label(), &r.num.name(), &r.den.name(), r.metric());
    }
}

/// What a target reads and how it is graded. The first [`Who`] is the
/// contender read in the target's workload.
#[derive(Debug, Clone, Copy)]
pub enum Measure {
    /// Median events/s ≥ the bound.
    Rate(Who, f64),
    /// The median per-pair ratio `num / den` of [`RATIOS`] ≥ the bound.
    Ratio(Who, Who, f64),
    /// Median latency p99 ≤ the first bound and p99.9 ≤ the second (ms).
    Latency(Who, f64, f64),
    /// W4: the server answered /healthz after the overload.
    StaysUp(Who),
    /// W4: RSS within a configured bound (reported; no total memory bound
    /// is configurable, so never graded).
    RssBound(Who),
    /// W4: admitted p99 ≤ the factor × the W3 p99 of the second contender.
    AdmittedP99(Who, Who, f64),
    /// W5: ready ≤ the bound (ms), graded only with ≥ the key count given.
    Ready(Who, f64, f64),
    /// W5: cold read p99 ≤ the bound (ms).
    ColdRead(Who, f64),
}

impl Measure {
    /// The contender read in the target's workload.
    fn who(self) -> Who {
        match self {
            Measure::Rate(w, _)
            | Measure::Ratio(w, _, _)
            | Measure::Latency(w, _, _)
            | Measure::StaysUp(w)
            | Measure::RssBound(w)
            | Measure::AdmittedP99(w, _, _)
            | Measure::Ready(w, _, _)
            | Measure::ColdRead(w, _) => w,
        }
    }
}

/// One of BENCH.md's targets.
#[derive(Debug, Clone)]
pub struct Target {
    /// The workload it is stated for.
    pub workload: Workload,
    /// The target as BENCH.md states it.
    pub text: String,
    /// What it reads.
    pub measure: Measure,
}

impl Target {
    /// The contenders this target reads, with the workload each is read in
    /// (checked by the tests against what each workload runs).
    #[cfg(test)]
    pub fn reads(&self) -> Vec<(Workload, Who)> {
        let mut out = vec![(self.workload, self.measure.who())];
        match self.measure {
            Measure::Ratio(_, den, _) => out.push((self.workload, den)),
            Measure::AdmittedP99(_, reference, _) => out.push((Workload::W3, reference)),
            _ => {}
        }
        out
    }
}

/// BENCH.md's targets other than W4's (those are per W4 contender, see
/// [`targets`]), in report order. One row each, hence not rustfmt'd.
#[rustfmt::skip]
const TABLE: &[(Workload, &str, Measure)] = {
    use AckMode::{Applied, Durable};
    use Measure::{ColdRead, Latency, Rate, Ratio, Ready};
    use RedisPersistence::{Always, None as NoPersistence};
    use Who::{Http, InProc, PythonDrain, PythonWaitFor, RecoveryStatecraft, Redis, Tcp};
    use Workload::{W1, W3, W5, W6};
    &[
        (W6, "in-process, ack=applied ≥ 10 M events/s", Rate(InProc(Applied), 10e6)),
        (W6, "in-process, ack=durable ≥ 3 M events/s", Rate(InProc(Durable), 3e6)),
        (W1, "TCP ack=applied ≥ 2 × Redis pipelined INCRBY, no persistence", Ratio(Tcp(Applied), Redis(NoPersistence), 2.0)),
        (W1, "TCP ack=durable ≥ 1 × Redis no persistence", Ratio(Tcp(Durable), Redis(NoPersistence), 1.0)),
        (W1, "TCP ack=durable ≥ 3 × Redis appendfsync always", Ratio(Tcp(Durable), Redis(Always), 3.0)),
        (W1, "HTTP NDJSON ack=durable ≥ 1 M events/s", Rate(Http(Durable), 1e6)),
        (W6, "≥ 100 × the textbook Python design (wait_for per item)", Ratio(InProc(Applied), PythonWaitFor, 100.0)),
        (W6, "≥ 10 × the draining Python design", Ratio(InProc(Applied), PythonDrain, 10.0)),
        (W3, "durable ack latency p99 ≤ 2 ms, p999 ≤ 5 ms", Latency(Tcp(Durable), 2.0, 5.0)),
        (W5, "ready ≤ 1 s with 10 M keys", Ready(RecoveryStatecraft, 1000.0, 10e6)),
        (W5, "cold read p99 ≤ 1 ms", ColdRead(RecoveryStatecraft, 1.0)),
    ]
};

/// BENCH.md's targets, in report order (W4's per W4 contender).
pub fn targets() -> Vec<Target> {
    let row = |&(workload, text, measure): &(Workload, &str, Measure)| Target {
        workload,
        text: text.to_owned(),
        measure,
    };
    let mut out: Vec<Target> = TABLE
        .iter()
        .filter(|r| r.0 != Workload::W5)
        .map(row)
        .collect();
    for &who in Workload::W4.contenders() {
        let name = who.name();
        let w4 = [
            ("process stays up", Measure::StaysUp(who)),
            (
                "RSS within the configured bound + 10 %",
                Measure::RssBound(who),
            ),
            (
                "admitted p99 ≤ 2 × W3's durable p99",
                Measure::AdmittedP99(who, Who::Tcp(AckMode::Durable), 2.0),
            ),
        ];
        out.extend(w4.into_iter().map(|(text, measure)| Target {
            workload: Workload::W4,
            text: format!("{name}: {text}"),
            measure,
        }));
    }
    out.extend(TABLE.iter().filter(|r| r.0 == Workload::W5).map(row));
    out
}

/// The median figure of `who` in workload `w`, if it ran.
fn median(ws: &[WorkloadResult], w: Workload, who: Who) -> Option<MedianFigure> {
    let name = who.name();
    ws.iter()
        .find(|r| r.id == w.id())?
        .contender(&name)?
        .median
        .clone()
}

/// Grades one target against this run's results: the figure reached (or
/// "not measured") and met / missed / not graded (`None`).
pub fn grade(t: &Target, ws: &[WorkloadResult]) -> TargetCheck {
    let (figure, met) = match t.measure {
        Measure::Ratio(num, den, min) => {
            let (num, den) = (num.name(), den.name());
            let v = ws
                .iter()
                .find(|r| r.id == t.workload.id())
                .and_then(|w| {
                    w.ratios
                        .iter()
                        .find(|r| r.numerator == num && r.denominator == den)
                })
                .map(|r| r.median);
            (v.map(|v| format!("{v:.2}×")), v.map(|v| v >= min))
        }
        m => match median(ws, t.workload, m.who()) {
            Some(fig) => grade_figure(m, &fig, ws),
            None => (None, None),
        },
    };
    TargetCheck {
        workload: t.workload.id().into(),
        target: t.text.clone(),
        figure: figure.unwrap_or_else(|| "not measured".into()),
        met,
    }
}

/// Grades a target other than a ratio on its contender's median figure.
fn grade_figure(
    m: Measure,
    fig: &MedianFigure,
    ws: &[WorkloadResult],
) -> (Option<String>, Option<bool>) {
    let x = |k: &str| fig.extra.get(k).copied().unwrap_or(f64::NAN);
    match m {
        Measure::Rate(_, min) => (
            Some(format!("{} events/s", si(fig.events_per_s))),
            Some(fig.events_per_s >= min),
        ),
        Measure::Latency(_, p99, p999) => (
            fig.latency
                .map(|l| format!("p99 {:.3} ms, p999 {:.3} ms", l.p99_ms, l.p999_ms)),
            fig.latency.map(|l| l.p99_ms <= p99 && l.p999_ms <= p999),
        ),
        Measure::StaysUp(_) => {
            let up = x("stayed_up") >= 1.0;
            (Some(if up { "stayed up" } else { "DOWN" }.into()), Some(up))
        }
        Measure::RssBound(_) => (
            Some(format!(
                "peak RSS {:.0} MiB (baseline {:.0} MiB + {:.0} MiB); queue bound {:.0} MiB; no total memory bound is configurable",
                x("peak_rss_mib"),
                x("baseline_rss_mib"),
                x("peak_rss_mib") - x("baseline_rss_mib"),
                x("queue_bound_mib")
            )),
            None,
        ),
        Measure::AdmittedP99(_, reference, factor) => {
            let p99 = fig.ok_latency.map_or(f64::NAN, |l| l.p99_ms);
            let w3 = median(ws, Workload::W3, reference)
                .and_then(|m| m.latency)
                .map(|l| l.p99_ms);
            (
                Some(format!(
                    "admitted p99 {p99:.3} ms vs {factor} × {} ms",
                    w3.map_or("?".into(), |v| format!("{v:.3}"))
                )),
                w3.map(|w3| p99 <= factor * w3),
            )
        }
        // The target is stated for `min_keys` keys: smaller runs are
        // reported, not graded.
        Measure::Ready(_, max_ms, min_keys) => (
            Some(format!(
                "ready {:.0} ms with {} keys",
                x("ready_ms"),
                x("keys")
            )),
            (x("keys") >= min_keys).then(|| x("ready_ms") <= max_ms),
        ),
        Measure::ColdRead(_, max_ms) => (
            Some(format!(
                "cold read p99 {:.3} ms (warm read p99 {:.3} ms: the HTTP round trip)",
                x("cold_read_p99_ms"),
                x("warm_read_p99_ms")
            )),
            Some(x("cold_read_p99_ms") <= max_ms),
        ),
        Measure::Ratio(..) => (None, None),
    }
}

/// BENCH.md's targets graded against this run's results.
pub fn grade_all(ws: &[WorkloadResult]) -> Vec<TargetCheck> {
    targets().iter().map(|t| grade(t, ws)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::bench::report::{Contender, RunFigure};
    use crate::cmd::load::recorder::Latency;

    fn runs_in(w: Workload, who: Who) -> bool {
        w.contenders().contains(&who)
    }

    #[test]
    fn every_target_reads_contenders_the_suite_measures() {
        for t in targets() {
            for (w, who) in t.reads() {
                assert!(
                    runs_in(w, who),
                    "`{}` reads {who:?}, not run in {w:?}",
                    t.text
                );
            }
            if let Measure::Ratio(num, den, _) = t.measure {
                let reported =
                    |r: &&RatioDef| r.workload == t.workload && (r.num, r.den) == (num, den);
                assert!(
                    RATIOS.iter().any(|r| reported(&r)),
                    "`{}`: no such ratio",
                    t.text
                );
            }
        }
    }

    #[test]
    fn every_ratio_pairs_contenders_of_its_workload() {
        for r in RATIOS {
            assert!(
                runs_in(r.workload, r.num) && runs_in(r.workload, r.den),
                "{}",
                r.label()
            );
        }
    }

    /// The labels results.json and report.md had before they were derived.
    #[test]
    fn ratio_labels_are_the_reported_ones() {
        let labels: Vec<String> = RATIOS.iter().map(RatioDef::label).collect();
        let expected = [
            "tcp ack=applied / redis no persistence",
            "our redis client / redis-benchmark (same redis, same shape)",
            "tcp ack=durable / redis no persistence",
            "tcp ack=durable / redis aof everysec",
            "tcp ack=durable / redis aof always",
            "http ack=durable / redis aof always",
            "tcp ack=applied / redis no persistence",
            "tcp ack=durable / redis aof always",
            "ready time: statecraft / redis aof always",
            "ack=applied / python wait_for (textbook)",
            "ack=applied / python drain",
            "ack=durable / python wait_for (textbook)",
            "ack=durable / python drain",
        ];
        assert_eq!(labels, expected);
    }

    #[test]
    fn names_and_labels_are_distinct_within_a_workload() {
        for w in Workload::ALL {
            let mut names: Vec<String> = w.contenders().iter().map(|c| c.name()).collect();
            let mut labels: Vec<String> = RATIOS
                .iter()
                .filter(|r| r.workload == w)
                .map(RatioDef::label)
                .collect();
            let (n, l) = (names.len(), labels.len());
            names.sort();
            names.dedup();
            labels.sort();
            labels.dedup();
            assert_eq!((names.len(), labels.len()), (n, l), "{w:?}");
        }
    }

    #[test]
    fn workload_names_parse_back() {
        for w in Workload::ALL {
            assert_eq!(Workload::parse(w.id()).ok(), Some(w));
            assert_eq!(Workload::parse(&w.id().to_lowercase()).ok(), Some(w));
        }
        assert!(Workload::parse("W7").is_err());
    }

    fn lat(p99_ms: f64, p999_ms: f64) -> Option<Latency> {
        let (p50_ms, mean_ms) = (p99_ms / 2.0, p99_ms / 2.0);
        let (p90_ms, max_ms) = (p99_ms, p999_ms);
        Some(Latency {
            p50_ms,
            p90_ms,
            p99_ms,
            p999_ms,
            max_ms,
            mean_ms,
        })
    }

    /// One contender's single run: events/s, latency and extras.
    fn run(who: Who, eps: f64, latency: Option<Latency>, extra: &[(&str, f64)]) -> Contender {
        let extra = extra.iter().map(|&(k, v)| (k.to_owned(), v)).collect();
        let fig = RunFigure {
            events: 1,
            seconds: 1.0,
            events_per_s: eps,
            ok_per_s: eps,
            latency,
            ok_latency: latency,
            extra,
            ..RunFigure::default()
        };
        let mut c = Contender::new(who.name(), who.peer());
        c.runs.push(fig);
        c.finish();
        c
    }

    fn result(w: Workload, contenders: Vec<Contender>) -> WorkloadResult {
        let (id, title) = (w.id().into(), w.title().into());
        let (shape, ratios, notes) = (String::new(), Vec::new(), Vec::new());
        let mut r = WorkloadResult {
            id,
            title,
            shape,
            contenders,
            ratios,
            notes,
        };
        add_ratios(w, &mut r);
        r
    }

    /// The grade (met, figure) of the target stated as `text`.
    fn graded<'a>(checks: &'a [TargetCheck], text: &str) -> (Option<bool>, &'a str) {
        let c = checks.iter().find(|c| c.target == text);
        c.map(|c| (c.met, c.figure.as_str()))
            .unwrap_or_else(|| panic!("no `{text}`"))
    }

    #[test]
    fn targets_are_graded_met_missed_or_not_measured() {
        use AckMode::{Applied, Durable};
        let w1 = vec![
            run(Who::Tcp(Applied), 3e6, None, &[]),
            run(Who::Tcp(Durable), 0.5e6, None, &[]),
            run(Who::Redis(RedisPersistence::None), 1e6, None, &[]),
        ];
        let w3 = vec![run(Who::Tcp(Durable), 1e5, lat(1.5, 6.0), &[])];
        let w6 = vec![
            run(Who::InProc(Applied), 12e6, None, &[]),
            run(Who::InProc(Durable), 2e6, None, &[]),
        ];
        let ws = [
            result(Workload::W1, w1),
            result(Workload::W3, w3),
            result(Workload::W6, w6),
        ];
        let checks = grade_all(&ws);
        assert_eq!(checks.len(), targets().len());
        let tcp_applied = "TCP ack=applied ≥ 2 × Redis pipelined INCRBY, no persistence";
        assert_eq!(graded(&checks, tcp_applied), (Some(true), "3.00×"));
        for (text, met) in [
            ("TCP ack=durable ≥ 1 × Redis no persistence", false),
            ("in-process, ack=applied ≥ 10 M events/s", true),
            ("in-process, ack=durable ≥ 3 M events/s", false),
            // p99 met, p999 missed: missed.
            ("durable ack latency p99 ≤ 2 ms, p999 ≤ 5 ms", false),
        ] {
            assert_eq!(graded(&checks, text).0, Some(met), "{text}");
        }
        // Redis aof always, HTTP, the Python peers and W5 did not run.
        for text in [
            "TCP ack=durable ≥ 3 × Redis appendfsync always",
            "HTTP NDJSON ack=durable ≥ 1 M events/s",
            "≥ 10 × the draining Python design",
            "ready ≤ 1 s with 10 M keys",
        ] {
            assert_eq!(graded(&checks, text), (None, "not measured"), "{text}");
        }
        // W4 did not run: each of its targets is listed, not measured.
        let w4: Vec<_> = checks.iter().filter(|c| c.workload == "W4").collect();
        assert_eq!(w4.len(), 3 * Workload::W4.contenders().len());
        assert!(
            w4.iter()
                .all(|c| c.met.is_none() && c.figure == "not measured")
        );
    }

    #[test]
    fn w4_and_w5_targets_grade_their_extras() {
        let who = Who::Overload(Overload::AdaptiveReject);
        let w4 = vec![run(who, 1e6, lat(3.0, 4.0), &[("stayed_up", 1.0)])];
        let w5_extra = [("keys", 2e5), ("ready_ms", 10.0), ("cold_read_p99_ms", 2.0)];
        let w5 = vec![run(Who::RecoveryStatecraft, 1e6, None, &w5_extra)];
        let w3 = vec![run(Who::Tcp(AckMode::Durable), 1e5, lat(1.0, 2.0), &[])];
        let ws = [
            result(Workload::W4, w4),
            result(Workload::W5, w5),
            result(Workload::W3, w3),
        ];
        let checks = grade_all(&ws);
        let name = who.name();
        assert_eq!(
            graded(&checks, &format!("{name}: process stays up")).0,
            Some(true)
        );
        let (met, figure) = graded(
            &checks,
            &format!("{name}: RSS within the configured bound + 10 %"),
        );
        assert!(met.is_none() && figure.starts_with("peak RSS"), "{figure}");
        // 3 ms > 2 × 1 ms.
        let p99 = graded(
            &checks,
            &format!("{name}: admitted p99 ≤ 2 × W3's durable p99"),
        );
        assert_eq!(p99.0, Some(false));
        // Fewer keys than the target is stated for: reported, not graded.
        let (met, figure) = graded(&checks, "ready ≤ 1 s with 10 M keys");
        assert!(
            met.is_none() && figure.starts_with("ready 10 ms"),
            "{figure}"
        );
        assert_eq!(graded(&checks, "cold read p99 ≤ 1 ms").0, Some(false));
    }
}
