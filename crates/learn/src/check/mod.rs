//! Black-box checks: drive a learner's program through the pipe protocol and
//! grade each objective of a lesson with a measured figure against a target.
//!
//! Layout: [`harness`] starts the program and speaks the protocol; [`model`] is
//! the reference state (a plain `HashMap`) and the event streams; one file per
//! lesson group holds its checks (`basics` lesson 1, `batching` 2,
//! `backpressure` 3, `parallel` 4, `durability` 5, `observability` 6,
//! `adaptive` 7, `scale_out` 8, `production` 9). [`CATALOGUE`] lists every
//! check id with what it measures and its target (the table of
//! `docs/lesson-format.md`, which is the contract).
//!
//! Invariants: every check starts its own program (or programs) with only the
//! settings it documents, in a fresh data directory it removes afterwards, and
//! is bounded in time (a hanging program turns into a failed objective with a
//! message, never a hung checker). Checks that share one scenario (the overload
//! run of lesson 3, the observed run of lesson 6, the load step of lesson 7)
//! run it once per lesson check and grade it separately. A check never passes
//! on an error.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod harness;
pub mod model;

mod adaptive;
mod backpressure;
mod basics;
mod batching;
mod durability;
mod observability;
mod parallel;
mod production;
mod scale_out;

use crate::lesson::Lesson;
use harness::{HarnessError, ProgramSpec};
use model::Rng;
pub use parallel::MACHINE_BUSY;

/// How to run the checks.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The directory the learner's program runs in (its workspace).
    pub workspace: PathBuf,
    /// How long to wait for any single reply before calling the program stuck.
    pub reply_timeout: Duration,
    /// Seed of every pseudo-random choice (keys, kill instants), for reproducible runs.
    pub seed: u64,
}

impl CheckOptions {
    /// Options for a program that runs in `workspace`, with the defaults:
    /// a 5 s reply timeout and a fixed seed.
    pub fn new(workspace: impl Into<PathBuf>) -> CheckOptions {
        CheckOptions {
            workspace: workspace.into(),
            reply_timeout: Duration::from_secs(5),
            seed: 0x5eed_c0de,
        }
    }
}

/// The graded result of one objective.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectiveOutcome {
    /// The objective's id in the lesson.
    pub id: String,
    /// The check that graded it.
    pub check: String,
    /// Whether the measured figure meets the target.
    pub passed: bool,
    /// What was measured, for humans (`200/200 keys equal`).
    pub figure: String,
    /// What passing means (`all keys equal`).
    pub target: String,
    /// Why it failed, or what else is worth knowing (the first mismatch, stderr).
    pub detail: Option<String>,
}

/// The graded results of one lesson.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The lesson number.
    pub lesson: u32,
    /// `true` when every objective passed.
    pub passed: bool,
    /// One outcome per objective, in the lesson's order.
    pub objectives: Vec<ObjectiveOutcome>,
}

impl CheckReport {
    /// The ids of the objectives that failed.
    pub fn failed_ids(&self) -> Vec<String> {
        self.objectives
            .iter()
            .filter(|o| !o.passed)
            .map(|o| o.id.clone())
            .collect()
    }

    /// The outcome of the objective (or check) with this id.
    pub fn outcome(&self, id: &str) -> Option<&ObjectiveOutcome> {
        self.objectives
            .iter()
            .find(|o| o.id == id)
            .or_else(|| self.objectives.iter().find(|o| o.check == id))
    }
}

/// One entry of the check catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSpec {
    /// The check id objectives name.
    pub id: &'static str,
    /// The lesson that introduces it (0 = every lesson).
    pub lesson: u32,
    /// What it measures.
    pub measures: &'static str,
    /// What passing means.
    pub target: &'static str,
}

