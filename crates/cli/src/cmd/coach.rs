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
use statecraft_coach::journal::Journal;
use statecraft_coach::llm::{self, LlmConfig};
use statecraft_coach::render::{Style, render};
use statecraft_coach::{Ask, CheckFigure, LessonMaterial, ReviewChecks, Session, history};
use statecraft_learn::check::{CheckOptions, run_lesson_with};
use statecraft_learn::lesson::Lesson;
use statecraft_learn::workspace::{
    CONFIG_FILE, WorkspaceConfig, append_check_journal, read_config,
};

/// Arguments of `statecraft coach`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  statecraft coach 1 \"why do I lose increments with two workers?\"
  statecraft coach 2 review
  statecraft coach 1 --history

Offline by default. An LLM coach answers when one is configured, in the
environment (STATECRAFT_LLM_URL, STATECRAFT_LLM_MODEL, STATECRAFT_LLM_API_KEY,
STATECRAFT_LLM_PROVIDER=openai|anthropic, STATECRAFT_LLM_TIMEOUT_SECS,
STATECRAFT_LLM_CONNECT_TIMEOUT_SECS) or in an [llm] table of
<workspace>/.statecraft/config.toml or ~/.config/statecraft/config.toml.
Any LLM failure falls back to the offline coach, and says so in one line.")]
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
    let env = |key: &str| std::env::var(key).ok();
    let mut stdout = std::io::stdout();
    let mut io = Io {
        out: &mut stdout,
        style: Style::detect(),
        env: &env,
        user_config: user_config_path(),
    };
    run_with(args, &mut io)
}

/// Where the answer goes and what the environment says: the process's own in
/// [`run`], a recording writer and a fake environment in tests.
struct Io<'a> {
    /// The answer's destination.
    out: &'a mut (dyn Write + Send),
    /// Terminal or plain rendering (`--json` is always plain).
    style: Style,
    /// Environment lookup (the LLM settings).
    env: &'a dyn Fn(&str) -> Option<String>,
    /// `~/.config/statecraft/config.toml` (or under `$XDG_CONFIG_HOME`).
    user_config: Option<PathBuf>,
}

impl Io<'_> {
    fn put(&mut self, text: &str) -> anyhow::Result<()> {
        match self
            .out
            .write_all(text.as_bytes())
            .and_then(|_| self.out.flush())
        {
            // A closed pipe (`| head`) is the reader's choice, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.context("writing the answer"),
        }
    }
}

fn user_config_path() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|c| c.join("statecraft").join("config.toml"))
}

