//! `statecraft load --target redis://…` against a redis-server this test
//! starts on a free port (no persistence): every `INCRBY` is answered and
//! lands. Without redis-server the test says so and passes — unless `CI`
//! is `true`, where a missing peer is a failure.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_server() -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

/// One command over a fresh connection; the raw reply.
fn call(port: u16, cmd: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(cmd)?;
    let mut buf = vec![0u8; 256];
    let n = s.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn load_drives_redis_with_pipelined_incrby() {
    let Some(bin) = redis_server() else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "redis-server is required under CI=true");
        println!("SKIPPED: redis-server not found on PATH");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _redis = Redis(
        Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !call(port, b"*1\r\n$4\r\nPING\r\n").is_ok_and(|r| r.starts_with(b"+PONG")) {
        assert!(
            Instant::now() < deadline,
            "redis-server did not answer PING"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .args(["load", "--target", &format!("redis://127.0.0.1:{port}")])
        .args([
            "--events",
            "4000",
            "--keys",
            "4",
            "--batch",
            "50",
            "--connections",
            "2",
        ])
        .args(["--key-prefix", "r:", "--json"])
        .output()
        .expect("load runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(r["events"], 4000);
    assert_eq!(r["errors"], 0);
    assert_eq!(r["ok"], 4000);
    assert_eq!(r["frames"], 80);
    let mut sum = 0i64;
    for k in 0..4 {
        let key = format!("r:{k}");
        let cmd = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
        let reply = call(port, cmd.as_bytes()).expect("GET");
        let text = String::from_utf8_lossy(&reply);
        // `$N\r\n<digits>\r\n`
        sum += text
            .lines()
            .nth(1)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0);
    }
    assert_eq!(sum, 4000, "every INCRBY landed");
}
