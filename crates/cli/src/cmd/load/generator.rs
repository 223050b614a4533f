//! What the load generator sends: the pre-generated key space, the key
//! distributions (uniform, zipf, sequential), the op mix, and the
//! per-connection [`EventGen`] that picks the next event.
//!
//! Invariants:
//! - Keys are generated once, before any timing starts, into one flat
//!   buffer ([`KeySpace`]); picking a key is an index, never an allocation.
//! - Zipf rank 1 is key 0, rank 2 key 1, …: the lowest key indices are the
//!   hottest.
//! - An [`EventGen`] is deterministic for a given seed, so two targets fed by
//!   the same `--seed` see the same events in the same order per connection.

use std::str::FromStr;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;
use serde_json::{Value, json};

/// Every key the generator can pick, stored back to back in one string.
#[derive(Debug)]
pub struct KeySpace {
    prefix: String,
    text: String,
    /// `ends[i]` is where key `i` ends in `text`; it starts at `ends[i-1]`.
    ends: Vec<u32>,
}

impl KeySpace {
    /// `n` keys named `{prefix}{i}` for `i` in `0..n`.
    pub fn new(prefix: &str, n: u64) -> anyhow::Result<Self> {
        anyhow::ensure!(n >= 1, "--keys must be at least 1");
        anyhow::ensure!(
            !prefix
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control()),
            "the key prefix {prefix:?} must not hold quotes, backslashes or control characters"
        );
        let digits = n.to_string().len() + prefix.len();
        let total = (n as usize).saturating_mul(digits);
        anyhow::ensure!(
            total < u32::MAX as usize,
            "{n} keys of that prefix do not fit in the generator's 4 GiB key buffer"
        );
        let mut text = String::with_capacity(total);
        let mut ends = Vec::with_capacity(n as usize);
        let mut fmt = digits::Buf::default();
        for i in 0..n {
            text.push_str(prefix);
            text.push_str(fmt.format(i));
            ends.push(text.len() as u32);
        }
        Ok(KeySpace {
            prefix: prefix.to_owned(),
            text,
            ends,
        })
    }

    /// Number of keys.
    pub fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    /// The key names' prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Key `i` (`i < len`).
    #[inline]
    pub fn key(&self, i: u64) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }
}

/// A tiny integer formatter (no allocation per key while building the space).
mod digits {
    /// A reusable buffer for decimal digits.
    #[derive(Default)]
    pub struct Buf([u8; 20]);

    impl Buf {
        /// The decimal digits of `v`.
        pub fn format(&mut self, mut v: u64) -> &str {
            let mut at = self.0.len();
            loop {
                at -= 1;
                self.0[at] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            // Only ASCII digits were written.
            std::str::from_utf8(&self.0[at..]).unwrap_or("0")
        }
    }
}

/// How keys are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Dist {
    /// Every key equally likely.
    Uniform,
    /// Zipf with exponent `--zipf-s`: key 0 is the most frequent.
    Zipf,
    /// Key `i mod K` for the i-th event of a connection, connections
    /// interleaved: every key is written once per K events (recovery tests).
    Sequential,
}

/// An operation the generator can emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GenOp {
    /// `incr` by 1 (Redis: `INCRBY key 1`).
    Incr,
    /// `set` to an integer (Redis: `HSET key v <n>`).
    Set,
    /// `merge` of a ~200-byte JSON patch (Redis: `HSET key doc <patch>`).
    Merge,
}

impl GenOp {
    /// The op's name.
    pub fn as_str(self) -> &'static str {
        match self {
            GenOp::Incr => "incr",
            GenOp::Set => "set",
            GenOp::Merge => "merge",
        }
    }
}

/// Ops with weights: `incr`, or `incr=80,set=20`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpMix {
    /// (op, cumulative weight), in input order; the last weight is the total.
    cumulative: Vec<(GenOp, u32)>,
}

impl OpMix {
    /// A mix of one op.
    pub fn single(op: GenOp) -> Self {
        OpMix {
            cumulative: vec![(op, 1)],
        }
    }

    /// The ops and their (non-cumulative) weights.
    pub fn weights(&self) -> Vec<(GenOp, u32)> {
        let mut prev = 0;
        self.cumulative
            .iter()
            .map(|&(op, c)| {
                let w = c - prev;
                prev = c;
                (op, w)
            })
            .collect()
    }

    fn pick(&self, rng: &mut SmallRng) -> GenOp {
        if let [(op, _)] = self.cumulative.as_slice() {
            return *op;
        }
        let total = self.cumulative.last().map_or(1, |&(_, c)| c);
        let r = rng.random_range(0..total);
        self.cumulative
            .iter()
            .find(|&&(_, c)| r < c)
            .map_or(GenOp::Incr, |&(op, _)| op)
    }
}