/// Every check, as in `docs/lesson-format.md`.
pub const CATALOGUE: &[CheckSpec] = &[
    CheckSpec {
        id: "protocol",
        lesson: 0,
        measures: "starts, acks every event once, answers get/sync, exits 0 at EOF",
        target: "exact",
    },
    CheckSpec {
        id: "final_state",
        lesson: 1,
        measures: "final state vs a reference model (set/incr, 10,000 events, 200 keys)",
        target: "all keys equal",
    },
    CheckSpec {
        id: "per_key_order",
        lesson: 1,
        measures: "WORKERS=4, APPLY_DELAY_US=10000: 3 rounds of 3 adjacent sets on each of 48 keys (order after each round, a key's j-th event acked no sooner than j × delay, concurrency = events × delay / round time); then 500 sets per key on 20 keys, interleaved",
        target: "all keys in order, 0 early acks, concurrency ≥ 1.5×",
    },
    CheckSpec {
        id: "throughput",
        lesson: 1,
        measures: "events/s from first send to last ack, 20,000 incr",
        target: "≥ 1,000 events/s",
    },
    CheckSpec {
        id: "deadline",
        lesson: 2,
        measures: "ack latency of 5 lone events and of a trickle (one event every 40 ms), MAX_WAIT_MS=100, MAX_BATCH=20; ping round trip while a batch is collected (MAX_WAIT_MS=300)",
        target: "worst ≤ 200 ms (100 ms + 100 ms slack); trickle ≥ 1.5 events per ack group; median ping ≤ 100 ms",
    },
    CheckSpec {
        id: "batching",
        lesson: 2,
        measures: "batches inferred from ack groups: a burst of 100 events (APPLY_DELAY_US=10000, MAX_BATCH=20) and the trickle",
        target: "< 25 groups, none > 2 × MAX_BATCH, trickle ≥ 1.5 events per group",
    },
    CheckSpec {
        id: "exactly_one_reply",
        lesson: 3,
        measures: "slow consumer, OVERFLOW=reject, capacity 50, 2,000 events: replies per id",
        target: "exactly one each, some nacks",
    },
    CheckSpec {
        id: "bounded_depth",
        lesson: 3,
        measures: "stats.max_queue_depth under that load; OVERFLOW=block with a stalled consumer: events read and unanswered, seen from outside",
        target: "≤ 50 (QUEUE_CAPACITY); ≤ capacity + one batch",
    },
    CheckSpec {
        id: "bounded_memory",
        lesson: 3,
        measures: "RSS growth over the program's own baseline while up to 24,000 sets of 4 KiB are offered to a stalled consumer (OVERFLOW=reject, capacity 50)",
        target: "growth ≤ max(32 MiB, 4 × (capacity + batch) × event size)",
    },
    CheckSpec {
        id: "ack_after_apply",
        lesson: 3,
        measures: "APPLY_DELAY_US=100000, WORKERS=1: time from sending a lone event to its ack (soonest of 4)",
        target: "≥ 80 ms (0.8 × the configured apply delay)",
    },
    CheckSpec {
        id: "parallel_order",
        lesson: 4,
        measures: "per-key order of sets with WORKERS=4",
        target: "all keys",
    },
    CheckSpec {
        id: "parallel_speedup",
        lesson: 4,
        measures: "CPU-heavy apply (APPLY_MODE=cpu), WORKERS=4 vs WORKERS=1",
        target: "speed-up ≥ 1.5× (≥ 0.8 × cores on fewer than 2 cores)",
    },
    CheckSpec {
        id: "responsive",
        lesson: 4,
        measures: "ping round trip while CPU-heavy apply runs",
        target: "p99 ≤ 250 ms",
    },
    CheckSpec {
        id: "durable_acks",
        lesson: 5,
        measures: "kill -9 at 3 instants, restart on DATA_DIR, unacked ids re-sent: effects of acked events",
        target: "0 lost, 0 doubled",
    },
    CheckSpec {
        id: "recovery",
        lesson: 5,
        measures: "state after a clean exit and restart on DATA_DIR",
        target: "all keys equal",
    },
    CheckSpec {
        id: "fsync_before_ack",
        lesson: 5,
        measures: "under strace -f: 20 lone events, each awaited; sync calls (fsync, fdatasync, …) between one ack and the next",
        target: "every ack preceded by a sync since the previous ack (not graded without strace)",
    },
    CheckSpec {
        id: "stage_timings",
        lesson: 6,
        measures: "stats.stages_ms: queue_wait, apply, …",
        target: "present, non-negative, apply ≈ injected delay, each ≤ wall",
    },
    CheckSpec {
        id: "percentiles",
        lesson: 6,
        measures: "stats.queue_wait_p50_ms and queue_wait_p95_ms",
        target: "present, 0 ≤ p50 ≤ p95",
    },
    CheckSpec {
        id: "adaptive_capacity",
        lesson: 7,
        measures: "stats.capacity over a load step with a slow consumer",
        target: "changes, stays in [MIN_CAPACITY, MAX_CAPACITY]",
    },
    CheckSpec {
        id: "p95_near_target",
        lesson: 7,
        measures: "stats.queue_wait_p95_ms at the end of the step, TARGET_WAIT_MS=20",
        target: "≤ 40 ms (2 × target)",
    },
    CheckSpec {
        id: "offsets_exactly_once",
        lesson: 8,
        measures: "events with seq; kill -9, restart, resend from an earlier seq",
        target: "0 lost, 0 doubled",
    },
    CheckSpec {
        id: "partition_ownership",
        lesson: 8,
        measures: "PARTITIONS=4, OWNED=0,2: replies per partition",
        target: "not_owner nacks for partitions 1 and 3, acks for 0 and 2",
    },
    CheckSpec {
        id: "graceful_sigterm",
        lesson: 9,
        measures: "SIGTERM mid-stream: replies to events sent before it, exit status",
        target: "every event replied, exit 0",
    },
    CheckSpec {
        id: "bad_input",
        lesson: 9,
        measures: "malformed lines, missing fields, huge keys: replies, keeps serving",
        target: "nack invalid (or error without id) each, good events still applied",
    },
    CheckSpec {
        id: "config_errors",
        lesson: 9,
        measures: "STATECRAFT_WORKERS=abc: exit status and stderr",
        target: "exits non-zero, stderr names STATECRAFT_WORKERS",
    },
];

