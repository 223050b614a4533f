//! The guard of rule 6 with a model: a fenced block longer than six lines
//! without a `TODO` is held back (never printed), sent back for revision once,
//! and — if the revision still has no gap — replaced by the lesson's partial
//! pattern. Prose around it keeps streaming.

mod common;

use std::time::Duration;

use common::mock_llm::*;
use common::*;
use statecraft_coach::llm::guard::HELD_PLACEHOLDER;
use statecraft_coach::llm::{Answered, LlmConfig, Provider, answer_with_fallback};
use statecraft_coach::render::Style;
use statecraft_coach::{Ask, ReviewChecks, Session};

const SOLUTION: &str = "```python\nasync def owner(queue, counters):\n    while True:\n        event = await queue.get()\n        key = event['key']\n        counters[key] = counters.get(key, 0) + event.get('value', 1)\n        print(json.dumps({'ack': event['id']}))  # SOLUTION_LINE\n        queue.task_done()\n```\n";
const FIXED: &str = "```python\nasync def owner(queue, counters):\n    while True:\n        event = await queue.get()\n        # TODO: YOUR CODE HERE: apply it (REVISED_MARKER)\n        # TODO: YOUR CODE HERE: ack it\n        queue.task_done()\n        continue\n```\n";

fn session(ws: &std::path::Path) -> Result<Session, Box<dyn std::error::Error>> {
    Ok(Session::prepare(
        fixture(ws)?,
        ws,
        Ask::Question("How do I implement the owner task?".into()),
        ReviewChecks::NotRun,
        T0,
    )?)
}

fn config(url: &str, provider: Provider) -> LlmConfig {
    let mut cfg = LlmConfig::new(provider, url, "m");
    cfg.timeout = Duration::from_secs(10);
    cfg
}

