//! [`ClusterConfig`]: every setting of a cluster node, with defaults and
//! validation.
//!
//! Invariant: a config that [`ClusterConfig::validate`] accepted names a
//! usable node id and has timings that keep a lease alive (the keepalive
//! runs several times per TTL), so a healthy node never loses its leases to
//! its own cadence.

use std::time::Duration;

use crate::error::ClusterError;

/// The settings of one cluster node.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS server URL(s), comma-separated (`nats://127.0.0.1:4222`).
    pub nats_url: String,
    /// This node's id: `[A-Za-z0-9_-]{1,64}`, unique among live nodes and
    /// stable across restarts of the same data dir.
    pub node_id: String,
    /// Partition count. Fixed when the stream is created; every later start
    /// must give the same number.
    pub partitions: u32,
    /// Replicas of the stream and the KV buckets (1 on a single server).
    pub replicas: usize,
    /// Lease time to live: a node silent for this long loses its partitions.
    pub lease_ttl: Duration,
    /// The node's HTTP address, published in the nodes bucket for clients.
    pub http_addr: String,
    /// Most events taken from a partition's consumer per batch.
    pub max_batch: usize,
    /// How long `ack=applied` waits for the owner before answering
    /// `accepted` (the event is in the stream and will be applied).
    pub applied_timeout: Duration,
    /// How long the stream remembers `Nats-Msg-Id`s to drop duplicates.
    pub dedup_window: Duration,
    /// Test hook: sleep this long between the local commit of a batch and
    /// its changelog commit (widens the window a paused owner can be in).
    pub commit_delay: Duration,
}

impl ClusterConfig {
    /// A config with every optional setting at its default.
    pub fn new(nats_url: impl Into<String>, node_id: impl Into<String>) -> Self {
        ClusterConfig {
            nats_url: nats_url.into(),
            node_id: node_id.into(),
            partitions: 16,
            replicas: 1,
            lease_ttl: Duration::from_secs(10),
            http_addr: String::new(),
            max_batch: 4_096,
            applied_timeout: Duration::from_secs(10),
            dedup_window: Duration::from_secs(120),
            commit_delay: Duration::ZERO,
        }
    }

    /// Checks the settings; the first bad one is the error.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let bad = |m: String| Err(ClusterError::Config(m));
        if !crate::names::valid_node_id(&self.node_id) {
            return bad(format!(
                "node id `{}` must be 1-64 characters of [A-Za-z0-9_-]",
                self.node_id
            ));
        }
        if self.partitions == 0 || self.partitions > 4_096 {
            return bad(format!(
                "partitions = {} is outside 1..=4096",
                self.partitions
            ));
        }
        if self.replicas == 0 || self.replicas > 5 {
            return bad(format!("replicas = {} is outside 1..=5", self.replicas));
        }
        if self.lease_ttl < Duration::from_millis(500) {
            return bad(format!(
                "lease TTL {:?} is under 500 ms (the keepalive could not keep up)",
                self.lease_ttl
            ));
        }
        if self.max_batch == 0 {
            return bad("max_batch must be at least 1".into());
        }
        if self.nats_url.is_empty() {
            return bad("the NATS URL is empty".into());
        }
        Ok(())
    }

    /// How often leases and the heartbeat are renewed: a quarter of the TTL.
    pub fn tick(&self) -> Duration {
        self.lease_ttl / 4
    }

    /// Safety margin under the TTL: a commit is refused this long before the
    /// lease could expire on the server ([`lease_margin`]).
    pub fn lease_margin(&self) -> Duration {
        lease_margin(self.lease_ttl)
    }
}

/// The safety margin under a lease TTL: a fifth of it. A commit is refused
/// this long before the lease could expire on the server, which covers the
/// clock drift and the round trip between the node's view and the KV
/// bucket's (the keepalive runs every quarter TTL, so a healthy node renews
/// well before the margin starts). The one definition; the node uses it.
pub fn lease_margin(ttl: Duration) -> Duration {
    ttl / 5
}
