//! The router: which shard owns a key.
//!
//! Invariant: the mapping depends only on the key's bytes and the shard count
//! (FNV-1a, 64 bit, no random seed), so it is the same in every process and
//! every run — the scale-out mode and the lesson checks rely on that to agree
//! on partitions.

/// FNV-1a, 64 bit, of `bytes`.
#[inline]
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The shard (or partition) of `key` among `n` (`n` ≥ 1).
#[inline]
pub fn shard_of(key: &str, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    (fnv1a64(key.as_bytes()) % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_key_lands_in_range_and_spreads() {
        let mut counts = [0usize; 4];
        for i in 0..10_000 {
            let s = shard_of(&format!("user:{i}"), 4);
            counts[s] += 1;
        }
        for c in counts {
            assert!(c > 2_000, "uneven spread: {counts:?}");
        }
        assert_eq!(shard_of("anything", 1), 0);
    }
}
