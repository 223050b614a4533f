//! The server's settings: [`ServeArgs`] (what a user typed — flags, `STATECRAFT_*`
//! environment variables, a TOML file) resolved into [`ServeConfig`] (every
//! setting with a value, validated).
//!
//! Precedence: flags > environment > TOML file (`--config FILE`) > defaults.
//! clap applies the first two (each flag has an `env` fallback); the file
//! fills what is still unset ([`ServeArgs::or`]); [`ServeConfig::resolve`]
//! applies defaults and validates.
//!
//! Invariant: a [`ServeConfig`] that [`ServeConfig::validate`] accepted
//! builds an engine and binds listeners without any further setting error;
//! every default is written once, in [`ServeConfig::default`], and the
//! `--help` text that repeats it is checked against it by a test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use statecraft_engine::{AckMode, EngineConfig, Limits, OverflowPolicy};

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML, has an unknown key or a mistyped value.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, naming the key.
        message: String,
    },
    /// A setting has an invalid value.
    #[error("invalid setting `{setting}`: {message}")]
    Invalid {
        /// The setting's name (the flag without dashes, underscores).
        setting: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable, multi-line.
    #[default]
    Pretty,
}

/// A secret string whose `Debug` does not show it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// The adaptive controller's default p95 queue-wait target (`--target-wait-ms`).
const DEFAULT_TARGET_WAIT: Duration = Duration::from_millis(10);

/// Help text ending in `[default: VALUE]`, with the value taken from the
/// engine's own defaults (so `--help` cannot drift from them).
fn dflt(text: &str, value: impl std::fmt::Display) -> String {
    format!("{text} [default: {value}]")
}

fn engine_default() -> EngineConfig {
    EngineConfig::default()
}

