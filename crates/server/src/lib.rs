//! Statecraft's network interfaces: the HTTP API, the TCP ingest protocol
//! (both ends), the server's settings and its graceful shutdown.
//!
//! # A tour of the layout
//!
//! - [`config`]: [`ServeArgs`] (flags, `STATECRAFT_*` env, TOML file) resolved
//!   into [`ServeConfig`] (every setting, validated).
//! - [`server`](Server): [`Server::start`] binds both listeners, opens the
//!   engine in the background, and returns a [`RunningServer`] whose
//!   [`shutdown`](RunningServer::shutdown) runs the one shutdown protocol.
//! - `shutdown`: that protocol — a stop signal and a task barrier.
//! - `http`: the axum router at the routes of DESIGN.md §3 — events, state,
//!   scan, watch (SSE), health, readiness — with auth and limits;
//!   [`problem`] renders whole-request errors (RFC 9457).
//! - [`observe`]: `/metrics` (Prometheus), `/v1/stats` (JSON), the live
//!   dashboard at `/`, the per-second sampler and the front-end stage
//!   clocks (docs/metrics.md, docs/dashboard.md).
//! - [`protocol`]: the TCP wire protocol, version 1 (docs/protocol.md) —
//!   frames, the binary event and result encodings, the frame codec.
//! - `tcp`: the server's accept loop and pipelined connections.
//! - [`client`]: the client side of the protocol (the CLI and `load` use it).
//!
//! # Example
//!
//! ```no_run
//! use statecraft_server::{ServeConfig, Server};
//!
//! # async fn demo() -> Result<(), statecraft_server::ServerError> {
//! let running = Server::start(ServeConfig::ephemeral()).await?;
//! running.wait_ready().await?;
//! println!("http on {}, tcp on {}", running.http_addr, running.tcp_addr);
//! running.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod client;
pub mod config;
mod conn;
mod dirlock;
mod error;
mod http;
pub mod observe;
pub mod problem;
pub mod protocol;
mod server;
mod shutdown;
mod tcp;

pub use client::{ClientError, ClientOptions, TcpClient};
pub use config::{ConfigError, LogFormat, Secret, ServeArgs, ServeConfig};
pub use error::ServerError;
pub use server::{RunningServer, Server};
