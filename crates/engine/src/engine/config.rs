//! The engine's settings ([`EngineConfig`]), their bounds ([`bounds`]) and
//! the one place they are checked ([`EngineConfig::validate`]), plus the
//! [`EngineBuilder`] that opens an engine from them.
//!
//! Invariant: no engine starts from a config that `validate` refused —
//! [`EngineBuilder::open`] validates first — so every front end (the server's
//! flags, env and TOML file; `statecraft pipe`'s environment; a library user
//! filling the struct by hand) gets the same checks and the same messages,
//! which name the setting as the server's settings table does
//! (`statecraft_server::settings`).

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::Engine;
use crate::error::EngineError;
use crate::event::{AckMode, Event};
use crate::limits::{Limits, Rejection};
use crate::ops::CustomOp;
use crate::persist::Durability;
use crate::queue::OverflowPolicy;
use statecraft_store::{Store, StoreOptions};

/// The accepted range of each bounded engine setting. Each bound says why
/// it is where it is; [`EngineConfig::validate`] checks them all.
pub mod bounds {
    use std::ops::RangeInclusive;
    use std::time::Duration;

    /// Shards: each is a thread; beyond 1,024 the per-shard fixed costs
    /// (threads, queues, store partitions) dominate on any machine we target.
    pub const SHARDS: RangeInclusive<usize> = 1..=1024;
    /// Queue capacity per shard, events: 2^30 keeps `events × shards`
    /// far from overflowing the counters that add them up.
    pub const QUEUE_CAPACITY: RangeInclusive<usize> = 1..=1 << 30;
    /// Queue capacity per shard, bytes: below 1 KiB a single ordinary event
    /// would not fit.
    pub const QUEUE_CAPACITY_BYTES: RangeInclusive<usize> = 1024..=usize::MAX;
    /// Events per batch: 2^20 bounds one batch's log record and apply time.
    pub const MAX_BATCH: RangeInclusive<usize> = 1..=1 << 20;
    /// Longest batch deadline: beyond 10 s a lone event's ack would look
    /// like a hang to every client.
    pub const MAX_WAIT: Duration = Duration::from_secs(10);
    /// Longest key, bytes: up to what the store can hold (issue 16: a
    /// longer key was acked, then failed its checkpoint and bricked the
    /// data dir).
    pub const MAX_KEY_BYTES: RangeInclusive<usize> = 1..=crate::limits::MAX_KEY_BYTES;
    /// Deepest nesting: serde_json parses at most 128 levels and stored
    /// values must stay re-readable (the limits module), so 100 leaves room
    /// for the envelope around a value.
    pub const MAX_DEPTH: RangeInclusive<usize> = 1..=100;
}

/// A setting the engine cannot start with. `setting` is the setting's name
/// in the server's settings table (a flag without dashes, with underscores).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{setting}`: {message}")]
pub struct SettingError {
    /// The setting's name.
    pub setting: &'static str,
    /// What is wrong and what is expected.
    pub message: String,
}

impl SettingError {
    /// A setting error.
    pub fn new(setting: &'static str, message: impl Into<String>) -> Self {
        SettingError {
            setting,
            message: message.into(),
        }
    }
}

/// Checks `value` is in `range`, naming `setting` when it is not.
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    setting: &'static str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<(), SettingError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(SettingError::new(
            setting,
            format!("{value} is outside {}..={}", range.start(), range.end()),
        ))
    }
}

