//! Scenario: the seq rules that keep recovery exact — per-shard seqs strictly
//! increase, a checkpoint cannot claim unlogged records, and after a reopen
//! (with any shard count) every shard starts above every seq ever seen.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use statecraft_store::{DedupEntry, StoreError};

#[test]
fn seqs_only_grow_and_checkpoints_cover_only_logged_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.next_seq(), 1);

    store.append(&marker_record(0, 1, 1)).unwrap();
    store.append(&marker_record(0, 2, 1)).unwrap();
    let err = store.append(&marker_record(0, 2, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SeqOutOfOrder {
                shard: 0,
                seq: 2,
                last: 2
            }
        ),
        "{err:?}"
    );
    assert!(
        store.poisoned().is_none(),
        "a refused append writes nothing and does not poison"
    );

    // Shard 5 runs far ahead of shard 0.
    store.append(&marker_record(5, 900, 1)).unwrap();

    let err = store.begin_checkpoint(0, 3).err().unwrap();
    assert!(
        matches!(
            err,
            StoreError::CheckpointBeyondLog {
                shard: 0,
                upto_seq: 3,
                last: 2
            }
        ),
        "{err:?}"
    );
    store
        .checkpoint(
            0,
            2,
            [("a", Some(st(1, 1)))],
            [] as [DedupEntry; 0],
            [("src/0", 2)],
        )
        .unwrap();
    assert_eq!(store.checkpoint_seq(0), 2);
    store.sync().unwrap();
    drop(store);

    // Reopen: record 900 of shard 5 is replayed; everyone starts at 901.
    let (store, report) = statecraft_store::Store::open(dir.path(), opts()).unwrap();
    assert_eq!(report.records_replayed, 1);
    assert_eq!(report.next_seq, 901);
    assert_eq!(report.checkpoints.get(&5), Some(&900));
    assert_eq!(store.checkpoint_seq(5), 900);
    for shard in 0..8 {
        let err = store.append(&marker_record(shard, 900, 1)).unwrap_err();
        assert!(matches!(err, StoreError::SeqOutOfOrder { .. }));
        store.append(&marker_record(shard, 901, 1)).unwrap();
    }
    // A shard that appended nothing may checkpoint up to the high-water mark.
    store
        .checkpoint(
            9,
            900,
            [("b", Some(st(2, 1)))],
            [] as [DedupEntry; 0],
            [] as [(&str, u64); 0],
        )
        .unwrap();
    drop(store);

    // Offsets only move forward, whichever shard writes them.
    let store = open(dir.path());
    assert_eq!(store.offset("src/0").unwrap(), Some(901));
    store
        .checkpoint(
            0,
            0,
            [] as [(&str, Option<statecraft_store::KeyState>); 0],
            [] as [DedupEntry; 0],
            [("src/0", 5)],
        )
        .unwrap();
    assert_eq!(store.offset("src/0").unwrap(), Some(901));
}

#[test]
fn over_long_keys_and_ids_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let long = "x".repeat(statecraft_store::MAX_KEY_BYTES + 1);
    let err = store
        .checkpoint(
            0,
            0,
            [(long.as_str(), Some(st(1, 1)))],
            [] as [DedupEntry; 0],
            [] as [(&str, u64); 0],
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::TooLong { what: "key", .. }),
        "{err:?}"
    );
    let mut rec = marker_record(0, 1, 0);
    rec.dedup.push(DedupEntry {
        key: "k".into(),
        id: "i".repeat(statecraft_store::MAX_ID_BYTES + 1),
        expires_at: 1,
    });
    assert!(matches!(
        store.append(&rec).unwrap_err(),
        StoreError::TooLong { .. }
    ));
    assert!(store.poisoned().is_none());
    assert_eq!(store.get(&long).unwrap(), None);
}

