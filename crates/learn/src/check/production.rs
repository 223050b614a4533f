//! Lesson 9 checks: the lifecycle and the edges. SIGTERM drains and exits 0;
//! bad input gets a per-line refusal while good events keep flowing; a bad
//! setting stops the program at start with a message naming it.
//!
//! `graceful_sigterm` sends SIGTERM to the started process only (as a service
//! manager does) after the program has had 300 ms to read every event sent
//! (a queue of 1,000 holds them all), so "sent before SIGTERM" means "read by
//! the program"; stdin stays open, so exiting is the program's own decision.
//!
//! Invariant: every case here is exact; nothing is timed except the bounded
//! waits for an exit.

use std::time::Duration;

use serde_json::json;

use super::basics::{finish, start};
use super::harness::{Harness, describe_status};
use super::model::{Ev, ids};
use super::{Ctx, Measured, Verdict, pause};

/// `graceful_sigterm`: SIGTERM mid-stream; every event replied, exit 0.
pub(crate) fn graceful_sigterm(ctx: &mut Ctx<'_>) -> Measured {
    const N: usize = 600;
    let mut spec = ctx.spec()?;
    spec.set("STATECRAFT_APPLY_DELAY_US", 2000)
        .set("STATECRAFT_QUEUE_CAPACITY", 1000)
        .set("STATECRAFT_OVERFLOW", "block");
    let mut h = start(&spec)?;
    let evs: Vec<Ev> = (1..=N)
        .map(|i| Ev::incr(format!("g{i}"), format!("term{}", i % 16), 1))
        .collect();
    let ids = ids(&evs);
    h.send_lines(evs.iter().map(Ev::line));
    h.wait_written()?;
    h.pump_for(Duration::from_millis(300))?;
    let pending_at_term = ids.iter().filter(|id| h.event_reply(id).is_none()).count();
    h.signal(libc::SIGTERM);
    let status = h.wait_exit(Duration::from_secs(10))?;
    let replied = ids.iter().filter(|id| h.event_reply(id).is_some()).count();
    let figure = format!(
        "{replied}/{N} replied ({pending_at_term} pending at SIGTERM), {}",
        status.map_or_else(|| "still running after 10 s".to_string(), describe_status)
    );
    let mut problems = Vec::new();
    match status {
        None => problems.push(
            "the program was still running 10 s after SIGTERM: on SIGTERM stop reading, finish what is queued, ack it and exit 0"
                .to_string(),
        ),
        Some(s) if !s.success() => problems.push(format!(
            "on SIGTERM the program {} (it should drain and exit 0: install a handler); last stderr lines:{}",
            describe_status(s),
            h.stderr_tail()
        )),
        Some(_) => {}
    }
    if replied < N {
        problems.push(format!(
            "{} events read before SIGTERM got no reply (first: {})",
            N - replied,
            ids.iter()
                .find(|id| h.event_reply(id).is_none())
                .map_or("?", String::as_str)
        ));
    }
    Ok(Verdict::judge(
        problems.is_empty(),
        figure,
        problems.join("\n"),
    ))
}

/// One bad line and what it must get.
struct BadCase {
    line: String,
    /// `Some(id)` → `{"nack":id,"reason":"invalid"}`; `None` → `{"error":…}`.
    id: Option<&'static str>,
    what: &'static str,
    /// A well-formed event the program cannot apply (unknown op, operand of the
    /// wrong type): any refusal naming its reason passes, `invalid` or a more
    /// precise one (`unknown_op`, `invalid_operand`, …).
    semantic: bool,
}

