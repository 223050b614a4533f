//! Your state management system, lesson by lesson.
//!
//! It speaks the Statecraft pipe protocol: events arrive on stdin, one JSON
//! object per line; every event gets exactly one reply on stdout once its effect
//! is applied; commands (`get`, `stats`, `sync`) are answered after every earlier
//! event has its reply; at end of input it finishes what is queued and exits 0.
//! Logs go to stderr (`eprintln!`), never stdout.
//!
//! It runs as it is and passes `statecraft check 1`'s protocol objective. The
//! interesting parts are left to you, marked `TODO: YOUR CODE HERE`; each has a
//! naive default in place so the program keeps working while you build.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Notify};

/// The settings the checker passes in the environment.
#[derive(Debug, Clone)]
#[allow(dead_code)] // max_batch, max_wait, overflow: yours to use in lessons 2 and 3
struct Settings {
    workers: usize,
    max_batch: usize,
    max_wait: Duration,
    capacity: usize,
    overflow: String,
    apply_delay: Duration,
    apply_cpu: bool,
}

/// An integer setting; the default when unset.
fn setting(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        // TODO: YOUR CODE HERE (lesson 9) — refuse a bad value with a message
        // naming the variable on stderr and a non-zero exit, before doing anything.
        Ok(raw) if !raw.is_empty() => raw.parse().unwrap_or(default),
        _ => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            workers: setting("STATECRAFT_WORKERS", 4).max(1) as usize,
            max_batch: setting("STATECRAFT_MAX_BATCH", 100).max(1) as usize,
            max_wait: Duration::from_millis(setting("STATECRAFT_MAX_WAIT_MS", 5)),
            capacity: setting("STATECRAFT_QUEUE_CAPACITY", 1000).max(1) as usize,
            overflow: std::env::var("STATECRAFT_OVERFLOW").unwrap_or_else(|_| "block".into()),
            apply_delay: Duration::from_micros(setting("STATECRAFT_APPLY_DELAY_US", 0)),
            apply_cpu: std::env::var("STATECRAFT_APPLY_MODE").as_deref() == Ok("cpu"),
        }
    }
}

/// One event as read from stdin.
#[derive(Debug)]
struct Event {
    id: String,
    key: String,
    op: String,
    value: Value,
}

/// What the reader, the workers and the commands share.
struct Shared {
    settings: Settings,
    /// key → (value, version).
    state: Mutex<HashMap<String, (Value, u64)>>,
    /// Events admitted and not yet replied to; commands wait for 0.
    outstanding: AtomicUsize,
    /// Notified whenever `outstanding` drops to 0.
    drained: Notify,
    batches: AtomicU64,
    max_depth: AtomicUsize,
    /// Lines for the stdout writer task; `None` tells it to flush and stop.
    out: mpsc::UnboundedSender<Option<String>>,
}

impl Shared {
    fn reply(&self, lines: Vec<Value>) {
        for line in lines {
            // The writer only stops after main sends `None`, at the very end.
            let _ = self.out.send(Some(line.to_string()));
        }
    }

