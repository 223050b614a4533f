//! Starter workspaces (`statecraft lessons init DIR --lang python|rust`) and the
//! workspace's own records: its settings (`.statecraft/workspace.toml`), the
//! learner's progress (`.statecraft/progress.json`) and the check lines of the
//! journal the coach reads (`.statecraft/journal.jsonl`).
//!
//! The starter programs are templates under `crates/learn/starters/`, compiled
//! in with `include_str!`: a Python (asyncio) `main.py` and a Rust (tokio) Cargo
//! project with a `[workspace]` table of its own, so it never joins an
//! enclosing Cargo workspace. Both speak the pipe protocol and pass the
//! `protocol` objective as they are; the interesting parts are gaps marked
//! [`crate::lesson::GAP_MARKER`], each with a naive default that keeps the
//! program working.
//!
//! Invariants: `init` never overwrites a non-empty directory unless forced, and
//! then only the files it writes; records are merged, never truncated (progress
//! keeps every lesson passed, the journal is append-only, one line per write).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The workspace settings file, relative to the workspace.
pub const CONFIG_FILE: &str = ".statecraft/workspace.toml";
/// The progress file, relative to the workspace.
pub const PROGRESS_FILE: &str = ".statecraft/progress.json";
/// The journal, relative to the workspace.
pub const JOURNAL_FILE: &str = ".statecraft/journal.jsonl";

/// The editor slash-command file `lessons init` writes (the commands folder
/// editor-integrated AI assistants read): `/coach N question|review`.
pub const SLASH_COMMAND_FILE: &str = ".claude/commands/coach.md";

/// Its text: runs `statecraft coach $ARGUMENTS` and binds the assistant to the coach's rules.
pub const SLASH_COMMAND: &str = include_str!("../starters/common/coach-command.md");

const README: &str = include_str!("../starters/common/README.md");
const SAMPLE_EVENTS: &str = include_str!("../starters/common/events.ndjson");
/// The Python starter program (`main.py`), as `init` writes it.
pub const PYTHON_MAIN: &str = include_str!("../starters/python/main.py");
const RUST_CARGO_TOML: &str = include_str!("../starters/rust/Cargo.toml");
/// The Rust starter program (`src/main.rs`), as `init` writes it.
pub const RUST_MAIN: &str = include_str!("../starters/rust/src/main.rs");
const RUST_GITIGNORE: &str = include_str!("../starters/rust/gitignore");

/// What went wrong with a workspace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkspaceError {
    /// `init` into a directory that already has files, without `force`.
    #[error("{} is not empty; choose an empty directory or pass --force to write the starter files into it", dir.display())]
    NotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// A language other than python or rust.
    #[error("unknown language {0:?}: choose python or rust")]
    UnknownLang(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A workspace file that cannot be understood.
    #[error("{}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The language of a starter workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Python 3 with asyncio.
    Python,
    /// Rust with tokio.
    Rust,
}

impl Lang {
    /// `python` or `rust`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Rust => "rust",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lang {
    type Err = WorkspaceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "python" | "py" => Ok(Lang::Python),
            "rust" | "rs" => Ok(Lang::Rust),
            other => Err(WorkspaceError::UnknownLang(other.to_string())),
        }
    }
}

/// `.statecraft/workspace.toml`: how `statecraft check` starts the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceConfig {
    /// `python` or `rust` (informational; the coach shows patterns in it).
    pub lang: String,
    /// The command that starts the program, run in the workspace directory.
    pub command: Vec<String>,
    /// A command run once before the checks (e.g. `cargo build`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Vec<String>>,
}

impl WorkspaceConfig {
    /// The settings a starter of `lang` is written with.
    pub fn for_lang(lang: Lang) -> WorkspaceConfig {
        match lang {
            Lang::Python => WorkspaceConfig {
                lang: "python".into(),
                command: vec!["python3".into(), "main.py".into()],
                build: None,
            },
            Lang::Rust => WorkspaceConfig {
                lang: "rust".into(),
                command: vec!["target/debug/statecraft-learner".into()],
                build: Some(vec!["cargo".into(), "build".into(), "--quiet".into()]),
            },
        }
    }
}

