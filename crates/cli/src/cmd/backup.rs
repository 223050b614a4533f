//! `statecraft backup --data-dir SRC DIR`: an offline backup. Opens the store
//! in SRC directly (as the engine does at start: recovery replays its log),
//! writes a consistent copy into DIR (which must be empty or absent) with
//! `Engine::backup`, and closes the store.
//!
//! Invariant: SRC is never opened by two processes. The store holds a lock
//! on its directory; when a running `statecraft serve` holds it, the backup
//! is refused with a message saying so — it does not wait, and it does not
//! copy files behind the server's back. (Back up a running server by
//! stopping it first; an online backup route is not part of the API yet.)

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use statecraft_engine::{Engine, EngineError};
use statecraft_store::StoreError;

/// Arguments of `statecraft backup`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The backup is offline: it opens the data directory itself, so no \
`statecraft serve` may be running on it (the store's lock refuses a second opener, and the \
command says so). Opening recovers the store as a restart would (it replays the logged \
batches) before copying. The backup directory opens as a data dir: \
`statecraft serve --data-dir DIR`."
)]
pub struct BackupArgs {
    /// The data directory to back up (no server may be running on it).
    #[arg(
        long,
        env = "STATECRAFT_DATA_DIR",
        default_value = "./statecraft-data",
        value_name = "SRC"
    )]
    pub data_dir: PathBuf,
    /// Where to write the backup (created; must be empty if it exists).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Runs `statecraft backup`.
pub fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.data_dir.is_dir(),
        "{} is not a data directory (pass --data-dir SRC)",
        args.data_dir.display()
    );
    if let Ok(mut entries) = std::fs::read_dir(&args.dir) {
        anyhow::ensure!(
            entries.next().is_none(),
            "{} is not empty: a backup goes into an empty or new directory",
            args.dir.display()
        );
    }
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
                    "{} is in use (is `statecraft serve` running on it?): stop the server first; \
                     `statecraft backup` opens the store offline",
                    path.display()
                ),
                other => anyhow::anyhow!("opening {}: {other}", args.data_dir.display()),
            })?;
        let result = engine.backup(&args.dir).await;
        let closed = engine.shutdown().await;
        let report =
            result.with_context(|| format!("writing the backup to {}", args.dir.display()))?;
        closed.context("closing the store")?;
        println!(
            "backed up {} to {}: {} keys, {} log records, {} bytes in {:.2} s",
            args.data_dir.display(),
            args.dir.display(),
            report.keys,
            report.log_records,
            report.bytes,
            report.duration.as_secs_f64()
        );
        Ok(ExitCode::SUCCESS)
    })
}