/// The catalogue entry of a check id.
pub fn lookup(check: &str) -> Option<&'static CheckSpec> {
    CATALOGUE.iter().find(|c| c.id == check)
}

/// An objective to grade: its id in the lesson and the check that proves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectiveRef {
    /// The objective's id.
    pub id: String,
    /// The catalogue check id.
    pub check: String,
}

/// Grades every objective of `lesson` against the program that `cmd` starts
/// (run in `opts.workspace`), each by its `check` id. An unknown check id is a
/// failed objective with a message, never a panic.
pub fn run_lesson(lesson: &Lesson, cmd: &[String], opts: &CheckOptions) -> CheckReport {
    run_lesson_with(lesson, cmd, opts, &mut |_| {})
}

/// [`run_lesson`], calling `on_outcome` as each objective is graded (for live output).
pub fn run_lesson_with(
    lesson: &Lesson,
    cmd: &[String],
    opts: &CheckOptions,
    on_outcome: &mut dyn FnMut(&ObjectiveOutcome),
) -> CheckReport {
    let objectives: Vec<ObjectiveRef> = lesson
        .objectives
        .iter()
        .map(|o| ObjectiveRef {
            id: o.id.clone(),
            check: o.check.clone(),
        })
        .collect();
    run_objectives(lesson.number, &objectives, cmd, opts, on_outcome)
}

/// Grades `objectives` of lesson `lesson` against the program started by `cmd`,
/// calling `on_outcome` as each one is graded (for live output).
pub fn run_objectives(
    lesson: u32,
    objectives: &[ObjectiveRef],
    cmd: &[String],
    opts: &CheckOptions,
    on_outcome: &mut dyn FnMut(&ObjectiveOutcome),
) -> CheckReport {
    let mut ctx = Ctx::new(lesson, cmd, opts);
    let mut outcomes = Vec::with_capacity(objectives.len());
    for objective in objectives {
        let outcome = grade(&mut ctx, objective);
        on_outcome(&outcome);
        outcomes.push(outcome);
    }
    CheckReport {
        lesson,
        passed: outcomes.iter().all(|o| o.passed),
        objectives: outcomes,
    }
}

