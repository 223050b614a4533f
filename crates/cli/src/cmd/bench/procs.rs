//! The processes a bench run starts and must stop: `statecraft serve` (this
//! very binary, `std::env::current_exe()`) on ports it picks itself, and
//! `redis-server` on a free port in a temporary directory; plus reading a
//! process's memory figures from `/proc`.
//!
//! Invariant: a spawned process never outlives its handle — `Drop` kills it
//! (SIGKILL) and reaps it, so an error or a panic in the bench leaves no
//! server behind holding a port or a data directory.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A running `statecraft serve`.
#[derive(Debug)]
pub struct ServeProc {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
    /// `127.0.0.1:PORT` of the TCP ingest.
    pub tcp: String,
    /// When the process was spawned.
    pub spawned: Instant,
    /// When `/healthz` first answered 200.
    pub ready: Instant,
}

/// How `statecraft serve` prints its listeners (cmd/serve.rs).
const HTTP_LINE: &str = "statecraft: http listening on ";
const TCP_LINE: &str = "statecraft: tcp listening on tcp://";

impl ServeProc {
    /// Spawns `exe serve --data-dir DIR --http 127.0.0.1:0 --tcp 127.0.0.1:0`
    /// plus `extra` flags, reads the bound addresses from its stdout, and
    /// waits until `/healthz` answers 200 (at most `timeout`). Its stderr
    /// (logs) goes to `log`.
    pub fn spawn(
        exe: &Path,
        data_dir: &Path,
        extra: &[String],
        log: &Path,
        timeout: Duration,
    ) -> anyhow::Result<ServeProc> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let spawned = Instant::now();
        let mut child = Command::new(exe)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0"])
            .args(["--log-level", "warn", "--log-format", "json"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("starting {} serve", exe.display()))?;
        let stdout = child.stdout.take().context("serve's stdout")?;
        // A thread reads stdout to its end (the pipe never fills).
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Nobody listens any more; keep draining.
                    continue;
                }
            }
        });
        let mut proc = ServeProc {
            child,
            http: String::new(),
            tcp: String::new(),
            spawned,
            ready: spawned,
        };
        let deadline = spawned + timeout;
        while proc.http.is_empty() || proc.tcp.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).map_err(|_| {
                anyhow::anyhow!(
                    "statecraft serve did not print its listeners within {timeout:?} (log: {})",
                    log.display()
                )
            })?;
            if let Some(url) = line.strip_prefix(HTTP_LINE) {
                proc.http = url.trim().to_owned();
            } else if let Some(addr) = line.strip_prefix(TCP_LINE) {
                proc.tcp = addr.trim().to_owned();
            }
        }
        proc.ready = wait_healthz(&proc.http, deadline, &mut proc.child).with_context(|| {
            format!(
                "statecraft serve did not get ready (log: {})",
                log.display()
            )
        })?;
        Ok(proc)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Time from spawn to the first `/healthz` 200.
    pub fn time_to_ready(&self) -> Duration {
        self.ready.duration_since(self.spawned)
    }

    /// `kill -9` and reap.
    pub fn kill9(mut self) {
        kill_and_reap(&mut self.child);
    }

    /// SIGTERM (graceful shutdown), then SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) {
        terminate(&mut self.child, grace);
    }
}

impl Drop for ServeProc {
    /// Never leave a server running.
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// Polls `GET {http}/healthz` (a raw HTTP/1.1 request: no client needed)
/// every millisecond until it answers 200; fails if `child` exits first.
fn wait_healthz(http: &str, deadline: Instant, child: &mut Child) -> anyhow::Result<Instant> {
    let addr = http
        .strip_prefix("http://")
        .with_context(|| format!("unexpected listener URL {http}"))?
        .to_owned();
    loop {
        if healthz_ok(&addr) {
            return Ok(Instant::now());
        }
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!("it exited with {status}");
        }
        anyhow::ensure!(Instant::now() < deadline, "/healthz was not 200 in time");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One `GET /healthz`: true on a 200.
pub fn healthz_ok(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 16];
    match s.read(&mut head) {
        Ok(n) => head[..n].starts_with(b"HTTP/1.1 200"),
        Err(_) => false,
    }
}

fn kill_and_reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill(2) with a pid we spawned and have not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    kill_and_reap(child);
}

/// A free TCP port on 127.0.0.1 (bound, read, released: another process may
/// take it in between, so callers retry on a bind failure).
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Redis persistence settings of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisPersistence {
    /// `--save "" --appendonly no`.
    None,
    /// `--appendonly yes --appendfsync everysec`.
    EverySec,
    /// `--appendonly yes --appendfsync always`.
    Always,
}

impl RedisPersistence {
    /// A short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            RedisPersistence::None => "no persistence",
            RedisPersistence::EverySec => "aof everysec",
            RedisPersistence::Always => "aof always",
        }
    }
}

/// A running `redis-server` of our own.
#[derive(Debug)]
pub struct RedisProc {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its working directory (AOF files).
    pub dir: PathBuf,
}

impl RedisProc {
    /// Starts `bin` on a free port with `persistence`, in `dir`, and waits
    /// until it answers PING (at most `timeout`; Redis answers `-LOADING`
    /// while it reads its AOF).
    pub fn spawn(
        bin: &Path,
        persistence: RedisPersistence,
        dir: &Path,
        port: Option<u16>,
        timeout: Duration,
    ) -> anyhow::Result<RedisProc> {
        let mut last_err = None;
        for _ in 0..3 {
            let port = match port {
                Some(p) => p,
                None => free_port()?,
            };
            let mut cmd = Command::new(bin);
            cmd.arg("--port")
                .arg(port.to_string())
                .args([
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--protected-mode",
                    "no",
                ])
                .arg("--dir")
                .arg(dir)
                .arg("--logfile")
                .arg(dir.join("redis.log"));
            match persistence {
                RedisPersistence::None => {
                    cmd.args(["--appendonly", "no"]);
                }
                RedisPersistence::EverySec => {
                    cmd.args(["--appendonly", "yes", "--appendfsync", "everysec"]);
                }
                RedisPersistence::Always => {
                    cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
                }
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            let mut proc = RedisProc {
                child,
                port,
                dir: dir.to_owned(),
            };
            match proc.wait_pong(timeout) {
                Ok(()) => return Ok(proc),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    /// Waits until PING answers PONG.
    pub fn wait_pong(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if ping(self.port) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                anyhow::bail!(
                    "redis-server exited with {status} (log: {})",
                    self.dir.join("redis.log").display()
                );
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "redis-server did not answer PING within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `kill -9` and reap.
    pub fn kill9(mut self) {
        kill_and_reap(&mut self.child);
    }
}

impl Drop for RedisProc {
    /// Never leave a Redis running.
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// One PING; true on `+PONG`.
fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// A `VmXXX:` figure of `/proc/PID/status`, KiB (`VmHWM` = peak RSS).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Finds an executable by name on `PATH` (or takes a path as is).
pub fn which(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_owned());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_status_has_a_peak_rss() {
        let hwm = proc_status_kib(std::process::id(), "VmHWM").expect("VmHWM");
        assert!(hwm > 0);
    }

    #[test]
    fn which_finds_sh() {
        assert!(which("sh").is_some());
        assert!(which("no-such-program-here").is_none());
    }
}
