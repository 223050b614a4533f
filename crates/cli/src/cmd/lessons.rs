//! `statecraft lessons`: the learning path from the command line.
//!
//! - `lessons list` — every lesson (the workspace's `lessons/` over the built-in
//!   set), with ✓ for each lesson whose check passed in this workspace, read from
//!   `.statecraft/progress.json` (written by `statecraft check`), and the next
//!   lesson to work on.
//! - `lessons show N` — lesson N for a person: title, summary and the graded
//!   objectives from the front matter, then the prose. Styled (bold headings,
//!   indented code) when stdout is a terminal and `NO_COLOR` is unset, the
//!   Markdown itself otherwise; the front matter is never printed raw.
//! - `lessons init` — lays down a starter workspace (added beside these; see the
//!   marked places in [`LessonsCommand`] and [`run`]).
//!
//! Invariant: this module only reads. Lessons come from
//! [`statecraft_learn::lesson`], the same loader `check` and `coach` use, so what
//! `show` prints is what they grade and coach against.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Deserialize;
use statecraft_coach::render::{Style, render};
use statecraft_learn::lesson::{Lesson, list_lessons, load_lesson};
use statecraft_learn::workspace::PROGRESS_FILE;

/// `statecraft lessons` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LessonsCommand {
    /// List the lessons, with your progress in this workspace.
    List(ListArgs),
    /// Show lesson N: its objectives, then the lesson itself.
    Show(ShowArgs),
    /// Lay down a starter workspace: a program that speaks the pipe protocol,
    /// with the interesting parts left as gaps.
    Init(InitArgs),
}

/// Which workspace to read: its `lessons/` (a teacher's edits win over the
/// built-in copy) and its `.statecraft/progress.json`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkspaceArg {
    /// The learner's workspace directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub workspace: PathBuf,
}

/// Arguments of `statecraft lessons list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    workspace: WorkspaceArg,
}

/// Arguments of `statecraft lessons show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The lesson number (1 for `lessons/001_basics.md`).
    #[arg(value_name = "N")]
    number: u32,
    #[command(flatten)]
    workspace: WorkspaceArg,
}

/// Runs `statecraft lessons`.
pub fn run(cmd: LessonsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LessonsCommand::List(args) => list(&args),
        LessonsCommand::Show(args) => show(&args),
        LessonsCommand::Init(args) => init(&args),
    }
}

fn workspace_dir(arg: &WorkspaceArg) -> anyhow::Result<&Path> {
    let dir = arg.workspace.as_path();
    if !dir.is_dir() {
        anyhow::bail!("workspace {} is not a directory", dir.display());
    }
    Ok(dir)
}

fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let workspace = workspace_dir(&args.workspace)?;
    let lessons = list_lessons(Some(workspace))?;
    let progress = Progress::read(workspace);
    let text = render_list(&lessons, &progress, Style::detect());
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let workspace = workspace_dir(&args.workspace)?;
    let lesson = load_lesson(args.number, Some(workspace))?;
    let text = render(&lesson_markdown(&lesson), Style::detect());
    print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a closed pipe (`| head`) ends quietly rather than as an error.
fn print_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

/// The learner's passed lessons, from `.statecraft/progress.json`:
/// `{"passed": {"1": "2026-11-25T…"}}` (lesson number → when its check passed).
#[derive(Debug, Default)]
struct Progress {
    passed: BTreeMap<u32, String>,
}

#[derive(Deserialize)]
struct ProgressFile {
    #[serde(default)]
    passed: BTreeMap<String, serde_json::Value>,
}

