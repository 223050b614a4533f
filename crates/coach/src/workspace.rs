//! The learner's workspace as the coach sees it: settings and the code to review.
//!
//! Reads `.statecraft/workspace.toml` (`lang`, `command`), finds the files worth
//! looking at — named in the question, changed since the last coaching, the
//! program itself — and cuts short excerpts from them. Invariants: nothing
//! outside the workspace root is read (named paths are resolved and must stay
//! under it); every excerpt is at most [`EXCERPT_LINES`] lines, at most
//! [`MAX_FILES`] files are excerpted, and files over [`MAX_FILE_BYTES`] or not
//! UTF-8 are skipped — so reviewing a huge or hostile workspace stays fast and
//! bounded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use serde::Deserialize;

use crate::error::CoachError;
use crate::material::Lang;

/// Lines per excerpt (short enough never to be mistaken for a solution block).
pub const EXCERPT_LINES: usize = 6;
/// Files excerpted per answer.
pub const MAX_FILES: usize = 4;
/// Larger files are not read.
pub const MAX_FILE_BYTES: u64 = 512 * 1024;
/// Changed files listed (the count is still reported in full).
const MAX_CHANGED_LISTED: usize = 50;

/// Directories never reviewed.
const IGNORED_DIRS: &[&str] = &[
    ".git",
    ".statecraft",
    "target",
    "node_modules",
    "__pycache__",
    ".venv",
    "venv",
    "lessons",
    ".mypy_cache",
    ".pytest_cache",
];

/// `.statecraft/workspace.toml`, as far as the coach cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceSettings {
    /// The learner's language (default Python).
    pub lang: Lang,
    /// The command that starts the learner's program, when recorded.
    pub command: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct WorkspaceToml {
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    command: Option<Vec<String>>,
}

impl WorkspaceSettings {
    /// Reads `<root>/.statecraft/workspace.toml`; missing file → defaults.
    pub fn read(root: &Path) -> Result<WorkspaceSettings, CoachError> {
        let path = root.join(".statecraft").join("workspace.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(WorkspaceSettings::default());
            }
            Err(e) => return Err(CoachError::io("reading", path, e)),
        };
        let parsed: WorkspaceToml = toml::from_str(&text).map_err(|e| CoachError::Config {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(WorkspaceSettings {
            lang: parsed
                .lang
                .as_deref()
                .and_then(Lang::parse)
                .unwrap_or_default(),
            command: parsed.command.unwrap_or_default(),
        })
    }

    /// The command as one shell-like line (`python3 main.py`), or a placeholder.
    pub fn command_line(&self) -> String {
        if self.command.is_empty() {
            "<command that starts your program>".to_string()
        } else {
            self.command.join(" ")
        }
    }
}

/// Why a file was reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileReason {
    /// The question names it.
    Named,
    /// Changed since the last coaching.
    Changed,
    /// It is the workspace's program (from `command`).
    Program,
}

/// A few lines of one learner file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Excerpt {
    /// Path relative to the workspace root.
    pub path: String,
    /// Why it was read.
    pub reason: FileReason,
    /// First line shown, 1-based.
    pub first_line: usize,
    /// The lines shown (at most [`EXCERPT_LINES`]).
    pub lines: Vec<String>,
}

impl Excerpt {
    /// `path:first-last`.
    pub fn location(&self) -> String {
        let last = self.first_line + self.lines.len().saturating_sub(1);
        format!("{}:{}-{}", self.path, self.first_line, last)
    }
}

/// What the coach learned from looking at the workspace.
#[derive(Debug, Clone, Default)]
pub struct CodeReview {
    /// Excerpts, named files first, then the program, then other changed files.
    pub excerpts: Vec<Excerpt>,
    /// Files changed since the last coaching (relative paths, capped list).
    pub changed: Vec<String>,
    /// How many files changed in total.
    pub changed_count: usize,
    /// How changes were found: `git` or `mtime`.
    pub change_source: &'static str,
}

/// Reviews the workspace: files named in `question`, files changed since
/// `since` (unix seconds of the last coaching, if any), and the program.
/// `focus` words (the lesson's cues) pick which lines of a file to show.
pub fn review(
    root: &Path,
    settings: &WorkspaceSettings,
    question: &str,
    since: Option<u64>,
    focus: &[String],
) -> CodeReview {
    let root_canon = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut picked: Vec<(String, FileReason)> = Vec::new();
    let push = |rel: String, reason: FileReason, picked: &mut Vec<(String, FileReason)>| {
        if !picked.iter().any(|(p, _)| *p == rel) {
            picked.push((rel, reason));
        }
    };

    for rel in named_files(&root_canon, question) {
        push(rel, FileReason::Named, &mut picked);
    }
    for rel in program_files(&root_canon, &settings.command) {
        push(rel, FileReason::Program, &mut picked);
    }
    let (mut changed, change_source) = changed_files(&root_canon, since);
    changed.sort();
    changed.dedup();
    let changed_count = changed.len();
    for rel in changed.iter().filter(|p| is_source_like(p)) {
        push(rel.clone(), FileReason::Changed, &mut picked);
    }

    let mut excerpts = Vec::new();
    for (rel, reason) in picked {
        if excerpts.len() >= MAX_FILES {
            break;
        }
        if let Some(ex) = excerpt(&root_canon, &rel, reason, question, focus) {
            excerpts.push(ex);
        }
    }
    changed.truncate(MAX_CHANGED_LISTED);
    CodeReview {
        excerpts,
        changed,
        changed_count,
        change_source,
    }
}

