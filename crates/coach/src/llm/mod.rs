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

use std::io::Write;

use crate::answer::sections_from_markdown;
use crate::render::{Style, render};
use crate::session::Session;

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
    /// The answer was refused (structure or code), also after one revision.
    #[error("the answer was refused twice ({0})")]
    Unstructured(String),
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

/// Which engine answered a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// The model answered (possibly with guarded blocks revised or replaced).
    Llm,
    /// The offline coach answered, after the one-line notice.
    OfflineFallback,
}

/// Answers `session` with the model, streaming to `out`; on any [`LlmError`]
/// prints its one-line notice and the offline answer instead. Afterwards
/// `session.answer` describes what was given (sections, engine, notice), ready
/// for `--json` and [`Session::record`]. Only an error writing to `out` fails.
pub async fn answer_with_fallback(
    session: &mut Session,
    cfg: &LlmConfig,
    style: Style,
    out: &mut (dyn Write + Send),
) -> std::io::Result<Answered> {
    let prompt = Prompt::from_session(session);
    match stream_answer(cfg, &prompt, style, out).await {
        Ok(answer) => {
            if !answer.text.ends_with('\n') {
                out.write_all(b"\n")?;
            }
            out.flush()?;
            adopt(session, &answer);
            Ok(Answered::Llm)
        }
        Err(LlmError::Output(e)) => Err(e),
        Err(e) => {
            let notice = e.notice();
            // Whatever streamed before the failure stays on screen; the notice
            // starts on a fresh line.
            out.write_all(format!("\n{notice}\n\n").as_bytes())?;
            out.write_all(render(&session.answer.to_markdown(), style).as_bytes())?;
            out.flush()?;
            session.answer.notice = Some(notice);
            Ok(Answered::OfflineFallback)
        }
    }
}

/// Answers `session` with the model without printing (for `--json`): the
/// model's answer, or the offline one with the notice set.
pub async fn answer_quietly(session: &mut Session, cfg: &LlmConfig) -> Answered {
    let mut sink = std::io::sink();
    let prompt = Prompt::from_session(session);
    match stream_answer(cfg, &prompt, Style::Plain, &mut sink).await {
        Ok(answer) => {
            adopt(session, &answer);
            Answered::Llm
        }
        Err(e) => {
            session.answer.notice = Some(e.notice());
            Answered::OfflineFallback
        }
    }
}

/// Makes the session's answer describe what the model gave.
fn adopt(session: &mut Session, answer: &LlmAnswer) {
    session.answer.sections = sections_from_markdown(&answer.text);
    session.answer.engine = "llm";
    session.answer.given.push(format!(
        "llm:held={},revised={},pattern={}",
        answer.held, answer.revised, answer.replaced_by_pattern
    ));
}
