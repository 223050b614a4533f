//! Scenario: one byte of the newest fjall journal file is flipped (bit rot, a
//! misdirected write), every record in it synced. Opening must recover all of
//! them or refuse with a clear error — `JournalCorrupt` (fjall's batch
//! checksum), `Corrupt`, or `SyncedRecordsMissing` (fjall's torn-tail recovery
//! dropped synced batches after the damage, fjall-rs/fjall#311) — the same on
//! every open. Accepting the loss opens a prefix: never a partial batch, a
//! gap, or a changed value.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use statecraft_store::{Store, StoreError};
use std::collections::BTreeMap;

const RECORDS: u64 = 6;
const KEYS: usize = 3;

fn pristine(dir: &std::path::Path) {
    let store = open(dir);
    for seq in 1..=RECORDS {
        store.append(&marker_record(0, seq, KEYS)).unwrap();
        store.sync().unwrap();
    }
}

fn data_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Opened; records 1..=n are visible.
    Prefix(u64),
    /// Refused, with this error kind.
    Refused(&'static str),
}

fn try_open(dir: &std::path::Path, accept: bool) -> Outcome {
    match Store::open(dir, opts().accept_lost_records(accept)) {
        Ok((store, _)) => Outcome::Prefix(marker_prefix(&store, 0, 1, RECORDS, KEYS)),
        Err(StoreError::JournalCorrupt { .. }) => Outcome::Refused("JournalCorrupt"),
        Err(StoreError::Corrupt { .. }) => Outcome::Refused("Corrupt"),
        Err(StoreError::SyncedRecordsMissing { .. }) => Outcome::Refused("SyncedRecordsMissing"),
        Err(e) => panic!("unexpected error kind: {e:?}"),
    }
}

#[test]
fn flipped_journal_byte_recovers_everything_or_is_refused_and_twice_the_same() {
    let root = tempfile::tempdir().unwrap();
    let clean = root.path().join("clean");
    pristine(&clean);
    let journal = newest_journal(&clean);
    let bytes = std::fs::read(&journal).unwrap();
    let end = data_len(&bytes);
    let stride = (end / 90).max(1);

    let mut tally: BTreeMap<Outcome, usize> = BTreeMap::new();
    for pos in (0..end).step_by(stride) {
        let trial = root.path().join(format!("at{pos}"));
        copy_dir(&clean, &trial);
        let j = trial.join(journal.file_name().unwrap());
        let mut damaged = bytes[..end].to_vec();
        damaged[pos] ^= 0x5a;
        std::fs::write(&j, &damaged).unwrap();

        let first = try_open(&trial, false);
        assert_eq!(
            try_open(&trial, false),
            first,
            "flip at {pos}: the second open disagrees"
        );
        match first {
            Outcome::Prefix(n) => {
                assert_eq!(n, RECORDS, "flip at {pos}: opened without synced records")
            }
            Outcome::Refused("SyncedRecordsMissing") => {
                let Outcome::Prefix(n) = try_open(&trial, true) else {
                    panic!("flip at {pos}: accepting the loss must open");
                };
                assert!(n < RECORDS);
                assert_eq!(try_open(&trial, false), Outcome::Prefix(n), "flip at {pos}");
            }
            Outcome::Refused(_) => {}
        }
        *tally.entry(first).or_default() += 1;
    }
    eprintln!("journal {end} bytes, flipped every {stride}th byte: {tally:?}");
    assert!(
        tally
            .get(&Outcome::Refused("JournalCorrupt"))
            .copied()
            .unwrap_or(0)
            > 0
    );
}
