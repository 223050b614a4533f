//! Admin routes: `POST /v1/admin/backup` — an online backup of the running
//! engine into a directory on the server's host (docs/http-api.md).
//!
//! Invariant: the backup is one fjall snapshot of every keyspace (one
//! instant across all shards: see `statecraft_store::backup`), taken while
//! writes go on; every event acked `durable` before the request arrived is
//! in it, and what it holds of each shard is a prefix of that shard's log.
//! The target must be an absolute path to an absent or empty directory: the
//! server never writes into a directory that already has entries.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use statecraft_engine::EngineError;
use statecraft_store::StoreError;

use super::{AppState, engine_or_problem};
use crate::problem::Problem;

/// The body of `POST /v1/admin/backup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupRequest {
    /// Absolute path, on the server's host, of an absent or empty directory.
    dir: String,
}

/// `POST /v1/admin/backup {"dir": "/abs/path"}`: writes a consistent copy of
/// the store into `dir` while writes continue; answers what was copied.
pub(crate) async fn backup(
    State(shared): State<AppState>,
    body: Result<axum::Json<BackupRequest>, JsonRejection>,
) -> Result<axum::Json<Value>, Problem> {
    let axum::Json(req) = body.map_err(|e| Problem::bad_request("invalid-json", e.body_text()))?;
    let dir = std::path::PathBuf::from(&req.dir);
    if req.dir.is_empty() || !dir.is_absolute() {
        return Err(Problem::bad_request(
            "invalid-backup-dir",
            format!(
                "dir `{}` must be an absolute path on the server's host",
                req.dir
            ),
        ));
    }
    let engine = engine_or_problem(&shared)?;
    if !engine.is_durable() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "no-data-dir",
            "Nothing to back up",
            "the server runs in memory (no --data-dir): there is no store to back up",
        ));
    }
    let report = engine.backup(dir.clone()).await.map_err(|e| match e {
        EngineError::Store(StoreError::BackupTargetNotEmpty { path }) => Problem::new(
            StatusCode::CONFLICT,
            "backup-target-not-empty",
            "The backup directory is not empty",
            format!(
                "{} is not empty: a backup goes into an absent or empty directory",
                path.display()
            ),
        ),
        other => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "backup-failed",
            "The backup failed",
            format!("writing the backup to {}: {other}", dir.display()),
        ),
    })?;
    tracing::info!(dir = %dir.display(), keys = report.keys, "online backup written");
    Ok(axum::Json(json!({
        "dir": dir.display().to_string(),
        "keys": report.keys,
        "log_records": report.log_records,
        "entries": report.entries,
        "bytes": report.bytes,
        "duration_ms": report.duration.as_secs_f64() * 1e3,
    })))
}