/// `statecraft serve`'s arguments: every setting optional, so that what is
/// unset can come from the next source. The same struct is the TOML file's
/// schema (keys are the flag names with underscores; an unknown key is an
/// error naming it).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file of settings (keys = flag names with underscores).
    #[arg(long, env = "STATECRAFT_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Directory of the embedded store [default: ./statecraft-data].
    #[arg(long, env = "STATECRAFT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Keep state in memory only (nothing survives a restart; durable acks
    /// mean applied) [default: false].
    #[arg(long, env = "STATECRAFT_IN_MEMORY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub in_memory: Option<bool>,

    /// HTTP listen address [default: 127.0.0.1:7470].
    #[arg(long, env = "STATECRAFT_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,

    /// TCP ingest listen address [default: 127.0.0.1:7471].
    #[arg(long, env = "STATECRAFT_TCP", value_name = "ADDR")]
    pub tcp: Option<SocketAddr>,

    /// Number of shards (worker threads owning keys) [default: available cores].
    #[arg(long, env = "STATECRAFT_SHARDS", value_name = "N")]
    pub shards: Option<usize>,

    /// Queue capacity per shard, in events.
    #[arg(long, env = "STATECRAFT_QUEUE_CAPACITY", value_name = "EVENTS",
        help = dflt("Queue capacity per shard, in events", engine_default().queue_capacity))]
    pub queue_capacity: Option<usize>,

    /// Queue capacity per shard, in bytes.
    #[arg(long, env = "STATECRAFT_QUEUE_CAPACITY_BYTES", value_name = "BYTES",
        help = dflt("Queue capacity per shard, in bytes", engine_default().queue_capacity_bytes))]
    pub queue_capacity_bytes: Option<usize>,

    /// What a full queue does: block, reject, drop_oldest, drop_newest [default: block].
    #[arg(long, env = "STATECRAFT_OVERFLOW", value_name = "POLICY")]
    pub overflow: Option<String>,

    /// Under `block`: how long a producer waits for room before its events are
    /// answered `overloaded` (HTTP: 503 + Retry-After); 0 = forever [default: 5000].
    #[arg(long, env = "STATECRAFT_BLOCK_TIMEOUT_MS", value_name = "MS")]
    pub block_timeout_ms: Option<u64>,

    /// Most events per batch.
    #[arg(long, env = "STATECRAFT_MAX_BATCH", value_name = "EVENTS",
        help = dflt("Most events per batch", engine_default().max_batch))]
    pub max_batch: Option<usize>,

    /// Longest a batch waits for more events after its first, µs.
    #[arg(long, env = "STATECRAFT_MAX_WAIT_US", value_name = "US",
        help = dflt("Longest a batch waits for more events after its first, µs", engine_default().max_wait.as_micros()))]
    pub max_wait_us: Option<u64>,

    /// Default ack mode: durable, applied, none [default: durable].
    #[arg(long, env = "STATECRAFT_ACK", value_name = "MODE")]
    pub ack: Option<String>,

    /// Checkpoint each shard's dirty keys at least this often, ms.
    #[arg(long, env = "STATECRAFT_CHECKPOINT_INTERVAL_MS", value_name = "MS",
        help = dflt("Checkpoint each shard's dirty keys at least this often, ms", engine_default().checkpoint_interval.as_millis()))]
    pub checkpoint_interval_ms: Option<u64>,

    /// Checkpoint also after this many logged batches per shard.
    #[arg(long, env = "STATECRAFT_CHECKPOINT_BATCHES", value_name = "N",
        help = dflt("Checkpoint also after this many logged batches per shard", engine_default().checkpoint_batches))]
    pub checkpoint_batches: Option<u64>,

    /// Checkpoint also after this many bytes logged per shard.
    #[arg(
        long,
        env = "STATECRAFT_CHECKPOINT_BYTES",
        value_name = "BYTES",
        help = dflt("Checkpoint also after this many bytes logged per shard", engine_default().checkpoint_bytes)
    )]
    pub checkpoint_bytes: Option<u64>,

    /// Adaptive queue capacity: the p95 queue wait to hold, µs; 0 = fixed
    /// capacity [default: 0].
    #[arg(long, env = "STATECRAFT_ADAPTIVE_TARGET_US", value_name = "US")]
    pub adaptive_target_us: Option<u64>,

    /// Adaptive capacity: smallest queue capacity per shard, events [default: 64].
    #[arg(
        long,
        visible_alias = "min-capacity",
        env = "STATECRAFT_ADAPTIVE_MIN",
        value_name = "EVENTS"
    )]
    pub adaptive_min: Option<usize>,

    /// Adaptive capacity: largest queue capacity per shard, events [default: the queue capacity].
    #[arg(
        long,
        visible_alias = "max-capacity",
        env = "STATECRAFT_ADAPTIVE_MAX",
        value_name = "EVENTS"
    )]
    pub adaptive_max: Option<usize>,

    /// Adaptive queue capacity on or off: each shard queue resizes itself
    /// between --min-capacity and --max-capacity to hold its p95 wait near
    /// --target-wait-ms (docs/adaptive-queue.md) [default: false].
    #[arg(long, env = "STATECRAFT_ADAPTIVE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub adaptive: Option<bool>,

    /// Adaptive capacity: the p95 queue wait to hold, ms (--adaptive-target-us,
    /// when given, is the finer spelling and wins) [default: 10].
    #[arg(long, env = "STATECRAFT_TARGET_WAIT_MS", value_name = "MS")]
    pub target_wait_ms: Option<u64>,

    /// Hot-key cache budget per shard, bytes.
    #[arg(long, env = "STATECRAFT_CACHE_BYTES", value_name = "BYTES",
        help = dflt("Hot-key cache budget per shard, bytes", engine_default().cache_bytes))]
    pub cache_bytes: Option<usize>,

    /// How long an idempotency id is remembered, seconds.
    #[arg(long, env = "STATECRAFT_DEDUP_WINDOW_S", value_name = "S",
        help = dflt("How long an idempotency id is remembered, seconds", engine_default().dedup_window.as_secs()))]
    pub dedup_window_s: Option<u64>,

    /// Largest HTTP body and TCP frame, bytes [default: 16777216].
    #[arg(long, env = "STATECRAFT_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Longest key, bytes.
    #[arg(long, env = "STATECRAFT_MAX_KEY_BYTES", value_name = "BYTES",
        help = dflt("Longest key, bytes", Limits::DEFAULT.max_key_bytes))]
    pub max_key_bytes: Option<usize>,

    /// Largest value (estimated serialized size), bytes.
    #[arg(long, env = "STATECRAFT_MAX_VALUE_BYTES", value_name = "BYTES",
        help = dflt("Largest value (estimated serialized size), bytes", Limits::DEFAULT.max_value_bytes))]
    pub max_value_bytes: Option<usize>,

    /// Deepest nesting an event may write into a key (at most 100).
    #[arg(long, env = "STATECRAFT_MAX_DEPTH", value_name = "LEVELS",
        help = dflt("Deepest nesting an event may write into a key (at most 100)", Limits::DEFAULT.max_depth))]
    pub max_depth: Option<usize>,

    /// Most TCP connections, and most HTTP requests in progress, at once [default: 1024].
    #[arg(long, env = "STATECRAFT_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Events frames a TCP connection reads ahead of their ACKs [default: 64].
    #[arg(long, env = "STATECRAFT_MAX_IN_FLIGHT_FRAMES", value_name = "N")]
    pub max_in_flight_frames: Option<usize>,

    /// Require `Authorization: Bearer TOKEN` on every HTTP route but /healthz,
    /// and the token in the TCP HELLO [default: none].
    #[arg(
        long,
        env = "STATECRAFT_AUTH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub auth_token: Option<Secret>,

    /// TLS certificate chain for HTTP, PEM (with --tls-key) [default: none].
    #[arg(long, env = "STATECRAFT_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key for HTTP, PEM (with --tls-cert) [default: none].
    #[arg(long, env = "STATECRAFT_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Log format: json, pretty [default: pretty].
    #[arg(long, env = "STATECRAFT_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Log filter, e.g. info or statecraft_server=debug,info [default: info].
    #[arg(long, env = "STATECRAFT_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// On shutdown, how long in-flight HTTP requests get to finish, ms [default: 30000].
    #[arg(long, env = "STATECRAFT_SHUTDOWN_GRACE_MS", value_name = "MS")]
    pub shutdown_grace_ms: Option<u64>,

    /// Test hook: busy time per applied event, µs (plays a slow consumer) [default: 0].
    #[arg(
        long,
        env = "STATECRAFT_APPLY_DELAY_US",
        value_name = "US",
        hide = true
    )]
    pub apply_delay_us: Option<u64>,

    /// Run as a cluster node on NATS JetStream at this URL (scale-out mode,
    /// docs/scale-out.md) [default: none: single node].
    #[arg(long, env = "STATECRAFT_NATS", value_name = "URL")]
    pub nats: Option<String>,

    /// Cluster node id, [A-Za-z0-9_-], stable across restarts [default: HOSTNAME-HTTPPORT].
    #[arg(long, env = "STATECRAFT_NODE_ID", value_name = "ID")]
    pub node_id: Option<String>,

    /// Partitions of the event stream; fixed when the stream is created [default: 16].
    #[arg(long, env = "STATECRAFT_PARTITIONS", value_name = "N")]
    pub partitions: Option<u32>,

    /// Replicas of the NATS stream and KV buckets [default: 1].
    #[arg(long, env = "STATECRAFT_NATS_REPLICAS", value_name = "N")]
    pub nats_replicas: Option<usize>,

    /// Partition lease TTL: a silent node's partitions move after this, ms [default: 10000].
    #[arg(long, env = "STATECRAFT_LEASE_TTL_MS", value_name = "MS")]
    pub lease_ttl_ms: Option<u64>,

    /// Test hook: pause between a batch's local commit and its changelog
    /// commit in cluster mode, ms [default: 0].
    #[arg(
        long,
        env = "STATECRAFT_CLUSTER_COMMIT_DELAY_MS",
        value_name = "MS",
        hide = true
    )]
    pub cluster_commit_delay_ms: Option<u64>,
}

