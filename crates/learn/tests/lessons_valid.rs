//! Every lesson of the repository's `lessons/` and every built-in lesson passes the
//! loader's validation, carries the coaching material the coach needs, and the set is
//! the nine phases of LEARNING.md in order.

use std::collections::BTreeSet;
use std::path::PathBuf;

use statecraft_learn::builtin;
use statecraft_learn::lesson::{
    GAP_MARKER, KNOWN_CHECKS, Lesson, LessonOrigin, list_lessons, load_lesson, load_lesson_file,
    parse_lesson,
};

const PHASES: &[(u32, &str)] = &[
    (1, "basics"),
    (2, "asyncio"),
    (3, "backpressure"),
    (4, "parallelism"),
    (5, "durability"),
    (6, "observability"),
    (7, "adaptive_queue"),
    (8, "scale_out"),
    (9, "production"),
];

/// The checks of the catalogue that belong to each lesson (`protocol` belongs to all).
const CATALOGUE: &[(u32, &[&str])] = &[
    (1, &["final_state", "per_key_order", "throughput"]),
    (2, &["deadline", "batching"]),
    (3, &["exactly_one_reply", "bounded_depth", "bounded_memory"]),
    (4, &["parallel_order", "parallel_speedup", "responsive"]),
    (5, &["durable_acks", "recovery"]),
    (6, &["stage_timings", "percentiles"]),
    (7, &["adaptive_capacity", "p95_near_target"]),
    (8, &["offsets_exactly_once", "partition_ownership"]),
    (9, &["graceful_sigterm", "bad_input", "config_errors"]),
];

fn repo_lessons_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../lessons")
}

fn repo_lessons() -> Vec<Lesson> {
    let dir = repo_lessons_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| load_lesson_file(p).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn builtin_lessons() -> Vec<Lesson> {
    builtin::lessons()
        .iter()
        .map(|(name, text)| {
            parse_lesson(text, LessonOrigin::Builtin(name)).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// What the coach needs beyond the schema: material in every field.
fn assert_coaching_material(lesson: &Lesson) {
    let at = |what: &str| format!("{} concept {what}", lesson.origin);
    assert!(
        !lesson.objectives.is_empty(),
        "{}: no objectives",
        lesson.origin
    );
    for c in &lesson.concepts {
        assert!(
            c.questions.len() >= 2,
            "{}: fewer than 2 questions",
            at(&c.id)
        );
        assert!(
            c.hints.iter().all(|h| !h.trim().is_empty()),
            "{}: empty hint",
            at(&c.id)
        );
        assert!(!c.experiments.is_empty(), "{}: no experiment", at(&c.id));
        assert!(!c.cues.is_empty(), "{}: no cues", at(&c.id));
        assert!(!c.errors.is_empty(), "{}: no error fragments", at(&c.id));
        assert!(
            !c.misconceptions.is_empty(),
            "{}: no misconceptions",
            at(&c.id)
        );
        assert!(
            c.patterns.python.contains(GAP_MARKER),
            "{}: python pattern has no gap",
            at(&c.id)
        );
        assert!(
            c.patterns.rust.contains(GAP_MARKER),
            "{}: rust pattern has no gap",
            at(&c.id)
        );
        assert!(
            c.cues.iter().all(|cue| *cue == cue.to_lowercase()),
            "{}: cues must be lowercase",
            at(&c.id)
        );
        let section = lesson.section_text(&c.section).unwrap_or_default();
        assert!(
            section.len() > 200,
            "{}: section {:?} is nearly empty",
            at(&c.id),
            c.section
        );
    }
    for heading in [
        "Objectives",
        "Concepts",
        "Exercises",
        "Experiments",
        "What to measure",
    ] {
        assert!(
            lesson.section_text(heading).is_some(),
            "{}: no {heading:?} section",
            lesson.origin
        );
    }
    assert!(
        lesson
            .body
            .contains(&format!("statecraft check {}", lesson.number)),
        "{}: does not say how to run its check",
        lesson.origin
    );
}

#[test]
fn repository_lessons_are_valid_and_complete() {
    let lessons = repo_lessons();
    for lesson in &lessons {
        assert_coaching_material(lesson);
    }
    let found: Vec<(u32, &str)> = lessons
        .iter()
        .map(|l| (l.number, l.slug.as_str()))
        .collect();
    assert_eq!(found, PHASES, "the nine phases of LEARNING.md, in order");
}

#[test]
fn builtin_lessons_are_the_repository_lessons() {
    let builtins = builtin_lessons();
    for lesson in &builtins {
        assert_coaching_material(lesson);
        let on_disk = std::fs::read_to_string(repo_lessons_dir().join(lesson.file_name()))
            .expect("built-in lesson exists in lessons/");
        let (_, text) = builtin::lesson(lesson.number).expect("builtin by number");
        assert_eq!(
            text,
            on_disk,
            "{} differs from lessons/",
            lesson.file_name()
        );
    }
    let found: Vec<(u32, &str)> = builtins
        .iter()
        .map(|l| (l.number, l.slug.as_str()))
        .collect();
    assert_eq!(found, PHASES);
    assert_eq!(
        builtin::lessons().len(),
        repo_lessons().len(),
        "every file of lessons/ is built in"
    );
}

#[test]
fn every_catalogue_check_is_used_by_its_lesson() {
    let lessons = builtin_lessons();
    let mut used = BTreeSet::new();
    for (number, checks) in CATALOGUE {
        let lesson = &lessons[(*number - 1) as usize];
        let lesson_checks: BTreeSet<&str> =
            lesson.objectives.iter().map(|o| o.check.as_str()).collect();
        assert!(
            lesson_checks.contains("protocol"),
            "lesson {number} does not check the protocol"
        );
        for check in *checks {
            assert!(
                lesson_checks.contains(check),
                "lesson {number} does not use check {check}"
            );
        }
        used.extend(lesson_checks);
    }
    let known: BTreeSet<&str> = KNOWN_CHECKS.iter().copied().collect();
    assert_eq!(used, known, "the catalogue and the lessons agree");
}

#[test]
fn loading_without_a_workspace_uses_the_builtin_copy() {
    for (number, slug) in PHASES {
        let lesson = load_lesson(*number, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(lesson.slug, *slug);
        assert!(lesson.origin.is_builtin());
    }
    assert_eq!(list_lessons(None).expect("list").len(), PHASES.len());
    let missing = load_lesson(99, None).expect_err("no lesson 99");
    assert!(missing.to_string().contains("099_"), "{missing}");
}
