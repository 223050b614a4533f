//! The synced watermark: a small sidecar file naming, per shard, the highest
//! log seq that a successful [`Store::sync`](crate::Store::sync) covered.
//!
//! Why: fjall recovers its journal in `TolerateCorruptTail` mode, which cannot
//! tell a torn tail (expected after a crash; only unsynced batches are lost)
//! from damage in the middle of the journal (which silently drops *synced*
//! batches after it — fjall-rs/fjall#311). Acknowledged events must not vanish
//! silently, so open compares what was recovered against this file and
//! refuses with [`StoreError::SyncedRecordsMissing`] when a shard comes back
//! below its watermark.
//!
//! Invariants: the file is written only *after* the journal sync it describes
//! succeeded, so it can be stale (lower) but never ahead of durable data: no
//! false alarms. It is not fsynced and not a log — one `pwrite` of a few dozen
//! bytes per sync that appended something. A torn or unreadable file is
//! ignored with a warning (detection lost, never a false refusal).
//!
//! Layout: `b"SCWM"`, version 1, shard count (u16 BE), then per shard
//! shard (u16 BE) ++ seq (u64 BE), then an FNV-1a 64 checksum (u64 BE) of all
//! the preceding bytes.
//!
//! [`StoreError::SyncedRecordsMissing`]: crate::StoreError::SyncedRecordsMissing

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

/// File name inside the data directory.
pub(crate) const FILE_NAME: &str = "statecraft-synced";
const MAGIC: &[u8; 4] = b"SCWM";
const VERSION: u8 = 1;

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(crate) fn encode(marks: &BTreeMap<u16, u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(7 + marks.len() * 10 + 8);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    let n = u16::try_from(marks.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    for (shard, seq) in marks.iter().take(usize::from(n)) {
        out.extend_from_slice(&shard.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
    }
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_be_bytes());
    out
}

/// Decodes a watermark file; `None` if it is torn, foreign or damaged.
pub(crate) fn decode(bytes: &[u8]) -> Option<BTreeMap<u16, u64>> {
    let header = bytes.get(..7)?;
    if &header[..4] != MAGIC || header[4] != VERSION {
        return None;
    }
    let n = usize::from(u16::from_be_bytes([header[5], header[6]]));
    let body_end = 7 + n * 10;
    let body = bytes.get(..body_end)?;
    let sum: [u8; 8] = bytes.get(body_end..body_end + 8)?.try_into().ok()?;
    if fnv1a(body) != u64::from_be_bytes(sum) {
        return None;
    }
    let mut marks = BTreeMap::new();
    for e in body[7..].chunks_exact(10) {
        let shard = u16::from_be_bytes([e[0], e[1]]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&e[2..]);
        marks.insert(shard, u64::from_be_bytes(seq));
    }
    Some(marks)
}

/// Reads the watermark of the data dir at `dir`; empty if there is none or it
/// cannot be trusted.
pub(crate) fn read(dir: &Path) -> BTreeMap<u16, u64> {
    let path = dir.join(FILE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) => decode(&bytes).unwrap_or_else(|| {
            tracing::warn!(path = %path.display(), "synced watermark is damaged; ignoring it");
            BTreeMap::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the synced watermark; ignoring it");
            BTreeMap::new()
        }
    }
}

/// The writer side, owned by the store.
#[derive(Debug)]
pub(crate) struct Watermark {
    path: PathBuf,
    /// The open file and what it last received; `None` until the first write.
    state: Mutex<(Option<File>, BTreeMap<u16, u64>)>,
}

impl Watermark {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(FILE_NAME),
            state: Mutex::default(),
        }
    }

    /// Records `marks` (seqs covered by a sync that just succeeded), if they
    /// move anything forward. Failures are logged, not returned: the file only
    /// serves detection, and a stale file causes no false alarm.
    pub(crate) fn advance(&self, marks: &BTreeMap<u16, u64>) {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (file, written) = &mut *guard;
        let mut changed = false;
        for (&shard, &seq) in marks {
            let e = written.entry(shard).or_insert(0);
            if seq > *e {
                *e = seq;
                changed = true;
            }
        }
        if !changed {
            return;
        }
        let bytes = encode(written);
        if file.is_none() {
            match std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&self.path)
            {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot open the synced watermark");
                    return;
                }
            }
        }
        if let Some(Err(e)) = file.as_ref().map(|f| write_at_start(f, &bytes)) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the synced watermark");
        }
    }
}

#[cfg(unix)]
fn write_at_start(f: &File, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(bytes, 0)
}

#[cfg(not(unix))]
fn write_at_start(mut f: &File, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(0))?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(marks in prop::collection::btree_map(any::<u16>(), any::<u64>(), 0..20)) {
            prop_assert_eq!(decode(&encode(&marks)), Some(marks));
        }

        #[test]
        fn damage_is_detected(marks in prop::collection::btree_map(any::<u16>(), any::<u64>(), 1..8), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut bytes = encode(&marks);
            let i = flip.index(bytes.len());
            bytes[i] ^= 1 << bit;
            prop_assert_eq!(decode(&bytes), None);
            prop_assert_eq!(decode(&bytes[..i]), None);
        }
    }

    #[test]
    fn trailing_bytes_of_an_older_longer_write_are_ignored() {
        let long: BTreeMap<u16, u64> = (0..5).map(|s| (s, 10)).collect();
        let short: BTreeMap<u16, u64> = [(0, 11)].into();
        let mut bytes = encode(&long);
        let new = encode(&short);
        bytes[..new.len()].copy_from_slice(&new);
        assert_eq!(decode(&bytes), Some(short));
    }
}