/// `bad_input`: each bad line refused, the good events around them applied.
pub(crate) fn bad_input(ctx: &mut Ctx<'_>) -> Measured {
    let spec = ctx.spec()?;
    let mut h = start(&spec)?;
    let huge_key = "k".repeat(2000);
    let cases = vec![
        BadCase {
            line: r#"{"key":"#.into(),
            id: None,
            what: "malformed JSON",
            semantic: false,
        },
        BadCase {
            line: "not json at all".into(),
            id: None,
            what: "not JSON",
            semantic: false,
        },
        BadCase {
            line: "[1,2,3]".into(),
            id: None,
            what: "not an object",
            semantic: false,
        },
        BadCase {
            line: json!({"id":"x2","op":"set","value":1}).to_string(),
            id: Some("x2"),
            what: "missing key",
            semantic: false,
        },
        BadCase {
            line: json!({"id":"x3","key":"bad","value":1}).to_string(),
            id: Some("x3"),
            what: "missing op",
            semantic: false,
        },
        BadCase {
            line: json!({"id":"x4","key":"bad","op":"frobnicate","value":1}).to_string(),
            id: Some("x4"),
            what: "unknown op",
            semantic: true,
        },
        BadCase {
            line: json!({"id":"x5","key":5,"op":"set","value":1}).to_string(),
            id: Some("x5"),
            what: "key not a string",
            semantic: false,
        },
        BadCase {
            line: json!({"id":"x6","key":huge_key,"op":"set","value":1}).to_string(),
            id: Some("x6"),
            what: "key of 2,000 bytes (limit 1,024)",
            semantic: false,
        },
        BadCase {
            line: json!({"id":"x7","key":"bad","op":"incr","value":"ten"}).to_string(),
            id: Some("x7"),
            what: "incr by a string",
            semantic: true,
        },
    ];
    let good = |n: u32| Ev::incr(format!("x-good{n}"), "good", 1);
    let mut lines = vec![good(0).line()];
    for (i, case) in cases.iter().enumerate() {
        lines.push(case.line.clone());
        lines.push(good(i as u32 + 1).line());
    }
    h.send_lines(&lines);
    let good_ids: Vec<String> = (0..=cases.len() as u32).map(|n| good(n).id).collect();
    let nack_ids: Vec<String> = cases
        .iter()
        .filter_map(|c| c.id.map(String::from))
        .collect();
    let mut all_ids = good_ids.clone();
    all_ids.extend(nack_ids.iter().cloned());
    h.await_replies(&all_ids)?;
    h.sync()?;
    let (value, _) = h.get("good")?;
    let exit = finish(&mut h)?;
    let mut problems = Vec::new();
    for case in &cases {
        if let Some(id) = case.id {
            match h.event_reply(id) {
                Some(r) if !r.acked && r.reason.as_deref() == Some("invalid") => {}
                Some(r)
                    if case.semantic
                        && !r.acked
                        && !matches!(
                            r.reason.as_deref(),
                            None | Some("" | "overloaded" | "not_owner")
                        ) => {}
                Some(r) => problems.push(format!(
                    "{} ({id}): expected {{\"nack\":\"{id}\",\"reason\":\"invalid\"}}, got {}",
                    case.what,
                    if r.acked {
                        "an ack".to_string()
                    } else {
                        format!("reason {:?}", r.reason)
                    }
                )),
                None => problems.push(format!("{} ({id}): no reply", case.what)),
            }
        }
    }
    let want_errors = cases.iter().filter(|c| c.id.is_none()).count();
    let errors = h.errors().len();
    if errors != want_errors {
        let whats: Vec<&str> = cases
            .iter()
            .filter(|c| c.id.is_none())
            .map(|c| c.what)
            .collect();
        problems.push(format!(
            "lines without an id ({}) should each get one {{\"error\":…}} line: expected {want_errors}, got {errors}",
            whats.join(", ")
        ));
    }
    let good_acked = good_ids
        .iter()
        .filter(|id| h.event_reply(id).is_some_and(|r| r.acked))
        .count();
    if good_acked != good_ids.len() || value.as_f64() != Some(good_ids.len() as f64) {
        problems.push(format!(
            "the good events between the bad lines: {good_acked}/{} acked, key `good` = {value} (expected {})",
            good_ids.len(),
            good_ids.len()
        ));
    }
    if let Err(e) = exit {
        problems.push(e);
    }
    let refused = cases.len() - problems.len().min(cases.len());
    Ok(Verdict::judge(
        problems.is_empty(),
        format!(
            "{}/{} bad lines refused correctly, {good_acked}/{} good events acked",
            if problems.is_empty() {
                cases.len()
            } else {
                refused
            },
            cases.len(),
            good_ids.len()
        ),
        problems.join("\n"),
    ))
}

/// `config_errors`: `STATECRAFT_WORKERS=abc` → non-zero exit, stderr names it.
pub(crate) fn config_errors(ctx: &mut Ctx<'_>) -> Measured {
    let mut spec = ctx.spec()?;
    spec.set("STATECRAFT_WORKERS", "abc");
    let mut h = Harness::spawn(&spec)?;
    let status = h.wait_exit(Duration::from_secs(5))?;
    // Let the stderr reader catch the last line.
    pause(Duration::from_millis(50));
    let stderr = h.stderr_text();
    let Some(status) = status else {
        return Ok(Verdict::fail(
            "still running after 5 s",
            "with STATECRAFT_WORKERS=abc the program must refuse to start: validate every setting at start, print which one is wrong on stderr, exit non-zero",
        ));
    };
    let named = stderr.contains("STATECRAFT_WORKERS");
    let figure = format!(
        "{}, stderr {} STATECRAFT_WORKERS",
        describe_status(status),
        if named { "names" } else { "does not name" }
    );
    Ok(Verdict::judge(
        !status.success() && named,
        figure,
        format!(
            "a bad setting must stop the program with a non-zero status and a message naming the variable; stderr was:{}",
            h.stderr_tail()
        ),
    ))
}
