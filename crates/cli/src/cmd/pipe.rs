//! `statecraft pipe`: the real engine speaking the lesson pipe protocol
//! (LEARNING.md "The pipe protocol, version 1", plus the extensions in
//! docs/lesson-format.md) on stdin/stdout. It is the reference every lesson's
//! checks are run against.
//!
//! Layout: a reader thread turns stdin into lines; the main task decodes them,
//! groups what is already waiting into submissions and admits them to the
//! engine (under `block` it waits, so the reader stops and the writer of the
//! pipe feels the backpressure); one writer task answers in admission order —
//! acks once each submission's results are in, and commands only after every
//! earlier event was answered, as the protocol requires.
//!
//! Invariant: every event line gets exactly one `ack`/`nack` line (or an
//! `error` line when it has no id), written by the writer task alone.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use statecraft_engine::{
    AckMode, Engine, Event, EventResult, Limits, OverflowPolicy, Rejection, Ticket, router,
};
use tokio::sync::mpsc;

/// Arguments of `statecraft pipe`. Settings come from the environment, as
/// the protocol says (`STATECRAFT_WORKERS`, `STATECRAFT_MAX_BATCH`, …).
#[derive(Debug, clap::Args)]
#[command(after_help = SETTINGS_HELP)]
pub struct PipeArgs {}

const SETTINGS_HELP: &str = "Settings (environment):
  STATECRAFT_WORKERS          shards (default 1)
  STATECRAFT_MAX_BATCH        most events per batch (default 1000)
  STATECRAFT_MAX_WAIT_MS      batch deadline after its first event (default 5)
  STATECRAFT_QUEUE_CAPACITY   queue capacity in events, all shards together (default 10000)
  STATECRAFT_OVERFLOW         block | reject | drop_oldest | drop_newest (default block)
  STATECRAFT_DATA_DIR         keep state there; acks wait for fsync (default: in memory)
  STATECRAFT_APPLY_DELAY_US   time added to each applied event (default 0)
  STATECRAFT_APPLY_MODE       sleep (an I/O-bound consumer) or cpu (busy work) (default sleep)
  STATECRAFT_TARGET_WAIT_MS   adaptive capacity: p95 queue wait target (default: fixed capacity)
  STATECRAFT_MIN_CAPACITY     adaptive capacity lower bound
  STATECRAFT_MAX_CAPACITY     adaptive capacity upper bound
  STATECRAFT_PARTITIONS       partitions for `seq` offsets and ownership (default 1)
  STATECRAFT_OWNED            comma-separated partitions this process owns (default all)";

