//! A quick HTTP NDJSON throughput probe (not the `load` tool): C concurrent
//! requests, each a body of B `incr` lines on K uniform keys, until N events
//! are answered.
//!
//! ```sh
//! cargo run --release -p statecraft-server --example http_probe -- \
//!     http://127.0.0.1:7470 durable 2000000 [connections=8] [batch=1000] [keys=100000]
//! ```

use std::fmt::Write as _;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let base = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:7470".into());
    let ack = args.get(2).cloned().unwrap_or_else(|| "durable".into());
    let total: u64 = args.get(3).map_or(Ok(2_000_000), |s| s.parse())?;
    let conns: u64 = args.get(4).map_or(Ok(8), |s| s.parse())?;
    let batch: u64 = args.get(5).map_or(Ok(1000), |s| s.parse())?;
    let keys: u64 = args.get(6).map_or(Ok(100_000), |s| s.parse())?;
    let requests_per_conn = total / conns / batch;
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/events?ack={ack}");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (c + 1);
            let mut ok = 0u64;
            for _ in 0..requests_per_conn {
                let mut body = String::with_capacity(batch as usize * 40);
                for _ in 0..batch {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let _ = writeln!(
                        body,
                        "{{\"key\":\"key:{:06}\",\"op\":\"incr\"}}",
                        rng % keys
                    );
                }
                let resp = client
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok += batch;
                    }
                    Ok(r) => eprintln!("status {}", r.status()),
                    Err(e) => eprintln!("{e}"),
                }
            }
            ok
        }));
    }
    let mut n = 0;
    for t in tasks {
        n += t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"ack\":\"{ack}\",\"events\":{n},\"seconds\":{secs:.3},\"events_per_s\":{:.0},\"connections\":{conns},\"batch\":{batch}}}",
        n as f64 / secs
    );
    Ok(())
}
