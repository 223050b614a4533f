//! Key layouts of the five keyspaces, in one place.
//!
//! | keyspace | key                                         | value                    |
//! |----------|---------------------------------------------|--------------------------|
//! | `log`    | shard (u16 BE) ++ seq (u64 BE)              | encoded [`LogRecord`]    |
//! | `state`  | the key's UTF-8 bytes                       | encoded [`KeyState`]     |
//! | `dedup`  | key length (u16 BE) ++ key ++ id            | expires_at (u64 BE)      |
//! | `expiry` | expires_at (u64 BE) ++ kind ++ target key   | empty                    |
//! | `meta`   | `format`, `hwm`, `ckpt/` ++ shard (u16 BE), `off/` ++ name | u32/u64 BE |
//!
//! Invariants: big-endian integers so byte order is numeric order (the log
//! iterates per shard in seq order; the expiry index iterates oldest first);
//! every layout is unambiguous — the dedup key is length-prefixed rather than
//! NUL-separated because keys and ids may themselves contain NUL.
//!
//! [`LogRecord`]: crate::LogRecord
//! [`KeyState`]: crate::KeyState

use crate::error::StoreError;

/// `meta` key of the on-disk format version.
pub(crate) const META_FORMAT: &[u8] = b"format";
/// `meta` key of the highest log seq ever seen.
pub(crate) const META_HWM: &[u8] = b"hwm";
/// `meta` prefix of per-shard checkpoint positions.
pub(crate) const META_CKPT: &[u8] = b"ckpt/";
/// `meta` prefix of source offsets.
pub(crate) const META_OFFSET: &[u8] = b"off/";

/// `expiry` kind byte: the target is a `state` key.
pub(crate) const EXPIRY_STATE: u8 = b's';
/// `expiry` kind byte: the target is a `dedup` key.
pub(crate) const EXPIRY_DEDUP: u8 = b'd';

pub(crate) fn log_key(shard: u16, seq: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(&shard.to_be_bytes());
    k[2..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn parse_log_key(k: &[u8]) -> Result<(u16, u64), StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: format!("log key of {} bytes (expected 10)", k.len()),
    };
    let shard: [u8; 2] = k
        .get(..2)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(corrupt)?;
    let seq: [u8; 8] = k
        .get(2..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(corrupt)?;
    Ok((u16::from_be_bytes(shard), u64::from_be_bytes(seq)))
}

pub(crate) fn dedup_key(key: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + key.len() + id.len());
    // Keys are at most 64 KiB (fjall's key limit, and the engine allows 1 KiB);
    // a longer key is clamped in the prefix only, which still cannot collide
    // with a shorter key because the prefix then disagrees with its length.
    let len = u16::try_from(key.len()).unwrap_or(u16::MAX);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

pub(crate) fn expiry_key(expires_at: u64, kind: u8, target: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + target.len());
    k.extend_from_slice(&expires_at.to_be_bytes());
    k.push(kind);
    k.extend_from_slice(target);
    k
}

pub(crate) fn parse_expiry_key(k: &[u8]) -> Result<(u64, u8, &[u8]), StoreError> {
    if k.len() < 9 {
        return Err(StoreError::Corrupt {
            what: format!("expiry index key of {} bytes", k.len()),
        });
    }
    let (at, rest) = k.split_at(8);
    let mut a = [0u8; 8];
    a.copy_from_slice(at);
    Ok((u64::from_be_bytes(a), rest[0], &rest[1..]))
}

pub(crate) fn ckpt_key(shard: u16) -> Vec<u8> {
    let mut k = META_CKPT.to_vec();
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

pub(crate) fn offset_key(name: &str) -> Vec<u8> {
    let mut k = META_OFFSET.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

pub(crate) fn u64_value(v: &[u8], what: &str) -> Result<u64, StoreError> {
    let a: [u8; 8] = v.try_into().map_err(|_| StoreError::Corrupt {
        what: format!("{what}: {} bytes (expected 8)", v.len()),
    })?;
    Ok(u64::from_be_bytes(a))
}

pub(crate) fn u32_value(v: &[u8], what: &str) -> Result<u32, StoreError> {
    let a: [u8; 4] = v.try_into().map_err(|_| StoreError::Corrupt {
        what: format!("{what}: {} bytes (expected 4)", v.len()),
    })?;
    Ok(u32::from_be_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_shard_then_seq() {
        let mut keys = [log_key(1, 2), log_key(0, 300), log_key(1, 1), log_key(0, 5)];
        keys.sort();
        let parsed: Vec<_> = keys.iter().filter_map(|k| parse_log_key(k).ok()).collect();
        assert_eq!(parsed, vec![(0, 5), (0, 300), (1, 1), (1, 2)]);
    }

    #[test]
    fn dedup_keys_do_not_collide_across_nul() {
        assert_ne!(dedup_key("a\0b", "c"), dedup_key("a", "b\0c"));
        assert_ne!(dedup_key("ab", "c"), dedup_key("a", "bc"));
    }

    #[test]
    fn expiry_keys_parse_back() {
        let k = expiry_key(42, EXPIRY_STATE, b"user:1");
        assert_eq!(
            parse_expiry_key(&k).ok(),
            Some((42, EXPIRY_STATE, &b"user:1"[..]))
        );
        assert!(parse_expiry_key(&k[..5]).is_err());
    }
}
