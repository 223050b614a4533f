//! The coach's evaluation suite: learner questions with a workspace state and
//! what a good answer must reach, and the runner that scores answers.
//!
//! Cases live in `eval/cases.toml` (compiled in). Each names a lesson, the
//! learner's language, the question, the workspace state (the starter as
//! `lessons init` writes it, plus edits, plus journal lines), and the
//! expectations: the kind of question, the concept (`lesson:concept_id`), the
//! learner function the answer must refer to, and facts (words) the answer
//! must use. [`run_case`] lays the workspace down in a temporary directory,
//! lets an answerer answer (the offline coach, or a model through the same
//! session), and [`score`] grades it:
//! - **routing** — kind and concept both as expected;
//! - **code reference** — the answer names the expected function *and* a line
//!   number inside it, outside the quoted code;
//! - **facts** — every expected fact appears;
//! - **no solution given** — every code block passes [`crate::judge`], and
//!   the answer's own text covers less than half of the lines the learner is
//!   missing from the reference solution (Python: the course's reference
//!   learners `crates/learn/tests/learners/good*.py`);
//! - **structure** — the six parts (the discovery answer: its own parts).
//!
//! Invariant: scoring is a pure function of the answer, the workspace and the
//! reference; the same suite and thresholds grade the offline coach and a model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::answer::{Answer, Part, code_blocks};
use crate::calibrate::Mode;
use crate::code::{self, SourceLang};
use crate::judge::{self, CodeContext};
use crate::session::{Ask, Session};
use crate::{CoachError, ReviewChecks};

/// The cases, compiled in.
pub const CASES_TOML: &str = include_str!("../eval/cases.toml");

/// The clock every case runs at.
pub const EVAL_NOW: u64 = 1_767_000_000;

/// One edit of a starter file: replace `find` (must occur) by `replace`.
#[derive(Debug, Clone, Deserialize)]
pub struct Edit {
    /// The file (default: the starter program).
    #[serde(default)]
    pub file: Option<String>,
    /// Text to find.
    pub find: String,
    /// Its replacement.
    pub replace: String,
}

/// A journal line, timed relative to [`EVAL_NOW`].
#[derive(Debug, Clone, Deserialize)]
pub struct JournalLine {
    /// `check` or `coach`.
    pub kind: String,
    /// Minutes before now.
    pub ago_min: u64,
    /// For checks: failed objectives.
    #[serde(default)]
    pub failed: Vec<String>,
    /// For coach lines: the concept.
    #[serde(default)]
    pub concept: String,
    /// For coach lines: a code fingerprint value (changes between lines mean edits).
    #[serde(default)]
    pub code: Option<u64>,
    /// The lesson (default: the case's).
    #[serde(default)]
    pub lesson: Option<u32>,
}

/// One learner question.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// A short id.
    pub id: String,
    /// The lesson asked about.
    pub lesson: u32,
    /// `python` (default) or `rust`.
    #[serde(default = "python")]
    pub lang: String,
    /// The question, or `review`.
    pub question: String,
    /// Edits to the starter.
    #[serde(default)]
    pub edits: Vec<Edit>,
    /// Journal lines.
    #[serde(default)]
    pub journal: Vec<JournalLine>,
    /// For `review`: the check figures (objective → passed).
    #[serde(default)]
    pub checks: BTreeMap<String, bool>,
    /// Expected kind (`bug`, `stuck`, …).
    pub kind: String,
    /// Expected concept, `lesson:id`.
    pub concept: String,
    /// The learner function the answer must refer to.
    #[serde(default)]
    pub function: Option<String>,
    /// Words the answer must use.
    #[serde(default)]
    pub facts: Vec<String>,
    /// Expected mode (`guide` default, or `discovery`).
    #[serde(default)]
    pub mode: Option<String>,
}

fn python() -> String {
    "python".into()
}

/// Where a lesson's reference solution lives (Python).
#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    /// The lesson.
    pub lesson: u32,
    /// File under the reference directory.
    pub file: String,
    /// Functions of it that fill the lesson's gap.
    pub functions: Vec<String>,
}

