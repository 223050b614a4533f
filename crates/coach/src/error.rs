//! The coach's error type: one enum for every way a coaching session can fail.
//!
//! Invariant: library code returns these, never panics on I/O or input; the
//! binary turns them into one readable line through anyhow. LLM failures are not
//! here — they never fail a session, they fall back to the offline coach (see
//! [`crate::llm::LlmError`]).

use std::path::PathBuf;

/// Everything that can stop the coach from answering.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoachError {
    /// The lesson could not be loaded; the message names the path that was tried.
    #[error("{0}")]
    Lesson(String),
    /// The lesson has no concepts, so there is nothing to coach on.
    #[error("lesson {lesson} has no concepts to coach on")]
    NoConcepts {
        /// The lesson number.
        lesson: u32,
    },
    /// Reading or writing a file of the workspace failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What the coach was doing ("reading", "appending to", …).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file could not be parsed.
    #[error("{path}: {message}")]
    Config {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The coach's built-in material (`material/coach.toml`) is malformed: a bug.
    #[error("built-in coaching material is malformed: {0}")]
    Material(String),
    /// The question is empty and this is not a review.
    #[error("ask a question (in quotes) or use `review`")]
    EmptyQuestion,
}

impl CoachError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        CoachError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
