//! Lesson 5 checks: what an ack promises. With `STATECRAFT_DATA_DIR` set, an
//! acked event's effect survives `kill -9`, exactly once; state survives a clean
//! restart.
//!
//! The crash scenario: the checker sends a stream of `incr` events, kills the
//! program with `SIGKILL` after a pseudo-random number of acks (three times),
//! restarts it on the same data directory and re-sends every event it has not
//! seen acked, with the same ids, plus a few already-acked ones. A program that
//! applied an event durably but died before acking it sees that id again, so it
//! must remember applied ids across restarts and answer a repeat without
//! applying it again. At the end every event has been acked, so the state must
//! equal every event applied exactly once: a shortfall is a lost acked event, an
//! excess a doubled one.
//!
//! Invariant: the data directory is the checker's (fresh per check, removed
//! afterwards); the kill instants come from the run's seed, so a failure
//! reproduces.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::basics::{compare_state, finish, start};
use super::harness::{Harness, HarnessError, ProgramSpec};
use super::model::{Ev, Model, Rng, ids, mixed_events};
use super::{CheckFailure, Ctx, Measured, Verdict, thousands};

/// A spec with a data directory, whatever lesson runs the check.
pub(crate) fn durable_spec(ctx: &mut Ctx<'_>) -> Result<ProgramSpec, CheckFailure> {
    let mut spec = ctx.spec()?;
    if !spec.env.iter().any(|(k, _)| k == "STATECRAFT_DATA_DIR") {
        let dir = ctx.data_dir()?;
        spec.set("STATECRAFT_DATA_DIR", dir.display());
    }
    Ok(spec)
}

/// Waits until `want` more events of `ids` are acked than at the start, or `wait` passes.
pub(crate) fn wait_for_acks(
    h: &mut Harness,
    ids: &[String],
    want: usize,
    wait: Duration,
) -> Result<(), HarnessError> {
    let until = Instant::now() + wait;
    loop {
        let acked = ids
            .iter()
            .filter(|id| h.event_reply(id).is_some_and(|r| r.acked))
            .count();
        if acked >= want || Instant::now() >= until {
            return Ok(());
        }
        h.pump_for(Duration::from_millis(2))?;
    }
}

/// Lost and doubled effects: `incr` by 1 per event, so the counts are exact.
pub(crate) fn lost_and_doubled(
    expected: &HashMap<String, i64>,
    got: &HashMap<String, (Value, u64)>,
) -> (i64, i64, Vec<String>) {
    let mut lost = 0;
    let mut doubled = 0;
    let mut examples = Vec::new();
    let mut keys: Vec<&String> = expected.keys().collect();
    keys.sort();
    for key in keys {
        let want = expected[key];
        let have = got
            .get(key)
            .and_then(|(v, _)| v.as_f64())
            .map_or(0, |v| v as i64);
        if have < want {
            lost += want - have;
        } else {
            doubled += have - want;
        }
        if have != want && examples.len() < 3 {
            examples.push(format!("{key}: expected {want}, got {have}"));
        }
    }
    (lost, doubled, examples)
}

