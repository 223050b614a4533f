//! The server's settings, declared once in [`settings_table!`]'s one
//! invocation below: each row gives a setting's name (= the TOML key, and
//! the flag with `-` for `_`), type, default, unit, environment variable
//! and help. From that table come [`ServeArgs`] (the `serve` flags, each
//! with its env fallback, and the TOML file's schema), [`ServeArgs::or`]
//! (layering), [`ServeArgs::defaults`] and [`table`] (what `--help`,
//! `examples/statecraft.toml` and the docs show; a test checks they agree).
//! [`ServeConfig::resolve`] turns the layered values into a [`ServeConfig`]:
//! the engine's [`EngineConfig`] plus the server's own settings.
//!
//! Precedence: flags > environment > TOML file (`--config FILE`) > defaults.
//! clap applies the first two; the file fills what is still unset; the
//! table's defaults fill the rest.
//!
//! Invariant: a [`ServeConfig`] that [`ServeConfig::validate`] accepted
//! builds an engine and binds listeners without any further setting error.
//! Engine settings are checked by the engine's own
//! [`EngineConfig::validate`] (the same check `EngineBuilder::open` and
//! `statecraft pipe` run); only the server's settings are checked here.
//!
//! # Adding a setting
//!
//! 1. Add a row to the table (name, type, default, env, unit, help).
//! 2. Map its value in [`ServeConfig::from_values`] (engine settings go into
//!    `engine`; bounds of engine settings go in `EngineConfig::validate`).
//! 3. Add its line to `examples/statecraft.toml` (the table test says so if
//!    you forget).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use statecraft_engine::adaptive::AdaptiveConfig;
use statecraft_engine::{AckMode, EngineConfig, Limits, OverflowPolicy, SettingError};

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

impl From<SettingError> for ConfigError {
    fn from(e: SettingError) -> Self {
        ConfigError::Invalid {
            setting: e.setting,
            message: e.message,
        }
    }
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per entry, no source paths; colour only on a terminal.
    #[default]
    Compact,
    /// One JSON object per line (for log collectors).
    Json,
    /// Human-readable, several lines per entry (for a terminal).
    Pretty,
}

impl LogFormat {
    /// The format's name, as flags and the TOML file spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Compact => "compact",
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        }
    }
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

/// How a setting's value is shown in `--help` and written in TOML.
pub trait SettingValue {
    /// As `--help` shows it after `default:`.
    fn show(&self) -> String;
    /// As a TOML value (strings quoted).
    fn toml(&self) -> String {
        self.show()
    }
}

