//! The cluster's error type: what fails for a whole call (a start, a
//! publish, a read) — per-event outcomes are `EventResult`s instead.

/// A failure of a whole cluster call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A setting is invalid.
    #[error("invalid cluster setting: {0}")]
    Config(String),
    /// Connecting to NATS failed.
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        message: String,
    },
    /// The stream exists with another partition count than configured.
    #[error(
        "the stream `{stream}` was created with {existing} partitions but this node was started with {configured}; the partition count is fixed at creation (start with --partitions {existing}, or delete the stream to start over)"
    )]
    PartitionMismatch {
        /// The stream's name.
        stream: String,
        /// Its partition count.
        existing: u32,
        /// What this node was given.
        configured: u32,
    },
    /// The stream is missing (a producer needs a node to have created it).
    #[error("the stream `{0}` does not exist: start a `statecraft serve --nats` node first")]
    NoStream(String),
    /// Another live node uses this node id.
    #[error("node id `{0}` is in use by another live node")]
    NodeIdInUse(String),
    /// A JetStream or NATS request failed.
    #[error("NATS {what} failed: {message}")]
    Nats {
        /// What was being done.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The owner of a key could not be asked.
    #[error("the owner of the key is unavailable: {0}")]
    Unavailable(String),
    /// The local engine failed.
    #[error(transparent)]
    Engine(#[from] statecraft_engine::EngineError),
    /// The cluster is shutting down.
    #[error("the cluster node is shutting down")]
    ShuttingDown,
}

impl ClusterError {
    /// A NATS failure while doing `what`.
    pub(crate) fn nats(what: &'static str, e: impl std::fmt::Display) -> Self {
        ClusterError::Nats {
            what,
            message: e.to_string(),
        }
    }
}
