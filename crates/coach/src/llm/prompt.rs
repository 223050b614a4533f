//! The request the LLM coach sends: the project's teaching system prompt and a
//! user message holding everything the offline coach knows.
//!
//! Invariant: the system prompt is `prompts/system.md`, compiled in and sent
//! verbatim; the user message always names the lesson, the concept's section,
//! the calibration level and the learner's language, and carries the offline
//! coach's chosen material — so a model that ignores half of it still has the
//! lesson's own questions, hints and gapped pattern in front of it.

use crate::calibrate::Mode;
use crate::checks::ReviewChecks;
use crate::judge::CodeContext;
use crate::material::Lang;
use crate::session::{Ask, Session};

/// The project's teaching system prompt.
pub const SYSTEM_PROMPT: &str = include_str!("../../prompts/system.md");

/// Lesson prose sent per concept, at most (characters).
const MAX_SECTION_CHARS: usize = 6_000;

/// A ready-to-send request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The system prompt.
    pub system: String,
    /// The user message.
    pub user: String,
    /// The learner's language.
    pub lang: Lang,
    /// The lesson's partial pattern in that language (the guard's replacement).
    pub fallback_pattern: String,
    /// What the guard compares code blocks with (the lesson's patterns, the learner's code).
    pub code: CodeContext,
    /// Whether the answer must have the six parts (a guide answer; a discovery has its own).
    pub six_parts: bool,
}

impl Prompt {
    /// Builds the request from a prepared session.
    pub fn from_session(s: &Session) -> Prompt {
        let a = &s.answer;
        let lesson = &s.lesson;
        let concept = lesson.concept(&a.concept.id);
        let lang = s.settings.lang;
        let mut u = String::new();
        u.push_str(&format!(
            "# Lesson {}: {}\n\n{}\n",
            lesson.number, lesson.title, lesson.summary
        ));
        if !lesson.prev.is_empty() {
            u.push_str(&format!("\nPrevious phase: {}\n", lesson.prev));
        }
        if !lesson.next.is_empty() {
            u.push_str(&format!("Next phase: {}\n", lesson.next));
        }
        u.push_str(&format!(
            "\n## The concept: {} (lesson section \"{}\")\n\n",
            a.concept.title, a.concept.section
        ));
        match concept.and_then(|c| c.section_text.as_deref()) {
            Some(text) => {
                let cut: String = text.chars().take(MAX_SECTION_CHARS).collect();
                u.push_str(&cut);
                u.push('\n');
            }
            None => u.push_str("(the section's prose is not available)\n"),
        }
        if let Some(c) = concept
            && !c.misconceptions.is_empty()
        {
            u.push_str("\nCommon misconceptions:\n");
            for m in &c.misconceptions {
                u.push_str(&format!("- {m}\n"));
            }
        }

        u.push_str("\n## The learner\n\n");
        u.push_str(&format!("Writes: {}\n", lang.fence()));
        match &s.ask {
            Ask::Question(q) => u.push_str(&format!(
                "Kind of question: {}\nQuestion:\n\n{q}\n",
                a.kind.label()
            )),
            Ask::Review => u.push_str("Asked for a review of their work (no question).\n"),
        }

        u.push_str("\n## Calibration\n\n");
        match a.mode {
            Mode::Guide => u.push_str(&format!("Calibration level: {}\n", a.level as u8)),
            Mode::Discovery => {
                u.push_str("Calibration: discovery (a check now passes after failing)\n")
            }
        }
        u.push_str(&format!(
            "Why: {}\nMinutes on this concept: {}\nEarlier asks on it: {}\n",
            serde_json::to_string(&a.calibration.reason).unwrap_or_default(),
            a.calibration.minutes_on_concept,
            a.calibration.earlier_asks
        ));

        if !s.review.excerpts.is_empty() || s.review.changed_count > 0 {
            u.push_str("\n## Their code (excerpts)\n\n");
            if s.review.changed_count > 0 {
                u.push_str(&format!(
                    "Files changed since the last coaching: {}\n",
                    s.review.changed.join(", ")
                ));
            }
            for ex in &s.review.excerpts {
                let why = ex.anchor.map(|a| a.describe()).unwrap_or("their program");
                u.push_str(&format!(
                    "\n{} ({why}), with line numbers:\n```\n",
                    ex.title()
                ));
                for (i, line) in ex.lines.iter().enumerate() {
                    u.push_str(&format!("{:>4} {line}\n", ex.first_line + i));
                }
                u.push_str("```\n");
                for p in &ex.pointers {
                    u.push_str(&format!("- line {}: `{}` — {}\n", p.line, p.code, p.why));
                }
            }
            u.push_str(
                "\nRefer to this code in your answer: name the function, the line numbers, the \
                 variables and calls it uses.\n",
            );
        }

        match &s.checks {
            ReviewChecks::Ran(figures) => {
                u.push_str("\n## Check results\n\n");
                for f in figures {
                    u.push_str(&format!(
                        "- {} {}: measured {}, target {}\n",
                        if f.passed { "PASS" } else { "FAIL" },
                        f.objective,
                        f.figure,
                        f.target
                    ));
                }
            }
            ReviewChecks::Unavailable(why) => {
                u.push_str(&format!(
                    "\n## Check results\n\nThe checks could not run: {why}\n"
                ));
            }
            ReviewChecks::NotRun => {}
        }

        u.push_str("\n## The offline coach's chosen material (use it; keep every gap)\n\n");
        u.push_str(&a.to_markdown());
        u.push_str(&format!(
            "\n## Your answer\n\nAnswer the learner now, in the six parts, at the calibration above, in {}. \
             Name the lesson section \"{}\". Any code block longer than 6 lines must contain \
             `TODO: YOUR CODE HERE` gaps.\n",
            lang.fence(),
            a.concept.section
        ));

        let mut patterns: Vec<String> = lesson
            .concepts
            .iter()
            .flat_map(|c| [c.patterns.python.clone(), c.patterns.rust.clone()])
            .collect();
        if let Ok(book) = crate::playbook::Playbook::builtin() {
            patterns.extend(book.profiling.patterns.values().cloned());
        }
        let mut learner: Vec<String> = Vec::new();
        for ex in &s.review.excerpts {
            match std::fs::read_to_string(s.workspace.join(&ex.path)) {
                Ok(text) => learner.push(text),
                Err(_) => learner.push(ex.lines.join("\n")),
            }
        }
        Prompt {
            six_parts: a.mode == Mode::Guide,
            code: CodeContext {
                patterns,
                learner,
                missing: Vec::new(),
            },
            system: SYSTEM_PROMPT.to_string(),
            user: u,
            lang,
            fallback_pattern: concept
                .map(|c| c.patterns.for_lang(lang).trim_matches('\n').to_string())
                .unwrap_or_default(),
        }
    }
}