#[test]
fn a_key_given_twice_in_one_checkpoint_ends_at_the_later_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ids = [
        DedupEntry {
            key: "k".into(),
            id: "i".into(),
            expires_at: 9,
        },
        DedupEntry {
            key: "k".into(),
            id: "i".into(),
            expires_at: 5,
        },
    ];
    store
        .checkpoint(
            0,
            0,
            [
                ("a", Some(st(1, 1))),
                ("b", Some(st(1, 1))),
                ("a", Some(st(2, 2))),
            ],
            &ids,
            [] as [(&str, u64); 0],
        )
        .unwrap();
    assert_eq!(store.get("a").unwrap(), Some(st(2, 2)));
    assert_eq!(store.dedup_get("k", "i").unwrap(), Some(9));
    store
        .checkpoint(
            0,
            0,
            [("a", None), ("a", Some(st(3, 3)))],
            [] as [DedupEntry; 0],
            [] as [(&str, u64); 0],
        )
        .unwrap();
    assert_eq!(store.get("a").unwrap(), Some(st(3, 3)));
}

/// A checkpoint larger than one part commits its first states ahead of the
/// final batch. A crash after those parts and before the final batch (here:
/// the checkpoint is dropped uncommitted, the parts synced, the store
/// reopened) must not leave the older checkpointed states behind: the log
/// records above the old checkpoint are still there and recovery replays
/// them over the parts. Also checks that state written from encoded bytes
/// (`state_encoded`, what the engine's checkpoints use) reads back equal.
#[test]
fn a_checkpoint_cut_between_its_parts_recovers_to_the_log() {
    use statecraft_store::{LogRecord, PART_STATES, encode_state, encoded_state_len};
    let dir = tempfile::tempdir().unwrap();
    let n = PART_STATES * 2 + 10;
    let keys: Vec<String> = (0..n).map(|i| format!("k{i:05}")).collect();
    {
        let store = open(dir.path());
        for (seq, value) in [(1u64, 1i64), (2, 2)] {
            store
                .append(&LogRecord {
                    shard: 0,
                    seq,
                    changes: keys
                        .iter()
                        .map(|k| (k.clone(), Some(st(value, seq))))
                        .collect(),
                    ..LogRecord::default()
                })
                .unwrap();
        }
        store.sync().unwrap();
        // The checkpoint up to seq 1 writes two full parts, then "crashes".
        let mut ck = store.begin_checkpoint(0, 1).unwrap();
        for k in &keys {
            let mut bytes = Vec::new();
            encode_state(&st(1, 1), &mut bytes);
            assert_eq!(encoded_state_len(&bytes).unwrap(), bytes.len());
            ck.state_encoded(k, Some(&bytes)).unwrap();
        }
        drop(ck);
        store.sync().unwrap();
        // The parts did reach the store (they are what this test is about).
        assert_eq!(store.get(&keys[0]).unwrap(), Some(st(1, 1)));
        assert_eq!(store.checkpoint_seq(0), 0);
    }
    let store = open(dir.path());
    for k in &keys {
        assert_eq!(store.get(k).unwrap(), Some(st(2, 2)), "{k}");
    }
    // Encoded bytes with trailing garbage are refused, nothing written.
    let mut ck = store.begin_checkpoint(0, 0).unwrap();
    let mut bytes = Vec::new();
    encode_state(&st(7, 7), &mut bytes);
    bytes.push(0);
    assert!(ck.state_encoded("bad", Some(&bytes)).is_err());
}

