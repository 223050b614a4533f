//! `statecraft coach N [question | review]`: the mentor of the learning path;
//! `statecraft coach --mcp`: the same coach, the lessons and the checks as MCP
//! tools over stdio (see [`mcp`]).
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
use statecraft_coach::{Ask, CheckFigure, LessonMaterial, ReviewChecks, Session, history};
use statecraft_learn::check::{CheckOptions, run_lesson_with};
use statecraft_learn::lesson::Lesson;
use statecraft_learn::workspace::{CONFIG_FILE, WorkspaceConfig, read_config};

/// Arguments of `statecraft coach`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  statecraft coach 1 \"why do I lose increments with two workers?\"
  statecraft coach 2 review
  statecraft coach 1 --history
  statecraft coach --mcp        (lesson, check and coach as MCP tools on stdio)

Offline by default. An LLM coach answers when one is configured, in the
environment (STATECRAFT_LLM_URL, STATECRAFT_LLM_MODEL, STATECRAFT_LLM_API_KEY,
STATECRAFT_LLM_PROVIDER=openai|anthropic, STATECRAFT_LLM_TIMEOUT_SECS,
STATECRAFT_LLM_CONNECT_TIMEOUT_SECS) or in an [llm] table of
<workspace>/.statecraft/config.toml or ~/.config/statecraft/config.toml.
Any LLM failure falls back to the offline coach, and says so in one line.
Recipes for Ollama and llama.cpp: docs/coach-llm.md.")]
pub struct CoachArgs {
    /// The lesson number.
    #[arg(required_unless_present = "mcp")]
    pub lesson: Option<u32>,
    /// Your question (quote it), or `review` to have your code and check results looked at.
    /// Options may come before or after it (`coach 1 "why?" --json`).
    pub question: Vec<String>,
    /// Serve `lesson`, `check` and `coach` as MCP tools over stdio (JSON-RPC,
    /// one message per line) for editor-integrated AI assistants.
    #[arg(long, conflicts_with_all = ["history", "json"])]
    pub mcp: bool,
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
    if args.mcp {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        return mcp::serve(&mut input, io, &workspace).map(|()| ExitCode::SUCCESS);
    }
    let Some(number) = args.lesson else {
        anyhow::bail!("name a lesson: statecraft coach N \"question\"");
    };
    // The loader's error names every path it tried.
    let lesson = statecraft_learn::lesson::load_lesson(number, Some(&workspace))?;
    let style = if args.json { Style::Plain } else { io.style };

