//! Names on the NATS side: the stream, its subjects, the KV buckets, the keys
//! inside them, consumer names and message ids.
//!
//! Invariant: every name built here is valid where it is used — subjects
//! have no empty token, KV keys use only `[A-Za-z0-9_=.-]` (keys of the
//! engine, which are any UTF-8, go through [`b64url`]), consumer names only
//! `[A-Za-z0-9_-]` — and the mapping key → partition is the engine's router
//! ([`statecraft_engine::router::fnv1a64`]), the same in every process.

use statecraft_engine::router::fnv1a64;

/// The stream of events.
pub const STREAM: &str = "statecraft-events";
/// Prefix of the events' subjects: `statecraft.events.<p>`.
pub const SUBJECT_PREFIX: &str = "statecraft.events";
/// KV bucket of partition leases: key = partition, value = owner.
pub const LEASES: &str = "statecraft-leases";
/// KV bucket of live nodes: key = node id, value = HTTP address + heartbeat.
pub const NODES: &str = "statecraft-nodes";
/// KV bucket of the changelog: the after-image of every committed key and
/// the per-partition commit marker.
pub const CHANGELOG: &str = "statecraft-changelog";
/// Header carrying the subject on which the owner answers `ack=applied`.
pub const REPLY_HEADER: &str = "Statecraft-Reply";
/// Header of a record batch: a message carrying several events, one JSON
/// event per line; its value is the event count.
pub const EVENTS_HEADER: &str = "Statecraft-Events";
/// Most events one message may carry (the index of an event in its message
/// takes the low 16 bits of its position).
pub const MAX_EVENTS_PER_MESSAGE: usize = 65_535;

/// The position of the `index`-th event of the message at stream sequence
/// `seq`: `seq << 16 | index`. Positions grow with (sequence, index), so an
/// engine source offset compares them, and a message of one event has
/// index 0.
pub fn position(seq: u64, index: usize) -> u64 {
    (seq << 16) | (index as u64 & 0xffff)
}

/// Prefix of the subjects on which each node answers proxied reads.
pub const READ_PREFIX: &str = "statecraft.read";

/// The partition of `key` among `partitions`.
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    (fnv1a64(key.as_bytes()) % u64::from(partitions.max(1))) as u32
}

/// The subject of partition `p`.
pub fn subject(p: u32) -> String {
    format!("{SUBJECT_PREFIX}.{p}")
}

/// The stream's description, which records the partition count.
pub fn stream_description(partitions: u32) -> String {
    format!("statecraft events; partitions={partitions}")
}

/// The partition count recorded in a stream description, if any.
pub fn partitions_in_description(description: &str) -> Option<u32> {
    let rest = description.split("partitions=").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Changelog key of `key` in partition `p`: `k.<p>.<base64url(key)>`.
pub fn changelog_key(p: u32, key: &str) -> String {
    format!("k.{p}.{}", b64url(key.as_bytes()))
}

/// The engine key back from a changelog key of partition `p`.
pub fn key_from_changelog(p: u32, kv_key: &str) -> Option<String> {
    let rest = kv_key.strip_prefix(&format!("k.{p}."))?;
    String::from_utf8(b64url_decode(rest)?).ok()
}

/// Filter subject of every changelog key of partition `p` in the KV stream.
pub fn changelog_filter(p: u32) -> String {
    format!("$KV.{CHANGELOG}.k.{p}.>")
}

/// Raw subject of a changelog KV key (for pipelined, header-checked puts).
pub fn changelog_subject(kv_key: &str) -> String {
    format!("$KV.{CHANGELOG}.{kv_key}")
}

/// Changelog key of partition `p`'s commit marker.
pub fn marker_key(p: u32) -> String {
    format!("m.{p}")
}

/// Lease key of partition `p`.
pub fn lease_key(p: u32) -> String {
    p.to_string()
}

/// Prefix of the consumer names of partition `p`.
pub fn consumer_prefix(p: u32) -> String {
    format!("statecraft-p{p}-")
}

/// Durable consumer name of partition `p` in fencing epoch `epoch`.
pub fn consumer_name(p: u32, epoch: u64) -> String {
    format!("{}e{epoch}", consumer_prefix(p))
}

/// The engine source name of partition `p` in epoch `epoch`: offsets the
/// engine stores for it belong to that ownership epoch only.
pub fn source_name(p: u32, epoch: u64) -> String {
    format!("nats/{p}@{epoch}")
}

/// Subject on which node `node` answers reads.
pub fn read_subject(node: &str) -> String {
    format!("{READ_PREFIX}.{node}")
}

/// `Nats-Msg-Id` of an event with a producer-given id: ids are scoped to
/// their key (as in the engine), so the key is part of it; both are encoded
/// (header values may not hold CR/LF).
pub fn msg_id(key: &str, id: &str) -> String {
    format!("k{}.{}", b64url(key.as_bytes()), b64url(id.as_bytes()))
}

/// Is `id` usable as a node id (a KV key and a subject token)?
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Rendezvous preference of node `node` for partition `p` (higher = keep).
pub fn preference(node: &str, p: u32) -> u64 {
    let mut bytes = Vec::with_capacity(node.len() + 5);
    bytes.extend_from_slice(node.as_bytes());
    bytes.push(b'/');
    bytes.extend_from_slice(&p.to_le_bytes());
    fnv1a64(&bytes)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding (RFC 4648 §5).
pub fn b64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes [`b64url`]; `None` on a character outside the alphabet or a
/// impossible length.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        B64.iter().position(|&x| x == c).map(|v| v as u32)
    }
    let bytes = text.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let produced = chunk.len() - 1;
        for i in 0..produced {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64url_matches_rfc4648_vectors_and_round_trips() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64url(plain.as_bytes()), enc);
            assert_eq!(b64url_decode(enc).as_deref(), Some(plain.as_bytes()));
        }
        let odd = [0xfbu8, 0xff, 0xfe, 0x00, 0x3f];
        assert_eq!(b64url(&odd), "-__-AD8");
        assert_eq!(b64url_decode(&b64url(&odd)).as_deref(), Some(&odd[..]));
        assert_eq!(b64url_decode("A"), None);
        assert_eq!(b64url_decode("A+=="), None);
    }

    #[test]
    fn changelog_keys_round_trip_any_utf8() {
        for key in ["user:42", "a b/c.d>*", "ключ", "\u{0}\r\n"] {
            let kv = changelog_key(7, key);
            assert!(
                kv.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            );
            assert_eq!(key_from_changelog(7, &kv).as_deref(), Some(key));
            assert_eq!(key_from_changelog(8, &kv), None);
        }
    }

    #[test]
    fn partition_count_survives_the_description() {
        assert_eq!(partitions_in_description(&stream_description(12)), Some(12));
        assert_eq!(partitions_in_description("something else"), None);
    }

    #[test]
    fn partitions_agree_with_the_engine_router() {
        for i in 0..1000 {
            let key = format!("user:{i}");
            assert_eq!(
                partition_of(&key, 8) as usize,
                statecraft_engine::router::shard_of(&key, 8)
            );
        }
    }

    #[test]
    fn positions_order_by_sequence_then_index() {
        assert!(position(7, 65_534) < position(8, 0));
        assert!(position(8, 0) < position(8, 1));
        assert_eq!(position(1, 0), 1 << 16);
    }

    #[test]
    fn node_ids_are_checked() {
        assert!(valid_node_id("node-1_a"));
        assert!(!valid_node_id(""));
        assert!(!valid_node_id("a.b"));
        assert!(!valid_node_id("a b"));
    }
}
