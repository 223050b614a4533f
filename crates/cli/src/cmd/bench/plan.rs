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

/// A per-pair ratio a workload reports.
#[derive(Debug, Clone, Copy)]
pub struct RatioDef {
    /// The workload.
    pub workload: Workload,
    /// Its label in the report.
    pub label: &'static str,
    /// Numerator.
    pub num: Who,
    /// Denominator.
    pub den: Who,
    /// The figure compared (`events_per_s` or an extra's name).
    pub metric: &'static str,
}

const fn ratio(workload: Workload, label: &'static str, num: Who, den: Who) -> RatioDef {
    RatioDef {
        workload,
        label,
        num,
        den,
        metric: "events_per_s",
    }
}

/// Every ratio the bench reports, in report order per workload.
pub const RATIOS: &[RatioDef] = {
    use AckMode::{Applied, Durable};
    use RedisPersistence::{Always, EverySec, None as NoPersistence};
    use Workload::{W1, W2, W6};
    &[
        ratio(
            W1,
            "tcp ack=applied / redis no persistence",
            Who::Tcp(Applied),
            Who::Redis(NoPersistence),
        ),
        ratio(
            W1,
            "our redis client / redis-benchmark (same redis, same shape)",
            Who::Redis(NoPersistence),
            Who::RedisBenchmark(NoPersistence),
        ),
        ratio(
            W1,
            "tcp ack=durable / redis no persistence",
            Who::Tcp(Durable),
            Who::Redis(NoPersistence),
        ),
        ratio(
            W1,
            "tcp ack=durable / redis aof everysec",
            Who::Tcp(Durable),
            Who::Redis(EverySec),
        ),
        ratio(
            W1,
            "tcp ack=durable / redis aof always",
            Who::Tcp(Durable),
            Who::Redis(Always),
        ),
        ratio(
            W1,
            "http ack=durable / redis aof always",
            Who::Http(Durable),
            Who::Redis(Always),
        ),
        ratio(
            W2,
            "tcp ack=applied / redis no persistence",
            Who::Tcp(Applied),
            Who::Redis(NoPersistence),
        ),
        ratio(
            W2,
            "tcp ack=durable / redis aof always",
            Who::Tcp(Durable),
            Who::Redis(Always),
        ),
        RatioDef {
            workload: Workload::W5,
            label: "ready time: statecraft / redis aof always",
            num: Who::RecoveryStatecraft,
            den: Who::RecoveryRedis,
            metric: "ready_ms",
        },
        ratio(
            W6,
            "ack=applied / python wait_for (textbook)",
            Who::InProc(Applied),
            Who::PythonWaitFor,
        ),
        ratio(
            W6,
            "ack=applied / python drain",
            Who::InProc(Applied),
            Who::PythonDrain,
        ),
        ratio(
            W6,
            "ack=durable / python wait_for (textbook)",
            Who::InProc(Durable),
            Who::PythonWaitFor,
        ),
        ratio(
            W6,
            "ack=durable / python drain",
            Who::InProc(Durable),
            Who::PythonDrain,
        ),
    ]
};

/// Adds `w`'s ratios (those of [`RATIOS`] for its workload) to its results.
pub fn add_ratios(workload: Workload, w: &mut WorkloadResult) {
    for r in RATIOS.iter().filter(|r| r.workload == workload) {
        w.add_ratio(r.label, &r.num.name(), &r.den.name(), r.metric);
    }
}

/// What a target reads and how it is graded.
#[derive(Debug, Clone, Copy)]
pub enum Measure {
    /// Median events/s of a contender ≥ `min`.
    Rate {
        /// The contender.
        who: Who,
        /// The bound.
        min: f64,
    },
    /// The median per-pair ratio `num / den` ≥ `min` (a ratio of [`RATIOS`]).
    Ratio {
        /// Numerator.
        num: Who,
        /// Denominator.
        den: Who,
        /// The bound.
        min: f64,
    },
    /// Median latency p99 ≤ `p99_ms` and p99.9 ≤ `p999_ms`.
    Latency {
        /// The contender.
        who: Who,
        /// p99 bound.
        p99_ms: f64,
        /// p99.9 bound.
        p999_ms: f64,
    },
    /// W4: the server answered /healthz after the overload.
    StaysUp(Who),
    /// W4: RSS within a configured bound (reported; no total memory bound is
    /// configurable, so never graded).
    RssBound(Who),
    /// W4: admitted p99 ≤ `factor` × the W3 p99 of `reference`.
    AdmittedP99 {
        /// The W4 contender.
        who: Who,
        /// The W3 contender whose p99 is the reference.
        reference: Who,
        /// The bound, as a multiple of the reference.
        factor: f64,
    },
    /// W5: ready ≤ `max_ms` after restart, graded only at ≥ `min_keys` keys.
    Ready {
        /// The contender.
        who: Who,
        /// The bound.
        max_ms: f64,
        /// The key count the target is stated for.
        min_keys: f64,
    },
    /// W5: cold read p99 ≤ `max_ms`.
    ColdRead {
        /// The contender.
        who: Who,
        /// The bound.
        max_ms: f64,
    },
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
        let w = self.workload;
        match self.measure {
            Measure::Rate { who, .. }
            | Measure::Latency { who, .. }
            | Measure::StaysUp(who)
            | Measure::RssBound(who)
            | Measure::Ready { who, .. }
            | Measure::ColdRead { who, .. } => vec![(w, who)],
            Measure::Ratio { num, den, .. } => vec![(w, num), (w, den)],
            Measure::AdmittedP99 { who, reference, .. } => {
                vec![(w, who), (Workload::W3, reference)]
            }
        }
    }
}