fn answer_with(block: &str) -> Vec<String> {
    let before = "## A pattern to complete\n\nHere it is:\n\n";
    let after = format!("\nNow run the check.\n{REST_OF_ANSWER}");
    openai_chunks(&[before, block, &after])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gap_free_twice_is_replaced_by_the_lessons_pattern() -> TestResult {
    let ws = workspace("python")?;
    let mut s = session(ws.path())?;
    let mock = MockLlm::start(vec![
        Reply::Stream(immediate(answer_with(SOLUTION))),
        Reply::Stream(immediate(openai_chunks(&[SOLUTION]))),
    ])
    .await;
    let mut out = RecordingWriter::new();
    let answered = answer_with_fallback(
        &mut s,
        &config(&mock.url, Provider::OpenAi),
        Style::Plain,
        &mut out,
    )
    .await?;
    assert_eq!(answered, Answered::Llm);
    let text = out.text();
    assert!(
        !text.contains("SOLUTION_LINE"),
        "the solution was printed:\n{text}"
    );
    assert!(text.contains(HELD_PLACEHOLDER), "{text}");
    assert!(
        text.contains("Now run the check."),
        "prose after the block still streams:\n{text}"
    );
    assert!(text.contains("lesson's partial pattern"), "{text}");
    assert!(
        text.contains("# TODO: YOUR CODE HERE: apply the increment, then ack"),
        "{text}"
    );
    assert_no_solution_blocks(&text);
    assert_no_solution_blocks(&s.answer.to_markdown());

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2, "exactly one revision request");
    let msgs = reqs[1].body["messages"].as_array().ok_or("messages")?;
    let roles: Vec<&str> = msgs.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    let note = msgs[3]["content"].as_str().unwrap_or("");
    assert!(
        note.contains("TODO: YOUR CODE HERE") && note.contains("Rewrite only"),
        "{note}"
    );
    assert!(
        msgs[2]["content"]
            .as_str()
            .is_some_and(|a| a.contains("Here it is"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_revision_is_used() -> TestResult {
    let ws = workspace("python")?;
    let mut s = session(ws.path())?;
    let mock = MockLlm::start(vec![
        Reply::Stream(immediate(answer_with(SOLUTION))),
        Reply::Stream(immediate(openai_chunks(&["Sure:\n\n", FIXED]))),
    ])
    .await;
    let mut out = RecordingWriter::new();
    answer_with_fallback(
        &mut s,
        &config(&mock.url, Provider::OpenAi),
        Style::Plain,
        &mut out,
    )
    .await?;
    let text = out.text();
    assert!(!text.contains("SOLUTION_LINE"), "{text}");
    assert!(
        text.contains("REVISED_MARKER"),
        "the revision is shown:\n{text}"
    );
    assert!(!text.contains("lesson's partial pattern"), "{text}");
    // The kept answer has the revision in place of the held block.
    let md = s.answer.to_markdown();
    assert!(
        md.contains("REVISED_MARKER") && !md.contains("SOLUTION_LINE"),
        "{md}"
    );
    assert_eq!(mock.requests().len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_or_gapped_blocks_pass_without_revision() -> TestResult {
    let ws = workspace("python")?;
    let mut s = session(ws.path())?;
    let short = "```python\nqueue = asyncio.Queue()\n```\n";
    let mock = MockLlm::start(vec![Reply::Stream(immediate(openai_chunks(&[
        "Look:\n",
        short,
        FIXED,
        "done\n",
        REST_OF_ANSWER,
    ])))])
    .await;
    let mut out = RecordingWriter::new();
    answer_with_fallback(
        &mut s,
        &config(&mock.url, Provider::OpenAi),
        Style::Plain,
        &mut out,
    )
    .await?;
    let text = out.text();
    assert!(
        text.contains("queue = asyncio.Queue()") && text.contains("REVISED_MARKER"),
        "{text}"
    );
    assert!(!text.contains(HELD_PLACEHOLDER));
    assert_eq!(mock.requests().len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_works_for_anthropic_too() -> TestResult {
    let ws = workspace("rust")?;
    let mut s = session(ws.path())?;
    let rust_solution = "```rust\nasync fn owner(mut rx: Receiver<Event>) {\n    let mut counters = HashMap::new();\n    while let Some(ev) = rx.recv().await {\n        *counters.entry(ev.key).or_insert(0) += ev.value;\n        ack(ev.id); // SOLUTION_LINE\n    }\n}\n```\n";
    let mock = MockLlm::start(vec![
        Reply::Stream(immediate(anthropic_chunks(&[
            "Here:\n\n",
            rust_solution,
            REST_OF_ANSWER,
        ]))),
        Reply::Status(500),
    ])
    .await;
    let mut out = RecordingWriter::new();
    let answered = answer_with_fallback(
        &mut s,
        &config(&mock.url, Provider::Anthropic),
        Style::Plain,
        &mut out,
    )
    .await?;
    assert_eq!(
        answered,
        Answered::Llm,
        "a failed revision does not discard the answer"
    );
    let text = out.text();
    assert!(!text.contains("SOLUTION_LINE"), "{text}");
    assert!(
        text.contains("// TODO: YOUR CODE HERE: apply the increment, then ack"),
        "rust pattern:\n{text}"
    );
    let reqs = mock.requests();
    let roles: Vec<&str> = reqs[1].body["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|x| x["role"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        roles,
        ["user", "assistant", "user"],
        "Anthropic: system is separate"
    );
    Ok(())
}

/// Issue 15's adversary: a complete solution whose last line is a fake gap
/// (`# TODO: YOUR CODE HERE (nothing left)`) was printed in full by a guard that
/// only looked for the word. The judge counts the new code outside gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_solution_with_a_fake_todo_is_held_back() -> TestResult {
    let ws = workspace("python")?;
    let mut s = session(ws.path())?;
    let fake = SOLUTION.replace(
        "        queue.task_done()\n```",
        "        queue.task_done()\n        log.debug('acked %s', event['id'])\n        stats['acked'] += 1\n# TODO: YOUR CODE HERE (nothing left)\n```",
    );
    assert!(fake.contains("(nothing left)"));
    let mock = MockLlm::start(vec![
        Reply::Stream(immediate(answer_with(&fake))),
        Reply::Stream(immediate(openai_chunks(&[&fake]))),
    ])
    .await;
    let mut out = RecordingWriter::new();
    let answered = answer_with_fallback(
        &mut s,
        &config(&mock.url, Provider::OpenAi),
        Style::Plain,
        &mut out,
    )
    .await?;
    assert_eq!(answered, Answered::Llm);
    let text = out.text();
    assert!(!text.contains("SOLUTION_LINE"), "printed:\n{text}");
    assert!(text.contains(HELD_PLACEHOLDER), "{text}");
    assert_eq!(mock.requests().len(), 2, "one revision, then the pattern");
    Ok(())
}

/// Issue 15's adversary: an answer without the six-part structure went
/// straight through. It is sent back once; a second miss falls back offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_the_structure_is_revised_once_then_replaced() -> TestResult {
    let ws = workspace("python")?;
    let unstructured = "Just use one owner task per counter and you are done.\n";
    // Twice unstructured: the offline answer, after a one-line notice.
    let mut s = session(ws.path())?;
    let mock = MockLlm::start(vec![
        Reply::Stream(immediate(openai_chunks(&[unstructured]))),
        Reply::Stream(immediate(openai_chunks(&[unstructured]))),
    ])
    .await;
    let mut out = RecordingWriter::new();
    let answered = answer_with_fallback(
        &mut s,
        &config(&mock.url, Provider::OpenAi),
        Style::Plain,
        &mut out,
    )
    .await?;
    assert_eq!(answered, Answered::OfflineFallback);
    let text = out.text();
    assert!(text.contains("the answer was refused twice"), "{text}");
    assert!(text.contains("## Questions to ask yourself"), "{text}");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2, "exactly one revision request");
    let note = reqs[1].body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    assert!(note.contains("misses these parts"), "{note}");

    // Revised into the six parts: the revision is shown and kept.
    let mut s = session(ws.path())?;
    let mock = MockLlm::start(vec![
        Reply::Stream(immediate(openai_chunks(&[unstructured]))),
        Reply::Stream(immediate(openai_chunks(&[REST_OF_ANSWER]))),
    ])
    .await;
    let mut out = RecordingWriter::new();
    let answered = answer_with_fallback(
        &mut s,
        &config(&mock.url, Provider::OpenAi),
        Style::Plain,
        &mut out,
    )
    .await?;
    assert_eq!(answered, Answered::Llm);
    assert!(out.text().contains("Revised answer"), "{}", out.text());
    assert!(s.answer.to_markdown().contains("Which task owns key"));
    Ok(())
}