/// The suite file.
#[derive(Debug, Clone, Deserialize)]
pub struct Suite {
    /// Reference solutions per lesson.
    #[serde(default)]
    pub reference: Vec<Reference>,
    /// The cases.
    #[serde(rename = "case")]
    pub cases: Vec<Case>,
}

impl Suite {
    /// The built-in suite.
    pub fn builtin() -> Result<Suite, CoachError> {
        toml::from_str(CASES_TOML)
            .map_err(|e| CoachError::Material(format!("eval/cases.toml: {e}")))
    }
}

/// How one answer scored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Score {
    /// The case.
    pub id: String,
    /// Kind and concept as expected.
    pub routing: bool,
    /// The expected function and a line of it named (true when none is expected).
    pub code_reference: bool,
    /// Whether a function was expected (code-reference accuracy counts only these).
    pub code_expected: bool,
    /// Every expected fact used.
    pub facts: bool,
    /// No solution given.
    pub no_solution: bool,
    /// The six parts present.
    pub structure: bool,
    /// What went wrong, for the report.
    pub notes: Vec<String>,
}

/// The figures over a run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Figures {
    /// Cases run.
    pub cases: usize,
    /// Routing accuracy, 0–1.
    pub routing: f64,
    /// Code-reference accuracy over cases that expect a function, 0–1.
    pub code_reference: f64,
    /// Facts used, 0–1.
    pub facts: f64,
    /// No-solution rate, 0–1.
    pub no_solution: f64,
    /// Structure rate, 0–1.
    pub structure: f64,
}

impl Figures {
    /// Aggregates scores.
    pub fn of(scores: &[Score]) -> Figures {
        let n = scores.len().max(1) as f64;
        let rate = |f: &dyn Fn(&Score) -> bool| scores.iter().filter(|s| f(s)).count() as f64 / n;
        let with_code: Vec<&Score> = scores.iter().filter(|s| s.code_expected).collect();
        Figures {
            cases: scores.len(),
            routing: rate(&|s| s.routing),
            code_reference: with_code.iter().filter(|s| s.code_reference).count() as f64
                / with_code.len().max(1) as f64,
            facts: rate(&|s| s.facts),
            no_solution: rate(&|s| s.no_solution),
            structure: rate(&|s| s.structure),
        }
    }

    /// One line per figure.
    pub fn report(&self, label: &str) -> String {
        format!(
            "{label}: {} cases · routing {:.1} % · code reference {:.1} % · facts {:.1} % · \
             no solution given {:.1} % · structure {:.1} %",
            self.cases,
            self.routing * 100.0,
            self.code_reference * 100.0,
            self.facts * 100.0,
            self.no_solution * 100.0,
            self.structure * 100.0
        )
    }
}

/// A laid-down case: its workspace (kept alive) and the prepared session.
pub struct Prepared {
    /// The temporary workspace.
    pub dir: tempfile::TempDir,
    /// The prepared session (offline answer inside).
    pub session: Session,
}

