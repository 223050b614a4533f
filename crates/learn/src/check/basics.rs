//! Lesson 1 checks (and `protocol`, which every lesson runs): the program speaks
//! the protocol, its final state equals the reference [`Model`], a key's `set`s
//! end at the last one sent, and it keeps up with 1,000 events/s.
//!
//! Invariant: expected state is computed only from the [`Model`] over the events
//! the program acked, in the order they were sent (acks may come in any order;
//! a key's events were sent in order, so the model's order is the key's order).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::harness::{Harness, HarnessError, ProgramSpec, describe_status};
use super::model::{Ev, Model, ids, mixed_events};
use super::{Ctx, Measured, Verdict, thousands};

/// Starts the program and waits until it answers `sync` (it is up).
pub(crate) fn start(spec: &ProgramSpec) -> Result<Harness, HarnessError> {
    let mut h = Harness::spawn(spec)?;
    h.sync()?;
    Ok(h)
}

/// Whether two JSON values are equal, numbers compared by value (`5` = `5.0`).
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

/// Compares the program's answers with the model: (keys equal, first mismatches).
pub(crate) fn compare_state(
    model: &Model,
    keys: &[String],
    got: &HashMap<String, (Value, u64)>,
    check_versions: bool,
) -> (usize, Vec<String>) {
    let mut equal = 0;
    let mut mismatches = Vec::new();
    for key in keys {
        let (want_value, want_version) = model.get(key);
        let Some((value, version)) = got.get(key) else {
            mismatches.push(format!("{key}: no answer to get"));
            continue;
        };
        let value_ok = values_equal(value, &want_value);
        let version_ok = !check_versions || *version == want_version;
        if value_ok && version_ok {
            equal += 1;
        } else if mismatches.len() < 3 {
            mismatches.push(format!(
                "{key}: expected value {want_value} (version {want_version}), got {value} (version {version})"
            ));
        }
    }
    (equal, mismatches)
}

/// The model over the events the program acked (nacked ones never applied).
pub(crate) fn model_of_acked(h: &Harness, evs: &[Ev]) -> (Model, usize) {
    let mut model = Model::new();
    let mut nacks = 0;
    for ev in evs {
        match h.event_reply(&ev.id) {
            Some(r) if r.acked => model.apply(ev),
            _ => nacks += 1,
        }
    }
    (model, nacks)
}

/// Ids that got more than one reply (first few).
pub(crate) fn repeated_replies(h: &Harness) -> Vec<String> {
    let mut ids: Vec<String> = h
        .event_replies()
        .iter()
        .filter(|(_, r)| r.count > 1)
        .map(|(id, r)| format!("{id} ({}×)", r.count))
        .collect();
    ids.sort();
    ids.truncate(5);
    ids
}

/// Closes stdin and waits up to 5 s for exit; `Err(message)` unless it exits 0.
pub(crate) fn finish(h: &mut Harness) -> Result<Result<(), String>, HarnessError> {
    h.close_stdin();
    Ok(match h.wait_exit(Duration::from_secs(5))? {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!(
            "at EOF the program {}; last stderr lines:{}",
            describe_status(status),
            h.stderr_tail()
        )),
        None => Err(format!(
            "the program was still running 5 s after stdin closed (at EOF it should finish what is queued, ack it and exit 0); last stderr lines:{}",
            h.stderr_tail()
        )),
    })
}

