//! How much help to give: the calibration rules of LEARNING.md step 4.
//!
//! Inputs are the journal, the clock, the concept and a few signals; the output
//! is a [`Calibration`]: guide at level 1, 2 or 3, or the discovery answer.
//! Only real signals count — how often the learner asks is not one of them.
//! The rules, first match wins:
//! 1. **Discovery** — only for a `review` or a question that asks for it: the
//!    lesson's latest check passed, recently (within [`EPISODE_GAP_SECS`]), an
//!    earlier one failed (or this review passes everything), and no discovery
//!    answer has been given since that check.
//! 2. **Level 3** — a misconception stated in the question; or churn without
//!    progress: the learner's functions changed at [`CHURN_EDITS`] or more
//!    asks of the episode while the checks in between kept failing the same
//!    objectives with the same figures; or stuck on the concept for more than
//!    [`LEVEL3_AFTER_SECS`].
//! 3. **Level 2** — stuck on the concept for more than [`LEVEL2_AFTER_SECS`],
//!    or the same objective of the concept failed at the last
//!    [`REPEATED_FAILURES`] checks or more.
//! 4. **Level 1** — first contact, or still early, or making progress (fewer
//!    objectives failing than when coaching on the concept began).
//!
//! "Stuck since" is the first ask of the current episode on the concept: the
//! episode restarts after a pause longer than [`EPISODE_GAP_SECS`] or after a
//! check where every objective of the concept passed. Invariant: a pure
//! function of its inputs (the clock is an input), so tests move the clock.

use std::collections::BTreeMap;

use crate::journal::{CheckEntry, CoachEntry, Journal};
use crate::material::LessonMaterial;

/// More than this on one concept → level 2.
pub const LEVEL2_AFTER_SECS: u64 = 30 * 60;
/// More than this on one concept → level 3.
pub const LEVEL3_AFTER_SECS: u64 = 60 * 60;
/// A pause longer than this starts a new episode.
pub const EPISODE_GAP_SECS: u64 = 3 * 60 * 60;
/// The same objective failing at this many checks in a row → level 2.
pub const REPEATED_FAILURES: usize = 3;
/// Code changed at this many asks while the figures stayed the same → level 3.
pub const CHURN_EDITS: usize = 3;

/// How direct the help is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "u8")]
pub enum Level {
    /// Questions and a gentle hint.
    Gentle = 1,
    /// More direct hints and a fuller pattern, still with gaps.
    Direct = 2,
    /// The most direct help, still not the finished code.
    MostDirect = 3,
}

impl From<Level> for u8 {
    fn from(l: Level) -> u8 {
        l as u8
    }
}

impl Level {
    /// 0-based index into a concept's three hints.
    pub fn hint_index(self) -> usize {
        self as usize - 1
    }
}

/// What kind of answer to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The six-part guiding answer.
    Guide,
    /// A check now passes: name the discovery, connect to the next phase.
    Discovery,
}

impl Mode {
    /// The journal name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Guide => "guide",
            Mode::Discovery => "discovery",
        }
    }
}

/// Signals beyond the journal.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// The misconception the question states, if any.
    pub misconception: Option<String>,
    /// Fingerprints of the learner's functions now (see `CoachEntry::code`).
    pub code_now: BTreeMap<String, u64>,
    /// Whether this is a review whose checks all pass right now.
    pub review_all_pass: bool,
    /// Whether a discovery answer may be given (a review, or the question asks for it).
    pub discovery_allowed: bool,
}

/// Why the level is what it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Reason {
    /// No earlier ask on this concept in this episode.
    FirstContact,
    /// Asked before, but not long enough to escalate.
    Early {
        /// Minutes on the concept.
        minutes: u64,
    },
    /// Fewer objectives fail than when this episode began.
    Progress {
        /// Minutes on the concept.
        minutes: u64,
    },
    /// On the concept for a while.
    Stuck {
        /// Minutes on the concept.
        minutes: u64,
    },
    /// The question states a misconception.
    Misconception {
        /// The belief.
        belief: String,
    },
    /// The code keeps changing but the figures do not.
    RandomChanges {
        /// Asks of the episode at which the learner's code had changed.
        edits: usize,
        /// Checks in that span that failed the same objectives.
        checks_unchanged: usize,
    },
    /// The same objective failed at several checks in a row.
    RepeatedFailure {
        /// The objective.
        objective: String,
        /// How many checks in a row.
        times: usize,
    },
    /// A check passes after failing.
    CheckNowPasses {
        /// Objectives that failed earlier and pass now.
        fixed: Vec<String>,
    },
}

