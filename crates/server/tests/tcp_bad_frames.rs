//! Bad TCP input (DESIGN §6): an unknown frame type, a short header, a bad
//! ack byte, a broken binary body → an ERROR frame with the frame's seq where
//! known, and the connection goes on; bad events inside a good frame are
//! per-event rejections; an over-limit length prefix, a truncated frame, a
//! missing or repeated HELLO, a wrong version → ERROR, then close.

mod common;

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use statecraft_engine::{Event, EventResult, RejectCode};
use statecraft_server::protocol::{
    ErrorCode, FrameCodec, ServerFrame, frame_type, parse_server_frame,
};
use statecraft_server::{ServeConfig, TcpClient};
use tokio_util::codec::Decoder;

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    v.push(kind);
    v.extend_from_slice(body);
    v
}

fn hello() -> Vec<u8> {
    frame(frame_type::HELLO, br#"{"version":1}"#)
}

fn server_frames(bytes: &[u8]) -> Vec<ServerFrame> {
    let mut codec = FrameCodec::new(1 << 24);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(raw) = codec
        .decode(&mut buf)
        .expect("server frames are well formed")
    {
        out.push(parse_server_frame(raw).expect("parses"));
    }
    out
}

fn error_code(f: &ServerFrame) -> ErrorCode {
    match f {
        ServerFrame::Error(e) => e.code,
        other => panic!("expected an ERROR, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_errors_and_the_connection_goes_on() {
    let running = common::start(common::config()).await;
    let mut client = TcpClient::connect(running.tcp_addr, None)
        .await
        .expect("greeted");

    // Unknown frame type.
    client
        .sender()
        .send_raw(&frame(0x55, b"junk"))
        .await
        .expect("sent");
    let ServerFrame::Error(e) = client.receiver().recv().await.expect("answer") else {
        panic!()
    };
    assert_eq!((e.code, e.frame_seq), (ErrorCode::MalformedFrame, None));
    // An empty payload (length 0).
    client.sender().send_raw(&[0, 0, 0, 0]).await.expect("sent");
    assert_eq!(
        error_code(&client.receiver().recv().await.expect("answer")),
        ErrorCode::MalformedFrame
    );
    // An events frame shorter than its header.
    client
        .sender()
        .send_raw(&frame(frame_type::EVENTS_BIN, &[0, 0]))
        .await
        .expect("sent");
    assert_eq!(
        error_code(&client.receiver().recv().await.expect("answer")),
        ErrorCode::MalformedFrame
    );
    // A bad ack byte: the seq is known.
    client
        .sender()
        .send_raw(&frame(frame_type::EVENTS_NDJSON, &[0, 0, 0, 77, 9]))
        .await
        .expect("sent");
    let ServerFrame::Error(e) = client.receiver().recv().await.expect("answer") else {
        panic!()
    };
    assert_eq!(e.frame_seq, Some(77));
    // A binary body cut short, and one with garbage after the events.
    let mut body = BytesMut::new();
    body.put_u32(78);
    body.put_u8(2);
    body.put_u32(2);
    statecraft_server::protocol::binary::put_incr(&mut body, "k", 1);
    client
        .sender()
        .send_raw(&frame(frame_type::EVENTS_BIN, &body))
        .await
        .expect("sent");
    let ServerFrame::Error(e) = client.receiver().recv().await.expect("answer") else {
        panic!()
    };
    assert_eq!((e.code, e.frame_seq), (ErrorCode::MalformedFrame, Some(78)));
    assert!(e.message.contains("event 1"), "{}", e.message);
    // A second HELLO.
    client.sender().send_raw(&hello()).await.expect("sent");
    assert_eq!(
        error_code(&client.receiver().recv().await.expect("answer")),
        ErrorCode::MalformedFrame
    );

    // Bad events inside good frames: per-event rejections, others apply.
    let nd = b"{\"key\":\"ok\",\"op\":\"incr\"}\n{\"key\":\"bad\",\"op\":\n{\"key\":\"u\xff\",\"op\":\"incr\"}\n{\"key\":\"ok\",\"op\":\"incr\"}";
    let seq = client.sender().send_ndjson(nd, None).await.expect("sent");
    let ServerFrame::Ack { seq: s, results } = client.receiver().recv().await.expect("ack") else {
        panic!()
    };
    assert_eq!(s, seq);
    assert!(results[0].is_applied() && results[3].is_applied());
    assert!(matches!(
        results[1],
        EventResult::Rejected {
            code: RejectCode::InvalidJson,
            ..
        }
    ));
    assert!(matches!(
        results[2],
        EventResult::Rejected {
            code: RejectCode::InvalidJson,
            ..
        }
    ));
    let long_key = "k".repeat(2000);
    let results = client
        .submit(&[Event::incr(&long_key, 1), Event::incr("ok", 1)], None)
        .await
        .expect("ack");
    assert!(matches!(
        results[0],
        EventResult::Rejected {
            code: RejectCode::InvalidKey,
            ..
        }
    ));
    assert!(results[1].is_applied());
    // A binary event whose key is not UTF-8 and one with an unknown op code.
    let mut body = BytesMut::new();
    body.put_u32(99);
    body.put_u8(2);
    body.put_u32(3);
    body.put_slice(&[2, 1, 2, 0xff, 0xfe, 3, 2]);
    body.put_slice(&[42, 0, 1, b'x']);
    statecraft_server::protocol::binary::put_incr(&mut body, "ok", 1);
    client
        .sender()
        .send_raw(&frame(frame_type::EVENTS_BIN, &body))
        .await
        .expect("sent");
    let ServerFrame::Ack { seq: 99, results } = client.receiver().recv().await.expect("ack") else {
        panic!()
    };
    assert!(matches!(
        results[0],
        EventResult::Rejected {
            code: RejectCode::InvalidKey,
            ..
        }
    ));
    assert!(matches!(
        results[1],
        EventResult::Rejected {
            code: RejectCode::UnknownOp,
            ..
        }
    ));
    assert!(results[2].is_applied());

    let engine = running.engine().expect("open");
    assert_eq!(
        engine.get("ok").await.expect("get").expect("present").value,
        4
    );
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_framing_errors_close_the_connection() {
    let running = common::start(ServeConfig {
        max_body_bytes: 4096,
        ..common::config()
    })
    .await;
    let wait = Duration::from_secs(5);

    // Over-limit length prefix: ERROR frame_too_large, then close (the
    // bytes after it are never read as frames).
    let mut bytes = hello();
    bytes.extend_from_slice(&(1u32 << 30).to_be_bytes());
    bytes.extend_from_slice(&[frame_type::EVENTS_BIN; 64]);
    let frames = server_frames(&common::raw_exchange(running.tcp_addr, &bytes, wait).await);
    assert!(matches!(frames[0], ServerFrame::HelloOk(_)));
    assert_eq!(error_code(&frames[1]), ErrorCode::FrameTooLarge);
    assert_eq!(frames.len(), 2);

    // A frame truncated by the end of the stream.
    let client = TcpClient::connect(running.tcp_addr, None)
        .await
        .expect("greeted");
    let (mut tx, mut rx) = client.split();
    tx.send_raw(&[0, 0, 0, 50, frame_type::EVENTS_NDJSON, 0])
        .await
        .expect("sent");
    tx.close().await.expect("closed");
    assert_eq!(
        error_code(&rx.recv().await.expect("answer")),
        ErrorCode::TruncatedFrame
    );
    assert!(rx.recv().await.is_err(), "closed");

    // Events before HELLO.
    let frames = server_frames(
        &common::raw_exchange(
            running.tcp_addr,
            &frame(frame_type::EVENTS_NDJSON, &[0, 0, 0, 1, 0]),
            wait,
        )
        .await,
    );
    assert_eq!(frames.len(), 1);
    assert_eq!(error_code(&frames[0]), ErrorCode::HelloRequired);
    // Garbage before HELLO.
    let frames = server_frames(
        &common::raw_exchange(
            running.tcp_addr,
            &frame(frame_type::HELLO, b"{not json"),
            wait,
        )
        .await,
    );
    assert_eq!(error_code(&frames[0]), ErrorCode::HelloRequired);
    // An unsupported version.
    let frames = server_frames(
        &common::raw_exchange(
            running.tcp_addr,
            &frame(frame_type::HELLO, br#"{"version":99}"#),
            wait,
        )
        .await,
    );
    assert_eq!(error_code(&frames[0]), ErrorCode::UnsupportedVersion);

    // The server still serves.
    let mut client = TcpClient::connect(running.tcp_addr, None)
        .await
        .expect("greeted");
    assert!(
        client
            .submit(&[Event::incr("k", 1)], None)
            .await
            .expect("ack")[0]
            .is_applied()
    );
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused() {
    let running = common::start(ServeConfig {
        max_connections: 2,
        ..common::config()
    })
    .await;
    let a = TcpClient::connect(running.tcp_addr, None)
        .await
        .expect("first");
    let b = TcpClient::connect(running.tcp_addr, None)
        .await
        .expect("second");
    match TcpClient::connect(running.tcp_addr, None).await {
        Err(statecraft_server::ClientError::Refused(e)) => {
            assert_eq!(e.code, ErrorCode::TooManyConnections)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(a);
    // The slot frees once the first connection's task ends.
    let mut c = None;
    for _ in 0..50 {
        if let Ok(client) = TcpClient::connect(running.tcp_addr, None).await {
            c = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(c.is_some(), "a slot frees when a connection closes");
    drop(b);
    running.shutdown().await.expect("clean shutdown");
}
