//! `statecraft get KEY [KEY…]`: state records from a running server
//! (`GET /v1/state/{key}`), one JSON line per key, in the order given (a
//! multi-get, like Redis' MGET: the keys are read concurrently).
//!
//! Invariant: exit 0 with every record on stdout when every key is live;
//! exit 1 when one is not (its line is `{"key":K,"value":null}` with more
//! than one key; with one key, a message on stderr); exit 2 when a request
//! failed.

use std::process::ExitCode;
use std::time::Duration;

use crate::cmd::remote::{ServerOpts, encode_key, http_client, http_error, problem_text};

/// Arguments of `statecraft get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The key(s): more than one is a multi-get, one line per key in order.
    #[arg(required = true, value_name = "KEY")]
    pub keys: Vec<String>,
    #[command(flatten)]
    pub server: ServerOpts,
    /// Print the records indented.
    #[arg(long)]
    pub pretty: bool,
}

/// Runs `statecraft get`.
pub fn run(args: GetArgs) -> anyhow::Result<ExitCode> {
    let base = args.server.http_base("get")?;
    let runtime = crate::cmd::remote::client_runtime()?;
    runtime.block_on(async {
        let client = http_client(args.server.token.as_deref(), Some(Duration::from_secs(30)))?;
        let reads = args.keys.iter().map(|key| {
            let (client, base) = (&client, &base);
            async move {
                let url = format!("{base}/v1/state/{}", encode_key(key));
                let resp = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| http_error(e, base))?;
                match resp.status().as_u16() {
                    200 => {
                        let record: serde_json::Value =
                            resp.json().await.map_err(|e| http_error(e, base))?;
                        Ok(Some(record))
                    }
                    404 => Ok(None),
                    _ => anyhow::bail!("GET {url}: {}", problem_text(resp).await),
                }
            }
        });
        let records = futures::future::try_join_all(reads).await?;
        let mut all_live = true;
        for (key, record) in args.keys.iter().zip(records) {
            let line = match record {
                Some(r) => r,
                None if args.keys.len() == 1 => {
                    eprintln!("no live key {key:?}");
                    return Ok(ExitCode::from(1));
                }
                None => {
                    all_live = false;
                    serde_json::json!({ "key": key, "value": null })
                }
            };
            if args.pretty {
                println!("{}", serde_json::to_string_pretty(&line)?);
            } else {
                println!("{line}");
            }
        }
        Ok(if all_live {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}
