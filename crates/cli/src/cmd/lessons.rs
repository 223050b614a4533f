//! `statecraft lessons` (being written).

use std::process::ExitCode;

/// `statecraft lessons` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LessonsCommand {
    /// List the lessons.
    List,
}

/// Runs `statecraft lessons`.
pub fn run(_cmd: LessonsCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("statecraft lessons is not built yet")
}
