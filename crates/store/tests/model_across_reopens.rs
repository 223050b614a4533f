//! Model test: random sequences of append / sync / checkpoint / sweep / reopen
//! against plain `HashMap`s that play the engine (per-shard dirty keys since
//! the shard's last checkpoint) and the store (materialized keys).
//!
//! After every step the store's materialized view must equal the model's; after
//! every reopen it must equal materialized + every shard's dirty keys (replay of
//! exactly the log records after each checkpoint), dedup ids and offsets
//! included, and seqs must continue above everything seen.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use proptest::prelude::*;
use statecraft_store::{DedupEntry, KeyState, LogRecord, Store};
use std::collections::HashMap;

const SHARDS: u16 = 3;
const KEYS: u8 = 12;

/// One key's change in a batch: None = delete, Some((value, ttl)).
type Change = (u8, Option<(i64, Option<u64>)>);

#[derive(Debug, Clone)]
enum Op {
    /// A batch on the shards that own its keys, and maybe an idempotency id.
    Append(Vec<Change>, Option<u8>),
    Sync,
    Checkpoint(u16),
    Sweep(u64, usize),
    Reopen,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop::collection::vec(
                (0..KEYS, prop::option::weighted(0.85, (any::<i64>(), prop::option::weighted(0.3, 0u64..40)))),
                1..6
            ),
            prop::option::weighted(0.3, 0..KEYS),
        )
            .prop_map(|(c, d)| Op::Append(c, d)),
        1 => Just(Op::Sync),
        3 => (0..SHARDS).prop_map(Op::Checkpoint),
        1 => (0u64..50, 1usize..6).prop_map(|(t, m)| Op::Sweep(t, m)),
        2 => Just(Op::Reopen),
    ]
}

fn key(k: u8) -> String {
    format!("k{k:02}")
}

fn shard_of(k: u8) -> u16 {
    u16::from(k) % SHARDS
}

#[derive(Default)]
struct Model {
    /// What the store has materialized.
    state: HashMap<String, KeyState>,
    dedup: HashMap<(String, String), u64>,
    offsets: HashMap<String, u64>,
    /// Per shard: changes logged since its last checkpoint (the engine's dirty set).
    dirty: HashMap<u16, HashMap<String, Option<KeyState>>>,
    dirty_dedup: HashMap<u16, Vec<DedupEntry>>,
    dirty_offsets: HashMap<u16, u64>,
    /// Per shard: next seq to use and last seq appended.
    next: HashMap<u16, u64>,
    last: HashMap<u16, u64>,
    versions: HashMap<String, u64>,
    clock: u64,
}

impl Model {
    fn reset_seqs(&mut self, next_seq: u64) {
        self.next = (0..SHARDS).map(|s| (s, next_seq)).collect();
        self.last.clear();
    }

    /// What recovery must produce: materialized + all dirty, then clean.
    fn recover(&mut self) {
        for (_, changes) in self.dirty.drain() {
            for (k, v) in changes {
                match v {
                    Some(s) => self.state.insert(k, s),
                    None => self.state.remove(&k),
                };
            }
        }
        for (_, ds) in self.dirty_dedup.drain() {
            for d in ds {
                self.dedup.insert((d.key, d.id), d.expires_at);
            }
        }
        for (shard, pos) in self.dirty_offsets.drain() {
            let e = self.offsets.entry(format!("src/{shard}")).or_insert(pos);
            *e = (*e).max(pos);
        }
    }
}

