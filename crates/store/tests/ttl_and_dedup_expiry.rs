//! Scenario: keys with a TTL and idempotency ids with a window. Expired keys
//! are invisible to `get_live` and `scan(now)` at once; `sweep_expired`
//! removes them in bounded steps, never removes a key that was rewritten with
//! a later (or no) expiry, and drops dedup ids past their window.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use statecraft_store::{DedupEntry, KeyState};

fn ttl(value: i64, version: u64, expires_at: u64) -> KeyState {
    KeyState {
        expires_at: Some(expires_at),
        ..st(value, version)
    }
}

fn no_dedup() -> [DedupEntry; 0] {
    []
}
fn no_offsets() -> [(&'static str, u64); 0] {
    []
}

#[test]
fn expired_keys_are_invisible_then_swept_in_bounded_steps() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let states: Vec<(String, Option<KeyState>)> = (0..10)
        .map(|i| (format!("t/{i}"), Some(ttl(i, 1, 100 + i as u64))))
        .chain([("t/keep".to_owned(), Some(st(7, 1)))])
        .collect();
    store
        .checkpoint(0, 0, states, no_dedup(), no_offsets())
        .unwrap();

    // Visibility is immediate and by the clock the caller passes.
    assert!(store.get_live("t/3", 102).unwrap().is_some());
    assert!(store.get_live("t/3", 103).unwrap().is_none());
    assert!(
        store.get("t/3",).unwrap().is_some(),
        "get returns expired keys as stored"
    );
    let live: Vec<String> = store
        .scan("t/", None, 100, Some(105))
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(live, ["t/6", "t/7", "t/8", "t/9", "t/keep"]);
    assert_eq!(store.scan("t/", None, 100, None).unwrap().len(), 11);

    // Bounded: at most `max` index entries per call.
    let r = store.sweep_expired(105, 4).unwrap();
    assert_eq!((r.keys_removed, r.more), (4, true));
    let r = store.sweep_expired(105, 4).unwrap();
    assert_eq!((r.keys_removed, r.more), (2, false));
    assert_eq!(store.scan("t/", None, 100, None).unwrap().len(), 5);
    assert_eq!(store.sweep_expired(105, 4).unwrap().removed(), 0);
    assert_eq!(store.sweep_expired(u64::MAX, 100).unwrap().keys_removed, 4);
    assert_eq!(store.get("t/keep").unwrap(), Some(st(7, 1)));
}

#[test]
fn rewritten_keys_are_not_swept_by_their_old_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let first = [
        ("a", Some(ttl(1, 1, 50))),
        ("b", Some(ttl(1, 1, 50))),
        ("c", Some(ttl(1, 1, 50))),
    ];
    store
        .checkpoint(0, 0, first, no_dedup(), no_offsets())
        .unwrap();
    // a: TTL extended; b: TTL dropped; c: deleted then re-created without TTL.
    let second = [
        ("a", Some(ttl(2, 2, 500))),
        ("b", Some(st(2, 2))),
        ("c", None),
    ];
    store
        .checkpoint(0, 0, second, no_dedup(), no_offsets())
        .unwrap();
    store
        .checkpoint(0, 0, [("c", Some(st(3, 1)))], no_dedup(), no_offsets())
        .unwrap();

    let r = store.sweep_expired(100, 100).unwrap();
    assert_eq!(r.keys_removed, 0, "{r:?}");
    // a's old entry was replaced (not stale); b's and c's remain stale until due.
    assert_eq!(r.stale_entries, 2, "{r:?}");
    assert_eq!(store.get("a").unwrap(), Some(ttl(2, 2, 500)));
    assert_eq!(store.get("b").unwrap(), Some(st(2, 2)));
    assert_eq!(store.get("c").unwrap(), Some(st(3, 1)));
    let r = store.sweep_expired(500, 100).unwrap();
    assert_eq!((r.keys_removed, r.stale_entries), (1, 0));
    assert_eq!(store.get("a").unwrap(), None);
}

#[test]
fn dedup_ids_are_scoped_to_their_key_and_swept_after_their_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ids = [
        DedupEntry {
            key: "user:1".into(),
            id: "evt-1".into(),
            expires_at: 1_000,
        },
        DedupEntry {
            key: "user:2".into(),
            id: "evt-1".into(),
            expires_at: 2_000,
        },
    ];
    store
        .checkpoint(
            0,
            0,
            [] as [(&str, Option<KeyState>); 0],
            &ids,
            no_offsets(),
        )
        .unwrap();
    assert_eq!(store.dedup_get("user:1", "evt-1").unwrap(), Some(1_000));
    assert_eq!(store.dedup_get("user:2", "evt-1").unwrap(), Some(2_000));
    assert_eq!(store.dedup_get("user:1", "evt-2").unwrap(), None);

    let r = store.sweep_expired(1_500, 10).unwrap();
    assert_eq!(r.dedup_removed, 1);
    assert_eq!(store.dedup_get("user:1", "evt-1").unwrap(), None);
    assert_eq!(store.dedup_get("user:2", "evt-1").unwrap(), Some(2_000));

    // Ids logged but not checkpointed survive a restart through replay.
    let seq = store.next_seq();
    let mut rec = marker_record(0, seq, 0);
    rec.dedup.push(DedupEntry {
        key: "user:3".into(),
        id: "evt-9".into(),
        expires_at: 9_000,
    });
    store.append(&rec).unwrap();
    store.sync().unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.dedup_get("user:3", "evt-9").unwrap(), Some(9_000));
    assert_eq!(store.sweep_expired(9_000, 10).unwrap().dedup_removed, 2);
}
