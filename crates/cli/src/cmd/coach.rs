//! `statecraft coach N [question | review]`: the mentor of the learning path.
//!
//! This file only wires the command line to `statecraft-coach`: it loads the
//! lesson (the workspace's `lessons/` first, then the built-in copy), runs the
//! lesson's checks for `review`, prepares the session, answers offline or with
//! the configured LLM (falling back offline, in one line, on any failure),
//! prints Markdown for a terminal, plain text when piped, or JSON, and records
//! the answer in the workspace journal. The clock can be moved with the hidden
//! `--now UNIX_SECS` (or `STATECRAFT_COACH_NOW`), which is how calibration is
//! tested.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use statecraft_coach::journal::{CheckEntry, Journal, JournalEntry};
use statecraft_coach::llm::{self, LlmConfig};
use statecraft_coach::render::{Style, render};
use statecraft_coach::workspace::WorkspaceSettings;
use statecraft_coach::{Ask, CheckFigure, LessonMaterial, ReviewChecks, Session, history};
use statecraft_learn::check::{CheckOptions, run_lesson_with};
use statecraft_learn::lesson::Lesson;

/// Arguments of `statecraft coach`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  statecraft coach 1 \"why do I lose increments with two workers?\"\n  \
                        statecraft coach 2 review\n  statecraft coach 1 --history"
)]
pub struct CoachArgs {
    /// The lesson number.
    pub lesson: u32,
    /// Your question (quote it), or `review` to have your code and check results looked at.
    #[arg(trailing_var_arg = true)]
    pub question: Vec<String>,
    /// The learner's workspace (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Print the answer as JSON (sections, concept, level, kind, sources).
    #[arg(long)]
    pub json: bool,
    /// List what was asked and given on this lesson, then exit.
    #[arg(long)]
    pub history: bool,
    /// Never call an LLM, even when one is configured.
    #[arg(long)]
    pub offline: bool,
    /// The clock, in unix seconds (for tests and demos).
    #[arg(
        long,
        hide = true,
        env = "STATECRAFT_COACH_NOW",
        value_name = "UNIX_SECS"
    )]
    pub now: Option<u64>,
}

/// Runs `statecraft coach`.
pub fn run(args: CoachArgs) -> anyhow::Result<ExitCode> {
    let workspace = match &args.workspace {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("reading the current directory")?,
    };
    anyhow::ensure!(
        workspace.is_dir(),
        "workspace {} is not a directory",
        workspace.display()
    );
    // The loader's error names every path it tried.
    let lesson = statecraft_learn::lesson::load_lesson(args.lesson, Some(&workspace))?;

    if args.history {
        let journal = Journal::read(&workspace)?;
        let text = if args.json {
            history::to_json(&journal, args.lesson)
        } else {
            render(&history::to_text(&journal, args.lesson), Style::detect())
        };
        print_out(&text)?;
        return Ok(ExitCode::SUCCESS);
    }

    let ask = Ask::from_words(&args.question)?;
    let now = args.now.unwrap_or_else(unix_now);
    let checks = match ask {
        Ask::Review => run_checks(&workspace, &lesson, now),
        Ask::Question(_) => ReviewChecks::NotRun,
    };
    let material = LessonMaterial::from_lesson(&lesson);
    let mut session = Session::prepare(material, &workspace, ask, checks, now)?;

    let llm_config = if args.offline {
        Ok(None)
    } else {
        LlmConfig::from_env(&workspace)
    };
    let style = if args.json {
        Style::Plain
    } else {
        Style::detect()
    };
    let engine = match llm_config {
        Ok(None) => {
            print_offline(&session, args.json)?;
            "offline"
        }
        Err(e) => {
            session.answer.notice = Some(e.notice());
            if !args.json {
                print_out(&format!("{}\n\n", e.notice()))?;
            }
            print_offline(&session, args.json)?;
            "offline"
        }
        Ok(Some(cfg)) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let answered = if args.json {
                let answered = runtime.block_on(llm::answer_quietly(&mut session, &cfg));
                print_out(&format!("{}\n", session.answer.to_json()))?;
                answered
            } else {
                let mut stdout = std::io::stdout();
                runtime
                    .block_on(llm::answer_with_fallback(
                        &mut session,
                        &cfg,
                        style,
                        &mut stdout,
                    ))
                    .context("writing the answer")?
            };
            match answered {
                llm::Answered::Llm => "llm",
                llm::Answered::OfflineFallback => "offline",
            }
        }
    };
    session.record(engine)?;
    Ok(ExitCode::SUCCESS)
}

fn print_offline(session: &Session, json: bool) -> anyhow::Result<()> {
    let text = if json {
        format!("{}\n", session.answer.to_json())
    } else {
        render(&session.answer.to_markdown(), Style::detect())
    };
    print_out(&text)
}

fn print_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs lesson `lesson`'s checks on the workspace's program for `review`, and
/// makes sure the run is in the journal (the coach's calibration reads it).
fn run_checks(workspace: &Path, lesson: &Lesson, now: u64) -> ReviewChecks {
    let settings = match WorkspaceSettings::read(workspace) {
        Ok(s) => s,
        Err(e) => return ReviewChecks::Unavailable(e.to_string()),
    };
    if settings.command.is_empty() {
        return ReviewChecks::Unavailable(
            "no `command` in .statecraft/workspace.toml, so I do not know how to start your program \
             (run `statecraft check N -- <command>` yourself)"
                .into(),
        );
    }
    let checks_before = count_checks(workspace, lesson.number);
    eprintln!(
        "Running lesson {}'s checks on `{}` …",
        lesson.number,
        settings.command_line()
    );
    let opts = CheckOptions::new(workspace);
    let report = run_lesson_with(lesson, &settings.command, &opts, &mut |o| {
        eprintln!(
            "  {} {} — {} (target {})",
            if o.passed { "pass" } else { "FAIL" },
            o.id,
            o.figure,
            o.target
        );
    });
    let figures: Vec<CheckFigure> = report
        .objectives
        .iter()
        .map(|o| CheckFigure {
            objective: o.id.clone(),
            passed: o.passed,
            figure: o.figure.clone(),
            target: o.target.clone(),
        })
        .collect();
    if count_checks(workspace, lesson.number) == checks_before {
        record_check(workspace, lesson.number, &figures, now);
    }
    ReviewChecks::Ran(figures)
}

fn count_checks(workspace: &Path, lesson: u32) -> usize {
    Journal::read(workspace).map_or(0, |j| j.checks(lesson).count())
}

/// Appends the run to the journal (when the checker did not record it itself).
fn record_check(workspace: &Path, lesson: u32, figures: &[CheckFigure], now: u64) {
    let failed: Vec<String> = figures
        .iter()
        .filter(|f| !f.passed)
        .map(|f| f.objective.clone())
        .collect();
    let entry = JournalEntry::Check(CheckEntry {
        lesson,
        passed: failed.is_empty(),
        time: now,
        failed,
    });
    if let Err(e) = Journal::read(workspace).and_then(|mut j| j.append(entry)) {
        eprintln!("warning: could not record the check run: {e}");
    }
}
