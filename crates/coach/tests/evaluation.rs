//! The coach's evaluation suite (`eval/cases.toml`, ≥ 40 learner questions over
//! the nine lessons) scored by `statecraft_coach::eval`, with stated thresholds:
//!
//! | figure | offline | LLM (mock in CI) |
//! |---|---|---|
//! | routing (kind and concept) | ≥ 90 % | ≥ 90 % |
//! | code reference (function + line) | ≥ 90 % | ≥ 90 % |
//! | facts used | ≥ 90 % | — |
//! | no solution given | 100 % | 100 % |
//! | structure (six parts) | 100 % | 100 % |
//!
//! The LLM runs go through the real client, guard and fallback against a mock
//! OpenAI-compatible server on 127.0.0.1: a cooperative model (it answers with
//! the offline coach's material from the prompt) and a hostile one (it answers
//! every question with the complete reference function, no structure, and a
//! fake `TODO`). With `STATECRAFT_EVAL_LLM_URL` (+ `STATECRAFT_EVAL_LLM_MODEL`,
//! optional `STATECRAFT_EVAL_LLM_PROVIDER`/`_API_KEY`) the suite also runs
//! against that endpoint and prints its figures (no thresholds: a real model's
//! figures are a measurement, not a CI verdict).
//!
//! Figures: `cargo test -p statecraft-coach --test evaluation -- --nocapture`.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};
use statecraft_coach::eval::{self, Figures, Score, Suite};
use statecraft_coach::llm::{self, LlmConfig, Provider};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn print_scores(label: &str, scores: &[Score]) -> Figures {
    let figures = Figures::of(scores);
    println!("{}", figures.report(label));
    for s in scores {
        if !s.notes.is_empty() {
            println!("  {}: {}", s.id, s.notes.join("; "));
        }
    }
    figures
}

#[test]
fn the_suite_has_forty_cases_over_nine_lessons_and_the_seven_seeds() -> TestResult {
    let suite = Suite::builtin()?;
    assert!(suite.cases.len() >= 40, "{} cases", suite.cases.len());
    let mut lessons: Vec<u32> = suite.cases.iter().map(|c| c.lesson).collect();
    lessons.sort();
    lessons.dedup();
    assert_eq!(lessons, (1..=9).collect::<Vec<_>>());
    let seeds = suite
        .cases
        .iter()
        .filter(|c| c.id.starts_with("seed-"))
        .count();
    assert_eq!(seeds, 7);
    Ok(())
}

#[test]
fn offline_coach_meets_the_thresholds() -> TestResult {
    let suite = Suite::builtin()?;
    let scores = eval::run_offline(&suite, &eval::default_reference_dir())?;
    if let Ok(id) = std::env::var("STATECRAFT_EVAL_SHOW") {
        for case in suite.cases.iter().filter(|c| c.id == id) {
            println!("{}", eval::prepare(case)?.session.answer.to_markdown());
        }
    }
    let f = print_scores("offline", &scores);
    // The prompt a model would get, for the context-length advice in docs/coach-llm.md.
    let mut sizes: Vec<usize> = Vec::new();
    for case in &suite.cases {
        let p = llm::Prompt::from_session(&eval::prepare(case)?.session);
        sizes.push(p.system.len() + p.user.len());
    }
    sizes.sort();
    println!(
        "prompt size (system + user): median {} chars, max {} chars (~{} tokens at 4 chars/token)",
        sizes[sizes.len() / 2],
        sizes[sizes.len() - 1],
        sizes[sizes.len() - 1] / 4
    );
    // The seven seeds: on-concept, about the learner's code, no solution, structured.
    for s in scores.iter().filter(|s| s.id.starts_with("seed-")) {
        assert!(
            s.routing && s.code_reference && s.no_solution && s.structure,
            "seed {} missed: {:?}",
            s.id,
            s.notes
        );
    }
    assert!(f.routing >= 0.90, "{}", f.report("offline"));
    assert!(f.code_reference >= 0.90, "{}", f.report("offline"));
    assert!(f.facts >= 0.90, "{}", f.report("offline"));
    assert!(f.no_solution >= 1.0, "{}", f.report("offline"));
    assert!(f.structure >= 1.0, "{}", f.report("offline"));
    Ok(())
}

/// How the mock model behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Model {
    /// Answers with the offline coach's material from the prompt.
    Cooperative,
    /// Answers with a complete solution, no structure, and a fake TODO.
    Hostile,
}

const HOSTILE: &str = "Sure! Here is the fixed function:\n\n```python\nasync def collect(self, q):\n    loop = asyncio.get_running_loop()\n    batch = [await q.get()]\n    deadline = loop.time() + self.s.max_wait\n    while len(batch) < self.s.max_batch:\n        try:\n            batch.append(q.get_nowait())\n            continue\n        except asyncio.QueueEmpty:\n            pass\n        remaining = deadline - loop.time()\n        if remaining <= 0:\n            break\n        try:\n            batch.append(await asyncio.wait_for(q.get(), remaining))\n        except asyncio.TimeoutError:\n            break\n    return batch\n# TODO: YOUR CODE HERE (nothing left)\n```\n\nThat's it, it works now.\n";

