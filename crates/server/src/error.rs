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
    // The cause is the error's `source`, not part of its message: error
    // chains (anyhow's `{:#}`) print it once.
    #[error("cannot listen for {what} on {addr}")]
    Bind {
        /// `http` or `tcp`.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory cannot be created, written or locked.
    #[error("cannot {what} the data directory {}", path.display())]
    DataDir {
        /// What was tried: `create`, `write in`, `lock`.
        what: &'static str,
        /// The directory (or its pid file).
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another server holds the data directory.
    #[error(
        "the data directory {} is in use by another server ({holder}); stop it, or use another --data-dir",
        path.display()
    )]
    DataDirInUse {
        /// The directory.
        path: std::path::PathBuf,
        /// What its pid file says: `pid=… started_at_unix=… program=…`.
        holder: String,
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
    #[error("the {what} listener failed")]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Shown through an error chain (as the binary prints errors), the OS
    /// error appears once, not twice.
    #[test]
    fn the_os_error_is_printed_once() {
        let err = ServerError::Bind {
            what: "http",
            addr: SocketAddr::from(([127, 0, 0, 1], 7470)),
            source: std::io::Error::from_raw_os_error(98),
        };
        let mut chain = err.to_string();
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(&err);
        while let Some(e) = cur {
            chain.push_str(&format!(": {e}"));
            cur = e.source();
        }
        assert_eq!(chain.matches("os error 98").count(), 1, "{chain}");
        assert!(
            chain.starts_with("cannot listen for http on 127.0.0.1:7470: "),
            "{chain}"
        );
    }
}
