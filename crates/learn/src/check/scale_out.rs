//! Lesson 8 checks: partitions, offsets and ownership.
//!
//! Partition of a key = FNV-1a 64 of its UTF-8 bytes mod `STATECRAFT_PARTITIONS`
//! ([`partition_of`]). Events carry `seq`, strictly increasing per partition; the
//! program stores, with the state it produced, the highest `seq` applied per
//! partition, and acks a `seq` at or below it as `{"ack":ID,"duplicate":true}`
//! without applying it.
//!
//! `offsets_exactly_once`: the checker sends a stream, kills the program with
//! `SIGKILL` after a pseudo-random number of acks, restarts it on the same data
//! directory and re-sends each partition from an earlier `seq` (never past the
//! first event it has not seen acked, so nothing unacked is skipped), with fresh
//! ids so only the offsets can tell a repeat. Every event must then be applied
//! exactly once.
//!
//! Invariant: the checker's `seq` numbering and partitioning are the only source
//! of truth for what a repeat is.

use std::collections::HashMap;
use std::time::Duration;

use super::basics::{finish, start};
use super::durability::{durable_spec, lost_and_doubled, wait_for_acks};
use super::model::{Ev, partition_of};
use super::{Ctx, Measured, Verdict, thousands};

const PARTITIONS: u64 = 4;

/// `offsets_exactly_once`: kill -9, restart, resend from an earlier seq; 0 lost, 0 doubled.
pub(crate) fn offsets_exactly_once(ctx: &mut Ctx<'_>) -> Measured {
    const N: usize = 1200;
    const KEYS: usize = 24;
    let mut spec = durable_spec(ctx)?;
    spec.set("STATECRAFT_PARTITIONS", PARTITIONS);
    let mut rng = ctx.rng(8);
    let mut next_seq = [0u64; PARTITIONS as usize];
    let evs: Vec<Ev> = (1..=N)
        .map(|i| {
            let key = format!("part{}", i % KEYS);
            let p = partition_of(&key, PARTITIONS) as usize;
            next_seq[p] += 1;
            let mut e = Ev::incr(format!("s{i}"), key, 1);
            e.seq = Some(next_seq[p]);
            e
        })
        .collect();
    let ids: Vec<String> = evs.iter().map(|e| e.id.clone()).collect();

    let mut h = start(&spec)?;
    h.send_lines(evs.iter().map(Ev::line));
    let want = N / 5 + rng.below((N / 2) as u64) as usize;
    wait_for_acks(&mut h, &ids, want, Duration::from_secs(3))?;
    h.kill9()?;
    let acked_before = ids
        .iter()
        .filter(|id| h.event_reply(id).is_some_and(|r| r.acked))
        .count();

    // Per partition: resend from half the highest acked seq, but never past
    // the first unacked one.
    let mut first_unacked = [u64::MAX; PARTITIONS as usize];
    let mut highest_acked = [0u64; PARTITIONS as usize];
    for e in &evs {
        let p = partition_of(&e.key, PARTITIONS) as usize;
        let seq = e.seq.unwrap_or(0);
        if h.event_reply(&e.id).is_some_and(|r| r.acked) {
            highest_acked[p] = highest_acked[p].max(seq);
        } else {
            first_unacked[p] = first_unacked[p].min(seq);
        }
    }
    drop(h);
    let from: Vec<u64> = (0..PARTITIONS as usize)
        .map(|p| (highest_acked[p] / 2).max(1).min(first_unacked[p]))
        .collect();
    let resend: Vec<Ev> = evs
        .iter()
        .filter(|e| e.seq.unwrap_or(0) >= from[partition_of(&e.key, PARTITIONS) as usize])
        .map(|e| {
            let mut r = e.clone();
            r.id = format!("r{}", &e.id[1..]);
            r
        })
        .collect();
    let mut h = start(&spec)?;
    h.send_lines(resend.iter().map(Ev::line));
    let resend_ids: Vec<String> = resend.iter().map(|e| e.id.clone()).collect();
    h.await_replies(&resend_ids)?;
    let duplicates = resend_ids
        .iter()
        .filter(|id| h.event_reply(id).is_some_and(|r| r.acked && r.duplicate))
        .count();
    let nacked = resend_ids
        .iter()
        .filter(|id| h.event_reply(id).is_some_and(|r| !r.acked))
        .count();
    let mut expected: HashMap<String, i64> = HashMap::new();
    for e in &evs {
        *expected.entry(e.key.clone()).or_default() += 1;
    }
    let keys: Vec<String> = (0..KEYS).map(|k| format!("part{k}")).collect();
    let got = h.get_many(&keys)?;
    let _ = finish(&mut h)?;
    let (lost, doubled, examples) = lost_and_doubled(&expected, &got);
    let figure = format!(
        "{lost} lost, {doubled} doubled ({} acked before the kill, {} re-sent, {} acked as duplicate)",
        thousands(acked_before as u64),
        thousands(resend.len() as u64),
        thousands(duplicates as u64)
    );
    let mut detail = examples.join("; ");
    if nacked > 0 {
        detail.push_str(&format!("\n{nacked} re-sent events were nacked"));
    }
    if doubled > 0 {
        detail.push_str("\ndoubled: an event at or below the partition's stored offset was applied again (store the offset in the same atomic write as the state)");
    }
    if lost > 0 {
        detail.push_str("\nlost: an acked event's effect is gone after the restart");
    }
    Ok(Verdict::judge(
        lost == 0 && doubled == 0 && nacked == 0,
        figure,
        detail,
    ))
}

