//! The engine: the library API of DESIGN.md §3 (`Engine::builder()…open()`,
//! `submit`, `get`, `scan`, `watch`, `shutdown`) over the router, the shard
//! queues and the shard workers.
//!
//! # Invariants
//!
//! - A submission's events are validated, split by shard in input order, and
//!   each sub-batch is pushed to its shard's queue before the next submission
//!   of the same caller can push: per-key order follows call order.
//! - Every submitted event gets exactly one result, in input order.
//! - After [`Engine::shutdown`] starts, nothing new is admitted; everything
//!   admitted before is applied (and committed) before it returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use futures::Stream;
use rustc_hash::FxHashMap;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::batch::BatchCollector;
use crate::error::EngineError;
use crate::event::{AckMode, Change, EventResult, RejectCode, StateRecord};
use crate::ops::CustomOp;
use crate::persist::{Durability, ShardPersistence, start_committer};
use crate::queue::{PushError, ShardQueue};
use crate::router::shard_of;
use crate::shard::{RestoreBatch, ShardRequest, ShardSettings, ShardState, ShardWorker, SubBatch};
use crate::stats::{EngineStats, ShardMetrics, ShardStats, StatusCounters};
use statecraft_store::BackupReport;

/// Shards → committer channel, applied batches awaiting their fsync. A
/// group commit takes up to `persist::MAX_GROUP` (4,096) records per fsync;
/// 1,024 queued batches keep the next group full while one fsync runs, and
/// a full channel makes the shards wait (back-pressure, no unbounded memory).
const COMMIT_CHANNEL: usize = 1024;

/// Per-shard channel of requests other than writes (get, scan, restore).
/// Each caller awaits its own reply, so 1,024 is far above the concurrent
/// readers one shard serves between two batches; beyond it callers wait
/// (back-pressure) instead of growing memory.
const REQUEST_CHANNEL: usize = 1024;

/// Smallest watch broadcast buffer: `watch_buffer` is clamped up to it, as
/// a buffer of 0 panics in tokio and one of a few changes would make every
/// watcher lag at once.
const MIN_WATCH_BUFFER: usize = 16;

mod config;

/// The error of a blocking task that panicked (a bug, not a setting).
fn panicked(task: &'static str, e: tokio::task::JoinError) -> EngineError {
    EngineError::TaskPanicked {
        task,
        message: e.to_string(),
    }
}

mod admit;

pub use admit::{BlockWait, Submission, Ticket};
pub use config::{EngineBuilder, EngineConfig, SettingError, bounds, check_range};

struct ShardHandle {
    queue: Arc<ShardQueue<SubBatch>>,
    requests: mpsc::Sender<ShardRequest>,
    metrics: Arc<ShardMetrics>,
}

struct Inner {
    config: EngineConfig,
    shards: Vec<ShardHandle>,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// The group committer and checkpointer; they end after the shards.
    commit_threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// The store and durability figures; `None` in memory-only mode and
    /// after shutdown (which closes the store).
    durability: std::sync::RwLock<Option<Arc<Durability>>>,
    changes: broadcast::Sender<Arc<Change>>,
    /// Refusals decided before a shard saw the event (validation, overload).
    admission: StatusCounters,
    applied_total: Arc<AtomicU64>,
    closing: AtomicBool,
}

/// A running engine. Cheap to clone; all clones share the same shards.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