/// BENCH.md's targets, in report order.
pub fn targets() -> Vec<Target> {
    use AckMode::{Applied, Durable};
    use RedisPersistence::{Always, None as NoPersistence};
    let t = |workload: Workload, text: &str, measure: Measure| Target {
        workload,
        text: text.to_owned(),
        measure,
    };
    let mut out = vec![
        t(
            Workload::W6,
            "in-process, ack=applied ≥ 10 M events/s",
            Measure::Rate {
                who: Who::InProc(Applied),
                min: 10e6,
            },
        ),
        t(
            Workload::W6,
            "in-process, ack=durable ≥ 3 M events/s",
            Measure::Rate {
                who: Who::InProc(Durable),
                min: 3e6,
            },
        ),
        t(
            Workload::W1,
            "TCP ack=applied ≥ 2 × Redis pipelined INCRBY, no persistence",
            Measure::Ratio {
                num: Who::Tcp(Applied),
                den: Who::Redis(NoPersistence),
                min: 2.0,
            },
        ),
        t(
            Workload::W1,
            "TCP ack=durable ≥ 1 × Redis no persistence",
            Measure::Ratio {
                num: Who::Tcp(Durable),
                den: Who::Redis(NoPersistence),
                min: 1.0,
            },
        ),
        t(
            Workload::W1,
            "TCP ack=durable ≥ 3 × Redis appendfsync always",
            Measure::Ratio {
                num: Who::Tcp(Durable),
                den: Who::Redis(Always),
                min: 3.0,
            },
        ),
        t(
            Workload::W1,
            "HTTP NDJSON ack=durable ≥ 1 M events/s",
            Measure::Rate {
                who: Who::Http(Durable),
                min: 1e6,
            },
        ),
        t(
            Workload::W6,
            "≥ 100 × the textbook Python design (wait_for per item)",
            Measure::Ratio {
                num: Who::InProc(Applied),
                den: Who::PythonWaitFor,
                min: 100.0,
            },
        ),
        t(
            Workload::W6,
            "≥ 10 × the draining Python design",
            Measure::Ratio {
                num: Who::InProc(Applied),
                den: Who::PythonDrain,
                min: 10.0,
            },
        ),
        t(
            Workload::W3,
            "durable ack latency p99 ≤ 2 ms, p999 ≤ 5 ms",
            Measure::Latency {
                who: Who::Tcp(Durable),
                p99_ms: 2.0,
                p999_ms: 5.0,
            },
        ),
    ];
    for &who in Workload::W4.contenders() {
        let name = who.name();
        out.push(t(
            Workload::W4,
            &format!("{name}: process stays up"),
            Measure::StaysUp(who),
        ));
        out.push(t(
            Workload::W4,
            &format!("{name}: RSS within the configured bound + 10 %"),
            Measure::RssBound(who),
        ));
        out.push(t(
            Workload::W4,
            &format!("{name}: admitted p99 ≤ 2 × W3's durable p99"),
            Measure::AdmittedP99 {
                who,
                reference: Who::Tcp(Durable),
                factor: 2.0,
            },
        ));
    }
    out.push(t(
        Workload::W5,
        "ready ≤ 1 s with 10 M keys",
        Measure::Ready {
            who: Who::RecoveryStatecraft,
            max_ms: 1000.0,
            min_keys: 10e6,
        },
    ));
    out.push(t(
        Workload::W5,
        "cold read p99 ≤ 1 ms",
        Measure::ColdRead {
            who: Who::RecoveryStatecraft,
            max_ms: 1.0,
        },
    ));
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
    let at_least = |v: Option<f64>, min: f64| v.map(|v| v >= min);
    let (figure, met): (Option<String>, Option<bool>) = match t.measure {
        Measure::Rate { who, min } => {
            let v = median(ws, t.workload, who).map(|m| m.events_per_s);
            (v.map(|v| format!("{} events/s", si(v))), at_least(v, min))
        }
        Measure::Ratio { num, den, min } => {
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
            (v.map(|v| format!("{v:.2}×")), at_least(v, min))
        }
        Measure::Latency {
            who,
            p99_ms,
            p999_ms,
        } => {
            let l = median(ws, t.workload, who).and_then(|m| m.latency);
            (
                l.map(|l| format!("p99 {:.3} ms, p999 {:.3} ms", l.p99_ms, l.p999_ms)),
                l.map(|l| l.p99_ms <= p99_ms && l.p999_ms <= p999_ms),
            )
        }
        Measure::StaysUp(who) => match median(ws, t.workload, who) {
            Some(m) => {
                let up = m.extra.get("stayed_up").copied().unwrap_or(0.0) >= 1.0;
                (
                    Some(if up { "stayed up" } else { "DOWN" }.to_owned()),
                    Some(up),
                )
            }
            None => (None, None),
        },
        Measure::RssBound(who) => {
            let figure = median(ws, t.workload, who).map(|m| {
                let extra = |k: &str| m.extra.get(k).copied().unwrap_or(f64::NAN);
                format!(
                    "peak RSS {:.0} MiB (baseline {:.0} MiB + {:.0} MiB); queue bound {:.0} MiB; no total memory bound is configurable",
                    extra("peak_rss_mib"),
                    extra("baseline_rss_mib"),
                    extra("peak_rss_mib") - extra("baseline_rss_mib"),
                    extra("queue_bound_mib")
                )
            });
            (figure, None)
        }
        Measure::AdmittedP99 {
            who,
            reference,
            factor,
        } => match median(ws, t.workload, who) {
            Some(m) => {
                let p99 = m.ok_latency.map_or(f64::NAN, |l| l.p99_ms);
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
            None => (None, None),
        },
        Measure::Ready {
            who,
            max_ms,
            min_keys,
        } => match median(ws, t.workload, who) {
            Some(m) => {
                let x = |k: &str| m.extra.get(k).copied().unwrap_or(f64::NAN);
                // The target is stated for `min_keys` keys: smaller runs
                // are reported, not graded.
                (
                    Some(format!(
                        "ready {:.0} ms with {} keys",
                        x("ready_ms"),
                        x("keys")
                    )),
                    (x("keys") >= min_keys).then(|| x("ready_ms") <= max_ms),
                )
            }
            None => (None, None),
        },
        Measure::ColdRead { who, max_ms } => match median(ws, t.workload, who) {
            Some(m) => {
                let x = |k: &str| m.extra.get(k).copied().unwrap_or(f64::NAN);
                (
                    Some(format!(
                        "cold read p99 {:.3} ms (warm read p99 {:.3} ms: the HTTP round trip)",
                        x("cold_read_p99_ms"),
                        x("warm_read_p99_ms")
                    )),
                    Some(x("cold_read_p99_ms") <= max_ms),
                )
            }
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
                    "target `{}` reads {who:?} in {w:?}, which {w:?} does not run",
                    t.text
                );
            }
            if let Measure::Ratio { num, den, .. } = t.measure {
                assert!(
                    RATIOS
                        .iter()
                        .any(|r| r.workload == t.workload && r.num == num && r.den == den),
                    "target `{}` reads a ratio {num:?}/{den:?} that {:?} does not report",
                    t.text,
                    t.workload
                );
            }
        }
    }

    #[test]
    fn every_ratio_pairs_contenders_of_its_workload() {
        for r in RATIOS {
            assert!(runs_in(r.workload, r.num), "{}", r.label);
            assert!(runs_in(r.workload, r.den), "{}", r.label);
        }
    }

    #[test]
    fn labels_are_distinct_within_a_workload() {
        for w in Workload::ALL {
            let mut names: Vec<String> = w.contenders().iter().map(|c| c.name()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), w.contenders().len(), "{w:?}");
            let mut labels: Vec<&str> = RATIOS
                .iter()
                .filter(|r| r.workload == w)
                .map(|r| r.label)
                .collect();
            let n = labels.len();
            labels.sort_unstable();
            labels.dedup();
            assert_eq!(labels.len(), n, "{w:?}");
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

    fn figure(run: usize, eps: f64, latency: Option<Latency>) -> RunFigure {
        RunFigure {
            run,
            events: 1,
            seconds: 1.0,
            events_per_s: eps,
            ok_per_s: eps,
            latency,
            ok_latency: latency,
            ..RunFigure::default()
        }
    }

    fn result(w: Workload, contenders: Vec<(Who, RunFigure)>) -> WorkloadResult {
        let mut r = WorkloadResult {
            id: w.id().into(),
            title: w.title().into(),
            shape: String::new(),
            contenders: contenders
                .into_iter()
                .map(|(who, fig)| {
                    let mut c = Contender::new(who.name(), who.peer());
                    c.runs.push(fig);
                    c.finish();
                    c
                })
                .collect(),
            ratios: Vec::new(),
            notes: Vec::new(),
        };
        add_ratios(w, &mut r);
        r
    }

    fn check<'a>(checks: &'a [TargetCheck], text: &str) -> &'a TargetCheck {
        checks
            .iter()
            .find(|c| c.target == text)
            .unwrap_or_else(|| panic!("no target `{text}`"))
    }

    fn lat(p99_ms: f64, p999_ms: f64) -> Latency {
        Latency {
            p50_ms: p99_ms / 2.0,
            p90_ms: p99_ms,
            p99_ms,
            p999_ms,
            max_ms: p999_ms,
            mean_ms: p99_ms / 2.0,
        }
    }

    #[test]
    fn targets_are_graded_met_missed_or_not_measured() {
        use AckMode::{Applied, Durable};
        let ws = vec![
            result(
                Workload::W1,
                vec![
                    (Who::Tcp(Applied), figure(0, 3e6, None)),
                    (Who::Tcp(Durable), figure(0, 0.5e6, None)),
                    (Who::Redis(RedisPersistence::None), figure(0, 1e6, None)),
                    // Redis aof always and HTTP did not run.
                ],
            ),
            result(
                Workload::W3,
                vec![(Who::Tcp(Durable), figure(0, 1e5, Some(lat(1.5, 6.0))))],
            ),
            result(
                Workload::W6,
                vec![
                    (Who::InProc(Applied), figure(0, 12e6, None)),
                    (Who::InProc(Durable), figure(0, 2e6, None)),
                ],
            ),
        ];
        let checks = grade_all(&ws);
        assert_eq!(checks.len(), targets().len());

        let c = check(
            &checks,
            "TCP ack=applied ≥ 2 × Redis pipelined INCRBY, no persistence",
        );
        assert_eq!((c.met, c.figure.as_str()), (Some(true), "3.00×"));
        let c = check(&checks, "TCP ack=durable ≥ 1 × Redis no persistence");
        assert_eq!(c.met, Some(false));
        for text in [
            "TCP ack=durable ≥ 3 × Redis appendfsync always",
            "HTTP NDJSON ack=durable ≥ 1 M events/s",
            "≥ 10 × the draining Python design",
            "ready ≤ 1 s with 10 M keys",
        ] {
            let c = check(&checks, text);
            assert_eq!((c.met, c.figure.as_str()), (None, "not measured"), "{text}");
        }
        assert_eq!(
            check(&checks, "in-process, ack=applied ≥ 10 M events/s").met,
            Some(true)
        );
        assert_eq!(
            check(&checks, "in-process, ack=durable ≥ 3 M events/s").met,
            Some(false)
        );
        // p99 met, p999 missed: missed.
        assert_eq!(
            check(&checks, "durable ack latency p99 ≤ 2 ms, p999 ≤ 5 ms").met,
            Some(false)
        );
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
        let mut w4 = figure(0, 1e6, Some(lat(3.0, 4.0)));
        w4.extra.insert("stayed_up".into(), 1.0);
        let mut w5 = figure(0, 1e6, None);
        w5.extra.insert("keys".into(), 200_000.0);
        w5.extra.insert("ready_ms".into(), 10.0);
        w5.extra.insert("cold_read_p99_ms".into(), 2.0);
        let ws = vec![
            result(Workload::W4, vec![(who, w4)]),
            result(Workload::W5, vec![(Who::RecoveryStatecraft, w5)]),
            result(
                Workload::W3,
                vec![(
                    Who::Tcp(AckMode::Durable),
                    figure(0, 1e5, Some(lat(1.0, 2.0))),
                )],
            ),
        ];
        let checks = grade_all(&ws);
        let name = who.name();
        assert_eq!(
            check(&checks, &format!("{name}: process stays up")).met,
            Some(true)
        );
        let rss = check(
            &checks,
            &format!("{name}: RSS within the configured bound + 10 %"),
        );
        assert!(rss.met.is_none() && rss.figure.starts_with("peak RSS"));
        // 3 ms > 2 × 1 ms.
        assert_eq!(
            check(
                &checks,
                &format!("{name}: admitted p99 ≤ 2 × W3's durable p99")
            )
            .met,
            Some(false)
        );
        // Fewer keys than the target is stated for: reported, not graded.
        let ready = check(&checks, "ready ≤ 1 s with 10 M keys");
        assert!(ready.met.is_none() && ready.figure.starts_with("ready 10 ms"));
        assert_eq!(check(&checks, "cold read p99 ≤ 1 ms").met, Some(false));
    }
}