/// The engine's settings. Built with [`Engine::builder`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Number of shards (default: available cores).
    pub shards: usize,
    /// Queue capacity per shard, in events.
    pub queue_capacity: usize,
    /// Queue capacity per shard, in bytes.
    pub queue_capacity_bytes: usize,
    /// What a full queue does.
    pub overflow: OverflowPolicy,
    /// Under `block`: how long a producer waits for room before its events
    /// are answered `overloaded` (`None` = forever).
    pub block_timeout: Option<Duration>,
    /// Most events per batch.
    pub max_batch: usize,
    /// Longest a batch waits for more events after its first.
    pub max_wait: Duration,
    /// Default ack mode for [`Engine::submit`].
    pub ack: AckMode,
    /// Validation limits.
    pub limits: Limits,
    /// How long an idempotency id is remembered.
    pub dedup_window: Duration,
    /// Most ids remembered in memory per shard (ids no committed checkpoint
    /// has written to the store yet are kept beyond it: forgetting one would
    /// apply its repeat again).
    pub max_dedup_ids: usize,
    /// Change-feed buffer: a watcher further behind than this misses changes
    /// (and is told so).
    pub watch_buffer: usize,
    /// Test hook: time added to every applied event (plays a slow consumer).
    pub apply_delay: Duration,
    /// With `apply_delay`: burn it as CPU work (`true`) or sleep (`false`).
    pub apply_delay_busy: bool,
    /// Where the embedded store lives; `None` = in memory only (nothing
    /// survives a restart, and `durable` acks mean `applied`).
    pub data_dir: Option<std::path::PathBuf>,
    /// How often each shard materializes its dirty keys into the store
    /// (a checkpoint); recovery replays only the batches logged after it.
    pub checkpoint_interval: Duration,
    /// Checkpoint also after this many logged batches per shard.
    pub checkpoint_batches: u64,
    /// Checkpoint also after this many bytes of log per shard: what recovery
    /// replays after a crash, so the bound on time to ready.
    pub checkpoint_bytes: u64,
    /// Memory budget of each shard's hot-key cache, in bytes (dirty keys are
    /// kept until materialized, whatever the budget).
    pub cache_bytes: usize,
    /// Adaptive capacity (`None` = fixed `queue_capacity`).
    pub adaptive: Option<crate::adaptive::AdaptiveConfig>,
    /// Largest size of the store's journal before it flushes memtables: a
    /// bound on how much the store replays when it opens (time to ready).
    pub max_journal_bytes: u64,
    /// Open the store even if synced log records are missing or hold a key
    /// it cannot recover (the loss is logged as an error). An operator's
    /// decision after a corruption message names it; never a default.
    pub accept_lost_records: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue_capacity: 65_536,
            queue_capacity_bytes: 256 << 20,
            overflow: OverflowPolicy::Block,
            block_timeout: None,
            max_batch: 4_096,
            max_wait: Duration::from_micros(200),
            ack: AckMode::Durable,
            limits: Limits::default(),
            dedup_window: Duration::from_secs(24 * 3600),
            max_dedup_ids: 1_000_000,
            watch_buffer: 16_384,
            apply_delay: Duration::ZERO,
            apply_delay_busy: true,
            data_dir: None,
            checkpoint_interval: Duration::from_secs(5),
            checkpoint_batches: 4_000,
            checkpoint_bytes: 32 << 20,
            cache_bytes: 512 << 20,
            adaptive: None,
            max_journal_bytes: 64 << 20,
            accept_lost_records: false,
        }
    }
}

