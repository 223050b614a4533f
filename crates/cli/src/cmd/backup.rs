//! `statecraft backup`: a consistent copy of a data directory that opens as a
//! data directory (`statecraft restore` puts it in place).
//!
//! Two ways:
//! - **online**, `--server URL DIR`: asks the running server
//!   (`POST /v1/admin/backup`) to write one fjall snapshot of its store —
//!   one instant across every shard — into DIR on the server's host, while
//!   writes go on. Every event acked `durable` before the request is in it.
//! - **offline**, `--data-dir SRC DIR`: opens the store in SRC directly (as
//!   the engine does at start: recovery replays its log), writes the copy
//!   with `Engine::backup`, and closes the store.
//!
//! Invariant: SRC is never opened by two processes. The store holds a lock
//! on its directory; when a running `statecraft serve` holds it, the offline
//! backup is refused with a message that points at `--server` — it does not
//! wait, and it does not copy files behind the server's back.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use statecraft_engine::{Engine, EngineError};
use statecraft_store::StoreError;

use crate::cmd::remote::{Endpoint, http_client, http_error, problem_text};

/// Arguments of `statecraft backup`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Online (server running): `statecraft backup --server http://HOST:PORT DIR` \
asks the server to write a snapshot of its store (one instant across all shards) into DIR \
on the server's host while writes continue (POST /v1/admin/backup, docs/http-api.md). \
Offline (no server): `statecraft backup --data-dir SRC DIR` opens the data directory itself \
(the store's lock refuses it while a server runs there) and recovers it as a restart would \
before copying. Either way DIR opens as a data dir: `statecraft restore DIR DATA_DIR`, or \
`statecraft serve --data-dir DIR`."
)]
pub struct BackupArgs {
    /// Offline: the data directory to back up (no server may be running on it).
    #[arg(
        long,
        env = "STATECRAFT_DATA_DIR",
        default_value = "./statecraft-data",
        value_name = "SRC"
    )]
    pub data_dir: PathBuf,
    /// Online: the running server (http://HOST:PORT) that writes the backup;
    /// DIR is then a path on the server's host.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token, when the server was started with --auth-token.
    #[arg(
        long,
        env = "STATECRAFT_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Where to write the backup (created; must be empty if it exists).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Runs `statecraft backup`.
pub fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    if let Some(server) = &args.server {
        return online(server, &args);
    }
    anyhow::ensure!(
        args.data_dir.is_dir(),
        "{} is not a data directory (pass --data-dir SRC)",
        args.data_dir.display()
    );
    crate::cmd::remote::ensure_empty_dir(&args.dir, "a backup")?;
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
                    "{} is in use (is `statecraft serve` running on it?{}): back a running \
                     server up online with `statecraft backup --server URL DIR`",
                    path.display(),
                    holder(&path)
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

/// `--server URL DIR`: the server writes the backup (`POST /v1/admin/backup`).
fn online(server: &str, args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let base = match Endpoint::parse(server)? {
        Endpoint::Http(base) => base,
        other => anyhow::bail!(
            "`statecraft backup --server` talks to the HTTP API; {} is not an http:// URL",
            other.url()
        ),
    };
    // The server resolves DIR on its host; a relative DIR is taken from this
    // directory (right when client and server share a host).
    let dir = if args.dir.is_absolute() {
        args.dir.clone()
    } else {
        std::env::current_dir()
            .context("reading the current directory")?
            .join(&args.dir)
    };
    let runtime = crate::cmd::remote::client_runtime()?;
    runtime.block_on(async {
        let client = http_client(args.token.as_deref(), None)?;
        let url = format!("{base}/v1/admin/backup");
        let resp = client
            .post(&url)
            .json(&serde_json::json!({ "dir": dir.display().to_string() }))
            .send()
            .await
            .map_err(|e| http_error(e, &base))?;
        if !resp.status().is_success() {
            anyhow::bail!("POST {url}: {}", problem_text(resp).await);
        }
        let report: serde_json::Value = resp.json().await.map_err(|e| http_error(e, &base))?;
        let n = |k: &str| {
            report
                .get(k)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        println!(
            "backed up {base} to {}: {} keys, {} log records, {} bytes in {:.2} s",
            dir.display(),
            n("keys"),
            n("log_records"),
            n("bytes"),
            report
                .get("duration_ms")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0)
                / 1e3
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// What the data directory's pid file says about its holder (`statecraft
/// serve` writes it), as `; held by pid=… started_at_unix=…`, or nothing.
fn holder(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("statecraft.pid"))
        .ok()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .map_or(String::new(), |s| format!(" held by {s}"))
}
