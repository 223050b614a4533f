//! Which concept of the lesson a question is about.
//!
//! Scores every concept from evidence:
//! - cue words in the question: 3 each;
//! - error fragments in the question: 5 each (a fragment contained in a longer
//!   matched fragment of another concept does not count — the most specific
//!   message wins);
//! - words of its title or id in the question: 2 each;
//! - failing objectives that name it: 4 in a review, 2 otherwise;
//! - the question's words in the concept's section prose, questions and hints:
//!   1 each, at most 3;
//! - cue words in the reviewed code: 1 each, at most 3.
//!
//! The highest score wins; ties go to the concept coached last on this lesson,
//! then to lesson order. With no evidence at all: the concept coached last, else
//! the lesson's first concept. Invariant: deterministic, and every choice
//! carries the evidence that made it (shown in `--json` sources), so a wrong
//! guess can be traced.

use crate::material::{ConceptMaterial, LessonMaterial};
use crate::words;

/// Inputs beyond the question.
#[derive(Debug, Clone, Default)]
pub struct LocateInput<'a> {
    /// The learner's question ("" for a bare review).
    pub question: &'a str,
    /// Text of the reviewed files.
    pub code: Vec<&'a str>,
    /// Ids of objectives failing now (review) or at the latest check.
    pub failing: Vec<String>,
    /// Whether this is a review (failing objectives weigh more).
    pub review: bool,
    /// The concept coached last on this lesson.
    pub last_concept: Option<&'a str>,
}

/// The chosen concept and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Index into the lesson's concepts.
    pub index: usize,
    /// Human-readable evidence ("cue \"lock\" in the question").
    pub evidence: Vec<String>,
    /// Error fragments of this concept found in the question.
    pub errors_matched: Vec<String>,
    /// The misconception stated in the question, if any.
    pub misconception: Option<String>,
}

/// Finds the concept; `None` only when the lesson has no concepts.
pub fn locate(lesson: &LessonMaterial, input: &LocateInput<'_>) -> Option<Located> {
    if lesson.concepts.is_empty() {
        return None;
    }
    let q = words::tokens(input.question);
    let code_toks: Vec<Vec<String>> = input.code.iter().map(|t| words::tokens(t)).collect();
    // Every error fragment of the lesson found in the question, minus those
    // shadowed by a longer matched fragment that contains them: the most
    // specific message wins ("is not JSON" yields to the whole TypeError line).
    let matched: Vec<String> = lesson
        .concepts
        .iter()
        .flat_map(|c| &c.errors)
        .filter(|e| words::contains_fragment(input.question, e))
        .cloned()
        .collect();
    let specific: Vec<String> = matched
        .iter()
        .filter(|e| {
            let low = e.to_lowercase();
            !matched
                .iter()
                .any(|o| o.len() > e.len() && o.to_lowercase().contains(&low))
        })
        .cloned()
        .collect();
    let mut scored: Vec<(usize, Vec<String>, Vec<String>)> = Vec::new();
    for concept in &lesson.concepts {
        let (score, evidence, errors) = score(concept, lesson, input, &q, &code_toks, &specific);
        scored.push((score, evidence, errors));
    }
    let last_idx = input
        .last_concept
        .and_then(|id| lesson.concepts.iter().position(|c| c.id == id));
    let best_score = scored.iter().map(|s| s.0).max().unwrap_or(0);
    let index = if best_score == 0 {
        last_idx.unwrap_or(0)
    } else {
        match last_idx {
            Some(i) if scored[i].0 == best_score => i,
            _ => scored.iter().position(|s| s.0 == best_score).unwrap_or(0),
        }
    };
    let (_, mut evidence, errors_matched) = scored.swap_remove(index);
    if best_score == 0 {
        evidence.push(match last_idx {
            Some(_) => "no clue in the question: staying with the concept coached last".to_string(),
            None => "no clue in the question: starting with the lesson's first concept".to_string(),
        });
    }
    let misconception = lesson.concepts[index]
        .misconceptions
        .iter()
        .find(|m| words::states_belief(&q, m))
        .cloned();
    Some(Located {
        index,
        evidence,
        errors_matched,
        misconception,
    })
}

