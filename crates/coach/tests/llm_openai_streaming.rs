//! The LLM coach against a mock OpenAI-compatible server: the request carries
//! the system prompt, the lesson and the calibration level; the answer is
//! printed as it arrives (the server withholds its second chunk until the
//! writer has received the first — a buffering client would time out).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::mock_llm::*;
use common::*;
use statecraft_coach::llm::prompt::SYSTEM_PROMPT;
use statecraft_coach::llm::{Answered, LlmConfig, Provider, answer_quietly, answer_with_fallback};
use statecraft_coach::render::Style;
use statecraft_coach::{Ask, ReviewChecks, Session};
use tokio::sync::Notify;

fn level2_session(ws: &std::path::Path) -> Result<Session, Box<dyn std::error::Error>> {
    let q = "How do I implement the dispatch so each counter has one owner?";
    statecraft_coach::coach_offline(
        fixture(ws)?,
        ws,
        Ask::Question(q.into()),
        ReviewChecks::NotRun,
        T0,
    )?;
    Ok(Session::prepare(
        fixture(ws)?,
        ws,
        Ask::Question(q.into()),
        ReviewChecks::NotRun,
        T0 + 45 * 60,
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_carries_prompt_lesson_and_level_and_streams() -> TestResult {
    let ws = workspace("python")?;
    let mut session = level2_session(ws.path())?;
    assert_eq!(session.answer.level as u8, 2);

    let release = Arc::new(Notify::new());
    let first = "## What you have right\n\nYou already route events to a queue. ";
    let second = "\n\n## Questions to ask yourself\n\n1. Which task owns key `a`?\n2. What breaks with two owners?\n";
    let second = format!("{second}{REST_OF_ANSWER}");
    let lines = openai_chunks(&[first, &second]);
    let script = vec![Reply::Stream(vec![
        Chunk::now(lines[0].clone()),
        Chunk::after(release.clone(), lines[1].clone()),
        Chunk::now(lines[2].clone()),
    ])];
    let mock = MockLlm::start(script).await;
    let mut cfg = LlmConfig::new(Provider::OpenAi, &mock.url, "test-model");
    cfg.api_key = Some("sk-test".into());
    cfg.timeout = Duration::from_secs(10);

    let mut out = RecordingWriter::with_trigger("You already route events", release);
    let answered = answer_with_fallback(&mut session, &cfg, Style::Plain, &mut out).await?;
    assert_eq!(answered, Answered::Llm, "output:\n{}", out.text());

    // Streamed: the first piece was written on its own, before the second existed.
    let writes = out.writes.lock().map_err(|_| "poisoned")?.clone();
    let i_first = writes
        .iter()
        .position(|(_, s)| s.contains("You already route events"))
        .ok_or("first piece")?;
    let i_second = writes
        .iter()
        .position(|(_, s)| s.contains("Which task owns"))
        .ok_or("second piece")?;
    assert!(i_first < i_second);
    assert!(!writes[i_first].1.contains("Which task owns"));
    assert!(
        out.text().contains(first.trim_end())
            && out.text().contains("What breaks with two owners?")
    );

    // The request.
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(
        r.headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some("Bearer sk-test")
    );
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["model"], "test-model");
    assert_eq!(r.body["messages"][0]["role"], "system");
    assert_eq!(r.body["messages"][0]["content"], SYSTEM_PROMPT);
    let user = r.body["messages"][1]["content"]
        .as_str()
        .ok_or("user message")?;
    assert_eq!(r.body["messages"][1]["role"], "user");
    for needle in [
        "Lesson 42",
        "One owner per counter",
        "FIXTURE-SECTION-TEXT",
        "Calibration level: 2",
        "FIXTURE-HINT-2",
        "TODO: YOUR CODE HERE",
        "main.py:",
        "Writes: python",
    ] {
        assert!(
            user.contains(needle),
            "user message lacks {needle:?}:\n{user}"
        );
    }

    // The session now describes the LLM's answer, and is journaled as such.
    assert_eq!(session.answer.engine, "llm");
    assert!(
        session
            .answer
            .sections
            .iter()
            .any(|s| s.title == "Questions to ask yourself")
    );
    session.record("llm")?;
    let journal = std::fs::read_to_string(ws.path().join(".statecraft/journal.jsonl"))?;
    assert!(
        journal
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"source\":\"llm\"")),
        "{journal}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_mode_collects_the_answer_quietly() -> TestResult {
    let ws = workspace("rust")?;
    let mut session = Session::prepare(
        fixture(ws.path())?,
        ws.path(),
        Ask::Question("Why does a counter need an owner?".into()),
        ReviewChecks::NotRun,
        T0,
    )?;
    let mock = MockLlm::start(vec![Reply::Stream(immediate(openai_chunks(&[
        "## The gap\n\nOwnership.\n",
        REST_OF_ANSWER,
    ])))])
    .await;
    let cfg = LlmConfig::new(Provider::OpenAi, &format!("{}/v1", mock.url), "m");
    assert_eq!(answer_quietly(&mut session, &cfg).await, Answered::Llm);
    let json: serde_json::Value = serde_json::from_str(&session.answer.to_json())?;
    assert_eq!(json["engine"], "llm");
    assert_eq!(json["concept"]["id"], "one_owner");
    assert_eq!(json["level"], 1);
    assert_eq!(json["kind"], "conceptual");
    assert_eq!(json["sections"][0]["title"], "The gap");
    assert!(json["sources"].as_array().is_some_and(|s| !s.is_empty()));
    let user = mock.requests()[0].body["messages"][1]["content"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        user.contains("Writes: rust") && user.contains("```rust"),
        "{user}"
    );
    Ok(())
}
