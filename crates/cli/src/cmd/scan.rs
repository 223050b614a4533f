//! `statecraft scan [--prefix P] [--after K] [--limit N] [--all]`: live keys
//! in key order from a running server (`GET /v1/state?prefix=&after=&limit=`),
//! one state record per line (NDJSON).
//!
//! Invariant: with `--all`, pages are followed through `next` until it is
//! null, so every live key with the prefix after `--after` is printed once,
//! in order; without it, one page is printed and, when more keys match, the
//! cursor to continue from goes to stderr.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use crate::cmd::remote::{ServerOpts, http_client, http_error, problem_text};

/// Arguments of `statecraft scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Only keys starting with this.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Start after this key (a previous page's `next`).
    #[arg(long, value_name = "KEY")]
    pub after: Option<String>,
    /// Keys per page (1..=1000).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: usize,
    /// Follow `next` until every matching key was printed.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub server: ServerOpts,
}

#[derive(Deserialize)]
struct Page {
    items: Vec<serde_json::Value>,
    next: Option<String>,
}

/// Runs `statecraft scan`.
pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let base = args.server.http_base("scan")?;
    let runtime = crate::cmd::remote::client_runtime()?;
    runtime.block_on(async {
        let client = http_client(args.server.token.as_deref(), Some(Duration::from_secs(60)))?;
        let url = format!("{base}/v1/state");
        let mut after = args.after.clone();
        let stdout = std::io::stdout();
        let mut count = 0u64;
        loop {
            let limit = args.limit.to_string();
            let mut query = vec![("prefix", args.prefix.as_str()), ("limit", limit.as_str())];
            if let Some(a) = &after {
                query.push(("after", a.as_str()));
            }
            let resp = client
                .get(&url)
                .query(&query)
                .send()
                .await
                .map_err(|e| http_error(e, &base))?;
            if !resp.status().is_success() {
                anyhow::bail!("GET {url}: {}", problem_text(resp).await);
            }
            let page: Page = resp.json().await.map_err(|e| http_error(e, &base))?;
            let mut out = stdout.lock();
            for item in &page.items {
                writeln!(out, "{item}").context("writing to stdout")?;
            }
            out.flush().context("writing to stdout")?;
            count += page.items.len() as u64;
            match page.next {
                Some(next) if args.all => after = Some(next),
                Some(next) => {
                    eprintln!("more keys match: continue with --after {next:?} (or pass --all)");
                    break;
                }
                None => break,
            }
        }
        if args.all {
            eprintln!("{count} keys");
        }
        Ok(ExitCode::SUCCESS)
    })
}