fn run_with(args: CoachArgs, io: &mut Io<'_>) -> anyhow::Result<ExitCode> {
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
    let style = if args.json { Style::Plain } else { io.style };

    if args.history {
        let journal = Journal::read(&workspace)?;
        let text = if args.json {
            format!("{}\n", history::to_json(&journal, args.lesson))
        } else {
            render(&history::to_text(&journal, args.lesson), style)
        };
        io.put(&text)?;
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
        LlmConfig::resolve(io.env, &workspace, io.user_config.as_deref())
    };
    let offline_text = |session: &Session| {
        if args.json {
            format!("{}\n", session.answer.to_json())
        } else {
            render(&session.answer.to_markdown(), style)
        }
    };
    let engine = match llm_config {
        Ok(None) => {
            io.put(&offline_text(&session))?;
            "offline"
        }
        Err(e) => {
            // A broken LLM configuration never stops the coach: one line, then offline.
            session.answer.notice = Some(e.notice());
            if !args.json {
                io.put(&format!("{}\n\n", e.notice()))?;
            }
            io.put(&offline_text(&session))?;
            "offline"
        }
        Ok(Some(cfg)) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let answered = if args.json {
                let answered = runtime.block_on(llm::answer_quietly(&mut session, &cfg));
                io.put(&format!("{}\n", session.answer.to_json()))?;
                answered
            } else {
                runtime
                    .block_on(llm::answer_with_fallback(&mut session, &cfg, style, io.out))
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs lesson `lesson`'s checks on the workspace's program for `review` (after
/// its `build` command, as `statecraft check` does), and makes sure the run is in
/// the journal — the coach's calibration reads it. Anything that stops the
/// checks becomes `ReviewChecks::Unavailable`, shown in the answer.
fn run_checks(workspace: &Path, lesson: &Lesson, now: u64) -> ReviewChecks {
    let config = match read_config(workspace) {
        Ok(Some(config)) => config,
        Ok(None) => {
            return ReviewChecks::Unavailable(format!(
                "there is no {} naming the command that starts your program \
                 (run `statecraft check {} -- <command>` yourself)",
                workspace.join(CONFIG_FILE).display(),
                lesson.number
            ));
        }
        Err(e) => return ReviewChecks::Unavailable(e.to_string()),
    };
    if let Err(why) = build(&config, workspace) {
        return ReviewChecks::Unavailable(why);
    }
    let checks_before = count_checks(workspace, lesson.number);
    eprintln!(
        "Running lesson {}'s checks on `{}` …",
        lesson.number,
        config.command.join(" ")
    );
    let opts = CheckOptions::new(workspace);
    let report = run_lesson_with(lesson, &config.command, &opts, &mut |o| {
        eprintln!(
            "  {} {} — {} (target {})",
            if o.passed { "pass" } else { "FAIL" },
            o.id,
            o.figure,
            o.target
        );
    });
    // The checker library leaves journaling to its callers today; should it
    // start journaling itself, the run is not recorded twice.
    if count_checks(workspace, lesson.number) == checks_before {
        let when = UNIX_EPOCH + std::time::Duration::from_secs(now);
        let failed = report.failed_ids();
        if let Err(e) = append_check_journal(workspace, lesson.number, report.passed, &failed, when)
        {
            eprintln!("warning: could not record the check run: {e}");
        }
    }
    ReviewChecks::Ran(
        report
            .objectives
            .iter()
            .map(|o| CheckFigure {
                objective: o.id.clone(),
                passed: o.passed,
                figure: o.figure.clone(),
                target: o.target.clone(),
                detail: o.detail.clone(),
            })
            .collect(),
    )
}

fn count_checks(workspace: &Path, lesson: u32) -> usize {
    Journal::read(workspace).map_or(0, |j| j.checks(lesson).count())
}

/// Runs the workspace's `build` command (if any), its output on stderr.
fn build(config: &WorkspaceConfig, workspace: &Path) -> Result<(), String> {
    let Some(build) = config.build.as_ref().filter(|b| !b.is_empty()) else {
        return Ok(());
    };
    eprintln!("Building: `{}` …", build.join(" "));
    let output = std::process::Command::new(&build[0])
        .args(&build[1..])
        .current_dir(workspace)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("could not run the build command `{}`: {e}", build.join(" ")))?;
    // Keep stdout for the answer: the build's output goes to stderr.
    let _ = std::io::stderr().write_all(&output.stdout);
    let _ = std::io::stderr().write_all(&output.stderr);
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "the build command `{}` failed ({}); fix the build first",
            build.join(" "),
            output.status
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    const T0: u64 = 1_760_000_000;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn args(ws: &Path, lesson: u32, words: &[&str]) -> CoachArgs {
        CoachArgs {
            lesson,
            question: words.iter().map(|w| w.to_string()).collect(),
            workspace: Some(ws.to_path_buf()),
            json: false,
            history: false,
            offline: false,
            now: Some(T0),
        }
    }

    fn run_captured(args: CoachArgs, env: &[(&str, &str)]) -> anyhow::Result<String> {
        let captured = Captured::default();
        let mut out = captured.clone();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let mut io = Io {
            out: &mut out,
            style: Style::Plain,
            env: &lookup,
            user_config: None,
        };
        run_with(args, &mut io)?;
        let bytes = captured.0.lock().map(|b| b.clone()).unwrap_or_default();
        Ok(String::from_utf8(bytes)?)
    }

    fn workspace(toml: &str) -> anyhow::Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join(".statecraft"))?;
        std::fs::write(dir.path().join(".statecraft/workspace.toml"), toml)?;
        Ok(dir)
    }

    #[test]
    fn a_missing_lesson_names_the_paths_tried() -> anyhow::Result<()> {
        let ws = workspace("")?;
        let err = run_captured(args(ws.path(), 99, &["hi"]), &[])
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("lesson 99 not found"), "{err}");
        assert!(err.contains("099_*.md"), "{err}");
        Ok(())
    }

    #[test]
    fn questions_moving_clock_json_and_history() -> anyhow::Result<()> {
        let ws = workspace("lang = \"rust\"\n")?;
        let q = [
            "How",
            "do",
            "I",
            "implement",
            "the",
            "apply",
            "for",
            "incr?",
        ];
        let first = run_captured(args(ws.path(), 1, &q), &[])?;
        assert!(
            first.contains("# Coach · lesson 1 · One writer per key"),
            "{first}"
        );
        assert!(first.contains("```rust"), "{first}");
        assert!(!first.contains('\x1b'), "plain when not a terminal");

        let mut later = args(ws.path(), 1, &q);
        later.now = Some(T0 + 45 * 60);
        later.json = true;
        let json: serde_json::Value = serde_json::from_str(&run_captured(later, &[])?)?;
        assert_eq!(json["level"], 2);
        assert_eq!(json["kind"], "stuck");
        assert_eq!(json["concept"]["id"], "single_writer");
        assert_eq!(json["mode"], "guide");
        assert!(json["sections"].as_array().is_some_and(|s| s.len() >= 6));
        assert!(json["sources"].as_array().is_some_and(|s| !s.is_empty()));

        let mut hist = args(ws.path(), 1, &[]);
        hist.history = true;
        let text = run_captured(hist, &[])?;
        assert!(
            text.contains("level 1") && text.contains("level 2"),
            "{text}"
        );
        assert!(
            text.contains("asked: \"How do I implement the apply for incr?\""),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn review_without_a_command_says_the_checks_could_not_run() -> anyhow::Result<()> {
        let ws = tempfile::tempdir()?;
        let out = run_captured(args(ws.path(), 1, &["review"]), &[])?;
        assert!(
            out.contains("The checks could not run: there is no"),
            "{out}"
        );
        let ws = workspace("lang = \"python\"\ncommand = [\"false\"]\nbuild = [\"false\"]\n")?;
        let out = run_captured(args(ws.path(), 1, &["review"]), &[])?;
        assert!(out.contains("the build command `false` failed"), "{out}");
        Ok(())
    }

    #[test]
    fn review_runs_the_checks_and_journals_them() -> anyhow::Result<()> {
        // A program that exits at once: every objective fails fast.
        let ws = workspace("lang = \"python\"\ncommand = [\"false\"]\n")?;
        let out = run_captured(args(ws.path(), 1, &["review"]), &[])?;
        assert!(out.contains("is not met yet"), "{out}");
        let journal = std::fs::read_to_string(ws.path().join(".statecraft/journal.jsonl"))?;
        let kinds: Vec<serde_json::Value> = journal
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert!(
            kinds
                .iter()
                .any(|e| e["kind"] == "check" && e["passed"] == false),
            "{journal}"
        );
        assert!(
            kinds
                .iter()
                .any(|e| e["kind"] == "coach" && e["question_kind"] == "review"),
            "{journal}"
        );
        Ok(())
    }

    #[test]
    fn a_misconfigured_llm_falls_back_in_one_line() -> anyhow::Result<()> {
        let ws = workspace("")?;
        let env = [("STATECRAFT_LLM_URL", "http://127.0.0.1:9")];
        let out = run_captured(args(ws.path(), 1, &["what", "is", "a", "version?"]), &env)?;
        let first = out.lines().next().unwrap_or_default();
        assert!(
            first.contains("LLM coach unavailable") && first.contains("no model"),
            "{out}"
        );
        assert_eq!(out.matches("LLM coach unavailable").count(), 1);
        assert!(out.contains("## Questions to ask yourself"), "{out}");
        // --offline never looks at the LLM settings.
        let mut offline = args(ws.path(), 1, &["what", "is", "a", "version?"]);
        offline.offline = true;
        assert!(!run_captured(offline, &env)?.contains("LLM coach unavailable"));
        Ok(())
    }

    /// A one-shot OpenAI-compatible server on 127.0.0.1:0 (std only): reads one
    /// request, answers with `sse`, returns the request text through the handle.
    fn one_shot_llm(sse: String) -> anyhow::Result<(String, std::thread::JoinHandle<String>)> {
        use std::io::{BufRead, BufReader, Read};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let handle = std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else {
                return String::new();
            };
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{sse}"
            );
            head + &String::from_utf8_lossy(&body)
        });
        Ok((url, handle))
    }

    #[test]
    fn a_configured_llm_streams_the_answer_and_is_journaled() -> anyhow::Result<()> {
        let ws = workspace("lang = \"python\"\ncommand = [\"python3\", \"main.py\"]\n")?;
        let piece = serde_json::json!({"choices": [{"delta": {"content": "## The gap\n\nOwnership, not locks.\n"}}]});
        let (url, server) = one_shot_llm(format!("data: {piece}\n\ndata: [DONE]\n\n"))?;
        let env = [
            ("STATECRAFT_LLM_URL", url.as_str()),
            ("STATECRAFT_LLM_MODEL", "mock"),
            ("STATECRAFT_LLM_TIMEOUT_SECS", "10"),
        ];
        let out = run_captured(args(ws.path(), 1, &["why", "a", "single", "writer?"]), &env)?;
        assert_eq!(out, "## The gap\n\nOwnership, not locks.\n");
        let request = server
            .join()
            .map_err(|_| anyhow::anyhow!("server thread"))?;
        assert!(
            request.starts_with("POST /v1/chat/completions"),
            "{request}"
        );
        assert!(request.contains("Calibration level: 1"), "{request}");
        assert!(
            request.contains("You are the Statecraft coach"),
            "{request}"
        );
        let journal = std::fs::read_to_string(ws.path().join(".statecraft/journal.jsonl"))?;
        assert!(journal.contains("\"source\":\"llm\""), "{journal}");
        Ok(())
    }
}
