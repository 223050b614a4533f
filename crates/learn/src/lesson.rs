//! The lesson loader: reads `lessons/NNN_slug.md` files (a TOML front-matter block
//! between two `+++` lines, then Markdown prose), validates them against the
//! contract in `docs/lesson-format.md`, and finds lesson N in a workspace's
//! `lessons/` before falling back to the copy compiled into the binary.
//!
//! Invariant: a [`Lesson`] value only exists if it passed validation. Every
//! objective names a check of [`KNOWN_CHECKS`] and a concept of the same lesson;
//! every concept's `section` is a heading of the prose, it has at least two
//! guiding questions, exactly three hints, at least one experiment, and a Python
//! and a Rust pattern that each hold [`GAP_MARKER`]; ids are unique; the number
//! and slug agree with the file name. The checker and the coach rely on this and
//! do not re-check it: if the loader let a lesson through without, say, a gap in
//! a pattern, the coach could hand out a finished solution.
//!
//! Lookup order ([`load_lesson`], [`list_lessons`]): `<workspace>/lessons/` first
//! (a teacher may edit or add lessons there), then the built-in set
//! ([`crate::builtin`]). A broken workspace lesson is reported, never silently
//! replaced by the built-in one: the teacher who edited it needs to know.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::builtin;

/// The marker that every partial pattern carries where the learner's code goes.
/// The coach refuses to show a pattern without it.
pub const GAP_MARKER: &str = "TODO: YOUR CODE HERE";

/// The directory, inside a workspace, that holds its lesson files.
pub const LESSONS_DIR: &str = "lessons";

/// The check ids of the catalogue in `docs/lesson-format.md`. An objective whose
/// `check` is not one of these is refused. Keep this list and the catalogue in step.
pub const KNOWN_CHECKS: &[&str] = &[
    "protocol",
    "final_state",
    "per_key_order",
    "throughput",
    "deadline",
    "batching",
    "exactly_one_reply",
    "bounded_depth",
    "bounded_memory",
    "ack_after_apply",
    "parallel_order",
    "parallel_speedup",
    "responsive",
    "durable_acks",
    "recovery",
    "fsync_before_ack",
    "stage_timings",
    "percentiles",
    "adaptive_capacity",
    "p95_near_target",
    "offsets_exactly_once",
    "partition_ownership",
    "graceful_sigterm",
    "bad_input",
    "config_errors",
];

/// Why a lesson could not be found, read or accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LessonError {
    /// No lesson file with this number, in any place that was looked at.
    #[error("lesson {number} not found (tried {})", display_paths(tried))]
    NotFound {
        /// The lesson number asked for.
        number: u32,
        /// Every place looked at, in order; globs like `lessons/012_*.md` name a
        /// directory searched for the number's prefix.
        tried: Vec<PathBuf>,
    },
    /// Two files in one directory claim the same lesson number.
    #[error("lesson {number} is ambiguous: {}", display_paths(paths))]
    Ambiguous {
        /// The lesson number asked for.
        number: u32,
        /// The competing files.
        paths: Vec<PathBuf>,
    },
    /// The file is not a front-matter block followed by prose, or the front
    /// matter is not TOML of the expected shape.
    #[error("{}: cannot parse lesson: {message}", path.display())]
    Parse {
        /// The file (or built-in name) being parsed.
        path: PathBuf,
        /// What is wrong, with the line number when known.
        message: String,
    },
    /// The lesson parsed but breaks a rule of `docs/lesson-format.md`.
    #[error("{}: invalid lesson: `{field}` {message}", path.display())]
    Invalid {
        /// The file (or built-in name) being validated.
        path: PathBuf,
        /// The offending field, as a path such as `concepts.single_writer.hints`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Reading a lesson file or directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a lesson's text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LessonOrigin {
    /// A file on disk, typically `<workspace>/lessons/NNN_slug.md`.
    File(PathBuf),
    /// The copy compiled into the binary, by file name (`001_basics.md`).
    Builtin(&'static str),
}

impl LessonOrigin {
    /// The file name (`001_basics.md`), which must agree with the lesson's number
    /// and slug. `None` only for a path with no file name.
    pub fn file_name(&self) -> Option<&str> {
        match self {
            LessonOrigin::File(path) => path.file_name().and_then(|n| n.to_str()),
            LessonOrigin::Builtin(name) => Some(name),
        }
    }

    /// A path to name in messages: the file itself, or `<built-in>/lessons/NAME`.
    pub fn path(&self) -> PathBuf {
        match self {
            LessonOrigin::File(path) => path.clone(),
            LessonOrigin::Builtin(name) => Path::new("<built-in>").join(LESSONS_DIR).join(name),
        }
    }

    /// Whether this lesson came from the binary rather than the workspace.
    pub fn is_builtin(&self) -> bool {
        matches!(self, LessonOrigin::Builtin(_))
    }
}

impl fmt::Display for LessonOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path().display())
    }
}

