//! A check that passes after failing produces the "discovery" answer: it names
//! what was discovered, connects it to the broader concept and to the next
//! phase, asks the learner to explain it back — once; the next question is
//! coached normally again.

mod common;

use std::io::Write;

use common::*;
use statecraft_coach::{Ask, CheckFigure, Mode, Part, ReviewChecks, coach_offline};

fn journal_line(ws: &std::path::Path, line: &str) -> TestResult {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ws.join(".statecraft/journal.jsonl"))?;
    writeln!(f, "{line}")?;
    Ok(())
}

#[test]
fn failing_then_passing_check_is_a_discovery() -> TestResult {
    let ws = workspace("python")?;
    journal_line(
        ws.path(),
        &format!(
            r#"{{"kind":"check","lesson":42,"passed":false,"time":{T0},"failed":["final_state"]}}"#
        ),
    )?;
    let before = coach_offline(
        fixture(ws.path())?,
        ws.path(),
        Ask::Question("my counters end wrong, how do I implement the owner?".into()),
        ReviewChecks::NotRun,
        T0 + 60,
    )?;
    assert_eq!(before.mode, Mode::Guide);
    assert!(
        before.to_markdown().contains("`final_state`"),
        "the failing objective is named"
    );

    // The checker records a passing run.
    journal_line(
        ws.path(),
        &format!(
            r#"{{"kind":"check","lesson":42,"passed":true,"time":{},"failed":[]}}"#,
            T0 + 1200
        ),
    )?;
    let after = coach_offline(
        fixture(ws.path())?,
        ws.path(),
        Ask::Question("it passes now! what next?".into()),
        ReviewChecks::NotRun,
        T0 + 1300,
    )?;
    let md = after.to_markdown();
    assert_eq!(after.mode, Mode::Discovery, "{md}");
    assert_eq!(
        after.concept.id, "one_owner",
        "the concept of the fixed objective"
    );
    let found = after
        .section(Part::Discovery)
        .map(|s| s.body.clone())
        .unwrap_or_default();
    assert!(
        found.contains("`final_state`"),
        "names what now passes:\n{found}"
    );
    assert!(
        found.contains("One owner per counter"),
        "names the concept:\n{found}"
    );
    let connection = after
        .section(Part::Connection)
        .map(|s| s.body.clone())
        .unwrap_or_default();
    assert!(
        connection.contains("Lesson 43 makes the counters durable"),
        "the next phase:\n{connection}"
    );
    assert!(
        after
            .section(Part::Questions)
            .is_some_and(|s| s.items.len() >= 2)
    );
    assert!(md.contains("Explain it back"));
    assert_no_solution_blocks(&md);

    // Celebrated once: the next question is coached normally.
    let later = coach_offline(
        fixture(ws.path())?,
        ws.path(),
        Ask::Question("What is the point of a fixed deadline for a batch?".into()),
        ReviewChecks::NotRun,
        T0 + 1400,
    )?;
    assert_eq!(later.mode, Mode::Guide);
    Ok(())
}

#[test]
fn a_review_whose_checks_now_pass_is_a_discovery_with_figures() -> TestResult {
    let ws = workspace("rust")?;
    journal_line(
        ws.path(),
        &format!(
            r#"{{"kind":"check","lesson":42,"passed":false,"time":{T0},"failed":["throughput"]}}"#
        ),
    )?;
    journal_line(
        ws.path(),
        &format!(
            r#"{{"kind":"check","lesson":42,"passed":true,"time":{},"failed":[]}}"#,
            T0 + 600
        ),
    )?;
    let figures = ["final_state", "deadline", "throughput"]
        .iter()
        .map(|id| CheckFigure {
            objective: id.to_string(),
            passed: true,
            figure: if *id == "throughput" {
                "2,310 events/s".into()
            } else {
                "ok".into()
            },
            target: "t".into(),
            detail: None,
        })
        .collect();
    let a = coach_offline(
        fixture(ws.path())?,
        ws.path(),
        Ask::Review,
        ReviewChecks::Ran(figures),
        T0 + 700,
    )?;
    assert_eq!(a.mode, Mode::Discovery);
    assert_eq!(a.concept.id, "measuring");
    assert!(
        a.to_markdown().contains("2,310 events/s"),
        "{}",
        a.to_markdown()
    );
    Ok(())
}

#[test]
fn a_review_with_failures_points_at_the_failing_concept() -> TestResult {
    let ws = workspace("python")?;
    let figures = vec![
        CheckFigure {
            objective: "final_state".into(),
            passed: true,
            figure: "200/200 keys equal".into(),
            target: "all keys equal".into(),
            detail: None,
        },
        CheckFigure {
            objective: "deadline".into(),
            passed: false,
            figure: "ack after 412 ms".into(),
            target: "≤ 150 ms".into(),
            detail: Some("the lone event e1 was acked after 412 ms".into()),
        },
        CheckFigure {
            objective: "throughput".into(),
            passed: true,
            figure: "3,100 events/s".into(),
            target: "≥ 1,000 events/s".into(),
            detail: None,
        },
    ];
    let a = coach_offline(
        fixture(ws.path())?,
        ws.path(),
        Ask::Review,
        ReviewChecks::Ran(figures),
        T0,
    )?;
    assert_eq!(a.mode, Mode::Guide);
    assert_guides(&a, "deadline_batching", "A fixed batch deadline");
    let md = a.to_markdown();
    assert!(md.contains("ack after 412 ms"), "{md}");
    assert!(
        md.contains("The checker noted: the lone event e1 was acked"),
        "{md}"
    );
    assert!(
        md.contains("passes 2 of 3 objectives"),
        "acknowledges what passes:\n{md}"
    );
    // The review is recorded in the journal by the caller (the CLI) when the checker did not.
    Ok(())
}

#[test]
fn a_review_without_checks_says_so() -> TestResult {
    let ws = workspace("python")?;
    let a = coach_offline(
        fixture(ws.path())?,
        ws.path(),
        Ask::Review,
        ReviewChecks::Unavailable("no `command` in .statecraft/workspace.toml".into()),
        T0,
    )?;
    assert!(
        a.to_markdown()
            .contains("The checks could not run: no `command`")
    );
    Ok(())
}
