//! Durability through the library API: acknowledged state survives a restart
//! (crash recovery with kill -9 is tested on the real binary in crates/cli/tests), ids dedup across restarts,
//! checkpoints plus log replay give the same state, TTL keys vanish, and the
//! hot-key cache evicts under a small budget without losing anything.

use std::time::Duration;

use serde_json::json;
use statecraft_engine::{AckMode, Engine, Event, EventResult};

async fn open(dir: &std::path::Path, ckpt_batches: u64) -> Engine {
    Engine::builder()
        .shards(2)
        .data_dir(dir)
        .checkpoint(Duration::from_secs(3600), ckpt_batches)
        .open()
        .await
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_state_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open(dir.path(), 1_000_000).await;
    for round in 0..20 {
        let events: Vec<Event> = (0..50)
            .map(|k| Event::incr(format!("c{k}"), round))
            .collect();
        let r = e
            .submit_with(events, AckMode::Durable)
            .await
            .expect("submit");
        assert!(r.iter().all(EventResult::is_applied));
    }
    e.shutdown().await.expect("shutdown");
    let e = open(dir.path(), 1_000_000).await;
    let expected: i64 = (0..20).sum();
    for k in 0..50 {
        let rec = e
            .get(&format!("c{k}"))
            .await
            .expect("get")
            .expect("present");
        assert_eq!(rec.value, json!(expected));
        assert_eq!(rec.version, 20);
    }
    let r = e
        .submit_with(vec![Event::incr("c0", 1)], AckMode::Durable)
        .await
        .expect("submit");
    assert_eq!(r[0], EventResult::Applied { version: 21 });
    e.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_dedup_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open(dir.path(), 2).await;
    let ev = |id: &str| Event::incr("k", 1).with_id(id);
    let r = e
        .submit_with(vec![ev("a"), ev("b"), ev("a")], AckMode::Durable)
        .await
        .expect("submit");
    assert_eq!(
        r,
        vec![
            EventResult::Applied { version: 1 },
            EventResult::Applied { version: 2 },
            EventResult::Duplicate
        ]
    );
    e.shutdown().await.expect("shutdown");
    let e = open(dir.path(), 2).await;
    let r = e
        .submit_with(vec![ev("a"), ev("b"), ev("c")], AckMode::Durable)
        .await
        .expect("submit");
    assert_eq!(
        r,
        vec![
            EventResult::Duplicate,
            EventResult::Duplicate,
            EventResult::Applied { version: 3 }
        ]
    );
    e.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_keys_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open(dir.path(), 1).await;
    e.submit_with(
        vec![
            Event::set("short", json!(1)).with_ttl(1),
            Event::set("long", json!(2)).with_ttl(3600),
        ],
        AckMode::Durable,
    )
    .await
    .expect("submit");
    assert!(e.get("short").await.expect("get").is_some());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(
        e.get("short").await.expect("get").is_none(),
        "expired at once"
    );
    assert!(e.get("long").await.expect("get").is_some());
    let scanned = e.scan("", None, 10).await.expect("scan");
    assert_eq!(scanned.len(), 1);
    e.shutdown().await.expect("shutdown");
    let e = open(dir.path(), 1).await;
    assert!(
        e.get("short").await.expect("get").is_none(),
        "and after restart"
    );
    assert!(e.get("long").await.expect("get").is_some());
    e.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_evicts_under_a_small_budget_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Engine::builder()
        .shards(2)
        .max_batch(100)
        .data_dir(dir.path())
        .checkpoint(Duration::from_millis(1), 1)
        .cache_bytes(64 << 10)
        .open()
        .await
        .expect("open");
    for chunk in 0..20 {
        let events: Vec<Event> = (0..500)
            .map(|i| Event::set(format!("key:{:05}", chunk * 500 + i), json!({"n": i})))
            .collect();
        e.submit_with(events, AckMode::Durable)
            .await
            .expect("submit");
    }
    // A second pass so checkpoints confirm and eviction can run.
    for chunk in 0..20 {
        let events: Vec<Event> = (0..500)
            .map(|i| Event::incr(format!("key:{:05}", chunk * 500 + i), 1).with_path("/n"))
            .collect();
        e.submit_with(events, AckMode::Durable)
            .await
            .expect("submit");
    }
    let d = e.stats().durability.expect("durable");
    assert!(d.cache_evictions > 0, "evicted: {d:?}");
    for i in (0..10_000).step_by(97) {
        let rec = e
            .get(&format!("key:{i:05}"))
            .await
            .expect("get")
            .expect("present");
        assert_eq!(rec.value, json!({"n": i % 500 + 1}), "key:{i:05}");
        assert_eq!(rec.version, 2);
    }
    let page = e.scan("key:", Some("key:09990"), 100).await.expect("scan");
    assert_eq!(page.len(), 9);
    e.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_opens_as_a_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open(dir.path(), 1).await;
    e.submit_with(vec![Event::set("a", json!("x"))], AckMode::Durable)
        .await
        .expect("submit");
    let target = dir.path().join("backup");
    e.backup(&target).await.expect("backup");
    e.shutdown().await.expect("shutdown");
    let b = open(&target, 1).await;
    assert_eq!(
        b.get("a").await.expect("get").expect("present").value,
        json!("x")
    );
    b.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_installs_states_verbatim_and_durably() {
    use statecraft_engine::StateRecord;
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open(dir.path(), 1).await;
    e.submit_with(
        vec![Event::set("gone", json!(1)), Event::set("kept", json!(1))],
        AckMode::Durable,
    )
    .await
    .expect("submit");
    let rec = |key: &str, v: serde_json::Value, version: u64| StateRecord {
        key: key.to_owned(),
        value: v,
        version,
        updated_at: 1_700_000_000_000,
        expires_at: None,
    };
    e.restore(vec![
        ("a".to_owned(), Some(rec("a", json!({"n": 5}), 41))),
        ("kept".to_owned(), Some(rec("kept", json!(7), 9))),
        ("gone".to_owned(), None),
    ])
    .await
    .expect("restore");
    let a = e.get("a").await.expect("get").expect("present");
    assert_eq!(
        (a.value, a.version, a.updated_at),
        (json!({"n": 5}), 41, 1_700_000_000_000)
    );
    assert!(e.get("gone").await.expect("get").is_none());
    let r = e
        .submit_with(vec![Event::incr("kept", 1)], AckMode::Durable)
        .await
        .expect("submit");
    assert_eq!(
        r[0],
        EventResult::Applied { version: 10 },
        "versions continue from the restored one"
    );
    e.shutdown().await.expect("shutdown");
    let e = open(dir.path(), 1).await;
    assert_eq!(e.get("a").await.expect("get").expect("present").version, 41);
    assert_eq!(
        e.get("kept").await.expect("get").expect("present").value,
        json!(8)
    );
    assert!(e.get("gone").await.expect("get").is_none());
    e.shutdown().await.expect("shutdown");
}

/// Issue 16, finding 7: a failed store read is an error answered to that
/// event, never "absent". Before the fix, a key whose read failed started
/// over at version 1 (and that reset was logged durably), and an id whose
/// dedup read failed was applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_store_read_is_an_error_never_absent() {
    use statecraft_engine::RejectCode;
    use statecraft_store::Fault;
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open(dir.path(), 1).await;
    let r = e
        .submit_with(
            vec![
                Event::set("k", json!(41)),
                Event::incr("d", 1).with_id("once"),
            ],
            AckMode::Durable,
        )
        .await
        .expect("submit");
    assert!(r.iter().all(EventResult::is_applied), "{r:?}");
    e.shutdown().await.expect("shutdown");

    // Reopened: nothing is in memory, every key is read from the store.
    let e = open(dir.path(), 1).await;
    let store_unavailable = |r: &EventResult| {
        matches!(
            r,
            EventResult::Rejected {
                code: RejectCode::StoreUnavailable,
                ..
            }
        )
    };
    // The key's read fails: the event is refused, the key is not reset.
    assert!(
        e.inject_store_fault(Fault::Read),
        "a durable engine has a store"
    );
    let r = e
        .submit_with(vec![Event::incr("k", 1)], AckMode::Durable)
        .await
        .expect("submit");
    assert!(store_unavailable(&r[0]), "{r:?}");
    let r = e
        .submit_with(vec![Event::incr("k", 1)], AckMode::Durable)
        .await
        .expect("submit");
    assert_eq!(r[0], EventResult::Applied { version: 2 });
    assert_eq!(
        e.get("k").await.expect("get").expect("present").value,
        json!(42)
    );

    // The dedup read fails: refused, not applied a second time.
    assert!(e.inject_store_fault(Fault::Read));
    let r = e
        .submit_with(vec![Event::incr("d", 1).with_id("once")], AckMode::Durable)
        .await
        .expect("submit");
    assert!(store_unavailable(&r[0]), "{r:?}");
    let r = e
        .submit_with(vec![Event::incr("d", 1).with_id("once")], AckMode::Durable)
        .await
        .expect("submit");
    assert_eq!(r[0], EventResult::Duplicate);

    // A read (GET) whose store read fails is an error, not "absent".
    e.shutdown().await.expect("shutdown");
    let e = open(dir.path(), 1).await;
    assert!(e.inject_store_fault(Fault::Read));
    assert!(
        e.get("k").await.is_err(),
        "a failed read must not look absent"
    );
    assert_eq!(
        e.get("k").await.expect("get").expect("present").value,
        json!(42)
    );
    e.shutdown().await.expect("shutdown");
}

