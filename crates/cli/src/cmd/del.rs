//! `statecraft del KEY [KEY…]`: deletes keys on a running server
//! (`DELETE /v1/state/{key}`, one `delete` event per key, in order), like
//! Redis' DEL. Prints one JSON line per key: the delete's result.
//!
//! Invariant: exit 0 when every delete applied (deleting a key that is not
//! live applies too: the result says `version: 0`); exit 1 when one was
//! refused (a version conflict with `--if-version`, a rejection, overload),
//! after trying every key; exit 2 when a request failed.

use std::process::ExitCode;
use std::time::Duration;

use crate::cmd::remote::{ServerOpts, encode_key, http_client, http_error, problem_text};

/// Arguments of `statecraft del`.
#[derive(Debug, clap::Args)]
pub struct DelArgs {
    /// The key(s) to delete.
    #[arg(required = true, value_name = "KEY")]
    pub keys: Vec<String>,
    /// Delete only if the key's version is this (0: only if it does not
    /// exist); otherwise the delete is a conflict.
    #[arg(long, value_name = "N")]
    pub if_version: Option<u64>,
    /// When the server answers: durable, applied or none (default: the
    /// server's --ack).
    #[arg(long, value_name = "MODE")]
    pub ack: Option<String>,
    #[command(flatten)]
    pub server: ServerOpts,
}

/// Runs `statecraft del`.
pub fn run(args: DelArgs) -> anyhow::Result<ExitCode> {
    let base = args.server.http_base("del")?;
    let runtime = crate::cmd::remote::client_runtime()?;
    runtime.block_on(async {
        let client = http_client(args.server.token.as_deref(), Some(Duration::from_secs(30)))?;
        let mut query = Vec::new();
        if let Some(v) = args.if_version {
            query.push(("if_version", v.to_string()));
        }
        if let Some(a) = &args.ack {
            query.push(("ack", a.clone()));
        }
        let mut all_applied = true;
        for key in &args.keys {
            let url = format!("{base}/v1/state/{}", encode_key(key));
            let resp = client
                .delete(&url)
                .query(&query)
                .send()
                .await
                .map_err(|e| http_error(e, &base))?;
            let status = resp.status().as_u16();
            match status {
                200 => {
                    let result: serde_json::Value =
                        resp.json().await.map_err(|e| http_error(e, &base))?;
                    println!("{}", serde_json::json!({ "key": key, "result": result }));
                }
                409 | 422 | 503 => {
                    let body: serde_json::Value = resp.json().await.unwrap_or_default();
                    match body.get("result") {
                        Some(result) => {
                            all_applied = false;
                            println!("{}", serde_json::json!({ "key": key, "result": result }));
                        }
                        None => anyhow::bail!(
                            "DELETE {url}: {status}: {}",
                            body.get("detail").and_then(|d| d.as_str()).unwrap_or("")
                        ),
                    }
                }
                _ => anyhow::bail!("DELETE {url}: {}", problem_text(resp).await),
            }
        }
        Ok(if all_applied {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}