/// Issue 20 review (adversary): a checkpoint cut between its parts, where
/// the parts hold states that later records changed again — a key deleted
/// after the checkpoint's state was recorded, a TTL key whose expiry moved,
/// a counter whose after-image the parts already hold (replaying must not
/// count it twice) — plus ids and source offsets that live only in the
/// final batch. A TTL sweep runs between the cut and the crash. After the
/// reopen the store must equal the log: the deleted key stays deleted, the
/// counter is at the last after-image, ids and offsets are all there; and a
/// full checkpoint plus another reopen changes nothing.
#[test]
fn a_checkpoint_cut_between_its_parts_keeps_deletes_ttl_ids_and_offsets() {
    use statecraft_store::{LogRecord, PART_STATES, encode_state};
    let dir = tempfile::tempdir().unwrap();
    let n = PART_STATES * 2 + 10;
    let keys: Vec<String> = (0..n).map(|i| format!("k{i:05}")).collect();
    let ttl = |v: i64, version: u64, exp: u64| {
        let mut s = st(v, version);
        s.expires_at = Some(exp);
        s
    };
    let far = 4_000_000_000_000u64;
    let check = |store: &statecraft_store::Store| {
        assert_eq!(store.get(&keys[0]).unwrap(), None, "deleted by seq 2");
        assert_eq!(store.get(&keys[1]).unwrap(), Some(ttl(2, 2, far + 5)));
        assert_eq!(store.get(&keys[2]).unwrap(), Some(st(3, 3)), "counter");
        for k in &keys[3..] {
            assert_eq!(store.get(k).unwrap(), Some(st(1, 1)), "{k}");
        }
        for id in ["a", "b", "c"] {
            assert!(store.dedup_get(&keys[2], id).unwrap().is_some(), "id {id}");
        }
        assert_eq!(store.offset("src").unwrap(), Some(30));
    };
    let id = |id: &str| DedupEntry {
        key: keys[2].clone(),
        id: id.into(),
        expires_at: far,
    };
    {
        let store = open(dir.path());
        let mut first: Vec<(String, Option<_>)> =
            keys.iter().map(|k| (k.clone(), Some(st(1, 1)))).collect();
        first[1].1 = Some(ttl(1, 1, far));
        let records = [
            LogRecord {
                shard: 0,
                seq: 1,
                changes: first,
                dedup: vec![id("a")],
                offsets: vec![("src".into(), 10)],
            },
            LogRecord {
                shard: 0,
                seq: 2,
                changes: vec![
                    (keys[0].clone(), None),
                    (keys[1].clone(), Some(ttl(2, 2, far + 5))),
                    (keys[2].clone(), Some(st(2, 2))),
                ],
                dedup: vec![id("b")],
                offsets: vec![("src".into(), 20)],
            },
            LogRecord {
                shard: 0,
                seq: 3,
                changes: vec![(keys[2].clone(), Some(st(3, 3)))],
                dedup: vec![id("c")],
                offsets: vec![("src".into(), 30)],
            },
        ];
        for r in &records {
            store.append(r).unwrap();
        }
        store.sync().unwrap();
        // The checkpoint up to seq 2 (k0 deleted, k1's new expiry, the
        // counter at 2) commits its parts, then "crashes" before the final
        // batch with the ids, offsets and position.
        let mut ck = store.begin_checkpoint(0, 2).unwrap();
        let mut order: Vec<&String> = keys.iter().skip(3).collect();
        order.extend(&keys[..3]);
        for (i, k) in order.iter().enumerate() {
            let state = match k.as_str() {
                k if k == keys[0] => None,
                k if k == keys[1] => Some(ttl(2, 2, far + 5)),
                k if k == keys[2] => Some(st(2, 2)),
                _ => Some(st(1, 1)),
            };
            if i % 2 == 0 {
                ck.state(k, state.as_ref()).unwrap();
            } else {
                let bytes = state.as_ref().map(|s| {
                    let mut b = Vec::new();
                    encode_state(s, &mut b);
                    b
                });
                ck.state_encoded(k, bytes.as_deref()).unwrap();
            }
        }
        drop(ck);
        store.sweep_expired(far + 10, 100_000).unwrap();
        store.sync().unwrap();
        assert_eq!(store.checkpoint_seq(0), 0);
    }
    let store = open(dir.path());
    check(&store);
    let mut ck = store.begin_checkpoint(0, 3).unwrap();
    ck.state(&keys[2], Some(&st(3, 3))).unwrap();
    ck.commit().unwrap();
    store.sync().unwrap();
    check(&store);
    drop(store);
    let store = open(dir.path());
    check(&store);
}
