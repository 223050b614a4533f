//! One coaching session, steps 2–6 of LEARNING.md "The coach", in order.
//!
//! [`Session::prepare`] reviews the workspace, classifies the question, finds
//! the concept, calibrates from the journal and composes the offline answer;
//! [`Session::record`] appends what was given to the journal. The LLM path
//! (`crate::llm`) sits between the two and uses the prepared session as its
//! material. Invariant: exactly one journal line per answered session, written
//! after the answer is shown, naming the engine that actually answered.

use std::path::{Path, PathBuf};

use crate::answer::Answer;
use crate::calibrate::{Signals, calibrate};
use crate::checks::ReviewChecks;
use crate::classify::{QuestionKind, all_errors, classify};
use crate::code::CodeQuery;
use crate::compose::{Situation, compose};
use crate::error::CoachError;
use crate::journal::{CoachEntry, Journal, JournalEntry};
use crate::locate::{LocateInput, error_hits, locate};
use crate::material::LessonMaterial;
use crate::playbook::Playbook;
use crate::workspace::{CodeReview, WorkspaceSettings, review};

/// What the learner asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// A question, in their words.
    Question(String),
    /// `review`: look at the code and the checks.
    Review,
}

impl Ask {
    /// Parses the words after the lesson number: `review` alone is a review.
    pub fn from_words(words: &[String]) -> Result<Ask, CoachError> {
        let joined = words.join(" ");
        let trimmed = joined.trim();
        if trimmed.eq_ignore_ascii_case("review") {
            Ok(Ask::Review)
        } else if trimmed.is_empty() {
            Err(CoachError::EmptyQuestion)
        } else {
            Ok(Ask::Question(trimmed.to_string()))
        }
    }

    /// The question text ("" for a review).
    pub fn text(&self) -> &str {
        match self {
            Ask::Question(q) => q,
            Ask::Review => "",
        }
    }
}

/// A prepared session: the offline answer and everything it was built from.
#[derive(Debug, Clone)]
pub struct Session {
    /// The lesson that answers (the asked one, or the lesson an error message belongs to).
    pub lesson: LessonMaterial,
    /// The lesson the learner asked about.
    pub asked_lesson: u32,
    /// The workspace root.
    pub workspace: PathBuf,
    /// Workspace settings.
    pub settings: WorkspaceSettings,
    /// The ask.
    pub ask: Ask,
    /// The code review.
    pub review: CodeReview,
    /// Check results (reviews).
    pub checks: ReviewChecks,
    /// The journal as read before answering.
    pub journal: Journal,
    /// The offline coach's answer (shown offline; the LLM's material otherwise).
    pub answer: Answer,
    /// The clock used, unix seconds.
    pub now: u64,
}

