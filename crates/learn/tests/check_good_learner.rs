//! A correct Python learner (`learners/good.py`) passes every objective of
//! lessons 1, 2 and 3 — and of 5, 6 and 9, which it also implements.

#[path = "learners/support.rs"]
mod support;

use support::{assert_only_failing, check, python_available, serial};

fn passes(lesson: u32, test: &str) {
    if !python_available(test) {
        return;
    }
    let _serial = serial();
    let report = check(lesson, "good.py");
    let tolerated = assert_only_failing(&report, &[]);
    assert!(report.passed || tolerated);
}

#[test]
fn good_learner_passes_lesson_1() {
    passes(1, "good_learner_passes_lesson_1");
}

#[test]
fn good_learner_passes_lesson_2() {
    passes(2, "good_learner_passes_lesson_2");
}

#[test]
fn good_learner_passes_lesson_3() {
    passes(3, "good_learner_passes_lesson_3");
}

#[test]
fn good_learner_passes_lesson_5() {
    passes(5, "good_learner_passes_lesson_5");
}

#[test]
fn good_learner_passes_lesson_6() {
    passes(6, "good_learner_passes_lesson_6");
}

#[test]
fn good_learner_passes_lesson_9() {
    passes(9, "good_learner_passes_lesson_9");
}

#[test]
fn good_parallel_learner_passes_lesson_4() {
    if !python_available("good_parallel_learner_passes_lesson_4") {
        return;
    }
    let _serial = serial();
    let report = check(4, "good_parallel.py");
    assert_only_failing(&report, &[]);
}

#[test]
fn good_adaptive_learner_passes_lesson_7() {
    if !python_available("good_adaptive_learner_passes_lesson_7") {
        return;
    }
    let _serial = serial();
    let report = check(7, "good_adaptive.py");
    assert_only_failing(&report, &[]);
}

#[test]
fn good_partitioned_learner_passes_lesson_8() {
    if !python_available("good_partitioned_learner_passes_lesson_8") {
        return;
    }
    let _serial = serial();
    let report = check(8, "good_partitions.py");
    assert_only_failing(&report, &[]);
}