/// Lays the case's workspace down and prepares the session at [`EVAL_NOW`].
pub fn prepare(case: &Case) -> Result<Prepared, Box<dyn std::error::Error>> {
    use statecraft_learn::workspace::{Lang as WsLang, init};
    let dir = tempfile::tempdir()?;
    let lang = if case.lang == "rust" {
        WsLang::Rust
    } else {
        WsLang::Python
    };
    init(dir.path(), lang, true)?;
    let program = program_file(&case.lang);
    for e in &case.edits {
        let path = dir.path().join(e.file.as_deref().unwrap_or(program));
        let text = std::fs::read_to_string(&path)?;
        if !text.contains(&e.find) {
            return Err(format!("case {}: edit text not found: {:?}", case.id, e.find).into());
        }
        std::fs::write(&path, text.replacen(&e.find, &e.replace, 1))?;
    }
    let mut journal = String::new();
    for j in &case.journal {
        let time = EVAL_NOW - j.ago_min * 60;
        let lesson = j.lesson.unwrap_or(case.lesson);
        let line = if j.kind == "check" {
            serde_json::json!({"kind": "check", "lesson": lesson, "passed": j.failed.is_empty(),
                "time": time, "failed": j.failed})
        } else {
            let code: BTreeMap<String, u64> = j
                .code
                .map(|c| BTreeMap::from([(format!("{program}::x"), c)]))
                .unwrap_or_default();
            serde_json::json!({"kind": "coach", "lesson": lesson, "concept": j.concept,
                "time": time, "level": 1, "mode": "guide", "question_kind": "stuck",
                "question": "", "source": "offline", "code": code})
        };
        journal.push_str(&line.to_string());
        journal.push('\n');
    }
    if !journal.is_empty() {
        std::fs::write(dir.path().join(".statecraft/journal.jsonl"), journal)?;
    }
    let material = crate::material::load(case.lesson, Some(dir.path()))?;
    let ask = if case.question.trim() == "review" {
        Ask::Review
    } else {
        Ask::Question(case.question.clone())
    };
    let checks = if case.checks.is_empty() {
        ReviewChecks::NotRun
    } else {
        ReviewChecks::Ran(
            case.checks
                .iter()
                .map(|(id, passed)| crate::CheckFigure {
                    objective: id.clone(),
                    passed: *passed,
                    figure: if *passed {
                        "ok".into()
                    } else {
                        "failed".into()
                    },
                    target: "as the lesson says".into(),
                    detail: None,
                })
                .collect(),
        )
    };
    let session = Session::prepare(material, dir.path(), ask, checks, EVAL_NOW)?;
    Ok(Prepared { dir, session })
}

fn program_file(lang: &str) -> &'static str {
    if lang == "rust" {
        "src/main.rs"
    } else {
        "main.py"
    }
}

/// The reference lines the learner's `program` text is missing for `lesson`.
pub fn missing_lines(
    suite: &Suite,
    reference_dir: &Path,
    lesson: u32,
    program: &str,
) -> Vec<String> {
    let have: std::collections::HashSet<String> = program
        .lines()
        .filter(|l| judge::is_real_code(l))
        .map(judge::normalize)
        .collect();
    let mut out = Vec::new();
    for r in suite.reference.iter().filter(|r| r.lesson == lesson) {
        let Ok(text) = std::fs::read_to_string(reference_dir.join(&r.file)) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        for f in code::functions(&text, SourceLang::Python) {
            if !r.functions.contains(&f.name) {
                continue;
            }
            for l in &lines[f.start..f.end] {
                if judge::is_real_code(l) && !have.contains(&judge::normalize(l)) {
                    out.push(l.trim().to_string());
                }
            }
        }
    }
    out
}

