//! Measures the store's ack path and background work on this machine:
//!
//! 1. append + sync of log records of 1,000 counter changes (one fsync per
//!    record, and group commit of 4 records per fsync): events/s, fsyncs/s,
//!    MB/s, sync latency p50/p99;
//! 2. a checkpoint of 100,000 keys (one atomic batch);
//! 3. reopen with the log still full: recovery time;
//! 4. with `--cold-keys N` (BENCH.md W5 shape): N keys materialized, reopen
//!    with an empty log, time to open and latency of first reads of random
//!    cold keys.
//!
//! ```text
//! cargo run -p statecraft-store --release --example logbench -- [--records 2000] \
//!     [--changes 1000] [--keys 100000] [--ckpt-keys 100000] [--compress] [--dir PATH] \
//!     [--cold-keys 10000000] [--journal-mb 64]
//! ```
//!
//! Benchmarks are not tests: nothing asserts on time. Machines are shared and
//! noisy — run it several times and compare medians.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use statecraft_store::{KeyState, RecordEncoder, Store, StoreOptions};
use std::time::{Duration, Instant};

struct Args {
    records: u64,
    changes: usize,
    keys: u64,
    ckpt_keys: u64,
    compress: bool,
    dir: Option<std::path::PathBuf>,
    cold_keys: u64,
    journal_mb: Option<u64>,
}

