//! What every task of a node shares: [`Node`] (settings, NATS handles, the
//! engine, the membership view, the partitions it holds, counters) and
//! [`PartitionControl`], the coordinator's handle on one partition task.
//!
//! Invariants:
//! - `Node::owned` holds exactly the partitions whose task is running on
//!   this node (acquiring, serving or finishing); only the coordinator adds
//!   and removes entries.
//! - A partition task commits a batch only while its lease deadline
//!   ([`PartitionControl::lease_valid`]) lies in the future; the deadline is
//!   derived from the *send* time of the last successful lease write, so it
//!   is never later than the server's own expiry of that lease.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use statecraft_engine::Engine;
use tokio::sync::Notify;

use crate::config::ClusterConfig;
use crate::infra::Infra;

/// What a node publishes about itself in the nodes bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's HTTP address (may be empty for a library-only node).
    pub http: String,
    /// The process instance (changes at every start).
    pub instance: String,
    /// When the process started, ms since the epoch.
    pub started_ms: u64,
}

/// The value of a lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LeaseValue {
    /// The owner's node id.
    pub node: String,
    /// The owner's process instance.
    pub instance: String,
}

/// Who is alive and who owns what, as last read from the buckets.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    /// Live nodes by id.
    pub nodes: BTreeMap<String, NodeRecord>,
    /// Owner (node id) of each partition, if any.
    pub owners: Vec<Option<String>>,
}

/// Why a partition task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PartitionExit {
    /// Asked to release: the last batch is committed and acknowledged.
    Released,
    /// The lease expired or was taken: stopped without committing.
    LeaseLost,
    /// Another node moved the commit marker: stopped without committing.
    Fenced,
    /// The engine is shutting down.
    EngineClosed,
    /// Something failed; the message says what.
    Failed(String),
}

/// The coordinator's handle on one partition task (shared by both).
#[derive(Debug)]
pub(crate) struct PartitionControl {
    /// The partition.
    pub p: u32,
    /// Lease deadline in ms since `Node::epoch`; 0 = lost. Written by the
    /// coordinator after each successful keepalive, read by the task before
    /// every commit.
    pub deadline_ms: AtomicU64,
    /// Set by the coordinator: finish the current batch, commit, stop.
    pub release: AtomicBool,
    /// Wakes the task when `release` is set or the lease is lost (one stored
    /// permit, so a wake-up before the task waits is not lost).
    pub wake: Notify,
    /// True once the partition is rebuilt and consuming: reads of its keys
    /// are answered from the local engine.
    pub serving: AtomicBool,
}

impl PartitionControl {
    pub fn new(p: u32, deadline_ms: u64) -> Self {
        PartitionControl {
            p,
            deadline_ms: AtomicU64::new(deadline_ms),
            release: AtomicBool::new(false),
            wake: Notify::new(),
            serving: AtomicBool::new(false),
        }
    }

    /// Is the lease still certainly ours at `now_ms` (ms since the node's epoch)?
    pub fn lease_valid(&self, now_ms: u64) -> bool {
        now_ms < self.deadline_ms.load(Ordering::Acquire)
    }

    /// Marks the lease lost and wakes the task.
    pub fn lose(&self) {
        self.deadline_ms.store(0, Ordering::Release);
        self.serving.store(false, Ordering::Release);
        self.wake.notify_one();
    }

    /// Asks the task to stop after its current batch.
    pub fn ask_release(&self) {
        self.release.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// Counters of a node (monotonic; read by [`crate::ClusterStats`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub publish_duplicates: AtomicU64,
    pub publish_failures: AtomicU64,
    pub consumed: AtomicU64,
    pub skipped_redelivered: AtomicU64,
    pub skipped_in_changelog: AtomicU64,
    pub duplicate_ids: AtomicU64,
    pub batches: AtomicU64,
    pub changelog_written: AtomicU64,
    pub changelog_superseded: AtomicU64,
    pub fenced: AtomicU64,
    pub leases_lost: AtomicU64,
    pub stale_commits_refused: AtomicU64,
    pub acquisitions: AtomicU64,
    pub releases: AtomicU64,
    pub keys_restored: AtomicU64,
    pub last_recovery_ms: AtomicU64,
    pub max_recovery_ms: AtomicU64,
    pub reads_local: AtomicU64,
    pub reads_proxied: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Everything the node's tasks share (behind one `Arc`, held by the
/// coordinator, every partition task, the read server and the handle).
pub(crate) struct Node {
    pub config: ClusterConfig,
    pub infra: Infra,
    pub engine: Engine,
    /// This process's instance id.
    pub instance: String,
    /// Origin of the node's millisecond clock (lease deadlines).
    pub epoch: Instant,
    pub counters: Arc<Counters>,
    /// Written by the coordinator each tick; read by `owner_of` and stats.
    pub view: RwLock<View>,
    /// Partitions with a running task here (see the module invariants).
    pub owned: RwLock<HashMap<u32, Arc<PartitionControl>>>,
    /// Set once shutdown began: no new claims.
    pub closing: AtomicBool,
    /// Recent partition task failures (p → when), to back off re-claiming.
    pub cooldown: Mutex<HashMap<u32, Instant>>,
}

impl Node {
    /// Milliseconds since the node's epoch.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The lease deadline for a lease written at `sent` (ms since epoch).
    pub fn deadline_after(&self, sent_ms: u64) -> u64 {
        let ttl = self.infra.lease_ttl;
        let margin = crate::config::lease_margin(ttl);
        sent_ms + (ttl.saturating_sub(margin)).as_millis() as u64
    }

    /// The partition task of `p` on this node, if any.
    pub fn control(&self, p: u32) -> Option<Arc<PartitionControl>> {
        read(&self.owned).get(&p).cloned()
    }

    /// This node's lease value.
    pub fn lease_value(&self) -> LeaseValue {
        LeaseValue {
            node: self.config.node_id.clone(),
            instance: self.instance.clone(),
        }
    }

    /// The tick of the coordinator.
    pub fn tick(&self) -> Duration {
        self.infra.lease_ttl / 4
    }
}

/// Reads a lock, recovering from poisoning (the data are plain maps that a
/// panicking writer cannot leave half-updated in a harmful way).
pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Writes a lock, recovering from poisoning.
pub(crate) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match lock.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A process instance id: pid, start time and a hash of both, in hex.
pub(crate) fn new_instance() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let pid = u64::from(std::process::id());
    let mut bytes = nanos.to_le_bytes().to_vec();
    bytes.extend_from_slice(&pid.to_le_bytes());
    format!(
        "{:08x}{:08x}",
        pid as u32,
        statecraft_engine::router::fnv1a64(&bytes) as u32
    )
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