/// `partition_ownership`: `OWNED=0,2` of 4 partitions; others nacked `not_owner`.
pub(crate) fn partition_ownership(ctx: &mut Ctx<'_>) -> Measured {
    const N: usize = 200;
    let owned = [0u64, 2];
    let mut spec = ctx.spec()?;
    spec.set("STATECRAFT_PARTITIONS", PARTITIONS)
        .set("STATECRAFT_OWNED", "0,2");
    let mut h = start(&spec)?;
    let evs: Vec<Ev> = (1..=N)
        .map(|i| Ev::incr(format!("p{i}"), format!("own{}", i % 40), 1))
        .collect();
    h.send_lines(evs.iter().map(Ev::line));
    let ids: Vec<String> = evs.iter().map(|e| e.id.clone()).collect();
    h.await_replies(&ids)?;
    let mut right = 0;
    let mut not_owner = 0;
    let mut wrong = Vec::new();
    let mut expected: HashMap<String, i64> = HashMap::new();
    for e in &evs {
        let p = partition_of(&e.key, PARTITIONS);
        let mine = owned.contains(&p);
        let Some(r) = h.event_reply(&e.id) else {
            continue;
        };
        let ok = if mine {
            *expected.entry(e.key.clone()).or_default() += 1;
            r.acked
        } else {
            !r.acked && r.reason.as_deref() == Some("not_owner")
        };
        if ok {
            right += 1;
            if !mine {
                not_owner += 1;
            }
        } else if wrong.len() < 3 {
            wrong.push(format!(
                "{} (key {}, partition {p}): got {}",
                e.id,
                e.key,
                if r.acked {
                    "ack".to_string()
                } else {
                    format!("nack {:?}", r.reason.clone().unwrap_or_default())
                }
            ));
        }
    }
    let keys: Vec<String> = expected.keys().cloned().collect();
    let got = h.get_many(&keys)?;
    let _ = finish(&mut h)?;
    let (lost, doubled, examples) = lost_and_doubled(&expected, &got);
    let mut detail = String::new();
    if !wrong.is_empty() {
        detail.push_str(&format!(
            "failover and ownership: wrong replies (partition = FNV-1a 64 of the key mod {PARTITIONS}; owned 0 and 2): {}",
            wrong.join("; ")
        ));
    }
    if lost + doubled > 0 {
        detail.push_str(&format!(
            "\nowned keys' state is wrong: {}",
            examples.join("; ")
        ));
    }
    Ok(Verdict::judge(
        right == N && lost + doubled == 0,
        format!("{right}/{N} replies right ({not_owner} not_owner)"),
        detail,
    ))
}
