//! Scenario: `backup` while the log holds unreplayed records writes a copy that
//! opens as a data dir with the same state as reopening the original; a
//! non-empty target is refused.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use statecraft_store::StoreError;

#[test]
fn backup_is_consistent_and_opens() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let store = open(&live);
    for seq in 1..=20 {
        store.append(&marker_record(0, seq, 5)).unwrap();
        if seq == 10 {
            let mut ck = store.begin_checkpoint(0, 10).unwrap();
            for s in 1..=10 {
                for (k, v) in marker_record(0, s, 5).changes {
                    ck.state(&k, v.as_ref()).unwrap();
                }
            }
            ck.offset("src/0", 10).unwrap();
            ck.dedup("r000001/0", "id", 77).unwrap();
            ck.commit().unwrap();
        }
    }
    store.sync().unwrap();

    let target = root.path().join("backup");
    let report = store.backup(&target).unwrap();
    assert_eq!(
        report.log_records, 10,
        "records 11..=20 are still in the log"
    );
    assert_eq!(report.keys, 10 * 5 + 1);

    // Refuses a non-empty target.
    let err = store.backup(&target).unwrap_err();
    assert!(
        matches!(err, StoreError::BackupTargetNotEmpty { .. }),
        "{err:?}"
    );

    // The live store keeps working after the backup.
    store.append(&marker_record(0, 21, 5)).unwrap();
    store.sync().unwrap();
    drop(store);

    let (copy, rep) = statecraft_store::Store::open(&target, opts()).unwrap();
    assert_eq!(rep.records_replayed, 10);
    assert_eq!(
        marker_prefix(&copy, 0, 1, 21, 5),
        20,
        "the backup has records 1..=20, not 21"
    );
    assert_eq!(copy.dedup_get("r000001/0", "id").unwrap(), Some(77));
    assert_eq!(copy.next_seq(), 21);
    // And the copy takes writes.
    copy.append(&marker_record(0, 21, 1)).unwrap();
    copy.sync().unwrap();

    let original = open(&live);
    assert_eq!(marker_prefix(&original, 0, 1, 21, 5), 21);
}