fn check(store: &Store, m: &Model) {
    for k in 0..KEYS {
        let k = key(k);
        assert_eq!(store.get(&k).unwrap().as_ref(), m.state.get(&k), "key {k}");
    }
    let all = store.scan("", None, 1000, None).unwrap();
    assert_eq!(all.len(), m.state.len());
    for ((k, id), exp) in &m.dedup {
        assert_eq!(
            store.dedup_get(k, id).unwrap(),
            Some(*exp),
            "dedup {k}/{id}"
        );
    }
    for (name, pos) in &m.offsets {
        assert_eq!(store.offset(name).unwrap(), Some(*pos), "offset {name}");
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    let mut store = Some(store);
    let mut m = Model::default();
    m.reset_seqs(report.next_seq);
    let mut max_seq_seen = 0;

    for op in ops {
        let s = store.as_ref().unwrap();
        m.clock += 1;
        match op {
            Op::Append(changes, dedup_key) => {
                // Group the batch by owning shard, one record per shard.
                let mut by_shard: HashMap<u16, LogRecord> = HashMap::new();
                for (k, change) in changes {
                    let shard = shard_of(k);
                    let rec = by_shard.entry(shard).or_insert_with(|| LogRecord {
                        shard,
                        ..LogRecord::default()
                    });
                    let name = key(k);
                    let state = change.map(|(v, ttl)| {
                        let version = m.versions.entry(name.clone()).or_insert(0);
                        *version += 1;
                        KeyState {
                            value: v.into(),
                            version: *version,
                            updated_at: m.clock,
                            expires_at: ttl.map(|t| m.clock + t),
                        }
                    });
                    rec.changes.retain(|(n, _)| n != &name);
                    rec.changes.push((name, state));
                }
                if let Some(k) = dedup_key {
                    let shard = shard_of(k);
                    let rec = by_shard.entry(shard).or_insert_with(|| LogRecord {
                        shard,
                        ..LogRecord::default()
                    });
                    rec.dedup.push(DedupEntry {
                        key: key(k),
                        id: format!("id{}", m.clock % 4),
                        expires_at: 1000 + m.clock,
                    });
                }
                let mut shards: Vec<_> = by_shard.into_iter().collect();
                shards.sort_by_key(|(s, _)| *s);
                for (shard, mut rec) in shards {
                    let seq = m.next[&shard];
                    rec.seq = seq;
                    rec.offsets.push((format!("src/{shard}"), m.clock));
                    s.append(&rec).unwrap();
                    max_seq_seen = max_seq_seen.max(seq);
                    m.next.insert(shard, seq + 1);
                    m.last.insert(shard, seq);
                    let dirty = m.dirty.entry(shard).or_default();
                    for (k, v) in rec.changes {
                        dirty.insert(k, v);
                    }
                    m.dirty_dedup.entry(shard).or_default().extend(rec.dedup);
                    m.dirty_offsets.insert(shard, m.clock);
                }
            }
            Op::Sync => s.sync().unwrap(),
            Op::Checkpoint(shard) => {
                let upto = m.last.get(&shard).copied().unwrap_or(report.next_seq - 1);
                let dirty = m.dirty.remove(&shard).unwrap_or_default();
                let dedup = m.dirty_dedup.remove(&shard).unwrap_or_default();
                let offsets: Vec<(String, u64)> = m
                    .dirty_offsets
                    .remove(&shard)
                    .map(|p| (format!("src/{shard}"), p))
                    .into_iter()
                    .collect();
                s.checkpoint(
                    shard,
                    upto,
                    dirty.iter().map(|(k, v)| (k, v.as_ref())),
                    &dedup,
                    offsets.clone(),
                )
                .unwrap();
                for (k, v) in dirty {
                    match v {
                        Some(st) => m.state.insert(k, st),
                        None => m.state.remove(&k),
                    };
                }
                for d in dedup {
                    m.dedup.insert((d.key, d.id), d.expires_at);
                }
                for (n, p) in offsets {
                    let e = m.offsets.entry(n).or_insert(p);
                    *e = (*e).max(p);
                }
                assert_eq!(s.checkpoint_seq(shard), upto.max(s.checkpoint_seq(shard)));
            }
            Op::Sweep(now_rel, max) => {
                let now = m.clock + now_rel;
                let mut report = s.sweep_expired(now, max).unwrap();
                while report.more {
                    report = s.sweep_expired(now, max).unwrap();
                }
                m.state.retain(|_, st| st.is_live(now));
                m.dedup.retain(|_, exp| *exp > now);
            }
            Op::Reopen => {
                drop(store.take());
                let (s2, rep) = Store::open(dir.path(), opts()).unwrap();
                assert!(rep.next_seq > max_seq_seen, "seqs must not go backwards");
                m.recover();
                m.reset_seqs(rep.next_seq);
                store = Some(s2);
            }
        }
        check(store.as_ref().unwrap(), &m);
    }
    // A final reopen replays whatever is left.
    drop(store.take());
    let (s2, _) = Store::open(dir.path(), opts()).unwrap();
    m.recover();
    check(&s2, &m);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_the_model_across_checkpoints_and_reopens(ops in prop::collection::vec(arb_op(), 1..40)) {
        run(ops);
    }
}