/// The protocol's settings, read from the environment.
#[derive(Debug, Clone)]
struct Settings {
    workers: usize,
    max_batch: usize,
    max_wait: Duration,
    capacity: usize,
    overflow: OverflowPolicy,
    data_dir: Option<std::path::PathBuf>,
    apply_delay: Duration,
    apply_cpu: bool,
    adaptive: Option<(Duration, usize, usize)>,
    partitions: u64,
    owned: Option<Vec<u64>>,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid number")),
        _ => Ok(default),
    }
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let workers: usize = env_num("STATECRAFT_WORKERS", 1)?;
        if workers == 0 {
            anyhow::bail!("STATECRAFT_WORKERS must be at least 1");
        }
        let overflow = match std::env::var("STATECRAFT_OVERFLOW") {
            Ok(v) if !v.trim().is_empty() => OverflowPolicy::parse(v.trim()).ok_or_else(|| {
                anyhow::anyhow!(
                    "STATECRAFT_OVERFLOW={v:?} is not one of block, reject, drop_oldest, drop_newest"
                )
            })?,
            _ => OverflowPolicy::Block,
        };
        let target: Option<f64> = match std::env::var("STATECRAFT_TARGET_WAIT_MS") {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().parse().map_err(|_| {
                anyhow::anyhow!("STATECRAFT_TARGET_WAIT_MS={v:?} is not a valid number")
            })?),
            _ => None,
        };
        let capacity: usize = env_num("STATECRAFT_QUEUE_CAPACITY", 10_000)?;
        let adaptive = match target {
            Some(ms) => {
                let min: usize = env_num("STATECRAFT_MIN_CAPACITY", 1)?;
                let max: usize = env_num("STATECRAFT_MAX_CAPACITY", capacity.max(1) * 10)?;
                if min > max {
                    anyhow::bail!(
                        "STATECRAFT_MIN_CAPACITY ({min}) is above STATECRAFT_MAX_CAPACITY ({max})"
                    );
                }
                Some((Duration::from_secs_f64(ms.max(0.0) / 1e3), min, max))
            }
            None => None,
        };
        let partitions: u64 = env_num("STATECRAFT_PARTITIONS", 1)?;
        if partitions == 0 {
            anyhow::bail!("STATECRAFT_PARTITIONS must be at least 1");
        }
        let owned = match std::env::var("STATECRAFT_OWNED") {
            Ok(v) if !v.trim().is_empty() => Some(
                v.split(',')
                    .map(|p| {
                        p.trim().parse::<u64>().map_err(|_| {
                            anyhow::anyhow!(
                                "STATECRAFT_OWNED={v:?}: {p:?} is not a partition number"
                            )
                        })
                    })
                    .collect::<anyhow::Result<Vec<u64>>>()?,
            ),
            _ => None,
        };
        Ok(Settings {
            workers,
            max_batch: env_num("STATECRAFT_MAX_BATCH", 1_000)?,
            max_wait: Duration::from_secs_f64(
                env_num::<f64>("STATECRAFT_MAX_WAIT_MS", 5.0)?.max(0.0) / 1e3,
            ),
            capacity: capacity.max(1),
            overflow,
            data_dir: std::env::var_os("STATECRAFT_DATA_DIR")
                .filter(|v| !v.is_empty())
                .map(Into::into),
            apply_delay: Duration::from_micros(env_num("STATECRAFT_APPLY_DELAY_US", 0)?),
            apply_cpu: match std::env::var("STATECRAFT_APPLY_MODE") {
                Ok(v) if v.trim() == "cpu" => true,
                Ok(v) if v.trim().is_empty() || v.trim() == "sleep" => false,
                Ok(v) => anyhow::bail!("STATECRAFT_APPLY_MODE={v:?} is not sleep or cpu"),
                Err(_) => false,
            },
            adaptive,
            partitions,
            owned,
        })
    }

    /// Per-shard capacity: the protocol's capacity is for the whole program.
    fn shard_capacity(&self) -> usize {
        self.capacity.div_ceil(self.workers).max(1)
    }
}

/// An event line waiting to be admitted: its id, its source position (0 =
/// none) and the decoded event.
type PendingEvent = (String, u64, Result<Event, Rejection>);

/// What the writer answers, in order.
enum Out {
    /// Results of one admitted submission, with the ids of its events.
    Results(Vec<String>, Ticket),
    /// Lines decided without the engine (invalid input, not owner).
    Lines(Vec<Value>),
    /// A command: answered once everything before it was answered.
    Command(Value),
}