macro_rules! or_fields {
    ($a:ident, $b:ident, $($f:ident),* $(,)?) => {
        ServeArgs { $($f: $a.$f.or($b.$f),)* }
    };
}

impl ServeArgs {
    /// Fills every unset field of `self` from `lower` (a lower-precedence source).
    pub fn or(self, lower: ServeArgs) -> ServeArgs {
        let a = self;
        let b = lower;
        or_fields!(
            a,
            b,
            config,
            data_dir,
            in_memory,
            http,
            tcp,
            shards,
            queue_capacity,
            queue_capacity_bytes,
            overflow,
            block_timeout_ms,
            max_batch,
            max_wait_us,
            ack,
            checkpoint_interval_ms,
            checkpoint_batches,
            checkpoint_bytes,
            adaptive_target_us,
            adaptive_min,
            adaptive_max,
            adaptive,
            target_wait_ms,
            cache_bytes,
            dedup_window_s,
            max_body_bytes,
            max_key_bytes,
            max_value_bytes,
            max_depth,
            max_connections,
            max_in_flight_frames,
            auth_token,
            tls_cert,
            tls_key,
            log_format,
            log_level,
            shutdown_grace_ms,
            apply_delay_us,
            nats,
            node_id,
            partitions,
            nats_replicas,
            lease_ttl_ms,
            cluster_commit_delay_ms,
        )
    }