impl EngineConfig {
    /// Checks every setting against [`bounds`]; the first bad one is the
    /// error. [`EngineBuilder::open`] calls it, so does the server when it
    /// resolves its settings (to fail before binding any port).
    pub fn validate(&self) -> Result<(), SettingError> {
        check_range("shards", self.shards, bounds::SHARDS)?;
        check_range(
            "queue_capacity",
            self.queue_capacity,
            bounds::QUEUE_CAPACITY,
        )?;
        check_range(
            "queue_capacity_bytes",
            self.queue_capacity_bytes,
            bounds::QUEUE_CAPACITY_BYTES,
        )?;
        check_range("max_batch", self.max_batch, bounds::MAX_BATCH)?;
        if self.max_wait > bounds::MAX_WAIT {
            return Err(SettingError::new(
                "max_wait_us",
                format!(
                    "{} µs is above {} µs",
                    self.max_wait.as_micros(),
                    bounds::MAX_WAIT.as_micros()
                ),
            ));
        }
        check_range(
            "max_key_bytes",
            self.limits.max_key_bytes,
            bounds::MAX_KEY_BYTES,
        )?;
        check_range(
            "max_value_bytes",
            self.limits.max_value_bytes,
            1..=usize::MAX,
        )?;
        check_range("max_depth", self.limits.max_depth, bounds::MAX_DEPTH)?;
        check_range("checkpoint_batches", self.checkpoint_batches, 1..=u64::MAX)?;
        check_range("checkpoint_bytes", self.checkpoint_bytes, 1..=u64::MAX)?;
        if self.checkpoint_interval.is_zero() {
            return Err(SettingError::new(
                "checkpoint_interval_ms",
                "must be at least 1 ms",
            ));
        }
        check_range("max_dedup_ids", self.max_dedup_ids, 1..=usize::MAX)?;
        if let Some(a) = &self.adaptive
            && (a.min == 0 || a.min > a.max)
        {
            return Err(SettingError::new(
                "adaptive_min",
                format!(
                    "needs 1 <= adaptive_min ({}) <= adaptive_max ({})",
                    a.min, a.max
                ),
            ));
        }
        if let Some(dir) = &self.data_dir
            && dir.as_os_str().is_empty()
        {
            return Err(SettingError::new("data_dir", "empty path"));
        }
        Ok(())
    }
}

/// Builds an [`Engine`].
#[derive(Default)]
pub struct EngineBuilder {
    config: EngineConfig,
    custom_ops: FxHashMap<std::sync::Arc<str>, CustomOp>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("config", &self.config)
            .field("custom_ops", &self.custom_ops.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl EngineBuilder {
    /// Starts from a whole config.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Number of shards (at least 1).
    pub fn shards(mut self, n: usize) -> Self {
        self.config.shards = n.max(1);
        self
    }

    /// Queue capacity per shard in events.
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.config.queue_capacity = events.max(1);
        self
    }

    /// Queue capacity per shard in bytes.
    pub fn queue_capacity_bytes(mut self, bytes: usize) -> Self {
        self.config.queue_capacity_bytes = bytes.max(1);
        self
    }

    /// Overflow policy.
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.config.overflow = policy;
        self
    }