async fn mock(State(model): State<Model>, body: String) -> impl IntoResponse {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    // The first user message (OpenAI puts the system prompt before it).
    let user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let text = match model {
        Model::Hostile => HOSTILE.to_string(),
        Model::Cooperative => {
            let start = user
                .find("## The offline coach's chosen material")
                .and_then(|i| user[i..].find('\n').map(|j| i + j + 1))
                .unwrap_or(0);
            let end = user.find("\n## Your answer").unwrap_or(user.len());
            // Drop the offline title line: the model writes sections only.
            user[start..end]
                .lines()
                .filter(|l| !l.starts_with("# Coach ·"))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let mut sse = String::new();
    for piece in text.split_inclusive('\n').collect::<Vec<_>>().chunks(3) {
        let chunk = json!({"choices": [{"delta": {"content": piece.concat()}}]});
        sse.push_str(&format!("data: {chunk}\n\n"));
    }
    sse.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], sse)
}

async fn start_mock(model: Model) -> Result<String, Box<dyn std::error::Error>> {
    let app = Router::new()
        .route("/v1/chat/completions", post(mock))
        .with_state(model);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// Runs every case through the LLM path (client, guard, revision, fallback).
async fn run_llm(
    suite: &Suite,
    cfg: &LlmConfig,
    explain_fallbacks: bool,
) -> Result<(Vec<Score>, usize), Box<dyn std::error::Error>> {
    let reference = eval::default_reference_dir();
    let mut scores = Vec::new();
    let mut fallbacks = 0;
    for case in &suite.cases {
        let mut prepared = eval::prepare(case)?;
        let answered = llm::answer_quietly(&mut prepared.session, cfg).await;
        let answer = prepared.session.answer.clone();
        let mut score = eval::score(case, &prepared, &answer, suite, &reference);
        if answered == llm::Answered::OfflineFallback {
            fallbacks += 1;
            if let Some(n) = answer.notice.as_ref().filter(|_| explain_fallbacks) {
                score.notes.push(n.clone());
            }
        }
        scores.push(score);
    }
    Ok((scores, fallbacks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_suite_through_the_llm_path_with_a_mock_model() -> TestResult {
    let suite = Suite::builtin()?;
    for model in [Model::Cooperative, Model::Hostile] {
        let url = start_mock(model).await?;
        let mut cfg = LlmConfig::new(Provider::OpenAi, &url, "mock");
        cfg.timeout = Duration::from_secs(20);
        let (scores, fallbacks) = run_llm(&suite, &cfg, model == Model::Cooperative).await?;
        let label = match model {
            Model::Cooperative => "llm (cooperative mock)",
            Model::Hostile => "llm (hostile mock)",
        };
        let f = print_scores(label, &scores);
        println!(
            "  {label}: {fallbacks} of {} answers fell back to the offline coach",
            scores.len()
        );
        assert!(f.routing >= 0.90, "{}", f.report(label));
        assert!(f.no_solution >= 1.0, "{}", f.report(label));
        assert!(f.structure >= 1.0, "{}", f.report(label));
        match model {
            Model::Cooperative => {
                assert_eq!(fallbacks, 0, "a cooperative model is not replaced");
                assert!(f.code_reference >= 0.90, "{}", f.report(label));
            }
            // Every hostile answer is refused: revised once, then offline.
            Model::Hostile => assert_eq!(fallbacks, scores.len()),
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_endpoint_is_measured_too() -> TestResult {
    let Ok(url) = std::env::var("STATECRAFT_EVAL_LLM_URL") else {
        println!("STATECRAFT_EVAL_LLM_URL not set: the real-model run is skipped");
        return Ok(());
    };
    let env = |k: &str| {
        let key = k.replace("STATECRAFT_LLM", "STATECRAFT_EVAL_LLM");
        std::env::var(key).ok()
    };
    let ws = tempfile::tempdir()?;
    let cfg = LlmConfig::resolve(&env, ws.path(), None)?.ok_or("no endpoint")?;
    let suite = Suite::builtin()?;
    let (scores, fallbacks) = run_llm(&suite, &cfg, true).await?;
    let f = print_scores(&format!("llm ({url}, {})", cfg.model), &scores);
    println!(
        "  {fallbacks} of {} answers fell back to the offline coach",
        f.cases
    );
    Ok(())
}

/// No level hands over the missing lines: for every concept of every lesson,
/// at levels 1, 2 and 3, the hint and the pattern together (with the
/// questions) cover less than half of the lines the learner's starter is
/// missing from the lesson's reference solution, and the hint never assigns a
/// name the shown pattern leaves to a gap (issue 15: lesson 2's level-2 hint
/// "compute remaining = deadline - now" plus its pattern were the whole collector).
#[test]
fn no_level_hands_over_the_missing_lines() -> TestResult {
    use statecraft_coach::judge;
    use statecraft_coach::{Ask, Level, Part, ReviewChecks, coach_offline, material};
    let suite = Suite::builtin()?;
    let reference = eval::default_reference_dir();
    let mut checked = 0;
    let mut redacted = Vec::new();
    for n in 1..=9u32 {
        let l = material::load(n, None)?;
        for concept in &l.concepts {
            let ws = tempfile::tempdir()?;
            statecraft_learn::workspace::init(
                ws.path(),
                statecraft_learn::workspace::Lang::Python,
                true,
            )?;
            let program = std::fs::read_to_string(ws.path().join("main.py"))?;
            let missing = eval::missing_lines(&suite, &reference, n, &program);
            assert!(!missing.is_empty(), "lesson {n} has reference lines");
            let q = format!("How do I implement {}?", concept.title.to_lowercase());
            for (i, dt) in [0u64, 45 * 60, 90 * 60].into_iter().enumerate() {
                let a = coach_offline(
                    l.clone(),
                    ws.path(),
                    Ask::Question(q.clone()),
                    ReviewChecks::NotRun,
                    eval::EVAL_NOW + dt,
                )?;
                let level = [Level::Gentle, Level::Direct, Level::MostDirect][i];
                assert_eq!(a.level, level, "lesson {n} {}", concept.id);
                let given: String = [Part::Questions, Part::Hint, Part::Pattern]
                    .iter()
                    .filter_map(|p| a.section(*p))
                    .map(|s| format!("{}\n", s.body))
                    .collect();
                let (covered, of) = judge::reference_coverage(&given, &missing);
                assert!(
                    (covered as f64) < of as f64 * judge::MAX_REFERENCE_SHARE,
                    "lesson {n} {} level {}: hint + pattern write {covered} of the {of} missing lines:\n{given}",
                    concept.id,
                    i + 1
                );
                let hint = a
                    .section(Part::Hint)
                    .map(|s| s.body.clone())
                    .unwrap_or_default();
                for name in judge::gap_outputs(&concept.patterns.python) {
                    let (_, would_change) =
                        judge::redact_gap_outputs(&hint, std::slice::from_ref(&name));
                    assert!(
                        !would_change,
                        "lesson {n} {} level {}: the hint assigns `{name}`, the pattern's gap:\n{hint}",
                        concept.id,
                        i + 1
                    );
                }
                if a.given.iter().any(|g| g == "hint:redacted") {
                    redacted.push(format!("{n}:{}:{}", concept.id, i + 1));
                }
                checked += 1;
            }
        }
    }
    println!("hint + pattern checked at {checked} (concept, level) pairs; redacted: {redacted:?}");
    assert!(
        redacted
            .iter()
            .any(|r| r.starts_with("2:deadline_batching:")),
        "lesson 2's deadline hint is the issue's example: {redacted:?}"
    );
    Ok(())
}

/// Acknowledgement from facts: a figure recorded at a failing check and the
/// figure of this review are both named ("from … to …"); an untouched starter
/// gets no praise.
#[test]
fn acknowledgement_names_the_figures_it_saw() -> TestResult {
    use statecraft_coach::{Ask, CheckFigure, Part, ReviewChecks, Session, material};
    let ws = tempfile::tempdir()?;
    statecraft_learn::workspace::init(ws.path(), statecraft_learn::workspace::Lang::Python, true)?;
    std::fs::write(
        ws.path().join(".statecraft/journal.jsonl"),
        format!(
            "{{\"kind\":\"check\",\"lesson\":7,\"passed\":false,\"time\":{},\"failed\":[\"p95_near_target\"],\"figures\":{{\"p95_near_target\":\"p95 48 ms\"}}}}\n",
            eval::EVAL_NOW - 86_400
        ),
    )?;
    let checks = ReviewChecks::Ran(vec![CheckFigure {
        objective: "p95_near_target".into(),
        passed: true,
        figure: "p95 9 ms".into(),
        target: "≤ 20 ms".into(),
        detail: None,
    }]);
    let s = Session::prepare(
        material::load(7, None)?,
        ws.path(),
        Ask::Review,
        checks,
        eval::EVAL_NOW,
    )?;
    let ack = s
        .answer
        .section(Part::Discovery)
        .or(s.answer.section(Part::Acknowledge))
        .map(|x| x.body.clone())
        .unwrap_or_default();
    assert!(ack.contains("from p95 48 ms to p95 9 ms"), "{ack}");
    assert!(ack.contains("still the starter"), "{ack}");
    assert!(
        !ack.contains("is yours"),
        "no credit for an untouched starter: {ack}"
    );
    Ok(())
}
