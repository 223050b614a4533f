//! The learner's workspace as the coach sees it: settings and the code to review.
//!
//! Reads `.statecraft/workspace.toml` (`lang`, `command`), finds the files worth
//! looking at — named in the question, changed since the last coaching, the
//! program itself — and cuts from each the function the question is about
//! ([`crate::code`]: a traceback frame, a function named in the question, the
//! failing objective's or the concept's region, the lesson's gap). Invariants:
//! nothing outside the workspace root is read (named paths are resolved and
//! must stay under it); an excerpt is a whole function (at most
//! [`crate::code::MAX_FUNCTION_LINES`] lines), or at most [`EXCERPT_LINES`]
//! lines of a file without functions — never a module docstring; at most
//! [`MAX_FILES`] files are excerpted, and files over [`MAX_FILE_BYTES`] or not
//! UTF-8 are skipped — so reviewing a huge or hostile workspace stays fast and
//! bounded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use serde::Deserialize;

use crate::code::{self, Anchor, CodeQuery, Pointer};
use crate::error::CoachError;
use crate::material::Lang;

/// Lines per excerpt of a file without functions.
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

/// A few lines of one learner file: a whole function when the file has them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Excerpt {
    /// Path relative to the workspace root.
    pub path: String,
    /// Why it was read.
    pub reason: FileReason,
    /// First line shown, 1-based.
    pub first_line: usize,
    /// The lines shown.
    pub lines: Vec<String>,
    /// The function shown, if the excerpt is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Why that function was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
    /// The lines of it an answer names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pointers: Vec<Pointer>,
    /// A fingerprint of every function of the file (name → hash), for
    /// "what changed since you last asked".
    #[serde(skip)]
    pub fingerprints: Vec<(String, u64)>,
}

impl Excerpt {
    /// `path:first-last`.
    pub fn location(&self) -> String {
        let last = self.first_line + self.lines.len().saturating_sub(1);
        format!("{}:{}-{}", self.path, self.first_line, last)
    }

