//! Model test: random event sequences (all ops, paths, `if_version`, ids,
//! several keys) through the engine and through a plain single-threaded
//! `HashMap` model produce the same per-event results and the same final
//! state. The model shares only the value transformation (`ops::apply`, unit
//! tested on its own); versions, conflicts, duplicates and deletion are
//! re-implemented here independently.

mod common;

use common::{Model, arb_event};
use proptest::prelude::*;
use statecraft_engine::{AckMode, Engine, EventResult};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_hashmap_model(
        chunks in proptest::collection::vec(proptest::collection::vec(arb_event(), 1..30), 1..8),
        shards in 1usize..4,
        max_batch in 1usize..20,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(async {
            let engine = Engine::builder().shards(shards).max_batch(max_batch).open().await.expect("open");
            let mut model = Model::default();
            for chunk in chunks {
                let expected: Vec<EventResult> = chunk.iter().map(|e| model.apply(e)).collect();
                let got = engine.submit_with(chunk, AckMode::Applied).await.expect("submit");
                prop_assert_eq!(got, expected);
            }
            for k in 0..4 {
                let key = format!("k{k}");
                let got = engine.get(&key).await.expect("get").map(|r| (r.value, r.version));
                prop_assert_eq!(got, model.state.get(&key).cloned(), "key {}", key);
            }
            let scanned = engine.scan("k", None, 100).await.expect("scan");
            prop_assert_eq!(scanned.len(), model.state.len());
            engine.shutdown().await.expect("shutdown");
            Ok(())
        })?;
    }
}