impl Engine {
    /// A builder with the default config.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    fn start(
        config: EngineConfig,
        custom_ops: FxHashMap<std::sync::Arc<str>, CustomOp>,
        durability: Option<Arc<Durability>>,
    ) -> Result<Engine, EngineError> {
        if config.shards == 0 {
            return Err(EngineError::Config("shards must be at least 1".into()));
        }
        let (changes, _) = broadcast::channel(config.watch_buffer.max(MIN_WATCH_BUFFER));
        let custom_ops = Arc::new(custom_ops);
        let applied_total = Arc::new(AtomicU64::new(0));
        let mut shards = Vec::with_capacity(config.shards);
        let mut threads = Vec::with_capacity(config.shards);
        let (commit_tx, commit_threads) = match &durability {
            Some(d) => {
                let (tx, threads) = start_committer(Arc::clone(d), COMMIT_CHANNEL)?;
                (Some(tx), threads)
            }
            None => (None, Vec::new()),
        };
        // Without adaptive capacity the controller only keeps the window of
        // recent waits for stats; its decisions are not applied.
        let controller_config = config.adaptive.unwrap_or_else(|| {
            crate::adaptive::AdaptiveConfig::new(
                crate::adaptive::DEFAULT_TARGET_WAIT,
                1,
                usize::MAX / 2,
            )
        });
        let initial = match config.adaptive {
            Some(a) => config.queue_capacity.clamp(a.min, a.max),
            None => config.queue_capacity,
        };
        for id in 0..config.shards {
            let queue = Arc::new(ShardQueue::new(
                initial,
                config.queue_capacity_bytes,
                config.overflow,
            ));
            let (req_tx, req_rx) = mpsc::channel(REQUEST_CHANNEL);
            let metrics = Arc::new(ShardMetrics::default());
            let settings = ShardSettings {
                max_batch: config.max_batch,
                max_wait: config.max_wait,
                dedup_window: config.dedup_window,
                max_dedup_ids: config.max_dedup_ids,
                custom_ops: Arc::clone(&custom_ops),
                apply_delay: config.apply_delay,
                apply_delay_busy: config.apply_delay_busy,
                shards: config.shards,
                limits: config.limits,
            };
            let worker = ShardWorker::new(
                id,
                ShardState::new(
                    id,
                    settings.clone(),
                    match (&durability, &commit_tx) {
                        (Some(d), Some(tx)) => Some(ShardPersistence::new(
                            id as u16,
                            Arc::clone(d),
                            tx.clone(),
                            &config,
                        )),
                        _ => None,
                    },
                ),
                crate::adaptive::AdaptiveCapacity::new(controller_config, initial),
                config.adaptive.is_some(),
                BatchCollector::new(Arc::clone(&queue), settings.max_batch, settings.max_wait)
                    .bound_by_capacity(config.adaptive.is_some()),
                req_rx,
                changes.clone(),
                Arc::clone(&metrics),
                Arc::clone(&applied_total),
            );
            let thread = std::thread::Builder::new()
                .name(format!("statecraft-shard-{id}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build();
                    match rt {
                        Ok(rt) => rt.block_on(worker.run()),
                        Err(e) => {
                            tracing::error!(shard = id, error = %e, "shard runtime failed to start")
                        }
                    }
                })
                .map_err(EngineError::Io)?;
            shards.push(ShardHandle {
                queue,
                requests: req_tx,
                metrics,
            });
            threads.push(thread);
        }
        // Only the shards hold committer senders: the committer stops once
        // every shard has finished.
        drop(commit_tx);
        Ok(Engine {
            inner: Arc::new(Inner {
                config,
                shards,
                threads: std::sync::Mutex::new(threads),
                commit_threads: std::sync::Mutex::new(commit_threads),
                durability: std::sync::RwLock::new(durability),
                changes,
                admission: StatusCounters::default(),
                applied_total,
                closing: AtomicBool::new(false),
            }),
        })
    }

    /// The engine's config.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    async fn ask<T>(
        &self,
        shard: usize,
        make: impl FnOnce(oneshot::Sender<T>) -> ShardRequest,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.inner.shards[shard]
            .requests
            .send(make(tx))
            .await
            .map_err(|_| EngineError::ShuttingDown)?;
        rx.await.map_err(|_| EngineError::ShuttingDown)
    }

    /// The live state of `key`, if any. Sees every batch applied before the
    /// call (read-your-writes after an `applied` or `durable` ack).
    ///
    /// # Errors
    ///
    /// [`EngineError::Poisoned`] once the store refused a write: memory may
    /// then hold effects of events that were answered `store_unavailable`,
    /// and those must never be visible (issue 16). A restart serves the
    /// durable state again.
    pub async fn get(&self, key: &str) -> Result<Option<StateRecord>, EngineError> {
        self.refuse_reads_if_poisoned()?;
        let s = shard_of(key, self.inner.shards.len());
        self.ask(s, |reply| ShardRequest::Get {
            key: key.to_owned(),
            reply,
        })
        .await?
        .map_err(EngineError::Store)
    }

    /// Up to `limit` live keys starting with `prefix` and greater than `after`,
    /// in key (byte) order. Page on by passing the last key as `after`.
    pub async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StateRecord>, EngineError> {
        self.refuse_reads_if_poisoned()?;
        let mut live: Vec<StateRecord> = Vec::new();
        let mut hidden: rustc_hash::FxHashSet<String> = rustc_hash::FxHashSet::default();
        for s in 0..self.inner.shards.len() {
            let part = self
                .ask(s, |reply| ShardRequest::Scan {
                    prefix: prefix.to_owned(),
                    after: after.map(str::to_owned),
                    limit,
                    reply,
                })
                .await?;
            live.extend(part.live);
            hidden.extend(part.hidden);
        }
        if let Some(d) = self.durability() {
            // The store holds every key materialized so far; memory is newer.
            // Keys in memory (live or hidden) may also be in the store and
            // take store slots: ask for that many more.
            let want = limit + hidden.len() + live.len();
            let (prefix_s, after_s) = (prefix.to_owned(), after.map(str::to_owned));
            let stored = tokio::task::spawn_blocking(move || {
                d.store.scan(
                    &prefix_s,
                    after_s.as_deref(),
                    want,
                    Some(crate::shard::now_ms()),
                )
            })
            .await
            .map_err(|e| panicked("a scan", e))??;
            let in_memory: rustc_hash::FxHashSet<String> =
                live.iter().map(|r| r.key.clone()).collect();
            for (key, s) in stored {
                if in_memory.contains(&key) || hidden.contains(&key) {
                    continue;
                }
                live.push(StateRecord {
                    key,
                    value: s.value,
                    version: s.version,
                    updated_at: s.updated_at,
                    expires_at: s.expires_at,
                });
            }
        }
        live.sort_by(|a, b| a.key.cmp(&b.key));
        live.truncate(limit);
        Ok(live)
    }

    /// Installs key states verbatim — value, version, timestamps, expiry
    /// (`None` deletes the key) — durably when the engine has a store: for a
    /// node rebuilding a partition from a changelog, or a restore from an
    /// export. Served between batches; not subject to the overflow policy.
    pub async fn restore(
        &self,
        items: Vec<(String, Option<StateRecord>)>,
    ) -> Result<(), EngineError> {
        if let Some(cause) = self.poisoned() {
            return Err(EngineError::Poisoned(cause));
        }
        let n = self.inner.shards.len();
        let mut per_shard: Vec<Vec<(String, Option<StateRecord>)>> =
            (0..n).map(|_| Vec::new()).collect();
        for (key, state) in items {
            per_shard[shard_of(&key, n)].push((key, state));
        }
        for (s, items) in per_shard.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            let results = self
                .ask(s, |reply| {
                    ShardRequest::Restore(RestoreBatch { items, reply })
                })
                .await?;
            if let Some(refused) = results.iter().find(|r| !r.is_applied()) {
                return Err(restore_error(refused, self.poisoned()));
            }
        }
        Ok(())
    }

    /// Waits until every event admitted before the call has been applied:
    /// an empty marker goes through each shard's queue, behind what is queued.
    pub async fn barrier(&self) -> Result<(), EngineError> {
        for shard in &self.inner.shards {
            let (tx, rx) = oneshot::channel();
            let marker = SubBatch {
                submission: Arc::new(Vec::new()),
                indices: Vec::new(),
                source: None,
                ack: AckMode::Applied,
                reply: Some(tx),
            };
            // A marker carries no events, so it fits whenever the queue is not
            // over capacity; only a closed queue refuses it.
            match shard.queue.push(marker, 0, 0).await {
                Ok(_) => {}
                Err(PushError::Closed(_)) => return Err(EngineError::ShuttingDown),
                Err(PushError::Full(_)) => return Err(EngineError::Overloaded),
            }
            rx.await.map_err(|_| EngineError::ShuttingDown)?;
        }
        Ok(())
    }

    /// A stream of changes to keys starting with `prefix`, from now on.
    /// A watcher that falls more than the watch buffer behind gets
    /// `Err(lagged_count)` and continues with newer changes.
    pub fn watch(&self, prefix: &str) -> impl Stream<Item = Result<Arc<Change>, u64>> + use<> {
        let rx = self.inner.changes.subscribe();
        let prefix = prefix.to_owned();
        futures::stream::unfold((rx, prefix), |(mut rx, prefix)| async move {
            loop {
                match rx.recv().await {
                    Ok(change) => {
                        if change.key.starts_with(&prefix) {
                            return Some((Ok(change), (rx, prefix)));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        return Some((Err(n), (rx, prefix)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    /// The engine's figures now.
    pub fn stats(&self) -> EngineStats {
        let mut totals = self.inner.admission.snapshot();
        let shards: Vec<ShardStats> = self
            .inner
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let st = ShardStats::collect(i, s.queue.snapshot(), &s.metrics);
                let r = s.metrics.results.snapshot();
                totals.applied += r.applied;
                totals.duplicate += r.duplicate;
                totals.conflict += r.conflict;
                totals.rejected += r.rejected;
                totals.overloaded += r.overloaded;
                st
            })
            .collect();
        let durability = self.durability().map(|d| {
            let mut st = d.stats();
            let events: u64 = shards.iter().map(|s| s.events).sum();
            st.cache_hits = events.saturating_sub(st.cache_misses);
            st
        });
        EngineStats {
            results: totals,
            shards,
            durability,
        }
    }

    /// Reads are refused once the store is poisoned (see [`Engine::get`]).
    fn refuse_reads_if_poisoned(&self) -> Result<(), EngineError> {
        match self.poisoned() {
            Some(cause) => Err(EngineError::Poisoned(cause)),
            None => Ok(()),
        }
    }

    /// Test hook: makes the store's next operation of kind `fault` fail
    /// (see [`statecraft_store::FaultInjector`]). False without a store.
    #[doc(hidden)]
    pub fn inject_store_fault(&self, fault: statecraft_store::Fault) -> bool {
        match self.durability() {
            Some(d) => {
                d.store.fault_injector().fail_next(fault);
                true
            }
            None => false,
        }
    }

    fn durability(&self) -> Option<Arc<Durability>> {
        match self.inner.durability.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The store failure that made the engine refuse writes (and reads), if
    /// any: the store's own poisoned state ([`statecraft_store::Store::poisoned`]),
    /// the one place it is kept.
    pub fn poisoned(&self) -> Option<String> {
        self.durability().and_then(|d| d.poisoned())
    }

    /// True when the engine keeps its state in a store (a data dir).
    pub fn is_durable(&self) -> bool {
        self.durability().is_some()
    }

    /// The store's size now: approximate materialized keys and the data
    /// directory's bytes on disk (`None` when in memory). Reads table
    /// metadata and file sizes: cheap, but call it per scrape, not per event.
    pub fn store_size(&self) -> Option<crate::stats::StoreSize> {
        let d = self.durability()?;
        Some(crate::stats::StoreSize {
            keys_approx: d.store.approx_len() as u64,
            data_dir_bytes: d.store.disk_space().ok(),
        })
    }

    /// Writes a consistent copy of the store to `dir` (which must be empty or
    /// absent) that opens as a data dir.
    pub async fn backup(
        &self,
        dir: impl Into<std::path::PathBuf>,
    ) -> Result<BackupReport, EngineError> {
        let d = self.durability().ok_or_else(|| {
            EngineError::Config("backup needs a data dir (in-memory engine)".into())
        })?;
        let dir = dir.into();
        tokio::task::spawn_blocking(move || d.store.backup(dir))
            .await
            .map_err(|e| panicked("a backup", e))?
            .map_err(EngineError::from)
    }

    /// Total events applied so far (cheap).
    pub fn applied_total(&self) -> u64 {
        self.inner.applied_total.load(Ordering::Relaxed)
    }

    /// True once shutdown has begun.
    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::Acquire)
    }

    /// Stops admitting, drains every queue, applies and commits what was
    /// admitted, answers every waiting producer, and stops the workers.
    /// Idempotent; concurrent callers all return once it is done.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        self.inner.closing.store(true, Ordering::Release);
        for s in &self.inner.shards {
            s.queue.close();
        }
        let threads: Vec<JoinHandle<()>> = {
            let mut guard = match self.inner.threads.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            std::mem::take(&mut *guard)
        };
        let commit_threads: Vec<JoinHandle<()>> = {
            let mut guard = match self.inner.commit_threads.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            std::mem::take(&mut *guard)
        };
        // Joining blocks: do it off the async runtime. Shards first (they
        // send their final checkpoints), then the committer and checkpointer
        // (they end once every shard dropped its sender).
        let joined = tokio::task::spawn_blocking(move || {
            let shards_ok = threads.into_iter().all(|t| t.join().is_ok());
            let commit_ok = commit_threads.into_iter().all(|t| t.join().is_ok());
            shards_ok && commit_ok
        })
        .await
        .unwrap_or(false);
        // Close the store (the last handle drops with this).
        match self.inner.durability.write() {
            Ok(mut g) => *g = None,
            Err(p) => *p.into_inner() = None,
        }
        if joined {
            Ok(())
        } else {
            Err(EngineError::WorkerPanicked)
        }
    }
}

/// The error of a restore one of whose items was not applied: `Poisoned`
/// only when the store failed (`store_unavailable`), else what it was —
/// never a rejection of another kind dressed as a store failure.
fn restore_error(refused: &EventResult, poisoned: Option<String>) -> EngineError {
    match refused {
        EventResult::Rejected {
            code: RejectCode::StoreUnavailable,
            message,
        } => EngineError::Poisoned(poisoned.unwrap_or_else(|| message.clone())),
        EventResult::Rejected {
            code: RejectCode::ShuttingDown,
            ..
        } => EngineError::ShuttingDown,
        EventResult::Rejected {
            code: RejectCode::WorkerFailed,
            ..
        } => EngineError::WorkerPanicked,
        EventResult::Overloaded => EngineError::Overloaded,
        other => EngineError::RestoreRefused {
            status: other.status(),
            message: match other {
                EventResult::Rejected { code, message } => format!("{}: {message}", code.as_str()),
                _ => other.status().to_owned(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_reports_a_store_failure_as_poisoned_and_nothing_else() {
        let store = EventResult::rejected(RejectCode::StoreUnavailable, "not durable: disk");
        assert!(matches!(
            restore_error(&store, Some("disk full".into())),
            EngineError::Poisoned(c) if c == "disk full"
        ));
        let too_large = EventResult::rejected(RejectCode::ValueTooLarge, "value over 1 MiB");
        assert!(matches!(
            restore_error(&too_large, None),
            EngineError::RestoreRefused { status: "rejected", ref message }
                if message.contains("value_too_large")
        ));
        let closing = EventResult::rejected(RejectCode::ShuttingDown, "closing");
        assert!(matches!(
            restore_error(&closing, None),
            EngineError::ShuttingDown
        ));
        assert!(matches!(
            restore_error(&EventResult::Conflict { current_version: 3 }, None),
            EngineError::RestoreRefused {
                status: "conflict",
                ..
            }
        ));
    }
}