impl From<PathBuf> for LessonOrigin {
    fn from(path: PathBuf) -> Self {
        LessonOrigin::File(path)
    }
}

impl From<&Path> for LessonOrigin {
    fn from(path: &Path) -> Self {
        LessonOrigin::File(path.to_path_buf())
    }
}

impl Serialize for LessonOrigin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One lesson: its front matter, validated, and its Markdown prose.
#[derive(Debug, Clone, Serialize)]
pub struct Lesson {
    /// The lesson number, from 1; equals the file name's zero-padded prefix.
    pub number: u32,
    /// The slug (`basics`); equals the file name after the prefix.
    pub slug: String,
    /// The title shown in lists and at the top of `lessons show`.
    pub title: String,
    /// One paragraph: what the learner builds and why.
    pub summary: String,
    /// What the previous phase gave the learner (empty for lesson 1).
    pub prev: String,
    /// What the next phase builds on this one (empty for the last lesson).
    pub next: String,
    /// What the learner must achieve, each proven by one check.
    pub objectives: Vec<Objective>,
    /// The ideas the lesson teaches, with the coaching material for each.
    pub concepts: Vec<Concept>,
    /// The classic mistakes the lesson is about, each with the objective that
    /// catches it (the mutation corpus makes each one and checks it fails there).
    pub mistakes: Vec<Mistake>,
    /// The Markdown prose after the front matter.
    pub body: String,
    /// Where the text came from (a workspace file or the built-in copy).
    pub origin: LessonOrigin,
}

/// Something the learner's program must do, proven by one check of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objective {
    /// Unique within the lesson.
    pub id: String,
    /// The objective in a sentence.
    pub text: String,
    /// The id of the check that proves it; one of [`KNOWN_CHECKS`].
    pub check: String,
    /// What passing means, for humans (`≥ 1,000 events/s`).
    pub target: String,
    /// The id of the concept to revisit when the check fails.
    pub concept: String,
}

/// A classic mistake of the lesson: what the program gets wrong, the objective
/// whose check fails on it, and the corpus programs that make it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mistake {
    /// Unique within the lesson.
    pub id: String,
    /// The mistake in a sentence.
    pub text: String,
    /// The id of the objective that fails when a program makes it; empty when
    /// no check can see it deterministically (then [`Mistake::uncaught`] says why).
    #[serde(default)]
    pub objective: String,
    /// The id of the concept it is about (its title appears in the failure).
    pub concept: String,
    /// Corpus programs that make exactly this mistake (file names under
    /// `crates/learn/tests/corpus/`).
    #[serde(default)]
    pub corpus: Vec<String>,
    /// Why no check grades it, when `objective` is empty.
    #[serde(default)]
    pub uncaught: String,
}

/// An idea the lesson teaches, with the material the coach draws on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Concept {
    /// Unique within the lesson.
    pub id: String,
    /// A short human title.
    pub title: String,
    /// The exact text of the `##`/`###` heading that teaches it; see
    /// [`Lesson::section_text`].
    pub section: String,
    /// Lowercase words and phrases that, in a learner's question, point here.
    pub cues: Vec<String>,
    /// Fragments of error messages (Python or Rust) that point here.
    pub errors: Vec<String>,
    /// Wrong beliefs the coach should listen for and correct.
    pub misconceptions: Vec<String>,
    /// Guiding questions (at least two), asked before any hint.
    pub questions: Vec<String>,
    /// Hints from gentle (`[0]`) to most direct (`[2]`), never a full solution.
    pub hints: [String; 3],
    /// "Predict, then measure" experiments (at least one).
    pub experiments: Vec<String>,
    /// Partial code with gaps marked [`GAP_MARKER`].
    pub patterns: Patterns,
}