/// Runs `statecraft pipe`.
pub fn run(_args: PipeArgs) -> anyhow::Result<ExitCode> {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("statecraft pipe: invalid setting: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(pipe_main(settings))
}

async fn pipe_main(settings: Settings) -> anyhow::Result<ExitCode> {
    let mut builder = Engine::builder()
        .shards(settings.workers)
        .max_batch(settings.max_batch.max(1))
        .max_wait(settings.max_wait)
        .queue_capacity(settings.shard_capacity())
        .overflow(settings.overflow)
        .apply_delay(settings.apply_delay)
        .apply_delay_busy(settings.apply_cpu)
        // A short checkpoint cadence keeps restarts after kill -9 quick.
        .checkpoint(Duration::from_millis(500), 200);
    if let Some((target, min, max)) = settings.adaptive {
        builder = builder.adaptive(
            target,
            min.div_ceil(settings.workers),
            max.div_ceil(settings.workers),
        );
    }
    let ack = match &settings.data_dir {
        Some(dir) => {
            builder = builder.data_dir(dir);
            AckMode::Durable
        }
        None => AckMode::Applied,
    };
    let engine = builder.open().await.context("opening the engine")?;
    let limits = engine.config().limits;

    // stdin → lines, on a plain thread (stdin reads block). Bounded: when the
    // engine pushes back, this thread stops reading.
    let (line_tx, mut line_rx) = mpsc::channel::<String>(4_096);
    std::thread::Builder::new()
        .name("pipe-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                if line_tx.blocking_send(line).is_err() {
                    break;
                }
            }
        })
        .context("starting the stdin reader")?;

    // The writer answers in order. Bounded so that a slow stdout consumer
    // holds admission back too.
    let (out_tx, out_rx) = mpsc::channel::<Out>(1_024);
    let writer = tokio::spawn(write_answers(engine.clone(), settings.clone(), out_rx));

    let mut sigterm = signal_stream()?;
    let chunk = settings.max_batch.clamp(1, settings.shard_capacity());
    let mut pending: Vec<PendingEvent> = Vec::new();
    loop {
        let first = tokio::select! {
            line = line_rx.recv() => line,
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM: finishing what was admitted");
                None
            }
        };
        let Some(first) = first else { break };
        let mut line = Some(first);
        while let Some(l) = line.take() {
            handle_line(&l, &settings, &limits, &mut pending, &out_tx, &engine, ack).await?;
            if pending.len() >= chunk {
                flush(&mut pending, &settings, &engine, ack, &out_tx).await?;
            }
            line = line_rx.try_recv().ok();
        }
        flush(&mut pending, &settings, &engine, ack, &out_tx).await?;
    }
    flush(&mut pending, &settings, &engine, ack, &out_tx).await?;
    drop(out_tx);
    writer.await.context("the writer task")??;
    engine
        .shutdown()
        .await
        .context("shutting the engine down")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
fn signal_stream() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")
}

async fn handle_line(
    line: &str,
    settings: &Settings,
    limits: &Limits,
    pending: &mut Vec<PendingEvent>,
    out: &mpsc::Sender<Out>,
    engine: &Engine,
    ack: AckMode,
) -> anyhow::Result<()> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(());
    }
    let mut value: Value = match serde_json::from_str(trimmed) {
        Ok(v) => v,
        Err(e) => {
            send(
                out,
                Out::Lines(vec![json!({"error": format!("not JSON: {e}")})]),
            )
            .await?;
            return Ok(());
        }
    };
    let Some(obj) = value.as_object_mut() else {
        send(
            out,
            Out::Lines(vec![json!({"error": "a line must be a JSON object"})]),
        )
        .await?;
        return Ok(());
    };
    if obj.get("cmd").and_then(Value::as_str) == Some("ping") {
        // The one command that does not wait for earlier events: it shows
        // the reader is responsive whatever the workers are doing.
        let mut line = b"{\"pong\":true}\n".to_vec();
        write_out(&mut line)?;
        return Ok(());
    }
    if obj.contains_key("cmd") {
        flush(pending, settings, engine, ack, out).await?;
        send(out, Out::Command(value)).await?;
        return Ok(());
    }
    let id = match obj.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    let seq = match obj.remove("seq") {
        None => 0,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or(0),
        Some(_) => {
            let line = match &id {
                Some(id) => {
                    json!({"nack": id, "reason": "invalid", "message": "seq must be a non-negative integer"})
                }
                None => json!({"error": "seq must be a non-negative integer"}),
            };
            send(out, Out::Lines(vec![line])).await?;
            return Ok(());
        }
    };
    let Some(id) = id else {
        send(
            out,
            Out::Lines(vec![json!({"error": "an event needs an id"})]),
        )
        .await?;
        return Ok(());
    };
    let decoded: Result<Event, Rejection> = serde_json::from_value::<Event>(value)
        .map_err(|e| Rejection::new(statecraft_engine::RejectCode::InvalidEvent, e.to_string()))
        .and_then(|e| limits.validate(&e).map(|()| e));
    match decoded {
        Err(r) => {
            send(
                out,
                Out::Lines(vec![
                    json!({"nack": id, "reason": "invalid", "message": r.message}),
                ]),
            )
            .await?;
        }
        Ok(event) => {
            if let Some(owned) = &settings.owned {
                let p = router::fnv1a64(event.key.as_bytes()) % settings.partitions;
                if !owned.contains(&p) {
                    send(
                        out,
                        Out::Lines(vec![json!({"nack": id, "reason": "not_owner"})]),
                    )
                    .await?;
                    return Ok(());
                }
            }
            pending.push((id, seq, Ok(event)));
        }
    }
    Ok(())
}

