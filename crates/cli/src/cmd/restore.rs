//! `statecraft restore BACKUP DATA_DIR`: puts a backup (from `statecraft
//! backup`, online or offline) in place as a data directory, then opens it
//! once — recovery replays its log as a restart would — to prove it is
//! whole before a server is started on it.
//!
//! Invariants: BACKUP is only read (it stays a valid backup, restorable
//! again); DATA_DIR must be absent or empty (a restore never mixes with, or
//! overwrites, an existing store); every copied file and directory is
//! fsynced before the store is opened.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use statecraft_engine::{Engine, EngineError};
use statecraft_store::StoreError;

/// Arguments of `statecraft restore`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "No server may be running on DATA_DIR. After the restore, start the server \
with `statecraft serve --data-dir DATA_DIR`: it holds the state as of the backup's instant."
)]
pub struct RestoreArgs {
    /// The backup directory (written by `statecraft backup`).
    #[arg(value_name = "BACKUP")]
    pub backup: PathBuf,
    /// The data directory to create (must be absent or empty).
    #[arg(value_name = "DATA_DIR")]
    pub data_dir: PathBuf,
}

/// Runs `statecraft restore`.
pub fn run(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.backup.is_dir(),
        "{} is not a backup directory",
        args.backup.display()
    );
    crate::cmd::remote::ensure_empty_dir(&args.data_dir, "a restore")?;
    let (files, bytes) = copy_tree(&args.backup, &args.data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async {
        let engine = Engine::builder()
            .data_dir(&args.data_dir)
            .open()
            .await
            .map_err(|e| match e {
                EngineError::Store(StoreError::Locked { path }) => anyhow::anyhow!(
                    "{} is in use by another process while restoring",
                    path.display()
                ),
                other => anyhow::anyhow!(
                    "the restored {} does not open ({other}); is {} a backup?",
                    args.data_dir.display(),
                    args.backup.display()
                ),
            })?;
        let keys = engine
            .stats()
            .durability
            .map_or(0, |d| d.recovery_records);
        engine.shutdown().await.context("closing the store")?;
        println!(
            "restored {} into {}: {files} files, {bytes} bytes; it opens ({keys} log records replayed)",
            args.backup.display(),
            args.data_dir.display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Copies the tree under `from` into `to` (created), fsyncing every file and
/// directory. Returns (files, bytes).
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<(u64, u64)> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let (mut files, mut bytes) = (0u64, 0u64);
    for entry in std::fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let entry = entry.with_context(|| format!("listing {}", from.display()))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .with_context(|| format!("reading {}", src.display()))?;
        if kind.is_dir() {
            let (f, b) = copy_tree(&src, &dst)?;
            files += f;
            bytes += b;
        } else if kind.is_file() {
            bytes += std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
            std::fs::File::open(&dst)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("syncing {}", dst.display()))?;
            files += 1;
        }
    }
    std::fs::File::open(to)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", to.display()))?;
    Ok((files, bytes))
}
