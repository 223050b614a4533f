//! The engine's NDJSON and array-body decoders on arbitrary bytes: never
//! panic, never overflow the stack; one item per non-blank line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use statecraft_engine::Limits;
use statecraft_engine::limits::{decode_body, decode_ndjson};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let items = decode_ndjson(data, &limits);
    let lines = data
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count();
    assert_eq!(items.len(), lines);
    let _ = decode_body(data, &limits);
});