    async fn wait_drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.outstanding.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A worker's queue: the sending side and how deep it is.
struct Queue {
    // TODO: YOUR CODE HERE (lesson 3) — a bounded channel (`mpsc::channel(capacity)`)
    // with the OVERFLOW policy in `admit` (`send().await` blocks, `try_send` can
    // refuse). An unbounded queue grows with the offered load, and so does memory.
    tx: mpsc::UnboundedSender<Event>,
    depth: Arc<AtomicUsize>,
}

/// Which worker owns this key.
fn route(_key: &str, _workers: usize) -> usize {
    // TODO: YOUR CODE HERE (lesson 1) — spread keys over the workers so that one
    // key always goes to the same worker (why does that matter?).
    0
}

fn admit(shared: &Shared, queues: &[Queue], event: Event) {
    let queue = &queues[route(&event.key, queues.len())];
    shared.outstanding.fetch_add(1, Ordering::SeqCst);
    let depth = queue.depth.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_depth.fetch_max(depth, Ordering::SeqCst);
    // The workers outlive the reader, so the receiver is still there.
    let _ = queue.tx.send(event);
}

/// The next batch for one worker; `None` when the queue is closed and empty.
async fn collect_batch(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    _settings: &Settings,
) -> Option<Vec<Event>> {
    let first = rx.recv().await?;
    let batch = vec![first];
    // TODO: YOUR CODE HERE (lesson 2) — also take what is already queued, up to
    // max_batch events, waiting at most max_wait after the first one (a fixed
    // deadline for the whole batch: `tokio::time::timeout_at`).
    Some(batch)
}

fn apply(state: &mut HashMap<String, (Value, u64)>, event: &Event) {
    let entry = state.entry(event.key.clone()).or_insert((Value::Null, 0));
    match event.op.as_str() {
        "incr" => {
            let by = event.value.as_i64().unwrap_or(1);
            entry.0 = json!(entry.0.as_i64().unwrap_or(0) + by);
        }
        _ => entry.0 = event.value.clone(),
    }
    entry.1 += 1;
}

/// The checker plays a slow consumer with APPLY_DELAY_US (per event).
async fn slow_down(settings: &Settings, n: usize) {
    let total = settings.apply_delay * n as u32;
    if total.is_zero() {
        return;
    }
    if settings.apply_cpu {
        let end = Instant::now() + total;
        while Instant::now() < end {}
    } else {
        tokio::time::sleep(total).await;
    }
}

async fn worker(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Event>,
    depth: Arc<AtomicUsize>,
) {
    while let Some(batch) = collect_batch(&mut rx, &shared.settings).await {
        depth.fetch_sub(batch.len(), Ordering::SeqCst);
        {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            for event in &batch {
                apply(&mut state, event);
            }
        }
        slow_down(&shared.settings, batch.len()).await;
        shared.batches.fetch_add(1, Ordering::SeqCst);
        shared.reply(batch.iter().map(|e| json!({"ack": e.id})).collect());
        if shared.outstanding.fetch_sub(batch.len(), Ordering::SeqCst) == batch.len() {
            shared.drained.notify_waiters();
        }
    }
}

async fn command(shared: &Shared, cmd: &Value) {
    if cmd["cmd"].as_str() == Some("ping") {
        // The one command answered at once: it shows the reader is responsive.
        shared.reply(vec![json!({"pong": true})]);
        return;
    }
    shared.wait_drained().await; // every earlier event has its reply
    let reply = match cmd["cmd"].as_str() {
        Some("get") => {
            let key = cmd["key"].as_str().unwrap_or_default();
            let state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            let (value, version) = state.get(key).cloned().unwrap_or((Value::Null, 0));
            json!({"key": key, "value": value, "version": version})
        }
        Some("stats") => json!({"stats": {
            "batches": shared.batches.load(Ordering::SeqCst),
            "max_queue_depth": shared.max_depth.load(Ordering::SeqCst),
            "capacity": shared.settings.capacity,
        }}),
        Some("sync") => json!({"synced": true}),
        other => json!({"error": format!("unknown command {other:?}")}),
    };
    shared.reply(vec![reply]);
}

fn parse_event(message: &Value) -> Option<Event> {
    Some(Event {
        id: message["id"].as_str()?.to_string(),
        key: message["key"].as_str()?.to_string(),
        op: message["op"].as_str()?.to_string(),
        value: message.get("value").cloned().unwrap_or(Value::Null),
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let settings = Settings::from_env();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Option<String>>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::BufWriter::new(tokio::io::stdout());
        while let Some(line) = out_rx.recv().await {
            let Some(line) = line else { break };
            stdout.write_all(line.as_bytes()).await?;
            stdout.write_all(b"\n").await?;
            if out_rx.is_empty() {
                stdout.flush().await?;
            }
        }
        stdout.flush().await
    });
    let shared = Arc::new(Shared {
        settings: settings.clone(),
        state: Mutex::new(HashMap::new()),
        outstanding: AtomicUsize::new(0),
        drained: Notify::new(),
        batches: AtomicU64::new(0),
        max_depth: AtomicUsize::new(0),
        out: out_tx.clone(),
    });
    let mut queues = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..settings.workers {
        let (tx, rx) = mpsc::unbounded_channel();
        let depth = Arc::new(AtomicUsize::new(0));
        workers.push(tokio::spawn(worker(Arc::clone(&shared), rx, Arc::clone(&depth))));
        queues.push(Queue { tx, depth });
    }

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            shared.reply(vec![json!({"error": "line is not JSON"})]);
            continue;
        };
        if message.get("cmd").is_some() {
            command(&shared, &message).await;
        } else if let Some(event) = parse_event(&message) {
            admit(&shared, &queues, event);
        } else {
            shared.reply(vec![json!({"error": "not an event"})]);
        }
    }
    // End of input: finish what is queued, reply, exit 0.
    shared.wait_drained().await;
    drop(queues); // closes the queues: the workers' loops end
    for w in workers {
        let _ = w.await;
    }
    let _ = out_tx.send(None);
    writer.await.map_err(std::io::Error::other)??;
    Ok(())
}