/// `protocol`: starts, acks every event once, answers `get`/`sync`, exits 0 at EOF.
pub(crate) fn protocol(ctx: &mut Ctx<'_>) -> Measured {
    let spec = ctx.spec()?;
    let mut h = start(&spec)?;
    let (absent, absent_version) = h.get("statecraft-absent-key")?;
    if absent != Value::Null || absent_version != 0 {
        return Ok(Verdict::fail(
            "wrong answer for an absent key",
            format!(
                "get of a key never written should answer value null and version 0, got value {absent} and version {absent_version}"
            ),
        ));
    }
    let mut rng = ctx.rng(1);
    let evs = mixed_events(&mut rng, "e", 50, 5);
    h.send_lines(evs.iter().map(Ev::line));
    let ids = ids(&evs);
    h.await_replies(&ids)?;
    let nacked: Vec<&String> = ids
        .iter()
        .filter(|id| h.event_reply(id).is_some_and(|r| !r.acked))
        .collect();
    let mut model = Model::new();
    model.apply_all(&evs);
    let keys = model.keys();
    let got = h.get_many(&keys)?;
    let (equal, mismatches) = compare_state(&model, &keys, &got, true);
    h.sync()?;
    let exit = finish(&mut h)?;
    let repeated = repeated_replies(&h);
    let acked = ids.len() - nacked.len();
    let figure = format!(
        "{acked}/{} acked, {equal}/{} keys right, {}",
        ids.len(),
        keys.len(),
        if exit.is_ok() { "exit 0" } else { "bad exit" }
    );
    let mut problems = Vec::new();
    if !nacked.is_empty() {
        problems.push(format!(
            "{} events were nacked without overload (first: {})",
            nacked.len(),
            nacked[0]
        ));
    }
    if !repeated.is_empty() {
        problems.push(format!(
            "events got more than one reply: {}",
            repeated.join(", ")
        ));
    }
    if !mismatches.is_empty() {
        problems.push(format!("get answers differ: {}", mismatches.join("; ")));
    }
    if let Err(e) = exit {
        problems.push(e);
    }
    Ok(Verdict::judge(
        problems.is_empty(),
        figure,
        problems.join("\n"),
    ))
}

/// `final_state`: 10,000 `set`/`incr` on 200 keys; every key equals the model.
pub(crate) fn final_state(ctx: &mut Ctx<'_>) -> Measured {
    let spec = ctx.spec()?;
    let mut h = start(&spec)?;
    let mut rng = ctx.rng(2);
    let evs = mixed_events(&mut rng, "e", 10_000, 200);
    h.send_lines(evs.iter().map(Ev::line));
    h.await_replies(&ids(&evs))?;
    let (model, nacks) = model_of_acked(&h, &evs);
    let keys: Vec<String> = (0..200).map(|k| format!("k{k}")).collect();
    let got = h.get_many(&keys)?;
    let (equal, mismatches) = compare_state(&model, &keys, &got, true);
    let mut figure = format!("{equal}/{} keys equal", keys.len());
    if nacks > 0 {
        figure.push_str(&format!(" ({nacks} nacked)"));
    }
    Ok(Verdict::judge(
        equal == keys.len(),
        figure,
        format!(
            "state differs from the reference model: {}",
            mismatches.join("; ")
        ),
    ))
}

/// Sends 500 `set`s per key on 20 keys, interleaved, in 10 rounds of 50; after
/// each round (a `get` barrier) every key must hold its last acked `set`.
/// Checking after every round, not only at the end, catches a reordering that
/// happens to leave the final value right. Shared by `per_key_order` (lesson 1)
/// and `parallel_order` (lesson 4).
pub(crate) fn order_run(spec: &ProgramSpec) -> Measured {
    const KEYS: usize = 20;
    const ROUNDS: usize = 10;
    const SETS_PER_ROUND: usize = 50;
    let mut h = start(spec)?;
    let keys: Vec<String> = (0..KEYS).map(|k| format!("order{k}")).collect();
    let mut all = Vec::with_capacity(KEYS * ROUNDS * SETS_PER_ROUND);
    let mut total_nacks = 0;
    for round in 0..ROUNDS {
        let first = all.len();
        for j in 0..SETS_PER_ROUND {
            for key in &keys {
                let n = all.len() + 1;
                all.push(Ev::set(
                    format!("o{n}"),
                    key.clone(),
                    json!(round * SETS_PER_ROUND + j),
                ));
            }
        }
        let evs = &all[first..];
        h.send_lines(evs.iter().map(Ev::line));
        h.await_replies(&ids(evs))?;
        let (model, nacks) = model_of_acked(&h, &all);
        total_nacks = nacks;
        let got = h.get_many(&keys)?;
        let (equal, mismatches) = compare_state(&model, &keys, &got, false);
        if equal != KEYS {
            return Ok(Verdict::fail(
                format!(
                    "{equal}/{KEYS} keys at their last set after round {} of {ROUNDS}",
                    round + 1
                ),
                format!(
                    "a key's sets were applied out of order (the last value sent in this round is {}): {}",
                    (round + 1) * SETS_PER_ROUND - 1,
                    mismatches.join("; ")
                ),
            ));
        }
    }
    let mut figure = format!("{KEYS}/{KEYS} keys at their last set after each of {ROUNDS} rounds");
    if total_nacks > 0 {
        figure.push_str(&format!(" ({total_nacks} nacked)"));
    }
    Ok(Verdict::pass(figure))
}

