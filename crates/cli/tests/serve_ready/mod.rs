//! Shared by the tests that run `statecraft serve` as a child process: waits
//! for its `statecraft: ready` line and reads the addresses it printed before
//! it. Invariant: the child's stdout is drained for as long as it lives (a
//! thread keeps reading), so the server never blocks on a full pipe.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Child;

/// The addresses a started server printed.
#[allow(dead_code)] // each test binary uses its own subset
pub struct Listening {
    /// `statecraft: http listening on http://ADDR`.
    pub http: SocketAddr,
    /// `statecraft: tcp listening on tcp://ADDR`, when printed.
    pub tcp: Option<SocketAddr>,
}

/// Reads the child's stdout until `statecraft: ready`; panics if it ends first
/// or never named its HTTP address. The child must have `Stdio::piped()` stdout.
pub fn await_ready(child: &mut Child) -> Listening {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut http, mut tcp) = (None, None);
    for line in lines.by_ref() {
        let line = line.expect("stdout line");
        if let Some(a) = line.strip_prefix("statecraft: http listening on http://") {
            http = Some(a.parse().expect("http addr"));
        } else if let Some(a) = line.strip_prefix("statecraft: tcp listening on tcp://") {
            tcp = Some(a.parse().expect("tcp addr"));
        } else if line == "statecraft: ready" {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Listening {
        http: http.expect("printed the http address"),
        tcp,
    }
}