/// Issue 13: the store owns poisoning. A failure the engine's committer
/// never saw (here an expiry sweep's commit) poisons the store, and the
/// engine reports it and refuses writes and reads at once — before, the
/// engine kept its own flag, reported nothing and admitted writes until one
/// of them hit the poisoned store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_poisoned_outside_the_committer_is_the_engines_poison() {
    use statecraft_store::Fault;
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open(dir.path(), 1).await;
    // Checkpointed after each batch: the key's expiry is in the store's
    // index, so the next sweep after it is due has something to commit.
    e.submit_with(
        vec![Event::set("short", json!(1)).with_ttl(1)],
        AckMode::Durable,
    )
    .await
    .expect("submit");
    assert!(e.inject_store_fault(Fault::Sweep));
    let mut waited = Duration::ZERO;
    while e.poisoned().is_none() && waited < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    let cause = e
        .poisoned()
        .expect("the failed sweep is the engine's poison");
    assert!(cause.contains("sweep"), "{cause}");
    assert_eq!(
        e.stats().durability.and_then(|d| d.poisoned).as_deref(),
        Some(cause.as_str()),
        "stats report the same state"
    );
    assert!(
        e.submit_with(vec![Event::incr("k", 1)], AckMode::Durable)
            .await
            .is_err(),
        "writes refused at admission"
    );
    assert!(e.get("short").await.is_err(), "reads refused");
    let _ = e.shutdown().await;
}

