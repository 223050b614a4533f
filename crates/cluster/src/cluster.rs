//! The public face of a node: [`Cluster::start`] and [`ClusterHandle`].
//!
//! A node is one engine (its local, durable state) plus four kinds of
//! tasks: the coordinator (membership and leases), one task per owned
//! partition (consume, apply, commit), the read server (answers proxied
//! reads for the keys this node owns) and the producer's reply dispatcher.
//!
//! Shutdown is one protocol: [`ClusterHandle::shutdown`] turns the stop
//! watch to `true`; the coordinator asks every partition to finish its
//! batch, commit and stop, deletes their leases and the node's entry, and
//! ends; then the read server is stopped. The engine is the caller's: shut
//! it down after the cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use statecraft_engine::{AckMode, Engine, Event, EventResult, Rejection, StateRecord};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ClusterConfig;
use crate::coordinator::{self, Coordinator};
use crate::error::ClusterError;
use crate::infra::Infra;
use crate::names;
use crate::node::{Counters, Node, NodeRecord, read};
use crate::producer::{Producer, ProducerOptions};
use crate::stats::ClusterStats;

/// Where a key lives now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// The owner's node id.
    pub id: String,
    /// The owner's HTTP address (as it published it).
    pub http_addr: String,
    /// True when the owner is this node.
    pub is_self: bool,
    /// The key's partition.
    pub partition: u32,
}

/// Starts cluster nodes.
#[derive(Debug)]
pub struct Cluster;

/// A running node. Cheap to clone; [`shutdown`](Self::shutdown) once.
#[derive(Clone)]
pub struct ClusterHandle {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHandle")
            .field("node_id", &self.inner.node.config.node_id)
            .finish()
    }
}

struct HandleInner {
    node: Arc<Node>,
    producer: Producer,
    /// Stop signal. Sender: here (`shutdown`); receiver: the coordinator.
    stop: watch::Sender<bool>,
    /// The coordinator task (ends after releasing everything).
    coordinator: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// The read server task (aborted after the coordinator ended).
    reads: std::sync::Mutex<Option<JoinHandle<()>>>,
    shut: AtomicBool,
}

/// A proxied read's answer (the read server's wire format).
#[derive(Debug, Serialize, Deserialize)]
struct ReadAnswer {
    #[serde(default)]
    record: Option<StateRecord>,
    #[serde(default)]
    error: Option<String>,
}

impl Cluster {
    /// Joins (or forms) the cluster: connects, creates or checks the stream
    /// and buckets, registers the node, and starts claiming partitions. The
    /// engine should have been opened with its own data dir; this node
    /// applies the partitions it owns into it.
    pub async fn start(
        config: ClusterConfig,
        engine: Engine,
    ) -> Result<ClusterHandle, ClusterError> {
        config.validate()?;
        let infra = Infra::ensure(&config).await?;
        let counters = Arc::new(Counters::default());
        let producer = Producer::start(
            infra.client.clone(),
            infra.js.clone(),
            infra.partitions,
            ProducerOptions {
                limits: engine.config().limits,
                applied_timeout: config.applied_timeout,
                ..ProducerOptions::default()
            },
            Arc::clone(&counters),
        )
        .await?;
        let node = Arc::new(Node {
            instance: crate::node::new_instance(),
            epoch: Instant::now(),
            counters,
            view: Default::default(),
            owned: Default::default(),
            closing: AtomicBool::new(false),
            cooldown: Default::default(),
            config,
            infra,
            engine,
        });
        let record = NodeRecord {
            http: node.config.http_addr.clone(),
            instance: node.instance.clone(),
            started_ms: crate::node::unix_ms(),
        };
        let node_rev = coordinator::register(&node, &record).await?;
        let reads = start_read_server(Arc::clone(&node)).await?;
        let (stop, stop_rx) = watch::channel(false);
        let coordinator =
            tokio::spawn(Coordinator::new(Arc::clone(&node), node_rev, record).run(stop_rx));
        tracing::info!(
            node = node.config.node_id,
            partitions = node.infra.partitions,
            lease_ttl_ms = node.infra.lease_ttl.as_millis() as u64,
            "joined the cluster"
        );
        Ok(ClusterHandle {
            inner: Arc::new(HandleInner {
                node,
                producer,
                stop,
                coordinator: tokio::sync::Mutex::new(Some(coordinator)),
                reads: std::sync::Mutex::new(Some(reads)),
                shut: AtomicBool::new(false),
            }),
        })
    }
}

async fn start_read_server(node: Arc<Node>) -> Result<JoinHandle<()>, ClusterError> {
    let sub = node
        .infra
        .client
        .subscribe(names::read_subject(&node.config.node_id))
        .await
        .map_err(|e| ClusterError::nats("subscribing to reads", e))?;
    Ok(tokio::spawn(async move {
        sub.for_each_concurrent(64, |msg| {
            let node = Arc::clone(&node);
            async move {
                let Some(reply) = msg.reply else { return };
                let answer = match std::str::from_utf8(&msg.payload) {
                    Ok(key) => match local_get(&node, key).await {
                        Ok(record) => ReadAnswer {
                            record,
                            error: None,
                        },
                        Err(e) => ReadAnswer {
                            record: None,
                            error: Some(e.to_string()),
                        },
                    },
                    Err(_) => ReadAnswer {
                        record: None,
                        error: Some("the key is not UTF-8".into()),
                    },
                };
                let payload = serde_json::to_vec(&answer).unwrap_or_default();
                let _ = node.infra.client.publish(reply, payload.into()).await;
            }
        })
        .await;
    }))
}