    /// `collect_batch` (main.py:66-73), or the location alone.
    pub fn title(&self) -> String {
        match &self.function {
            Some(f) => format!("`{f}` ({})", self.location()),
            None => format!("`{}`", self.location()),
        }
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
    /// Fingerprints of every function of the excerpted files (`path::name` → hash).
    pub fingerprints: BTreeMap<String, u64>,
    /// Functions of the starter program that differ from the starter as
    /// `lessons init` wrote it (`None`: no starter file was reviewed).
    pub changed_from_starter: Option<Vec<String>>,
}

/// Reviews the workspace: files named in the question, files changed since
/// `since` (unix seconds of the last coaching, if any), and the program; from
/// each, the function `query` points at ([`code::locate_code`]).
pub fn review(
    root: &Path,
    settings: &WorkspaceSettings,
    query: &CodeQuery<'_>,
    since: Option<u64>,
) -> CodeReview {
    let question = query.question;
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
    let mut programs = program_files(&root_canon, &settings.command);
    if programs.is_empty() {
        // `cargo run` names no file: the starter's program files, where they exist.
        programs = ["main.py", "src/main.rs", "main.rs"]
            .iter()
            .filter_map(|p| inside(&root_canon, &root_canon.join(p)))
            .collect();
    }
    for rel in programs {
        push(rel, FileReason::Program, &mut picked);
    }
    let (mut changed, change_source) = changed_files(&root_canon, since);
    changed.sort();
    changed.dedup();
    let changed_count = changed.len();
    for rel in changed.iter().filter(|p| is_source_like(p)) {
        push(rel.clone(), FileReason::Changed, &mut picked);
    }

    let mut excerpts: Vec<Excerpt> = Vec::new();
    for (rel, reason) in picked {
        if excerpts.len() >= MAX_FILES {
            break;
        }
        if let Some(ex) = excerpt(&root_canon, &rel, reason, query) {
            excerpts.push(ex);
        }
    }
    // The excerpt the answer is about comes first: a traceback or a named
    // function beats a file that merely changed.
    excerpts.sort_by_key(|e| match e.anchor {
        Some(Anchor::Traceback) => 0,
        Some(Anchor::ErrorSite) => 0,
        Some(Anchor::Named) => 1,
        Some(Anchor::Question) => 2,
        Some(Anchor::FailingObjective) => 2,
        Some(Anchor::Concept) => 3,
        Some(Anchor::LessonGap) => 4,
        None => 5,
    });
    changed.truncate(MAX_CHANGED_LISTED);
    let mut fingerprints = BTreeMap::new();
    let mut changed_from_starter = None;
    for ex in &excerpts {
        for (name, hash) in &ex.fingerprints {
            fingerprints.insert(format!("{}::{name}", ex.path), *hash);
        }
        let starter = match ex.path.as_str() {
            "main.py" => statecraft_learn::workspace::PYTHON_MAIN,
            "src/main.rs" => statecraft_learn::workspace::RUST_MAIN,
            _ => continue,
        };
        let lines: Vec<&str> = starter.lines().collect();
        let original: BTreeMap<String, u64> =
            code::functions(starter, code::SourceLang::of(&ex.path))
                .iter()
                .map(|f| (f.name.clone(), fingerprint(&lines[f.start - 1..f.end])))
                .collect();
        let differ: Vec<String> = ex
            .fingerprints
            .iter()
            .filter(|(name, hash)| original.get(name) != Some(hash))
            .map(|(name, _)| name.clone())
            .collect();
        changed_from_starter = Some(differ);
    }
    CodeReview {
        excerpts,
        changed,
        changed_count,
        change_source,
        fingerprints,
        changed_from_starter,
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

/// The function of `rel` the query points at (whole, or a window of
/// [`code::MAX_FUNCTION_LINES`] around its anchor), or for a file without
/// functions [`EXCERPT_LINES`] lines around a line the question quotes.
fn excerpt(root: &Path, rel: &str, reason: FileReason, query: &CodeQuery<'_>) -> Option<Excerpt> {
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
    let fingerprints = code::functions(&text, code::SourceLang::of(rel))
        .iter()
        .map(|f| (f.name.clone(), fingerprint(&lines[f.start - 1..f.end])))
        .collect();
    if let Some(found) = code::locate_code(rel, &text, query) {
        let f = &found.function;
        let len = f.end - f.start + 1;
        let (first, last) = if len <= code::MAX_FUNCTION_LINES {
            (f.start, f.end)
        } else {
            let centre = found.line.unwrap_or(f.start);
            let first = centre
                .saturating_sub(code::MAX_FUNCTION_LINES / 2)
                .max(f.start)
                .min(f.end + 1 - code::MAX_FUNCTION_LINES);
            (first, first + code::MAX_FUNCTION_LINES - 1)
        };
        let mut cues = query.concept_cues.clone();
        cues.extend(query.failing_cues.iter().cloned());
        return Some(Excerpt {
            path: rel.to_string(),
            reason,
            first_line: first,
            lines: lines[first - 1..last]
                .iter()
                .map(|l| truncate_line(l))
                .collect(),
            function: Some(f.name.clone()),
            anchor: Some(found.anchor),
            pointers: code::pointers(&lines, f, found.line, found.anchor, &cues, query.question),
            fingerprints,
        });
    }
    // No function to show: a quoted line, else the file's first lines.
    let anchor = code::traceback_lines(query.question, rel)
        .last()
        .copied()
        .filter(|n| *n >= 1 && *n <= lines.len())
        .map_or(0, |n| n - 1);
    let start = anchor
        .saturating_sub(2)
        .min(lines.len().saturating_sub(EXCERPT_LINES));
    Some(Excerpt {
        path: rel.to_string(),
        reason,
        first_line: start + 1,
        lines: lines
            .iter()
            .skip(start)
            .take(EXCERPT_LINES)
            .map(|l| truncate_line(l))
            .collect(),
        function: None,
        anchor: None,
        pointers: Vec::new(),
        fingerprints,
    })
}

/// FNV-1a over a function's lines, whitespace-insensitive at the ends.
fn fingerprint(lines: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for l in lines {
        for b in l.trim().bytes().chain(std::iter::once(b'\n')) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
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
    fn excerpts_are_whole_functions_never_the_docstring() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let mut body =
            String::from("\"\"\"Module.\n\nGaps are marked TODO: YOUR CODE HERE.\n\"\"\"\n\n");
        body.push_str("def route(key):\n    # TODO: YOUR CODE HERE (lesson 1)\n    return 0\n\n");
        body.push_str("async def collect_batch(queue):\n    batch = [await queue.get()]\n    # TODO: YOUR CODE HERE (lesson 2)\n    return batch\n");
        std::fs::write(dir.path().join("main.py"), body)?;
        std::fs::create_dir_all(dir.path().join(".statecraft"))?;
        std::fs::write(
            dir.path().join(".statecraft/workspace.toml"),
            "lang = \"rust\"\ncommand = [\"python3\", \"main.py\"]\n",
        )?;
        let settings = WorkspaceSettings::read(dir.path())?;
        assert_eq!(settings.lang, Lang::Rust);
        let query = CodeQuery {
            question: "help",
            lesson: 2,
            ..Default::default()
        };
        let review = review(dir.path(), &settings, &query, None);
        assert_eq!(review.excerpts.len(), 1);
        let ex = &review.excerpts[0];
        assert_eq!(ex.reason, FileReason::Program);
        assert_eq!(ex.function.as_deref(), Some("collect_batch"));
        assert_eq!(ex.location(), "main.py:10-13");
        assert!(!ex.lines.iter().any(|l| l.contains("Module")));
        assert_eq!(ex.fingerprints.len(), 2);
        Ok(())
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
