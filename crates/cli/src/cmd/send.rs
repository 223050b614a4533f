//! `statecraft send [FILE|-]`: NDJSON events (or one JSON array of events,
//! as `POST /v1/events` also takes) from a file or stdin to a running server, streamed in batches — over HTTP (`POST /v1/events`, one
//! request at a time) or over TCP (`--server tcp://…`, NDJSON frames
//! pipelined on one connection). A progress bar on stderr when it is a
//! terminal; a summary of the results by status at the end.
//!
//! Invariants:
//! - Per-key order is the file's order: HTTP sends one batch at a time, and
//!   TCP frames on one connection are admitted in order.
//! - Every non-blank line is one event and gets exactly one counted result
//!   (blank lines are skipped here exactly as the server skips them, so the
//!   i-th result belongs to the i-th non-blank line and rejections can name
//!   their line).
//! - The exit status is 1 when any event was rejected or overloaded (unless
//!   `--allow-errors`), 2 when the send itself failed.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::BytesMut;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use statecraft_engine::{AckMode, EventResult};
use statecraft_server::ClientError;
use statecraft_server::client::{ClientOptions, TcpClient};
use statecraft_server::protocol::{ErrorCode, ServerFrame};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{Semaphore, mpsc};

use crate::cmd::remote::{Endpoint, ServerOpts, http_client, http_error, problem_text, tcp_error};

/// Arguments of `statecraft send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// NDJSON file of events (or one JSON array of events, read whole); `-`
    /// or nothing reads stdin.
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerOpts,
    /// When the server answers: durable, applied, none [default: the server's].
    #[arg(long, value_parser = parse_ack)]
    pub ack: Option<AckMode>,
    /// Events per request (HTTP) or frame (TCP).
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    pub batch: usize,
    /// TCP: frames sent ahead of their answers.
    #[arg(long, default_value_t = 16, value_name = "W")]
    pub window: usize,
    /// Exit 0 even when events were rejected or overloaded.
    #[arg(long)]
    pub allow_errors: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Rejections to print with their line number (stderr).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub show_errors: usize,
}

fn parse_ack(s: &str) -> Result<AckMode, String> {
    AckMode::parse(s).ok_or_else(|| format!("`{s}`: expected durable, applied or none"))
}

/// Results by status, and the first rejections with their line numbers.
#[derive(Debug, Default)]
struct Summary {
    events: u64,
    by_status: BTreeMap<String, u64>,
    rejected_by_code: BTreeMap<String, u64>,
    shown: usize,
    show_max: usize,
}

impl Summary {
    fn count(&mut self, line: u64, status: &str, code: Option<&str>, message: Option<&str>) {
        self.events += 1;
        *self.by_status.entry(status.to_owned()).or_default() += 1;
        if status == "rejected" {
            let code = code.unwrap_or("unknown");
            *self.rejected_by_code.entry(code.to_owned()).or_default() += 1;
        }
        if matches!(status, "rejected" | "overloaded") && self.shown < self.show_max {
            self.shown += 1;
            eprintln!(
                "line {line}: {status}{}{}",
                code.map(|c| format!(" ({c})")).unwrap_or_default(),
                message.map(|m| format!(": {m}")).unwrap_or_default()
            );
        }
    }

    fn failed(&self) -> u64 {
        self.by_status.get("rejected").copied().unwrap_or(0)
            + self.by_status.get("overloaded").copied().unwrap_or(0)
    }
}

/// A batch of lines read from the input.
struct Chunk {
    /// The NDJSON bytes (non-blank lines only, each ending in `\n`).
    body: BytesMut,
    /// The 1-based input line number of each event.
    lines: Vec<u64>,
    /// Input bytes consumed (for the progress bar).
    bytes_read: u64,
}

/// Reads NDJSON lines into chunks of `batch` events.
struct ChunkReader {
    input: BufReader<Box<dyn AsyncRead + Unpin + Send>>,
    line_no: u64,
    batch: usize,
    line: Vec<u8>,
    done: bool,
}