macro_rules! plain_setting_value {
    ($($t:ty),*) => {$(
        impl SettingValue for $t {
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
plain_setting_value!(usize, u64, u32, bool);

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

macro_rules! quoted_setting_value {
    ($($t:ty => $show:expr),* $(,)?) => {$(
        impl SettingValue for $t {
            fn show(&self) -> String {
                let f: fn(&$t) -> String = $show;
                f(self)
            }
            fn toml(&self) -> String {
                toml_string(&self.show())
            }
        }
    )*};
}
quoted_setting_value!(
    String => |s| s.clone(),
    PathBuf => |p| p.display().to_string(),
    SocketAddr => |a| a.to_string(),
    OverflowPolicy => |p| p.as_str().to_owned(),
    AckMode => |a| a.as_str().to_owned(),
    LogFormat => |f| f.as_str().to_owned(),
    Secret => |_| "<redacted>".to_owned(),
);

/// One row of the settings table, as `--help`, the example config file and
/// the docs see it.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The name: the TOML key; the flag is `--` + the name with `-` for `_`.
    pub name: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The unit (also the flag's value name): `MS`, `BYTES`, `EVENTS`, …
    pub unit: &'static str,
    /// What it does.
    pub help: String,
    /// The default as `--help` shows it (`None`: unset by default).
    pub default: Option<String>,
    /// The default as a TOML value, when it is a fixed value (not computed
    /// at start, like the number of cores).
    pub toml_default: Option<String>,
}

impl Setting {
    /// The flag, e.g. `--max-wait-us`.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }
}

/// The help text of setting `name`: its doc line and its default.
fn help_for(name: &str) -> String {
    match table().into_iter().find(|s| s.name == name) {
        Some(Setting {
            help,
            default: Some(d),
            ..
        }) => format!("{help} [default: {d}]"),
        Some(s) => s.help,
        None => String::new(),
    }
}

fn doc_text(lines: &[&str]) -> String {
    lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
}

/// Declares the settings table; see the module docs. Each row:
/// `/// help` `name: Type = default_expr (an Option), env "ENV", unit "UNIT"`
/// `[, shown "how a computed default reads"] [, arg(extra clap attributes)];`
macro_rules! settings_table {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty = $default:expr, env $env:literal, unit $unit:literal
        $(, shown $shown:literal)?
        $(, arg($($extra:tt)*))?
        ;
    )*) => {
        /// `statecraft serve`'s arguments: every setting optional, so that
        /// what is unset can come from the next source. The same struct is
        /// the TOML file's schema (keys are the table's names; an unknown
        /// key is an error naming it).
        #[derive(Debug, Clone, Default, clap::Args, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ServeArgs {
            /// TOML file of settings (keys = flag names with underscores;
            /// examples/statecraft.toml lists them all).
            #[arg(long, env = "STATECRAFT_CONFIG", value_name = "FILE")]
            #[serde(skip)]
            pub config: Option<PathBuf>,
            $(
                $(#[doc = $doc])*
                #[arg(long, env = $env, value_name = $unit, help = help_for(stringify!($name)) $(, $($extra)*)?)]
                pub $name: Option<$ty>,
            )*
        }

        impl ServeArgs {
            /// Fills every unset field of `self` from `lower` (a
            /// lower-precedence source).
            pub fn or(self, lower: ServeArgs) -> ServeArgs {
                ServeArgs {
                    config: self.config.or(lower.config),
                    $($name: self.$name.or(lower.$name),)*
                }
            }

            /// Every setting at its default (`None` where the default is
            /// "unset" or computed from other settings).
            pub fn defaults() -> ServeArgs {
                ServeArgs {
                    config: None,
                    $($name: $default,)*
                }
            }
        }

        /// The settings table: one row per setting, in `--help` order.
        pub fn table() -> Vec<Setting> {
            let d = ServeArgs::defaults();
            vec![$({
                let shown: Option<&str> = None $(.or(Some($shown)))?;
                let value = d.$name.as_ref();
                Setting {
                    name: stringify!($name),
                    env: $env,
                    unit: $unit,
                    help: doc_text(&[$($doc),*]),
                    default: shown.map(str::to_owned).or_else(|| value.map(SettingValue::show)),
                    toml_default: if shown.is_some() { None } else { value.map(SettingValue::toml) },
                }
            },)*]
        }
    };
}

fn engine_default() -> EngineConfig {
    EngineConfig::default()
}

fn cluster_default() -> statecraft_cluster::ClusterConfig {
    statecraft_cluster::ClusterConfig::new("", "")
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

settings_table! {
    /// Directory of the embedded store.
    data_dir: PathBuf = Some(PathBuf::from("./statecraft-data")), env "STATECRAFT_DATA_DIR", unit "DIR";
    /// Keep state in memory only (nothing survives a restart; durable acks
    /// mean applied).
    in_memory: bool = Some(false), env "STATECRAFT_IN_MEMORY", unit "BOOL",
        arg(num_args = 0..=1, default_missing_value = "true");
    /// Open the data dir even if synced log records are missing or hold a
    /// key the store cannot recover; the loss is logged. Only after a
    /// corruption message names this flag, never by default.
    accept_lost_records: bool = Some(false), env "STATECRAFT_ACCEPT_LOST_RECORDS", unit "BOOL",
        arg(num_args = 0..=1, default_missing_value = "true");
    /// HTTP listen address.
    http: SocketAddr = Some(SocketAddr::from(([127, 0, 0, 1], 7470))), env "STATECRAFT_HTTP", unit "ADDR";
    /// TCP ingest listen address.
    tcp: SocketAddr = Some(SocketAddr::from(([127, 0, 0, 1], 7471))), env "STATECRAFT_TCP", unit "ADDR";
    /// Number of shards (worker threads owning keys).
    shards: usize = Some(engine_default().shards), env "STATECRAFT_SHARDS", unit "N",
        shown "available cores";
    /// Queue capacity per shard, in events.
    queue_capacity: usize = Some(engine_default().queue_capacity), env "STATECRAFT_QUEUE_CAPACITY", unit "EVENTS";
    /// Queue capacity per shard, in bytes.
    queue_capacity_bytes: usize = Some(engine_default().queue_capacity_bytes),
        env "STATECRAFT_QUEUE_CAPACITY_BYTES", unit "BYTES";
    /// What a full queue does.
    overflow: OverflowPolicy = Some(engine_default().overflow), env "STATECRAFT_OVERFLOW", unit "POLICY",
        arg(value_enum);
    /// Under `block`: how long an HTTP request waits for queue room before
    /// its events are answered `overloaded` (503 + Retry-After); 0 = forever.
    /// TCP connections wait as long as it takes (flow control,
    /// docs/protocol.md).
    block_timeout_ms: u64 = Some(5000), env "STATECRAFT_BLOCK_TIMEOUT_MS", unit "MS";
    /// Most events per batch.
    max_batch: usize = Some(engine_default().max_batch), env "STATECRAFT_MAX_BATCH", unit "EVENTS";
    /// Longest a batch waits for more events after its first, µs (at most
    /// 10 s).
    max_wait_us: u64 = Some(engine_default().max_wait.as_micros() as u64), env "STATECRAFT_MAX_WAIT_US", unit "US";
    /// Default ack mode.
    ack: AckMode = Some(engine_default().ack), env "STATECRAFT_ACK", unit "MODE", arg(value_enum);
    /// Checkpoint each shard's dirty keys at least this often, ms.
    checkpoint_interval_ms: u64 = Some(ms(engine_default().checkpoint_interval)),
        env "STATECRAFT_CHECKPOINT_INTERVAL_MS", unit "MS";
    /// Checkpoint also after this many logged batches per shard.
    checkpoint_batches: u64 = Some(engine_default().checkpoint_batches),
        env "STATECRAFT_CHECKPOINT_BATCHES", unit "N";
    /// Checkpoint also after this many bytes logged per shard.
    checkpoint_bytes: u64 = Some(engine_default().checkpoint_bytes),
        env "STATECRAFT_CHECKPOINT_BYTES", unit "BYTES";
    /// Deprecated (hidden): --target-wait-ms in µs; a non-zero value also
    /// turns --adaptive on and wins over --target-wait-ms. Turn adaptive
    /// capacity on with --adaptive.
    adaptive_target_us: u64 = Some(0), env "STATECRAFT_ADAPTIVE_TARGET_US", unit "US",
        arg(hide = true);
    /// Adaptive capacity: smallest queue capacity per shard, events (at most
    /// the queue capacity; keep it at least the per-shard sub-batch your
    /// producers send, docs/adaptive-queue.md).
    adaptive_min: usize = Some(statecraft_engine::adaptive::DEFAULT_MIN_CAPACITY),
        env "STATECRAFT_ADAPTIVE_MIN", unit "EVENTS", arg(alias = "min-capacity");
    /// Adaptive capacity: largest queue capacity per shard, events.
    adaptive_max: usize = None, env "STATECRAFT_ADAPTIVE_MAX", unit "EVENTS",
        shown "the queue capacity", arg(alias = "max-capacity");
    /// Adaptive queue capacity on or off (the one switch): each shard queue
    /// resizes itself between --adaptive-min and --adaptive-max to hold its
    /// p95 wait near --target-wait-ms (docs/adaptive-queue.md).
    adaptive: bool = Some(false), env "STATECRAFT_ADAPTIVE", unit "BOOL",
        arg(num_args = 0..=1, default_missing_value = "true");
    /// Adaptive capacity: the p95 queue wait to hold, ms (with --adaptive).
    target_wait_ms: u64 = Some(ms(statecraft_engine::adaptive::DEFAULT_TARGET_WAIT)),
        env "STATECRAFT_TARGET_WAIT_MS", unit "MS";
    /// Hot-key cache budget per shard, bytes.
    cache_bytes: usize = Some(engine_default().cache_bytes), env "STATECRAFT_CACHE_BYTES", unit "BYTES";
    /// How long an idempotency id is remembered, seconds (also the cluster
    /// stream's duplicate window).
    dedup_window_s: u64 = Some(engine_default().dedup_window.as_secs()),
        env "STATECRAFT_DEDUP_WINDOW_S", unit "S";
    /// Largest HTTP body and TCP frame, bytes.
    max_body_bytes: usize = Some(16 << 20), env "STATECRAFT_MAX_BODY_BYTES", unit "BYTES";
    /// Longest key, bytes.
    max_key_bytes: usize = Some(Limits::DEFAULT.max_key_bytes), env "STATECRAFT_MAX_KEY_BYTES", unit "BYTES";
    /// Largest value (estimated serialized size), bytes.
    max_value_bytes: usize = Some(Limits::DEFAULT.max_value_bytes), env "STATECRAFT_MAX_VALUE_BYTES", unit "BYTES";
    /// Deepest nesting an event may write into a key (at most 100).
    max_depth: usize = Some(Limits::DEFAULT.max_depth), env "STATECRAFT_MAX_DEPTH", unit "LEVELS";
    /// Most TCP connections, and most HTTP requests in progress, at once.
    max_connections: usize = Some(1024), env "STATECRAFT_MAX_CONNECTIONS", unit "N";
    /// Events frames a TCP connection reads ahead of their ACKs.
    max_in_flight_frames: usize = Some(64), env "STATECRAFT_MAX_IN_FLIGHT_FRAMES", unit "N";
    /// HTTP: a request head (and a new connection's first request, and a
    /// TLS handshake) must arrive within this, ms; slow senders are closed.
    header_timeout_ms: u64 = Some(10_000), env "STATECRAFT_HEADER_TIMEOUT_MS", unit "MS";
    /// HTTP: a connection with no byte moving either way for this long is
    /// closed, ms (keep above the 15 s watch keep-alive).
    idle_timeout_ms: u64 = Some(60_000), env "STATECRAFT_IDLE_TIMEOUT_MS", unit "MS";
    /// TCP: a connection that sends no HELLO within this is closed, ms.
    hello_timeout_ms: u64 = Some(10_000), env "STATECRAFT_HELLO_TIMEOUT_MS", unit "MS";
    /// Require `Authorization: Bearer TOKEN` on every HTTP route but
    /// /healthz, and the token in the TCP HELLO.
    auth_token: Secret = None, env "STATECRAFT_AUTH_TOKEN", unit "TOKEN", shown "none",
        arg(hide_env_values = true);
    /// TLS certificate chain for HTTP, PEM (with --tls-key).
    tls_cert: PathBuf = None, env "STATECRAFT_TLS_CERT", unit "FILE", shown "none";
    /// TLS private key for HTTP, PEM (with --tls-cert).
    tls_key: PathBuf = None, env "STATECRAFT_TLS_KEY", unit "FILE", shown "none";
    /// Log format.
    log_format: LogFormat = Some(LogFormat::Compact), env "STATECRAFT_LOG_FORMAT", unit "FORMAT",
        arg(value_enum);
    /// Log filter, e.g. info or statecraft_server=debug,info.
    log_level: String = Some("info".to_owned()), env "STATECRAFT_LOG_LEVEL", unit "FILTER";
    /// On shutdown, how long in-flight HTTP requests get to finish, ms.
    shutdown_grace_ms: u64 = Some(30_000), env "STATECRAFT_SHUTDOWN_GRACE_MS", unit "MS";
    /// Test hook: busy time per applied event, µs (plays a slow consumer).
    apply_delay_us: u64 = Some(0), env "STATECRAFT_APPLY_DELAY_US", unit "US", arg(hide = true);
    /// Run as a cluster node on NATS JetStream at this URL (scale-out mode,
    /// docs/scale-out.md).
    nats: String = None, env "STATECRAFT_NATS", unit "URL", shown "none: single node";
    /// Cluster node id, [A-Za-z0-9_-], stable across restarts.
    node_id: String = None, env "STATECRAFT_NODE_ID", unit "ID", shown "HOSTNAME-HTTPPORT";
    /// Partitions of the event stream; fixed when the stream is created.
    partitions: u32 = Some(cluster_default().partitions), env "STATECRAFT_PARTITIONS", unit "N";
    /// Replicas of the NATS stream and KV buckets.
    nats_replicas: usize = Some(cluster_default().replicas), env "STATECRAFT_NATS_REPLICAS", unit "N";
    /// Partition lease TTL: a silent node's partitions move after this, ms.
    lease_ttl_ms: u64 = Some(ms(cluster_default().lease_ttl)), env "STATECRAFT_LEASE_TTL_MS", unit "MS";
    /// Test hook: pause between a batch's local commit and its changelog
    /// commit in cluster mode, ms.
    cluster_commit_delay_ms: u64 = Some(0), env "STATECRAFT_CLUSTER_COMMIT_DELAY_MS", unit "MS",
        arg(hide = true);
}

impl ServeArgs {
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

/// Bounds of the server's own settings (the engine's are in
/// `statecraft_engine::engine::bounds`).
pub mod bounds {
    use std::ops::RangeInclusive;

    /// Largest HTTP body / TCP frame: at least 1 KiB (one ordinary event);
    /// at most what a TCP frame's u32 length can carry after its 16-byte
    /// header.
    pub const MAX_BODY_BYTES: RangeInclusive<usize> = 1024..=(u32::MAX as usize) - 16;
    /// Connections: each holds a task and buffers; 2^20 is past any file
    /// descriptor limit we expect.
    pub const MAX_CONNECTIONS: RangeInclusive<usize> = 1..=1 << 20;
    /// Frames read ahead per TCP connection: 2^16 frames of up to
    /// `max_body_bytes` each is already more memory than a node has.
    pub const MAX_IN_FLIGHT_FRAMES: RangeInclusive<usize> = 1..=1 << 16;
}

/// Every setting of `statecraft serve`, resolved and validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The engine's settings (shards, queues, batching, durability, limits…).
    pub engine: EngineConfig,
    /// HTTP listen address (port 0 = any free port).
    pub http: SocketAddr,
    /// TCP ingest listen address (port 0 = any free port).
    pub tcp: SocketAddr,
    /// Largest HTTP body and TCP frame payload, bytes.
    pub max_body_bytes: usize,
    /// Most TCP connections and most concurrent HTTP requests.
    pub max_connections: usize,
    /// Events frames read ahead of their ACKs, per TCP connection.
    pub max_in_flight_frames: usize,
    /// HTTP request-head (and first-request, TLS-handshake) timeout.
    pub header_timeout: Duration,
    /// HTTP idle-connection timeout (no byte either way).
    pub idle_timeout: Duration,
    /// TCP HELLO timeout.
    pub hello_timeout: Duration,
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
    /// Cluster mode (`--nats`): the node's settings; `None` = single node.
    /// Its `http_addr` is filled in by the server once HTTP is bound.
    pub cluster: Option<statecraft_cluster::ClusterConfig>,
}

impl Default for ServeConfig {
    /// Every setting at the table's default.
    fn default() -> Self {
        ServeConfig::from_values(ServeArgs::default())
    }
}

impl ServeConfig {
    /// A config for tests and embedding: in memory, both listeners on
    /// `127.0.0.1:0`, two shards; every other setting at its default.
    pub fn ephemeral() -> Self {
        let mut c = ServeConfig::default();
        c.engine.data_dir = None;
        c.engine.shards = 2;
        c.http = SocketAddr::from(([127, 0, 0, 1], 0));
        c.tcp = SocketAddr::from(([127, 0, 0, 1], 0));
        c
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
        let config = ServeConfig::from_values(args);
        config.validate()?;
        Ok(config)
    }

    /// Maps the table's values onto the engine's and the server's settings:
    /// the one place a setting's unit (ms, µs, s) becomes a `Duration` and
    /// settings that depend on each other are combined. What `user` leaves
    /// unset takes the table's default. Does not validate.
    pub fn from_values(user: ServeArgs) -> ServeConfig {
        // `v` has every setting the table gives a default for; the
        // `unwrap_or*` below only satisfy the types.
        let e = engine_default();
        let v = user.clone().or(ServeArgs::defaults());
        let queue_capacity = v.queue_capacity.unwrap_or(e.queue_capacity);
        let data_dir = if v.in_memory.unwrap_or(false) {
            None
        } else {
            v.data_dir
        };
        // On with --adaptive, or with a non-zero --adaptive-target-us; an
        // explicit --adaptive=false wins (so this reads what the user gave,
        // not the defaults).
        let target_us = user.adaptive_target_us.filter(|&us| us > 0);
        let adaptive = match (user.adaptive, target_us) {
            (Some(false), _) | (None, None) => None,
            (Some(true), _) | (None, Some(_)) => {
                let target = match target_us {
                    Some(us) => Duration::from_micros(us),
                    None => Duration::from_millis(
                        v.target_wait_ms
                            .unwrap_or(ms(statecraft_engine::adaptive::DEFAULT_TARGET_WAIT)),
                    ),
                };
                let min = user.adaptive_min.unwrap_or(
                    statecraft_engine::adaptive::DEFAULT_MIN_CAPACITY.min(queue_capacity),
                );
                let max = v.adaptive_max.unwrap_or(queue_capacity);
                Some(AdaptiveConfig::new(target, min, max))
            }
        };
        let engine = EngineConfig {
            shards: v.shards.unwrap_or(e.shards),
            queue_capacity,
            queue_capacity_bytes: v.queue_capacity_bytes.unwrap_or(e.queue_capacity_bytes),
            overflow: v.overflow.unwrap_or(e.overflow),
            block_timeout: match v.block_timeout_ms {
                None | Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
            },
            max_batch: v.max_batch.unwrap_or(e.max_batch),
            max_wait: v.max_wait_us.map_or(e.max_wait, Duration::from_micros),
            ack: v.ack.unwrap_or(e.ack),
            limits: Limits {
                max_key_bytes: v.max_key_bytes.unwrap_or(e.limits.max_key_bytes),
                max_value_bytes: v.max_value_bytes.unwrap_or(e.limits.max_value_bytes),
                max_depth: v.max_depth.unwrap_or(e.limits.max_depth),
            },
            dedup_window: v.dedup_window_s.map_or(e.dedup_window, Duration::from_secs),
            apply_delay: v
                .apply_delay_us
                .map_or(e.apply_delay, Duration::from_micros),
            data_dir,
            checkpoint_interval: v
                .checkpoint_interval_ms
                .map_or(e.checkpoint_interval, Duration::from_millis),
            checkpoint_batches: v.checkpoint_batches.unwrap_or(e.checkpoint_batches),
            checkpoint_bytes: v.checkpoint_bytes.unwrap_or(e.checkpoint_bytes),
            cache_bytes: v.cache_bytes.unwrap_or(e.cache_bytes),
            adaptive,
            accept_lost_records: v.accept_lost_records.unwrap_or(false),
            ..e
        };
        let http = v.http.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let cluster = v.nats.filter(|u| !u.is_empty()).map(|url| {
            let node_id = v.node_id.unwrap_or_else(|| default_node_id(http.port()));
            let mut c = statecraft_cluster::ClusterConfig::new(url, node_id);
            if let Some(p) = v.partitions {
                c.partitions = p;
            }
            if let Some(r) = v.nats_replicas {
                c.replicas = r;
            }
            if let Some(ms) = v.lease_ttl_ms {
                c.lease_ttl = Duration::from_millis(ms);
            }
            if let Some(ms) = v.cluster_commit_delay_ms {
                c.commit_delay = Duration::from_millis(ms);
            }
            c.max_batch = engine.max_batch;
            // The stream drops a re-sent event id within the same window the
            // engine remembers ids in (it was a fixed 120 s).
            c.dedup_window = engine.dedup_window;
            c
        });
        ServeConfig {
            engine,
            http,
            tcp: v.tcp.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            max_body_bytes: v.max_body_bytes.unwrap_or_default(),
            max_connections: v.max_connections.unwrap_or_default(),
            max_in_flight_frames: v.max_in_flight_frames.unwrap_or_default(),
            header_timeout: Duration::from_millis(v.header_timeout_ms.unwrap_or_default()),
            idle_timeout: Duration::from_millis(v.idle_timeout_ms.unwrap_or_default()),
            hello_timeout: Duration::from_millis(v.hello_timeout_ms.unwrap_or_default()),
            auth_token: v.auth_token,
            tls_cert: v.tls_cert,
            tls_key: v.tls_key,
            log_format: v.log_format.unwrap_or_default(),
            log_level: v.log_level.unwrap_or_default(),
            shutdown_grace: v
                .shutdown_grace_ms
                .map_or(Duration::ZERO, Duration::from_millis),
            cluster,
        }
    }

    /// Checks every setting; the first bad one is the error. The engine's
    /// settings are checked by [`EngineConfig::validate`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.engine.validate()?;
        if let Some(c) = &self.cluster {
            c.validate().map_err(|e| invalid("nats", e.to_string()))?;
        }
        use statecraft_engine::engine::check_range;
        check_range(
            "max_body_bytes",
            self.max_body_bytes,
            bounds::MAX_BODY_BYTES,
        )?;
        check_range(
            "max_connections",
            self.max_connections,
            bounds::MAX_CONNECTIONS,
        )?;
        check_range(
            "max_in_flight_frames",
            self.max_in_flight_frames,
            bounds::MAX_IN_FLIGHT_FRAMES,
        )?;
        for (setting, d) in [
            ("header_timeout_ms", self.header_timeout),
            ("idle_timeout_ms", self.idle_timeout),
            ("hello_timeout_ms", self.hello_timeout),
        ] {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(invalid(setting, "must be 1..=3600000 ms"));
            }
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
        Ok(())
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

    fn parse(args: &[&str]) -> ServeConfig {
        let mut v = vec!["x"];
        v.extend_from_slice(args);
        let flags = Cli::try_parse_from(v).expect("parses").serve;
        ServeConfig::resolve(flags).expect("valid")
    }

    #[test]
    fn defaults_resolve() {
        let c = ServeConfig::resolve(ServeArgs::default()).expect("defaults are valid");
        assert_eq!(c.http.to_string(), "127.0.0.1:7470");
        assert_eq!(c.tcp.to_string(), "127.0.0.1:7471");
        assert_eq!(
            c.engine.data_dir.as_deref(),
            Some(Path::new("./statecraft-data"))
        );
        assert_eq!(c.engine.block_timeout, Some(Duration::from_millis(5000)));
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.log_format, LogFormat::Compact);
        assert!(ServeConfig::ephemeral().validate().is_ok());
    }

    /// `serve --help` and the table agree: every row is a flag named after
    /// it, with its env variable and its default in the help.
    #[test]
    fn help_flags_env_and_defaults_match_the_table() {
        let cmd = Cli::command();
        let rows = table();
        let flat: String = cmd
            .clone()
            .render_long_help()
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for row in &rows {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_id() == row.name)
                .unwrap_or_else(|| panic!("no flag for setting {}", row.name));
            assert_eq!(
                arg.get_long().map(|l| format!("--{l}")),
                Some(row.flag()),
                "{}",
                row.name
            );
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(row.env),
                "{}",
                row.name
            );
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            if let Some(d) = &row.default {
                assert!(
                    help.contains(&format!("[default: {d}]")),
                    "{}: {help}",
                    row.name
                );
            }
            if !arg.is_hide_set() {
                assert!(flat.contains(&row.flag()), "--help lacks {}", row.flag());
                if let Some(d) = &row.default {
                    let want = format!("[default: {d}]");
                    assert!(flat.contains(&want), "--help lacks `{want}`");
                }
            }
        }
        // And no flag outside the table but --config.
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            assert!(
                id == "config" || id == "help" || rows.iter().any(|r| r.name == id),
                "flag {id} is not in the table"
            );
        }
    }

    /// examples/statecraft.toml parses, and lists every setting of the
    /// table with its default (commented out where the default is computed
    /// or unset).
    #[test]
    fn example_config_lists_every_setting_with_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/statecraft.toml");
        let text = std::fs::read_to_string(&path).expect("examples/statecraft.toml");
        let parsed = ServeArgs::from_toml(&text, &path).expect("the example parses");
        let resolved = ServeConfig::resolve(parsed.or(ServeArgs::default())).expect("valid");
        let defaults = ServeConfig::default();
        assert_eq!(
            resolved.engine.queue_capacity,
            defaults.engine.queue_capacity
        );
        // Values may carry a trailing ` # comment`.
        let lines: Vec<&str> = text
            .lines()
            .map(|l| match l.trim().strip_prefix('#') {
                Some(_) => l.trim(),
                None => l.split(" #").next().unwrap_or(l).trim(),
            })
            .collect();
        let rows = table();
        for row in &rows {
            match &row.toml_default {
                Some(value) => {
                    let want = format!("{} = {value}", row.name);
                    assert!(
                        lines.contains(&want.as_str()),
                        "examples/statecraft.toml lacks `{want}`"
                    );
                }
                None => {
                    let want = format!("# {} = ", row.name);
                    assert!(
                        lines.iter().any(|l| l.starts_with(&want)),
                        "examples/statecraft.toml lacks a commented `{want}…`"
                    );
                }
            }
        }
        for line in &lines {
            let line = line.trim_start_matches("# ");
            if let Some((key, _)) = line.split_once(" = ")
                && !key.contains(' ')
            {
                assert!(
                    rows.iter().any(|r| r.name == key),
                    "examples/statecraft.toml has `{key}`, which is not a setting"
                );
            }
        }
    }

    #[test]
    fn adaptive_flags_turn_the_controller_on_and_off() {
        let adaptive = |args: &[&str]| {
            parse(args)
                .engine
                .adaptive
                .map(|a| (a.target, a.min, a.max))
        };
        assert_eq!(adaptive(&[]), None, "off by default");
        let (target, min, max) = adaptive(&["--adaptive"]).expect("on");
        assert_eq!(target, statecraft_engine::adaptive::DEFAULT_TARGET_WAIT);
        assert!(min <= max);
        let on = adaptive(&[
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
            adaptive(&["--adaptive-target-us", "2500"]).map(|a| a.0),
            Some(Duration::from_micros(2500)),
            "a target in µs turns it on too"
        );
        assert_eq!(
            adaptive(&["--adaptive=false", "--adaptive-target-us", "2500"]),
            None
        );
        assert_eq!(
            adaptive(&["--adaptive", "--adaptive-min", "7", "--adaptive-max", "70"]),
            Some((statecraft_engine::adaptive::DEFAULT_TARGET_WAIT, 7, 70))
        );
    }

    #[test]
    fn precedence_is_flags_then_env_then_file_then_defaults() {
        let file = ServeArgs::from_toml(
            "http = \"127.0.0.1:9000\"\ntcp = \"127.0.0.1:9001\"\nshards = 3\noverflow = \"drop_oldest\"\n",
            Path::new("t.toml"),
        )
        .expect("parses");
        let flags = Cli::try_parse_from(["x", "--http", "127.0.0.1:8000"])
            .expect("parses")
            .serve;
        let c = ServeConfig::resolve(flags.or(file)).expect("valid");
        assert_eq!(c.http.port(), 8000, "flag beats file");
        assert_eq!(c.tcp.port(), 9001, "file beats default");
        assert_eq!(c.engine.shards, 3);
        assert_eq!(c.engine.overflow, OverflowPolicy::DropOldest);
        assert_eq!(c.engine.ack, AckMode::Durable, "default");
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
        let err = ServeArgs::from_toml("overflow = \"sometimes\"\n", Path::new("s.toml"))
            .expect_err("bad enum");
        let text = err.to_string();
        assert!(
            text.contains("overflow") && text.contains("sometimes"),
            "{text}"
        );
        assert!(Cli::try_parse_from(["x", "--overflow", "sometimes"]).is_err());
        assert!(Cli::try_parse_from(["x", "--log-format", "xml"]).is_err());
        let args = ServeArgs {
            tls_cert: Some("c.pem".into()),
            ..ServeArgs::default()
        };
        assert!(ServeConfig::resolve(args).is_err());
        let args = ServeArgs {
            max_depth: Some(1000),
            ..ServeArgs::default()
        };
        let text = ServeConfig::resolve(args).expect_err("deep").to_string();
        assert!(text.contains("max_depth"), "{text}");
        let args = ServeArgs {
            max_wait_us: Some(20_000_000),
            ..ServeArgs::default()
        };
        let text = ServeConfig::resolve(args)
            .expect_err("long wait")
            .to_string();
        assert!(text.contains("max_wait_us"), "{text}");
    }

    /// Adversary: the cluster's stream kept ids for a fixed 120 s whatever
    /// --dedup-window-s said.
    #[test]
    fn the_cluster_dedup_window_follows_the_setting() {
        let c = parse(&[
            "--nats",
            "nats://127.0.0.1:4222",
            "--node-id",
            "n1",
            "--dedup-window-s",
            "600",
        ]);
        let cluster = c.cluster.expect("cluster mode");
        assert_eq!(cluster.dedup_window, Duration::from_secs(600));
        assert_eq!(c.engine.dedup_window, Duration::from_secs(600));
    }

    #[test]
    fn old_flag_and_env_names_keep_working() {
        let c = parse(&["--min-capacity", "3", "--max-capacity", "9", "--adaptive"]);
        let a = c.engine.adaptive.expect("on");
        assert_eq!((a.min, a.max), (3, 9));
        let names: Vec<&str> = table().iter().map(|r| r.env).collect();
        for env in [
            "STATECRAFT_DATA_DIR",
            "STATECRAFT_QUEUE_CAPACITY",
            "STATECRAFT_MAX_WAIT_US",
            "STATECRAFT_ADAPTIVE_MIN",
            "STATECRAFT_ADAPTIVE_MAX",
            "STATECRAFT_TARGET_WAIT_MS",
            "STATECRAFT_DEDUP_WINDOW_S",
            "STATECRAFT_LOG_FORMAT",
        ] {
            assert!(names.contains(&env), "{env} is gone");
        }
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