/// Partial patterns for one concept, one per starter language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patterns {
    /// asyncio code with at least one [`GAP_MARKER`].
    pub python: String,
    /// tokio code with at least one [`GAP_MARKER`].
    pub rust: String,
}

/// A Markdown heading of a lesson's prose, outside code blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heading<'a> {
    /// 1 for `#`, 2 for `##`, up to 6.
    pub level: usize,
    /// The heading text, trimmed, without the `#` marks.
    pub text: &'a str,
}

impl Lesson {
    /// The canonical file name of this lesson (`001_basics.md`).
    pub fn file_name(&self) -> String {
        format!("{}{}.md", lesson_file_name_prefix(self.number), self.slug)
    }

    /// The concept with this id.
    pub fn concept(&self, id: &str) -> Option<&Concept> {
        self.concepts.iter().find(|c| c.id == id)
    }

    /// The objective with this id.
    pub fn objective(&self, id: &str) -> Option<&Objective> {
        self.objectives.iter().find(|o| o.id == id)
    }

    /// The objectives proven by this check id (usually one).
    pub fn objectives_for_check<'a>(
        &'a self,
        check: &'a str,
    ) -> impl Iterator<Item = &'a Objective> + 'a {
        self.objectives.iter().filter(move |o| o.check == check)
    }

    /// The headings of the prose, in order, outside fenced code blocks.
    pub fn headings(&self) -> Vec<Heading<'_>> {
        markdown_lines(&self.body)
            .filter_map(|line| line.heading)
            .collect()
    }

    /// The prose under the first heading whose text equals `heading`, up to the
    /// next heading of the same or a higher level, trimmed. `None` when there is
    /// no such heading. The coach uses this to point a learner at a section.
    pub fn section_text(&self, heading: &str) -> Option<&str> {
        let heading = heading.trim();
        let mut start: Option<(usize, usize)> = None; // (byte offset, level)
        for line in markdown_lines(&self.body) {
            let Some(h) = line.heading else { continue };
            match start {
                None if h.text == heading => start = Some((line.end, h.level)),
                Some((from, level)) if h.level <= level => {
                    return Some(self.body[from..line.start].trim());
                }
                _ => {}
            }
        }
        start.map(|(from, _)| self.body[from..].trim())
    }
}

/// One line of Markdown with its byte range and, if it is one, its heading.
struct MarkdownLine<'a> {
    start: usize,
    end: usize,
    heading: Option<Heading<'a>>,
}

/// Splits Markdown into lines, recognising ATX headings outside ``` / ~~~ fences.
fn markdown_lines(text: &str) -> impl Iterator<Item = MarkdownLine<'_>> {
    let mut offset = 0;
    let mut fence: Option<&str> = None;
    text.split_inclusive('\n').map(move |raw| {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let trimmed = line.trim_start();
        let mut heading = None;
        if let Some(open) = fence {
            if trimmed.starts_with(open) {
                fence = None;
            }
        } else if trimmed.starts_with("```") {
            fence = Some("```");
        } else if trimmed.starts_with("~~~") {
            fence = Some("~~~");
        } else {
            heading = parse_heading(line);
        }
        MarkdownLine {
            start,
            end: offset,
            heading,
        }
    })
}

fn parse_heading(line: &str) -> Option<Heading<'_>> {
    // ATX headings allow up to three spaces of indentation.
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let level = rest.len() - rest.trim_start_matches('#').len();
    if !(1..=6).contains(&level) {
        return None;
    }
    let after = &rest[level..];
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    let text = after.trim();
    // An optional closing sequence of `#`s, preceded by a space.
    let text = match text.trim_end_matches('#') {
        stripped
            if stripped.len() < text.len()
                && (stripped.is_empty() || stripped.ends_with([' ', '\t'])) =>
        {
            stripped.trim_end()
        }
        _ => text,
    };
    Some(Heading { level, text })
}

