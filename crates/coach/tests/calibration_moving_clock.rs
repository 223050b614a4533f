//! Calibration by moving the clock: the same question now, at +45 min and at
//! +90 min gets levels 1, 2 and 3, with the lesson's hints from gentle to most
//! direct and a pattern that grows from the skeleton to the whole (still gapped)
//! pattern. Also: a pause starts over, a misconception or a burst of asks goes
//! straight to level 3.

mod common;

use common::*;
use statecraft_coach::{Ask, Level, Part, ReviewChecks, coach_offline};

const QUESTION: &str = "How do I implement the dispatch so each counter has one owner?";

fn ask_at(
    ws: &std::path::Path,
    q: &str,
    now: u64,
) -> Result<statecraft_coach::Answer, Box<dyn std::error::Error>> {
    Ok(coach_offline(
        fixture(ws)?,
        ws,
        Ask::Question(q.into()),
        ReviewChecks::NotRun,
        now,
    )?)
}

fn hint(a: &statecraft_coach::Answer) -> String {
    a.section(Part::Hint)
        .map(|s| s.body.clone())
        .unwrap_or_default()
}

fn pattern_lines(a: &statecraft_coach::Answer) -> usize {
    let body = a
        .section(Part::Pattern)
        .map(|s| s.body.clone())
        .unwrap_or_default();
    statecraft_coach::answer::code_blocks(&body)
        .iter()
        .map(|b| b.lines.len())
        .sum()
}

#[test]
fn now_then_45_then_90_minutes() -> TestResult {
    let ws = workspace("python")?;
    let first = ask_at(ws.path(), QUESTION, T0)?;
    let second = ask_at(ws.path(), QUESTION, T0 + 45 * 60)?;
    let third = ask_at(ws.path(), QUESTION, T0 + 90 * 60)?;

    assert_eq!(
        [first.level, second.level, third.level],
        [Level::Gentle, Level::Direct, Level::MostDirect]
    );
    for a in [&first, &second, &third] {
        assert_guides(a, "one_owner", "One owner per counter");
        assert!(has_gapped_pattern(a));
    }
    // Increasingly direct hints: the lesson's hints 1, 2, 3 in turn.
    assert!(hint(&first).contains("FIXTURE-HINT-1"), "{}", hint(&first));
    assert!(
        hint(&second).contains("FIXTURE-HINT-2"),
        "{}",
        hint(&second)
    );
    assert!(hint(&third).contains("FIXTURE-HINT-3"), "{}", hint(&third));
    // A fuller pattern after 30 minutes.
    assert!(pattern_lines(&second) > pattern_lines(&first));
    // The answers say why.
    assert!(second.to_markdown().contains("about 45 minutes"));
    assert!(third.to_markdown().contains("about 90 minutes"));
    Ok(())
}

#[test]
fn a_long_pause_starts_a_new_episode() -> TestResult {
    let ws = workspace("python")?;
    ask_at(ws.path(), QUESTION, T0)?;
    let next_day = ask_at(ws.path(), QUESTION, T0 + 24 * 3600)?;
    assert_eq!(next_day.level, Level::Gentle);
    Ok(())
}

#[test]
fn a_stated_misconception_gets_the_most_direct_help() -> TestResult {
    let ws = workspace("python")?;
    let a = ask_at(
        ws.path(),
        "I put a lock around the counter, so every ordering should be correct — but final_state fails",
        T0,
    )?;
    assert_eq!(a.level, Level::MostDirect);
    let gap = a
        .section(Part::Gap)
        .map(|s| s.body.clone())
        .unwrap_or_default();
    assert!(
        gap.contains("A lock around the counter makes every ordering correct."),
        "{gap}"
    );
    assert_no_solution_blocks(&a.to_markdown());
    Ok(())
}

#[test]
fn many_quick_asks_are_not_random_changes() -> TestResult {
    // Issue 15: four quick questions used to jump to level 3 ("random_changes",
    // recent_asks 6, 0 minutes on the concept). Asking often is not a signal.
    let ws = workspace("python")?;
    for i in 0..4 {
        let a = ask_at(ws.path(), QUESTION, T0 + i * 60)?;
        assert_eq!(a.level, Level::Gentle, "ask {i}");
    }
    // Code churn without a change in the figure is: three edits, two checks
    // failing the same objective.
    use std::io::Write;
    let journal = ws.path().join(".statecraft/journal.jsonl");
    for (i, t) in [(1u64, T0 + 300), (2, T0 + 420), (3, T0 + 540)] {
        std::fs::write(
            ws.path().join("main.py"),
            format!("async def owner(queue, counters):\n    x = {i}\n    # TODO: YOUR CODE HERE\n"),
        )?;
        let mut f = std::fs::OpenOptions::new().append(true).open(&journal)?;
        writeln!(
            f,
            r#"{{"kind":"check","lesson":42,"passed":false,"time":{},"failed":["final_state"]}}"#,
            t - 30
        )?;
        drop(f);
        ask_at(ws.path(), QUESTION, t)?;
    }
    std::fs::write(
        ws.path().join("main.py"),
        "async def owner(queue, counters):\n    x = 4\n    # TODO: YOUR CODE HERE\n",
    )?;
    let churn = ask_at(ws.path(), QUESTION, T0 + 600)?;
    assert_eq!(churn.level, Level::MostDirect, "{}", churn.to_markdown());
    assert!(
        churn.to_markdown().contains("one hypothesis"),
        "{}",
        churn.to_markdown()
    );
    Ok(())
}

#[test]
fn different_concepts_are_calibrated_separately() -> TestResult {
    let ws = workspace("python")?;
    ask_at(ws.path(), QUESTION, T0)?;
    let other = ask_at(
        ws.path(),
        "How do I write the collect loop for the batch deadline?",
        T0 + 45 * 60,
    )?;
    assert_eq!(other.concept.id, "deadline_batching");
    assert_eq!(other.level, Level::Gentle);
    let back = ask_at(ws.path(), QUESTION, T0 + 50 * 60)?;
    assert_eq!(back.level, Level::Direct);
    Ok(())
}

#[test]
fn progress_asks_more_and_tells_less() -> TestResult {
    use std::io::Write;
    let ws = workspace("python")?;
    let journal = ws.path().join(".statecraft/journal.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal)?;
    writeln!(
        f,
        r#"{{"kind":"check","lesson":42,"passed":false,"time":{},"failed":["final_state","deadline"]}}"#,
        T0 - 10
    )?;
    drop(f);
    ask_at(ws.path(), QUESTION, T0)?;
    let mut f = std::fs::OpenOptions::new().append(true).open(&journal)?;
    writeln!(
        f,
        r#"{{"kind":"check","lesson":42,"passed":false,"time":{},"failed":["final_state"]}}"#,
        T0 + 600
    )?;
    drop(f);
    let a = ask_at(ws.path(), QUESTION, T0 + 700)?;
    assert_eq!(a.level, Level::Gentle);
    let questions = a.section(Part::Questions).map_or(0, |s| s.items.len());
    assert!(
        questions >= 3,
        "more questions when progressing: {questions}"
    );
    assert!(hint(&a).contains("FIXTURE-HINT-1"), "still the gentle hint");
    let ack = a
        .section(Part::Acknowledge)
        .map(|s| s.body.clone())
        .unwrap_or_default();
    assert!(ack.contains("Fewer objectives fail"), "{ack}");
    Ok(())
}