impl FromStr for OpMix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut cumulative = Vec::new();
        let mut total = 0u32;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.split_once('=') {
                Some((n, w)) => {
                    let w: u32 = w
                        .trim()
                        .parse()
                        .map_err(|_| format!("`{part}`: the weight must be a whole number"))?;
                    (n.trim(), w)
                }
                None => (part, 1),
            };
            let op = match name {
                "incr" => GenOp::Incr,
                "set" => GenOp::Set,
                "merge" => GenOp::Merge,
                other => return Err(format!("unknown op `{other}` (incr, set, merge)")),
            };
            if weight == 0 {
                continue;
            }
            total = total
                .checked_add(weight)
                .ok_or_else(|| "the weights add up to too much".to_owned())?;
            cumulative.push((op, total));
        }
        if cumulative.is_empty() {
            return Err("no op with a positive weight (e.g. `incr` or `incr=80,set=20`)".into());
        }
        Ok(OpMix { cumulative })
    }
}

impl std::fmt::Display for OpMix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let [(op, _)] = self.cumulative.as_slice() {
            return f.write_str(op.as_str());
        }
        let parts: Vec<String> = self
            .weights()
            .iter()
            .map(|(op, w)| format!("{}={w}", op.as_str()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The key picker of one connection.
#[derive(Debug, Clone)]
enum Picker {
    Uniform,
    Zipf(Zipf<f64>),
    /// Next index and the stride (the number of connections).
    Sequential {
        next: u64,
        stride: u64,
    },
}

/// One event as the codecs see it: a key and what to do to it. For `set` and
/// `merge`, `n` is the integer the value carries (it changes per event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenEvent<'a> {
    /// The key.
    pub key: &'a str,
    /// The op.
    pub op: GenOp,
    /// The event's serial number on its connection (the varying operand).
    pub n: u64,
}

/// The event source of one connection.
#[derive(Debug)]
pub struct EventGen {
    keys: Arc<KeySpace>,
    picker: Picker,
    ops: OpMix,
    rng: SmallRng,
    serial: u64,
}

impl EventGen {
    /// The generator of connection `conn` of `conns`.
    pub fn new(
        keys: Arc<KeySpace>,
        dist: Dist,
        zipf_s: f64,
        ops: OpMix,
        seed: u64,
        conn: usize,
        conns: usize,
    ) -> anyhow::Result<Self> {
        let picker = match dist {
            Dist::Uniform => Picker::Uniform,
            Dist::Zipf => Picker::Zipf(
                Zipf::new(keys.len() as f64, zipf_s)
                    .map_err(|e| anyhow::anyhow!("--zipf-s {zipf_s}: {e}"))?,
            ),
            Dist::Sequential => Picker::Sequential {
                next: conn as u64,
                stride: conns.max(1) as u64,
            },
        };
        Ok(EventGen {
            keys,
            picker,
            ops,
            rng: SmallRng::seed_from_u64(seed ^ (conn as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            serial: 0,
        })
    }

    /// The index of the next key.
    #[inline]
    fn next_index(&mut self) -> u64 {
        let n = self.keys.len();
        match &mut self.picker {
            Picker::Uniform => self.rng.random_range(0..n),
            Picker::Zipf(z) => {
                // Samples are ranks in [1, n] as floats.
                let rank = z.sample(&mut self.rng) as u64;
                rank.clamp(1, n) - 1
            }
            Picker::Sequential { next, stride } => {
                let i = *next % n;
                *next += *stride;
                i
            }
        }
    }

    /// The next event.
    #[inline]
    pub fn next_event(&mut self) -> GenEvent<'_> {
        let i = self.next_index();
        let op = self.ops.pick(&mut self.rng);
        self.serial += 1;
        GenEvent {
            key: self.keys.key(i),
            op,
            n: self.serial,
        }
    }
}

/// The ~200-byte JSON document patch of `merge` events (BENCH.md W2), with
/// `n` in its `seq` field.
pub fn merge_patch(n: u64) -> Value {
    json!({
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "plan": "pro",
        "tags": ["math", "engines", "poetry"],
        "prefs": {"theme": "dark", "lang": "en", "tz": "Europe/London"},
        "address": {"city": "London", "street": "St James's Square 12"},
        "seq": n,
    })
}

/// Sets the `seq` field of a patch made by [`merge_patch`] (no allocation).
#[inline]
pub fn set_patch_seq(patch: &mut Value, n: u64) {
    if let Some(slot) = patch.get_mut("seq") {
        *slot = Value::from(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(n: u64) -> Arc<KeySpace> {
        Arc::new(KeySpace::new("key:", n).expect("keyspace"))
    }

    #[test]
    fn keyspace_names_every_key() {
        let k = KeySpace::new("k:", 1001).expect("keyspace");
        assert_eq!(k.len(), 1001);
        assert_eq!(k.key(0), "k:0");
        assert_eq!(k.key(9), "k:9");
        assert_eq!(k.key(10), "k:10");
        assert_eq!(k.key(1000), "k:1000");
    }

    #[test]
    fn zipf_rank_one_is_the_most_frequent_and_the_head_is_heavy() {
        let keys = space(10_000);
        let mut g = EventGen::new(keys, Dist::Zipf, 0.99, OpMix::single(GenOp::Incr), 7, 0, 1)
            .expect("gen");
        let mut counts = vec![0u64; 10_000];
        let draws = 200_000;
        for _ in 0..draws {
            let e = g.next_event();
            let i: usize = e.key["key:".len()..].parse().expect("index");
            counts[i] += 1;
        }
        let (argmax, _) = counts
            .iter()
            .enumerate()
            .max_by_key(|&(_, c)| *c)
            .expect("non-empty");
        assert_eq!(argmax, 0, "rank 1 (key 0) is the most frequent");
        // Counts fall with rank: the first key beats the 10th beats the 100th.
        assert!(counts[0] > counts[9] && counts[9] > counts[99]);
        // With s ≈ 1 over 10k keys, rank 1 holds ≈ 1/H(10k) ≈ 10 % of draws,
        // and the top 1 % of keys well over a third.
        let share = counts[0] as f64 / draws as f64;
        assert!((0.07..0.14).contains(&share), "rank-1 share {share}");
        let head: u64 = counts[..100].iter().sum();
        assert!(head as f64 / draws as f64 > 0.4, "top 100 share");
        // Every draw is a valid key.
        assert_eq!(counts.iter().sum::<u64>(), draws);
    }

    #[test]
    fn uniform_spreads_evenly() {
        let keys = space(10);
        let mut g = EventGen::new(
            keys,
            Dist::Uniform,
            0.99,
            OpMix::single(GenOp::Incr),
            1,
            0,
            1,
        )
        .expect("gen");
        let mut counts = [0u64; 10];
        for _ in 0..100_000 {
            let e = g.next_event();
            counts[e.key["key:".len()..].parse::<usize>().expect("index")] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "uneven: {counts:?}");
        }
    }

    #[test]
    fn sequential_interleaves_connections_and_covers_every_key() {
        let keys = space(6);
        let mut a = EventGen::new(
            Arc::clone(&keys),
            Dist::Sequential,
            0.99,
            OpMix::single(GenOp::Incr),
            1,
            0,
            2,
        )
        .expect("gen");
        let mut b = EventGen::new(
            keys,
            Dist::Sequential,
            0.99,
            OpMix::single(GenOp::Incr),
            1,
            1,
            2,
        )
        .expect("gen");
        let got_a: Vec<String> = (0..3).map(|_| a.next_event().key.to_owned()).collect();
        let got_b: Vec<String> = (0..3).map(|_| b.next_event().key.to_owned()).collect();
        assert_eq!(got_a, ["key:0", "key:2", "key:4"]);
        assert_eq!(got_b, ["key:1", "key:3", "key:5"]);
    }

    #[test]
    fn op_mix_parses_and_respects_weights() {
        let mix: OpMix = "incr=80,set=20".parse().expect("parses");
        assert_eq!(mix.to_string(), "incr=80,set=20");
        assert_eq!(
            "merge".parse::<OpMix>().expect("parses"),
            OpMix::single(GenOp::Merge)
        );
        assert!("bogus".parse::<OpMix>().is_err());
        assert!("incr=0".parse::<OpMix>().is_err());
        assert!("incr=x".parse::<OpMix>().is_err());
        let mut g = EventGen::new(space(100), Dist::Uniform, 0.99, mix, 3, 0, 1).expect("gen");
        let sets = (0..10_000)
            .filter(|_| g.next_event().op == GenOp::Set)
            .count();
        assert!((1_600..2_400).contains(&sets), "sets: {sets}");
    }

    #[test]
    fn merge_patch_is_about_200_bytes_and_its_seq_changes_in_place() {
        let mut p = merge_patch(1);
        let len = serde_json::to_vec(&p).expect("json").len();
        assert!((170..260).contains(&len), "patch is {len} bytes");
        set_patch_seq(&mut p, 99);
        assert_eq!(p["seq"], 99);
    }

    #[test]
    fn same_seed_same_events() {
        let keys = space(1000);
        let mk = || {
            EventGen::new(
                Arc::clone(&keys),
                Dist::Zipf,
                0.99,
                OpMix::single(GenOp::Incr),
                5,
                3,
                8,
            )
            .expect("gen")
        };
        let (mut a, mut b) = (mk(), mk());
        for _ in 0..100 {
            assert_eq!(a.next_event().key, b.next_event().key);
        }
    }
}
