//! Check results as the coach uses them: one figure per objective.
//!
//! The checker (`statecraft_learn::check`) measures; the binary runs it for
//! `coach N review` and hands the outcomes over as [`CheckFigure`]s, so the
//! coaching logic does not depend on how checks are run. Invariant: figures are
//! reported as the checker measured them, never rounded or reinterpreted here.

use serde::Serialize;

/// One objective's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckFigure {
    /// The objective id.
    pub objective: String,
    /// Whether it passed.
    pub passed: bool,
    /// The measured figure, as the checker printed it.
    pub figure: String,
    /// The target, as the checker printed it.
    pub target: String,
    /// Why it failed, or what else the checker noted (stderr, first mismatch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What `review` found when it tried to run the checks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReviewChecks {
    /// Not a review.
    #[default]
    NotRun,
    /// The checks ran.
    Ran(Vec<CheckFigure>),
    /// They could not run; the reason is shown to the learner.
    Unavailable(String),
}

impl ReviewChecks {
    /// The figures, when the checks ran.
    pub fn figures(&self) -> &[CheckFigure] {
        match self {
            ReviewChecks::Ran(f) => f,
            _ => &[],
        }
    }

    /// Ids of failing objectives.
    pub fn failing(&self) -> Vec<String> {
        self.figures()
            .iter()
            .filter(|f| !f.passed)
            .map(|f| f.objective.clone())
            .collect()
    }

    /// Whether checks ran and every objective passed.
    pub fn all_pass(&self) -> bool {
        matches!(self, ReviewChecks::Ran(f) if !f.is_empty() && f.iter().all(|f| f.passed))
    }
}