async fn send(out: &mpsc::Sender<Out>, item: Out) -> anyhow::Result<()> {
    out.send(item)
        .await
        .map_err(|_| anyhow::anyhow!("the writer stopped (stdout closed?)"))
}

/// Admits what is pending, one submission per partition when events carry
/// positions (a source's positions grow per partition).
async fn flush(
    pending: &mut Vec<PendingEvent>,
    settings: &Settings,
    engine: &Engine,
    ack: AckMode,
    out: &mpsc::Sender<Out>,
) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let items = std::mem::take(pending);
    let sourced = items.iter().any(|(_, seq, _)| *seq > 0);
    if !sourced {
        let (ids, events): (Vec<String>, Vec<Result<Event, Rejection>>) =
            items.into_iter().map(|(id, _, e)| (id, e)).unzip();
        let ticket = engine.enqueue_decoded(events, ack).await?;
        return send(out, Out::Results(ids, ticket)).await;
    }
    let mut by_partition: std::collections::BTreeMap<u64, Vec<PendingEvent>> =
        std::collections::BTreeMap::new();
    for item in items {
        let p = match &item.2 {
            Ok(e) => router::fnv1a64(e.key.as_bytes()) % settings.partitions,
            Err(_) => 0,
        };
        by_partition.entry(p).or_default().push(item);
    }
    for (p, items) in by_partition {
        let mut ids = Vec::with_capacity(items.len());
        let mut seqs = Vec::with_capacity(items.len());
        let mut events = Vec::with_capacity(items.len());
        for (id, seq, e) in items {
            ids.push(id);
            seqs.push(seq);
            events.push(e);
        }
        let ticket = engine
            .enqueue_sourced(events, ack, &format!("pipe/{p}"), seqs)
            .await?;
        send(out, Out::Results(ids, ticket)).await?;
    }
    Ok(())
}

fn answer_line(id: &str, r: &EventResult) -> Value {
    match r {
        EventResult::Applied { .. } | EventResult::Accepted => json!({"ack": id}),
        EventResult::Duplicate => json!({"ack": id, "duplicate": true}),
        EventResult::Conflict { current_version } => {
            json!({"nack": id, "reason": "conflict", "current_version": current_version})
        }
        EventResult::Rejected { code, message } => {
            json!({"nack": id, "reason": code.as_str(), "message": message})
        }
        EventResult::Overloaded => json!({"nack": id, "reason": "overloaded"}),
        _ => json!({"nack": id, "reason": r.status()}),
    }
}

/// Writes `buf` to stdout (under its lock) and empties it.
fn write_out(buf: &mut Vec<u8>) -> std::io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(buf)?;
    out.flush()?;
    buf.clear();
    Ok(())
}