fn grade(ctx: &mut Ctx<'_>, objective: &ObjectiveRef) -> ObjectiveOutcome {
    let Some(spec) = lookup(&objective.check) else {
        let known: Vec<&str> = CATALOGUE.iter().map(|c| c.id).collect();
        return ObjectiveOutcome {
            id: objective.id.clone(),
            check: objective.check.clone(),
            passed: false,
            figure: "not graded".into(),
            target: "a known check".into(),
            detail: Some(format!(
                "unknown check id `{}`; known checks: {}",
                objective.check,
                known.join(", ")
            )),
        };
    };
    if let Some(reason) = &ctx.cannot_start {
        return ObjectiveOutcome {
            id: objective.id.clone(),
            check: objective.check.clone(),
            passed: false,
            figure: "not graded".into(),
            target: spec.target.to_string(),
            detail: Some(format!("the program could not start: {reason}")),
        };
    }
    let measured = match spec.id {
        "protocol" => basics::protocol(ctx),
        "final_state" => basics::final_state(ctx),
        "per_key_order" => basics::per_key_order(ctx),
        "throughput" => basics::throughput(ctx),
        "deadline" => batching::deadline(ctx),
        "batching" => batching::batching(ctx),
        "exactly_one_reply" => backpressure::exactly_one_reply(ctx),
        "bounded_depth" => backpressure::bounded_depth(ctx),
        "bounded_memory" => backpressure::bounded_memory(ctx),
        "ack_after_apply" => backpressure::ack_after_apply(ctx),
        "parallel_order" => parallel::parallel_order(ctx),
        "parallel_speedup" => parallel::parallel_speedup(ctx),
        "responsive" => parallel::responsive(ctx),
        "durable_acks" => durability::durable_acks(ctx),
        "recovery" => durability::recovery(ctx),
        "fsync_before_ack" => durability::fsync_before_ack(ctx),
        "stage_timings" => observability::stage_timings(ctx),
        "percentiles" => observability::percentiles(ctx),
        "adaptive_capacity" => adaptive::adaptive_capacity(ctx),
        "p95_near_target" => adaptive::p95_near_target(ctx),
        "offsets_exactly_once" => scale_out::offsets_exactly_once(ctx),
        "partition_ownership" => scale_out::partition_ownership(ctx),
        "graceful_sigterm" => production::graceful_sigterm(ctx),
        "bad_input" => production::bad_input(ctx),
        "config_errors" => production::config_errors(ctx),
        other => Err(CheckFailure::Internal(format!(
            "check `{other}` is in the catalogue but has no implementation"
        ))),
    };
    let (passed, figure, detail) = match measured {
        Ok(v) => (v.passed, v.figure, v.detail),
        Err(CheckFailure::Harness(e)) => {
            if let HarnessError::Spawn { .. } = e {
                // Every later scenario would fail the same way: say it once.
                ctx.cannot_start = Some(e.to_string());
            }
            (false, e.short().to_string(), Some(e.to_string()))
        }
        Err(CheckFailure::Internal(msg)) => (false, "not graded".into(), Some(msg)),
    };
    ObjectiveOutcome {
        id: objective.id.clone(),
        check: objective.check.clone(),
        passed,
        figure,
        target: spec.target.to_string(),
        detail,
    }
}

impl HarnessError {
    /// A few words for the figure column.
    pub fn short(&self) -> &'static str {
        match self {
            HarnessError::Spawn { .. } => "could not start",
            HarnessError::NoReply { .. } => "no reply",
            HarnessError::Exited { .. } => "program exited",
            HarnessError::NotJson { .. } => "non-JSON on stdout",
            HarnessError::UnknownReply { .. } => "unexpected reply",
            HarnessError::NotReading { .. } => "stopped reading stdin",
            HarnessError::StdinBroken { .. } => "stdin closed",
            HarnessError::Io { .. } => "checker I/O error",
        }
    }
}

/// What a check measured.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub passed: bool,
    pub figure: String,
    pub detail: Option<String>,
}

impl Verdict {
    pub fn pass(figure: impl Into<String>) -> Verdict {
        Verdict {
            passed: true,
            figure: figure.into(),
            detail: None,
        }
    }

    pub fn fail(figure: impl Into<String>, detail: impl Into<String>) -> Verdict {
        Verdict {
            passed: false,
            figure: figure.into(),
            detail: Some(detail.into()),
        }
    }

    /// Pass or fail on `ok`, with the detail kept only for a failure.
    pub fn judge(ok: bool, figure: impl Into<String>, detail: impl Into<String>) -> Verdict {
        if ok {
            Verdict::pass(figure)
        } else {
            Verdict::fail(figure, detail)
        }
    }
}

/// Why a check could not measure.
#[derive(Debug)]
pub(crate) enum CheckFailure {
    Harness(HarnessError),
    Internal(String),
}

impl From<HarnessError> for CheckFailure {
    fn from(e: HarnessError) -> Self {
        CheckFailure::Harness(e)
    }
}

pub(crate) type Measured = Result<Verdict, CheckFailure>;

/// A scenario result shared by several checks; failures are kept as text.
pub(crate) type Shared<T> = Option<Result<T, String>>;

/// What every check of one lesson run shares.
pub(crate) struct Ctx<'a> {
    /// The lesson being checked (lessons ≥ 5 run with a `DATA_DIR`).
    pub lesson: u32,
    cmd: &'a [String],
    opts: &'a CheckOptions,
    scratch: Scratch,
    dirs: usize,
    /// Set once the program failed to start; later objectives are not graded.
    cannot_start: Option<String>,
    /// Lesson 3's overload run.
    pub overload: Shared<backpressure::OverloadRun>,
    /// Lesson 3's stalled-consumer run under `OVERFLOW=block`.
    pub stalled_block: Shared<backpressure::MemoryRun>,
    /// Lesson 6's observed run.
    pub observed: Shared<observability::ObservedRun>,
    /// Lesson 7's load step.
    pub step: Shared<adaptive::StepRun>,
}

