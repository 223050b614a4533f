//! Consistent backups that open as data directories.
//!
//! Invariant: a backup is the content of every keyspace as of **one** fjall
//! snapshot (one instant across keyspaces), so log records, checkpoint
//! positions and states agree exactly as they did in the live store; opening
//! the backup runs ordinary recovery. Records appended but not yet synced at
//! the snapshot are included — a backup may be ahead of what was acked, never
//! behind what was acked before it started.
//!
//! The copy is written with fjall's bulk ingestion (sorted input straight into
//! fsynced tables), then the target's journal is persisted with `SyncAll`.

use crate::{
    error::{Result, StoreError},
    store::Store,
};
use fjall::{Database, KeyspaceCreateOptions, PersistMode, Readable};
use std::{path::Path, time::Duration};

/// What [`Store::backup`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// Materialized keys copied.
    pub keys: u64,
    /// Log records copied (replayed when the backup is opened).
    pub log_records: u64,
    /// Entries copied across all keyspaces.
    pub entries: u64,
    /// Key and value bytes copied.
    pub bytes: u64,
    /// Wall time.
    pub duration: Duration,
}

impl Store {
    /// Writes a consistent copy of the store into `dir` (created if missing;
    /// refused if it has any entry). The copy opens with [`Store::open`].
    /// Writes and reads on this store go on meanwhile; works while poisoned.
    ///
    /// # Errors
    ///
    /// [`StoreError::BackupTargetNotEmpty`]; I/O errors (the partial copy is
    /// left in `dir` for inspection; it is not a valid backup).
    pub fn backup(&self, dir: impl AsRef<Path>) -> Result<BackupReport> {
        let started = std::time::Instant::now();
        let dir = dir.as_ref();
        let io = |op| move |source| StoreError::Io { op, source };
        if dir.exists() {
            if std::fs::read_dir(dir)
                .map_err(io("listing the backup target"))?
                .next()
                .is_some()
            {
                return Err(StoreError::BackupTargetNotEmpty {
                    path: dir.to_path_buf(),
                });
            }
        } else {
            std::fs::create_dir_all(dir).map_err(io("creating the backup target"))?;
        }

        let inner = &*self.inner;
        let snapshot = inner.db.snapshot();
        let target = Database::builder(dir)
            .worker_threads(1)
            .open()
            .map_err(|e| StoreError::fjall("creating the backup database", e))?;
        let mut report = BackupReport::default();
        for (name, source) in [
            ("log", &inner.log),
            ("state", &inner.state),
            ("dedup", &inner.dedup),
            ("expiry", &inner.expiry),
            ("meta", &inner.meta),
        ] {
            let dest = target
                .keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| StoreError::fjall("creating a backup keyspace", e))?;
            let mut ingestion = dest
                .start_ingestion()
                .map_err(|e| StoreError::fjall("starting a backup ingestion", e))?;
            let mut n = 0u64;
            for guard in snapshot.iter(source) {
                let (k, v) = guard
                    .into_inner()
                    .map_err(|e| StoreError::fjall("reading the snapshot", e))?;
                report.bytes += (k.len() + v.len()) as u64;
                ingestion
                    .write(k, v)
                    .map_err(|e| StoreError::fjall("writing the backup", e))?;
                n += 1;
            }
            ingestion
                .finish()
                .map_err(|e| StoreError::fjall("finishing a backup keyspace", e))?;
            report.entries += n;
            match name {
                "state" => report.keys = n,
                "log" => report.log_records = n,
                _ => {}
            }
        }
        drop(snapshot);
        target
            .persist(PersistMode::SyncAll)
            .map_err(|e| StoreError::fjall("syncing the backup", e))?;
        drop(target);
        report.duration = started.elapsed();
        tracing::info!(
            dir = %dir.display(),
            keys = report.keys,
            log_records = report.log_records,
            bytes = report.bytes,
            ms = report.duration.as_secs_f64() * 1e3,
            "backup written"
        );
        Ok(report)
    }
}
