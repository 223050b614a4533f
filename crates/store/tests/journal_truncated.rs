//! Scenario: the newest fjall journal file is truncated (a torn write at the
//! moment of a crash, or a lost tail). Opening must recover to the effect of a
//! prefix of the committed batches — never a partial batch, never a gap — or
//! refuse with a clear error; and opening twice must give the same result.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use statecraft_store::{Store, StoreError};

const RECORDS: u64 = 12;
const KEYS: usize = 8;

/// Builds the pristine data dir: records 1..=12 on shard 0, each synced, with
/// a checkpoint of records 1..=6 in the middle.
fn pristine(dir: &std::path::Path) {
    let store = open(dir);
    for seq in 1..=RECORDS {
        store.append(&marker_record(0, seq, KEYS)).unwrap();
        store.sync().unwrap();
        if seq == 6 {
            let mut ck = store.begin_checkpoint(0, 6).unwrap();
            for s in 1..=6 {
                for (k, v) in marker_record(0, s, KEYS).changes {
                    ck.state(&k, v.as_ref()).unwrap();
                }
            }
            ck.offset("src/0", 6).unwrap();
            ck.commit().unwrap();
            store.sync().unwrap();
        }
    }
}

/// Length of the journal's written part (the file is preallocated with zeros).
fn data_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

#[test]
fn truncated_journal_recovers_a_prefix_of_batches_and_twice_the_same() {
    let root = tempfile::tempdir().unwrap();
    let clean = root.path().join("clean");
    pristine(&clean);
    let journal = newest_journal(&clean);
    let bytes = std::fs::read(&journal).unwrap();
    let end = data_len(&bytes);
    assert!(end > 0);

    let mut cuts: Vec<usize> = (0..=24).map(|k| end * k / 24).collect();
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

        let first = match Store::open(&trial, opts()) {
            Ok((store, _)) => Ok(marker_prefix(&store, 0, 1, RECORDS, KEYS)),
            Err(e) => Err(e),
        };
        // Opening again must give the same answer.
        let second = match Store::open(&trial, opts()) {
            Ok((store, report)) => {
                assert_eq!(report.records_replayed, 0, "the first open emptied the log");
                Ok(marker_prefix(&store, 0, 1, RECORDS, KEYS))
            }
            Err(e) => Err(e),
        };
        match (&first, &second) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "cut at {cut}: reopen changed the state"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("cut at {cut}: first open {first:?}, second {second:?}"),
        }
        if let Err(e) = &first {
            assert!(
                matches!(
                    e,
                    StoreError::JournalCorrupt { .. } | StoreError::Fjall { .. }
                ),
                "cut at {cut}: unexpected error kind {e:?}"
            );
        }
        outcomes.push((cut, first.map_err(|e| e.to_string())));
    }
    // The untouched journal recovers everything; cuts lose only a tail.
    assert_eq!(outcomes.last().map(|o| o.1.clone()), Some(Ok(RECORDS)));
    let prefixes: Vec<u64> = outcomes.iter().filter_map(|o| o.1.clone().ok()).collect();
    assert!(
        prefixes.windows(2).all(|w| w[0] <= w[1]),
        "longer journals never recover less: {outcomes:?}"
    );
    eprintln!("journal {end} bytes; (cut, records recovered): {outcomes:?}");
}
