//! The LLM coach: the same contract as the offline coach, written by a model.
//!
//! Layout: [`config`] resolves the endpoint (env over workspace config over
//! user config); [`prompt`] builds the request from the prepared session (the
//! project's system prompt, lesson, code, checks, calibration, the offline
//! coach's material); [`sse`] decodes the two streaming dialects; [`guard`]
//! holds back code blocks until they close and judges them; [`client`] runs
//! the exchange and the one revision round.
//!
//! Invariant: an LLM failure never fails a coaching session. Every error here
//! is an [`LlmError`]; the caller prints [`LlmError::notice`] (one line) and the
//! offline answer instead.

pub mod client;
pub mod config;
pub mod guard;
pub mod prompt;
pub mod sse;

pub use client::{LlmAnswer, stream_answer};
pub use config::{LlmConfig, Provider};
pub use prompt::Prompt;

/// Why the LLM coach could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The configuration is incomplete or invalid.
    #[error("LLM configuration: {0}")]
    Config(String),
    /// The server could not be reached.
    #[error("could not reach {url}: {message}")]
    Connect {
        /// The endpoint.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// No complete answer within the time limit.
    #[error("no complete answer within {secs} s")]
    Timeout {
        /// The limit.
        secs: u64,
    },
    /// The server answered with an error status.
    #[error("HTTP {status} from {url}")]
    Status {
        /// The status code.
        status: u16,
        /// The endpoint.
        url: String,
    },
    /// The stream was not what the API promises.
    #[error("malformed stream: {0}")]
    Malformed(String),
    /// Writing the answer out failed.
    #[error("writing the answer: {0}")]
    Output(#[from] std::io::Error),
}

impl LlmError {
    /// The one line shown before the offline answer.
    pub fn notice(&self) -> String {
        format!("(LLM coach unavailable — {self}; here is the offline coach's answer.)")
    }
}
