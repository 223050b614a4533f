//! One module per subcommand; each exposes its clap arguments and a `run`.

pub mod check;
pub mod coach;
pub mod lessons;
pub mod pipe;
pub mod serve;
