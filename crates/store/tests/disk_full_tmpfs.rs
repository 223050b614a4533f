//! Scenario: the disk fills up. On Linux as root the test mounts a 16 MiB
//! tmpfs, puts a 12 MiB filler file on it, and appends+syncs log records until
//! a write fails. Then: the failure is a clear disk-full error, later writes
//! answer `Poisoned`, reads work; after deleting the filler, a reopened store
//! has every record that was synced and accepts writes again.
//!
//! The filler is larger than what the records take because recovery
//! materializes the replayed records before the old journal can go, and a
//! materialized change costs more journal bytes (~21 bytes of fjall framing
//! per key) than the same change inside a log record: a store that hit a full
//! disk needs free space of about 1.5–2× its unreplayed log to reopen.
//!
//! Not root, or not Linux: skipped with a message. Root but `mount` fails:
//! skipped with a message, unless `CI` is set, where it fails.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use statecraft_store::{Store, StoreError};
use std::{path::Path, process::Command};

const KEYS_PER_RECORD: usize = 300;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount<'a>(&'a Path);

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
}

#[test]
fn disk_full_fails_clearly_loses_nothing_synced_and_recovers_after_space_returns() {
    if !cfg!(target_os = "linux") || !is_root() {
        eprintln!("SKIPPED disk_full_tmpfs: needs root on Linux to mount a tmpfs");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mnt = root.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            !in_ci(),
            "CI is set and running as root, but mounting a tmpfs failed"
        );
        eprintln!("SKIPPED disk_full_tmpfs: `mount -t tmpfs` failed (no CAP_SYS_ADMIN?)");
        return;
    }
    let _mount = Mount(&mnt);

    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0x5au8; 12 << 20]).unwrap();
    let data = mnt.join("data");

    let (store, report) = Store::open(&data, opts()).unwrap();
    let first = report.next_seq;
    let mut synced = first - 1;
    let mut failure = None;
    for seq in first..first + 10_000 {
        let r = store
            .append(&marker_record(0, seq, KEYS_PER_RECORD))
            .and_then(|()| store.sync());
        match r {
            Ok(()) => synced = seq,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("the tmpfs fills up");
    eprintln!("after {} synced records: {failure}", synced + 1 - first);
    assert!(
        failure.is_disk_full(),
        "not reported as disk full: {failure:?}"
    );
    assert!(
        synced >= first,
        "some records were synced before the disk filled"
    );

    // Poisoned: writes refused with the cause; reads work.
    let later = store
        .append(&marker_record(0, synced + 100, 1))
        .unwrap_err();
    assert!(matches!(&later, StoreError::Poisoned { .. }), "{later:?}");
    assert!(
        later.is_disk_full(),
        "the cause names the full disk: {later}"
    );
    assert!(matches!(
        store.sync().unwrap_err(),
        StoreError::Poisoned { .. }
    ));
    assert!(store.get(&format!("r{first:06}/0")).is_ok());
    drop(store);

    // Reopening while still full either works or fails clearly — never panics.
    match Store::open(&data, opts()) {
        Ok((s, _)) => assert!(marker_prefix(&s, 0, first, synced + 1, KEYS_PER_RECORD) >= synced),
        Err(e) => eprintln!("reopen while full: {e}"),
    }

    // Space returns: everything synced is there, and writes work again.
    std::fs::remove_file(&filler).unwrap();
    let (store, report) = Store::open(&data, opts()).unwrap();
    let recovered = marker_prefix(&store, 0, first, synced + 1, KEYS_PER_RECORD);
    assert!(
        recovered >= synced,
        "synced up to {synced}, recovered {recovered}"
    );
    let seq = report.next_seq;
    store
        .append(&marker_record(0, seq, KEYS_PER_RECORD))
        .unwrap();
    store.sync().unwrap();
    drop(store);
    let store = open(&data);
    assert_eq!(marker_prefix(&store, 0, first, seq, KEYS_PER_RECORD), seq);
}