/// The file-name prefix of lesson `number`: zero-padded to three digits, then an
/// underscore (`1` → `"001_"`, `12` → `"012_"`, `1234` → `"1234_"`).
pub fn lesson_file_name_prefix(number: u32) -> String {
    format!("{number:03}_")
}

/// The lesson number a file name claims (`"012_scale.md"` → `Some(12)`): leading
/// digits, an underscore, and a `.md` extension. `None` for other files (a
/// `README.md` in `lessons/` is not a lesson).
pub fn lesson_number_of_file_name(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".md")?;
    let (digits, slug) = stem.split_once('_')?;
    if digits.is_empty() || slug.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The front matter (TOML) and the prose of a lesson file. Tolerates a UTF-8 BOM
/// and CRLF line ends. Errors are messages for [`LessonError::Parse`].
fn split_front_matter(text: &str) -> Result<(&str, &str, usize), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_end_matches(['\n', '\r']) != "+++" {
        return Err(
            "line 1: a lesson starts with a `+++` line opening its TOML front matter".into(),
        );
    }
    let front_start = first.len();
    let mut offset = front_start;
    for line in lines {
        if line.trim_end_matches(['\n', '\r']) == "+++" {
            let front = &text[front_start..offset];
            let body = &text[offset + line.len()..];
            return Ok((front, body, 2));
        }
        offset += line.len();
    }
    Err("the front matter opened by `+++` on line 1 is never closed by a `+++` line".into())
}

#[derive(Deserialize)]
struct RawLesson {
    number: u32,
    slug: String,
    title: String,
    summary: String,
    #[serde(default)]
    prev: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    objectives: Vec<Objective>,
    #[serde(default)]
    concepts: Vec<RawConcept>,
    #[serde(default)]
    mistakes: Vec<Mistake>,
}

#[derive(Deserialize)]
struct RawConcept {
    id: String,
    title: String,
    section: String,
    #[serde(default)]
    cues: Vec<String>,
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    misconceptions: Vec<String>,
    #[serde(default)]
    questions: Vec<String>,
    #[serde(default)]
    hints: Vec<String>,
    #[serde(default)]
    experiments: Vec<String>,
    #[serde(default)]
    patterns: RawPatterns,
}

#[derive(Deserialize, Default)]
struct RawPatterns {
    python: Option<String>,
    rust: Option<String>,
}

/// Parses and validates one lesson. `origin` names the file (its file name must
/// agree with the lesson's number and slug) and is used in every error.
///
/// # Errors
///
/// [`LessonError::Parse`] when the front matter is missing, unclosed or not TOML
/// of the lesson shape; [`LessonError::Invalid`] when it breaks a rule of
/// `docs/lesson-format.md`, naming the field.
pub fn parse_lesson(text: &str, origin: impl Into<LessonOrigin>) -> Result<Lesson, LessonError> {
    let origin = origin.into();
    let parse_error = |message: String| LessonError::Parse {
        path: origin.path(),
        message,
    };
    let (front, body, first_line) = split_front_matter(text).map_err(parse_error)?;
    let raw: RawLesson = toml::from_str(front).map_err(|err| {
        let message = match err.span() {
            Some(span) => {
                let line = first_line + front[..span.start.min(front.len())].matches('\n').count();
                format!("front matter, line {line}: {}", err.message())
            }
            None => format!("front matter: {}", err.message()),
        };
        parse_error(message)
    })?;
    validate(raw, body.to_string(), origin)
}

