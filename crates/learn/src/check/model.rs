//! The reference model and the event streams the checks send.
//!
//! [`Model`] is a plain `HashMap` that applies `set` and `incr` exactly as
//! DESIGN.md §2 says (incr on a missing key counts from 0; the version grows by
//! one per applied event). Every check that compares state compares the
//! program's answers to this model, never to another implementation.
//! [`Rng`] is a seeded SplitMix64, so a run is reproducible from its seed.

use std::collections::HashMap;

use serde_json::{Value, json};

/// A deterministic pseudo-random generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One event the checker sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    /// The protocol id (`e1`, …).
    pub id: String,
    /// The key.
    pub key: String,
    /// `set` or `incr`.
    pub op: &'static str,
    /// The operand.
    pub value: Value,
    /// Lesson 8: the source offset.
    pub seq: Option<u64>,
}

impl Ev {
    /// An `incr` event.
    pub fn incr(id: impl Into<String>, key: impl Into<String>, by: i64) -> Ev {
        Ev {
            id: id.into(),
            key: key.into(),
            op: "incr",
            value: json!(by),
            seq: None,
        }
    }

    /// A `set` event.
    pub fn set(id: impl Into<String>, key: impl Into<String>, value: Value) -> Ev {
        Ev {
            id: id.into(),
            key: key.into(),
            op: "set",
            value,
            seq: None,
        }
    }

    /// The NDJSON line (without newline).
    pub fn line(&self) -> String {
        let mut obj = json!({"id": self.id, "key": self.key, "op": self.op, "value": self.value});
        if let (Some(seq), Some(map)) = (self.seq, obj.as_object_mut()) {
            map.insert("seq".into(), json!(seq));
        }
        obj.to_string()
    }
}

/// The reference state: key → (value, version).
#[derive(Debug, Clone, Default)]
pub struct Model {
    state: HashMap<String, (Value, u64)>,
}

impl Model {
    /// An empty model.
    pub fn new() -> Model {
        Model::default()
    }

    /// Applies one event.
    pub fn apply(&mut self, ev: &Ev) {
        let entry = self.state.entry(ev.key.clone()).or_insert((Value::Null, 0));
        match ev.op {
            "incr" => {
                let by = ev.value.as_i64().unwrap_or(1);
                let now = entry.0.as_i64().unwrap_or(0);
                entry.0 = json!(now + by);
            }
            _ => entry.0 = ev.value.clone(),
        }
        entry.1 += 1;
    }

    /// Applies every event in order.
    pub fn apply_all<'a>(&mut self, evs: impl IntoIterator<Item = &'a Ev>) {
        for ev in evs {
            self.apply(ev);
        }
    }

    /// (value, version) of a key; (`null`, 0) when absent.
    pub fn get(&self, key: &str) -> (Value, u64) {
        self.state.get(key).cloned().unwrap_or((Value::Null, 0))
    }

    /// The keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.state.keys().cloned().collect();
        keys.sort();
        keys
    }
}

/// `n` mixed `set`/`incr` events over `keys` keys, ids `{prefix}1…`.
pub fn mixed_events(rng: &mut Rng, prefix: &str, n: usize, keys: u64) -> Vec<Ev> {
    (1..=n)
        .map(|i| {
            let key = format!("k{}", rng.below(keys));
            let id = format!("{prefix}{i}");
            if rng.below(4) == 0 {
                Ev::set(id, key, json!(rng.below(1000)))
            } else {
                Ev::incr(id, key, 1 + rng.below(5) as i64)
            }
        })
        .collect()
}

/// FNV-1a 64 of the key's UTF-8 bytes mod `partitions` (lesson 8's partitioning).
pub fn partition_of(key: &str, partitions: u64) -> u64 {
    fnv1a64(key.as_bytes()) % partitions.max(1)
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The ids of events, in order.
pub fn ids(evs: &[Ev]) -> Vec<String> {
    evs.iter().map(|e| e.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_applies_set_and_incr() {
        let mut m = Model::new();
        m.apply(&Ev::incr("e1", "a", 2));
        m.apply(&Ev::incr("e2", "a", 3));
        m.apply(&Ev::set("e3", "b", json!(7)));
        m.apply(&Ev::incr("e4", "b", 1));
        assert_eq!(m.get("a"), (json!(5), 2));
        assert_eq!(m.get("b"), (json!(8), 2));
        assert_eq!(m.get("c"), (Value::Null, 0));
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // FNV-1a 64 test vectors: "" → cbf29ce484222325, "a" → af63dc4c8601ec8c.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(partition_of("a", 4), 0xaf63_dc4c_8601_ec8c % 4);
    }

    #[test]
    fn rng_is_reproducible() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
    }

    #[test]
    fn event_line_carries_seq() {
        let mut e = Ev::incr("e1", "k", 1);
        e.seq = Some(4);
        let v: Value = serde_json::from_str(&e.line()).expect("json");
        assert_eq!(v["seq"], json!(4));
        assert_eq!(v["op"], json!("incr"));
    }
}
