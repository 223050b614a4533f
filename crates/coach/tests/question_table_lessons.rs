//! The question table over the real lessons 1–9 (read from the repository's
//! `lessons/`): for every lesson, one question of each kind — conceptual, stuck
//! implementing, an error message, a design decision, a performance problem —
//! must find the right concept and kind, ask at least two guiding questions,
//! show a gapped pattern where the learner is implementing, point at the
//! lesson's section, and contain no gap-free code block longer than six lines.
//! Then every concept of every lesson at levels 1–3, in both languages, and a
//! discovery per lesson that names the next phase.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use statecraft_coach::QuestionKind::{self, Bug, Conceptual, Design, Performance, Stuck};
use statecraft_coach::{
    Ask, LessonMaterial, Level, Mode, Part, ReviewChecks, coach_offline, material,
};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lesson(n: u32) -> Result<LessonMaterial, Box<dyn std::error::Error>> {
    Ok(material::load(n, Some(&repo_root()))?)
}

/// An empty learner workspace (the journal goes here, not into the repository).
fn empty_workspace(lang: &str) -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join(".statecraft"))?;
    std::fs::write(
        dir.path().join(".statecraft/workspace.toml"),
        format!("lang = \"{lang}\"\n"),
    )?;
    Ok(dir)
}

/// (lesson, question, kind, concept id)
const TABLE: &[(u32, &str, QuestionKind, &str)] = &[
    (
        1,
        "What is the difference between threads, processes and async tasks?",
        Conceptual,
        "threads_processes_async",
    ),
    (
        1,
        "How do I implement the apply for incr so the version is right?",
        Stuck,
        "single_writer",
    ),
    (
        1,
        "RuntimeError: dictionary changed size during iteration",
        Bug,
        "single_writer",
    ),
    (
        1,
        "Should I use one global queue or one queue per worker?",
        Design,
        "queue_per_worker",
    ),
    (
        1,
        "My program only does 400 events/s, why is it so slow?",
        Performance,
        "measuring_throughput",
    ),
    (
        2,
        "Why does the batch deadline not restart when a second event arrives?",
        Conceptual,
        "deadline_batching",
    ),
    (
        2,
        "How do I write the producer and consumer tasks with a sentinel at EOF?",
        Stuck,
        "producer_consumer",
    ),
    (
        2,
        "I get asyncio.exceptions.CancelledError and a missing ack for e17",
        Bug,
        "timeouts_cancellation",
    ),
    (
        2,
        "Should I pick a bigger max_batch or a shorter max wait? What is the trade-off?",
        Design,
        "batching_tradeoff",
    ),
    (
        2,
        "My throughput dropped after adding batches, the latency is fine; how do I find what is slow?",
        Performance,
        "batching_tradeoff",
    ),
    (
        3,
        "What happens when the arrival rate is higher than the service rate?",
        Conceptual,
        "arrival_vs_service",
    ),
    (
        3,
        "How do I implement a bounded queue with the capacity from the environment?",
        Stuck,
        "bounded_queues",
    ),
    (
        3,
        "exactly_one_reply: event e17 got two replies after I added reject",
        Bug,
        "overflow_strategies",
    ),
    (
        3,
        "Should I block the producer or reject with a nack when the queue is full?",
        Design,
        "overflow_strategies",
    ),
    (
        3,
        "Memory grows to 2 GB with a slow consumer, how do I find where it goes?",
        Performance,
        "arrival_vs_service",
    ),
    (
        4,
        "What does it mean that busy work starves the event loop?",
        Conceptual,
        "event_loop_starvation",
    ),
    (
        4,
        "How do I use run_in_executor with a process pool to offload the apply?",
        Stuck,
        "offloading",
    ),
    (
        4,
        "parallel_order: key k3 ended at 17 with 4 workers",
        Bug,
        "sharding",
    ),
    (
        4,
        "Should I shard state by key or share one dict with a mutex?",
        Design,
        "sharding",
    ),
    (
        4,
        "4 workers not faster than 1, the speed-up is 1.1x, why?",
        Performance,
        "serial_part",
    ),
    (
        5,
        "What does an ack promise exactly, is it durable when I send it?",
        Conceptual,
        "ack_promise",
    ),
    (
        5,
        "How do I write the write-ahead log and replay it at startup?",
        Stuck,
        "write_ahead_log",
    ),
    (
        5,
        "durable_acks: 3 acked events lost after kill -9",
        Bug,
        "ack_promise",
    ),
    (
        5,
        "Should I fsync per event or use group commit?",
        Design,
        "group_commit",
    ),
    (
        5,
        "Throughput dropped to 180 events/s since I fsync every event, slow disk?",
        Performance,
        "group_commit",
    ),
    (
        6,
        "What is the difference between a percentile and the mean?",
        Conceptual,
        "percentiles",
    ),
    (
        6,
        "How do I add per-stage timers and put stages_ms in stats?",
        Stuck,
        "stage_timers",
    ),
    (
        6,
        "TypeError: Object of type set is not JSON serializable when I answer stats",
        Bug,
        "stage_timers",
    ),
    (
        6,
        "Should I log JSON lines to stderr or use print for debugging?",
        Design,
        "structured_logs",
    ),
    (
        6,
        "Why is it slow? How do I find the stage that takes 90% of the time?",
        Performance,
        "profiling",
    ),
    (
        7,
        "What is Little's law and how does it tell me the queue size?",
        Conceptual,
        "littles_law",
    ),
    (
        7,
        "How do I implement the control loop that resizes the capacity?",
        Stuck,
        "control_loop",
    ),
    (
        7,
        "adaptive_capacity: capacity never changed during the load step",
        Bug,
        "control_loop",
    ),
    (
        7,
        "Should I control on the mean wait or on the p95? Which one is better as the signal?",
        Design,
        "wait_statistic",
    ),
    (
        7,
        "Capacity oscillates and the p95 latency is bad, how do I make it stable?",
        Performance,
        "hysteresis",
    ),
    (
        8,
        "Why do we need stored offsets for exactly once effects?",
        Conceptual,
        "stored_offsets",
    ),
    (
        8,
        "How do I compute the partition with FNV-1a mod P?",
        Stuck,
        "partitioning",
    ),
    (
        8,
        "nats: no responders available when I publish",
        Bug,
        "distributed_log",
    ),
    (
        8,
        "Should I use leases with a TTL or a fixed leader for failover?",
        Design,
        "failover",
    ),
    (
        8,
        "Throughput with 4 partitions is lower than with 1, why is it slower?",
        Performance,
        "partitioning",
    ),
    (
        9,
        "What does graceful shutdown mean, and in what order do I drain?",
        Conceptual,
        "graceful_shutdown",
    ),
    (
        9,
        "How do I handle SIGTERM so every queued event still gets its ack?",
        Stuck,
        "graceful_shutdown",
    ),
    (
        9,
        "ValueError: invalid literal for int() with base 10: 'abc' when STATECRAFT_WORKERS=abc",
        Bug,
        "configuration",
    ),
    (
        9,
        "Should I validate bad input and nack it, or let the worker restart?",
        Design,
        "input_limits",
    ),
    (
        9,
        "Under chaos testing with a slow disk, throughput falls to 50 events/s; where does the time go?",
        Performance,
        "chaos_testing",
    ),
];