/// Tokens of the question that name an existing file under the root.
fn named_files(root: &Path, question: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in question.split_whitespace() {
        let tok = raw.trim_matches(|c: char| {
            matches!(
                c,
                '`' | '"' | '\'' | ',' | ';' | '(' | ')' | '?' | '!' | '<' | '>' | '[' | ']'
            )
        });
        // "main.py:12" → "main.py"; a trailing full stop ends a sentence.
        let tok = tok.split(':').next().unwrap_or(tok).trim_end_matches('.');
        if tok.is_empty() || !(tok.contains('.') || tok.contains('/')) {
            continue;
        }
        if let Some(rel) = inside(root, &root.join(tok))
            && !out.contains(&rel)
        {
            out.push(rel);
        }
    }
    out
}

/// Arguments of the program command that are files in the workspace.
fn program_files(root: &Path, command: &[String]) -> Vec<String> {
    command
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| inside(root, &root.join(a)))
        .collect()
}

/// The path relative to `root` if `path` is an existing regular file under it.
fn inside(root: &Path, path: &Path) -> Option<String> {
    let canon = path.canonicalize().ok()?;
    if !canon.is_file() {
        return None;
    }
    let rel = canon.strip_prefix(root).ok()?;
    Some(rel.to_string_lossy().replace('\\', "/"))
}

fn is_ignored(rel: &str) -> bool {
    rel.split('/').any(|part| IGNORED_DIRS.contains(&part))
}

fn is_source_like(rel: &str) -> bool {
    const EXT: &[&str] = &[
        "py", "rs", "toml", "go", "js", "ts", "java", "c", "cc", "cpp", "h", "rb", "kt", "cfg",
        "ini", "yaml", "yml", "json", "sh",
    ];
    !is_ignored(rel)
        && rel
            .rsplit_once('.')
            .is_some_and(|(_, ext)| EXT.contains(&ext.to_ascii_lowercase().as_str()))
}

/// Files changed since `since`: via git when the root is a repository (commits
/// since then, plus uncommitted and untracked files), else by modification time.
fn changed_files(root: &Path, since: Option<u64>) -> (Vec<String>, &'static str) {
    if let Some(files) = git_changed(root, since) {
        return (files, "git");
    }
    (mtime_changed(root, since), "mtime")
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn git_changed(root: &Path, since: Option<u64>) -> Option<Vec<String>> {
    let top = git(root, &["rev-parse", "--show-toplevel"])?;
    let top = PathBuf::from(top.trim()).canonicalize().ok()?;
    // Paths from git are relative to the repository top; re-base them on the root.
    let rebase = |p: &str| -> Option<String> {
        let rel = top
            .join(p)
            .strip_prefix(root)
            .ok()?
            .to_string_lossy()
            .replace('\\', "/");
        (!rel.is_empty() && !is_ignored(&rel)).then_some(rel)
    };
    let mut files = Vec::new();
    let mut lines = String::new();
    // Uncommitted changes (against HEAD; a repository without commits has none).
    lines.push_str(&git(root, &["diff", "--name-only", "HEAD", "--", "."]).unwrap_or_default());
    lines.push_str(&git(root, &["diff", "--name-only", "--cached", "--", "."]).unwrap_or_default());
    lines.push_str(
        &git(
            root,
            &[
                "ls-files",
                "--others",
                "--exclude-standard",
                "--full-name",
                "--",
                ".",
            ],
        )
        .unwrap_or_default(),
    );
    if let Some(t) = since {
        let since_arg = format!("--since=@{t}");
        lines.push_str(
            &git(
                root,
                &["log", &since_arg, "--name-only", "--format=", "--", "."],
            )
            .unwrap_or_default(),
        );
    }
    for l in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rel) = rebase(l) {
            // A file deleted since is not reviewable, but it did change.
            files.push(rel);
        }
    }
    // Without a previous session, "changed since the last coaching" is every
    // uncommitted change; with one, keep committed-since plus uncommitted files
    // (git cannot date an uncommitted edit, so those all count).
    Some(files)
}

fn mtime_changed(root: &Path, since: Option<u64>) -> Vec<String> {
    let Some(since) = since else {
        // No previous coaching: nothing is "changed since"; the program and the
        // named files are still reviewed.
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    let mut visited = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            visited += 1;
            if visited > 5_000 {
                return out; // bounded walk
            }
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            if is_ignored(&rel) {
                continue;
            }
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let modified = entry
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs());
                if modified.is_some_and(|m| m > since) {
                    out.push(rel);
                }
            }
        }
    }
    out
}

