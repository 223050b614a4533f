//! The `statecraft` binary: one command per subcommand module under `cmd/`.
//!
//! Tour: `cmd::serve` runs the server; `send`/`get`/`del`/`scan`/`watch`/`info`/`top`/
//! `backup --server` are clients of a running server; `backup --data-dir` and `restore`
//! work on data directories; `completions` and `man` describe this CLI; `load` and `bench` measure; `pipe` is the engine
//! speaking the lesson pipe protocol on stdio; `lessons`, `check` and `coach` are
//! the learning path. Errors reach the user through anyhow, once, at this edge.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

mod cmd;

/// mimalloc: events are allocated by connection tasks and freed by shard
/// threads; glibc's malloc pays for that cross-thread traffic (measured with
/// the W6 example: ≈ 260 → ≈ 200 ns of CPU per event).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Statecraft: a concurrent state management engine, and a course on building one.
/// The description (Cargo.toml's) lists every command; a test keeps it so.
#[derive(Debug, Parser)]
#[command(name = "statecraft", version, about = env!("CARGO_PKG_DESCRIPTION"), long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: HTTP API and TCP ingest over the engine.
    Serve(Box<statecraft_server::ServeArgs>),
    /// Speak the lesson pipe protocol on stdin/stdout with the real engine.
    Pipe(cmd::pipe::PipeArgs),
    /// The learning path: list, show, init.
    #[command(subcommand)]
    Lessons(cmd::lessons::LessonsCommand),
    /// Grade a learner's program against lesson N's objectives.
    Check(cmd::check::CheckArgs),
    /// Ask the coach about lesson N, or have it review your work.
    Coach(cmd::coach::CoachArgs),
    /// Send events (NDJSON, or one JSON array) from a file or stdin to a running server.
    Send(Box<cmd::send::SendArgs>),
    /// Print keys' state records (one key, or a multi-get of several).
    Get(cmd::get::GetArgs),
    /// Delete keys (one delete event per key).
    Del(cmd::del::DelArgs),
    /// List live keys in key order (NDJSON).
    Scan(cmd::scan::ScanArgs),
    /// Print changes as they happen (NDJSON).
    Watch(cmd::watch::WatchArgs),
    /// Back up a running server online (--server) or a data directory offline.
    Backup(cmd::backup::BackupArgs),
    /// Put a backup in place as a data directory (and check that it opens).
    Restore(cmd::restore::RestoreArgs),
    /// Generate load against a server (or a Redis peer) and report events/s
    /// and latency percentiles (method: BENCHMARKS.md).
    Load(Box<cmd::load::LoadArgs>),
    /// Run the benchmark workloads W1-W6 (BENCHMARKS.md) against Statecraft
    /// and its peers; write results.json, report.md and chart.svg.
    Bench(Box<cmd::bench::BenchArgs>),
    /// The dashboard's figures live in the terminal (a server given by URL).
    Top(cmd::top::TopArgs),
    /// A running server's figures in sections, like Redis' INFO.
    Info(cmd::info::InfoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of statecraft and its commands.
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => cmd::serve::run(*args),
        Command::Pipe(args) => cmd::pipe::run(args),
        Command::Lessons(args) => cmd::lessons::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Coach(args) => cmd::coach::run(args),
        Command::Send(args) => cmd::send::run(*args),
        Command::Get(args) => cmd::get::run(args),
        Command::Scan(args) => cmd::scan::run(args),
        Command::Watch(args) => cmd::watch::run(args),
        Command::Backup(args) => cmd::backup::run(args),
        Command::Restore(args) => cmd::restore::run(args),
        Command::Load(args) => cmd::load::run(*args),
        Command::Bench(args) => cmd::bench::run(*args),
        Command::Top(args) => cmd::top::run(args),
        Command::Info(args) => cmd::info::run(args),
        Command::Del(args) => cmd::del::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "statecraft",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => man(),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Writes the man page: `statecraft(1)`, then one section per command.
fn man() -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let cmd = Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("statecraft-{}", sub.get_name());
        let sub = sub.clone().display_name(name.clone()).bin_name(name);
        clap_mangen::Man::new(sub).render(&mut out)?;
    }
    std::io::stdout().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_description_lists_every_command() {
        let cmd = Cli::command();
        let about = cmd.get_about().map(ToString::to_string).unwrap_or_default();
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = sub.get_name();
            if name == "help" {
                continue;
            }
            assert!(
                about.contains(&format!(" {name},")) || about.ends_with(&format!(" {name}")),
                "the top-level description does not list `{name}`: {about}"
            );
        }
    }
}
