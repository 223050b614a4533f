//! The server's error type: what fails a whole server operation (starting,
//! serving, shutting down) — as opposed to one request or one event, which
//! get a problem response or an event result instead.

use std::net::SocketAddr;

use crate::config::ConfigError;

/// A failure of the server as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        /// `http` or `tcp`.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("cannot load the TLS certificate/key: {0}")]
    Tls(std::io::Error),
    /// The engine failed to open (or recover).
    #[error("the engine failed to start: {0}")]
    EngineStart(String),
    /// The engine failed while shutting down.
    #[error("the engine failed to shut down cleanly: {0}")]
    EngineShutdown(statecraft_engine::EngineError),
    /// A listener stopped with an I/O error.
    #[error("the {what} listener failed: {source}")]
    Serve {
        /// `http` or `tcp`.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// Another I/O failure.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
