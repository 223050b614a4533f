//! Model test across restarts: random event sequences (all ops, paths,
//! `if_version`, ids, several keys) through a durable engine that is shut down
//! and reopened on the same data dir at random points, and through a plain
//! single-threaded `HashMap` model, produce the same per-event results and the
//! same final state — versions, values and idempotency ids survive restarts. The model shares only the value transformation (`ops::apply`, unit
//! tested on its own); versions, conflicts, duplicates and deletion are
//! re-implemented here independently.

mod common;

use common::{Model, arb_event};
use proptest::prelude::*;
use statecraft_engine::{AckMode, Engine, EventResult};

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn durable_engine_matches_the_model_across_restarts(
        chunks in proptest::collection::vec(
            (proptest::collection::vec(arb_event(), 1..30), proptest::bool::weighted(0.3)),
            1..8,
        ),
        shards in 1usize..4,
        max_batch in 1usize..20,
        checkpoint_batches in 1u64..5,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let dir = tempfile::tempdir().expect("tempdir");
        rt.block_on(async {
            let open = || async {
                Engine::builder()
                    .shards(shards)
                    .max_batch(max_batch)
                    .data_dir(dir.path())
                    .checkpoint(std::time::Duration::from_secs(3600), checkpoint_batches)
                    .open()
                    .await
                    .expect("open")
            };
            let mut engine = open().await;
            let mut model = Model::default();
            for (chunk, restart_after) in chunks {
                let expected: Vec<EventResult> = chunk.iter().map(|e| model.apply(e)).collect();
                let got = engine.submit_with(chunk, AckMode::Durable).await.expect("submit");
                prop_assert_eq!(got, expected);
                if restart_after {
                    engine.shutdown().await.expect("shutdown");
                    engine = open().await;
                }
            }
            for k in 0..4 {
                let key = format!("k{k}");
                let got = engine.get(&key).await.expect("get").map(|r| (r.value, r.version));
                prop_assert_eq!(got, model.state.get(&key).cloned(), "key {}", key);
            }
            let scanned = engine.scan("k", None, 100).await.expect("scan");
            prop_assert_eq!(scanned.len(), model.state.len());
            // And once more after a final restart.
            engine.shutdown().await.expect("shutdown");
            let engine = open().await;
            for k in 0..4 {
                let key = format!("k{k}");
                let got = engine.get(&key).await.expect("get").map(|r| (r.value, r.version));
                prop_assert_eq!(got, model.state.get(&key).cloned(), "after restart, key {}", key);
            }
            engine.shutdown().await.expect("shutdown");
            Ok(())
        })?;
    }
}
