//! `statecraft check` (being written).

use std::process::ExitCode;

/// Arguments of `statecraft check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// Runs `statecraft check`.
pub fn run(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("statecraft check is not built yet")
}