/// The key from the local engine, if this node serves its partition.
async fn local_get(node: &Node, key: &str) -> Result<Option<StateRecord>, ClusterError> {
    let p = names::partition_of(key, node.infra.partitions);
    match node.control(p) {
        Some(c) if c.serving.load(Ordering::Acquire) && c.lease_valid(node.now_ms()) => {
            Counters::add(&node.counters.reads_local, 1);
            Ok(node.engine.get(key).await?)
        }
        _ => Err(ClusterError::Unavailable(format!(
            "node {} does not serve partition {p} now",
            node.config.node_id
        ))),
    }
}

impl ClusterHandle {
    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node.config.node_id
    }

    /// The partition count.
    pub fn partitions(&self) -> u32 {
        self.inner.node.infra.partitions
    }

    /// The partition of `key`.
    pub fn partition_of(&self, key: &str) -> u32 {
        names::partition_of(key, self.partitions())
    }

    /// The node's producer (shares its connection).
    pub fn producer(&self) -> &Producer {
        &self.inner.producer
    }

    /// The local engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.node.engine
    }

    /// Publishes events to the stream (see [`Producer::publish`]).
    pub async fn publish(
        &self,
        items: Vec<Result<Event, Rejection>>,
        ack: AckMode,
    ) -> Result<Vec<EventResult>, ClusterError> {
        self.inner.producer.publish(items, ack).await
    }

    /// The owner of `key`'s partition as last seen (`None` while the
    /// partition has no owner, e.g. during a failover).
    pub fn owner_of(&self, key: &str) -> Option<NodeInfo> {
        let node = &self.inner.node;
        let p = names::partition_of(key, node.infra.partitions);
        let view = read(&node.view);
        let owner = view.owners.get(p as usize)?.clone()?;
        let is_self = owner == node.config.node_id;
        let http_addr = if is_self {
            node.config.http_addr.clone()
        } else {
            view.nodes
                .get(&owner)
                .map(|n| n.http.clone())
                .unwrap_or_default()
        };
        Some(NodeInfo {
            id: owner,
            http_addr,
            is_self,
            partition: p,
        })
    }

    /// Reads `key` from its owner: locally when this node serves its
    /// partition, else proxied to the owner over NATS request/reply.
    /// Retries while ownership moves, for up to the lease TTL plus 2 s.
    pub async fn get(&self, key: &str) -> Result<Option<StateRecord>, ClusterError> {
        let node = &self.inner.node;
        let give_up = Instant::now() + node.infra.lease_ttl + Duration::from_secs(2);
        let mut last_error;
        loop {
            match local_get(node, key).await {
                Ok(r) => return Ok(r),
                Err(ClusterError::Unavailable(why)) => last_error = why,
                Err(e) => return Err(e),
            }
            if let Some(owner) = self.owner_of(key)
                && !owner.is_self
            {
                let request = node.infra.client.request(
                    names::read_subject(&owner.id),
                    key.to_owned().into_bytes().into(),
                );
                match tokio::time::timeout(Duration::from_secs(2), request).await {
                    Ok(Ok(msg)) => match serde_json::from_slice::<ReadAnswer>(&msg.payload) {
                        Ok(ReadAnswer {
                            error: None,
                            record,
                        }) => {
                            Counters::add(&node.counters.reads_proxied, 1);
                            return Ok(record);
                        }
                        Ok(ReadAnswer { error: Some(e), .. }) => last_error = e,
                        Err(e) => last_error = e.to_string(),
                    },
                    Ok(Err(e)) => last_error = format!("asking {}: {e}", owner.id),
                    Err(_) => last_error = format!("asking {}: timed out", owner.id),
                }
            } else if self.owner_of(key).is_none() {
                last_error = format!(
                    "partition {} has no owner right now",
                    self.partition_of(key)
                );
            }
            if Instant::now() > give_up || node.closing.load(Ordering::Acquire) {
                return Err(ClusterError::Unavailable(last_error));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The node's figures now.
    pub fn stats(&self) -> ClusterStats {
        ClusterStats::collect(&self.inner.node)
    }

    /// Leaves the cluster: every owned partition finishes its batch, commits
    /// and acknowledges it, its lease is released; the node's entry is
    /// deleted. Idempotent. Shut the engine down after this.
    pub async fn shutdown(&self) -> Result<(), ClusterError> {
        if self.inner.shut.swap(true, Ordering::AcqRel) {
            // Someone else is (or was) shutting down: wait for them.
            let _ = self.inner.coordinator.lock().await;
            return Ok(());
        }
        let _ = self.inner.stop.send(true);
        let mut guard = self.inner.coordinator.lock().await;
        if let Some(task) = guard.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the coordinator panicked");
        }
        let reads = match self.inner.reads.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(t) = reads {
            t.abort();
        }
        if let Err(e) = self.inner.node.infra.client.flush().await {
            tracing::debug!(error = %e, "flushing the NATS connection failed");
        }
        Ok(())
    }
}
