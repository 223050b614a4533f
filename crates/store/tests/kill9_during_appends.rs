//! Scenario: a real process appends, syncs and checkpoints; the test SIGKILLs
//! it at a random moment, a dozen times, reopening the store between rounds.
//! Every record the child reported synced must come back, the state must be a
//! whole prefix of the records (never part of one), and the next child must
//! continue cleanly from `next_seq`.
//!
//! The test binary re-executes itself as the child (this test with
//! `STATECRAFT_STORE_KILL9_CHILD` set to the data dir).
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use statecraft_store::{KeyState, Store};
use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::Duration,
};

const CHILD_ENV: &str = "STATECRAFT_STORE_KILL9_CHILD";
const KEYS: usize = 20;
const ROUNDS: u64 = 12;

/// The child: append+sync marker records forever, checkpoint every 5th,
/// print "synced <seq>" after each successful sync.
fn child(dir: &str, keys: usize) {
    let (store, report) = Store::open(dir, opts()).unwrap();
    let mut dirty: HashMap<String, Option<KeyState>> = HashMap::new();
    let mut out = std::io::stdout().lock();
    let first = report.next_seq;
    for seq in first..first + 100_000 {
        let rec = marker_record(0, seq, keys);
        store.append(&rec).unwrap();
        dirty.extend(rec.changes);
        store.sync().unwrap();
        writeln!(out, "synced {seq}").unwrap();
        out.flush().unwrap();
        if seq % 5 == 0 {
            writeln!(out, "checkpoint {seq}").unwrap();
            out.flush().unwrap();
            let mut ck = store.begin_checkpoint(0, seq).unwrap();
            for (k, v) in dirty.drain() {
                ck.state(&k, v.as_ref()).unwrap();
            }
            ck.offset("src/0", seq).unwrap();
            ck.commit().unwrap();
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_synced_record() {
    sigkill_rounds(
        "sigkill_at_random_moments_loses_no_synced_record",
        KEYS,
        false,
        ROUNDS,
    );
}

/// Issue 20 review (adversary): checkpoints of more than one part
/// (`PART_STATES`) killed while they write — the kill lands right after the
/// child announced a checkpoint — must also recover a whole prefix with
/// nothing synced lost.
#[test]
fn sigkill_inside_checkpoint_parts_loses_no_synced_record() {
    // 5 records per checkpoint, each of this many keys: two parts or more.
    let keys = statecraft_store::PART_STATES / 4 + 1;
    sigkill_rounds(
        "sigkill_inside_checkpoint_parts_loses_no_synced_record",
        keys,
        true,
        6,
    );
}

fn sigkill_rounds(name: &str, keys: usize, at_checkpoint: bool, rounds: u64) {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir, keys);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut synced_total = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([name, "--exact", "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap());
        let wait_for = 1 + next() % 25;
        let mut last_synced = None;
        let mut seen = 0;
        for line in lines.lines() {
            let line = line.unwrap();
            if at_checkpoint && seen >= wait_for && line.starts_with("checkpoint ") {
                break;
            }
            if let Some(seq) = line.strip_prefix("synced ") {
                last_synced = Some(seq.parse::<u64>().unwrap());
                seen += 1;
                if seen == wait_for && !at_checkpoint {
                    break;
                }
            }
        }
        // Land the kill at a random point inside the next append/sync.
        std::thread::sleep(Duration::from_micros(next() % 3000));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let last_synced = last_synced.expect("the child synced something");
        synced_total += seen;

        let (store, report) = Store::open(dir.path(), opts()).unwrap();
        let recovered = marker_prefix(&store, 0, 1, last_synced + 5, keys);
        assert!(
            recovered >= last_synced,
            "round {round}: synced up to {last_synced}, recovered {recovered}"
        );
        assert_eq!(report.next_seq, recovered + 1, "round {round}");
        eprintln!(
            "round {round}: killed after synced {last_synced}; recovered {recovered}, replayed {}",
            report.records_replayed
        );
    }
    assert!(synced_total >= rounds);
}
