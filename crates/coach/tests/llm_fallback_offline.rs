//! Every failure of the LLM coach falls back to the offline coach and says so
//! in exactly one line: HTTP errors, malformed and truncated streams, a stalled
//! stream (the total timeout), a refused connection.

mod common;

use std::time::{Duration, Instant};

use common::mock_llm::*;
use common::*;
use statecraft_coach::llm::{Answered, LlmConfig, Provider, answer_with_fallback};
use statecraft_coach::render::Style;
use statecraft_coach::{Ask, ReviewChecks, Session};

async fn fallback_case(
    provider: Provider,
    url: &str,
    timeout: Duration,
) -> Result<(String, Session), Box<dyn std::error::Error>> {
    let ws = workspace("python")?;
    let mut s = Session::prepare(
        fixture(ws.path())?,
        ws.path(),
        Ask::Question("How do I implement the owner task?".into()),
        ReviewChecks::NotRun,
        T0,
    )?;
    let mut cfg = LlmConfig::new(provider, url, "m");
    cfg.timeout = timeout;
    cfg.connect_timeout = Duration::from_secs(2);
    let mut out = RecordingWriter::new();
    let answered = answer_with_fallback(&mut s, &cfg, Style::Plain, &mut out).await?;
    assert_eq!(answered, Answered::OfflineFallback);
    let text = out.text();
    let notices: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("LLM coach unavailable"))
        .collect();
    assert_eq!(notices.len(), 1, "one notice line:\n{text}");
    assert!(
        text.contains("## Questions to ask yourself"),
        "the offline answer follows:\n{text}"
    );
    assert_eq!(s.answer.engine, "offline");
    assert_eq!(s.answer.notice.as_deref(), Some(notices[0]));
    assert_no_solution_blocks(&text);
    drop(ws);
    Ok((notices[0].to_string(), s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_500() -> TestResult {
    let mock = MockLlm::start(vec![Reply::Status(500)]).await;
    let (notice, _) = fallback_case(Provider::OpenAi, &mock.url, Duration::from_secs(10)).await?;
    assert!(notice.contains("HTTP 500"), "{notice}");
    let mock = MockLlm::start(vec![Reply::Status(401)]).await;
    let (notice, _) =
        fallback_case(Provider::Anthropic, &mock.url, Duration::from_secs(10)).await?;
    assert!(notice.contains("HTTP 401"), "{notice}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sse() -> TestResult {
    let mock = MockLlm::start(vec![Reply::Stream(vec![
        Chunk::now(openai_chunks(&["## Start\n"])[0].clone()),
        Chunk::now("data: {this is not json\n\n"),
    ])])
    .await;
    let (notice, _) = fallback_case(Provider::OpenAi, &mock.url, Duration::from_secs(10)).await?;
    assert!(notice.contains("malformed"), "{notice}");

    let mock = MockLlm::start(vec![Reply::Stream(vec![Chunk::now(
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n",
    )])])
    .await;
    let (notice, _) =
        fallback_case(Provider::Anthropic, &mock.url, Duration::from_secs(10)).await?;
    assert!(notice.contains("overloaded_error"), "{notice}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_stream() -> TestResult {
    let mut lines = openai_chunks(&["## Start\n", "more\n"]);
    lines.pop(); // no [DONE]
    let mock = MockLlm::start(vec![Reply::Stream(immediate(lines))]).await;
    let (notice, _) = fallback_case(Provider::OpenAi, &mock.url, Duration::from_secs(10)).await?;
    assert!(notice.contains("ended before"), "{notice}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_stream_times_out() -> TestResult {
    let mock = MockLlm::start(vec![Reply::Stall(vec![Chunk::now(
        openai_chunks(&["## Start\n"])[0].clone(),
    )])])
    .await;
    let started = Instant::now();
    let (notice, _) = fallback_case(Provider::OpenAi, &mock.url, Duration::from_secs(1)).await?;
    assert!(notice.contains("within 1 s"), "{notice}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection() -> TestResult {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let (notice, _) = fallback_case(
        Provider::OpenAi,
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(5),
    )
    .await?;
    assert!(notice.contains("could not reach"), "{notice}");
    Ok(())
}