    /// Parses a TOML config text (`path` is for messages).
    pub fn from_toml(text: &str, path: &Path) -> Result<ServeArgs, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }
}

/// `HOSTNAME-PORT`, keeping only the characters a node id may hold.
fn default_node_id(port: u16) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_else(|| "node".to_owned());
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let host = if host.is_empty() {
        "node".to_owned()
    } else {
        host
    };
    format!("{host}-{port}")
}

/// Every setting of `statecraft serve`, resolved and validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where the embedded store lives; `None` = in memory only.
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address (port 0 = any free port).
    pub http: SocketAddr,
    /// TCP ingest listen address (port 0 = any free port).
    pub tcp: SocketAddr,
    /// Shards.
    pub shards: usize,
    /// Queue capacity per shard, events.
    pub queue_capacity: usize,
    /// Queue capacity per shard, bytes.
    pub queue_capacity_bytes: usize,
    /// What a full queue does.
    pub overflow: OverflowPolicy,
    /// Under `block`, the longest wait for room; `None` = forever.
    pub block_timeout: Option<Duration>,
    /// Most events per batch.
    pub max_batch: usize,
    /// Longest batch wait after its first event.
    pub max_wait: Duration,
    /// Default ack mode.
    pub ack: AckMode,
    /// Checkpoint interval.
    pub checkpoint_interval: Duration,
    /// Checkpoint after this many batches per shard.
    pub checkpoint_batches: u64,
    /// Checkpoint after this many logged bytes per shard.
    pub checkpoint_bytes: u64,
    /// Adaptive capacity: `(target p95 wait, min, max)`; `None` = fixed.
    pub adaptive: Option<(Duration, usize, usize)>,
    /// Hot-key cache per shard, bytes.
    pub cache_bytes: usize,
    /// Idempotency window.
    pub dedup_window: Duration,
    /// Largest HTTP body and TCP frame payload, bytes.
    pub max_body_bytes: usize,
    /// Per-event limits (key, value, depth).
    pub limits: Limits,
    /// Most TCP connections and most concurrent HTTP requests.
    pub max_connections: usize,
    /// Events frames read ahead of their ACKs, per TCP connection.
    pub max_in_flight_frames: usize,
    /// Bearer token required on every route but /healthz (and in TCP HELLO).
    pub auth_token: Option<Secret>,
    /// TLS certificate chain (PEM) for HTTP.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for HTTP.
    pub tls_key: Option<PathBuf>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber `EnvFilter` syntax).
    pub log_level: String,
    /// How long in-flight HTTP requests get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Test hook: busy time per applied event.
    pub apply_delay: Duration,
    /// Cluster mode (`--nats`): the node's settings; `None` = single node.
    /// Its `http_addr` is filled in by the server once HTTP is bound.
    pub cluster: Option<statecraft_cluster::ClusterConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let engine = EngineConfig::default();
        ServeConfig {
            data_dir: Some(PathBuf::from("./statecraft-data")),
            http: SocketAddr::from(([127, 0, 0, 1], 7470)),
            tcp: SocketAddr::from(([127, 0, 0, 1], 7471)),
            shards: engine.shards,
            queue_capacity: engine.queue_capacity,
            queue_capacity_bytes: engine.queue_capacity_bytes,
            overflow: OverflowPolicy::Block,
            block_timeout: Some(Duration::from_millis(5000)),
            max_batch: engine.max_batch,
            max_wait: engine.max_wait,
            ack: AckMode::Durable,
            checkpoint_interval: engine.checkpoint_interval,
            checkpoint_batches: engine.checkpoint_batches,
            checkpoint_bytes: engine.checkpoint_bytes,
            adaptive: None,
            cache_bytes: engine.cache_bytes,
            dedup_window: engine.dedup_window,
            max_body_bytes: 16 << 20,
            limits: Limits::DEFAULT,
            max_connections: 1024,
            max_in_flight_frames: 64,
            auth_token: None,
            tls_cert: None,
            tls_key: None,
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
            shutdown_grace: Duration::from_secs(30),
            apply_delay: Duration::ZERO,
            cluster: None,
        }
    }
}