/// Keys of the adjacency run; each gets [`RUN`] adjacent `set`s per round.
const ADJ_KEYS: usize = 48;
/// Adjacent same-key events per key and round.
const RUN: usize = 3;
/// Rounds of the adjacency run.
const ADJ_ROUNDS: usize = 3;
/// The per-event apply delay of the adjacency run.
pub(crate) const ADJ_DELAY_US: u64 = 10_000;
/// The workers the order checks configure.
pub(crate) const ORDER_WORKERS: u64 = 4;
/// Concurrency a program with [`ORDER_WORKERS`] workers must show: one worker
/// cannot exceed 1.0 (each event costs the delay), four reach about 3.
const MIN_PARALLELISM: f64 = 1.5;

/// The adjacency run: in each round, every key gets [`RUN`] adjacent `set`s
/// (`k0,k0,k0,k1,k1,k1,…`), all sent at once, with `APPLY_DELAY_US` per event
/// and several workers. Three figures, none a wall-time threshold:
///
/// - order: after each round (a `get` barrier) every key holds its last set;
/// - serial per key: a key's j-th event of a round cannot be acked sooner than
///   j × delay after the round was sent when one worker owns the key (0.8×
///   margin); an earlier ack means two events of one key were applied at once
///   (one global queue feeding several workers), which is a race whatever the
///   final value says;
/// - concurrency: events × delay / the round's duration (best round). One
///   worker cannot exceed 1.0, however fast the machine; keys routed over
///   four workers reach about 3.
pub(crate) fn adjacency_run(spec: &ProgramSpec) -> Measured {
    let delay_ms = ADJ_DELAY_US as f64 / 1000.0;
    let mut h = start(spec)?;
    let keys: Vec<String> = (0..ADJ_KEYS).map(|k| format!("adj{k}")).collect();
    let mut all: Vec<Ev> = Vec::with_capacity(ADJ_KEYS * RUN * ADJ_ROUNDS);
    let mut early = 0usize;
    let mut early_example = String::new();
    let mut best_parallelism: f64 = 0.0;
    for round in 0..ADJ_ROUNDS {
        let first = all.len();
        for key in &keys {
            for j in 0..RUN {
                let n = all.len() + 1;
                all.push(Ev::set(
                    format!("a{n}"),
                    key.clone(),
                    json!(round * RUN + j),
                ));
            }
        }
        let evs = &all[first..];
        let t0 = Instant::now();
        h.send_lines(evs.iter().map(Ev::line));
        let ids = ids(evs);
        h.await_replies(&ids)?;
        let mut last = t0;
        for (i, ev) in evs.iter().enumerate() {
            let Some(r) = h.event_reply(&ev.id) else {
                continue;
            };
            last = last.max(r.at);
            let j = (i % RUN) + 1;
            let floor = 0.8 * j as f64 * delay_ms;
            let got = super::ms_between(t0, r.at);
            if r.acked && got < floor {
                early += 1;
                if early_example.is_empty() {
                    early_example = format!(
                        "{} (event {j} of {RUN} adjacent sets of {}) acked {got:.0} ms after the round was sent; {j} applies of {delay_ms:.0} ms take at least {:.0} ms",
                        ev.id,
                        ev.key,
                        j as f64 * delay_ms
                    );
                }
            }
        }
        let busy_ms = (evs.len() as f64) * delay_ms;
        let elapsed = super::ms_between(t0, last).max(1e-3);
        best_parallelism = best_parallelism.max(busy_ms / elapsed);
        let (model, _) = model_of_acked(&h, &all);
        let got = h.get_many(&keys)?;
        let (equal, mismatches) = compare_state(&model, &keys, &got, false);
        if equal != ADJ_KEYS {
            return Ok(Verdict::fail(
                format!(
                    "{equal}/{ADJ_KEYS} keys at their last set after round {} of {ADJ_ROUNDS} ({RUN} adjacent sets per key)",
                    round + 1
                ),
                format!(
                    "per-key order: a key's sets were applied out of order (the last value sent in this round is {}): {}; route every key to one worker's queue",
                    (round + 1) * RUN - 1,
                    mismatches.join("; ")
                ),
            ));
        }
    }
    let figure = format!(
        "{ADJ_KEYS}/{ADJ_KEYS} keys in order, {early} same-key events acked before their predecessors could be applied, concurrency {best_parallelism:.1}× (WORKERS={ORDER_WORKERS})"
    );
    let mut problems = Vec::new();
    if early > 0 {
        problems.push(format!(
            "per-key order: {early} events were applied at the same time as an earlier event of their key, e.g. {early_example}: several workers take from one queue, so a key's events race (the final value is right only by luck); route every key to one worker's queue"
        ));
    }
    if best_parallelism < MIN_PARALLELISM {
        problems.push(format!(
            "one queue per worker: with WORKERS={ORDER_WORKERS} and APPLY_DELAY_US={ADJ_DELAY_US}, events of different keys ran {best_parallelism:.1}× in parallel (at least {MIN_PARALLELISM}× expected): every key goes to one worker; spread keys over the workers (hash(key) % workers)"
        ));
    }
    Ok(Verdict::judge(
        problems.is_empty(),
        figure,
        problems.join("\n"),
    ))
}

