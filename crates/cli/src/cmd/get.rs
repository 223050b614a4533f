//! `statecraft get KEY`: one key's state record from a running server
//! (`GET /v1/state/{key}`), printed as one JSON line.
//!
//! Invariant: exit 0 with the record on stdout when the key is live; exit 1
//! with a message on stderr when it is not; exit 2 when the request failed.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::cmd::remote::{ServerOpts, encode_key, http_client, http_error, problem_text};

/// Arguments of `statecraft get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The key.
    pub key: String,
    #[command(flatten)]
    pub server: ServerOpts,
    /// Print the record indented.
    #[arg(long)]
    pub pretty: bool,
}

/// Runs `statecraft get`.
pub fn run(args: GetArgs) -> anyhow::Result<ExitCode> {
    let base = args.server.http_base("get")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async {
        let client = http_client(args.server.token.as_deref(), Some(Duration::from_secs(30)))?;
        let url = format!("{base}/v1/state/{}", encode_key(&args.key));
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| http_error(e, &base))?;
        match resp.status().as_u16() {
            200 => {
                let record: serde_json::Value =
                    resp.json().await.map_err(|e| http_error(e, &base))?;
                if args.pretty {
                    println!("{}", serde_json::to_string_pretty(&record)?);
                } else {
                    println!("{record}");
                }
                Ok(ExitCode::SUCCESS)
            }
            404 => {
                eprintln!("no live key {:?}", args.key);
                Ok(ExitCode::from(1))
            }
            _ => anyhow::bail!("GET {url}: {}", problem_text(resp).await),
        }
    })
}