/// `durable_acks`: 3 kills at pseudo-random instants; 0 lost, 0 doubled.
pub(crate) fn durable_acks(ctx: &mut Ctx<'_>) -> Measured {
    const N: usize = 3000;
    const KEYS: usize = 20;
    const KILLS: usize = 3;
    const RESENT_ACKED: usize = 20;
    let spec = durable_spec(ctx)?;
    let mut rng: Rng = ctx.rng(5);
    let evs: Vec<Ev> = (1..=N)
        .map(|i| Ev::incr(format!("w{i}"), format!("dur{}", i % KEYS), 1))
        .collect();
    let mut acked: HashSet<String> = HashSet::new();
    let mut acked_before_kills = 0;
    for _kill in 0..KILLS {
        let mut h = start(&spec)?;
        let pending: Vec<&Ev> = evs.iter().filter(|e| !acked.contains(&e.id)).collect();
        let pending_ids: Vec<String> = pending.iter().map(|e| e.id.clone()).collect();
        h.send_lines(pending.iter().map(|e| e.line()));
        // Kill after 10–60 % of this round's events are acked (or 3 s).
        let want = pending.len() / 10 + rng.below((pending.len() / 2).max(1) as u64) as usize;
        wait_for_acks(&mut h, &pending_ids, want, Duration::from_secs(3))?;
        h.kill9()?;
        for id in &pending_ids {
            if h.event_reply(id).is_some_and(|r| r.acked) {
                acked.insert(id.clone());
            }
        }
        acked_before_kills = acked.len();
    }
    // Final round: everything not acked, plus a few acked ids again.
    let mut h = start(&spec)?;
    let mut resend: Vec<&Ev> = evs.iter().filter(|e| !acked.contains(&e.id)).collect();
    let already: Vec<&Ev> = evs.iter().filter(|e| acked.contains(&e.id)).collect();
    for _ in 0..RESENT_ACKED.min(already.len()) {
        resend.push(already[rng.below(already.len() as u64) as usize]);
    }
    // A resent id goes out once per round, whatever the sampling picked.
    let mut seen = HashSet::new();
    resend.retain(|e| seen.insert(e.id.clone()));
    h.send_lines(resend.iter().map(|e| e.line()));
    let resend_ids: Vec<String> = resend.iter().map(|e| e.id.clone()).collect();
    h.await_replies(&resend_ids)?;
    let nacked: Vec<&String> = resend_ids
        .iter()
        .filter(|id| h.event_reply(id).is_some_and(|r| !r.acked))
        .collect();
    let mut expected: HashMap<String, i64> = HashMap::new();
    for e in &evs {
        *expected.entry(e.key.clone()).or_default() += 1;
    }
    let keys: Vec<String> = (0..KEYS).map(|k| format!("dur{k}")).collect();
    let got = h.get_many(&keys)?;
    let _ = finish(&mut h)?;
    let (lost, doubled, examples) = lost_and_doubled(&expected, &got);
    let figure = format!(
        "{lost} lost, {doubled} doubled ({KILLS} kills, {} acks before them)",
        thousands(acked_before_kills as u64)
    );
    if !nacked.is_empty() {
        return Ok(Verdict::fail(
            figure,
            format!(
                "re-sent events were nacked ({}, first {}): a repeat of an applied id is acked (\"duplicate\":true) without applying it again",
                nacked.len(),
                nacked[0]
            ),
        ));
    }
    let mut detail = examples.join("; ");
    if lost > 0 {
        detail.push_str(
            "\nlost: an event was acked before its effect was durable (ack only after the write is fsynced)",
        );
    }
    if doubled > 0 {
        detail.push_str(
            "\ndoubled: a re-sent id was applied again (remember applied ids in the same durable write as their effect)",
        );
    }
    Ok(Verdict::judge(lost == 0 && doubled == 0, figure, detail))
}

/// `recovery`: a clean exit and a restart on the same data directory keep state.
pub(crate) fn recovery(ctx: &mut Ctx<'_>) -> Measured {
    let spec = durable_spec(ctx)?;
    let mut h = start(&spec)?;
    let mut rng = ctx.rng(6);
    let evs = mixed_events(&mut rng, "v", 300, 30);
    h.send_lines(evs.iter().map(Ev::line));
    h.await_replies(&ids(&evs))?;
    let mut model = Model::new();
    model.apply_all(&evs);
    if let Err(e) = finish(&mut h)? {
        return Ok(Verdict::fail("bad exit before restart", e));
    }
    drop(h);
    let mut h = start(&spec)?;
    let keys = model.keys();
    let got = h.get_many(&keys)?;
    let _ = finish(&mut h)?;
    let (equal, mismatches) = compare_state(&model, &keys, &got, true);
    Ok(Verdict::judge(
        equal == keys.len(),
        format!("{equal}/{} keys intact after restart", keys.len()),
        format!(
            "state after restart differs (values and versions must survive in STATECRAFT_DATA_DIR): {}",
            mismatches.join("; ")
        ),
    ))
}
