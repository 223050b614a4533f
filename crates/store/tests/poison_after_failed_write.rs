//! Scenario: a write or sync fails (injected). The failing call reports the
//! I/O error; every later write answers `Poisoned` carrying that cause; reads
//! keep working; a reopen recovers everything synced before the failure and
//! accepts writes again.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use statecraft_store::{DedupEntry, Fault, KeyState, StoreError};

fn poisoned_with_cause(e: &StoreError) -> bool {
    matches!(e, StoreError::Poisoned { cause } if cause.contains("injected fault"))
}

#[test]
fn every_write_path_poisons_and_a_reopen_recovers() {
    for fault in [Fault::Append, Fault::Sync, Fault::Checkpoint, Fault::Sweep] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let base = store.next_seq();
        store.append(&marker_record(0, base, 2)).unwrap();
        store.sync().unwrap();

        store.fault_injector().fail_next(fault);
        let failed = match fault {
            Fault::Append => store.append(&marker_record(0, base + 1, 2)),
            Fault::Sync => {
                store.append(&marker_record(0, base + 1, 2)).unwrap();
                store.sync()
            }
            Fault::Checkpoint => store
                .checkpoint(
                    0,
                    base,
                    [("x", Some(st(1, 1)))],
                    [] as [DedupEntry; 0],
                    [("a", 1)],
                )
                .map(drop),
            Fault::Sweep => {
                let ttl = KeyState {
                    expires_at: Some(5),
                    ..st(1, 1)
                };
                store
                    .checkpoint(
                        1,
                        0,
                        [("t", Some(ttl))],
                        [] as [DedupEntry; 0],
                        [] as [(&str, u64); 0],
                    )
                    .unwrap();
                store.sweep_expired(10, 100).map(drop)
            }
            // A read is not a write path: it fails alone and never poisons.
            Fault::Read => unreachable!("not in the list"),
        };
        let err = failed.expect_err("the armed fault fires");
        assert!(
            matches!(&err, StoreError::Io { source, .. } if source.to_string().contains("injected")),
            "{fault:?}: {err:?}"
        );
        assert!(store.poisoned().is_some());

        // Every write path now refuses, naming the first failure.
        let next = base + 10;
        assert!(poisoned_with_cause(
            &store.append(&marker_record(0, next, 1)).unwrap_err()
        ));
        assert!(poisoned_with_cause(&store.sync().unwrap_err()));
        assert!(poisoned_with_cause(
            &store.begin_checkpoint(0, base).err().unwrap()
        ));
        assert!(poisoned_with_cause(&store.sweep_expired(0, 1).unwrap_err()));
        let msg = store.sync().unwrap_err().to_string();
        assert!(msg.contains("reopen") && msg.contains("injected"), "{msg}");

        // Reads keep working.
        assert!(store.get("anything").unwrap().is_none());
        assert!(store.scan("", None, 10, None).is_ok());

        // A reopen recovers what was synced and takes writes again.
        drop(store);
        let (store, report) = statecraft_store::Store::open(dir.path(), opts()).unwrap();
        assert!(store.poisoned().is_none());
        assert!(marker_prefix(&store, 0, base, base, 2) >= base, "{fault:?}");
        assert!(report.next_seq > base);
        store.append(&marker_record(0, report.next_seq, 1)).unwrap();
        store.sync().unwrap();
    }
}