/// The calibration decision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Calibration {
    /// Guide or discovery.
    pub mode: Mode,
    /// The level (for discovery: the level of the preceding episode, at least 1).
    pub level: Level,
    /// Why.
    pub reason: Reason,
    /// Minutes since the episode on this concept began (0 at first contact).
    pub minutes_on_concept: u64,
    /// Earlier asks on this concept in the episode.
    pub earlier_asks: usize,
}

/// Decides the calibration for an ask on `concept` of `lesson` at `now`.
pub fn calibrate(
    journal: &Journal,
    lesson: &LessonMaterial,
    concept: &str,
    now: u64,
    signals: &Signals,
) -> Calibration {
    let coaching: Vec<&CoachEntry> = journal.coaching(lesson.number).collect();
    let checks: Vec<&CheckEntry> = journal.checks(lesson.number).collect();
    let episode = episode_on(&coaching, &checks, lesson, concept, now);
    let minutes = episode
        .first()
        .map_or(0, |e| now.saturating_sub(e.time) / 60);
    let base = |mode, level, reason| Calibration {
        mode,
        level,
        reason,
        minutes_on_concept: minutes,
        earlier_asks: episode.len(),
    };

    if signals.discovery_allowed
        && let Some(fixed) = discovery(&coaching, &checks, lesson, now, signals.review_all_pass)
    {
        let level = episode.iter().map(|e| e.level).max().unwrap_or(1);
        let level = match level {
            0 | 1 => Level::Gentle,
            2 => Level::Direct,
            _ => Level::MostDirect,
        };
        return base(Mode::Discovery, level, Reason::CheckNowPasses { fixed });
    }
    if let Some(belief) = &signals.misconception {
        return base(
            Mode::Guide,
            Level::MostDirect,
            Reason::Misconception {
                belief: belief.clone(),
            },
        );
    }
    let Some(first) = episode.first() else {
        return base(Mode::Guide, Level::Gentle, Reason::FirstContact);
    };
    let (edits, checks_unchanged) = churn(&episode, &checks, &signals.code_now);
    if edits >= CHURN_EDITS && checks_unchanged >= 2 {
        return base(
            Mode::Guide,
            Level::MostDirect,
            Reason::RandomChanges {
                edits,
                checks_unchanged,
            },
        );
    }
    let on_it = now.saturating_sub(first.time);
    if on_it > LEVEL3_AFTER_SECS {
        return base(Mode::Guide, Level::MostDirect, Reason::Stuck { minutes });
    }
    if on_it > LEVEL2_AFTER_SECS {
        return base(Mode::Guide, Level::Direct, Reason::Stuck { minutes });
    }
    if let Some((objective, times)) = repeated_failure(&checks, lesson, concept, now) {
        return base(
            Mode::Guide,
            Level::Direct,
            Reason::RepeatedFailure { objective, times },
        );
    }
    if making_progress(&checks, first.time) {
        return base(Mode::Guide, Level::Gentle, Reason::Progress { minutes });
    }
    base(Mode::Guide, Level::Gentle, Reason::Early { minutes })
}

/// Churn without progress over the episode: how many asks found the code
/// changed since the ask before (the current one included), and how many
/// checks since the episode began failed exactly the same objectives (with
/// the same figures, when recorded) as the first of them.
fn churn(
    episode: &[&CoachEntry],
    checks: &[&CheckEntry],
    code_now: &BTreeMap<String, u64>,
) -> (usize, usize) {
    let Some(first) = episode.first() else {
        return (0, 0);
    };
    let mut edits = 0;
    let mut prev: Option<&BTreeMap<String, u64>> = None;
    for e in episode {
        if let Some(p) = prev
            && !p.is_empty()
            && !e.code.is_empty()
            && p != &e.code
        {
            edits += 1;
        }
        prev = Some(&e.code);
    }
    if let Some(p) = prev
        && !p.is_empty()
        && !code_now.is_empty()
        && p != code_now
    {
        edits += 1;
    }
    let since: Vec<&&CheckEntry> = checks.iter().filter(|c| c.time >= first.time).collect();
    let unchanged = match since.first() {
        Some(c0) if !c0.passed => since
            .iter()
            .take_while(|c| c.failed == c0.failed && c.figures == c0.figures)
            .count(),
        _ => 0,
    };
    (edits, unchanged)
}

/// The concept's objective that failed at the last [`REPEATED_FAILURES`]
/// checks or more (recent ones: within [`EPISODE_GAP_SECS`]), and how often.
fn repeated_failure(
    checks: &[&CheckEntry],
    lesson: &LessonMaterial,
    concept: &str,
    now: u64,
) -> Option<(String, usize)> {
    let recent: Vec<&&CheckEntry> = checks
        .iter()
        .filter(|c| now.saturating_sub(c.time) <= EPISODE_GAP_SECS)
        .collect();
    lesson
        .objectives
        .iter()
        .filter(|o| o.concept == concept)
        .map(|o| {
            let times = recent
                .iter()
                .rev()
                .take_while(|c| c.failed.contains(&o.id))
                .count();
            (o.id.clone(), times)
        })
        .filter(|(_, t)| *t >= REPEATED_FAILURES)
        .max_by_key(|(_, t)| *t)
}

