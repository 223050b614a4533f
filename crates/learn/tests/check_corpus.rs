//! The mutation corpus: every classic mistake a lesson lists (its front
//! matter's `mistakes`) is made by a small program in `tests/learners/`, and
//! each must fail the objective the lesson names for it, with a message in the
//! vocabulary of the mistake's concept (its title, id or one of its cue words).
//! The correct programs passing every objective is `check_good_learner`; the
//! engine passing every lesson is the cli's `pipe_passes_all`.
//!
//! The scenarios run on a few threads at once to bound the wall time; every
//! mistake's verdict is one no slowdown can turn into a pass (a latency past a
//! deadline, a count of early acks, concurrency one worker cannot exceed,
//! memory held past a capacity, a missing fsync in a trace).

#[path = "learners/support.rs"]
mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use statecraft_learn::check::{CheckOptions, ObjectiveRef, run_objectives};
use statecraft_learn::lesson::{Lesson, load_lesson};
use support::{learners_dir, python_available, strace_missing_here};

/// Scenarios graded at once.
const THREADS: usize = 3;

struct Job {
    lesson: u32,
    mistake: String,
    program: String,
    objective: String,
    check: String,
    /// Lowercase words that name the concept: title, id, cue words.
    names: Vec<String>,
}

fn lessons() -> Vec<Lesson> {
    (1..=9)
        .map(|n| load_lesson(n, None).expect("built-in lesson"))
        .collect()
}

fn jobs(lessons: &[Lesson]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for lesson in lessons {
        for m in &lesson.mistakes {
            if m.objective.is_empty() {
                continue;
            }
            let objective = lesson
                .objectives
                .iter()
                .find(|o| o.id == m.objective)
                .expect("validated: the objective exists");
            let concept = lesson
                .concepts
                .iter()
                .find(|c| c.id == m.concept)
                .expect("validated: the concept exists");
            let mut names = vec![concept.title.to_lowercase(), concept.id.replace('_', " ")];
            names.extend(
                concept
                    .cues
                    .iter()
                    .filter(|c| c.chars().count() >= 5)
                    .map(|c| c.to_lowercase()),
            );
            for program in &m.corpus {
                jobs.push(Job {
                    lesson: lesson.number,
                    mistake: m.id.clone(),
                    program: program.clone(),
                    objective: objective.id.clone(),
                    check: objective.check.clone(),
                    names: names.clone(),
                });
            }
        }
    }
    jobs
}

#[test]
fn every_lesson_lists_mistakes_and_their_programs_exist() {
    for lesson in lessons() {
        assert!(
            lesson.mistakes.iter().any(|m| !m.objective.is_empty()),
            "lesson {} lists no classic mistake that an objective catches",
            lesson.number
        );
        for m in &lesson.mistakes {
            assert!(
                !m.objective.is_empty() || !m.uncaught.trim().is_empty(),
                "lesson {} mistake {}: neither an objective nor a reason",
                lesson.number,
                m.id
            );
            assert!(
                m.objective.is_empty() || !m.corpus.is_empty(),
                "lesson {} mistake {}: caught by `{}` but no corpus program makes it",
                lesson.number,
                m.id,
                m.objective
            );
            for program in &m.corpus {
                assert!(
                    learners_dir().join(program).is_file(),
                    "lesson {} mistake {}: corpus program {program} is missing",
                    lesson.number,
                    m.id
                );
            }
        }
    }
}

#[test]
fn every_mistake_fails_its_objective_naming_the_concept() {
    if !python_available("every_mistake_fails_its_objective_naming_the_concept") {
        return;
    }
    let lessons = lessons();
    let jobs = jobs(&lessons);
    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    let cmd = vec!["python3".to_string(), job.program.clone()];
                    let objectives = [ObjectiveRef {
                        id: job.objective.clone(),
                        check: job.check.clone(),
                    }];
                    let report = run_objectives(
                        job.lesson,
                        &objectives,
                        &cmd,
                        &CheckOptions::new(learners_dir()),
                        &mut |_| {},
                    );
                    let Some(o) = report.objectives.first() else {
                        continue;
                    };
                    if strace_missing_here(&o.figure, o.detail.as_deref()) {
                        continue;
                    }
                    let detail = o.detail.clone().unwrap_or_default();
                    let lower = detail.to_lowercase();
                    let named = job.names.iter().find(|n| lower.contains(n.as_str()));
                    rows.lock().unwrap_or_else(|p| p.into_inner()).push((
                        i,
                        format!(
                            "| {} | {} | {} | {} | {} | {} |",
                            job.lesson,
                            job.mistake,
                            job.program,
                            job.objective,
                            if o.passed { "PASS (wrong)" } else { "fail" },
                            o.figure.replace('|', "/")
                        ),
                    ));
                    let mut problems = Vec::new();
                    if o.passed {
                        problems.push("passed".to_string());
                    }
                    if !o.passed && named.is_none() {
                        problems.push(format!(
                            "the failure does not name the concept (any of {:?}): {detail}",
                            job.names
                        ));
                    }
                    if !problems.is_empty() {
                        failures
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(format!(
                                "lesson {} mistake {} ({}), objective `{}`: {} — figure: {}",
                                job.lesson,
                                job.mistake,
                                job.program,
                                job.objective,
                                problems.join("; "),
                                o.figure
                            ));
                    }
                }
            });
        }
    });
    let mut rows = rows.into_inner().unwrap_or_else(|p| p.into_inner());
    rows.sort();
    eprintln!("| lesson | mistake | program | objective | verdict | figure |");
    eprintln!("|---|---|---|---|---|---|");
    for (_, row) in &rows {
        eprintln!("{row}");
    }
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    assert!(
        failures.is_empty(),
        "{} of {} corpus programs were not caught as the lesson says:\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n")
    );
}
