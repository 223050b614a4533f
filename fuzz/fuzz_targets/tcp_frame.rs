//! The TCP frame codec and message parsers on an arbitrary byte stream, fed
//! in arbitrary chunk sizes: never panics, never buffers past the limit,
//! and cuts the same frames whatever the chunking.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use statecraft_engine::Limits;
use statecraft_server::protocol::{
    ClientFrame, FrameCodec, RawFrame, binary, parse_client_frame, parse_server_frame,
};
use tokio_util::codec::Decoder;

const MAX: usize = 1 << 16;

fn cut(data: &[u8], chunk: usize) -> (Vec<RawFrame>, bool) {
    let mut codec = FrameCodec::new(MAX);
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
        assert!(buf.len() <= MAX + 4 + piece.len());
    }
    let fatal = codec.decode_eof(&mut buf).is_err();
    (frames, fatal)
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let chunk = usize::from(data[0]) + 1;
    let data = &data[1..];
    let (frames, fatal) = cut(data, chunk);
    let (whole, fatal_whole) = cut(data, data.len().max(1));
    assert_eq!(frames, whole, "chunking changes nothing");
    assert_eq!(fatal, fatal_whole);
    let limits = Limits::default();
    for raw in frames {
        let _ = parse_server_frame(raw.clone());
        if let Ok(ClientFrame::Events(ev)) = parse_client_frame(raw.clone()) {
            let _ = ev.decode(&limits);
        }
        let _ = binary::decode_events(&raw.body);
        let _ = binary::decode_results(&raw.body);
    }
});