async fn write_answers(
    engine: Engine,
    settings: Settings,
    mut rx: mpsc::Receiver<Out>,
) -> anyhow::Result<()> {
    // Answers are built in a buffer and written to stdout under its lock, so
    // a `pong` written by the reader never lands inside another line.
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    let write_value = |buf: &mut Vec<u8>, v: &Value| -> std::io::Result<()> {
        // Serializing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, v);
        buf.push(b'\n');
        Ok(())
    };
    let w = &mut buf;
    while let Some(item) = rx.recv().await {
        match item {
            Out::Results(ids, ticket) => {
                let results = ticket.wait().await;
                for (id, r) in ids.iter().zip(&results) {
                    write_value(w, &answer_line(id, r))?;
                }
            }
            Out::Lines(lines) => {
                for l in &lines {
                    write_value(w, l)?;
                }
            }
            Out::Command(cmd) => {
                let answer = command(&engine, &settings, &cmd).await;
                write_value(w, &answer)?;
            }
        }
        // Answers go out as soon as they are known: an ack is only useful
        // to the producer once it reads it.
        write_out(w)?;
    }
    write_out(w)?;
    Ok(())
}

async fn command(engine: &Engine, settings: &Settings, cmd: &Value) -> Value {
    match cmd.get("cmd").and_then(Value::as_str) {
        Some("get") => {
            let Some(key) = cmd.get("key").and_then(Value::as_str) else {
                return json!({"error": "get needs a key"});
            };
            match engine.get(key).await {
                Ok(Some(rec)) => json!({"key": key, "value": rec.value, "version": rec.version}),
                Ok(None) => json!({"key": key, "value": null, "version": 0}),
                Err(e) => json!({"error": e.to_string()}),
            }
        }
        Some("sync") => match engine.barrier().await {
            Ok(()) => json!({"synced": true}),
            Err(e) => json!({"error": e.to_string()}),
        },
        Some("stats") => json!({"stats": stats_json(engine, settings)}),
        Some(other) => json!({"error": format!("unknown command {other:?}")}),
        None => json!({"error": "cmd must be a string"}),
    }
}

fn stats_json(engine: &Engine, settings: &Settings) -> Value {
    let st = engine.stats();
    let batches: u64 = st.shards.iter().map(|s| s.batches).sum();
    let max_depth: usize = st.shards.iter().map(|s| s.queue.max_depth).sum();
    let capacity: usize = st.shards.iter().map(|s| s.queue.capacity).sum();
    let depth: usize = st.shards.iter().map(|s| s.queue.depth).sum();
    let total_ms = |f: &dyn Fn(&statecraft_engine::stats::ShardStats) -> (f64, u64)| -> f64 {
        st.shards
            .iter()
            .map(|s| {
                let (mean_us, count) = f(s);
                mean_us * count as f64 / 1e3
            })
            .sum()
    };
    let queue_wait = total_ms(&|s| (s.queue_wait_us.mean, s.queue_wait_us.count));
    let apply = total_ms(&|s| (s.apply_us.mean, s.apply_us.count));
    // Recent-window percentiles (the adaptive controller's window) when the
    // engine keeps one, else since start.
    let (p50, p95) = st
        .shards
        .iter()
        .map(|s| (s.recent_wait_p50_us, s.recent_wait_p95_us))
        .fold((0u64, 0u64), |(a, b), (c, d)| (a.max(c), b.max(d)));
    let mut stages = serde_json::Map::new();
    stages.insert("queue_wait".into(), json!(queue_wait));
    stages.insert("apply".into(), json!(apply));
    if let Some(d) = &st.durability {
        stages.insert(
            "commit".into(),
            json!(d.fsync_us.mean * d.fsync_us.count as f64 / 1e3),
        );
    }
    json!({
        "events": st.shards.iter().map(|s| s.events).sum::<u64>(),
        "batches": batches,
        "queue_depth": depth,
        "max_queue_depth": max_depth,
        "capacity": capacity,
        "workers": settings.workers,
        "stages_ms": stages,
        "queue_wait_p50_ms": p50 as f64 / 1e3,
        "queue_wait_p95_ms": p95 as f64 / 1e3,
        "results": st.results,
    })
}
