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
use statecraft_engine::adaptive::AdaptiveConfig;
use statecraft_engine::{
    AckMode, Engine, EngineConfig, Event, EventResult, Limits, OverflowPolicy, Rejection, Ticket,
    router,
};
use tokio::sync::mpsc;

/// Arguments of `statecraft pipe`. Settings come from the environment, as
/// the protocol says (`STATECRAFT_WORKERS`, `STATECRAFT_MAX_BATCH`, …; see
/// [`PIPE_ENV`]).
#[derive(Debug, clap::Args)]
#[command(after_help = settings_help())]
pub struct PipeArgs {}

/// One variable of the pipe protocol's environment and the setting of the
/// settings table (`statecraft_server::config::table`) it maps onto.
#[derive(Debug)]
struct PipeVar {
    /// The variable (LEARNING.md's name, kept exactly).
    env: &'static str,
    /// The table's setting it sets; `None` for the pipe's own settings.
    setting: Option<&'static str>,
    /// The pipe's default (the protocol's, which may differ from serve's).
    default: &'static str,
    /// What it means, and how it differs from the table's setting.
    help: &'static str,
}

/// The pipe protocol's environment. Where a name means something else than
/// the `serve` setting it maps onto, the help says so, and
/// [`Settings::from_lookup`] converts: the conversions are tested below.
const PIPE_ENV: &[PipeVar] = &[
    PipeVar {
        env: "STATECRAFT_WORKERS",
        setting: Some("shards"),
        default: "1",
        help: "shards (serve: STATECRAFT_SHARDS)",
    },
    PipeVar {
        env: "STATECRAFT_MAX_BATCH",
        setting: Some("max_batch"),
        default: "1000",
        help: "most events per batch",
    },
    PipeVar {
        env: "STATECRAFT_MAX_WAIT_MS",
        setting: Some("max_wait_us"),
        default: "5",
        help: "batch deadline after its first event, ms, fractions allowed, at most 10000 (serve: µs)",
    },
    PipeVar {
        env: "STATECRAFT_QUEUE_CAPACITY",
        setting: Some("queue_capacity"),
        default: "10000",
        help: "queue capacity in events, all shards together (serve: per shard)",
    },
    PipeVar {
        env: "STATECRAFT_OVERFLOW",
        setting: Some("overflow"),
        default: "block",
        help: "block | reject | drop_oldest | drop_newest",
    },
    PipeVar {
        env: "STATECRAFT_DATA_DIR",
        setting: Some("data_dir"),
        default: "in memory",
        help: "keep state there; acks wait for fsync",
    },
    PipeVar {
        env: "STATECRAFT_APPLY_DELAY_US",
        setting: Some("apply_delay_us"),
        default: "0",
        help: "time added to each applied event",
    },
    PipeVar {
        env: "STATECRAFT_APPLY_MODE",
        setting: None,
        default: "sleep",
        help: "sleep (an I/O-bound consumer) or cpu (busy work)",
    },
    PipeVar {
        env: "STATECRAFT_TARGET_WAIT_MS",
        setting: Some("target_wait_ms"),
        default: "fixed capacity",
        help: "adaptive capacity: p95 queue wait target, ms, fractions allowed; turns it on",
    },
    PipeVar {
        env: "STATECRAFT_MIN_CAPACITY",
        setting: Some("adaptive_min"),
        default: "1",
        help: "adaptive capacity lower bound, all shards together (serve: per shard)",
    },
    PipeVar {
        env: "STATECRAFT_MAX_CAPACITY",
        setting: Some("adaptive_max"),
        default: "10 × queue capacity",
        help: "adaptive capacity upper bound, all shards together (serve: per shard)",
    },
    PipeVar {
        env: "STATECRAFT_PARTITIONS",
        setting: None,
        default: "1",
        help: "partitions for `seq` offsets and ownership",
    },
    PipeVar {
        env: "STATECRAFT_OWNED",
        setting: None,
        default: "all",
        help: "comma-separated partitions this process owns",
    },
];

/// `pipe --help`'s list of settings, from [`PIPE_ENV`].
fn settings_help() -> String {
    let mut s = String::from("Settings (environment):\n");
    for v in PIPE_ENV {
        s.push_str(&format!(
            "  {:<27} {} (default {})\n",
            v.env, v.help, v.default
        ));
    }
    s
}

/// The pipe's engine-side defaults: the protocol's, not serve's.
const PIPE_WORKERS: usize = 1;
const PIPE_MAX_BATCH: usize = 1_000;
const PIPE_MAX_WAIT_MS: f64 = 5.0;
const PIPE_QUEUE_CAPACITY: usize = 10_000;
/// A short checkpoint cadence keeps restarts after kill -9 quick (lesson 5
/// restarts often, on little data).
/// Lines read from stdin ahead of admission. Small: under `reject` with a
/// stalled consumer, nacks wait behind earlier acks (answers go out in order),
/// so whatever is read ahead stays in memory — a hidden queue the lesson 3
/// `bounded_memory` check measures (4,096 lines of 4 KiB were 16 MiB).
const STDIN_LINES: usize = 256;