fn score(
    concept: &ConceptMaterial,
    lesson: &LessonMaterial,
    input: &LocateInput<'_>,
    q: &[String],
    code: &[Vec<String>],
    specific_errors: &[String],
) -> (usize, Vec<String>, Vec<String>) {
    let mut score = 0;
    let mut evidence = Vec::new();
    let mut errors = Vec::new();
    for cue in &concept.cues {
        if words::contains_phrase(q, cue) {
            // A longer phrase is more specific: one more point per extra word.
            score += 3 + words::tokens(cue).len().saturating_sub(1);
            evidence.push(format!("cue \"{cue}\" in the question"));
        }
    }
    for err in &concept.errors {
        if specific_errors.contains(err) {
            score += 5;
            evidence.push(format!("error \"{err}\" in the question"));
            errors.push(err.clone());
        }
    }
    let title_words = words::content_words(&format!(
        "{} {}",
        concept.title,
        concept.id.replace('_', " ")
    ));
    for w in title_words.iter().filter(|w| w.len() > 3) {
        if q.contains(w) {
            score += 2;
            evidence.push(format!(
                "\"{w}\" (from the concept's title) in the question"
            ));
        }
    }
    for id in &input.failing {
        if lesson
            .objective(id)
            .is_some_and(|o| o.concept == concept.id)
        {
            score += if input.review { 4 } else { 2 };
            evidence.push(format!("objective `{id}` is failing"));
        }
    }
    // Weak evidence: the question's own words in the concept's teaching text
    // (its section's prose, questions and hints) — 1 each, at most 3.
    let teaching = words::tokens(&format!(
        "{} {} {}",
        concept.section_text.as_deref().unwrap_or(""),
        concept.questions.join(" "),
        concept.hints.join(" ")
    ));
    let shared: Vec<String> = words::content_words(input.question)
        .into_iter()
        .filter(|w| w.len() > 3 && teaching.contains(w))
        .take(3)
        .collect();
    if !shared.is_empty() {
        score += shared.len();
        evidence.push(format!(
            "words of the lesson's text in the question: {}",
            shared.join(", ")
        ));
    }
    let code_hits = concept
        .cues
        .iter()
        .filter(|cue| code.iter().any(|toks| words::contains_phrase(toks, cue)))
        .take(3)
        .count();
    if code_hits > 0 {
        score += code_hits;
        evidence.push(format!("{code_hits} cue word(s) in your code"));
    }
    (score, evidence, errors)
}

/// The shortest error fragment that may move an answer to another lesson.
pub const MIN_CROSS_FRAGMENT: usize = 12;

/// An error message of a question, found in some lesson's material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorHit {
    /// The lesson that teaches it.
    pub lesson: u32,
    /// The concept id there.
    pub concept: String,
    /// The fragment matched.
    pub fragment: String,
}

/// Every error fragment of every lesson found in `question`, the most
/// specific only (a fragment contained in a longer matched one is dropped),
/// longest first; among equals, `prefer`'s lesson first, then lesson order.
/// When `prefer`'s lesson has a hit of its own, only its hits are kept (the
/// lesson asked about knows the message); a fragment shorter than
/// [`MIN_CROSS_FRAGMENT`] characters never moves the answer to another lesson.
pub fn error_hits(question: &str, lessons: &[&LessonMaterial], prefer: u32) -> Vec<ErrorHit> {
    let mut hits: Vec<ErrorHit> = Vec::new();
    for l in lessons {
        for c in &l.concepts {
            for e in &c.errors {
                if words::contains_fragment(question, e) {
                    hits.push(ErrorHit {
                        lesson: l.number,
                        concept: c.id.clone(),
                        fragment: e.clone(),
                    });
                }
            }
        }
    }
    if hits.iter().any(|h| h.lesson == prefer) {
        hits.retain(|h| h.lesson == prefer);
    } else {
        hits.retain(|h| h.fragment.len() >= MIN_CROSS_FRAGMENT);
    }
    let frags: Vec<String> = hits.iter().map(|h| h.fragment.to_lowercase()).collect();
    hits.retain(|h| {
        let low = h.fragment.to_lowercase();
        !frags
            .iter()
            .any(|o| o.len() > low.len() && o.contains(&low))
    });
    hits.sort_by_key(|h| {
        (
            std::cmp::Reverse(h.fragment.len()),
            h.lesson != prefer,
            h.lesson,
        )
    });
    hits
}
