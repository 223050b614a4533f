//! The `statecraft` binary: one command per subcommand module under `cmd/`.
//!
//! Tour: `cmd::serve` runs the server; `send`/`get`/`scan`/`watch`/`backup`/`top` are
//! clients of a running server; `load` and `bench` measure; `pipe` is the engine
//! speaking the lesson pipe protocol on stdio; `lessons`, `check` and `coach` are
//! the learning path. Errors reach the user through anyhow, once, at this edge.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// mimalloc: events are allocated by connection tasks and freed by shard
/// threads; glibc's malloc pays for that cross-thread traffic (measured with
/// the W6 example: ≈ 260 → ≈ 200 ns of CPU per event).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Statecraft: a concurrent state management engine, and a course on building one.
#[derive(Debug, Parser)]
#[command(name = "statecraft", version, about, long_about = None)]
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
    /// Send NDJSON events from a file or stdin to a running server.
    Send(Box<cmd::send::SendArgs>),
    /// Print one key's state record.
    Get(cmd::get::GetArgs),
    /// List live keys in key order (NDJSON).
    Scan(cmd::scan::ScanArgs),
    /// Print changes as they happen (NDJSON).
    Watch(cmd::watch::WatchArgs),
    /// Copy a data directory offline into a backup directory.
    Backup(cmd::backup::BackupArgs),
    /// Generate load against a server (or a Redis peer) and report events/s
    /// and latency percentiles (BENCH.md's contract).
    Load(Box<cmd::load::LoadArgs>),
    /// Run BENCH.md's workloads against Statecraft and its peers; write
    /// results.json, report.md and chart.svg.
    Bench(Box<cmd::bench::BenchArgs>),
    /// The dashboard's figures live in the terminal (a server given by URL).
    Top(cmd::top::TopArgs),
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
        Command::Load(args) => cmd::load::run(*args),
        Command::Bench(args) => cmd::bench::run(*args),
        Command::Top(args) => cmd::top::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
