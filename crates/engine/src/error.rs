//! The engine's error type: what can fail for a whole call (as opposed to one
//! event, which gets an [`EventResult`](crate::EventResult) instead).

/// A failure of a whole engine call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine is shutting down (or shut down) and admits nothing new.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// A request could not be queued (a queue stayed over capacity).
    #[error("the engine is overloaded")]
    Overloaded,
    /// The store failed; writes and reads are refused until the engine is
    /// restarted (memory may hold effects of events that were refused, which
    /// must never be visible; a restart serves the durable state).
    #[error("the store failed and the engine refuses writes until restarted: {0}")]
    Poisoned(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] statecraft_store::StoreError),
    /// Starting a thread or another I/O failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A setting is out of its bounds ([`EngineConfig::validate`](crate::EngineConfig::validate)).
    #[error(transparent)]
    InvalidSetting(#[from] crate::engine::SettingError),
    /// An item of [`Engine::restore`](crate::Engine::restore) was refused
    /// for another reason than a failed store (a failed store is
    /// [`EngineError::Poisoned`]).
    #[error("restore refused ({status}): {message}")]
    RestoreRefused {
        /// The item's status (`rejected`, `conflict`, …).
        status: &'static str,
        /// Why.
        message: String,
    },
    /// A shard worker panicked (a bug); its shard's results were lost.
    #[error("a shard worker panicked")]
    WorkerPanicked,
    /// A blocking task of the engine (opening the store, a scan, a backup)
    /// panicked (a bug); the call's work was lost.
    #[error("{task} panicked: {message}")]
    TaskPanicked {
        /// What the task was doing.
        task: &'static str,
        /// The panic's message.
        message: String,
    },
}
