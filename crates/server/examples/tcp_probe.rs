//! A quick TCP throughput probe (not the `load` tool): C connections, each
//! pipelining frames of B `incr` events on K uniform keys, up to W frames in
//! flight, until N events are acknowledged.
//!
//! ```sh
//! cargo run --release -p statecraft-server --example tcp_probe -- \
//!     127.0.0.1:7471 applied 10000000 [connections=8] [batch=1000] [keys=100000] [window=16]
//! ```

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use statecraft_engine::AckMode;
use statecraft_server::TcpClient;
use statecraft_server::protocol::ServerFrame;
use tokio::sync::Semaphore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7471".into());
    let ack = AckMode::parse(args.get(2).map_or("applied", String::as_str)).ok_or("bad ack")?;
    let total: u64 = args.get(3).map_or(Ok(10_000_000), |s| s.parse())?;
    let conns: u64 = args.get(4).map_or(Ok(8), |s| s.parse())?;
    let batch: u64 = args.get(5).map_or(Ok(1000), |s| s.parse())?;
    let keys: u64 = args.get(6).map_or(Ok(100_000), |s| s.parse())?;
    let window: usize = args.get(7).map_or(Ok(16), |s| s.parse())?;
    let frames_per_conn = total / conns / batch;
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let client = TcpClient::connect(addr.as_str(), None).await?;
        let (mut tx, mut rx) = client.split();
        let credits = Arc::new(Semaphore::new(window));
        let send_credits = Arc::clone(&credits);
        tasks.push(tokio::spawn(async move {
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (c + 1);
            let mut key = String::with_capacity(16);
            for _ in 0..frames_per_conn {
                let Ok(permit) = send_credits.acquire().await else {
                    break;
                };
                permit.forget();
                let mut b = tx.batch(Some(ack));
                for _ in 0..batch {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    key.clear();
                    let _ = write!(key, "key:{:06}", rng % keys);
                    b.incr(&key, 1);
                }
                if b.send().await.is_err() {
                    break;
                }
            }
        }));
        let acked = Arc::clone(&acked);
        let errors = Arc::clone(&errors);
        tasks.push(tokio::spawn(async move {
            for _ in 0..frames_per_conn {
                match rx.recv().await {
                    Ok(ServerFrame::Ack { results, .. }) => {
                        let bad = results
                            .iter()
                            .filter(|r| {
                                !matches!(
                                    r,
                                    statecraft_engine::EventResult::Applied { .. }
                                        | statecraft_engine::EventResult::Accepted
                                )
                            })
                            .count() as u64;
                        errors.fetch_add(bad, Ordering::Relaxed);
                        acked.fetch_add(results.len() as u64, Ordering::Relaxed);
                        credits.add_permits(1);
                    }
                    Ok(other) => {
                        eprintln!("unexpected {other:?}");
                        errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => {
                        eprintln!("connection {c}: {e}");
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = acked.load(Ordering::Relaxed);
    println!(
        "{{\"ack\":\"{ack}\",\"events\":{n},\"seconds\":{secs:.3},\"events_per_s\":{:.0},\"errors\":{},\"connections\":{conns},\"batch\":{batch},\"window\":{window}}}",
        n as f64 / secs,
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}
