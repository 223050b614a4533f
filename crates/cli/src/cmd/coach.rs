//! `statecraft coach` (being written).

use std::process::ExitCode;

/// Arguments of `statecraft coach`.
#[derive(Debug, clap::Args)]
pub struct CoachArgs {}

/// Runs `statecraft coach`.
pub fn run(_args: CoachArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("statecraft coach is not built yet")
}
