//! Scenario: the newest fjall journal file is truncated. A truncation that only
//! removes batches appended after the last sync is a torn tail: opening
//! recovers a prefix of the batches that includes everything synced. A
//! truncation that removes synced batches is data loss: opening refuses with
//! `SyncedRecordsMissing` (every time), and only `accept_lost_records` opens it
//! — to a prefix, never a partial batch or a gap, and the same on every open.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use statecraft_store::{Store, StoreError};

const RECORDS: u64 = 12;
const SYNCED: u64 = 8;
const KEYS: usize = 8;

/// Records 1..=12 on shard 0; 1..=8 each synced, with a checkpoint of 1..=6
/// after record 6; 9..=12 appended after the last sync.
fn pristine(dir: &std::path::Path) {
    let store = open(dir);
    for seq in 1..=RECORDS {
        store.append(&marker_record(0, seq, KEYS)).unwrap();
        if seq <= SYNCED {
            store.sync().unwrap();
        }
        if seq == 6 {
            let mut ck = store.begin_checkpoint(0, 6).unwrap();
            for s in 1..=6 {
                for (k, v) in marker_record(0, s, KEYS).changes {
                    ck.state(&k, v.as_ref()).unwrap();
                }
            }
            ck.offset("src/0", 6).unwrap();
            ck.commit().unwrap();
        }
    }
}

/// Length of the journal's written part (the file is preallocated with zeros).
fn data_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

fn open_prefix(dir: &std::path::Path, accept: bool) -> Result<u64, StoreError> {
    let (store, _) = Store::open(dir, opts().accept_lost_records(accept))?;
    Ok(marker_prefix(&store, 0, 1, RECORDS, KEYS))
}

#[test]
fn truncated_journal_is_a_torn_tail_or_refused_as_lost_synced_data() {
    let root = tempfile::tempdir().unwrap();
    let clean = root.path().join("clean");
    pristine(&clean);
    let journal = newest_journal(&clean);
    let bytes = std::fs::read(&journal).unwrap();
    let end = data_len(&bytes);
    assert!(end > 0);

    let mut cuts: Vec<usize> = (0..=30).map(|k| end * k / 30).collect();
    cuts.extend([
        end.saturating_sub(1),
        end.saturating_sub(9),
        end.saturating_sub(40),
    ]);
    cuts.sort_unstable();
    cuts.dedup();

    let mut outcomes = Vec::new();
    for (i, &cut) in cuts.iter().enumerate() {
        let trial = root.path().join(format!("trial{i}"));
        copy_dir(&clean, &trial);
        let j = trial.join(journal.file_name().unwrap());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&j)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();

        let outcome = match open_prefix(&trial, false) {
            Ok(n) => {
                assert!(
                    n >= SYNCED,
                    "cut at {cut}: opened without synced records ({n})"
                );
                assert_eq!(
                    open_prefix(&trial, false).unwrap(),
                    n,
                    "cut at {cut}: reopen differs"
                );
                format!("torn tail, {n} records")
            }
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        StoreError::SyncedRecordsMissing {
                            shard: 0,
                            synced: SYNCED,
                            ..
                        }
                    ),
                    "cut at {cut}: {e:?}"
                );
                let again = open_prefix(&trial, false).unwrap_err();
                assert_eq!(
                    again.to_string(),
                    e.to_string(),
                    "cut at {cut}: second open differs"
                );
                // The operator accepts the loss: a prefix, stable from then on.
                let n = open_prefix(&trial, true).unwrap();
                assert!(n < SYNCED);
                assert_eq!(
                    open_prefix(&trial, false).unwrap(),
                    n,
                    "cut at {cut}: after accepting"
                );
                format!("refused; accepted: {n} records")
            }
        };
        outcomes.push((cut, outcome));
    }
    assert_eq!(
        outcomes.last().map(|o| o.1.as_str()),
        Some(format!("torn tail, {RECORDS} records").as_str())
    );
    eprintln!("journal {end} bytes; (cut, outcome): {outcomes:#?}");
}
