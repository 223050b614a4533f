//! [`ClusterStats`]: a node's figures for `/v1/stats` and the benchmark —
//! what it owns, what it consumed and committed, and how long its last and
//! longest partition recovery (takeover or restart: fence, changelog
//! rebuild, consumer start) took.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::node::{Node, read};

/// A node's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStats {
    /// This node's id.
    pub node_id: String,
    /// Partition count.
    pub partitions: u32,
    /// Lease TTL in force, ms.
    pub lease_ttl_ms: u64,
    /// Partitions with a task here (acquiring, serving or finishing).
    pub owned: Vec<u32>,
    /// Partitions served (rebuilt and consuming).
    pub serving: Vec<u32>,
    /// Live nodes seen.
    pub live_nodes: Vec<String>,
    /// Owner of each partition as last seen (`null` = none).
    pub owners: Vec<Option<String>>,
    /// Events published through this node (stream-acknowledged).
    pub published: u64,
    /// Publishes the stream dropped as duplicates.
    pub publish_duplicates: u64,
    /// Publishes that failed.
    pub publish_failures: u64,
    /// Messages taken from the partitions' consumers.
    pub consumed: u64,
    /// Redeliveries at or below the committed sequence, skipped.
    pub skipped_redelivered: u64,
    /// Events already inside a changelog entry at takeover, skipped.
    pub skipped_in_changelog: u64,
    /// Events whose (key, id) the partition had committed already: answered
    /// `duplicate`, not applied.
    pub duplicate_ids: u64,
    /// Batches committed (changelog + marker + ack).
    pub batches: u64,
    /// Changelog entries written.
    pub changelog_written: u64,
    /// Changelog entries not written because a newer one was there.
    pub changelog_superseded: u64,
    /// Commits refused because another node had moved the marker.
    pub fenced: u64,
    /// Leases lost (renewal refused).
    pub leases_lost: u64,
    /// Batches not committed because the lease was no longer certain.
    pub stale_commits_refused: u64,
    /// Partitions acquired (takeovers and restarts).
    pub acquisitions: u64,
    /// Partitions released to peers.
    pub releases: u64,
    /// Keys written locally to match the changelog at acquisitions.
    pub keys_restored: u64,
    /// Duration of the last partition recovery, ms.
    pub last_recovery_ms: u64,
    /// Longest partition recovery, ms.
    pub max_recovery_ms: u64,
    /// Reads answered locally.
    pub reads_local: u64,
    /// Reads answered by asking the owner.
    pub reads_proxied: u64,
}

impl ClusterStats {
    pub(crate) fn collect(node: &Node) -> ClusterStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &node.counters;
        let mut owned: Vec<u32> = read(&node.owned).keys().copied().collect();
        owned.sort_unstable();
        let serving = owned
            .iter()
            .copied()
            .filter(|&p| {
                node.control(p)
                    .is_some_and(|c| c.serving.load(Ordering::Acquire))
            })
            .collect();
        let view = read(&node.view);
        ClusterStats {
            node_id: node.config.node_id.clone(),
            partitions: node.infra.partitions,
            lease_ttl_ms: node.infra.lease_ttl.as_millis() as u64,
            owned,
            serving,
            live_nodes: view.nodes.keys().cloned().collect(),
            owners: view.owners.clone(),
            published: l(&c.published),
            publish_duplicates: l(&c.publish_duplicates),
            publish_failures: l(&c.publish_failures),
            consumed: l(&c.consumed),
            skipped_redelivered: l(&c.skipped_redelivered),
            skipped_in_changelog: l(&c.skipped_in_changelog),
            duplicate_ids: l(&c.duplicate_ids),
            batches: l(&c.batches),
            changelog_written: l(&c.changelog_written),
            changelog_superseded: l(&c.changelog_superseded),
            fenced: l(&c.fenced),
            leases_lost: l(&c.leases_lost),
            stale_commits_refused: l(&c.stale_commits_refused),
            acquisitions: l(&c.acquisitions),
            releases: l(&c.releases),
            keys_restored: l(&c.keys_restored),
            last_recovery_ms: l(&c.last_recovery_ms),
            max_recovery_ms: l(&c.max_recovery_ms),
            reads_local: l(&c.reads_local),
            reads_proxied: l(&c.reads_proxied),
        }
    }
}