const PIPE_CHECKPOINT: (Duration, u64) = (Duration::from_millis(500), 200);

/// The protocol's settings, read from the environment: the engine's
/// (validated by the engine's own [`EngineConfig::validate`]) and the pipe's.
#[derive(Debug, Clone)]
struct Settings {
    engine: EngineConfig,
    partitions: u64,
    owned: Option<Vec<u64>>,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `get` (the environment, or a map in
    /// tests). A value that is not a number, not finite, negative or out of
    /// the engine's bounds is an error naming the variable.
    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let num = |name: &str| -> anyhow::Result<Option<u64>> {
            var(name)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid number"))
                })
                .transpose()
        };
        let size = |name: &str, default: usize| -> anyhow::Result<usize> {
            Ok(num(name)?.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX)))
        };
        // Milliseconds as a float (the protocol allows fractions): finite,
        // not negative, and a representable Duration.
        let millis = |name: &str| -> anyhow::Result<Option<Duration>> {
            let Some(v) = var(name) else { return Ok(None) };
            let ms: f64 = v
                .parse()
                .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid number"))?;
            if !ms.is_finite() || ms < 0.0 {
                anyhow::bail!("{name}={v:?} must be a finite number of ms, 0 or more");
            }
            Duration::try_from_secs_f64(ms / 1e3)
                .map(Some)
                .map_err(|_| anyhow::anyhow!("{name}={v:?} is out of range"))
        };
        let workers = size("STATECRAFT_WORKERS", PIPE_WORKERS)?;
        if workers == 0 {
            anyhow::bail!("STATECRAFT_WORKERS must be at least 1");
        }
        let overflow = match var("STATECRAFT_OVERFLOW") {
            Some(v) => OverflowPolicy::parse(&v).ok_or_else(|| {
                anyhow::anyhow!(
                    "STATECRAFT_OVERFLOW={v:?} is not one of block, reject, drop_oldest, drop_newest"
                )
            })?,
            None => OverflowPolicy::Block,
        };
        // The protocol's capacities are for the whole program; the engine's
        // are per shard.
        let capacity = size("STATECRAFT_QUEUE_CAPACITY", PIPE_QUEUE_CAPACITY)?.max(1);
        let per_shard = |total: usize| total.div_ceil(workers).max(1);
        let adaptive = match millis("STATECRAFT_TARGET_WAIT_MS")? {
            Some(target) => {
                let min = size("STATECRAFT_MIN_CAPACITY", 1)?;
                let max = size("STATECRAFT_MAX_CAPACITY", capacity.saturating_mul(10))?;
                if min > max {
                    anyhow::bail!(
                        "STATECRAFT_MIN_CAPACITY ({min}) is above STATECRAFT_MAX_CAPACITY ({max})"
                    );
                }
                Some(AdaptiveConfig::new(target, per_shard(min), per_shard(max)))
            }
            None => None,
        };
        let partitions = num("STATECRAFT_PARTITIONS")?.unwrap_or(1);
        if partitions == 0 {
            anyhow::bail!("STATECRAFT_PARTITIONS must be at least 1");
        }
        let owned = match var("STATECRAFT_OWNED") {
            Some(v) => Some(
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
            None => None,
        };
        let data_dir = var("STATECRAFT_DATA_DIR").map(std::path::PathBuf::from);
        let engine = EngineConfig {
            shards: workers,
            max_batch: size("STATECRAFT_MAX_BATCH", PIPE_MAX_BATCH)?,
            max_wait: millis("STATECRAFT_MAX_WAIT_MS")?
                .unwrap_or(Duration::from_secs_f64(PIPE_MAX_WAIT_MS / 1e3)),
            queue_capacity: per_shard(capacity),
            overflow,
            apply_delay: Duration::from_micros(num("STATECRAFT_APPLY_DELAY_US")?.unwrap_or(0)),
            apply_delay_busy: match var("STATECRAFT_APPLY_MODE").as_deref() {
                Some("cpu") => true,
                None | Some("sleep") => false,
                Some(v) => anyhow::bail!("STATECRAFT_APPLY_MODE={v:?} is not sleep or cpu"),
            },
            checkpoint_interval: PIPE_CHECKPOINT.0,
            checkpoint_batches: PIPE_CHECKPOINT.1,
            adaptive,
            // With a data dir, acks wait for fsync (lesson 5 on).
            ack: if data_dir.is_some() {
                AckMode::Durable
            } else {
                AckMode::Applied
            },
            data_dir,
            ..EngineConfig::default()
        };
        // The engine's own check (the one `serve` and the builder run),
        // reported under the pipe's variable name.
        engine.validate().map_err(|e| {
            let env = PIPE_ENV
                .iter()
                .find(|v| v.setting == Some(e.setting))
                .map_or(e.setting, |v| v.env);
            anyhow::anyhow!("{env}: {}", e.message)
        })?;
        Ok(Settings {
            engine,
            partitions,
            owned,
        })
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
    let ack = settings.engine.ack;
    let builder = Engine::builder().config(settings.engine.clone());
    let engine = builder.open().await.context("opening the engine")?;
    let limits = engine.config().limits;

    // stdin → lines, on a plain thread (stdin reads block). Bounded: when the
    // engine pushes back, this thread stops reading.
    let (line_tx, mut line_rx) = mpsc::channel::<String>(STDIN_LINES);
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
    let chunk = settings
        .engine
        .max_batch
        .clamp(1, settings.engine.queue_capacity);
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
        "workers": settings.engine.shards,
        "stages_ms": stages,
        "queue_wait_p50_ms": p50 as f64 / 1e3,
        "queue_wait_p95_ms": p95 as f64 / 1e3,
        "results": st.results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    /// Adversary: `inf` reached `Duration::from_secs_f64` (a panic), NaN
    /// and negatives became 0, and an hour-long deadline was accepted.
    #[test]
    fn max_wait_ms_must_be_a_finite_bounded_number() {
        for bad in ["inf", "-inf", "NaN", "-1", "1e300", "10001", "abc"] {
            let err = settings(&[("STATECRAFT_MAX_WAIT_MS", bad)])
                .expect_err(bad)
                .to_string();
            assert!(err.contains("STATECRAFT_MAX_WAIT_MS"), "{bad}: {err}");
        }
        for bad in ["inf", "NaN", "-5"] {
            assert!(
                settings(&[("STATECRAFT_TARGET_WAIT_MS", bad)]).is_err(),
                "{bad}"
            );
        }
        let ok = settings(&[("STATECRAFT_MAX_WAIT_MS", "0.5")]).expect("valid");
        assert_eq!(ok.engine.max_wait, Duration::from_micros(500));
        let ok = settings(&[("STATECRAFT_MAX_WAIT_MS", "10000")]).expect("the bound");
        assert_eq!(ok.engine.max_wait, Duration::from_secs(10));
    }

    /// The protocol's names that mean something else than serve's: the
    /// conversion, explicit.
    #[test]
    fn protocol_names_map_onto_the_engine_settings() {
        let s = settings(&[]).expect("defaults");
        assert_eq!(s.engine.shards, 1);
        assert_eq!(s.engine.max_batch, 1_000);
        assert_eq!(s.engine.max_wait, Duration::from_millis(5));
        assert_eq!(s.engine.queue_capacity, 10_000);
        assert_eq!(s.engine.ack, AckMode::Applied);
        assert!(s.engine.adaptive.is_none());

        let s = settings(&[
            ("STATECRAFT_WORKERS", "4"),
            ("STATECRAFT_QUEUE_CAPACITY", "1000"),
            ("STATECRAFT_TARGET_WAIT_MS", "20"),
            ("STATECRAFT_MIN_CAPACITY", "10"),
            ("STATECRAFT_MAX_CAPACITY", "2000"),
            ("STATECRAFT_DATA_DIR", "/tmp/x"),
        ])
        .expect("valid");
        assert_eq!(s.engine.shards, 4, "WORKERS = shards");
        assert_eq!(s.engine.queue_capacity, 250, "all shards → per shard");
        let a = s.engine.adaptive.expect("a target turns adaptive on");
        assert_eq!(
            (a.target, a.min, a.max),
            (Duration::from_millis(20), 3, 500)
        );
        assert_eq!(s.engine.ack, AckMode::Durable, "a data dir means durable");
    }

    /// Out-of-range values are refused by the engine's own check, under the
    /// pipe's name for the setting.
    #[test]
    fn the_engine_bounds_apply_under_the_pipe_names() {
        let err = settings(&[("STATECRAFT_MAX_BATCH", "0")])
            .expect_err("0")
            .to_string();
        assert!(err.contains("STATECRAFT_MAX_BATCH"), "{err}");
        let err = settings(&[("STATECRAFT_WORKERS", "100000")])
            .expect_err("too many")
            .to_string();
        assert!(err.contains("STATECRAFT_WORKERS"), "{err}");
    }

    #[test]
    fn every_mapped_variable_names_a_setting_of_the_table() {
        let table = statecraft_server::config::table();
        for v in PIPE_ENV {
            if let Some(name) = v.setting {
                assert!(
                    table.iter().any(|r| r.name == name),
                    "{} maps onto {name}, which is not in the table",
                    v.env
                );
            }
            assert!(settings_help().contains(v.env));
        }
    }
}