/// Cuts at most [`EXCERPT_LINES`] lines of `rel`, centred on the most telling
/// line: a gap marker, a line of a traceback the question quotes, or a focus word.
fn excerpt(
    root: &Path,
    rel: &str,
    reason: FileReason,
    question: &str,
    focus: &[String],
) -> Option<Excerpt> {
    let path = root.join(rel);
    let meta = std::fs::metadata(&path).ok()?;
    if meta.len() > MAX_FILE_BYTES {
        return None;
    }
    let bytes = std::fs::read(&path).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return None;
    }
    let line_in_question = question_line_number(question, rel);
    let anchor = line_in_question
        .filter(|n| *n >= 1 && *n <= lines.len())
        .map(|n| n - 1)
        .or_else(|| lines.iter().position(|l| l.contains("TODO")))
        .or_else(|| {
            lines.iter().position(|l| {
                let toks = crate::words::tokens(l);
                focus
                    .iter()
                    .any(|f| crate::words::contains_phrase(&toks, f))
            })
        })
        .unwrap_or(0);
    let start = anchor
        .saturating_sub(2)
        .min(lines.len().saturating_sub(EXCERPT_LINES));
    let shown: Vec<String> = lines
        .iter()
        .skip(start)
        .take(EXCERPT_LINES)
        .map(|l| truncate_line(l))
        .collect();
    Some(Excerpt {
        path: rel.to_string(),
        reason,
        first_line: start + 1,
        lines: shown,
    })
}

/// `main.py:42` (or `line 42` in a Python traceback naming the file) in the question.
fn question_line_number(question: &str, rel: &str) -> Option<usize> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    for (i, _) in question.match_indices(name) {
        let rest = &question[i + name.len()..];
        let digits = rest
            .strip_prefix(':')
            .or_else(|| rest.strip_prefix("\", line "))
            .map(|r| {
                r.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            });
        if let Some(n) = digits.and_then(|d| d.parse().ok()) {
            return Some(n);
        }
    }
    None
}

fn truncate_line(line: &str) -> String {
    const MAX: usize = 160;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        let mut s: String = line.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_files_stay_inside_the_root() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("main.py"), "print(1)\n")?;
        let root = dir.path().canonicalize()?;
        let found = named_files(&root, "why does `main.py:1` fail, and ../../etc/passwd?");
        assert_eq!(found, vec!["main.py".to_string()]);
        Ok(())
    }

    #[test]
    fn excerpts_are_short_and_centred_on_the_gap() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let body: String = (1..=40)
            .map(|i| {
                if i == 20 {
                    "    # TODO: YOUR CODE HERE\n".to_string()
                } else {
                    format!("line{i}\n")
                }
            })
            .collect();
        std::fs::write(dir.path().join("main.py"), body)?;
        std::fs::create_dir_all(dir.path().join(".statecraft"))?;
        std::fs::write(
            dir.path().join(".statecraft/workspace.toml"),
            "lang = \"rust\"\ncommand = [\"python3\", \"main.py\"]\n",
        )?;
        let settings = WorkspaceSettings::read(dir.path())?;
        assert_eq!(settings.lang, Lang::Rust);
        let review = review(dir.path(), &settings, "help", None, &[]);
        assert_eq!(review.excerpts.len(), 1);
        let ex = &review.excerpts[0];
        assert_eq!(ex.reason, FileReason::Program);
        assert!(ex.lines.len() <= EXCERPT_LINES);
        assert!(ex.lines.iter().any(|l| l.contains("TODO")));
        assert_eq!(ex.first_line, 18);
        Ok(())
    }

    #[test]
    fn line_numbers_in_questions_are_found() {
        assert_eq!(
            question_line_number("error at main.py:12 here", "main.py"),
            Some(12)
        );
        assert_eq!(
            question_line_number("File \"main.py\", line 7, in worker", "src/main.py"),
            Some(7)
        );
    }

    #[test]
    fn git_workspaces_report_uncommitted_untracked_and_committed_since()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(root)
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "commit.gpgsign=false",
                ])
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if !git(&["init", "-q"]) {
            eprintln!("git not available: skipped");
            return Ok(());
        }
        std::fs::write(root.join("old.py"), "x = 1\n")?;
        std::fs::write(root.join("edited.py"), "y = 1\n")?;
        assert!(git(&["add", "."]) && git(&["commit", "-q", "-m", "start"]));
        std::fs::write(root.join("edited.py"), "y = 2\n")?;
        std::fs::write(root.join("new.py"), "z = 1\n")?;
        let (files, source) = changed_files(&root.canonicalize()?, Some(0));
        assert_eq!(source, "git");
        // Committed since the epoch (old.py), edited, untracked.
        for f in ["old.py", "edited.py", "new.py"] {
            assert!(files.iter().any(|x| x == f), "{f} in {files:?}");
        }
        let tomorrow = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)?
            .as_secs()
            + 86_400;
        let (files, _) = changed_files(&root.canonicalize()?, Some(tomorrow));
        assert!(
            !files.iter().any(|x| x == "old.py"),
            "not committed since: {files:?}"
        );
        assert!(files.iter().any(|x| x == "edited.py"));
        Ok(())
    }
}
