//! What the learner has actually done, as facts an acknowledgement can state.
//!
//! Facts come from three places only: the check results of this review, the
//! journal (earlier check runs and what was asked before, with their times),
//! and the code (functions changed since the last coaching, or changed from
//! the starter). Invariant: every sentence produced here is derived from one
//! of those records and names it (an objective and its figure, a time, a
//! function) — there is no fixed praise; with no facts the list is empty and
//! the composer says so plainly instead of inventing one.

use crate::checks::ReviewChecks;
use crate::history::utc;
use crate::journal::Journal;
use crate::material::LessonMaterial;
use crate::workspace::CodeReview;

/// Inputs.
#[derive(Debug, Clone, Copy)]
pub struct FactInput<'a> {
    /// The journal as read before answering.
    pub journal: &'a Journal,
    /// The answering lesson.
    pub lesson: &'a LessonMaterial,
    /// The concept of the answer.
    pub concept: &'a str,
    /// This review's check results.
    pub checks: &'a ReviewChecks,
    /// The code review.
    pub review: &'a CodeReview,
    /// The clock.
    pub now: u64,
}

/// The facts, grouped by what they are about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// From this review's checks and the journal's check runs.
    pub checks: Vec<String>,
    /// From the code.
    pub code: Vec<String>,
    /// Objectives that went from failing to passing (journal or this review).
    pub fixed: Vec<String>,
    /// Whether the learner's own code changed (since the last coaching or from the starter).
    pub own_changes: bool,
}

impl Facts {
    /// Every fact, checks first.
    pub fn all(&self) -> Vec<String> {
        self.checks.iter().chain(&self.code).cloned().collect()
    }
}

/// Gathers the facts.
pub fn gather(i: &FactInput<'_>) -> Facts {
    let mut f = Facts::default();
    let n = i.lesson.number;
    let runs: Vec<_> = i.journal.checks(n).collect();
    let figures = i.checks.figures();
    let passing: Vec<String> = figures
        .iter()
        .filter(|c| c.passed)
        .map(|c| format!("`{}` ({}; target {})", c.objective, c.figure, c.target))
        .collect();
    if !passing.is_empty() {
        f.checks.push(format!(
            "Your program passes {} of {} objectives right now: {}.",
            passing.len(),
            figures.len(),
            passing.join(", ")
        ));
    } else if let Some(last) = runs.last() {
        let passed: Vec<String> = i
            .lesson
            .objectives
            .iter()
            .filter(|o| !last.failed.contains(&o.id))
            .map(|o| format!("`{}`", o.id))
            .collect();
        if !passed.is_empty() && !last.failed.is_empty() {
            f.checks.push(format!(
                "At your last check ({}), {} passed.",
                utc(last.time),
                passed.join(", ")
            ));
        } else if last.passed {
            f.checks.push(format!(
                "Your last check of lesson {n} ({}) passed every objective.",
                utc(last.time)
            ));
        }
    }
    // Objectives fixed: failing at an earlier run, passing at the latest (or now).
    let now_failing: Option<Vec<String>> = match i.checks {
        ReviewChecks::Ran(_) => Some(i.checks.failing()),
        _ => runs.last().map(|c| c.failed.clone()),
    };
    if let Some(failing_now) = now_failing {
        let latest_is_run = matches!(i.checks, ReviewChecks::Ran(_));
        let earlier = if latest_is_run {
            &runs[..]
        } else {
            &runs[..runs.len().saturating_sub(1)]
        };
        for run in earlier.iter().rev() {
            for id in &run.failed {
                if !failing_now.contains(id) && !f.fixed.contains(id) {
                    f.fixed.push(id.clone());
                    let was = run.figures.get(id);
                    let figure = figures
                        .iter()
                        .find(|c| &c.objective == id)
                        .map(|c| match was {
                            Some(w) => format!(" (from {w} to {})", c.figure),
                            None => format!(" (now {})", c.figure),
                        })
                        .or_else(|| {
                            let last = runs.last()?;
                            let was = run.figures.get(id)?;
                            let is = last.figures.get(id)?;
                            Some(format!(" (from {was} to {is})"))
                        })
                        .unwrap_or_default();
                    f.checks.push(format!(
                        "`{id}` failed at your check of {} and passes now{figure}.",
                        utc(run.time)
                    ));
                }
            }
        }
    }
    // The code: functions changed since the last coaching, or from the starter.
    let last_code = i.journal.last_coaching().map(|e| &e.code);
    let mut changed_since: Vec<String> = Vec::new();
    if let Some(before) = last_code.filter(|c| !c.is_empty()) {
        for (key, hash) in &i.review.fingerprints {
            if before.get(key) != Some(hash) {
                changed_since.push(key.rsplit("::").next().unwrap_or(key).to_string());
            }
        }
    }
    if !changed_since.is_empty() {
        f.own_changes = true;
        f.code.push(format!(
            "Since you last asked the coach, you changed {}.",
            list_code(&changed_since)
        ));
    } else if let Some(differ) = &i.review.changed_from_starter {
        if differ.is_empty() {
            f.code.push(
                "Your program is still the starter as `lessons init` wrote it — no code of yours to \
                 look at yet."
                    .to_string(),
            );
        } else {
            f.own_changes = true;
            f.code.push(format!(
                "You have written your own {} (changed from the starter).",
                list_code(&differ.iter().take(4).cloned().collect::<Vec<_>>())
            ));
        }
    }
    f
}

fn list_code(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        _ => format!(
            "{} and {}",
            quoted[..quoted.len() - 1].join(", "),
            quoted[quoted.len() - 1]
        ),
    }
}
