//! The NATS side of a node: the connection, the events stream and the three
//! KV buckets, created when missing and checked when present.
//!
//! Invariant: once [`Infra::ensure`] returned, the stream exists with
//! exactly the configured partition count (recorded in its description when
//! it was created; a mismatch is [`ClusterError::PartitionMismatch`]), and
//! the buckets exist. The lease TTL in force is the leases bucket's
//! `max_age` (the server expires leases by it), which is what every local
//! lease check uses.
//!
//! Two connections per node: `client` carries the data (events, the
//! changelog, reads, answers) and `control` carries only the heartbeat and
//! the leases, so a renewal never queues behind megabytes of batches in a
//! socket buffer or behind a data-path flush.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::config::ClusterConfig;
use crate::error::ClusterError;
use crate::names;

/// Handles on the stream and buckets. Cheap to clone (all handles are).
#[derive(Clone)]
pub(crate) struct Infra {
    /// The NATS connection (shared by every task of the node).
    pub client: async_nats::Client,
    /// JetStream API context on `client`.
    pub js: jetstream::Context,
    /// The events stream.
    pub events: stream::Stream,
    /// Partition leases (on the control connection).
    pub leases: kv::Store,
    /// Live nodes (on the control connection).
    pub nodes: kv::Store,
    /// The changelog (after-images and commit markers).
    pub changelog: kv::Store,
    /// The partition count of the stream.
    pub partitions: u32,
    /// The lease TTL in force (the leases bucket's max_age).
    pub lease_ttl: Duration,
}

/// Connects to NATS, naming the connection.
pub(crate) async fn connect(url: &str, name: &str) -> Result<async_nats::Client, ClusterError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url)
        .await
        .map_err(|e| ClusterError::Connect {
            url: url.to_owned(),
            message: e.to_string(),
        })
}

/// A JetStream context with a bounded request timeout.
pub(crate) fn context(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(10))
        .build(client)
}

/// The events stream, checked against `partitions` (`None` = a producer
/// that takes whatever count the stream has).
pub(crate) async fn events_stream(
    js: &jetstream::Context,
    create_with: Option<&ClusterConfig>,
) -> Result<(stream::Stream, u32), ClusterError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match js.get_stream(names::STREAM).await {
            Ok(mut s) => {
                let info = s
                    .info()
                    .await
                    .map_err(|e| ClusterError::nats("reading the stream info", e))?;
                let description = info.config.description.clone().unwrap_or_default();
                let existing = names::partitions_in_description(&description).ok_or_else(|| {
                    ClusterError::Config(format!(
                        "the stream `{}` exists but does not record a partition count (description {description:?}); it was not created by statecraft",
                        names::STREAM
                    ))
                })?;
                if let Some(c) = create_with
                    && c.partitions != existing
                {
                    return Err(ClusterError::PartitionMismatch {
                        stream: names::STREAM.to_owned(),
                        existing,
                        configured: c.partitions,
                    });
                }
                return Ok((s, existing));
            }
            Err(e) => {
                let not_found = matches!(
                    e.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(ref js_err)
                        if js_err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                );
                if !not_found {
                    return Err(ClusterError::nats("looking up the stream", e));
                }
                let Some(c) = create_with else {
                    return Err(ClusterError::NoStream(names::STREAM.to_owned()));
                };
                let config = stream::Config {
                    name: names::STREAM.to_owned(),
                    description: Some(names::stream_description(c.partitions)),
                    subjects: vec![format!("{}.*", names::SUBJECT_PREFIX)],
                    duplicate_window: c.dedup_window,
                    num_replicas: c.replicas,
                    storage: stream::StorageType::File,
                    retention: stream::RetentionPolicy::Limits,
                    ..Default::default()
                };
                match js.create_stream(config).await {
                    Ok(_) => {
                        tracing::info!(
                            stream = names::STREAM,
                            partitions = c.partitions,
                            replicas = c.replicas,
                            "created the events stream"
                        );
                    }
                    // Another node may have created it at the same time:
                    // look again (a bounded number of times).
                    Err(e) if attempt < 3 => {
                        tracing::debug!(error = %e, "creating the stream failed; looking again");
                    }
                    Err(e) => return Err(ClusterError::nats("creating the stream", e)),
                }
            }
        }
    }
}

/// Gets or creates a KV bucket. Created as its backing stream directly
/// (the same stream config the client's `create_key_value` builds): that
/// call first queries the account, whose answer from servers before 2.10
/// the client cannot parse.
async fn bucket(js: &jetstream::Context, config: kv::Config) -> Result<kv::Store, ClusterError> {
    if let Ok(store) = js.get_key_value(config.bucket.clone()).await {
        return Ok(store);
    }
    let stream = stream::Config {
        name: format!("KV_{}", config.bucket),
        description: Some(config.description.clone()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: config.history.max(1),
        max_age: config.max_age,
        max_message_size: -1,
        storage: config.storage,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: config.num_replicas.max(1),
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    if let Err(e) = js.create_stream(stream).await {
        tracing::debug!(bucket = config.bucket, error = %e, "creating a bucket failed; looking again");
    }
    js.get_key_value(config.bucket.clone())
        .await
        .map_err(|e| ClusterError::nats("creating a KV bucket", e))
}

impl Infra {
    /// Connects and makes sure the stream and buckets exist (a node's start).
    pub async fn ensure(config: &ClusterConfig) -> Result<Infra, ClusterError> {
        let client = connect(
            &config.nats_url,
            &format!("statecraft-node-{}", config.node_id),
        )
        .await?;
        let js = context(client.clone());
        let (events, partitions) = events_stream(&js, Some(config)).await?;
        let leases = bucket(
            &js,
            kv::Config {
                bucket: names::LEASES.to_owned(),
                description: "statecraft partition leases: partition -> owner".to_owned(),
                history: 1,
                max_age: config.lease_ttl,
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            },
        )
        .await?;
        let nodes = bucket(
            &js,
            kv::Config {
                bucket: names::NODES.to_owned(),
                description: "statecraft live nodes: id -> http address, heartbeat".to_owned(),
                history: 1,
                max_age: config.lease_ttl,
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            },
        )
        .await?;
        let changelog = bucket(
            &js,
            kv::Config {
                bucket: names::CHANGELOG.to_owned(),
                description: "statecraft changelog: k.<p>.<key> after-images, m.<p> commit markers"
                    .to_owned(),
                history: 1,
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            },
        )
        .await?;
        // Leases and heartbeats go over a connection of their own.
        let control = connect(
            &config.nats_url,
            &format!("statecraft-node-{}-control", config.node_id),
        )
        .await?;
        let control_js = context(control);
        let leases = control_js
            .get_key_value(leases.name.clone())
            .await
            .map_err(|e| ClusterError::nats("opening the leases bucket", e))?;
        let nodes = control_js
            .get_key_value(nodes.name.clone())
            .await
            .map_err(|e| ClusterError::nats("opening the nodes bucket", e))?;
        let mut lease_stream = leases.stream.clone();
        let lease_ttl = match lease_stream.info().await {
            Ok(info) if !info.config.max_age.is_zero() => info.config.max_age,
            _ => config.lease_ttl,
        };
        if lease_ttl != config.lease_ttl {
            tracing::warn!(
                configured_ms = config.lease_ttl.as_millis() as u64,
                in_force_ms = lease_ttl.as_millis() as u64,
                "the leases bucket was created with another TTL; using the bucket's"
            );
        }
        Ok(Infra {
            client,
            js,
            events,
            leases,
            nodes,
            changelog,
            partitions,
            lease_ttl,
        })
    }
}
