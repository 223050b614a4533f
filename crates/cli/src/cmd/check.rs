//! `statecraft check N [--json] [--workspace DIR] [-- CMD…]`: grades the
//! learner's program against lesson N's objectives.
//!
//! The program is started with CMD, or with the `command` of the workspace's
//! `.statecraft/workspace.toml` (after its `build` command, if any). Output is
//! one line per objective as it is graded — `PASS final_state  200/200 keys
//! equal  (target: all keys equal)` — with, on failure, the detail and the
//! lesson section to revisit; `--json` prints the whole report instead. The
//! exit status is 0 only when every objective passed. Every run is appended to
//! `.statecraft/journal.jsonl` (the coach reads it); a run where all pass is
//! recorded in `.statecraft/progress.json`.
//!
//! Invariant: stdout carries only the report (the build's output and warnings
//! go to stderr), so `--json` output is always parseable.

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::SystemTime;

use anyhow::{Context, bail};
use statecraft_learn::check::{CheckOptions, CheckReport, ObjectiveOutcome, run_lesson_with};
use statecraft_learn::lesson::{Lesson, load_lesson};
use statecraft_learn::workspace::{
    WorkspaceConfig, append_check_journal, read_config, record_pass,
};

/// Arguments of `statecraft check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The lesson number (1 for `lessons/001_basics.md`).
    #[arg(value_name = "N")]
    pub lesson: u32,
    /// Print the report as JSON: `{"lesson":N,"passed":bool,"objectives":[…]}`.
    #[arg(long)]
    pub json: bool,
    /// The learner's workspace: the program runs there, its `lessons/` and
    /// `.statecraft/` are read and written there.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub workspace: PathBuf,
    /// Seconds to wait for any single reply before calling the program stuck.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub reply_timeout: u64,
    /// The command that starts your program (default: `command` in
    /// `.statecraft/workspace.toml`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Runs `statecraft check`.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let workspace = args.workspace.as_path();
    if !workspace.is_dir() {
        bail!("workspace {} is not a directory", workspace.display());
    }
    let lesson = load_lesson(args.lesson, Some(workspace))
        .with_context(|| format!("loading lesson {}", args.lesson))?;
    let command = program_command(&args, workspace)?;
    let mut opts = CheckOptions::new(workspace);
    opts.reply_timeout = std::time::Duration::from_secs(args.reply_timeout.max(1));

    let style = Style::detect(args.json);
    if !args.json {
        println!(
            "lesson {}: {} — checking `{}`",
            lesson.number,
            lesson.title,
            command.join(" ")
        );
    }
    let report = run_lesson_with(&lesson, &command, &opts, &mut |outcome| {
        if !args.json {
            print_outcome(&lesson, outcome, style);
        }
    });
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(&report, style);
    }
    record(workspace, &report);
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// CMD, or the workspace's command (after running its build, if any).
fn program_command(args: &CheckArgs, workspace: &Path) -> anyhow::Result<Vec<String>> {
    if !args.command.is_empty() {
        return Ok(args.command.clone());
    }
    let config = read_config(workspace)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no command to start your program: pass it after `--` (statecraft check {n} -- python3 main.py), \
             or run `statecraft lessons init DIR --lang python|rust` to create a workspace whose \
             .statecraft/workspace.toml names it (looked in {dir})",
            n = args.lesson,
            dir = workspace.join(statecraft_learn::workspace::CONFIG_FILE).display()
        )
    })?;
    build(&config, workspace)?;
    Ok(config.command)
}

/// Runs the workspace's `build` command, its output on stderr.
fn build(config: &WorkspaceConfig, workspace: &Path) -> anyhow::Result<()> {
    let Some(build) = config.build.as_ref().filter(|b| !b.is_empty()) else {
        return Ok(());
    };
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stderr for the build")?;
    let status = Command::new(&build[0])
        .args(&build[1..])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
        .with_context(|| format!("running the build command `{}`", build.join(" ")))?;
    if !status.success() {
        bail!(
            "the build command `{}` failed ({status}); fix the build, then check again",
            build.join(" ")
        );
    }
    Ok(())
}

/// Terminal styling: colour only on a terminal without `NO_COLOR`.
#[derive(Debug, Clone, Copy)]
struct Style {
    color: bool,
}

impl Style {
    fn detect(json: bool) -> Style {
        Style {
            color: !json
                && std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

fn print_outcome(lesson: &Lesson, outcome: &ObjectiveOutcome, style: Style) {
    let mut out = std::io::stdout().lock();
    let mark = if outcome.passed {
        style.paint("32;1", "PASS")
    } else {
        style.paint("31;1", "FAIL")
    };
    let _ = writeln!(
        out,
        "{mark} {}  {}  (target: {})",
        outcome.id, outcome.figure, outcome.target
    );
    if !outcome.passed {
        if let Some(detail) = &outcome.detail {
            for line in detail.lines() {
                let _ = writeln!(out, "     {line}");
            }
        }
        if let Some(hint) = revisit(lesson, &outcome.id) {
            let _ = writeln!(out, "     {}", style.paint("33", &hint));
        }
    }
    let _ = out.flush();
}

/// `revisit: <concept title> (lesson N, section "<section>")`.
fn revisit(lesson: &Lesson, objective_id: &str) -> Option<String> {
    let objective = lesson.objective(objective_id)?;
    let concept = lesson.concept(&objective.concept)?;
    Some(format!(
        "revisit: {} (lesson {}, section \"{}\")",
        concept.title, lesson.number, concept.section
    ))
}

fn print_summary(report: &CheckReport, style: Style) {
    let passed = report.objectives.iter().filter(|o| o.passed).count();
    let total = report.objectives.len();
    let line = if report.passed {
        style.paint(
            "32;1",
            &format!("all {total} objectives of lesson {} pass", report.lesson),
        )
    } else {
        format!(
            "{passed}/{total} objectives pass; ask the coach: statecraft coach {} review",
            report.lesson
        )
    };
    println!("{line}");
}

/// Journal every run; record progress when all pass. A failure to record is a
/// warning: the grade stands.
fn record(workspace: &Path, report: &CheckReport) {
    let now = SystemTime::now();
    let failed = report.failed_ids();
    if let Err(e) = append_check_journal(workspace, report.lesson, report.passed, &failed, now) {
        eprintln!("warning: could not append to the journal: {e}");
    }
    if report.passed
        && let Err(e) = record_pass(workspace, report.lesson, now)
    {
        eprintln!("warning: could not record progress: {e}");
    }
}