/// `per_key_order`: the adjacency run, then the interleaved order run, with
/// `WORKERS=4` (a program with workers must keep a key's events in order
/// across them, and really use them).
pub(crate) fn per_key_order(ctx: &mut Ctx<'_>) -> Measured {
    order_checks(ctx)
}

/// Shared by `per_key_order` (lesson 1) and `parallel_order` (lesson 4).
pub(crate) fn order_checks(ctx: &mut Ctx<'_>) -> Measured {
    let mut spec = ctx.spec()?;
    spec.set("STATECRAFT_WORKERS", ORDER_WORKERS)
        .set("STATECRAFT_APPLY_DELAY_US", ADJ_DELAY_US);
    let adjacency = adjacency_run(&spec)?;
    if !adjacency.passed {
        return Ok(adjacency);
    }
    let mut spec = ctx.spec()?;
    spec.set("STATECRAFT_WORKERS", ORDER_WORKERS)
        .set("STATECRAFT_APPLY_DELAY_US", 50);
    let interleaved = order_run(&spec)?;
    Ok(Verdict {
        passed: interleaved.passed,
        figure: format!("{}; {}", adjacency.figure, interleaved.figure),
        detail: interleaved.detail,
    })
}

/// `throughput`: 20,000 `incr`, events/s from the first send to the last ack.
pub(crate) fn throughput(ctx: &mut Ctx<'_>) -> Measured {
    const N: usize = 20_000;
    const TARGET: f64 = 1000.0;
    let spec = ctx.spec()?;
    let mut h = start(&spec)?;
    let evs: Vec<Ev> = (1..=N)
        .map(|i| Ev::incr(format!("t{i}"), format!("t{}", i % 100), 1))
        .collect();
    let ids = ids(&evs);
    let t0 = Instant::now();
    h.send_lines(evs.iter().map(Ev::line));
    // At the target rate the run takes 20 s; past 25 s it cannot pass.
    let all = h.await_replies_until(&ids, Some(t0 + Duration::from_secs(25)))?;
    let replies = h.event_replies();
    let acked = ids
        .iter()
        .filter(|id| replies.get(*id).is_some_and(|r| r.acked))
        .count();
    let last = ids
        .iter()
        .filter_map(|id| replies.get(id).map(|r| r.at))
        .max()
        .unwrap_or_else(Instant::now);
    let elapsed = if all {
        last.saturating_duration_since(t0)
    } else {
        t0.elapsed()
    };
    let rate = acked as f64 / elapsed.as_secs_f64().max(1e-6);
    let figure = format!(
        "{} events/s ({} acked in {:.2} s)",
        thousands(rate as u64),
        thousands(acked as u64),
        elapsed.as_secs_f64()
    );
    let detail = if acked < N {
        format!(
            "only {acked} of {N} events acked ({} nacked or unanswered)",
            N - acked
        )
    } else {
        "below 1,000 events/s: time each stage (parse, queue, apply, write the ack) to find where the time goes".to_string()
    };
    Ok(Verdict::judge(rate >= TARGET && acked == N, figure, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value() {
        assert!(values_equal(&json!(5), &json!(5.0)));
        assert!(!values_equal(&json!(5), &json!("5")));
        assert!(values_equal(&Value::Null, &Value::Null));
    }
}
