//! Little building blocks of the binary formats: LEB128 varints, zigzag, and a
//! bounds-checked [`Reader`].
//!
//! Invariant: every read goes through [`Reader`], which never indexes out of
//! bounds and never trusts a length it has not checked against the bytes that
//! remain. A decoder built from it is total: corrupt input yields
//! [`StoreError::Corrupt`], never a panic or an allocation sized by garbage.

use crate::error::StoreError;

/// Appends `v` as an unsigned LEB128 varint (1..=10 bytes).
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        // Truncation to the low 7 bits is the point of the encoding.
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Zigzag-maps a signed integer so that small magnitudes get small varints.
#[inline]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends a length-prefixed byte string.
#[inline]
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A cursor over untrusted bytes. Every method checks bounds and reports what it
/// was reading when the input ran out or made no sense.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Names the thing being decoded, for error messages ("key state", "log record").
    context: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], context: &'static str) -> Self {
        Self {
            buf,
            pos: 0,
            context,
        }
    }

    /// Builds the error for a decoding failure at the current position.
    pub(crate) fn corrupt(&self, detail: &str) -> StoreError {
        StoreError::Corrupt {
            what: format!("{} at byte {}: {detail}", self.context, self.pos),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn u8(&mut self) -> Result<u8, StoreError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.corrupt("unexpected end of input")),
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if n > self.remaining() {
            return Err(self.corrupt("length runs past the end of input"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let low = u64::from(b & 0x7f);
            if i == 9 && (b & 0x7e) != 0 {
                return Err(self.corrupt("varint overflows u64"));
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt("varint longer than 10 bytes"))
    }

    /// A varint used as a length; checked against the bytes that remain.
    pub(crate) fn len(&mut self) -> Result<usize, StoreError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(self.corrupt("length exceeds the remaining input")),
        }
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.len()?;
        self.take(n)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, StoreError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.corrupt("string is not UTF-8"))
    }

    pub(crate) fn expect_end(&self) -> Result<(), StoreError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt("trailing bytes after the end"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_round_trips(v in any::<u64>()) {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut r = Reader::new(&buf, "test");
            prop_assert_eq!(r.varint().ok(), Some(v));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn zigzag_round_trips(v in any::<i64>()) {
            prop_assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn small_magnitudes_stay_small() {
        for v in [-64i64, -1, 0, 1, 63] {
            let mut buf = Vec::new();
            put_varint(&mut buf, zigzag(v));
            assert_eq!(buf.len(), 1, "{v}");
        }
    }

    #[test]
    fn overlong_and_overflowing_varints_are_corrupt() {
        let overlong = [0x80u8; 11];
        assert!(Reader::new(&overlong, "t").varint().is_err());
        let mut overflow = vec![0xffu8; 9];
        overflow.push(0x02);
        assert!(Reader::new(&overflow, "t").varint().is_err());
        let mut max = vec![0xffu8; 9];
        max.push(0x01);
        assert_eq!(Reader::new(&max, "t").varint().ok(), Some(u64::MAX));
    }

    #[test]
    fn lengths_are_checked_against_remaining_input() {
        let mut buf = Vec::new();
        put_varint(&mut buf, 1 << 40);
        buf.extend_from_slice(b"abc");
        assert!(Reader::new(&buf, "t").bytes().is_err());
    }
}