fn args() -> Args {
    let mut a = Args {
        records: 2000,
        changes: 1000,
        keys: 100_000,
        ckpt_keys: 100_000,
        compress: false,
        dir: None,
        cold_keys: 0,
        journal_mb: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = || {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a number")
        };
        match flag.as_str() {
            "--records" => a.records = num(),
            "--changes" => a.changes = num() as usize,
            "--keys" => a.keys = num(),
            "--ckpt-keys" => a.ckpt_keys = num(),
            "--compress" => a.compress = true,
            "--cold-keys" => a.cold_keys = num(),
            "--journal-mb" => a.journal_mb = Some(num()),
            "--dir" => a.dir = it.next().map(Into::into),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// xorshift64*: deterministic key choice without a rand dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Appends `records` records, syncing every `per_sync`; returns the next seq.
fn run_appends(store: &Store, a: &Args, first_seq: u64, per_sync: u64, label: &str) -> u64 {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ first_seq);
    let mut buf = Vec::with_capacity(a.changes * 32);
    let mut syncs = Vec::new();
    let mut bytes = 0u64;
    let mut encode = Duration::ZERO;
    let mut append = Duration::ZERO;
    let started = Instant::now();
    let ts = now_ms();
    let mut seq = first_seq;
    for i in 0..a.records {
        let t = Instant::now();
        buf.clear();
        let mut enc = RecordEncoder::new(&mut buf, 0, seq);
        for _ in 0..a.changes {
            let k = rng.next() % a.keys;
            let state = KeyState {
                value: (k % 1000).into(),
                version: i + 1,
                updated_at: ts,
                expires_at: None,
            };
            enc.change(&format!("counter:{k}"), Some(&state));
        }
        enc.finish();
        encode += t.elapsed();
        bytes += buf.len() as u64;
        let t = Instant::now();
        store.append_encoded(0, seq, &buf).unwrap();
        append += t.elapsed();
        seq += 1;
        if (i + 1) % per_sync == 0 {
            let t = Instant::now();
            store.sync().unwrap();
            syncs.push(t.elapsed());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    syncs.sort_unstable();
    let events = a.records as f64 * a.changes as f64;
    println!(
        "{label}: {:.2} M events/s, {:.0} fsyncs/s, {:.1} MB/s, {:.0} B/record, \
         sync p50 {:.2} ms p99 {:.2} ms; wall: encode {:.0} %, append {:.0} %, sync {:.0} %",
        events / secs / 1e6,
        syncs.len() as f64 / secs,
        bytes as f64 / secs / 1e6,
        bytes as f64 / a.records as f64,
        pct(&syncs, 0.5),
        pct(&syncs, 0.99),
        encode.as_secs_f64() / secs * 100.0,
        append.as_secs_f64() / secs * 100.0,
        syncs.iter().sum::<Duration>().as_secs_f64() / secs * 100.0,
    );
    seq
}

fn main() {
    let a = args();
    let tmp = tempfile::tempdir_in(a.dir.clone().unwrap_or_else(std::env::temp_dir)).unwrap();
    let mut opts = StoreOptions::default().journal_compression(a.compress);
    if let Some(mb) = a.journal_mb {
        opts = opts.max_journal_bytes(mb << 20);
    }
    println!(
        "logbench: {} records x {} changes, {} keys, journal compression {}",
        a.records,
        a.changes,
        a.keys,
        if a.compress { "lz4" } else { "off" }
    );

    let (store, _) = Store::open(tmp.path(), opts).unwrap();
    let seq = run_appends(
        &store,
        &a,
        store.next_seq(),
        1,
        "append+sync, 1 record/fsync ",
    );
    let seq = run_appends(&store, &a, seq, 4, "append+sync, 4 records/fsync");

    // Checkpoint of ckpt_keys distinct keys, one atomic batch.
    let ts = now_ms();
    let states: Vec<(String, Option<KeyState>)> = (0..a.ckpt_keys)
        .map(|k| {
            let s = KeyState {
                value: (k * 3).into(),
                version: 7,
                updated_at: ts,
                expires_at: None,
            };
            (format!("counter:{k}"), Some(s))
        })
        .collect();
    // The engine hands over its dirty map in hash order: shuffle like it.
    let mut states = states;
    let mut rng = Rng(42);
    for i in (1..states.len()).rev() {
        states.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let t = Instant::now();
    let report = store
        .checkpoint(
            0,
            seq - 1,
            states.iter().map(|(k, s)| (k.as_str(), s.as_ref())),
            [] as [statecraft_store::DedupEntry; 0],
            [] as [(&str, u64); 0],
        )
        .unwrap();
    let ckpt = t.elapsed();
    let t = Instant::now();
    store.sync().unwrap();
    println!(
        "checkpoint: {} keys in {:.0} ms ({:.2} M keys/s), {} log records deleted, then sync {:.1} ms",
        report.states_written,
        ckpt.as_secs_f64() * 1e3,
        report.states_written as f64 / ckpt.as_secs_f64() / 1e6,
        report.log_records_deleted,
        t.elapsed().as_secs_f64() * 1e3,
    );

    // Leave a full log, reopen: recovery replays it.
    let _ = run_appends(&store, &a, seq, 4, "append+sync (log to replay)  ");
    drop(store);
    let t = Instant::now();
    let (store, rep) = Store::open(tmp.path(), opts).unwrap();
    println!(
        "reopen: {} records / {} changes replayed in {:.0} ms ({:.2} M changes/s), {} keys",
        rep.records_replayed,
        rep.changes_applied,
        t.elapsed().as_secs_f64() * 1e3,
        rep.changes_applied as f64 / t.elapsed().as_secs_f64() / 1e6,
        store.approx_len(),
    );
    drop(store);
    if a.cold_keys > 0 {
        cold(&a, opts);
    }
}

/// W5 shape: `cold_keys` keys written through checkpoints of 1M sorted keys,
/// then reopen (empty log) and read random keys once each.
fn cold(a: &Args, opts: StoreOptions) {
    let tmp = tempfile::tempdir_in(a.dir.clone().unwrap_or_else(std::env::temp_dir)).unwrap();
    let (store, _) = Store::open(tmp.path(), opts).unwrap();
    let ts = now_ms();
    let t = Instant::now();
    let mut k = 0u64;
    while k < a.cold_keys {
        let end = (k + 1_000_000).min(a.cold_keys);
        let mut ck = store.begin_checkpoint(0, 0).unwrap();
        for i in k..end {
            let s = KeyState {
                value: i.into(),
                version: 1,
                updated_at: ts,
                expires_at: None,
            };
            ck.state(&format!("user:{i:010}"), Some(&s)).unwrap();
        }
        ck.commit().unwrap();
        k = end;
    }
    store.sync().unwrap();
    println!(
        "cold: wrote {} keys in {:.1} s ({:.2} M keys/s)",
        a.cold_keys,
        t.elapsed().as_secs_f64(),
        a.cold_keys as f64 / t.elapsed().as_secs_f64() / 1e6
    );
    store.close().unwrap();
    let t = Instant::now();
    let (store, rep) = Store::open(tmp.path(), opts).unwrap();
    let open = t.elapsed();
    let mut rng = Rng(7);
    let mut lat = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let key = format!("user:{:010}", rng.next() % a.cold_keys);
        let t = Instant::now();
        let got = store.get(&key).unwrap();
        lat.push(t.elapsed());
        assert!(got.is_some());
    }
    lat.sort_unstable();
    println!(
        "cold: reopen {:.0} ms (replayed {} records); 10k random first reads p50 {:.3} ms p99 {:.3} ms max {:.3} ms",
        open.as_secs_f64() * 1e3,
        rep.records_replayed,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
    );
}
