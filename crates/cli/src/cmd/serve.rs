//! `statecraft serve`: resolves the settings (flags > `STATECRAFT_*` env >
//! `--config` TOML > defaults), sets up logging, runs the server on a
//! multi-thread Tokio runtime until SIGTERM/SIGINT, then shuts it down
//! gracefully. A second signal exits at once with code 130.
//!
//! Prints one line per listener on stdout (`statecraft: http listening on
//! http://ADDR`, `statecraft: tcp listening on tcp://ADDR`), then
//! `statecraft: ready` once the engine is open; logs go to stderr.

use std::process::ExitCode;

use anyhow::Context as _;
use statecraft_server::{LogFormat, ServeArgs, ServeConfig, Server};
use tokio::signal::unix::{SignalKind, signal};

/// Runs `statecraft serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServeConfig::load(args)?;
    init_tracing(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("statecraft-io")
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(serve(config))
}

/// Logging to stderr: colour only on a terminal, no source paths (neither
/// ours nor our dependencies'), and the storage engine's own chatter
/// (fjall, lsm-tree) at WARN unless the filter names those crates.
fn init_tracing(config: &ServeConfig) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let spec = log_filter(&config.log_level);
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .with_context(|| format!("invalid --log-level `{}`", config.log_level))?;
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_file(false)
        .with_line_number(false);
    let installed = match config.log_format {
        LogFormat::Compact => builder.compact().try_init(),
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder
            .pretty()
            .with_file(false)
            .with_line_number(false)
            .try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// The log filter: `level` as given, plus `fjall=warn,lsm_tree=warn` unless
/// it already says something about those crates.
fn log_filter(level: &str) -> String {
    let mut spec = level.trim().to_owned();
    for noisy in ["fjall", "lsm_tree"] {
        if !spec.contains(noisy) {
            if !spec.is_empty() {
                spec.push(',');
            }
            spec.push_str(noisy);
            spec.push_str("=warn");
        }
    }
    spec
}

async fn serve(config: ServeConfig) -> anyhow::Result<ExitCode> {
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut running = Server::start(config).await?;
    println!("statecraft: http listening on {}", running.http_url());
    println!("statecraft: tcp listening on tcp://{}", running.tcp_addr);
    // The engine opens in the background; a failure to open ends the wait.
    let early = tokio::select! {
        _ = sigterm.recv() => Some("SIGTERM"),
        _ = sigint.recv() => Some("SIGINT"),
        ready = running.wait_ready() => {
            ready?;
            None
        }
    };
    let first = match early {
        Some(signal) => signal,
        None => {
            println!("statecraft: ready");
            tokio::select! {
                _ = sigterm.recv() => "SIGTERM",
                _ = sigint.recv() => "SIGINT",
                err = running.failed() => return Err(err.into()),
            }
        }
    };
    tracing::info!(
        signal = first,
        "shutting down gracefully (a second signal exits at once)"
    );
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => {},
            _ = sigint.recv() => {},
        }
        eprintln!("statecraft: second signal: exiting at once");
        std::process::exit(130);
    });
    running.shutdown().await?;
    tracing::info!("shutdown complete");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn storage_chatter_is_quiet_unless_asked_for() {
        assert_eq!(log_filter("info"), "info,fjall=warn,lsm_tree=warn");
        assert_eq!(
            log_filter("debug,fjall=debug"),
            "debug,fjall=debug,lsm_tree=warn"
        );
        assert_eq!(log_filter(""), "fjall=warn,lsm_tree=warn");
    }
}