impl ServeConfig {
    /// A config for tests and embedding: in memory, both listeners on
    /// `127.0.0.1:0`, two shards; every other setting at its default.
    pub fn ephemeral() -> Self {
        ServeConfig {
            data_dir: None,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            tcp: SocketAddr::from(([127, 0, 0, 1], 0)),
            shards: 2,
            ..ServeConfig::default()
        }
    }

    /// Loads the config: reads `args.config` (if any) as the TOML layer under
    /// `args`, applies defaults, validates.
    pub fn load(args: ServeArgs) -> Result<ServeConfig, ConfigError> {
        let merged = match args.config.clone() {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                args.or(ServeArgs::from_toml(&text, &path)?)
            }
            None => args,
        };
        ServeConfig::resolve(merged)
    }

    /// Applies defaults to what `args` leaves unset and validates.
    pub fn resolve(args: ServeArgs) -> Result<ServeConfig, ConfigError> {
        let d = ServeConfig::default();
        let in_memory = args.in_memory.unwrap_or(false);
        let overflow = match args.overflow.as_deref() {
            None => d.overflow,
            Some(s) => OverflowPolicy::parse(s).ok_or_else(|| {
                invalid(
                    "overflow",
                    format!("`{s}` is not one of block, reject, drop_oldest, drop_newest"),
                )
            })?,
        };
        let ack = match args.ack.as_deref() {
            None => d.ack,
            Some(s) => AckMode::parse(s).ok_or_else(|| {
                invalid("ack", format!("`{s}` is not one of durable, applied, none"))
            })?,
        };
        let log_format = match args.log_format.as_deref() {
            None => d.log_format,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(s) => {
                return Err(invalid(
                    "log_format",
                    format!("`{s}` is not one of json, pretty"),
                ));
            }
        };
        let config = ServeConfig {
            data_dir: if in_memory {
                None
            } else {
                args.data_dir.or(d.data_dir)
            },
            http: args.http.unwrap_or(d.http),
            tcp: args.tcp.unwrap_or(d.tcp),
            shards: args.shards.unwrap_or(d.shards),
            queue_capacity: args.queue_capacity.unwrap_or(d.queue_capacity),
            queue_capacity_bytes: args.queue_capacity_bytes.unwrap_or(d.queue_capacity_bytes),
            overflow,
            block_timeout: match args.block_timeout_ms {
                None => d.block_timeout,
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
            },
            max_batch: args.max_batch.unwrap_or(d.max_batch),
            max_wait: args.max_wait_us.map_or(d.max_wait, Duration::from_micros),
            ack,
            checkpoint_interval: args
                .checkpoint_interval_ms
                .map_or(d.checkpoint_interval, Duration::from_millis),
            checkpoint_batches: args.checkpoint_batches.unwrap_or(d.checkpoint_batches),
            checkpoint_bytes: args.checkpoint_bytes.unwrap_or(d.checkpoint_bytes),
            // On with --adaptive, or with a non-zero --adaptive-target-us;
            // an explicit --adaptive=false wins.
            adaptive: match (args.adaptive, args.adaptive_target_us.filter(|&us| us > 0)) {
                (Some(false), _) | (None, None) => None,
                (Some(true), us) | (None, us @ Some(_)) => {
                    let target = match (us, args.target_wait_ms) {
                        (Some(us), _) => Duration::from_micros(us),
                        (None, Some(ms)) => Duration::from_millis(ms),
                        (None, None) => DEFAULT_TARGET_WAIT,
                    };
                    let queue = args.queue_capacity.unwrap_or(d.queue_capacity);
                    let min = args.adaptive_min.unwrap_or(64.min(queue));
                    Some((target, min, args.adaptive_max.unwrap_or(queue)))
                }
            },
            cache_bytes: args.cache_bytes.unwrap_or(d.cache_bytes),
            dedup_window: args
                .dedup_window_s
                .map_or(d.dedup_window, Duration::from_secs),
            max_body_bytes: args.max_body_bytes.unwrap_or(d.max_body_bytes),
            limits: Limits {
                max_key_bytes: args.max_key_bytes.unwrap_or(d.limits.max_key_bytes),
                max_value_bytes: args.max_value_bytes.unwrap_or(d.limits.max_value_bytes),
                max_depth: args.max_depth.unwrap_or(d.limits.max_depth),
            },
            max_connections: args.max_connections.unwrap_or(d.max_connections),
            max_in_flight_frames: args.max_in_flight_frames.unwrap_or(d.max_in_flight_frames),
            auth_token: args.auth_token,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
            log_format,
            log_level: args.log_level.unwrap_or(d.log_level),
            shutdown_grace: args
                .shutdown_grace_ms
                .map_or(d.shutdown_grace, Duration::from_millis),
            apply_delay: args
                .apply_delay_us
                .map_or(d.apply_delay, Duration::from_micros),
            cluster: None,
        };
        let mut config = config;
        if let Some(url) = args.nats.filter(|u| !u.is_empty()) {
            let node_id = args
                .node_id
                .unwrap_or_else(|| default_node_id(config.http.port()));
            let mut c = statecraft_cluster::ClusterConfig::new(url, node_id);
            if let Some(p) = args.partitions {
                c.partitions = p;
            }
            if let Some(r) = args.nats_replicas {
                c.replicas = r;
            }
            if let Some(ms) = args.lease_ttl_ms {
                c.lease_ttl = Duration::from_millis(ms);
            }
            if let Some(ms) = args.cluster_commit_delay_ms {
                c.commit_delay = Duration::from_millis(ms);
            }
            c.max_batch = config.max_batch;
            c.dedup_window = Duration::from_secs(120);
            config.cluster = Some(c);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every setting; the first bad one is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(c) = &self.cluster {
            c.validate().map_err(|e| invalid("nats", e.to_string()))?;
        }
        fn range(setting: &'static str, v: usize, lo: usize, hi: usize) -> Result<(), ConfigError> {
            if v < lo || v > hi {
                return Err(invalid(setting, format!("{v} is outside {lo}..={hi}")));
            }
            Ok(())
        }
        range("shards", self.shards, 1, 1024)?;
        range("queue_capacity", self.queue_capacity, 1, 1 << 30)?;
        range(
            "queue_capacity_bytes",
            self.queue_capacity_bytes,
            1024,
            usize::MAX,
        )?;
        range("max_batch", self.max_batch, 1, 1 << 20)?;
        range(
            "max_body_bytes",
            self.max_body_bytes,
            1024,
            (u32::MAX as usize) - 16,
        )?;
        // The store's hard limit: a longer key would be acked and then fail
        // its checkpoint (issue 16).
        range(
            "max_key_bytes",
            self.limits.max_key_bytes,
            1,
            statecraft_engine::limits::MAX_KEY_BYTES,
        )?;
        range(
            "max_value_bytes",
            self.limits.max_value_bytes,
            1,
            usize::MAX,
        )?;
        // serde_json parses at most 128 levels; stored values must stay
        // re-readable (see the engine's limits module).
        range("max_depth", self.limits.max_depth, 1, 100)?;
        range("max_connections", self.max_connections, 1, 1 << 20)?;
        range(
            "max_in_flight_frames",
            self.max_in_flight_frames,
            1,
            1 << 16,
        )?;
        range(
            "checkpoint_batches",
            self.checkpoint_batches as usize,
            1,
            usize::MAX,
        )?;
        if let Some((_, min, max)) = self.adaptive
            && (min == 0 || min > max)
        {
            return Err(invalid(
                "adaptive_min",
                format!("needs 1 <= adaptive_min ({min}) <= adaptive_max ({max})"),
            ));
        }
        if self.max_wait > Duration::from_secs(10) {
            return Err(invalid("max_wait_us", "at most 10 s (10000000 µs)"));
        }
        if let Some(t) = &self.auth_token
            && t.expose().is_empty()
        {
            return Err(invalid(
                "auth_token",
                "empty; leave it unset to turn authentication off",
            ));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err(invalid("tls_key", "--tls-cert needs --tls-key too")),
            (None, Some(_)) => return Err(invalid("tls_cert", "--tls-key needs --tls-cert too")),
            _ => {}
        }
        if let Some(dir) = &self.data_dir
            && dir.as_os_str().is_empty()
        {
            return Err(invalid("data_dir", "empty path"));
        }
        Ok(())
    }

    /// The engine's settings.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            shards: self.shards,
            queue_capacity: self.queue_capacity,
            queue_capacity_bytes: self.queue_capacity_bytes,
            overflow: self.overflow,
            block_timeout: self.block_timeout,
            max_batch: self.max_batch,
            max_wait: self.max_wait,
            ack: self.ack,
            limits: self.limits,
            dedup_window: self.dedup_window,
            apply_delay: self.apply_delay,
            data_dir: self.data_dir.clone(),
            checkpoint_interval: self.checkpoint_interval,
            checkpoint_batches: self.checkpoint_batches,
            checkpoint_bytes: self.checkpoint_bytes,
            adaptive: self.adaptive.map(|(target, min, max)| {
                statecraft_engine::adaptive::AdaptiveConfig::new(target, min, max)
            }),
            cache_bytes: self.cache_bytes,
            ..EngineConfig::default()
        }
    }

    /// True when HTTP is served over TLS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn defaults_resolve_and_match_the_help_text() {
        let c = ServeConfig::resolve(ServeArgs::default()).expect("defaults are valid");
        assert_eq!(c.http.to_string(), "127.0.0.1:7470");
        assert_eq!(c.tcp.to_string(), "127.0.0.1:7471");
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("./statecraft-data")));
        let help = Cli::command().render_long_help().to_string();
        let e = EngineConfig::default();
        for expect in [
            "[default: ./statecraft-data]".to_owned(),
            format!("[default: {}]", c.http),
            format!("[default: {}]", c.tcp),
            format!("[default: {}]", e.queue_capacity),
            format!("[default: {}]", e.queue_capacity_bytes),
            "[default: block]".to_owned(),
            format!(
                "[default: {}]",
                c.block_timeout.map_or(0, |d| d.as_millis())
            ),
            format!("[default: {}]", e.max_batch),
            format!("[default: {}]", e.max_wait.as_micros()),
            "[default: durable]".to_owned(),
            format!("[default: {}]", e.checkpoint_interval.as_millis()),
            format!("[default: {}]", e.checkpoint_batches),
            format!("[default: {}]", e.checkpoint_bytes),
            format!("[default: {}]", e.cache_bytes),
            format!("[default: {}]", e.dedup_window.as_secs()),
            format!("[default: {}]", c.max_body_bytes),
            format!("[default: {}]", c.limits.max_key_bytes),
            format!("[default: {}]", c.limits.max_value_bytes),
            format!("[default: {}]", c.limits.max_depth),
            format!("[default: {}]", c.max_connections),
            format!("[default: {}]", c.max_in_flight_frames),
            format!("[default: {}]", c.shutdown_grace.as_millis()),
            "[default: pretty]".to_owned(),
            "[default: info]".to_owned(),
            format!("[default: {}]", DEFAULT_TARGET_WAIT.as_millis()),
        ] {
            let flat: String = help.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(flat.contains(&expect), "--help lacks `{expect}`");
        }
    }

    #[test]
    fn adaptive_flags_turn_the_controller_on_and_off() {
        let parse = |args: &[&str]| {
            let mut v = vec!["x"];
            v.extend_from_slice(args);
            let flags = Cli::try_parse_from(v).expect("parses").serve;
            ServeConfig::resolve(flags).expect("valid").adaptive
        };
        assert_eq!(parse(&[]), None, "off by default");
        let (target, min, max) = parse(&["--adaptive"]).expect("on");
        assert_eq!(target, DEFAULT_TARGET_WAIT);
        assert!(min <= max);
        let on = parse(&[
            "--adaptive",
            "--target-wait-ms",
            "25",
            "--min-capacity",
            "10",
            "--max-capacity",
            "500",
        ]);
        assert_eq!(on, Some((Duration::from_millis(25), 10, 500)));
        assert_eq!(
            parse(&["--adaptive-target-us", "2500"]).map(|a| a.0),
            Some(Duration::from_micros(2500)),
            "a target in µs turns it on too"
        );
        assert_eq!(
            parse(&["--adaptive=false", "--adaptive-target-us", "2500"]),
            None
        );
    }

    #[test]
    fn precedence_is_flags_then_env_then_file_then_defaults() {
        let file = ServeArgs::from_toml(
            "http = \"127.0.0.1:9000\"\ntcp = \"127.0.0.1:9001\"\nshards = 3\n",
            Path::new("t.toml"),
        )
        .expect("parses");
        let flags = Cli::try_parse_from(["x", "--http", "127.0.0.1:8000"])
            .expect("parses")
            .serve;
        let c = ServeConfig::resolve(flags.or(file)).expect("valid");
        assert_eq!(c.http.port(), 8000, "flag beats file");
        assert_eq!(c.tcp.port(), 9001, "file beats default");
        assert_eq!(c.shards, 3);
        assert_eq!(c.ack, AckMode::Durable, "default");
    }

    #[test]
    fn unknown_toml_key_is_named() {
        let err = ServeArgs::from_toml("htpp = \"x\"\n", Path::new("s.toml")).expect_err("unknown");
        let text = err.to_string();
        assert!(text.contains("htpp"), "{text}");
        assert!(text.contains("s.toml"), "{text}");
    }

    #[test]
    fn bad_values_are_named() {
        let args = ServeArgs {
            overflow: Some("sometimes".into()),
            ..ServeArgs::default()
        };
        let text = ServeConfig::resolve(args).expect_err("bad").to_string();
        assert!(
            text.contains("overflow") && text.contains("sometimes"),
            "{text}"
        );
        let args = ServeArgs {
            tls_cert: Some("c.pem".into()),
            ..ServeArgs::default()
        };
        assert!(ServeConfig::resolve(args).is_err());
        let args = ServeArgs {
            max_depth: Some(1000),
            ..ServeArgs::default()
        };
        assert!(ServeConfig::resolve(args).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let c = ServeConfig {
            auth_token: Some(Secret::new("hunter2")),
            ..ServeConfig::ephemeral()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