/// Reads `<dir>/.statecraft/workspace.toml`; `None` when there is none.
pub fn read_config(dir: &Path) -> Result<Option<WorkspaceConfig>, WorkspaceError> {
    let path = dir.join(CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let config: WorkspaceConfig = toml::from_str(&text).map_err(|e| WorkspaceError::Malformed {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if config.command.is_empty() {
        return Err(WorkspaceError::Malformed {
            path,
            message: "`command` is empty; write e.g. command = [\"python3\", \"main.py\"]".into(),
        });
    }
    Ok(Some(config))
}

/// What `init` wrote.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The workspace directory.
    pub dir: PathBuf,
    /// The language.
    pub lang: Lang,
    /// Files written, relative to `dir`.
    pub files: Vec<PathBuf>,
    /// The settings written to `.statecraft/workspace.toml`.
    pub config: WorkspaceConfig,
}

/// Lays down a starter workspace of `lang` in `dir` (created if missing).
/// Refuses a non-empty `dir` unless `force`; with `force`, overwrites only the
/// files it writes.
pub fn init(dir: &Path, lang: Lang, force: bool) -> Result<InitReport, WorkspaceError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
        if entries.next().is_some() && !force {
            return Err(WorkspaceError::NotEmpty {
                dir: dir.to_path_buf(),
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let config = WorkspaceConfig::for_lang(lang);
    let mut files: Vec<(PathBuf, String)> = match lang {
        Lang::Python => vec![
            ("main.py".into(), PYTHON_MAIN.to_string()),
            (
                ".gitignore".into(),
                format!("__pycache__/\n{JOURNAL_FILE}\n"),
            ),
        ],
        Lang::Rust => vec![
            ("Cargo.toml".into(), RUST_CARGO_TOML.to_string()),
            ("src/main.rs".into(), RUST_MAIN.to_string()),
            (
                ".gitignore".into(),
                format!("{RUST_GITIGNORE}{JOURNAL_FILE}\n"),
            ),
        ],
    };
    // The editor slash command (`/coach 2 …`): an AI assistant runs the coach and
    // keeps to its rules instead of writing the solution itself.
    files.push((SLASH_COMMAND_FILE.into(), SLASH_COMMAND.to_string()));
    files.push(("README.md".into(), readme(lang, &config)));
    files.push(("events.ndjson".into(), SAMPLE_EVENTS.to_string()));
    let config_text = toml::to_string(&config).map_err(|e| WorkspaceError::Malformed {
        path: dir.join(CONFIG_FILE),
        message: e.to_string(),
    })?;
    files.push((
        CONFIG_FILE.into(),
        format!(
            "# How `statecraft check` starts your program (run in this directory).\n{config_text}"
        ),
    ));
    for (name, text) in crate::builtin::lessons() {
        files.push((
            Path::new(crate::lesson::LESSONS_DIR).join(name),
            (*text).to_string(),
        ));
    }
    let mut written = Vec::with_capacity(files.len());
    for (rel, text) in files {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        std::fs::write(&path, text).map_err(io_err(&path))?;
        written.push(rel);
    }
    Ok(InitReport {
        dir: dir.to_path_buf(),
        lang,
        files: written,
        config,
    })
}

fn readme(lang: Lang, config: &WorkspaceConfig) -> String {
    let (files, run, inline) = match lang {
        Lang::Python => (
            "- `main.py` — your program (Python 3, asyncio). Start here.",
            "```sh\npython3 main.py < events.ndjson\n```".to_string(),
            config.command.join(" "),
        ),
        Lang::Rust => (
            "- `Cargo.toml`, `src/main.rs` — your program (Rust, tokio). Start in `src/main.rs`.",
            "```sh\ncargo build\n./target/debug/statecraft-learner < events.ndjson\n```\n\n`statecraft check` runs `cargo build --quiet` first (the `build` line of\n`.statecraft/workspace.toml`), then starts the binary.".to_string(),
            "./target/debug/statecraft-learner".to_string(),
        ),
    };
    README
        .replace(
            "{{LANG}}",
            match lang {
                Lang::Python => "Python",
                Lang::Rust => "Rust",
            },
        )
        .replace("{{FILES}}", files)
        .replace("{{RUN_INLINE}}", &inline)
        .replace("{{RUN}}", &run)
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ProgressFile {
    #[serde(default)]
    passed: BTreeMap<String, String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// Records that lesson `lesson` passed at `when` in `.statecraft/progress.json`
/// (`{"passed":{"N":"<RFC 3339 UTC>"}}`), keeping every other lesson's entry.
pub fn record_pass(dir: &Path, lesson: u32, when: SystemTime) -> Result<(), WorkspaceError> {
    let path = dir.join(PROGRESS_FILE);
    let mut progress: ProgressFile = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| WorkspaceError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ProgressFile::default(),
        Err(e) => return Err(io_err(&path)(e)),
    };
    progress
        .passed
        .insert(lesson.to_string(), rfc3339_utc(when));
    let text = serde_json::to_string_pretty(&progress).map_err(|e| WorkspaceError::Malformed {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    // Write beside, then rename: a reader never sees half a file.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, format!("{text}\n")).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))
}

/// Appends a `{"kind":"check",…}` line to `.statecraft/journal.jsonl`.
pub fn append_check_journal(
    dir: &Path,
    lesson: u32,
    passed: bool,
    failed: &[String],
    when: SystemTime,
) -> Result<(), WorkspaceError> {
    let path = dir.join(JOURNAL_FILE);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let line = serde_json::json!({
        "kind": "check",
        "lesson": lesson,
        "passed": passed,
        "time": unix_secs(when),
        "failed": failed,
    });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    // One write per line: concurrent writers (the coach) interleave by line.
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(io_err(&path))
}

fn unix_secs(when: SystemTime) -> u64 {
    when.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `2026-11-25T15:46:07Z`.
pub fn rfc3339_utc(when: SystemTime) -> String {
    let secs = unix_secs(when);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_621_567);
        assert_eq!(rfc3339_utc(t), "2026-11-25T15:46:07Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_utc(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn langs_parse() {
        assert_eq!("python".parse::<Lang>().ok(), Some(Lang::Python));
        assert_eq!("Rust".parse::<Lang>().ok(), Some(Lang::Rust));
        assert!("go".parse::<Lang>().is_err());
    }

    #[test]
    fn the_journal_is_ignored_and_the_slash_command_runs_the_coach()
    -> Result<(), Box<dyn std::error::Error>> {
        for lang in [Lang::Python, Lang::Rust] {
            let dir = tempfile::tempdir()?;
            init(dir.path(), lang, false)?;
            let ignore = std::fs::read_to_string(dir.path().join(".gitignore"))?;
            assert!(ignore.lines().any(|l| l == JOURNAL_FILE), "{ignore}");
            let command = std::fs::read_to_string(dir.path().join(SLASH_COMMAND_FILE))?;
            assert!(command.starts_with("---\ndescription:"), "{command}");
            assert!(command.contains("statecraft coach $ARGUMENTS"), "{command}");
            assert!(command.contains("Never write the complete working solution"));
            // In a git repository, a journal line is not a change to commit.
            let git = |args: &[&str]| {
                std::process::Command::new("git")
                    .arg("-C")
                    .arg(dir.path())
                    .args(args)
                    .output()
            };
            if git(&["init", "-q"]).is_ok_and(|o| o.status.success()) {
                std::fs::write(dir.path().join(JOURNAL_FILE), "{}\n")?;
                let out = git(&["status", "--porcelain", "--untracked-files=all"])?;
                let status = String::from_utf8_lossy(&out.stdout);
                assert!(!status.contains("journal.jsonl"), "{status}");
                assert!(status.contains(".statecraft/workspace.toml"), "{status}");
            }
        }
        Ok(())
    }

    #[test]
    fn starters_have_gaps() {
        for text in [PYTHON_MAIN, RUST_MAIN] {
            assert!(text.contains(crate::lesson::GAP_MARKER));
        }
        assert!(RUST_CARGO_TOML.contains("\n[workspace]"));
    }
}
