//! The LLM coach against a mock Anthropic Messages API: `x-api-key`,
//! `anthropic-version`, the system prompt in `system`, the lesson and the
//! calibration in the user message; `content_block_delta` events streamed to the
//! writer as they arrive.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::mock_llm::*;
use common::*;
use statecraft_coach::llm::prompt::SYSTEM_PROMPT;
use statecraft_coach::llm::{Answered, LlmConfig, Provider, answer_with_fallback};
use statecraft_coach::render::Style;
use statecraft_coach::{Ask, ReviewChecks, Session};
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_shape_and_streaming() -> TestResult {
    let ws = workspace("python")?;
    let mut session = Session::prepare(
        fixture(ws.path())?,
        ws.path(),
        Ask::Question(
            "I put a lock around the counter so every ordering is correct, right?".into(),
        ),
        ReviewChecks::NotRun,
        T0,
    )?;
    assert_eq!(session.answer.level as u8, 3, "a misconception → level 3");

    let release = Arc::new(Notify::new());
    let second = format!("but does not order.\n{REST_OF_ANSWER}");
    let lines = anthropic_chunks(&["## The gap\n\nA lock serialises, ", &second]);
    let n = lines.len();
    let mut chunks: Vec<Chunk> = Vec::new();
    for (i, l) in lines.into_iter().enumerate() {
        // Hold the second text delta (index 3) until the first was printed.
        chunks.push(if i == 3 {
            Chunk::after(release.clone(), l)
        } else {
            Chunk::now(l)
        });
    }
    assert_eq!(n, 6);
    let mock = MockLlm::start(vec![Reply::Stream(chunks)]).await;
    let mut cfg = LlmConfig::new(Provider::Anthropic, &mock.url, "claude-test");
    cfg.api_key = Some("ak-test".into());
    cfg.timeout = Duration::from_secs(10);

    let mut out = RecordingWriter::with_trigger("A lock serialises", release);
    let answered = answer_with_fallback(&mut session, &cfg, Style::Plain, &mut out).await?;
    assert_eq!(answered, Answered::Llm, "output:\n{}", out.text());
    assert!(
        out.text()
            .starts_with("## The gap\n\nA lock serialises, but does not order.\n"),
        "{}",
        out.text()
    );
    let writes = out.writes.lock().map_err(|_| "poisoned")?.clone();
    let i_first = writes
        .iter()
        .position(|(_, s)| s.contains("A lock serialises"))
        .ok_or("first")?;
    let i_second = writes
        .iter()
        .position(|(_, s)| s.contains("does not order"))
        .ok_or("second")?;
    assert!(i_first < i_second);

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/v1/messages");
    let header = |k: &str| {
        r.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(header("x-api-key").as_deref(), Some("ak-test"));
    assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(r.body["system"], SYSTEM_PROMPT);
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["model"], "claude-test");
    assert!(r.body["max_tokens"].as_u64().is_some_and(|t| t > 0));
    assert_eq!(r.body["messages"][0]["role"], "user");
    let user = r.body["messages"][0]["content"].as_str().ok_or("user")?;
    for needle in [
        "Lesson 42",
        "One owner per counter",
        "Calibration level: 3",
        "A lock around the counter makes every ordering correct.",
    ] {
        assert!(user.contains(needle), "lacks {needle:?}:\n{user}");
    }
    Ok(())
}