/// The asks on `concept` in the current episode, oldest first.
fn episode_on<'a>(
    coaching: &[&'a CoachEntry],
    checks: &[&CheckEntry],
    lesson: &LessonMaterial,
    concept: &str,
    now: u64,
) -> Vec<&'a CoachEntry> {
    let on: Vec<&CoachEntry> = coaching
        .iter()
        .copied()
        .filter(|e| e.concept == concept && e.time <= now)
        .collect();
    let concept_objectives: Vec<&str> = lesson
        .objectives
        .iter()
        .filter(|o| o.concept == concept)
        .map(|o| o.id.as_str())
        .collect();
    // Walk back from now; stop at a long pause or a check that cleared the concept.
    let mut start = on.len();
    let mut later = now;
    while start > 0 {
        let e = on[start - 1];
        if later.saturating_sub(e.time) > EPISODE_GAP_SECS {
            break;
        }
        let cleared = checks.iter().any(|c| {
            c.time >= e.time
                && c.time <= later
                && !concept_objectives.is_empty()
                && concept_objectives
                    .iter()
                    .all(|id| !c.failed.iter().any(|f| f == id))
        });
        if cleared {
            break;
        }
        later = e.time;
        start -= 1;
    }
    on[start..].to_vec()
}

/// Objectives fixed by the latest check, if it is a discovery not yet celebrated.
fn discovery(
    coaching: &[&CoachEntry],
    checks: &[&CheckEntry],
    lesson: &LessonMaterial,
    now: u64,
    review_all_pass: bool,
) -> Option<Vec<String>> {
    let latest = checks.last()?;
    // "Now passes": the passing run is recent (or is this very review).
    let recent = now.saturating_sub(latest.time) <= EPISODE_GAP_SECS;
    if !latest.passed || !(recent || review_all_pass) {
        return None;
    }
    let celebrated = coaching
        .iter()
        .any(|c| c.mode == Mode::Discovery.as_str() && c.time >= latest.time);
    if celebrated {
        return None;
    }
    let earlier_failed: Vec<&CheckEntry> = checks[..checks.len() - 1]
        .iter()
        .copied()
        .filter(|c| !c.passed)
        .collect();
    if earlier_failed.is_empty() && !review_all_pass {
        return None;
    }
    let mut fixed: Vec<String> = Vec::new();
    for c in &earlier_failed {
        for id in &c.failed {
            if !fixed.contains(id) {
                fixed.push(id.clone());
            }
        }
    }
    if fixed.is_empty() {
        fixed = lesson.objectives.iter().map(|o| o.id.clone()).collect();
    }
    Some(fixed)
}