/// Issue 20 review (adversary): checkpoints store each dirty key's
/// after-image bytes out of the retained log records, in parts of at most
/// 4,096 keys. Every way an image could be the wrong one is exercised in
/// windows of several batches, with cache eviction and reopens between
/// rounds: a key written twice in one batch and in several batches of one
/// window (which image wins), a key deleted after its image was recorded,
/// deleted and re-created in one window, TTL keys, merges whose patch is
/// moved into the document, a large document, a checkpoint of more than two
/// parts, and ids. After each reopen every key must read exactly as it did
/// before (value, version, timestamps, expiry) and every id must dedup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_after_images_reproduce_every_key_exactly() {
    use statecraft_engine::Op;
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || async {
        Engine::builder()
            .shards(1)
            .max_batch(700)
            .data_dir(dir.path())
            .checkpoint(Duration::from_secs(3600), 2)
            .cache_bytes(256 << 10)
            .open()
            .await
            .expect("open")
    };
    let mut keys: Vec<String> = Vec::new();
    let mut e = open().await;
    for round in 0..6u64 {
        let mut events = Vec::new();
        if round == 0 {
            // More than two checkpoint parts in one window.
            for i in 0..9_000 {
                events.push(Event::set(format!("p{i:05}"), json!({"n": i})));
            }
        }
        if round == 3 {
            for i in (0..9_000).step_by(3) {
                events.push(Event::incr(format!("p{i:05}"), 1).with_path("/n"));
            }
        }
        for k in 0..40 {
            // Twice in one batch: the later image must win.
            for half in 0..2 {
                events.push(
                    Event::new(format!("m{k}"), Op::Merge)
                        .with_value(json!({format!("r{round}"): half, "s": "x".repeat(100)})),
                );
                events.push(Event::incr(format!("c{k}"), 1 + half));
            }
            if round % 2 == 0 {
                events.push(Event::set(format!("d{k}"), json!([round, k])));
            } else {
                events.push(Event::new(format!("d{k}"), Op::Delete));
            }
            events.push(Event::new(format!("x{k}"), Op::Delete));
            events.push(Event::set(format!("x{k}"), json!({"round": round})).with_ttl(3_600));
            events.push(Event::set(format!("t{k}"), json!(k)).with_ttl(1_000 + round));
            events.push(Event::incr("ids", 1).with_id(format!("id-{round}-{k}")));
        }
        // A large document, rewritten every other round.
        if round % 2 == 0 {
            events.push(Event::set(
                "big",
                json!("y".repeat(200_000 + round as usize)),
            ));
        }
        for ev in &events {
            keys.push(ev.key.clone());
        }
        // In chunks: one batch each, two per checkpoint window.
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(3_000));
            let r = e
                .submit_with(std::mem::replace(&mut events, rest), AckMode::Durable)
                .await
                .expect("submit");
            assert!(r.iter().all(EventResult::is_applied), "round {round}");
        }
        // Later events in the same window change keys again (other batches).
        let r = e
            .submit_with(
                (0..40)
                    .map(|k| {
                        Event::new(format!("m{k}"), Op::Merge).with_value(json!({"late": round}))
                    })
                    .collect(),
                AckMode::Durable,
            )
            .await
            .expect("submit");
        assert!(r.iter().all(EventResult::is_applied));
        if round % 2 == 1 {
            keys.sort();
            keys.dedup();
            let mut before = Vec::with_capacity(keys.len());
            for k in &keys {
                before.push(e.get(k).await.expect("get"));
            }
            if round == 1 {
                // The windows above did checkpoint (in parts) and evict.
                let mut d = e.stats().durability.expect("durable");
                for _ in 0..100 {
                    if d.checkpoints >= 2 && d.cache_evictions > 0 {
                        break;
                    }
                    // Eviction runs after a batch, once a checkpoint confirmed.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    e.submit_with(vec![Event::incr("tick", 1)], AckMode::Durable)
                        .await
                        .expect("submit");
                    d = e.stats().durability.expect("durable");
                }
                assert!(d.checkpoints >= 2 && d.cache_evictions > 0, "{d:?}");
            }
            e.shutdown().await.expect("shutdown");
            e = open().await;
            for (k, want) in keys.iter().zip(&before) {
                assert_eq!(
                    &e.get(k).await.expect("get"),
                    want,
                    "{k} after round {round}"
                );
            }
            for k in 0..40 {
                let r = e
                    .submit_with(
                        vec![Event::incr("ids", 1).with_id(format!("id-{round}-{k}"))],
                        AckMode::Durable,
                    )
                    .await
                    .expect("submit");
                assert_eq!(r[0], EventResult::Duplicate, "id-{round}-{k}");
            }
        }
    }
    let rec = e.get("c0").await.expect("get").expect("present");
    assert_eq!(rec.value, json!(18));
    assert_eq!(rec.version, 12);
    assert_eq!(e.get("d0").await.expect("get"), None);
    let rec = e.get("ids").await.expect("get").expect("present");
    assert_eq!(rec.value, json!(240));
    e.shutdown().await.expect("shutdown");
}