fn validate(raw: RawLesson, body: String, origin: LessonOrigin) -> Result<Lesson, LessonError> {
    let invalid = |field: &str, message: String| LessonError::Invalid {
        path: origin.path(),
        field: field.to_string(),
        message,
    };

    if raw.number == 0 {
        return Err(invalid("number", "must be 1 or more".into()));
    }
    if raw.slug.is_empty()
        || !raw
            .slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(invalid(
            "slug",
            format!("{:?} must be lowercase letters, digits and `_`", raw.slug),
        ));
    }
    for (field, value) in [("title", &raw.title), ("summary", &raw.summary)] {
        if value.trim().is_empty() {
            return Err(invalid(field, "must not be empty".into()));
        }
    }
    let expected = format!("{}{}.md", lesson_file_name_prefix(raw.number), raw.slug);
    match origin.file_name() {
        Some(name) if name == expected => {}
        Some(name) => {
            let field = if name.starts_with(&lesson_file_name_prefix(raw.number)) {
                "slug"
            } else {
                "number"
            };
            return Err(invalid(
                field,
                format!(
                    "disagrees with the file name {name:?}: number {} and slug {:?} belong in {expected:?}",
                    raw.number, raw.slug
                ),
            ));
        }
        None => {
            return Err(invalid(
                "number",
                format!("the origin has no file name; expected {expected:?}"),
            ));
        }
    }

    let headings: HashSet<&str> = markdown_lines(&body)
        .filter_map(|l| l.heading.map(|h| h.text))
        .collect();

    let mut concept_ids = HashSet::new();
    let mut concepts = Vec::with_capacity(raw.concepts.len());
    for c in raw.concepts {
        let field = |name: &str| format!("concepts.{}.{name}", c.id);
        if c.id.trim().is_empty() {
            return Err(invalid("concepts.id", "must not be empty".into()));
        }
        if !concept_ids.insert(c.id.clone()) {
            return Err(invalid(
                &field("id"),
                format!("{:?} is used by two concepts", c.id),
            ));
        }
        if !headings.contains(c.section.trim()) {
            return Err(invalid(
                &field("section"),
                format!("{:?} is not a heading of the lesson's prose", c.section),
            ));
        }
        if c.questions.len() < 2 {
            return Err(invalid(
                &field("questions"),
                format!(
                    "has {}; at least 2 guiding questions are required",
                    c.questions.len()
                ),
            ));
        }
        let hints: [String; 3] = c.hints.try_into().map_err(|hints: Vec<String>| {
            invalid(
                &field("hints"),
                format!(
                    "has {}; exactly 3 are required (gentle, more direct, most direct)",
                    hints.len()
                ),
            )
        })?;
        if c.experiments.is_empty() {
            return Err(invalid(
                &field("experiments"),
                "needs at least one experiment".into(),
            ));
        }
        let pattern = |lang: &str, code: Option<String>| match code {
            None => Err(invalid(
                &field(&format!("patterns.{lang}")),
                "is missing".into(),
            )),
            Some(code) if !code.contains(GAP_MARKER) => Err(invalid(
                &field(&format!("patterns.{lang}")),
                format!(
                    "of concept {:?} has no gap: it must contain {GAP_MARKER:?}",
                    c.id
                ),
            )),
            Some(code) => Ok(code),
        };
        let patterns = Patterns {
            python: pattern("python", c.patterns.python)?,
            rust: pattern("rust", c.patterns.rust)?,
        };
        concepts.push(Concept {
            id: c.id,
            title: c.title,
            section: c.section.trim().to_string(),
            cues: c.cues,
            errors: c.errors,
            misconceptions: c.misconceptions,
            questions: c.questions,
            hints,
            experiments: c.experiments,
            patterns,
        });
    }

    let mut objective_ids = HashSet::new();
    for o in &raw.objectives {
        let field = |name: &str| format!("objectives.{}.{name}", o.id);
        if o.id.trim().is_empty() {
            return Err(invalid("objectives.id", "must not be empty".into()));
        }
        if !objective_ids.insert(o.id.as_str()) {
            return Err(invalid(
                &field("id"),
                format!("{:?} is used by two objectives", o.id),
            ));
        }
        if !KNOWN_CHECKS.contains(&o.check.as_str()) {
            return Err(invalid(
                &field("check"),
                format!(
                    "{:?} is not a check of the catalogue (docs/lesson-format.md)",
                    o.check
                ),
            ));
        }
        if !concept_ids.contains(&o.concept) {
            return Err(invalid(
                &field("concept"),
                format!("{:?} is not a concept of this lesson", o.concept),
            ));
        }
    }

    let mut mistake_ids = HashSet::new();
    for m in &raw.mistakes {
        let field = |name: &str| format!("mistakes.{}.{name}", m.id);
        if m.id.trim().is_empty() {
            return Err(invalid("mistakes.id", "must not be empty".into()));
        }
        if !mistake_ids.insert(m.id.as_str()) {
            return Err(invalid(
                &field("id"),
                format!("{:?} is used by two mistakes", m.id),
            ));
        }
        if m.objective.is_empty() {
            if m.uncaught.trim().is_empty() {
                return Err(invalid(
                    &field("uncaught"),
                    "a mistake with no objective must say why no check catches it".into(),
                ));
            }
        } else if !objective_ids.contains(m.objective.as_str()) {
            return Err(invalid(
                &field("objective"),
                format!("{:?} is not an objective of this lesson", m.objective),
            ));
        }
        if !concept_ids.contains(&m.concept) {
            return Err(invalid(
                &field("concept"),
                format!("{:?} is not a concept of this lesson", m.concept),
            ));
        }
    }

    Ok(Lesson {
        number: raw.number,
        slug: raw.slug,
        title: raw.title,
        summary: raw.summary,
        prev: raw.prev,
        next: raw.next,
        objectives: raw.objectives,
        concepts,
        mistakes: raw.mistakes,
        body,
        origin,
    })
}

