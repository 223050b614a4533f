//! Model test across restarts: random event sequences (all ops, paths,
//! `if_version`, ids, several keys) through a durable engine that is shut down
//! and reopened on the same data dir at random points, and through a plain
//! single-threaded `HashMap` model, produce the same per-event results and the
//! same final state — versions, values and idempotency ids survive restarts. The model shares only the value transformation (`ops::apply`, unit
//! tested on its own); versions, conflicts, duplicates and deletion are
//! re-implemented here independently.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use serde_json::{Value, json};
use statecraft_engine::{AckMode, Engine, Event, EventResult, Op, ops};

#[derive(Default)]
struct Model {
    state: HashMap<String, (Value, u64)>,
    ids: HashSet<(String, String)>,
}

impl Model {
    fn apply(&mut self, e: &Event) -> EventResult {
        if let Some(id) = &e.id
            && self.ids.contains(&(e.key.clone(), id.clone()))
        {
            return EventResult::Duplicate;
        }
        let current = self.state.get(&e.key).cloned();
        let version = current.as_ref().map_or(0, |(_, v)| *v);
        if let Some(expected) = e.if_version
            && expected != version
        {
            return EventResult::Conflict {
                current_version: version,
            };
        }
        let mut slot = current.map(|(v, _)| v);
        if let Err(r) = ops::apply(&mut slot, e, None) {
            return r.into();
        }
        if let Some(id) = &e.id {
            self.ids.insert((e.key.clone(), id.clone()));
        }
        match slot {
            Some(v) => {
                self.state.insert(e.key.clone(), (v, version + 1));
                EventResult::Applied {
                    version: version + 1,
                }
            }
            None => {
                self.state.remove(&e.key);
                EventResult::Applied { version: 0 }
            }
        }
    }
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-5i64..5).prop_map(Value::from),
        (-5.0f64..5.0).prop_map(|f| json!(f)),
        "[a-c]{0,2}".prop_map(Value::from),
        Just(json!({"a": 1})),
        Just(json!({"a": null, "b": {"c": 2}})),
        Just(json!([1, 2])),
        Just(Value::Null),
    ]
}

fn arb_event() -> impl Strategy<Value = Event> {
    let op = prop_oneof![
        Just(Op::Set),
        Just(Op::Merge),
        Just(Op::Incr),
        Just(Op::Append),
        Just(Op::Max),
        Just(Op::Min),
        Just(Op::Delete),
    ];
    let path = prop_oneof![
        4 => Just(None),
        1 => Just(Some("/a".to_owned())),
        1 => Just(Some("/a/b".to_owned())),
        1 => Just(Some("/x~1y".to_owned())),
    ];
    (
        0u8..4,
        op,
        path,
        proptest::option::of(arb_value()),
        proptest::option::weighted(0.3, 0u8..6),
        proptest::option::weighted(0.2, 0u64..4),
        proptest::option::weighted(0.2, 1usize..3),
    )
        .prop_map(|(k, op, path, value, id, if_version, max_len)| Event {
            key: format!("k{k}"),
            op,
            path,
            value,
            id: id.map(|i| format!("id{i}")),
            if_version,
            ttl_s: None,
            max_len,
        })
}

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
