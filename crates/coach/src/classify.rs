//! What kind of question the learner asked: deterministic rules over its words.
//!
//! Each kind has signal words (1 point) and markers (3 points) in the playbook;
//! symptoms ("isn't", "never", "keeps", "wrong") are `bug` markers, and an
//! error message known to any lesson (or to the playbook's table) counts 3 for
//! `bug`. The highest score wins, ties go to the earlier kind of
//! [`QuestionKind::PRIORITY`], and a question with no signal is conceptual.
//! Invariant: the same question and error list always give the same kind — no
//! randomness, no clock.

use crate::material::LessonMaterial;
use crate::playbook::Playbook;
use crate::words;

/// The kinds of learner question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuestionKind {
    /// Conceptual confusion: what/why.
    Conceptual,
    /// Stuck implementing a piece.
    Stuck,
    /// A bug or an error message.
    Bug,
    /// A design decision between options.
    Design,
    /// A performance problem.
    Performance,
    /// `review` without a question: the checks speak.
    Review,
}

impl QuestionKind {
    /// Every kind.
    pub const ALL: [QuestionKind; 6] = [
        QuestionKind::Conceptual,
        QuestionKind::Stuck,
        QuestionKind::Bug,
        QuestionKind::Design,
        QuestionKind::Performance,
        QuestionKind::Review,
    ];

    /// Tie-break order: a concrete symptom beats a general wish.
    pub const PRIORITY: [QuestionKind; 5] = [
        QuestionKind::Bug,
        QuestionKind::Performance,
        QuestionKind::Design,
        QuestionKind::Stuck,
        QuestionKind::Conceptual,
    ];

    /// The name used in the journal, JSON and the playbook.
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionKind::Conceptual => "conceptual",
            QuestionKind::Stuck => "stuck",
            QuestionKind::Bug => "bug",
            QuestionKind::Design => "design",
            QuestionKind::Performance => "performance",
            QuestionKind::Review => "review",
        }
    }

    /// A human label.
    pub fn label(self) -> &'static str {
        match self {
            QuestionKind::Conceptual => "conceptual question",
            QuestionKind::Stuck => "stuck implementing",
            QuestionKind::Bug => "bug or error",
            QuestionKind::Design => "design decision",
            QuestionKind::Performance => "performance problem",
            QuestionKind::Review => "review",
        }
    }

    /// Whether the learner is writing code (the answer then carries a pattern to complete).
    pub fn is_implementing(self) -> bool {
        matches!(
            self,
            QuestionKind::Stuck | QuestionKind::Bug | QuestionKind::Performance
        )
    }
}

/// Every error fragment of `lessons` and of the playbook's table.
pub fn all_errors(lessons: &[&LessonMaterial], book: &Playbook) -> Vec<String> {
    let mut out: Vec<String> = lessons
        .iter()
        .flat_map(|l| l.concepts.iter().flat_map(|c| c.errors.iter().cloned()))
        .collect();
    out.extend(book.errors.iter().map(|e| e.fragment.clone()));
    out.sort();
    out.dedup();
    out
}

/// Classifies a question. `errors` (see [`all_errors`]) count for `bug`.
pub fn classify(question: &str, errors: &[String], book: &Playbook) -> QuestionKind {
    let toks = words::tokens(question);
    let lower = question.to_lowercase();
    let mut best = (0usize, QuestionKind::Conceptual);
    for kind in QuestionKind::PRIORITY {
        let Some(play) = book.kind(kind) else {
            continue;
        };
        let mut score = play
            .signals
            .iter()
            .filter(|s| signal_in(&toks, &lower, s))
            .count();
        score += 3 * play
            .markers
            .iter()
            .filter(|m| lower.contains(&m.to_lowercase()))
            .count();
        // "Should the controller use A or B?" weighs two options: a design decision.
        if kind == QuestionKind::Design && lower.contains("should") && lower.contains(" or ") {
            score += 3;
        }
        if kind == QuestionKind::Bug {
            // The most specific messages only: a fragment inside a longer
            // matched one ("parallel_speedup:" in "parallel_speedup: 1.1") is
            // the same evidence, not more.
            let matched: Vec<String> = errors
                .iter()
                .filter(|e| words::contains_fragment(question, e))
                .map(|e| e.to_lowercase())
                .collect();
            score += 3 * matched
                .iter()
                .filter(|e| {
                    !matched
                        .iter()
                        .any(|o| o.len() > e.len() && o.contains(e.as_str()))
                })
                .count();
        }
        // Strictly greater: an equal score keeps the earlier (higher-priority) kind.
        if score > best.0 {
            best = (score, kind);
        }
    }
    best.1
}

/// A signal made only of word characters matches on word boundaries; one with
/// punctuation (`events/s`, `doesn't`) matches as raw lowercase text.
fn signal_in(toks: &[String], lower: &str, signal: &str) -> bool {
    if signal
        .chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || c == '_')
    {
        words::contains_phrase(toks, signal)
    } else {
        lower.contains(signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::material::ConceptMaterial;

    fn lesson() -> LessonMaterial {
        LessonMaterial {
            concepts: vec![ConceptMaterial {
                id: "c".into(),
                errors: vec!["dictionary changed size during iteration".into()],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn table_of_questions() -> Result<(), crate::error::CoachError> {
        let book = Playbook::builtin()?;
        let l = all_errors(&[&lesson()], &book);
        let table = [
            (
                "What is the difference between threads and processes?",
                QuestionKind::Conceptual,
            ),
            (
                "Why do we need one writer per key?",
                QuestionKind::Conceptual,
            ),
            (
                "How do I implement the batch deadline? I'm stuck at the TODO",
                QuestionKind::Stuck,
            ),
            (
                "RuntimeError: dictionary changed size during iteration",
                QuestionKind::Bug,
            ),
            (
                "my program hangs when the queue is full, why?",
                QuestionKind::Bug,
            ),
            (
                "Should I use one queue per worker or one global queue?",
                QuestionKind::Design,
            ),
            (
                "threads vs processes for the workers?",
                QuestionKind::Design,
            ),
            (
                "Why is my throughput only 400 events/s?",
                QuestionKind::Performance,
            ),
            (
                "the throughput check fails at 600 events/s",
                QuestionKind::Performance,
            ),
            ("hmm", QuestionKind::Conceptual),
            (
                "My collect_batch function isn't respecting the deadline properly",
                QuestionKind::Bug,
            ),
            (
                "my queue keeps filling up and never drains",
                QuestionKind::Bug,
            ),
            (
                "ValueError: Pipe transport is for pipes/sockets only.",
                QuestionKind::Bug,
            ),
        ];
        for (q, want) in table {
            assert_eq!(classify(q, &l, &book), want, "{q}");
        }
        Ok(())
    }
}