/// Reads and parses one lesson file.
///
/// # Errors
///
/// [`LessonError::Io`] when the file cannot be read; otherwise as [`parse_lesson`].
pub fn load_lesson_file(path: &Path) -> Result<Lesson, LessonError> {
    let text = std::fs::read_to_string(path).map_err(|source| LessonError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_lesson(&text, path)
}

/// The lesson files of a directory, by number, sorted; files that do not look like
/// lessons (`README.md`) are skipped. A missing directory has no lessons.
fn lesson_files(dir: &Path) -> Result<Vec<(u32, PathBuf)>, LessonError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LessonError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| LessonError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(lesson_number_of_file_name) else {
            continue;
        };
        files.push((number, entry.path()));
    }
    files.sort();
    Ok(files)
}

/// The file of lesson `number` in `dir`: the one file named with
/// [`lesson_file_name_prefix`]`(number)`, any slug, ending in `.md`.
///
/// # Errors
///
/// [`LessonError::NotFound`] (naming `dir/NNN_*.md`) when there is none or `dir` does
/// not exist, [`LessonError::Ambiguous`] when two files claim the number,
/// [`LessonError::Io`] when the directory cannot be read.
pub fn find_lesson(dir: &Path, number: u32) -> Result<PathBuf, LessonError> {
    let prefix = lesson_file_name_prefix(number);
    let mut matches: Vec<PathBuf> = lesson_files(dir)?
        .into_iter()
        .filter(|(_, path)| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|(_, path)| path)
        .collect();
    match matches.len() {
        0 => Err(LessonError::NotFound {
            number,
            tried: vec![dir.join(format!("{prefix}*.md"))],
        }),
        1 => Ok(matches.remove(0)),
        _ => Err(LessonError::Ambiguous {
            number,
            paths: matches,
        }),
    }
}

/// Loads lesson `number`: from `<workspace>/lessons/` when the workspace has it,
/// else the built-in copy.
///
/// # Errors
///
/// [`LessonError::NotFound`] naming every place tried (the workspace glob and the
/// built-in set); a workspace file that fails to read or validate is reported as
/// such, not replaced by the built-in lesson.
pub fn load_lesson(number: u32, workspace_dir: Option<&Path>) -> Result<Lesson, LessonError> {
    let mut tried = Vec::new();
    if let Some(workspace) = workspace_dir {
        match find_lesson(&workspace.join(LESSONS_DIR), number) {
            Ok(path) => return load_lesson_file(&path),
            Err(LessonError::NotFound { tried: t, .. }) => tried.extend(t),
            Err(other) => return Err(other),
        }
    }
    match builtin::lesson(number) {
        Some((name, text)) => parse_lesson(text, LessonOrigin::Builtin(name)),
        None => {
            let glob = format!("{}*.md", lesson_file_name_prefix(number));
            tried.push(Path::new("<built-in>").join(LESSONS_DIR).join(glob));
            Err(LessonError::NotFound { number, tried })
        }
    }
}

