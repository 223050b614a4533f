//! RESP2, the Redis wire protocol, as much as the load generator needs:
//! encoding commands (arrays of bulk strings) and decoding replies.
//!
//! Invariants:
//! - [`parse_reply`] never panics and never reads past its input: on a
//!   partial reply it answers `Ok(None)` and the caller reads more bytes; a
//!   byte sequence that can never become a reply is [`RespError`].
//! - Encoding appends to the caller's buffer and allocates nothing else.

use bytes::{BufMut, BytesMut};

/// A decoded reply, borrowing from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `+OK`
    Simple(&'a [u8]),
    /// `-ERR …`
    Error(&'a [u8]),
    /// `:42`
    Integer(i64),
    /// `$3 foo`, or `$-1` (`None`).
    Bulk(Option<&'a [u8]>),
    /// `*2 …`, or `*-1` (`None`).
    Array(Option<Vec<Reply<'a>>>),
}

impl Reply<'_> {
    /// True for an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// A byte stream that is not RESP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a RESP reply: {0}")]
pub struct RespError(pub String);

/// Most elements of an array reply we accept (guards the allocation).
const MAX_ARRAY: i64 = 1 << 20;

/// Appends `n` in decimal.
#[inline]
fn put_decimal(buf: &mut BytesMut, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        buf.put_u8(b'-');
    }
    buf.put_slice(&digits[at..]);
}

/// Appends one bulk string: `$len\r\nbytes\r\n`.
#[inline]
fn put_bulk(buf: &mut BytesMut, arg: &[u8]) {
    buf.put_u8(b'$');
    put_decimal(buf, arg.len() as i64);
    buf.put_slice(b"\r\n");
    buf.put_slice(arg);
    buf.put_slice(b"\r\n");
}

/// Appends a command: an array of bulk strings.
pub fn put_command(buf: &mut BytesMut, args: &[&[u8]]) {
    buf.put_u8(b'*');
    put_decimal(buf, args.len() as i64);
    buf.put_slice(b"\r\n");
    for a in args {
        put_bulk(buf, a);
    }
}

/// Appends `INCRBY key by` (the counter fast path).
#[inline]
pub fn put_incrby(buf: &mut BytesMut, key: &str, by: i64) {
    buf.put_slice(b"*3\r\n$6\r\nINCRBY\r\n");
    put_bulk(buf, key.as_bytes());
    if by == 1 {
        // Every workload increments by 1.
        buf.put_slice(b"$1\r\n1\r\n");
    } else {
        let mut digits = BytesMut::with_capacity(20);
        put_decimal(&mut digits, by);
        put_bulk(buf, &digits);
    }
}

/// Appends `HSET key field value`.
#[inline]
pub fn put_hset(buf: &mut BytesMut, key: &str, field: &[u8], value: &[u8]) {
    buf.put_slice(b"*4\r\n$4\r\nHSET\r\n");
    put_bulk(buf, key.as_bytes());
    put_bulk(buf, field);
    put_bulk(buf, value);
}

/// Finds `\r\n` at or after `from`; the index of the `\r`.
#[inline]
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    rest.windows(2).position(|w| w == b"\r\n").map(|p| from + p)
}

fn parse_int(digits: &[u8]) -> Result<i64, RespError> {
    let s =
        std::str::from_utf8(digits).map_err(|_| RespError("a number that is not ASCII".into()))?;
    s.parse()
        .map_err(|_| RespError(format!("`{s}` is not a number")))
}

/// Parses one reply at the start of `buf`: `Ok(Some((reply, bytes used)))`,
/// `Ok(None)` when `buf` holds only part of it.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, RespError> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Reply<'_>, usize)>, RespError> {
    if depth > 32 {
        return Err(RespError("arrays nested over 32 deep".into()));
    }
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some(eol) = find_crlf(buf, at + 1) else {
        return Ok(None);
    };
    let line = &buf[at + 1..eol];
    let after = eol + 2;
    match kind {
        b'+' => Ok(Some((Reply::Simple(line), after - at))),
        b'-' => Ok(Some((Reply::Error(line), after - at))),
        b':' => Ok(Some((Reply::Integer(parse_int(line)?), after - at))),
        b'$' => {
            let len = parse_int(line)?;
            if len == -1 {
                return Ok(Some((Reply::Bulk(None), after - at)));
            }
            if len < 0 {
                return Err(RespError(format!("bulk length {len}")));
            }
            let end = after + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(RespError("a bulk string without its CRLF".into()));
            }
            Ok(Some((Reply::Bulk(Some(&buf[after..end])), end + 2 - at)))
        }
        b'*' => {
            let n = parse_int(line)?;
            if n == -1 {
                return Ok(Some((Reply::Array(None), after - at)));
            }
            if !(0..=MAX_ARRAY).contains(&n) {
                return Err(RespError(format!("array length {n}")));
            }
            let mut items = Vec::with_capacity(n as usize);
            let mut pos = after;
            for _ in 0..n {
                match parse_at(buf, pos, depth + 1)? {
                    None => return Ok(None),
                    Some((item, used)) => {
                        items.push(item);
                        pos += used;
                    }
                }
            }
            Ok(Some((Reply::Array(Some(items)), pos - at)))
        }
        other => Err(RespError(format!("unknown reply type byte {other:#04x}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_encode_as_arrays_of_bulk_strings() {
        let mut b = BytesMut::new();
        put_command(&mut b, &[b"SET", b"k", b"hello"]);
        assert_eq!(&b[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n");
        b.clear();
        put_incrby(&mut b, "key:12", 1);
        assert_eq!(&b[..], b"*3\r\n$6\r\nINCRBY\r\n$6\r\nkey:12\r\n$1\r\n1\r\n");
        b.clear();
        put_incrby(&mut b, "k", -250);
        assert_eq!(&b[..], b"*3\r\n$6\r\nINCRBY\r\n$1\r\nk\r\n$4\r\n-250\r\n");
        b.clear();
        put_hset(&mut b, "doc:1", b"v", b"{\"a\":1}");
        assert_eq!(
            &b[..],
            b"*4\r\n$4\r\nHSET\r\n$5\r\ndoc:1\r\n$1\r\nv\r\n$7\r\n{\"a\":1}\r\n"
        );
    }

    #[test]
    fn every_reply_type_decodes() {
        let cases: Vec<(&[u8], Reply<'_>)> = vec![
            (b"+OK\r\n", Reply::Simple(b"OK")),
            (b"-ERR wrong type\r\n", Reply::Error(b"ERR wrong type")),
            (b":42\r\n", Reply::Integer(42)),
            (b":-7\r\n", Reply::Integer(-7)),
            (b"$5\r\nhello\r\n", Reply::Bulk(Some(b"hello"))),
            (b"$0\r\n\r\n", Reply::Bulk(Some(b""))),
            (b"$-1\r\n", Reply::Bulk(None)),
            (b"*-1\r\n", Reply::Array(None)),
            (
                b"*2\r\n:1\r\n$2\r\nhi\r\n",
                Reply::Array(Some(vec![Reply::Integer(1), Reply::Bulk(Some(b"hi"))])),
            ),
        ];
        for (wire, want) in cases {
            let (got, used) = parse_reply(wire).expect("valid").expect("complete");
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(wire));
            assert_eq!(used, wire.len());
        }
        assert!(Reply::Error(b"x").is_error());
    }

    #[test]
    fn partial_replies_ask_for_more_at_every_cut() {
        let wire: &[u8] = b"*3\r\n:1\r\n$5\r\nhello\r\n+OK\r\n";
        for cut in 0..wire.len() {
            assert_eq!(parse_reply(&wire[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_reply(wire).expect("valid").is_some());
    }

    #[test]
    fn consecutive_replies_are_cut_apart() {
        let wire: &[u8] = b":1\r\n:2\r\n+OK\r\n";
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((r, used)) = parse_reply(&wire[at..]).expect("valid") {
            got.push(r);
            at += used;
        }
        assert_eq!(
            got,
            [Reply::Integer(1), Reply::Integer(2), Reply::Simple(b"OK")]
        );
        assert_eq!(at, wire.len());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"?what\r\n"[..],
            b":x1\r\n",
            b"$-5\r\n",
            b"$2\r\nabcd\r\n",
            b"*99999999999\r\n",
        ] {
            assert!(
                parse_reply(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