impl<'a> Ctx<'a> {
    fn new(lesson: u32, cmd: &'a [String], opts: &'a CheckOptions) -> Ctx<'a> {
        Ctx {
            lesson,
            cmd,
            opts,
            scratch: Scratch::new(),
            dirs: 0,
            cannot_start: None,
            overload: None,
            stalled_block: None,
            observed: None,
            step: None,
        }
    }

    /// A fresh, empty directory for one program's `STATECRAFT_DATA_DIR`.
    pub fn data_dir(&mut self) -> Result<PathBuf, CheckFailure> {
        self.dirs += 1;
        let dir = self.scratch.path.join(format!("data-{}", self.dirs));
        std::fs::create_dir_all(&dir).map_err(|source| {
            CheckFailure::Harness(HarnessError::Io {
                doing: format!("creating {}", dir.display()),
                source,
            })
        })?;
        Ok(dir)
    }

    /// The base program spec: the command, the workspace, and from lesson 5 on
    /// a fresh `STATECRAFT_DATA_DIR`.
    pub fn spec(&mut self) -> Result<ProgramSpec, CheckFailure> {
        let mut spec = ProgramSpec {
            cmd: self.cmd.to_vec(),
            dir: self.opts.workspace.clone(),
            env: Vec::new(),
            reply_timeout: self.opts.reply_timeout,
        };
        if self.lesson >= 5 {
            let dir = self.data_dir()?;
            spec.set("STATECRAFT_DATA_DIR", dir.display());
        }
        Ok(spec)
    }

    /// A generator seeded from the run's seed and a per-check salt.
    pub fn rng(&self, salt: u64) -> Rng {
        Rng::new(self.opts.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

/// The run's scratch directory (data dirs); removed when the run ends.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "statecraft-check-{}-{n}-{nanos}",
            std::process::id()
        ));
        Scratch { path }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Data dirs of killed programs are the checker's to clean up.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Waits `d` (a check's own pacing, never a substitute for awaiting a reply).
pub(crate) fn pause(d: Duration) {
    std::thread::sleep(d);
}

/// Milliseconds between two instants, as f64.
pub(crate) fn ms_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// The value at quantile `q` (0..=1) of `samples` (nearest rank); 0 when empty.
pub(crate) fn quantile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A number with thousands separators (`20,000`).
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Whether `dir` looks usable as a workspace (exists and is a directory).
pub fn workspace_exists(dir: &Path) -> bool {
    dir.is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&s, 0.5), 50.0);
        assert_eq!(quantile(&s, 0.99), 99.0);
        assert_eq!(quantile(&[], 0.9), 0.0);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(20_000), "20,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn catalogue_ids_are_unique() {
        for (i, a) in CATALOGUE.iter().enumerate() {
            assert!(CATALOGUE[i + 1..].iter().all(|b| b.id != a.id), "{}", a.id);
        }
    }

    #[test]
    fn unknown_check_fails_clearly() {
        let opts = CheckOptions::new(".");
        let report = run_objectives(
            1,
            &[ObjectiveRef {
                id: "x".into(),
                check: "no_such_check".into(),
            }],
            &["true".to_string()],
            &opts,
            &mut |_| {},
        );
        assert!(!report.passed);
        let detail = report.objectives[0].detail.clone().unwrap_or_default();
        assert!(
            detail.contains("unknown check id `no_such_check`"),
            "{detail}"
        );
    }

    #[test]
    fn a_program_that_cannot_start_is_reported_once() {
        let opts = CheckOptions::new(".");
        let objectives: Vec<ObjectiveRef> = ["protocol", "final_state"]
            .iter()
            .map(|c| ObjectiveRef {
                id: c.to_string(),
                check: c.to_string(),
            })
            .collect();
        let report = run_objectives(
            1,
            &objectives,
            &["/nonexistent/statecraft-learner".to_string()],
            &opts,
            &mut |_| {},
        );
        assert!(!report.passed);
        assert_eq!(report.objectives[0].figure, "could not start");
        assert_eq!(report.objectives[1].figure, "not graded");
    }
}