    if args.history {
        let journal = Journal::read(&workspace)?;
        let text = if args.json {
            format!("{}\n", history::to_json(&journal, number))
        } else {
            render(&history::to_text(&journal, number), style)
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
    // The coach records the figures too (`figures`, an optional field older
    // readers ignore): "your p95 went from 48 ms to 9 ms" needs them.
    if count_checks(workspace, lesson.number) == checks_before {
        let entry = CheckEntry {
            lesson: lesson.number,
            passed: report.passed,
            time: now,
            failed: report.failed_ids(),
            figures: report
                .objectives
                .iter()
                .map(|o| (o.id.clone(), o.figure.clone()))
                .collect(),
        };
        let appended =
            Journal::read(workspace).and_then(|mut j| j.append(JournalEntry::Check(entry)));
        if let Err(e) = appended {
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

/// `statecraft coach --mcp`: the Model Context Protocol over stdio, hand-written.
///
/// Transport (MCP "stdio"): one JSON-RPC 2.0 message per line on stdin, one
/// per line on stdout, logs on stderr. Methods: `initialize` (answers with the
/// client's protocol version when it names one, `tools` capability),
/// `notifications/initialized` and other notifications (no reply), `ping`,
/// `tools/list`, `tools/call` with the tools `lesson` (a lesson's objectives
/// and prose), `check` (runs a lesson's checks on the workspace's program) and
/// `coach` (the coach's answer, offline or with the configured LLM, journaled
/// like the command line's). Invariants: every request gets exactly one
/// response with its id; a tool failure is a result with `isError: true`, not
/// a protocol error; malformed input is answered with a JSON-RPC error and the
/// server keeps serving until stdin closes.
mod mcp {
    use std::io::BufRead;
    use std::path::Path;

    use serde_json::{Value, json};

    use super::{CoachArgs, Io, run_checks, run_with, unix_now};
    use statecraft_coach::ReviewChecks;
    use statecraft_coach::render::Style;

    /// The protocol version answered when the client names none.
    pub const PROTOCOL_VERSION: &str = "2025-06-18";

    /// Serves until `input` ends.
    pub fn serve(input: &mut dyn BufRead, io: &mut Io<'_>, workspace: &Path) -> anyhow::Result<()> {
        let mut line = String::new();
        loop {
            line.clear();
            if input.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line.trim().is_empty() {
                continue;
            }
            let reply = match serde_json::from_str::<Value>(&line) {
                Err(e) => Some(error(Value::Null, -32700, &format!("parse error: {e}"))),
                Ok(msg) => handle(&msg, io, workspace),
            };
            if let Some(reply) = reply {
                io.put(&format!("{reply}\n"))?;
            }
        }
    }

    fn error(id: Value, code: i64, message: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
    }

    fn result(id: Value, result: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "result": result})
    }

    fn handle(msg: &Value, io: &mut Io<'_>, workspace: &Path) -> Option<Value> {
        let method = msg["method"].as_str();
        let id = msg.get("id").cloned();
        let Some(id) = id else {
            // A notification (`notifications/initialized`, cancellations): no reply.
            return None;
        };
        let Some(method) = method else {
            return Some(error(id, -32600, "invalid request: no method"));
        };
        Some(match method {
            "initialize" => {
                let version = msg["params"]["protocolVersion"]
                    .as_str()
                    .unwrap_or(PROTOCOL_VERSION)
                    .to_string();
                result(
                    id,
                    json!({
                        "protocolVersion": version,
                        "capabilities": {"tools": {"listChanged": false}},
                        "serverInfo": {"name": "statecraft", "version": env!("CARGO_PKG_VERSION")},
                        "instructions": "Statecraft's course tools. `coach` answers like a mentor: \
                            relay its answer and keep its rules (never write the learner's solution, \
                            keep every TODO gap open).",
                    }),
                )
            }
            "ping" => result(id, json!({})),
            "tools/list" => result(id, json!({"tools": tools()})),
            "tools/call" => {
                let name = msg["params"]["name"].as_str().unwrap_or("");
                let args = &msg["params"]["arguments"];
                match call(name, args, io, workspace) {
                    Ok(Some(text)) => result(
                        id,
                        json!({"content": [{"type": "text", "text": text}], "isError": false}),
                    ),
                    Ok(None) => error(id, -32602, &format!("unknown tool: {name}")),
                    Err(e) => result(
                        id,
                        json!({"content": [{"type": "text", "text": format!("{e:#}")}], "isError": true}),
                    ),
                }
            }
            other => error(id, -32601, &format!("method not found: {other}")),
        })
    }

    fn tools() -> Value {
        let lesson =
            json!({"type": "integer", "minimum": 1, "description": "The lesson number (1–9)."});
        json!([
            {
                "name": "lesson",
                "description": "A Statecraft lesson: its objectives (what the checks grade) and its prose.",
                "inputSchema": {"type": "object", "properties": {"lesson": lesson}, "required": ["lesson"]},
            },
            {
                "name": "check",
                "description": "Runs a lesson's checks on the learner's program (the command in .statecraft/workspace.toml) and reports one line per objective: pass/fail, the measured figure, the target.",
                "inputSchema": {"type": "object", "properties": {"lesson": lesson}, "required": ["lesson"]},
            },
            {
                "name": "coach",
                "description": "Asks the Statecraft coach about a lesson: a question in the learner's words, or \"review\". The answer guides with questions, a hint and a gapped pattern; relay it and never fill its gaps.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "lesson": lesson,
                        "question": {"type": "string", "description": "The learner's question, or \"review\"."},
                    },
                    "required": ["lesson", "question"],
                },
            },
        ])
    }

    fn call(
        name: &str,
        args: &Value,
        io: &mut Io<'_>,
        workspace: &Path,
    ) -> anyhow::Result<Option<String>> {
        let number = || {
            args["lesson"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| anyhow::anyhow!("`lesson` must be a lesson number"))
        };
        match name {
            "lesson" => {
                let l = statecraft_learn::lesson::load_lesson(number()?, Some(workspace))?;
                let mut text = format!(
                    "# Lesson {}: {}\n\n{}\n\n## Objectives\n\n",
                    l.number, l.title, l.summary
                );
                for o in &l.objectives {
                    text.push_str(&format!("- `{}`: {} (target {})\n", o.id, o.text, o.target));
                }
                text.push('\n');
                text.push_str(&l.body);
                Ok(Some(text))
            }
            "check" => {
                let l = statecraft_learn::lesson::load_lesson(number()?, Some(workspace))?;
                let text = match run_checks(workspace, &l, unix_now()) {
                    ReviewChecks::Ran(figures) => figures
                        .iter()
                        .map(|f| {
                            format!(
                                "{} {} — {} (target {})\n",
                                if f.passed { "pass" } else { "FAIL" },
                                f.objective,
                                f.figure,
                                f.target
                            )
                        })
                        .collect(),
                    ReviewChecks::Unavailable(why) => {
                        anyhow::bail!("the checks could not run: {why}")
                    }
                    ReviewChecks::NotRun => String::new(),
                };
                Ok(Some(text))
            }
            "coach" => {
                let question = args["question"]
                    .as_str()
                    .filter(|q| !q.trim().is_empty())
                    .ok_or_else(|| anyhow::anyhow!("`question` is required (or \"review\")"))?;
                let coach_args = CoachArgs {
                    lesson: Some(number()?),
                    question: vec![question.to_string()],
                    mcp: false,
                    workspace: Some(workspace.to_path_buf()),
                    json: false,
                    history: false,
                    offline: false,
                    now: None,
                };
                let mut buf: Vec<u8> = Vec::new();
                let mut inner = Io {
                    out: &mut buf,
                    style: Style::Plain,
                    env: io.env,
                    user_config: io.user_config.clone(),
                };
                run_with(coach_args, &mut inner)?;
                Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
            }
            _ => Ok(None),
        }
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
            lesson: Some(lesson),
            mcp: false,
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

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: CoachArgs,
    }

    #[test]
    fn options_after_the_question_are_options() -> anyhow::Result<()> {
        use clap::Parser;
        // Issue 15: `coach 1 "q" --json` glued `--json` into the question.
        let cli = Cli::try_parse_from(["coach", "1", "why a single writer?", "--json"])?;
        assert_eq!(cli.args.question, ["why a single writer?"]);
        assert!(cli.args.json);
        let cli = Cli::try_parse_from(["coach", "--offline", "2", "my", "deadline", "--json"])?;
        assert_eq!(cli.args.lesson, Some(2));
        assert_eq!(cli.args.question, ["my", "deadline"]);
        assert!(cli.args.json && cli.args.offline);
        let cli = Cli::try_parse_from(["coach", "--mcp"])?;
        assert!(cli.args.mcp && cli.args.lesson.is_none());
        assert!(
            Cli::try_parse_from(["coach"]).is_err(),
            "a lesson is required without --mcp"
        );
        Ok(())
    }

    /// A scripted MCP client: initialize, the initialized notification, list
    /// the tools, call each, a broken line and an unknown method.
    #[test]
    fn mcp_serves_lesson_check_and_coach_over_stdio() -> anyhow::Result<()> {
        let ws = workspace("lang = \"python\"\ncommand = [\"false\"]\n")?;
        let script = [
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"test","version":"0"}}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"coach","arguments":{"lesson":2,"question":"My collect_batch function isn't respecting the deadline"}}}"#,
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"lesson","arguments":{"lesson":2}}}"#,
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"check","arguments":{"lesson":1}}}"#,
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"coach","arguments":{"lesson":99,"question":"x"}}}"#,
            "this is not json",
            r#"{"jsonrpc":"2.0","id":7,"method":"resources/list"}"#,
            r#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#,
        ]
        .join("\n");
        let captured = Captured::default();
        let mut out = captured.clone();
        let lookup = |_: &str| None;
        let mut io = Io {
            out: &mut out,
            style: Style::Plain,
            env: &lookup,
            user_config: None,
        };
        let mut input = std::io::Cursor::new(script.into_bytes());
        mcp::serve(&mut input, &mut io, ws.path())?;
        let bytes = captured.0.lock().map(|b| b.clone()).unwrap_or_default();
        let replies: Vec<serde_json::Value> = String::from_utf8(bytes)?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        // One reply per request, none for the notification.
        assert_eq!(replies.len(), 9, "{replies:#?}");
        assert_eq!(replies[0]["result"]["protocolVersion"], "2025-03-26");
        assert!(replies[0]["result"]["capabilities"]["tools"].is_object());
        let names: Vec<&str> = replies[1]["result"]["tools"]
            .as_array()
            .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["lesson", "check", "coach"]);
        let coach = replies[2]["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("");
        assert_eq!(replies[2]["result"]["isError"], false);
        assert!(coach.contains("## Questions to ask yourself"), "{coach}");
        assert!(coach.contains("A fixed batch deadline"), "{coach}");
        let lesson = replies[3]["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("");
        assert!(
            lesson.starts_with("# Lesson 2:") && lesson.contains("`deadline`"),
            "{lesson}"
        );
        let check = replies[4]["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("");
        assert!(check.contains("FAIL"), "{check}");
        assert_eq!(replies[5]["result"]["isError"], true, "{:?}", replies[5]);
        assert_eq!(replies[6]["error"]["code"], -32700);
        assert_eq!(replies[7]["error"]["code"], -32601);
        assert_eq!(replies[7]["id"], 7);
        assert_eq!(replies[8]["result"], serde_json::json!({}));
        // The coach call was journaled like the command line's.
        let journal = std::fs::read_to_string(ws.path().join(".statecraft/journal.jsonl"))?;
        assert!(journal.contains("\"kind\":\"coach\""), "{journal}");
        Ok(())
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
                .any(|e| e["kind"] == "check" && e["passed"] == false && e["figures"].is_object()),
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
        let text = "## What you have right\n\nYou asked before coding.\n\n## The gap\n\nOwnership, not locks.\n\n## Questions to ask yourself\n\n1. Who writes key `a`?\n2. What if two do?\n\n## Hint\n\nOne owner.\n\n## A pattern to complete\n\n```python\n# TODO: YOUR CODE HERE\n```\n\n## Next steps\n\n1. Predict, then run.\n";
        let piece = serde_json::json!({"choices": [{"delta": {"content": text}}]});
        let (url, server) = one_shot_llm(format!("data: {piece}\n\ndata: [DONE]\n\n"))?;
        let env = [
            ("STATECRAFT_LLM_URL", url.as_str()),
            ("STATECRAFT_LLM_MODEL", "mock"),
            ("STATECRAFT_LLM_TIMEOUT_SECS", "10"),
        ];
        let out = run_captured(args(ws.path(), 1, &["why", "a", "single", "writer?"]), &env)?;
        assert_eq!(out, text);
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