    /// Under `block`, how long to wait for room before answering `overloaded`.
    pub fn block_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.block_timeout = timeout;
        self
    }

    /// Most events per batch.
    pub fn max_batch(mut self, n: usize) -> Self {
        self.config.max_batch = n.max(1);
        self
    }

    /// Longest wait for more events after a batch's first.
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.config.max_wait = d;
        self
    }

    /// Default ack mode of [`Engine::submit`].
    pub fn ack(mut self, ack: AckMode) -> Self {
        self.config.ack = ack;
        self
    }

    /// Validation limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Idempotency window.
    pub fn dedup_window(mut self, d: Duration) -> Self {
        self.config.dedup_window = d;
        self
    }

    /// Busy time per applied event (tests and lesson checks: a slow consumer).
    pub fn apply_delay(mut self, d: Duration) -> Self {
        self.config.apply_delay = d;
        self
    }

    /// With an apply delay: burn it as CPU work (`true`, the default) or
    /// sleep through it (`false`, an I/O-bound consumer).
    pub fn apply_delay_busy(mut self, busy: bool) -> Self {
        self.config.apply_delay_busy = busy;
        self
    }

    /// Keeps state in an embedded store in `dir` (created if missing).
    pub fn data_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.data_dir = Some(dir.into());
        self
    }

    /// Checkpoint cadence: by time and by logged batches per shard.
    pub fn checkpoint(mut self, interval: Duration, batches: u64) -> Self {
        self.config.checkpoint_interval = interval;
        self.config.checkpoint_batches = batches.max(1);
        self
    }

    /// Adaptive capacity: each shard queue resizes itself within
    /// `[min, max]` events so its p95 queue wait tracks `target`.
    pub fn adaptive(mut self, target: Duration, min: usize, max: usize) -> Self {
        self.config.adaptive = Some(crate::adaptive::AdaptiveConfig::new(target, min, max));
        self
    }

    /// Checkpoint also after this many bytes of log per shard (a bound on
    /// what recovery replays after a crash).
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.config.checkpoint_bytes = bytes.max(1);
        self
    }

    /// Hot-key cache budget per shard in bytes.
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.config.cache_bytes = bytes;
        self
    }

    /// Registers a custom op: `f(current, event)` returns the new value
    /// (`None` deletes the key) or a rejection. It runs on the shard thread;
    /// keep it fast and deterministic.
    pub fn custom_op<F>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(Option<&Value>, &Event) -> Result<Option<Value>, Rejection> + Send + Sync + 'static,
    {
        self.custom_ops
            .insert(std::sync::Arc::from(name), Arc::new(f));
        self
    }

    /// Starts the shard workers. Must be called inside a Tokio runtime only if
    /// the caller later awaits on the engine (the workers run on their own
    /// threads either way).
    pub async fn open(self) -> Result<Engine, EngineError> {
        self.config.validate()?;
        let durability = match &self.config.data_dir {
            None => None,
            Some(dir) => {
                let dir = dir.clone();
                let journal_bytes = self.config.max_journal_bytes;
                let accept_lost = self.config.accept_lost_records;
                let opened = tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&dir)?;
                    // A bounded journal keeps reopening fast: fjall replays its
                    // journal into memory at open (≈ 0.85 s per million keys
                    // written since the last flush, measured with the store's
                    // logbench), so 64 MiB caps that at well under a second.
                    let options = StoreOptions::default()
                        .max_journal_bytes(journal_bytes)
                        .accept_lost_records(accept_lost);
                    let (store, report) = Store::open(&dir, options)?;
                    Ok::<_, EngineError>((store, report))
                })
                .await
                .map_err(|e| super::panicked("opening the store", e))??;
                let (store, report) = opened;
                tracing::info!(
                    records_replayed = report.records_replayed,
                    changes = report.changes_applied,
                    ms = report.duration.as_secs_f64() * 1e3,
                    "recovery_complete"
                );
                Some(Arc::new(Durability::new(store, report)))
            }
        };
        Engine::start(self.config, self.custom_ops, durability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adversary: the builder took any value (a one-hour batch deadline, a
    /// depth serde_json cannot read back, zero shards as a bare string
    /// error); validation lived only in the server.
    #[tokio::test]
    async fn the_builder_refuses_out_of_range_settings() {
        let d = EngineConfig::default;
        let mut adaptive = crate::adaptive::AdaptiveConfig::new(Duration::from_millis(10), 1, 8);
        adaptive.min = 9;
        let cases = [
            ("shards", EngineConfig { shards: 0, ..d() }),
            (
                "max_wait_us",
                EngineConfig {
                    max_wait: Duration::from_secs(3600),
                    ..d()
                },
            ),
            (
                "max_depth",
                EngineConfig {
                    limits: Limits {
                        max_depth: 1000,
                        ..Limits::DEFAULT
                    },
                    ..d()
                },
            ),
            (
                "queue_capacity",
                EngineConfig {
                    queue_capacity: 0,
                    ..d()
                },
            ),
            (
                "max_batch",
                EngineConfig {
                    max_batch: 0,
                    ..d()
                },
            ),
            (
                "adaptive_min",
                EngineConfig {
                    adaptive: Some(adaptive),
                    ..d()
                },
            ),
        ];
        for (setting, config) in cases {
            match Engine::builder().config(config).open().await {
                Err(EngineError::InvalidSetting(e)) => assert_eq!(e.setting, setting),
                Err(other) => panic!("{setting}: not a setting error: {other}"),
                Ok(_) => panic!("{setting}: accepted"),
            }
        }
        assert!(EngineConfig::default().validate().is_ok());
    }
}
