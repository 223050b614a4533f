//! The coach's view of a lesson: the front-matter fields it teaches from.
//!
//! The loader (`statecraft_learn::lesson`) owns parsing and validation; this
//! module only holds what the coach reads, so the coaching logic can be tested
//! over small hand-made lessons. Invariant: a [`LessonMaterial`] built by
//! [`LessonMaterial::from_lesson`] has every concept the loader validated
//! (≥ 2 questions, 3 hints, ≥ 1 experiment, patterns with a gap); material built
//! by hand may be thinner, and the composer tolerates that (it fills questions
//! from the generic material and never shows a pattern without a gap).

use std::path::PathBuf;

/// The marker that opens every gap in a partial pattern (the loader's).
pub use statecraft_learn::lesson::GAP_MARKER;

/// The language a learner writes in; picks the partial pattern shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Python with asyncio (the default).
    #[default]
    Python,
    /// Rust with tokio.
    Rust,
}

impl Lang {
    /// Parses `python`/`rust` (case-insensitive; `py`/`rs` accepted).
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "python" | "py" | "python3" => Some(Lang::Python),
            "rust" | "rs" => Some(Lang::Rust),
            _ => None,
        }
    }

    /// The fence info string for code in this language.
    pub fn fence(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Rust => "rust",
        }
    }
}

/// Partial patterns of one concept, one per language; each should hold [`GAP_MARKER`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns {
    /// The Python (asyncio) pattern.
    pub python: String,
    /// The Rust (tokio) pattern.
    pub rust: String,
}

impl Patterns {
    /// The pattern for `lang`.
    pub fn for_lang(&self, lang: Lang) -> &str {
        match lang {
            Lang::Python => &self.python,
            Lang::Rust => &self.rust,
        }
    }
}

/// One concept of a lesson and its coaching material.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConceptMaterial {
    /// Unique id in the lesson (`single_writer`).
    pub id: String,
    /// Human title (`One writer per key`).
    pub title: String,
    /// The prose heading that teaches it.
    pub section: String,
    /// The prose of that section, when known (sent to the LLM as the lesson excerpt).
    pub section_text: Option<String>,
    /// Lowercase words and phrases in questions that point here.
    pub cues: Vec<String>,
    /// Error-message fragments that point here.
    pub errors: Vec<String>,
    /// Common wrong beliefs about the concept.
    pub misconceptions: Vec<String>,
    /// Guiding questions.
    pub questions: Vec<String>,
    /// Hints from gentle (index 0) to most direct (index 2).
    pub hints: Vec<String>,
    /// "Predict, then run" experiments.
    pub experiments: Vec<String>,
    /// Partial patterns with gaps.
    pub patterns: Patterns,
}

/// One objective of a lesson: what a check proves and the concept behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectiveMaterial {
    /// Unique id in the lesson.
    pub id: String,
    /// What the objective asks, for humans.
    pub text: String,
    /// The check id that grades it.
    pub check: String,
    /// What passing means, for humans.
    pub target: String,
    /// The concept to revisit when it fails.
    pub concept: String,
}

/// Everything the coach reads from one lesson.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LessonMaterial {
    /// The lesson number.
    pub number: u32,
    /// The slug (`basics`).
    pub slug: String,
    /// The title.
    pub title: String,
    /// The one-paragraph summary.
    pub summary: String,
    /// What the previous phase gave the learner.
    pub prev: String,
    /// What the next phase builds on this one.
    pub next: String,
    /// The file the lesson came from (for sources and messages).
    pub path: PathBuf,
    /// The objectives, in lesson order.
    pub objectives: Vec<ObjectiveMaterial>,
    /// The concepts, in lesson order (the first is the default concept).
    pub concepts: Vec<ConceptMaterial>,
}

impl LessonMaterial {
    /// The concept with this id.
    pub fn concept(&self, id: &str) -> Option<&ConceptMaterial> {
        self.concepts.iter().find(|c| c.id == id)
    }

    /// The objective with this id.
    pub fn objective(&self, id: &str) -> Option<&ObjectiveMaterial> {
        self.objectives.iter().find(|o| o.id == id)
    }
}

impl LessonMaterial {
    /// The coach's view of a loaded (hence validated) lesson, with each
    /// concept's section prose attached.
    pub fn from_lesson(lesson: &statecraft_learn::lesson::Lesson) -> LessonMaterial {
        LessonMaterial {
            number: lesson.number,
            slug: lesson.slug.clone(),
            title: lesson.title.clone(),
            summary: lesson.summary.clone(),
            prev: lesson.prev.clone(),
            next: lesson.next.clone(),
            path: lesson.origin.path(),
            objectives: lesson
                .objectives
                .iter()
                .map(|o| ObjectiveMaterial {
                    id: o.id.clone(),
                    text: o.text.clone(),
                    check: o.check.clone(),
                    target: o.target.clone(),
                    concept: o.concept.clone(),
                })
                .collect(),
            concepts: lesson
                .concepts
                .iter()
                .map(|c| ConceptMaterial {
                    id: c.id.clone(),
                    title: c.title.clone(),
                    section: c.section.clone(),
                    section_text: lesson.section_text(&c.section).map(str::to_string),
                    cues: c.cues.clone(),
                    errors: c.errors.clone(),
                    misconceptions: c.misconceptions.clone(),
                    questions: c.questions.clone(),
                    hints: c.hints.to_vec(),
                    experiments: c.experiments.clone(),
                    patterns: Patterns {
                        python: c.patterns.python.clone(),
                        rust: c.patterns.rust.clone(),
                    },
                })
                .collect(),
        }
    }
}

/// Loads lesson `number` (the workspace's `lessons/` first, then the built-in
/// copy) into the coach's view. The error names the paths that were tried.
pub fn load(
    number: u32,
    workspace: Option<&std::path::Path>,
) -> Result<LessonMaterial, crate::CoachError> {
    statecraft_learn::lesson::load_lesson(number, workspace)
        .map(|l| LessonMaterial::from_lesson(&l))
        .map_err(|e| crate::CoachError::Lesson(e.to_string()))
}

/// Every built-in lesson's number (1–9), from the names of the compiled-in files.
pub fn builtin_numbers() -> Vec<u32> {
    statecraft_learn::builtin::lessons()
        .iter()
        .filter_map(|(name, _)| name.get(..3)?.parse().ok())
        .collect()
}

/// The other lessons of the course (the workspace's copy first, else the
/// built-in one), for looking an error message up across lessons. A lesson
/// that fails to load is left out: the current lesson still answers.
pub fn library(workspace: &std::path::Path, except: u32) -> Vec<LessonMaterial> {
    builtin_numbers()
        .into_iter()
        .filter(|n| *n != except)
        .filter_map(|n| load(n, Some(workspace)).ok())
        .collect()
}

impl LessonMaterial {
    /// Adds the playbook's extra cue phrases and error messages of this
    /// lesson's concepts (how learners ask, other Python versions' wording).
    pub fn augment(&mut self, book: &crate::playbook::Playbook) {
        let number = self.number;
        for c in &mut self.concepts {
            for cue in book.extra_cues(number, &c.id) {
                if !c.cues.contains(cue) {
                    c.cues.push(cue.clone());
                }
            }
            for e in book
                .errors
                .iter()
                .filter(|e| e.lesson == number && e.concept == c.id)
            {
                if !c.errors.contains(&e.fragment) {
                    c.errors.push(e.fragment.clone());
                }
            }
        }
    }
}
