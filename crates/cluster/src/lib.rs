//! Statecraft's scale-out mode on NATS JetStream (DESIGN.md §5, issue 9):
//! several `statecraft serve --nats URL` nodes share one event stream split
//! into partitions; each partition is applied by exactly one node at a
//! time, with exactly-once effects, and moves to another node when its
//! owner dies. The design and its guarantees are in `docs/scale-out.md`.
//!
//! # A tour of the layout
//!
//! - [`config`]: every setting of a node, [`ClusterConfig`].
//! - [`names`]: the stream, subjects, buckets, keys and ids on the NATS side.
//! - `infra`: the connections (data, and control for leases and heartbeats);
//!   creating or checking the stream (its partition count is fixed at
//!   creation) and the KV buckets `statecraft-leases`, `statecraft-nodes`,
//!   `statecraft-changelog`.
//! - [`producer`]: publishing, [`Producer`] — one message per event on
//!   `statecraft.events.<p>` with a `Nats-Msg-Id`; `ack=none|durable|applied`.
//! - `coordinator`: the node's membership and lease loop — heartbeat,
//!   revision-checked lease renewal, fair-share claims and cooperative
//!   releases.
//! - `partition`: one owned partition — fence, rebuild from the changelog
//!   (keys and idempotency ids), a durable pull consumer, and the consume
//!   loop (check ids, apply durably with the stream sequence as the engine's
//!   source position, write the changelog, move the commit marker, answer,
//!   ack).
//! - `changelog`: the changelog's entries and marker, and the two
//!   revision checks that keep them true with a stale owner around.
//! - `node`: what the tasks of a node share.
//! - [`cluster`]: the node's handle — [`Cluster::start`] and [`ClusterHandle`] — `publish`,
//!   `owner_of`, `get` (proxied to the owner), `stats`, `shutdown`.
//! - [`stats`]: the node's figures, [`ClusterStats`].
//!
//! # Example
//!
//! ```no_run
//! use statecraft_cluster::{Cluster, ClusterConfig};
//! use statecraft_engine::{AckMode, Engine, Event};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::builder().data_dir("/var/lib/statecraft/n1").open().await?;
//! let mut config = ClusterConfig::new("nats://127.0.0.1:4222", "n1");
//! config.partitions = 16;
//! let cluster = Cluster::start(config, engine.clone()).await?;
//! let results = cluster
//!     .publish(vec![Ok(Event::incr("user:42", 1).with_id("e1"))], AckMode::Applied)
//!     .await?;
//! println!("{results:?}; now {:?}", cluster.get("user:42").await?);
//! cluster.shutdown().await?;
//! engine.shutdown().await?;
//! # Ok(()) }
//! ```

mod changelog;
pub mod cluster;
pub mod config;
mod coordinator;
mod error;
mod infra;
pub mod names;
mod node;
mod partition;
pub mod producer;
pub mod stats;

pub use cluster::{Cluster, ClusterHandle, NodeInfo};
pub use config::ClusterConfig;
pub use error::ClusterError;
pub use node::NodeRecord;
pub use producer::{Producer, ProducerOptions};
pub use stats::ClusterStats;
