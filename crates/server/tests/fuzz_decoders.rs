//! Fuzz-style test of every decoder, run with the normal test suite (the
//! cargo-fuzz targets in `fuzz/` do the same with coverage guidance): valid
//! inputs mutated at random (bit flips, byte changes, cuts, splices,
//! duplicated ranges) through the NDJSON/body/event decoders, the frame codec
//! in random chunkings, and the binary event/result decoders. Nothing may
//! panic, the codec must cut the same frames whatever the chunking, and
//! NDJSON must give one item per non-blank line.
//!
//! `FUZZ_CASES` sets the number of cases (default 100,000).

use bytes::{BufMut, BytesMut};
use serde_json::json;
use statecraft_engine::limits::{decode_body, decode_event, decode_ndjson};
use statecraft_engine::{Event, EventResult, Limits, Op, RejectCode};
use statecraft_server::protocol::{
    self, ClientFrame, FrameCodec, RawFrame, binary, frame_type, parse_client_frame,
    parse_server_frame,
};
use tokio_util::codec::Decoder;

/// xorshift64*: deterministic, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 => {
                let i = rng.below(v.len() + 1);
                let b = [
                    b'{', b'}', b'[', b']', b'"', b'\n', b'\\', 0xff, 0, b':', b',',
                ];
                v.insert(i, b[rng.below(b.len())]);
            }
            4 if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = (a + rng.below(64)).min(v.len());
                let piece = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, piece);
            }
            5 => {
                let other = &pool[rng.below(pool.len())];
                let cut = rng.below(other.len() + 1);
                let at = rng.below(v.len() + 1);
                v.splice(at..at, other[..cut].iter().copied());
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
        }
    }
    v
}

fn events() -> Vec<Event> {
    vec![
        Event::incr("user:42/clicks", 1),
        Event::set("doc", json!({"a": [1, 2, {"b": null}], "s": "é"})),
        Event::new("list", Op::Append)
            .with_value(json!(3))
            .with_max_len(5)
            .with_path("/x"),
        Event::set("f", json!(1.5))
            .with_id("id-1")
            .with_if_version(3)
            .with_ttl(60),
        Event::new("gone", Op::Delete),
        Event::new("c", Op::parse("custom")).with_value(json!(-7)),
    ]
}

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let nd: String = events()
        .iter()
        .map(|e| serde_json::to_string(e).expect("ser") + "\n")
        .collect();
    out.push(nd.clone().into_bytes());
    out.push(serde_json::to_vec(&events()).expect("ser"));
    out.push(format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes());
    // Frames: HELLO, NDJSON, binary, ACK, ERROR.
    let mut f = BytesMut::new();
    protocol::put_json_frame(
        &mut f,
        frame_type::HELLO,
        &protocol::Hello {
            version: 1,
            ..Default::default()
        },
    );
    protocol::put_ndjson_frame(&mut f, 3, None, nd.as_bytes());
    let at = protocol::begin_frame(&mut f, frame_type::EVENTS_BIN);
    f.put_u32(4);
    f.put_u8(2);
    f.put_u32(events().len() as u32);
    for e in events() {
        binary::put_event(&mut f, &e);
    }
    protocol::finish_frame(&mut f, at);
    protocol::put_ack_frame(
        &mut f,
        4,
        &[
            EventResult::Applied { version: 9 },
            EventResult::Duplicate,
            EventResult::Conflict { current_version: 2 },
            EventResult::rejected(RejectCode::TypeError, "no"),
            EventResult::Overloaded,
            EventResult::Accepted,
        ],
    );
    protocol::put_json_frame(
        &mut f,
        frame_type::ERROR,
        &protocol::ErrorFrame::new(protocol::ErrorCode::MalformedFrame, "x"),
    );
    out.push(f.to_vec());
    out
}

fn cut_frames(data: &[u8], chunk: usize, max: usize) -> (Vec<RawFrame>, bool) {
    let mut codec = FrameCodec::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
        assert!(
            buf.len() <= max + 4 + piece.len(),
            "codec buffered past the limit"
        );
    }
    let fatal = codec.decode_eof(&mut buf).is_err();
    (frames, fatal)
}

fn check(data: &[u8], chunk: usize) {
    let limits = Limits::default();
    // Engine decoders.
    let items = decode_ndjson(data, &limits);
    let lines = data
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count();
    assert_eq!(items.len(), lines);
    let _ = decode_body(data, &limits);
    if let Ok(e) = decode_event(data, &limits) {
        assert!(limits.validate(&e).is_ok());
    }
    // Frame codec: same frames whatever the chunking.
    let max = 1 << 16;
    let (a, fa) = cut_frames(data, chunk, max);
    let (b, fb) = cut_frames(data, data.len().max(1), max);
    assert_eq!((a.len(), fa), (b.len(), fb));
    assert_eq!(a, b);
    for raw in a {
        let _ = parse_server_frame(raw.clone());
        if let Ok(ClientFrame::Events(ev)) = parse_client_frame(raw.clone()) {
            let _ = ev.decode(&limits);
        }
        let _ = binary::decode_events(&raw.body);
        let _ = binary::decode_results(&raw.body);
    }
    // Raw binary decoders on the whole input, too.
    let _ = binary::decode_events(data);
    let _ = binary::decode_results(data);
}

#[test]
fn mutated_inputs_never_break_a_decoder() {
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let pool = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for seed in &pool {
        check(seed, 7);
    }
    for _ in 0..cases {
        let base = &pool[rng.below(pool.len())];
        let input = mutate(&mut rng, base, &pool);
        let chunk = 1 + rng.below(300);
        check(&input, chunk);
    }
}

#[test]
fn binary_events_round_trip_under_random_values() {
    let mut rng = Rng(42);
    for _ in 0..5_000 {
        let n = rng.below(10);
        let evs: Vec<Event> = (0..n)
            .map(|i| {
                let v = match rng.below(5) {
                    0 => json!(rng.next() as i64),
                    1 => json!(rng.next()),
                    2 => json!((rng.next() % 1000) as f64 / 7.0),
                    3 => json!({"k": [i, "s"]}),
                    _ => json!(format!("v{}", rng.next())),
                };
                Event::set(format!("k{}", rng.next() % 100), v)
            })
            .collect();
        let mut buf = BytesMut::new();
        buf.put_u32(evs.len() as u32);
        for e in &evs {
            binary::put_event(&mut buf, e);
        }
        let back: Vec<Event> = binary::decode_events(&buf)
            .expect("well formed")
            .into_iter()
            .map(|r| r.expect("valid"))
            .collect();
        assert_eq!(back, evs);
    }
}