impl Session {
    /// Steps 2–5: review, locate, calibrate, compose. `checks` are the results of
    /// running the lesson's checks for a review (`ReviewChecks::NotRun` otherwise).
    pub fn prepare(
        lesson: LessonMaterial,
        workspace: &Path,
        ask: Ask,
        checks: ReviewChecks,
        now: u64,
    ) -> Result<Session, CoachError> {
        if lesson.concepts.is_empty() {
            return Err(CoachError::NoConcepts {
                lesson: lesson.number,
            });
        }
        let book = Playbook::builtin()?;
        let asked_lesson = lesson.number;
        let mut lesson = lesson;
        lesson.augment(&book);
        let mut library = crate::material::library(workspace, asked_lesson);
        for l in &mut library {
            l.augment(&book);
        }
        let settings = WorkspaceSettings::read(workspace)?;
        let journal = Journal::read(workspace)?;
        let last_session = journal.last_coaching().map(|e| e.time);
        let question = ask.text();

        // What kind of question: symptoms and error messages of every lesson.
        let mut all: Vec<&LessonMaterial> = vec![&lesson];
        all.extend(library.iter());
        let kind = match &ask {
            Ask::Review => QuestionKind::Review,
            Ask::Question(q) => classify(q, &all_errors(&all, &book), &book),
        };
        // An error message belongs to the lesson that teaches it.
        let hits = error_hits(question, &all, asked_lesson);
        let cross = hits.first().filter(|h| h.lesson != asked_lesson).cloned();
        if let Some(hit) = &cross
            && let Some(i) = library.iter().position(|l| l.number == hit.lesson)
        {
            lesson = library.swap_remove(i);
        }

        let journal_failing: Vec<String> = if cross.is_some() {
            Vec::new()
        } else {
            journal
                .checks(lesson.number)
                .last()
                .map(|c| c.failed.clone())
                .unwrap_or_default()
        };
        let failing = match &checks {
            ReviewChecks::Ran(_) if cross.is_none() => checks.failing(),
            _ => journal_failing.clone(),
        };
        let last_concept = journal
            .coaching(lesson.number)
            .last()
            .map(|e| e.concept.clone());
        fn locate_input<'a>(
            question: &'a str,
            code: Vec<&'a str>,
            failing: &[String],
            review: bool,
            last_concept: Option<&'a str>,
        ) -> LocateInput<'a> {
            LocateInput {
                question,
                code,
                failing: failing.to_vec(),
                review,
                last_concept,
            }
        }
        let is_review = matches!(ask, Ask::Review);
        // First from the words alone, to know which code to read …
        let first = locate(
            &lesson,
            &locate_input(
                question,
                vec![],
                &failing,
                is_review,
                last_concept.as_deref(),
            ),
        )
        .ok_or(CoachError::NoConcepts {
            lesson: lesson.number,
        })?;
        let cues_of = |idx: usize| lesson.concepts[idx].cues.clone();
        let failing_cues: Vec<String> = failing
            .iter()
            .filter_map(|id| lesson.objective(id))
            .filter_map(|o| lesson.concept(&o.concept))
            .flat_map(|c| c.cues.clone())
            .collect();
        let query = CodeQuery {
            question,
            lesson: lesson.number,
            failing_cues,
            concept_cues: cues_of(first.index),
            lesson_cues: lesson
                .concepts
                .iter()
                .flat_map(|c| c.cues.clone())
                .collect(),
        };
        let review = review(workspace, &settings, &query, last_session);
        // … then with the code read, when the words alone were not enough.
        let code: Vec<String> = review.excerpts.iter().map(|e| e.lines.join("\n")).collect();
        let located = if first.evidence.iter().any(|e| e.starts_with("no clue")) {
            locate(
                &lesson,
                &locate_input(
                    question,
                    code.iter().map(String::as_str).collect(),
                    &failing,
                    is_review,
                    last_concept.as_deref(),
                ),
            )
            .unwrap_or(first)
        } else {
            first
        };

        let discovery_allowed = match &ask {
            Ask::Review => true,
            Ask::Question(q) => {
                let low = q.to_lowercase();
                book.discovery.asks.iter().any(|a| low.contains(a.as_str()))
            }
        };
        let signals = Signals {
            misconception: located.misconception.clone(),
            code_now: review.fingerprints.clone(),
            review_all_pass: checks.all_pass(),
            discovery_allowed,
        };
        let mut concept_idx = located.index;
        let calibration = calibrate(
            &journal,
            &lesson,
            &lesson.concepts[concept_idx].id,
            now,
            &signals,
        );
        // A discovery is about what was fixed: its first objective's concept.
        if let crate::calibrate::Reason::CheckNowPasses { fixed } = &calibration.reason
            && let Some(i) = fixed.iter().find_map(|id| {
                let concept = &lesson.objective(id)?.concept;
                lesson.concepts.iter().position(|c| &c.id == concept)
            })
        {
            concept_idx = i;
        }
        let journal_path = journal.path.display().to_string();
        let journal_count =
            journal.coaching(lesson.number).count() + journal.checks(lesson.number).count();
        let facts = crate::facts::gather(&crate::facts::FactInput {
            journal: &journal,
            lesson: &lesson,
            concept: &lesson.concepts[concept_idx].id,
            checks: &checks,
            review: &review,
            now,
        });
        let answer = compose(
            &Situation {
                lesson: &lesson,
                asked_lesson,
                cross: cross.as_ref(),
                concept: &lesson.concepts[concept_idx],
                located: &located,
                kind,
                calibration: &calibration,
                question,
                review: &review,
                checks: &checks,
                journal_failing: if matches!(checks, ReviewChecks::NotRun) {
                    &journal_failing
                } else {
                    &[]
                },
                settings: &settings,
                journal: (&journal_path, journal_count),
                facts: &facts,
            },
            &book,
        );
        Ok(Session {
            lesson,
            asked_lesson,
            workspace: workspace.to_path_buf(),
            settings,
            ask,
            review,
            checks,
            journal,
            answer,
            now,
        })
    }

    /// Step 6's bookkeeping: appends what was given (by `engine`: `offline` or `llm`).
    pub fn record(&mut self, engine: &str) -> Result<(), CoachError> {
        let a = &self.answer;
        let entry = CoachEntry {
            lesson: self.lesson.number,
            concept: a.concept.id.clone(),
            time: self.now,
            level: a.level as u8,
            mode: a.mode.as_str().to_string(),
            question_kind: a.kind.as_str().to_string(),
            question: self.ask.text().chars().take(500).collect(),
            given: a.given.clone(),
            source: engine.to_string(),
            code: self.review.fingerprints.clone(),
        };
        self.journal.append(JournalEntry::Coach(entry))
    }
}

/// Prepares, and records as offline: the whole offline coach in one call.
pub fn coach_offline(
    lesson: LessonMaterial,
    workspace: &Path,
    ask: Ask,
    checks: ReviewChecks,
    now: u64,
) -> Result<Answer, CoachError> {
    let mut session = Session::prepare(lesson, workspace, ask, checks, now)?;
    session.record("offline")?;
    Ok(session.answer)
}