/// Every lesson available, sorted by number: the built-in set, with each lesson the
/// workspace's `lessons/` also holds (same number) taken from the workspace, plus
/// lessons only the workspace has.
///
/// # Errors
///
/// The first lesson that fails to read or validate, naming its file.
pub fn list_lessons(workspace_dir: Option<&Path>) -> Result<Vec<Lesson>, LessonError> {
    let mut lessons: Vec<Lesson> = Vec::new();
    if let Some(workspace) = workspace_dir {
        let dir = workspace.join(LESSONS_DIR);
        let files = lesson_files(&dir)?;
        for pair in files.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(LessonError::Ambiguous {
                    number: pair[0].0,
                    paths: vec![pair[0].1.clone(), pair[1].1.clone()],
                });
            }
        }
        for (_, path) in files {
            lessons.push(load_lesson_file(&path)?);
        }
    }
    for (name, text) in builtin::lessons() {
        let number = lesson_number_of_file_name(name);
        if lessons.iter().any(|l| Some(l.number) == number) {
            continue;
        }
        lessons.push(parse_lesson(text, LessonOrigin::Builtin(name))?);
    }
    lessons.sort_by_key(|l| l.number);
    Ok(lessons)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"+++
number = 12
slug = "demo"
title = "A demo"
summary = "Tests the loader."

[[objectives]]
id = "order"
text = "Keeps order."
check = "per_key_order"
target = "all keys"
concept = "writer"

[[concepts]]
id = "writer"
title = "One writer"
section = "One writer per key"
cues = ["race"]
questions = ["Who writes?", "Why one?"]
hints = ["a", "b", "c"]
experiments = ["Predict, then run."]

[concepts.patterns]
python = "x = 1  # TODO: YOUR CODE HERE"
rust = "// TODO: YOUR CODE HERE"
+++
# A demo

## One writer per key

Only one task ever mutates a key.

### Detail

More.

## Next thing

