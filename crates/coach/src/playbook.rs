//! The coach's own playbook (`material/playbook.toml`, compiled in): how kinds of
//! question are recognised and answered, the teaching techniques, profiling.
//!
//! Invariant: the playbook is data, read by code (STYLE.md rule 7) — templates
//! here are filled with [`fill`] and never carry lesson-specific content; every
//! code pattern in it holds the gap marker (a unit test enforces it).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::CoachError;
use crate::material::Lang;

const PLAYBOOK_TOML: &str = include_str!("../material/playbook.toml");

/// How one kind of question is recognised and answered.
#[derive(Debug, Clone, Deserialize)]
pub struct KindPlay {
    /// Words/phrases that signal this kind (1 point each).
    pub signals: Vec<String>,
    /// Raw fragments that signal it strongly (3 points each).
    #[serde(default)]
    pub markers: Vec<String>,
    /// How to name the gap, generically.
    pub gap: String,
    /// Generic guiding questions for this kind.
    pub questions: Vec<String>,
    /// The technique that fits this kind.
    pub technique: String,
}

/// Material for a `review` without a question.
#[derive(Debug, Clone, Deserialize)]
pub struct ReviewPlay {
    /// Acknowledgement of having run the checks at all.
    pub acknowledge_none: String,
    /// Generic questions about check results.
    pub questions: Vec<String>,
}

/// The teaching techniques, as templates.
#[derive(Debug, Clone, Deserialize)]
pub struct Techniques {
    /// Predict, then test.
    pub predict_then_test: String,
    /// Explain it back.
    pub explain_it_back: String,
    /// An alternative approach.
    pub alternative: String,
    /// Scale it up: 1k → 100k → 1M events/s.
    pub scale_up: String,
    /// Step back from random changes.
    pub stuck_loop: String,
    /// Run the checks.
    pub check: String,
    /// Reread the lesson section.
    pub reread: String,
}

/// Material for the discovery answer (a check that now passes).
#[derive(Debug, Clone, Deserialize)]
pub struct DiscoveryPlay {
    /// Phrases of a question that asks for the discovery answer ("why does it pass now").
    #[serde(default)]
    pub asks: Vec<String>,
    /// The invitation after the facts.
    pub acknowledge: String,
    /// Explain-it-back questions.
    pub questions: Vec<String>,
    /// The link to the next phase.
    pub next: String,
}

/// The profiling method taught for performance questions.
#[derive(Debug, Clone, Deserialize)]
pub struct Profiling {
    /// The method, step by step.
    pub steps: Vec<String>,
    /// The stages a pipe-protocol program has.
    pub stages: Vec<String>,
    /// A stage-timer pattern with gaps, per language.
    pub patterns: BTreeMap<String, String>,
}

impl Profiling {
    /// The stage-timer pattern for `lang`.
    pub fn pattern(&self, lang: Lang) -> &str {
        self.patterns
            .get(lang.fence())
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// An error message the coach knows beyond the lessons' own lists (another
/// Python version's wording, a message two lessons share), mapped to a concept.
#[derive(Debug, Clone, Deserialize)]
pub struct KnownError {
    /// The message fragment, matched ignoring case and runs of whitespace.
    pub fragment: String,
    /// The lesson that teaches it.
    pub lesson: u32,
    /// The concept id in that lesson.
    pub concept: String,
}

/// Extra cue phrases for a lesson's concept (how learners actually ask).
#[derive(Debug, Clone, Deserialize)]
pub struct ExtraCues {
    /// The lesson.
    pub lesson: u32,
    /// The concept id.
    pub concept: String,
    /// Phrases (matched on word boundaries).
    pub cues: Vec<String>,
}

/// The whole playbook.
#[derive(Debug, Clone, Deserialize)]
pub struct Playbook {
    /// Error messages looked up across every lesson.
    #[serde(default)]
    pub errors: Vec<KnownError>,
    /// Extra cues per concept.
    #[serde(default)]
    pub cues: Vec<ExtraCues>,
    /// Per kind of question, keyed `bug`, `performance`, `design`, `stuck`, `conceptual`.
    pub kinds: BTreeMap<String, KindPlay>,
    /// Review material.
    pub review: ReviewPlay,
    /// Techniques.
    pub techniques: Techniques,
    /// Discovery material.
    pub discovery: DiscoveryPlay,
    /// Profiling method.
    pub profiling: Profiling,
}

impl Playbook {
    /// Extra cue phrases for `concept` of `lesson`.
    pub fn extra_cues(&self, lesson: u32, concept: &str) -> impl Iterator<Item = &String> {
        self.cues
            .iter()
            .filter(move |c| c.lesson == lesson && c.concept == concept)
            .flat_map(|c| c.cues.iter())
    }

    /// Parses the built-in playbook.
    pub fn builtin() -> Result<Playbook, CoachError> {
        let book: Playbook =
            toml::from_str(PLAYBOOK_TOML).map_err(|e| CoachError::Material(e.to_string()))?;
        for kind in crate::classify::QuestionKind::ALL {
            if kind != crate::classify::QuestionKind::Review
                && !book.kinds.contains_key(kind.as_str())
            {
                return Err(CoachError::Material(format!(
                    "no [kinds.{}]",
                    kind.as_str()
                )));
            }
        }
        Ok(book)
    }

    /// The play for `kind` (`review` borrows `bug`'s, which is never used for text).
    pub fn kind(&self, kind: crate::classify::QuestionKind) -> Option<&KindPlay> {
        self.kinds.get(kind.as_str())
    }
}

/// Values substituted into playbook templates.
#[derive(Debug, Clone, Default)]
pub struct Fill<'a> {
    /// The concept's title.
    pub concept: &'a str,
    /// The concept's lesson section.
    pub section: &'a str,
    /// The lesson number.
    pub lesson: u32,
    /// An experiment of the concept.
    pub experiment: &'a str,
    /// The learner's program command.
    pub command: &'a str,
    /// The lesson's `next` line.
    pub next: &'a str,
}

/// Fills a template's `{placeholders}`.
pub fn fill(template: &str, f: &Fill<'_>) -> String {
    template
        .replace("{concept}", f.concept)
        .replace("{section}", f.section)
        .replace("{lesson}", &f.lesson.to_string())
        .replace("{experiment}", f.experiment)
        .replace("{command}", f.command)
        .replace("{next}", f.next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::material::GAP_MARKER;

    #[test]
    fn builtin_playbook_parses_and_its_patterns_have_gaps() -> Result<(), CoachError> {
        let book = Playbook::builtin()?;
        for lang in [Lang::Python, Lang::Rust] {
            assert!(book.profiling.pattern(lang).contains(GAP_MARKER));
        }
        for (name, play) in &book.kinds {
            assert!(play.questions.len() >= 2, "kind {name} needs 2 questions");
        }
        Ok(())
    }
}
