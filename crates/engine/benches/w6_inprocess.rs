//! Criterion bench for BENCH.md W6: `incr` on 100,000 uniform keys through the
//! library API (ack=applied), batches of 1,000 and of 1.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use statecraft_engine::{AckMode, Engine, Event};

fn events(n: usize, seed: &mut u64) -> Vec<Event> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            Event::incr(format!("user:{}", (*seed >> 33) % 100_000), 1)
        })
        .collect()
}

fn w6(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let engine = rt.block_on(Engine::builder().open()).expect("engine");
    let mut group = c.benchmark_group("w6_inprocess");
    for batch in [1usize, 1_000] {
        let per_iter = 64 * batch;
        group.throughput(Throughput::Elements(per_iter as u64));
        group.bench_function(format!("applied_batch_{batch}"), |b| {
            let mut seed = 7u64;
            b.iter_batched(
                || {
                    (0..64)
                        .map(|_| events(batch, &mut seed))
                        .collect::<Vec<_>>()
                },
                |batches| {
                    rt.block_on(async {
                        let mut tickets = Vec::with_capacity(batches.len());
                        for b in batches {
                            tickets.push(engine.enqueue(b, AckMode::Applied).await.expect("admit"));
                        }
                        for t in tickets {
                            black_box(t.wait().await);
                        }
                    })
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
    rt.block_on(engine.shutdown()).expect("shutdown");
}

criterion_group!(benches, w6);
criterion_main!(benches);