impl Progress {
    /// Reads the workspace's progress. A missing file is no progress; an
    /// unreadable or malformed one is reported on stderr and treated the same, so
    /// listing the lessons never fails because of it.
    fn read(workspace: &Path) -> Progress {
        let path = workspace.join(PROGRESS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).unwrap_or_else(|err| {
                eprintln!("warning: ignoring {}: {err}", path.display());
                Progress::default()
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Progress::default(),
            Err(err) => {
                eprintln!("warning: cannot read {}: {err}", path.display());
                Progress::default()
            }
        }
    }

    fn parse(text: &str) -> Result<Progress, serde_json::Error> {
        let file: ProgressFile = serde_json::from_str(text)?;
        let passed = file
            .passed
            .into_iter()
            .filter_map(|(number, when)| {
                let number = number.trim().parse().ok()?;
                let when = when.as_str().map(str::to_string).unwrap_or_default();
                Some((number, when))
            })
            .collect();
        Ok(Progress { passed })
    }

    fn has_passed(&self, number: u32) -> bool {
        self.passed.contains_key(&number)
    }
}

const GREEN: &str = "\x1b[32m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

fn paint(style: Style, code: &str, text: &str) -> String {
    match style {
        Style::Terminal => format!("{code}{text}{RESET}"),
        Style::Plain => text.to_string(),
    }
}

/// One line per lesson (✓ when passed, number, slug, title, and where a lesson
/// comes from the workspace rather than the binary), then the next lesson.
fn render_list(lessons: &[Lesson], progress: &Progress, style: Style) -> String {
    let slug_width = lessons.iter().map(|l| l.slug.len()).max().unwrap_or(0);
    let mut out = String::new();
    for lesson in lessons {
        let mark = if progress.has_passed(lesson.number) {
            paint(style, GREEN, "✓")
        } else {
            " ".to_string()
        };
        let source = if lesson.origin.is_builtin() {
            String::new()
        } else {
            paint(style, DIM, &format!("  ({})", lesson.origin))
        };
        out.push_str(&format!(
            "{mark} {:>2}  {:<slug_width$}  {}{source}\n",
            lesson.number, lesson.slug, lesson.title
        ));
    }
    let next = lessons.iter().find(|l| !progress.has_passed(l.number));
    out.push('\n');
    match next {
        Some(lesson) => out.push_str(&format!(
            "next: lesson {} ({}): statecraft lessons show {}\n",
            lesson.number,
            paint(style, BOLD, &lesson.title),
            lesson.number
        )),
        None if lessons.is_empty() => out.push_str("no lessons found\n"),
        None => out.push_str(&format!(
            "all {} lessons passed: compare your program with `statecraft pipe`\n",
            lessons.len()
        )),
    }
    out
}

/// The lesson as Markdown for a person: title, summary, graded objectives (from
/// the front matter), then the prose without its own top-level title.
fn lesson_markdown(lesson: &Lesson) -> String {
    let mut md = format!(
        "# Lesson {} · {}\n\n{}\n\n",
        lesson.number, lesson.title, lesson.summary
    );
    if !lesson.prev.is_empty() {
        md.push_str(&format!("Before: {}\n", lesson.prev));
    }
    if !lesson.next.is_empty() {
        md.push_str(&format!("After: {}\n", lesson.next));
    }
    md.push_str(&format!(
        "\n## Graded by statecraft check {}\n\n",
        lesson.number
    ));
    for objective in &lesson.objectives {
        md.push_str(&format!(
            "- **{}** — {} (target: {})\n",
            objective.id, objective.text, objective.target
        ));
    }
    md.push('\n');
    md.push_str(body_without_title(&lesson.body));
    if !md.ends_with('\n') {
        md.push('\n');
    }
    md
}

/// The prose without a leading `# Title` line (the header above already shows it).
fn body_without_title(body: &str) -> &str {
    let trimmed = body.trim_start();
    match trimmed.split_once('\n') {
        Some((first, rest)) if first.starts_with("# ") => rest.trim_start_matches(['\r', '\n']),
        None if trimmed.starts_with("# ") => "",
        _ => trimmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin(number: u32) -> Lesson {
        load_lesson(number, None).expect("built-in lesson")
    }

    #[test]
    fn progress_file_is_parsed_leniently() {
        let progress =
            Progress::parse(r#"{"passed": {"1": "2026-11-25T10:00:00Z", "x": "?", "3": 5}}"#)
                .expect("valid JSON");
        assert!(progress.has_passed(1));
        assert!(progress.has_passed(3));
        assert!(!progress.has_passed(2));
        assert!(Progress::parse("{}").expect("empty").passed.is_empty());
        assert!(Progress::parse("not json").is_err());
    }

    #[test]
    fn list_marks_passed_lessons_and_names_the_next() {
        let lessons = list_lessons(None).expect("built-in lessons");
        let progress = Progress::parse(r#"{"passed": {"1": "t", "2": "t"}}"#).expect("valid");
        let text = render_list(&lessons, &progress, Style::Plain);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("✓  1  basics"), "{text}");
        assert!(lines[1].starts_with("✓  2  asyncio"), "{text}");
        assert!(lines[2].starts_with("   3  backpressure"), "{text}");
        assert!(text.contains("next: lesson 3 ("), "{text}");
        assert!(!text.contains('\x1b'), "plain output has no escapes");

        let all: String = (1..=9).map(|n| format!("\"{n}\": \"t\",")).collect();
        let done = Progress::parse(&format!(
            "{{\"passed\": {{{}}}}}",
            all.trim_end_matches(',')
        ))
        .expect("valid");
        assert!(render_list(&lessons, &done, Style::Plain).contains("all 9 lessons passed"));
    }

    #[test]
    fn show_puts_objectives_first_and_hides_front_matter() {
        let lesson = builtin(1);
        let md = lesson_markdown(&lesson);
        assert!(md.starts_with("# Lesson 1 · "), "{md}");
        assert!(!md.contains("+++"), "front matter must not be shown raw");
        assert!(!md.contains("[[concepts]]"));
        let graded = md
            .find("## Graded by statecraft check 1")
            .expect("objectives block");
        let prose = md.find("## Concepts").expect("prose");
        assert!(graded < prose);
        for objective in &lesson.objectives {
            assert!(md.contains(&format!("- **{}** —", objective.id)));
        }
        assert_eq!(
            md.matches("\n# ").count() + usize::from(md.starts_with("# ")),
            1
        );
    }

    #[test]
    fn terminal_style_styles_and_plain_style_does_not() {
        let md = lesson_markdown(&builtin(2));
        let plain = render(&md, Style::Plain);
        assert_eq!(plain, md);
        let styled = render(&md, Style::Terminal);
        assert!(styled.contains("\x1b[1m"), "headings are bold");
        assert!(
            !styled.contains("```"),
            "fences are dropped, code is indented"
        );
        assert!(styled.contains("\n    "), "code is indented");
    }

    #[test]
    fn body_title_is_dropped_once() {
        assert_eq!(body_without_title("# T\n\nText\n## S\n"), "Text\n## S\n");
        assert_eq!(body_without_title("\n# T\r\n\r\nText"), "Text");
        assert_eq!(
            body_without_title("Text\n# Not first\n"),
            "Text\n# Not first\n"
        );
        assert_eq!(body_without_title("# Only"), "");
    }
}

/// Arguments of `statecraft lessons init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The directory to create (or an empty one).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The language of the starter program: python (asyncio) or rust (tokio).
    #[arg(long, value_name = "LANG", default_value = "python")]
    lang: String,
    /// Write the starter files into a non-empty directory (overwrites only them).
    #[arg(long)]
    force: bool,
}

/// `statecraft lessons init DIR --lang python|rust` (statecraft_learn::workspace).
fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let lang: statecraft_learn::workspace::Lang = args.lang.parse()?;
    let report = statecraft_learn::workspace::init(&args.dir, lang, args.force)?;
    let dir = report.dir.display();
    print_out(&format!(
        "created a {lang} workspace in {dir} ({} files)

next:
  cd {dir}
  statecraft lessons show 1
  statecraft check 1
  statecraft coach 1 \"where do I start?\"\n",
        report.files.len()
    ))?;
    Ok(ExitCode::SUCCESS)
}
