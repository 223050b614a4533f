//! Statecraft's learning path: the lessons, the loader that reads them, the
//! black-box checks that grade a learner's program, and the starter workspaces.
//!
//! Tour of the layout:
//!
//! - [`lesson`] — the loader and validator. A lesson is a Markdown file
//!   `lessons/NNN_slug.md` whose TOML front matter (objectives, concepts, hints,
//!   partial patterns) is data read by code, and whose prose a person reads. The
//!   contract is `docs/lesson-format.md`; [`lesson::parse_lesson`] refuses a lesson
//!   that breaks it, naming the file and the field. [`lesson::load_lesson`] looks in
//!   the workspace's `lessons/` before the built-in copy.
//! - [`builtin`] — the nine lessons of the repository's `lessons/`, compiled into
//!   the binary so `check` and `coach` work from any directory.
//! - [`check`] — the checks of the catalogue, driving a learner's program through
//!   the pipe protocol and measuring one figure per objective.
//! - [`workspace`] — starter workspaces (`statecraft lessons init`): a program
//!   skeleton in Python or Rust with the interesting parts left as gaps.
//!
//! Who reads what: the `statecraft` CLI lists and shows lessons; the checker maps
//! each [`lesson::Objective::check`] to a check; the coach (`statecraft-coach`)
//! picks a [`lesson::Concept`] from cue words, errors and failed checks, and draws
//! its questions, hints and patterns from it.
//!
//! Invariant across the crate: a [`lesson::Lesson`] value is always valid, so no
//! consumer re-validates it; every pattern shown to a learner holds
//! [`lesson::GAP_MARKER`].

pub mod builtin;
pub mod check;
pub mod lesson;
pub mod workspace;

pub use lesson::{
    Concept, GAP_MARKER, KNOWN_CHECKS, Lesson, LessonError, LessonOrigin, Mistake, Objective,
    Patterns, find_lesson, lesson_file_name_prefix, list_lessons, load_lesson, parse_lesson,
};