Other.
"#;

    fn origin() -> LessonOrigin {
        LessonOrigin::File(PathBuf::from("/ws/lessons/012_demo.md"))
    }

    #[test]
    fn prefix_is_zero_padded_to_three_digits() {
        assert_eq!(lesson_file_name_prefix(1), "001_");
        assert_eq!(lesson_file_name_prefix(12), "012_");
        assert_eq!(lesson_file_name_prefix(123), "123_");
        assert_eq!(lesson_file_name_prefix(1234), "1234_");
        assert_eq!(lesson_number_of_file_name("012_demo.md"), Some(12));
        assert_eq!(lesson_number_of_file_name("README.md"), None);
    }

    #[test]
    fn valid_lesson_parses_and_sections_are_found() {
        let lesson = parse_lesson(VALID, origin()).expect("valid");
        assert_eq!(lesson.number, 12);
        assert_eq!(lesson.file_name(), "012_demo.md");
        assert_eq!(lesson.concepts[0].hints[2], "c");
        let section = lesson.section_text("One writer per key").expect("section");
        assert!(section.starts_with("Only one task"));
        assert!(
            section.contains("### Detail"),
            "subsections belong to the section"
        );
        assert!(!section.contains("Other."));
        assert_eq!(lesson.section_text("Next thing"), Some("Other."));
        assert_eq!(lesson.section_text("Nope"), None);
    }

    #[test]
    fn crlf_line_ends_are_tolerated() {
        let crlf = VALID.replace('\n', "\r\n");
        let lesson = parse_lesson(&crlf, origin()).expect("valid with CRLF");
        assert_eq!(lesson.section_text("Next thing"), Some("Other."));
    }

    #[test]
    fn missing_lesson_error_names_the_paths_tried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load_lesson(12, Some(dir.path())).expect_err("no lesson 12");
        let expected = dir.path().join("lessons").join("012_*.md");
        match &err {
            LessonError::NotFound { number, tried } => {
                assert_eq!(*number, 12);
                assert!(tried.contains(&expected), "{tried:?}");
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&expected.display().to_string()),
            "{message}"
        );
        assert!(message.contains("012_"), "{message}");
    }

    #[test]
    fn workspace_lesson_is_found_before_builtin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lessons = dir.path().join("lessons");
        std::fs::create_dir(&lessons).expect("mkdir");
        std::fs::write(lessons.join("012_demo.md"), VALID).expect("write");
        std::fs::write(lessons.join("README.md"), "not a lesson").expect("write");
        let lesson = load_lesson(12, Some(dir.path())).expect("found");
        assert_eq!(
            lesson.origin,
            LessonOrigin::File(lessons.join("012_demo.md"))
        );
        let all = list_lessons(Some(dir.path())).expect("list");
        assert!(all.iter().any(|l| l.number == 12));
        assert!(all.windows(2).all(|w| w[0].number < w[1].number));
    }

    #[test]
    fn broken_front_matter_is_a_parse_error_naming_the_file() {
        let broken = VALID.replace("number = 12", "number = = 12");
        match parse_lesson(&broken, origin()) {
            Err(LessonError::Parse { path, message }) => {
                assert_eq!(path, PathBuf::from("/ws/lessons/012_demo.md"));
                assert!(message.contains("line 2"), "{message}");
            }
            other => panic!("expected Parse, got {other:?}"),
        }
        let unclosed = VALID.replacen("+++\n# A demo", "# A demo", 1);
        assert!(matches!(
            parse_lesson(&unclosed, origin()),
            Err(LessonError::Parse { .. })
        ));
        let err = parse_lesson("no front matter", origin()).expect_err("refused");
        assert!(err.to_string().contains("/ws/lessons/012_demo.md"), "{err}");
    }

    #[test]
    fn pattern_without_gap_is_refused_naming_the_concept() {
        let gapless = VALID.replace("rust = \"// TODO: YOUR CODE HERE\"", "rust = \"done()\"");
        let err = parse_lesson(&gapless, origin()).expect_err("refused");
        match &err {
            LessonError::Invalid { field, message, .. } => {
                assert_eq!(field, "concepts.writer.patterns.rust");
                assert!(message.contains("writer"), "{message}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert!(err.to_string().contains("writer"));
    }

    #[test]
    fn rule_violations_name_the_field() {
        let cases = [
            (
                VALID.replace("\"a\", \"b\", \"c\"", "\"a\", \"b\""),
                "concepts.writer.hints",
            ),
            (
                VALID.replace("\"Who writes?\", ", ""),
                "concepts.writer.questions",
            ),
            (
                VALID.replace("experiments = [\"Predict, then run.\"]", ""),
                "concepts.writer.experiments",
            ),
            (
                VALID.replace("section = \"One writer per key\"", "section = \"Absent\""),
                "concepts.writer.section",
            ),
            (
                VALID.replace("check = \"per_key_order\"", "check = \"vibes\""),
                "objectives.order.check",
            ),
            (
                VALID.replace("concept = \"writer\"", "concept = \"ghost\""),
                "objectives.order.concept",
            ),
            (VALID.replace("number = 12", "number = 13"), "number"),
            (VALID.replace("slug = \"demo\"", "slug = \"other\""), "slug"),
        ];
        for (text, expected_field) in cases {
            match parse_lesson(&text, origin()) {
                Err(LessonError::Invalid { field, .. }) => assert_eq!(field, expected_field),
                other => panic!("{expected_field}: expected Invalid, got {other:?}"),
            }
        }
        let twice = VALID.replace(
            "[[concepts]]",
            "[[objectives]]\nid = \"order\"\ntext = \"t\"\ncheck = \"protocol\"\ntarget = \"x\"\nconcept = \"writer\"\n\n[[concepts]]",
        );
        assert!(matches!(
            parse_lesson(&twice, origin()),
            Err(LessonError::Invalid { field, .. }) if field == "objectives.order.id"
        ));
    }

    #[test]
    fn headings_inside_code_blocks_do_not_count() {
        let fenced = VALID.replace(
            "## Next thing",
            "```python\n# Next thing\n```\n\n## Next thing",
        );
        let lesson = parse_lesson(&fenced, origin()).expect("valid");
        let headings = lesson.headings();
        assert_eq!(
            headings.iter().filter(|h| h.text == "Next thing").count(),
            1
        );
        let section = lesson.section_text("One writer per key").expect("section");
        assert!(
            section.contains("# Next thing"),
            "the fenced line stays in the section"
        );
    }

    #[test]
    fn every_builtin_lesson_is_valid() {
        for (name, text) in builtin::lessons() {
            if let Err(err) = parse_lesson(text, LessonOrigin::Builtin(name)) {
                panic!("{err}");
            }
        }
    }
}
