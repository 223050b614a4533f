//! `statecraft watch [--prefix P]`: the change feed of a running server
//! (`GET /v1/watch?prefix=`, Server-Sent Events), printed as NDJSON — one
//! change per line, flushed as it arrives.
//!
//! Invariant: every `change` event's data is printed once, in the order
//! received; a `lagged` event (the watcher fell behind the server's buffer)
//! is reported on stderr with the number of changes missed, and watching
//! goes on. The command ends when the server closes the stream, after
//! `--count` changes, or on Ctrl-C.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use futures::StreamExt;

use crate::cmd::remote::{ServerOpts, http_client, http_error, problem_text};

/// Arguments of `statecraft watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Only keys starting with this.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Stop after this many changes.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub server: ServerOpts,
}

/// One Server-Sent Event being assembled from its lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (empty = "message").
    pub event: String,
    /// `data:` lines joined by `\n`.
    pub data: String,
}

/// Cuts an SSE byte stream into events (the parts of the format the server
/// uses: `event:`, `data:`, comments, blank-line dispatch).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if self.has_data {
                    out.push(std::mem::take(&mut self.current));
                }
                self.current = SseEvent::default();
                self.has_data = false;
            } else if line.starts_with(':') {
                // A comment (keep-alive).
            } else {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => self.current.event = value.to_owned(),
                    "data" => {
                        if self.has_data {
                            self.current.data.push('\n');
                        }
                        self.current.data.push_str(value);
                        self.has_data = true;
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

/// Runs `statecraft watch`.
pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let base = args.server.http_base("watch")?;
    let runtime = crate::cmd::remote::client_runtime()?;
    runtime.block_on(async {
        let client = http_client(args.server.token.as_deref(), None)?;
        let url = format!("{base}/v1/watch");
        let resp = client
            .get(&url)
            .query(&[("prefix", args.prefix.as_str())])
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| http_error(e, &base))?;
        if !resp.status().is_success() {
            anyhow::bail!("GET {url}: {}", problem_text(resp).await);
        }
        let mut stream = resp.bytes_stream();
        let mut parser = SseParser::default();
        let mut seen = 0u64;
        let stdout = std::io::stdout();
        loop {
            let chunk = tokio::select! {
                c = stream.next() => c,
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            };
            let Some(chunk) = chunk else {
                eprintln!("the server closed the stream");
                return Ok(ExitCode::SUCCESS);
            };
            let chunk = chunk.map_err(|e| http_error(e, &base))?;
            for ev in parser.feed(&chunk) {
                match ev.event.as_str() {
                    "change" | "" | "message" => {
                        let mut out = stdout.lock();
                        writeln!(out, "{}", ev.data).context("writing to stdout")?;
                        out.flush().context("writing to stdout")?;
                        seen += 1;
                        if args.count.is_some_and(|n| seen >= n) {
                            return Ok(ExitCode::SUCCESS);
                        }
                    }
                    "lagged" => eprintln!("watch fell behind the server's buffer: {}", ev.data),
                    other => eprintln!("unexpected event `{other}`: {}", ev.data),
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_cut_at_blank_lines_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.feed(b"event: change\ndata: {\"key\"").is_empty());
        let got =
            p.feed(b":\"a\"}\n\n: keep-alive\n\nevent: lagged\r\ndata: {\"missed\":3}\r\n\r\n");
        assert_eq!(
            got,
            vec![
                SseEvent {
                    event: "change".into(),
                    data: "{\"key\":\"a\"}".into()
                },
                SseEvent {
                    event: "lagged".into(),
                    data: "{\"missed\":3}".into()
                },
            ]
        );
    }
}