/// Fewer objectives fail at the latest check than at the last check before `since`.
fn making_progress(checks: &[&CheckEntry], since: u64) -> bool {
    let before = checks.iter().rev().find(|c| c.time <= since);
    let latest = checks.last();
    match (before, latest) {
        (Some(b), Some(l)) => l.time > since && l.failed.len() < b.failed.len(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JournalEntry;
    use crate::material::ObjectiveMaterial;

    fn lesson() -> LessonMaterial {
        LessonMaterial {
            number: 1,
            objectives: vec![ObjectiveMaterial {
                id: "final_state".into(),
                concept: "single_writer".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn ask(time: u64, level: u8) -> JournalEntry {
        JournalEntry::Coach(CoachEntry {
            lesson: 1,
            concept: "single_writer".into(),
            time,
            level,
            mode: "guide".into(),
            question_kind: "stuck".into(),
            question: String::new(),
            given: vec![],
            source: "offline".into(),
            code: BTreeMap::new(),
        })
    }

    fn ask_with_code(time: u64, hash: u64) -> JournalEntry {
        match ask(time, 1) {
            JournalEntry::Coach(mut e) => {
                e.code = code(hash);
                JournalEntry::Coach(e)
            }
            other => other,
        }
    }

    fn code(hash: u64) -> BTreeMap<String, u64> {
        BTreeMap::from([("main.py::apply".to_string(), hash)])
    }

    fn check(time: u64, failed: &[&str]) -> JournalEntry {
        JournalEntry::Check(CheckEntry {
            lesson: 1,
            passed: failed.is_empty(),
            time,
            failed: failed.iter().map(|s| s.to_string()).collect(),
            figures: BTreeMap::new(),
        })
    }

    fn cal(entries: Vec<JournalEntry>, now: u64, signals: &Signals) -> Calibration {
        let journal = Journal {
            entries,
            ..Default::default()
        };
        calibrate(&journal, &lesson(), "single_writer", now, signals)
    }

    const T: u64 = 1_700_000_000;

    #[test]
    fn levels_follow_the_clock() {
        let s = Signals::default();
        assert_eq!(cal(vec![], T, &s).level, Level::Gentle);
        assert_eq!(cal(vec![ask(T, 1)], T + 45 * 60, &s).level, Level::Direct);
        assert_eq!(
            cal(vec![ask(T, 1), ask(T + 45 * 60, 2)], T + 90 * 60, &s).level,
            Level::MostDirect
        );
        // A long pause starts a new episode.
        assert_eq!(
            cal(vec![ask(T, 1)], T + 5 * 3600, &s).reason,
            Reason::FirstContact
        );
    }

    #[test]
    fn a_misconception_goes_straight_to_level_3() {
        let s = Signals {
            misconception: Some("a lock fixes it".into()),
            ..Default::default()
        };
        assert_eq!(cal(vec![], T, &s).level, Level::MostDirect);
    }

    #[test]
    fn asking_often_is_not_random_changes() {
        // Four quick questions, no code change, no check: still level 1.
        let quick = vec![ask(T, 1), ask(T + 60, 1), ask(T + 120, 1), ask(T + 150, 1)];
        let c = cal(quick, T + 180, &Signals::default());
        assert_eq!(c.level, Level::Gentle, "{c:?}");
        assert!(matches!(c.reason, Reason::Early { .. }), "{c:?}");
    }

    #[test]
    fn churn_without_a_change_in_the_figure_is_level_3() {
        let entries = vec![
            ask_with_code(T, 1),
            check(T + 60, &["final_state"]),
            ask_with_code(T + 120, 2),
            check(T + 180, &["final_state"]),
            ask_with_code(T + 240, 3),
        ];
        let s = Signals {
            code_now: code(4),
            ..Default::default()
        };
        let c = cal(entries.clone(), T + 300, &s);
        assert_eq!(c.level, Level::MostDirect, "{c:?}");
        assert_eq!(
            c.reason,
            Reason::RandomChanges {
                edits: 3,
                checks_unchanged: 2
            }
        );
        // The same edits with a check that moved: not churn.
        let mut moving = entries;
        moving[3] = check(T + 180, &[]);
        assert_ne!(cal(moving, T + 300, &s).level, Level::MostDirect);
    }

    #[test]
    fn the_same_objective_failing_again_and_again_is_level_2() {
        let entries = vec![
            ask(T, 1),
            check(T + 60, &["final_state"]),
            check(T + 120, &["final_state"]),
            check(T + 180, &["final_state"]),
        ];
        let c = cal(entries, T + 240, &Signals::default());
        assert_eq!(c.level, Level::Direct, "{c:?}");
        assert!(matches!(c.reason, Reason::RepeatedFailure { times: 3, .. }));
    }

    #[test]
    fn a_check_that_now_passes_is_a_discovery_once() {
        let s = Signals {
            discovery_allowed: true,
            ..Default::default()
        };
        // A plain question is answered as asked, even right after the pass.
        let plain = vec![check(T, &["final_state"]), check(T + 600, &[])];
        assert_eq!(cal(plain, T + 700, &Signals::default()).mode, Mode::Guide);
        let entries = vec![
            check(T, &["final_state"]),
            ask(T + 10, 1),
            check(T + 600, &[]),
        ];
        let c = cal(entries.clone(), T + 700, &s);
        assert_eq!(c.mode, Mode::Discovery);
        assert_eq!(
            c.reason,
            Reason::CheckNowPasses {
                fixed: vec!["final_state".into()]
            }
        );
        let mut celebrated = entries;
        if let JournalEntry::Coach(mut e) = ask(T + 700, 1) {
            e.mode = "discovery".into();
            celebrated.push(JournalEntry::Coach(e));
        }
        assert_eq!(cal(celebrated, T + 800, &s).mode, Mode::Guide);
        // A pass long ago is not news.
        let old = vec![check(T, &["final_state"]), check(T + 600, &[])];
        assert_eq!(cal(old, T + 86_400, &s).mode, Mode::Guide);
    }

    #[test]
    fn progress_keeps_help_light() {
        let s = Signals::default();
        let mut l = lesson();
        l.objectives.push(ObjectiveMaterial {
            id: "order".into(),
            concept: "other".into(),
            ..Default::default()
        });
        let journal = Journal {
            entries: vec![
                check(T - 10, &["final_state", "order"]),
                ask(T, 1),
                check(T + 600, &["final_state"]),
            ],
            ..Default::default()
        };
        let c = calibrate(&journal, &l, "single_writer", T + 700, &s);
        assert_eq!(c.level, Level::Gentle);
        assert!(matches!(c.reason, Reason::Progress { .. }));
    }
}
