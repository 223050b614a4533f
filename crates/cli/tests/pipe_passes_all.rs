//! `statecraft pipe` — the engine on the lesson pipe protocol — is graded by
//! `statecraft check` exactly as a learner's program is, and passes every
//! objective of every built-in lesson.
//!
//! `KNOWN_GAPS` lists objectives the engine does not meet yet, each with what
//! the checker measured; they are reported on every run and must be fixed in
//! the engine (then removed here), never by loosening a check.

use std::sync::Mutex;

use statecraft_learn::check::{CheckOptions, MACHINE_BUSY, run_lesson};
use statecraft_learn::lesson::load_lesson;

/// (lesson, objective id, why it is tolerated for now).
const KNOWN_GAPS: &[(u32, &str, &str)] = &[];

static SERIAL: Mutex<()> = Mutex::new(());

fn passes(lesson: u32) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let lesson = load_lesson(lesson, None).expect("built-in lesson");
    let workdir = tempfile::tempdir().expect("tempdir");
    let cmd = vec![
        env!("CARGO_BIN_EXE_statecraft").to_string(),
        "pipe".to_string(),
    ];
    let report = run_lesson(&lesson, &cmd, &CheckOptions::new(workdir.path()));
    let mut failures = Vec::new();
    for o in &report.objectives {
        eprintln!(
            "[lesson {}] {} {}: {} (target: {})",
            lesson.number,
            if o.passed { "PASS" } else { "FAIL" },
            o.id,
            o.figure,
            o.target
        );
        if o.passed {
            continue;
        }
        let detail = o.detail.as_deref().unwrap_or("");
        if let Some((_, _, why)) = KNOWN_GAPS
            .iter()
            .find(|(n, id, _)| *n == lesson.number && *id == o.id)
        {
            eprintln!("    KNOWN GAP, tolerated: {why}\n    {detail}");
        } else if o.figure == "not graded"
            && (detail.contains("strace could not be run")
                || detail.contains("does not allow tracing"))
            && std::env::var("CI").as_deref() != Ok("true")
        {
            // Like a missing nats-server: a printed skip outside CI, a failure
            // under CI=true (.ci/run installs strace).
            eprintln!("    SKIPPED (not graded here): {detail}");
        } else if detail.contains(MACHINE_BUSY) {
            eprintln!("    tolerated: measured on a busy machine\n    {detail}");
        } else {
            failures.push(format!("{}: {} — {detail}", o.id, o.figure));
        }
    }
    assert!(
        failures.is_empty(),
        "statecraft pipe fails lesson {}:\n{}",
        lesson.number,
        failures.join("\n")
    );
}

#[test]
fn pipe_passes_lesson_1() {
    passes(1);
}

#[test]
fn pipe_passes_lesson_2() {
    passes(2);
}

#[test]
fn pipe_passes_lesson_3() {
    passes(3);
}

#[test]
fn pipe_passes_lesson_4() {
    passes(4);
}

#[test]
fn pipe_passes_lesson_5() {
    passes(5);
}

#[test]
fn pipe_passes_lesson_6() {
    passes(6);
}

#[test]
fn pipe_passes_lesson_7() {
    passes(7);
}

#[test]
fn pipe_passes_lesson_8() {
    passes(8);
}

#[test]
fn pipe_passes_lesson_9() {
    passes(9);
}