#[test]
fn every_lesson_has_all_five_kinds_in_the_table() {
    for n in 1..=9 {
        for kind in [Conceptual, Stuck, Bug, Design, Performance] {
            assert!(
                TABLE.iter().any(|(l, _, k, _)| *l == n && *k == kind),
                "lesson {n} lacks a {kind:?} row"
            );
        }
    }
}

#[test]
fn the_table() -> TestResult {
    let mut failures = Vec::new();
    for lang in ["python", "rust"] {
        for (n, question, kind, concept) in TABLE {
            let l = lesson(*n)?;
            let section = l
                .concept(concept)
                .map(|c| c.section.clone())
                .ok_or(format!("lesson {n} has no {concept}"))?;
            let ws = empty_workspace(lang)?;
            let a = coach_offline(
                l,
                ws.path(),
                Ask::Question(question.to_string()),
                ReviewChecks::NotRun,
                T0,
            )?;
            if a.kind != *kind || a.concept.id != *concept {
                failures.push(format!(
                    "lesson {n} {question:?}: got {:?}/{} want {kind:?}/{concept}",
                    a.kind, a.concept.id
                ));
                continue;
            }
            assert_guides(&a, concept, &section);
            if kind.is_implementing() {
                assert!(
                    has_gapped_pattern(&a),
                    "lesson {n} {question:?}: gapped pattern\n{}",
                    a.to_markdown()
                );
            }
            if *kind == Performance {
                let hint = a
                    .section(Part::Hint)
                    .map(|s| s.body.clone())
                    .unwrap_or_default();
                assert!(hint.contains("Time each stage"), "profiling taught: {hint}");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "misrouted questions:\n{}",
        failures.join("\n")
    );
    Ok(())
}

#[test]
fn every_concept_at_every_level_keeps_rule_6() -> TestResult {
    for n in 1..=9 {
        let l = lesson(n)?;
        for concept in &l.concepts {
            for lang in ["python", "rust"] {
                let ws = empty_workspace(lang)?;
                // The concept's own title as the question: it always points there.
                let q = format!("How do I implement {}?", concept.title.to_lowercase());
                let mut levels = Vec::new();
                for (i, dt) in [0, 45 * 60, 90 * 60].into_iter().enumerate() {
                    let a = coach_offline(
                        l.clone(),
                        ws.path(),
                        Ask::Question(q.clone()),
                        ReviewChecks::NotRun,
                        T0 + dt,
                    )?;
                    let md = a.to_markdown();
                    assert_no_solution_blocks(&md);
                    assert!(
                        has_gapped_pattern(&a),
                        "lesson {n} {} level {}:\n{md}",
                        concept.id,
                        i + 1
                    );
                    assert!(
                        a.section(Part::Questions)
                            .is_some_and(|s| s.items.len() >= 2)
                    );
                    assert!(md.contains(&format!("\"{}\"", a.concept.section)));
                    levels.push(a.level);
                }
                assert_eq!(
                    levels,
                    [Level::Gentle, Level::Direct, Level::MostDirect],
                    "lesson {n} {} {q}",
                    concept.id
                );
            }
        }
    }
    Ok(())
}

#[test]
fn a_discovery_per_lesson_names_the_next_phase() -> TestResult {
    for n in 1..=9 {
        let l = lesson(n)?;
        let objective = l
            .objectives
            .iter()
            .find(|o| o.id != "protocol")
            .ok_or("an objective")?
            .clone();
        let ws = empty_workspace("python")?;
        let journal = format!(
            "{{\"kind\":\"check\",\"lesson\":{n},\"passed\":false,\"time\":{T0},\"failed\":[\"{}\"]}}\n\
             {{\"kind\":\"check\",\"lesson\":{n},\"passed\":true,\"time\":{},\"failed\":[]}}\n",
            objective.id,
            T0 + 600
        );
        std::fs::write(ws.path().join(".statecraft/journal.jsonl"), journal)?;
        let next = l.next.clone();
        let a = coach_offline(
            l,
            ws.path(),
            Ask::Question("it passes now".into()),
            ReviewChecks::NotRun,
            T0 + 700,
        )?;
        let md = a.to_markdown();
        assert_eq!(a.mode, Mode::Discovery, "lesson {n}");
        assert_eq!(a.concept.id, objective.concept, "lesson {n}");
        assert!(
            md.contains(&format!("`{}`", objective.id)),
            "lesson {n}:\n{md}"
        );
        if !next.is_empty() {
            assert!(md.contains(&next), "lesson {n} names the next phase:\n{md}");
        }
        assert_no_solution_blocks(&md);
    }
    Ok(())
}
