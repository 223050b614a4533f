//! The machine's physical limits, measured on the spot so the workloads can
//! be compared with them (BENCH.md "Limits to compare against"):
//! fdatasync after 4 KiB and 64 KiB appends (rate, latency, bandwidth),
//! loopback TCP bandwidth over one connection, and the raw update rate of
//! an `FxHashMap<u64, u64>` — directly and through a channel in batches of
//! 1,024.
//!
//! Invariant: every figure is measured for a fixed wall-clock budget (not a
//! fixed amount of work), so `--quick` bounds the time and a slow disk
//! cannot stall the bench.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// fdatasync after appends of one size.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct FsyncFigure {
    /// Bytes appended before each fdatasync.
    pub append_bytes: u64,
    /// fdatasyncs per second.
    pub per_s: f64,
    /// Bytes per second made durable.
    pub mb_per_s: f64,
    /// Median write + fdatasync time, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// Every limit figure.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Limits {
    /// Where the fsync figures were measured.
    pub fsync_dir: String,
    /// 4 KiB appends.
    pub fsync_4k: FsyncFigure,
    /// 64 KiB appends.
    pub fsync_64k: FsyncFigure,
    /// One loopback TCP connection, bytes/s.
    pub loopback_bytes_per_s: f64,
    /// `FxHashMap<u64,u64>` `+= 1` on 1 M random keys, one thread, ops/s.
    pub hashmap_ops_per_s: f64,
    /// The same through a bounded channel in batches of 1,024, ops/s.
    pub hashmap_channel_ops_per_s: f64,
    /// Available cores.
    pub cores: usize,
}

/// Measures every limit, `budget` of wall time each.
pub fn measure(dir: &Path, budget: Duration) -> anyhow::Result<Limits> {
    Ok(Limits {
        fsync_dir: dir.display().to_string(),
        fsync_4k: fsync(dir, 4 << 10, budget)?,
        fsync_64k: fsync(dir, 64 << 10, budget)?,
        loopback_bytes_per_s: loopback(budget)?,
        hashmap_ops_per_s: hashmap(budget),
        hashmap_channel_ops_per_s: hashmap_channel(budget),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

/// Appends `size` bytes and fdatasyncs, again and again, for `budget`.
fn fsync(dir: &Path, size: usize, budget: Duration) -> anyhow::Result<FsyncFigure> {
    let path = dir.join(format!("fsync-probe-{size}"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let block = vec![0xA5u8; size];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .expect("constant bounds that hdrhistogram accepts");
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget || n < 10 {
        let t = Instant::now();
        file.write_all(&block)
            .context("appending to the probe file")?;
        // SAFETY: fdatasync(2) on a file descriptor we own and keep open.
        let rc = unsafe { libc::fdatasync(file.as_raw_fd()) };
        anyhow::ensure!(
            rc == 0,
            "fdatasync failed: {}",
            std::io::Error::last_os_error()
        );
        hist.saturating_record((t.elapsed().as_micros() as u64).max(1));
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(FsyncFigure {
        append_bytes: size as u64,
        per_s: n as f64 / secs,
        mb_per_s: (n * size as u64) as f64 / secs / 1e6,
        p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

/// One connection, one sender thread writing 256 KiB chunks, one receiver
/// thread discarding them.
fn loopback(budget: Duration) -> anyhow::Result<f64> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a listener")?;
    let addr = listener.local_addr()?;
    let receiver = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut s = TcpStream::connect(addr).context("connecting to the probe listener")?;
    let chunk = vec![0x5Au8; 256 << 10];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < budget {
        s.write_all(&chunk).context("writing on loopback")?;
        sent += chunk.len() as u64;
    }
    drop(s);
    let received = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the loopback receiver panicked"))?
        .context("reading on loopback")?;
    let secs = start.elapsed().as_secs_f64();
    Ok(received.min(sent) as f64 / secs)
}

/// Random keys in `0..1M`, generated before timing.
fn random_keys(n: usize) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(7);
    (0..n).map(|_| rng.random_range(0..1_000_000)).collect()
}

fn hashmap(budget: Duration) -> f64 {
    let keys = random_keys(1 << 22);
    let mut map: FxHashMap<u64, u64> = FxHashMap::default();
    map.reserve(1_000_000);
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < budget || ops == 0 {
        for k in &keys {
            *map.entry(*k).or_insert(0) += 1;
        }
        ops += keys.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(&map);
    ops as f64 / secs
}

fn hashmap_channel(budget: Duration) -> f64 {
    let keys = random_keys(1 << 22);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u64>>(64);
    let consumer = std::thread::spawn(move || {
        let mut map: FxHashMap<u64, u64> = FxHashMap::default();
        map.reserve(1_000_000);
        let mut ops = 0u64;
        for batch in rx {
            for k in &batch {
                *map.entry(*k).or_insert(0) += 1;
            }
            ops += batch.len() as u64;
        }
        std::hint::black_box(&map);
        ops
    });
    let start = Instant::now();
    'outer: loop {
        for chunk in keys.chunks(1024) {
            if tx.send(chunk.to_vec()).is_err() {
                break 'outer;
            }
        }
        if start.elapsed() >= budget {
            break;
        }
    }
    drop(tx);
    let ops = consumer.join().unwrap_or(0);
    ops as f64 / start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_is_measured_and_positive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = measure(dir.path(), Duration::from_millis(20)).expect("measures");
        assert!(l.fsync_4k.per_s > 0.0 && l.fsync_64k.mb_per_s > 0.0);
        assert!(l.fsync_4k.p99_ms >= l.fsync_4k.p50_ms);
        assert!(l.loopback_bytes_per_s > 0.0);
        assert!(l.hashmap_ops_per_s > 0.0 && l.hashmap_channel_ops_per_s > 0.0);
    }
}
