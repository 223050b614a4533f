//! Test support: a private `nats-server -js` on a free loopback port with a
//! temporary store dir, killed when dropped.
//!
//! Without the binary the tests print why and pass as skipped — unless
//! `CI` is set, where a missing `nats-server` is a failure (`.ci/run`
//! installs it).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server, killed on drop.
pub struct NatsServer {
    child: Child,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        return Some(PathBuf::from(p));
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/bin",
    ]) {
        let p = PathBuf::from(dir).join("nats-server");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// Lowest and highest port the tests pick from: below Linux's ephemeral
/// range (32768-60999), so the kernel does not hand the port to an
/// outgoing connection between our probe and the server's bind.
pub const TEST_PORTS: (u16, u16) = (20_000, 32_000);

/// A free loopback port in [`TEST_PORTS`], probed from a per-process start.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let seed = u64::from(std::process::id()) * 7_919 + nanos;
    let span = u64::from(TEST_PORTS.1 - TEST_PORTS.0);
    for _ in 0..1_000 {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = TEST_PORTS.0 + ((seed + i * 104_729) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {TEST_PORTS:?}");
}

/// Starts a private server, or `None` (after printing why) when the binary
/// is missing outside CI. Panics under CI=true when it is missing.
pub fn start() -> Option<NatsServer> {
    let Some(bin) = binary() else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(
            !ci,
            "nats-server is not installed but CI is set: .ci/run must install it (apt package `nats-server`)"
        );
        eprintln!(
            "SKIPPED: nats-server is not installed (apt-get install nats-server); set CI=true to make this a failure"
        );
        return None;
    };
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break; // port taken meanwhile: try another
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(NatsServer {
                    child,
                    url: format!("nats://127.0.0.1:{port}"),
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("nats-server did not start");
}
