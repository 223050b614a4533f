//! `statecraft pipe` (being written).

use std::process::ExitCode;

/// Arguments of `statecraft pipe`.
#[derive(Debug, clap::Args)]
pub struct PipeArgs {}

/// Runs `statecraft pipe`.
pub fn run(_args: PipeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("statecraft pipe is not built yet")
}
