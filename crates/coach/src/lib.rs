//! Statecraft's coach: a mentor that asks, hints and makes the learner measure —
//! never hands over the finished code (LEARNING.md, "The coach").
//!
//! A tour, in the order a session runs ([`session::Session::prepare`]):
//! - [`material`] — the coach's view of a lesson (concepts, objectives, patterns);
//!   [`playbook`] — the coach's own material (`material/playbook.toml`).
//! - [`workspace`] — the learner's settings and code: named, changed, program files,
//!   cut into short excerpts. [`checks`] — check figures for `review`.
//! - [`classify`] — what kind of question; [`locate`] — which concept;
//!   [`words`] — the word matching both use.
//! - [`journal`] — `.statecraft/journal.jsonl`, shared with the checker ([`history`]
//!   lists it);
//!   [`calibrate`] — how much help, from the journal and the clock.
//! - [`compose`] — the offline answer in six parts (or the discovery answer);
//!   [`answer`] — the answer type, its Markdown and JSON.
//! - [`render`] — Markdown for a terminal, plain when piped.
//! - [`llm`] — the same contract written by a model, streamed, guarded, with an
//!   offline fallback.
//!
//! The crate-wide invariant is rule 6: no answer carries a code block longer
//! than six lines without a `TODO` gap — by construction offline
//! ([`compose`]), by the guard with a model ([`llm::guard`]).

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
