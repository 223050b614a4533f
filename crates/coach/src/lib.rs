//! Statecraft's coach: a mentor that asks, hints and makes the learner measure —
//! never hands over the finished code (LEARNING.md, "The coach").
//!
//! A tour, in the order a session runs ([`session::Session::prepare`]):
//! - [`material`] — the coach's view of a lesson (concepts, objectives, patterns)
//!   and of the other lessons (errors are looked up across all of them);
//!   [`playbook`] — the coach's own material (`material/playbook.toml`).
//! - [`classify`] — what kind of question (symptoms and error messages are
//!   bugs); [`locate`] — which concept, and which lesson an error belongs to;
//!   [`words`] — the word matching both use.
//! - [`workspace`] — the learner's settings and files; [`code`] — the function
//!   the question is about (a traceback frame, a named function, the error's
//!   site, the question's words, the failing objective's or concept's region,
//!   the lesson's gap) and the lines an answer names. [`checks`] — check
//!   figures for `review`.
//! - [`journal`] — `.statecraft/journal.jsonl`, shared with the checker
//!   ([`history`] lists it); [`calibrate`] — how much help, from real signals
//!   (time on the concept, repeated failures, churn without a figure change);
//!   [`facts`] — what the learner did, for an acknowledgement that states facts.
//! - [`compose`] — the offline answer in six parts (or the discovery answer);
//!   [`answer`] — the answer type, its Markdown and JSON.
//! - [`judge`] — code and structure judged by content: the LLM guard, the
//!   composer's tests and the evaluation use it; [`eval`] — the evaluation
//!   suite (`eval/cases.toml`) and its scores.
//! - [`render`] — Markdown for a terminal, plain when piped.
//! - [`llm`] — the same contract written by a model, streamed, guarded, with an
//!   offline fallback.
//!
//! The crate-wide invariant is rule 6: no answer gives the learner the missing
//! code — by construction offline ([`compose`]: gapped patterns, hints
//! redacted where they would fill a gap), by the guard with a model
//! ([`llm::guard`], [`judge`]), measured by [`eval`] against the course's
//! reference solutions.

pub mod answer;
pub mod calibrate;
pub mod checks;
pub mod classify;
pub mod code;
pub mod compose;
pub mod error;
pub mod eval;
pub mod facts;
pub mod history;
pub mod journal;
pub mod judge;
pub mod llm;
pub mod locate;
pub mod material;
pub mod playbook;
pub mod render;
pub mod session;
pub mod words;
pub mod workspace;

pub use answer::{Answer, Part, Section};
pub use calibrate::{Level, Mode};
pub use checks::{CheckFigure, ReviewChecks};
pub use classify::QuestionKind;
pub use error::CoachError;
pub use material::{ConceptMaterial, Lang, LessonMaterial, ObjectiveMaterial};
pub use session::{Ask, Session, coach_offline};
