//! Per-key order: 1,000 `set`s on one key in one submission end at the last
//! one, whatever the shard count and batch size.

use serde_json::json;
use statecraft_engine::{AckMode, Engine, Event, EventResult};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_sets_on_one_key_end_at_the_last() {
    for (shards, max_batch) in [(1, 1), (2, 7), (4, 1000)] {
        let engine = Engine::builder()
            .shards(shards)
            .max_batch(max_batch)
            .open()
            .await
            .expect("open");
        let events: Vec<Event> = (0..1000).map(|i| Event::set("k", json!(i))).collect();
        let results = engine
            .submit_with(events, AckMode::Applied)
            .await
            .expect("submit");
        for (i, r) in results.iter().enumerate() {
            assert_eq!(
                *r,
                EventResult::Applied {
                    version: i as u64 + 1
                }
            );
        }
        let rec = engine.get("k").await.expect("get").expect("present");
        assert_eq!(rec.value, json!(999));
        assert_eq!(rec.version, 1000);
        engine.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_submissions_keep_order_across_many_keys() {
    let engine = Engine::builder()
        .shards(3)
        .max_batch(16)
        .open()
        .await
        .expect("open");
    for round in 0..50 {
        let events: Vec<Event> = (0..40)
            .map(|k| Event::set(format!("key:{k}"), json!(round)))
            .collect();
        engine
            .enqueue(events, AckMode::Applied)
            .await
            .expect("admit");
    }
    engine.barrier().await.expect("barrier");
    for k in 0..40 {
        let rec = engine
            .get(&format!("key:{k}"))
            .await
            .expect("get")
            .expect("present");
        assert_eq!(rec.value, json!(49), "key:{k}");
        assert_eq!(rec.version, 50);
    }
    engine.shutdown().await.expect("shutdown");
}

/// The shard skips measuring a document while an upper bound of its size
/// plus the event's growth fits under `max_value_bytes` (issue 20). Two
/// adversaries for that shortcut: (1) merges that keep rewriting the same
/// members never grow the document, so however far the bound drifts up they
/// must never be refused; (2) merges that add a member each must be refused
/// exactly when the document would pass the limit, leaving it unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_under_the_value_limit_are_bounded_exactly() {
    use statecraft_engine::{Limits, Op, RejectCode};
    let limits = Limits {
        max_value_bytes: 2_000,
        ..Limits::DEFAULT
    };
    let engine = Engine::builder()
        .shards(1)
        .limits(limits)
        .open()
        .await
        .expect("open");
    let patch = json!({"name": "x".repeat(100), "n": 1});
    // (1) 200 rewrites of a ~120-byte document: bound drifts to ~30 KB.
    let events: Vec<Event> = (0..200)
        .map(|_| Event::new("same", Op::Merge).with_value(patch.clone()))
        .collect();
    let results = engine
        .submit_with(events, AckMode::Applied)
        .await
        .expect("submit");
    assert!(
        results.iter().all(EventResult::is_applied),
        "a document that does not grow must never be refused: {:?}",
        results.iter().find(|r| !r.is_applied())
    );
    // (2) each merge adds a ~110-byte member: the limit must bite.
    let events: Vec<Event> = (0..40)
        .map(|i| {
            Event::new("grows", Op::Merge)
                .with_value(json!({ format!("m{i:02}"): "y".repeat(100) }))
        })
        .collect();
    let results = engine
        .submit_with(events, AckMode::Applied)
        .await
        .expect("submit");
    let applied = results.iter().take_while(|r| r.is_applied()).count();
    assert!(
        (10..40).contains(&applied),
        "growth must be refused near 2,000 bytes, applied {applied}"
    );
    for r in &results[applied..] {
        assert!(
            matches!(
                r,
                EventResult::Rejected {
                    code: RejectCode::ValueTooLarge,
                    ..
                }
            ),
            "{r:?}"
        );
    }
    let rec = engine.get("grows").await.expect("get").expect("present");
    assert_eq!(rec.version, applied as u64, "refused merges change nothing");
    assert!(
        limits.value_fits(&rec.value),
        "the stored document is within the limit"
    );
    engine.shutdown().await.expect("shutdown");
}

/// Issue 20 review (adversary): the shard's u16 size bound must never make
/// a decision differ from measuring the document. A deterministic mix of
/// growing merges, merges that remove members (`null`), whole-value sets
/// that shrink the document, path sets, appends and deletes runs against a
/// model that applies each patch and asks `Limits::value_fits`: every event
/// is applied exactly when the model's document fits, refused with
/// `value_too_large` otherwise, and the value always equals the model's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_bound_decides_like_measuring_after_shrinks_and_deletes() {
    use serde_json::{Map, Value};
    use statecraft_engine::{Limits, Op, RejectCode};
    let limits = Limits {
        max_value_bytes: 3_000,
        ..Limits::DEFAULT
    };
    let engine = Engine::builder()
        .shards(1)
        .limits(limits)
        .open()
        .await
        .expect("open");
    let mut model: Option<Value> = None;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut applied, mut refused) = (0, 0);
    for step in 0..3_000 {
        let member = format!("m{}", next() % 40);
        let len = (next() % 400) as usize;
        let (event, after) = match next() % 20 {
            0 => (Event::new("doc", Op::Delete), None),
            1 | 2 => {
                let v = json!({ "small": len % 7 });
                (Event::set("doc", v.clone()), Some(v))
            }
            3 | 4 => {
                let mut doc = match &model {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                doc.remove(&member);
                (
                    Event::new("doc", Op::Merge).with_value(json!({ member.clone(): null })),
                    Some(Value::Object(doc)),
                )
            }
            5 => {
                let mut doc = match &model {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                let s = Value::String("p".repeat(len));
                doc.insert(member.clone(), s.clone());
                (
                    Event::set("doc", s).with_path(format!("/{member}")),
                    Some(Value::Object(doc)),
                )
            }
            _ => {
                let mut doc = match &model {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                let s = Value::String("x".repeat(len));
                doc.insert(member.clone(), s.clone());
                (
                    Event::new("doc", Op::Merge).with_value(json!({ member.clone(): s })),
                    Some(Value::Object(doc)),
                )
            }
        };
        let fits = after.as_ref().is_none_or(|v| limits.value_fits(v));
        let r = engine
            .submit_with(vec![event], AckMode::Applied)
            .await
            .expect("submit");
        if fits {
            assert!(r[0].is_applied(), "step {step}: {:?}", r[0]);
            model = after;
            applied += 1;
        } else {
            assert!(
                matches!(
                    r[0],
                    EventResult::Rejected {
                        code: RejectCode::ValueTooLarge,
                        ..
                    }
                ),
                "step {step}: {:?}",
                r[0]
            );
            refused += 1;
        }
        let got = engine.get("doc").await.expect("get").map(|r| r.value);
        assert_eq!(got, model, "step {step}");
    }
    assert!(
        applied > 1_000 && refused > 50,
        "{applied} applied, {refused} refused"
    );
    engine.shutdown().await.expect("shutdown");
}
