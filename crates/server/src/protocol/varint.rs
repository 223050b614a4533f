//! LEB128 varints and zigzag signed integers, the primitive of the binary
//! encodings (docs/protocol.md §"Primitives").
//!
//! Invariant: a decoder never reads past the slice it was given and never
//! accepts a varint longer than 10 bytes or one that overflows `u64`; it
//! answers `None` instead, which callers turn into a malformed frame.

use bytes::BufMut;

/// Appends `v` as an unsigned LEB128 varint (1..=10 bytes).
#[inline]
pub fn put_u64(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Appends `v` zigzag-encoded (small magnitudes of either sign stay short).
#[inline]
pub fn put_i64(buf: &mut impl BufMut, v: i64) {
    put_u64(buf, zigzag(v));
}

/// Maps a signed integer to an unsigned one: 0, -1, 1, -2, … → 0, 1, 2, 3, ….
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads an unsigned varint from the front of `*input`, advancing it.
/// `None` when the input ends inside the varint, or it is longer than 10
/// bytes, or its value overflows `u64`.
#[inline]
pub fn get_u64(input: &mut &[u8]) -> Option<u64> {
    // Fast path: one byte (small counters, short keys).
    let first = *input.first()?;
    if first < 0x80 {
        *input = &input[1..];
        return Some(u64::from(first));
    }
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        if i == 9 && byte > 1 {
            // The 10th byte may only carry the top bit of a u64.
            return None;
        }
        value |= bits << (7 * i);
        if byte < 0x80 {
            *input = &input[i + 1..];
            return Some(value);
        }
    }
    None
}

/// Reads a zigzag-encoded signed varint.
#[inline]
pub fn get_i64(input: &mut &[u8]) -> Option<i64> {
    get_u64(input).map(unzigzag)
}

/// The encoded length of `v` in bytes.
pub fn len_u64(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edges() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_u64(&mut buf, v);
            assert_eq!(buf.len(), len_u64(v), "len of {v}");
            let mut s = buf.as_slice();
            assert_eq!(get_u64(&mut s), Some(v));
            assert!(s.is_empty());
        }
        for v in [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            let mut buf = Vec::new();
            put_i64(&mut buf, v);
            let mut s = buf.as_slice();
            assert_eq!(get_i64(&mut s), Some(v));
        }
    }

    #[test]
    fn refuses_truncated_and_overlong() {
        let mut s: &[u8] = &[0x80];
        assert_eq!(get_u64(&mut s), None);
        let mut s: &[u8] = &[0xff; 11];
        assert_eq!(get_u64(&mut s), None);
        // 10th byte carrying more than the top bit overflows.
        let mut s: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(get_u64(&mut s), None);
        let mut s: &[u8] = &[];
        assert_eq!(get_u64(&mut s), None);
    }
}