impl ChunkReader {
    async fn next(&mut self) -> anyhow::Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        let mut chunk = Chunk {
            body: BytesMut::with_capacity(self.batch * 64),
            lines: Vec::with_capacity(self.batch),
            bytes_read: 0,
        };
        while chunk.lines.len() < self.batch {
            self.line.clear();
            let n = self
                .input
                .read_until(b'\n', &mut self.line)
                .await
                .context("reading the input")?;
            if n == 0 {
                self.done = true;
                break;
            }
            self.line_no += 1;
            chunk.bytes_read += n as u64;
            let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            chunk.body.extend_from_slice(text);
            chunk.body.extend_from_slice(b"\n");
            chunk.lines.push(self.line_no);
        }
        Ok((!chunk.lines.is_empty() || chunk.bytes_read > 0).then_some(chunk))
    }
}

/// When the input is one JSON array (its first non-blank byte is `[`), reads
/// it whole and turns it into NDJSON, one element per line (so "line N" in
/// messages is the N-th element); otherwise passes the input through.
async fn array_as_ndjson(
    mut input: BufReader<Box<dyn AsyncRead + Unpin + Send>>,
) -> anyhow::Result<BufReader<Box<dyn AsyncRead + Unpin + Send>>> {
    use tokio::io::AsyncReadExt as _;
    // Skip leading whitespace to see the first byte.
    let first = loop {
        let buf = input.fill_buf().await.context("reading the input")?;
        if buf.is_empty() {
            return Ok(input);
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break buf[i],
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    };
    if first != b'[' {
        return Ok(input);
    }
    let mut raw = Vec::new();
    input
        .read_to_end(&mut raw)
        .await
        .context("reading the input")?;
    let items: Vec<serde_json::Value> = serde_json::from_slice(&raw)
        .context("the input starts with `[` but is not one JSON array of events")?;
    let mut ndjson = Vec::with_capacity(raw.len() + items.len());
    for item in &items {
        serde_json::to_writer(&mut ndjson, item).context("re-encoding an array element")?;
        ndjson.push(b'\n');
    }
    let cursor: Box<dyn AsyncRead + Unpin + Send> = Box::new(std::io::Cursor::new(ndjson));
    Ok(BufReader::new(cursor))
}

/// Runs `statecraft send`.
pub fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(args.window >= 1, "--window must be at least 1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(send(args))
}

async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let (input, size): (Box<dyn AsyncRead + Unpin + Send>, Option<u64>) = match &args.file {
        Some(path) if path.as_os_str() != "-" => {
            let file = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("opening {}", path.display()))?;
            let size = file.metadata().await.ok().map(|m| m.len());
            (Box::new(file), size)
        }
        _ => (Box::new(tokio::io::stdin()), None),
    };
    let input = array_as_ndjson(BufReader::with_capacity(256 << 10, input)).await?;
    let mut reader = ChunkReader {
        input,
        line_no: 0,
        batch: args.batch,
        line: Vec::new(),
        done: false,
    };
    let bar = progress_bar(size);
    let mut summary = Summary {
        show_max: args.show_errors,
        ..Summary::default()
    };
    let started = Instant::now();
    let endpoint = args.server.endpoint()?;
    match &endpoint {
        Endpoint::Http(base) => send_http(&args, base, &mut reader, &mut summary, &bar).await?,
        Endpoint::Tcp(addr) => send_tcp(&args, addr, &mut reader, &mut summary, &bar).await?,
        Endpoint::Redis(_) => anyhow::bail!("`statecraft send` talks to statecraft, not Redis"),
        Endpoint::Nats(url) => send_nats(&args, url, &mut reader, &mut summary, &bar).await?,
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "events": summary.events,
                "seconds": secs,
                "by_status": summary.by_status,
                "rejected_by_code": summary.rejected_by_code,
            })
        );
    } else {
        let parts: Vec<String> = summary
            .by_status
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        println!(
            "sent {} events to {} in {:.2} s: {}",
            summary.events,
            endpoint.url(),
            secs,
            if parts.is_empty() {
                "nothing to send".to_owned()
            } else {
                parts.join(", ")
            }
        );
        if !summary.rejected_by_code.is_empty() {
            let codes: Vec<String> = summary
                .rejected_by_code
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            println!("rejected by code: {}", codes.join(", "));
        }
    }
    Ok(if summary.failed() > 0 && !args.allow_errors {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn progress_bar(size: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(size, ProgressDrawTarget::stderr());
    let template = if size.is_some() {
        "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes}  {msg}"
    } else {
        "{spinner} {elapsed_precise} {bytes} read  {msg}"
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// `--server nats://…`: publishes to a cluster's stream directly (each
/// event a message with `Nats-Msg-Id`; docs/scale-out.md). `--ack` as over
/// HTTP, default `durable` (the stream stored it).
async fn send_nats(
    args: &SendArgs,
    url: &str,
    reader: &mut ChunkReader,
    summary: &mut Summary,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let limits = statecraft_engine::Limits::DEFAULT;
    let producer = statecraft_cluster::Producer::connect(
        url,
        statecraft_cluster::ProducerOptions {
            limits,
            ..Default::default()
        },
    )
    .await
    .with_context(|| format!("connecting to the cluster at {url}"))?;
    let ack = args.ack.unwrap_or(AckMode::Durable);
    while let Some(chunk) = reader.next().await? {
        bar.inc(chunk.bytes_read);
        if chunk.lines.is_empty() {
            continue;
        }
        let items = statecraft_engine::limits::decode_ndjson(&chunk.body, &limits);
        let results = producer
            .publish(items, ack)
            .await
            .with_context(|| format!("publishing to {url}"))?;
        for (r, line) in results.iter().zip(&chunk.lines) {
            let (code, message) = match r {
                EventResult::Rejected { code, message } => {
                    (Some(code.as_str()), Some(message.as_str()))
                }
                _ => (None, None),
            };
            summary.count(*line, r.status(), code, message);
        }
    }
    Ok(())
}

/// One result of an HTTP answer.
#[derive(Deserialize)]
struct Row {
    status: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct Results {
    #[serde(default)]
    results: Vec<Row>,
}

async fn send_http(
    args: &SendArgs,
    base: &str,
    reader: &mut ChunkReader,
    summary: &mut Summary,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let client = http_client(args.server.token.as_deref(), Some(Duration::from_secs(300)))?;
    let url = match args.ack {
        Some(ack) => format!("{base}/v1/events?ack={}", ack.as_str()),
        None => format!("{base}/v1/events"),
    };
    while let Some(chunk) = reader.next().await? {
        bar.inc(chunk.bytes_read);
        if chunk.lines.is_empty() {
            continue;
        }
        let resp = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(chunk.body.freeze())
            .send()
            .await
            .map_err(|e| http_error(e, base))?;
        let status = resp.status();
        // 200 with results; 429/503 carry the (all overloaded) results too.
        if status.is_success() || status.as_u16() == 429 || status.as_u16() == 503 {
            let bytes = resp.bytes().await.map_err(|e| http_error(e, base))?;
            match serde_json::from_slice::<Results>(&bytes) {
                Ok(r) if r.results.len() == chunk.lines.len() => {
                    for (row, line) in r.results.iter().zip(&chunk.lines) {
                        summary.count(
                            *line,
                            &row.status,
                            row.code.as_deref(),
                            row.message.as_deref(),
                        );
                    }
                }
                _ if !status.is_success() => anyhow::bail!(
                    "{base} answered {status} for lines {}..={}",
                    chunk.lines[0],
                    chunk.lines[chunk.lines.len() - 1]
                ),
                _ => {
                    anyhow::bail!("{base} answered with something other than one result per event")
                }
            }
        } else {
            let code = status.as_u16();
            let text = problem_text(resp).await;
            let hint = match code {
                401 => " (pass --token, or set STATECRAFT_AUTH_TOKEN)",
                413 => " (try a smaller --batch)",
                _ => "",
            };
            anyhow::bail!(
                "{base} refused lines {}..={}: {text}{hint}",
                chunk.lines[0],
                chunk.lines[chunk.lines.len() - 1]
            );
        }
        bar.set_message(format!("{} events", summary.events));
    }
    Ok(())
}

/// The line numbers of a frame in flight.
struct Pending {
    lines: Vec<u64>,
}

async fn send_tcp(
    args: &SendArgs,
    addr: &str,
    reader: &mut ChunkReader,
    summary: &mut Summary,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let opts = ClientOptions {
        token: args.server.token.clone(),
        ack: args.ack,
        name: Some("statecraft-send".to_owned()),
    };
    let client = TcpClient::connect_with(addr, opts)
        .await
        .map_err(|e| match e {
            ClientError::Io(io) => tcp_error(&io, addr, "`statecraft serve`"),
            ClientError::Refused(f) if f.code == ErrorCode::Unauthorized => {
                anyhow::anyhow!(
                    "tcp://{addr} refused the connection: {} (pass --token)",
                    f.message
                )
            }
            other => anyhow::anyhow!("tcp://{addr}: {other}"),
        })?;
    let (mut tx, mut rx) = client.split();
    let window = Semaphore::new(args.window);
    let window = &window;
    let (fl_tx, mut fl_rx) = mpsc::unbounded_channel::<Pending>();
    let ack = args.ack;

    let sender = async move {
        while let Some(chunk) = reader.next().await? {
            bar.inc(chunk.bytes_read);
            if chunk.lines.is_empty() {
                continue;
            }
            let Ok(permit) = window.acquire().await else {
                break; // the receiver stopped
            };
            permit.forget();
            let _ = fl_tx.send(Pending { lines: chunk.lines });
            tx.send_ndjson(&chunk.body, ack)
                .await
                .with_context(|| format!("writing to tcp://{addr}"))?;
        }
        // Closing our direction tells the server no more frames come.
        tx.close().await.ok();
        anyhow::Ok(())
    };
    let receiver = async {
        while let Some(pending) = fl_rx.recv().await {
            let answer = rx.recv().await;
            window.add_permits(1);
            match answer {
                Ok(ServerFrame::Ack { results, .. }) if results.len() == pending.lines.len() => {
                    for (r, line) in results.iter().zip(&pending.lines) {
                        let (code, message) = match r {
                            EventResult::Rejected { code, message } => {
                                (Some(code.as_str()), Some(message.as_str()))
                            }
                            _ => (None, None),
                        };
                        summary.count(*line, r.status(), code, message);
                    }
                }
                Ok(ServerFrame::Ack { results, .. }) => {
                    window.close();
                    anyhow::bail!(
                        "tcp://{addr} answered {} results for a frame of {} events",
                        results.len(),
                        pending.lines.len()
                    );
                }
                Ok(ServerFrame::Error(e)) if !e.code.is_fatal() && e.frame_seq.is_some() => {
                    // A malformed frame: its events were not admitted.
                    for line in &pending.lines {
                        summary.count(*line, "rejected", Some("malformed_frame"), Some(&e.message));
                    }
                }
                Ok(ServerFrame::Error(e)) => {
                    window.close();
                    anyhow::bail!("tcp://{addr} sent an error: {}", e.message);
                }
                Ok(ServerFrame::HelloOk(_)) => {
                    window.close();
                    anyhow::bail!("tcp://{addr} sent a second HELLO_OK");
                }
                Err(e) => {
                    window.close();
                    anyhow::bail!(
                        "tcp://{addr}: the connection failed with {} events unanswered: {e}",
                        pending.lines.len()
                    );
                }
            }
            bar.set_message(format!("{} events", summary.events));
        }
        anyhow::Ok(())
    };
    let (sent, received) = tokio::join!(sender, receiver);
    received?;
    sent
}
