//! One module per subcommand; each exposes its clap arguments and a `run`.

pub mod backup;
pub mod bench;
pub mod check;
pub mod coach;
pub mod del;
pub mod get;
pub mod info;
pub mod lessons;
pub mod load;
pub mod pipe;
pub mod remote;
pub mod restore;
pub mod scan;
pub mod send;
pub mod serve;
pub mod top;
pub mod watch;