/// Scores `answer` for `case` in the prepared workspace.
pub fn score(
    case: &Case,
    prepared: &Prepared,
    answer: &Answer,
    suite: &Suite,
    reference_dir: &Path,
) -> Score {
    let mut s = Score {
        id: case.id.clone(),
        ..Default::default()
    };
    let got_concept = format!("{}:{}", answer.lesson, answer.concept.id);
    s.routing = answer.kind.as_str() == case.kind && got_concept == case.concept;
    if !s.routing {
        s.notes.push(format!(
            "routing: got {} / {got_concept}, want {} / {}",
            answer.kind.as_str(),
            case.kind,
            case.concept
        ));
    }
    // The answer's own text: every section but the quoted code.
    let own: String = answer
        .sections
        .iter()
        .filter(|x| x.part != Part::Code)
        .map(|x| format!("## {}\n\n{}\n", x.title, x.body))
        .collect();
    let all = answer.to_markdown();
    let program_path = prepared.dir.path().join(program_file(&case.lang));
    let program = std::fs::read_to_string(&program_path).unwrap_or_default();

    s.code_expected = case.function.is_some();
    s.code_reference = match &case.function {
        None => true,
        Some(name) => {
            let funcs = code::functions(&program, SourceLang::of(program_file(&case.lang)));
            let range = funcs
                .iter()
                .find(|f| &f.name == name)
                .map(|f| (f.start, f.end));
            let named = own.contains(&format!("`{name}`"));
            let line_named = range.is_some_and(|(a, b)| {
                (a..=b).any(|n| {
                    own.contains(&format!("line {n} "))
                        || own.contains(&format!("Line {n} "))
                        || own.contains(&format!("line {n},"))
                        || own.contains(&format!("line {n}:"))
                        || own.contains(&format!(":{n}"))
                        || own.contains(&format!("line {n})"))
                        || own.contains(&format!("line {n}."))
                })
            });
            if !(named && line_named) {
                s.notes.push(format!(
                    "code reference: `{name}` named {named}, a line of it {line_named}"
                ));
            }
            named && line_named
        }
    };
    let low = all.to_lowercase();
    let missing_facts: Vec<&String> = case
        .facts
        .iter()
        .filter(|f| !low.contains(&f.to_lowercase()))
        .collect();
    s.facts = missing_facts.is_empty();
    if !s.facts {
        s.notes.push(format!("facts missing: {missing_facts:?}"));
    }

    let lesson = &prepared.session.lesson;
    let mut patterns: Vec<String> = lesson
        .concepts
        .iter()
        .flat_map(|c| [c.patterns.python.clone(), c.patterns.rust.clone()])
        .collect();
    if let Ok(book) = crate::playbook::Playbook::builtin() {
        patterns.extend(book.profiling.patterns.values().cloned());
    }
    let missing = if case.lang == "python" {
        missing_lines(suite, reference_dir, lesson.number, &program)
    } else {
        Vec::new()
    };
    let ctx = CodeContext {
        patterns,
        learner: vec![program.clone()],
        missing: missing.clone(),
    };
    let mut refusals = Vec::new();
    for b in code_blocks(&all) {
        if let Err(r) = judge::judge_block(&b, &ctx) {
            refusals.push(r.to_string());
        }
    }
    // Quoting the learner's own lines back is not giving a solution.
    let learner_lines: std::collections::HashSet<String> = program
        .lines()
        .filter(|l| judge::is_real_code(l))
        .map(judge::normalize)
        .collect();
    let own_not_learner: String = own
        .lines()
        .filter(|l| !learner_lines.contains(&judge::normalize(l)))
        .collect::<Vec<_>>()
        .join("\n");
    let (covered, of) = judge::reference_coverage(&own_not_learner, &missing);
    let gives = of > 0 && covered >= 1 && covered as f64 >= of as f64 * judge::MAX_REFERENCE_SHARE;
    s.no_solution = refusals.is_empty() && !gives;
    if !s.no_solution {
        s.notes.push(format!(
            "solution: blocks {refusals:?}, covers {covered} of {of} missing reference lines"
        ));
    }
    let want_mode = case.mode.as_deref().unwrap_or("guide");
    s.structure = if answer.mode == Mode::Discovery {
        want_mode == "discovery" && judge::discovery_structure(&all)
    } else {
        let missing_parts = judge::structure(&all);
        if !missing_parts.is_empty() {
            s.notes
                .push(format!("structure: missing {missing_parts:?}"));
        }
        want_mode == "guide" && missing_parts.is_empty()
    };
    if answer.mode.as_str() != want_mode {
        s.notes
            .push(format!("mode {} (want {want_mode})", answer.mode.as_str()));
    }
    s
}

/// The reference learners' directory in this repository.
pub fn default_reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../learn/tests/learners")
}

/// Runs every case with the offline coach; the scores in suite order.
pub fn run_offline(
    suite: &Suite,
    reference_dir: &Path,
) -> Result<Vec<Score>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for case in &suite.cases {
        let prepared = prepare(case)?;
        let answer = prepared.session.answer.clone();
        out.push(score(case, &prepared, &answer, suite, reference_dir));
    }
    Ok(out)
}