/// Review adversary (ids, issue 20's brief): `max_dedup_ids` bounds the ids
/// a shard keeps in memory; an id pushed out of memory before a checkpoint
/// wrote it to the store must still be answered `duplicate` (the log has
/// it), inside the window and across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_pushed_out_of_memory_before_their_checkpoint_still_dedup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || async {
        let config = statecraft_engine::EngineConfig {
            max_dedup_ids: 2,
            ..Default::default()
        };
        Engine::builder()
            .config(config)
            .shards(1)
            .data_dir(dir.path())
            .checkpoint(Duration::from_secs(3600), 1_000_000)
            .open()
            .await
            .expect("open")
    };
    let e = open().await;
    for id in ["a", "b", "c", "d"] {
        let r = e
            .submit_with(vec![Event::incr("k", 1).with_id(id)], AckMode::Durable)
            .await
            .expect("submit");
        assert!(r[0].is_applied(), "{id}: {:?}", r[0]);
    }
    let r = e
        .submit_with(vec![Event::incr("k", 1).with_id("a")], AckMode::Durable)
        .await
        .expect("submit");
    assert_eq!(r[0], EventResult::Duplicate, "id a applied twice");
    e.shutdown().await.expect("shutdown");
    let e = open().await;
    let r = e
        .submit_with(vec![Event::incr("k", 1).with_id("b")], AckMode::Durable)
        .await
        .expect("submit");
    assert_eq!(
        r[0],
        EventResult::Duplicate,
        "id b applied twice after restart"
    );
    let rec = e.get("k").await.expect("get").expect("present");
    assert_eq!(rec.value, json!(4));
    e.shutdown().await.expect("shutdown");
}
