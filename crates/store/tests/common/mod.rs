//! Helpers shared by the scenario tests (each test file uses a subset).
#![allow(dead_code, clippy::unwrap_used)]

use serde_json::Value;
use statecraft_store::{KeyState, LogRecord, Store, StoreOptions};
use std::path::{Path, PathBuf};

/// Small options for tests: one fjall worker, small cache.
pub fn opts() -> StoreOptions {
    StoreOptions::default()
        .worker_threads(1)
        .cache_bytes(8 << 20)
}

pub fn open(dir: &Path) -> Store {
    Store::open(dir, opts()).expect("open").0
}

pub fn st(value: impl Into<Value>, version: u64) -> KeyState {
    KeyState {
        value: value.into(),
        version,
        updated_at: 1_764_000_000_000 + version,
        expires_at: None,
    }
}

/// A record for `shard`/`seq` that sets `keys_per_record` keys named after it
/// (`r<seq>/<i>`) and `last` to `seq`, so a recovered state shows exactly
/// which records made it.
pub fn marker_record(shard: u16, seq: u64, keys_per_record: usize) -> LogRecord {
    let mut changes: Vec<(String, Option<KeyState>)> = (0..keys_per_record)
        .map(|i| (format!("r{seq:06}/{i}"), Some(st(seq, seq))))
        .collect();
    changes.push((format!("last/{shard}"), Some(st(seq, seq))));
    LogRecord {
        shard,
        seq,
        changes,
        dedup: vec![],
        offsets: vec![(format!("src/{shard}"), seq)],
    }
}

/// Checks that the store holds exactly the effect of marker records
/// `first..=n` of `shard` for some `n` (a prefix: no partial record, no gap)
/// and returns `n` (`first - 1` if none).
pub fn marker_prefix(
    store: &Store,
    shard: u16,
    first: u64,
    max: u64,
    keys_per_record: usize,
) -> u64 {
    let last = store
        .get(&format!("last/{shard}"))
        .unwrap()
        .map_or(first - 1, |s| s.value.as_u64().unwrap());
    for seq in first..=max {
        for i in 0..keys_per_record {
            let got = store.get(&format!("r{seq:06}/{i}")).unwrap();
            if seq <= last {
                assert_eq!(
                    got,
                    Some(st(seq, seq)),
                    "record {seq} key {i} must be complete"
                );
            } else {
                assert_eq!(
                    got, None,
                    "record {seq} is after the prefix {last} but key {i} is visible"
                );
            }
        }
    }
    if last >= first {
        assert_eq!(store.offset(&format!("src/{shard}")).unwrap(), Some(last));
    }
    last
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// The newest (active) fjall journal file in a data dir.
pub fn newest_journal(dir: &Path) -> PathBuf {
    let mut journals: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let id = p
                .file_name()?
                .to_str()?
                .strip_suffix(".jnl")?
                .parse()
                .ok()?;
            Some((id, p))
        })
        .collect();
    journals.sort();
    journals.pop().expect("a journal file").1
}
