//! Tests of [`frame`](super::super::frame): byte-exact encodings of every frame type,
//! malformed, partial and oversized input, the codec over a pipe, and random round
//! trips.

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::super::SpdyError;
use super::super::frame::*;
use super::super::headers::{HeaderCompressor, HeaderDecompressor, Headers};

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame
        .encode(&mut HeaderCompressor::new(), &mut out)
        .unwrap();
    out.to_vec()
}

fn decode_all(bytes: &[u8]) -> Result<Frame, SpdyError> {
    let mut src = BytesMut::from(bytes);
    let frame = Frame::decode(
        &mut src,
        &mut HeaderDecompressor::new(),
        DEFAULT_MAX_FRAME_LEN,
    )?
    .expect("a complete frame");
    assert!(src.is_empty(), "bytes left over");
    Ok(frame)
}

/// Encodes `frame`, checks the bytes, decodes them back.
fn check(frame: Frame, wire: &[u8]) {
    assert_eq!(encode(&frame), wire, "encoding of {frame:?}");
    assert_eq!(decode_all(wire).unwrap(), frame);
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().copied().collect()
}

/// A compressed header block as the first of a fresh compressor.
fn compressed(h: &Headers) -> Vec<u8> {
    let mut out = BytesMut::new();
    HeaderCompressor::new().compress(h, &mut out).unwrap();
    out.to_vec()
}

#[test]
fn rst_stream_bytes() {
    check(
        Frame::RstStream {
            stream_id: 5,
            status: RstStatus::CANCEL,
        },
        &[
            0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 5, 0, 0, 0, 5,
        ],
    );
    // The reserved bit of the stream id is ignored when reading.
    let frame = decode_all(&[
        0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0x80, 0, 0, 7, 0, 0, 0, 7,
    ])
    .unwrap();
    assert_eq!(
        frame,
        Frame::RstStream {
            stream_id: 7,
            status: RstStatus::FLOW_CONTROL_ERROR,
        }
    );
}

#[test]
fn settings_bytes() {
    check(
        Frame::Settings {
            flags: FLAG_SETTINGS_CLEAR_SETTINGS,
            entries: vec![
                Setting {
                    flags: FLAG_SETTINGS_PERSIST_VALUE,
                    id: SETTINGS_MAX_CONCURRENT_STREAMS,
                    value: 100,
                },
                Setting {
                    flags: 0,
                    id: SETTINGS_INITIAL_WINDOW_SIZE,
                    value: 0x0001_0000,
                },
            ],
        },
        &[
            0x80, 0x03, 0x00, 0x04, 0x01, 0x00, 0x00, 0x14, // header, length 20
            0, 0, 0, 2, // two entries
            0x01, 0, 0, 4, 0, 0, 0, 100, // PERSIST_VALUE, MAX_CONCURRENT_STREAMS
            0x00, 0, 0, 7, 0, 1, 0, 0, // INITIAL_WINDOW_SIZE = 65536
        ],
    );
}

#[test]
fn ping_goaway_window_update_bytes() {
    check(
        Frame::Ping { id: 0x0102_0304 },
        &[0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 1, 2, 3, 4],
    );
    check(
        Frame::GoAway {
            last_good_stream_id: 9,
            status: GoAwayStatus::PROTOCOL_ERROR,
        },
        &[
            0x80, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 9, 0, 0, 0, 1,
        ],
    );
    check(
        Frame::WindowUpdate {
            stream_id: 0,
            delta: 0x7fff_ffff,
        },
        &[
            0x80, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff,
        ],
    );
    // Reserved bits of stream id and delta are ignored when reading.
    let frame = decode_all(&[
        0x80, 0x03, 0x00, 0x09, 0, 0, 0, 8, 0x80, 0, 0, 3, 0x80, 0, 0x10, 0,
    ])
    .unwrap();
    assert_eq!(
        frame,
        Frame::WindowUpdate {
            stream_id: 3,
            delta: 0x1000,
        }
    );
}

#[test]
fn data_bytes() {
    check(
        Frame::Data {
            stream_id: 0x7fff_ffff,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"hello"),
        },
        &[
            0x7f, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o',
        ],
    );
    check(
        Frame::Data {
            stream_id: 1,
            flags: FLAG_FIN,
            data: Bytes::new(),
        },
        &[0, 0, 0, 1, 0x01, 0, 0, 0],
    );
}

#[test]
fn syn_stream_bytes() {
    let h = headers(&[("streamtype", "error")]);
    let block = compressed(&h);
    let mut wire = vec![
        0x80,
        0x03,
        0x00,
        0x01,
        FLAG_FIN | FLAG_UNIDIRECTIONAL,
        0x00,
        0x00,
    ];
    wire.push(10 + block.len() as u8);
    wire.extend_from_slice(&[0, 0, 0, 3]); // stream id
    wire.extend_from_slice(&[0, 0, 0, 1]); // associated-to
    wire.extend_from_slice(&[0b1010_0000, 7]); // priority 5, slot 7
    wire.extend_from_slice(&block);
    check(
        Frame::SynStream {
            stream_id: 3,
            associated_to: 1,
            priority: 5,
            slot: 7,
            flags: FLAG_FIN | FLAG_UNIDIRECTIONAL,
            headers: h,
        },
        &wire,
    );
}

#[test]
fn syn_reply_and_headers_bytes() {
    let h = headers(&[("status", "200")]);
    let block = compressed(&h);
    for (frame_type, frame) in [
        (
            TYPE_SYN_REPLY,
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: h.clone(),
            },
        ),
        (
            TYPE_HEADERS,
            Frame::Headers {
                stream_id: 1,
                flags: FLAG_FIN,
                headers: h.clone(),
            },
        ),
    ] {
        let flags = if frame_type == TYPE_HEADERS {
            FLAG_FIN
        } else {
            0
        };
        let mut wire = vec![0x80, 0x03, 0x00, frame_type as u8, flags, 0x00, 0x00];
        wire.push(4 + block.len() as u8);
        wire.extend_from_slice(&[0, 0, 0, 1]);
        wire.extend_from_slice(&block);
        check(frame, &wire);
    }
}

#[test]
fn syn_stream_from_an_independent_zlib() {
    // The header block is `streamtype: error` compressed by CPython's zlib with the
    // SPDY dictionary (see the headers tests for how it was produced).
    let block: &[u8] = &[
        0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0xa6, 0x23, 0x46, 0x70, 0x3a, 0x2b, 0x29, 0x4a,
        0x4d, 0xcc, 0x85, 0x16, 0x25, 0xac, 0xa9, 0xa0, 0x80, 0x06, 0x00, 0x00, 0x00, 0xff, 0xff,
    ];
    let mut wire = vec![
        0x80,
        0x03,
        0x00,
        0x01,
        0x00,
        0x00,
        0x00,
        10 + block.len() as u8,
    ];
    wire.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    wire.extend_from_slice(block);
    let Frame::SynStream {
        stream_id, headers, ..
    } = decode_all(&wire).unwrap()
    else {
        panic!("not a SYN_STREAM");
    };
    assert_eq!(stream_id, 1);
    assert_eq!(headers.get("StreamType"), Some("error"));
}

#[test]
fn unknown_control_frames_are_kept() {
    // Type 10 was CREDENTIAL in SPDY/3; 0xffff is nothing at all.
    for frame_type in [10u16, 0xffff] {
        let [hi, lo] = frame_type.to_be_bytes();
        let wire = [0x80, 0x03, hi, lo, 0x42, 0, 0, 2, 0xaa, 0xbb];
        check(
            Frame::Unknown {
                version: 3,
                frame_type,
                flags: 0x42,
                payload: Bytes::from_static(&[0xaa, 0xbb]),
            },
            &wire,
        );
    }
}

#[test]
fn malformed_control_frames_are_rejected() {
    let cases: &[&[u8]] = &[
        // RST_STREAM of 4 bytes.
        &[0x80, 0x03, 0x00, 0x03, 0, 0, 0, 4, 0, 0, 0, 1],
        // PING of 8 bytes.
        &[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1],
        // GOAWAY of 4 bytes (the SPDY/2 layout).
        &[0x80, 0x03, 0x00, 0x07, 0, 0, 0, 4, 0, 0, 0, 1],
        // WINDOW_UPDATE of 4 bytes.
        &[0x80, 0x03, 0x00, 0x09, 0, 0, 0, 4, 0, 0, 0, 1],
        // SETTINGS announcing 2 entries, carrying 1.
        &[
            0x80, 0x03, 0x00, 0x04, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 1, 0,
        ],
        // SETTINGS without its count.
        &[0x80, 0x03, 0x00, 0x04, 0, 0, 0, 0],
        // SYN_STREAM shorter than its fixed part.
        &[0x80, 0x03, 0x00, 0x01, 0, 0, 0, 4, 0, 0, 0, 1],
        // SYN_REPLY shorter than its fixed part.
        &[0x80, 0x03, 0x00, 0x02, 0, 0, 0, 2, 0, 0],
        // A SPDY/2 PING.
        &[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1],
    ];
    for case in cases {
        let err = decode_all(case).unwrap_err();
        assert!(
            matches!(err, SpdyError::DecodeFrame { .. }),
            "{case:?}: {err}"
        );
    }
    // A SYN_STREAM whose header block is not zlib.
    let err = decode_all(&[
        0x80, 0x03, 0x00, 0x01, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x12, 0x34,
    ])
    .unwrap_err();
    assert!(matches!(err, SpdyError::InflateHeaders { .. }), "{err}");
}

#[test]
fn partial_frames_wait_for_more() {
    let wire = encode(&Frame::Ping { id: 1 });
    let mut decompressor = HeaderDecompressor::new();
    for cut in 0..wire.len() {
        let mut src = BytesMut::from(&wire[..cut]);
        assert_eq!(
            Frame::decode(&mut src, &mut decompressor, 100).unwrap(),
            None
        );
        assert_eq!(src.len(), cut, "nothing consumed");
    }
}

#[test]
fn oversized_frames_are_refused_from_the_header() {
    let mut decompressor = HeaderDecompressor::new();
    // A DATA frame announcing 16 MiB - 1: refused before any payload arrives, and
    // without reserving room for it.
    let mut src = BytesMut::from(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff][..]);
    let err = Frame::decode(&mut src, &mut decompressor, 1 << 20).unwrap_err();
    assert!(
        matches!(
            err,
            SpdyError::FrameTooLarge {
                len: 0x00ff_ffff,
                max: 0x0010_0000
            }
        ),
        "{err}"
    );
    assert!(src.capacity() < 1024);
    // At the limit is fine.
    let mut src = BytesMut::from(&[0, 0, 0, 1, 0, 0, 0, 4, 1, 2, 3, 4][..]);
    assert!(
        Frame::decode(&mut src, &mut decompressor, 4)
            .unwrap()
            .is_some()
    );
}

#[test]
fn out_of_range_fields_are_not_encoded() {
    let bad = [
        Frame::Data {
            stream_id: 0x8000_0000,
            flags: 0,
            data: Bytes::new(),
        },
        Frame::RstStream {
            stream_id: u32::MAX,
            status: RstStatus::CANCEL,
        },
        Frame::WindowUpdate {
            stream_id: 1,
            delta: 0x8000_0000,
        },
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 8,
            slot: 0,
            flags: 0,
            headers: Headers::new(),
        },
        Frame::Settings {
            flags: 0,
            entries: vec![Setting {
                flags: 0,
                id: 0x0100_0000,
                value: 0,
            }],
        },
        Frame::Data {
            stream_id: 1,
            flags: 0,
            data: Bytes::from(vec![0; MAX_FRAME_PAYLOAD + 1]),
        },
    ];
    for frame in bad {
        let mut out = BytesMut::from(&b"kept"[..]);
        let err = frame
            .encode(&mut HeaderCompressor::new(), &mut out)
            .unwrap_err();
        assert!(matches!(err, SpdyError::EncodeFrame { .. }), "{err}");
        assert_eq!(&out[..], b"kept");
    }
}

#[test]
fn status_names() {
    assert_eq!(RstStatus::PROTOCOL_ERROR.0, 1);
    assert_eq!(RstStatus::FLOW_CONTROL_ERROR.0, 7);
    assert_eq!(RstStatus::FRAME_TOO_LARGE.0, 11);
    assert_eq!(RstStatus::CANCEL.to_string(), "CANCEL");
    assert_eq!(RstStatus(99).to_string(), "status 99");
    assert_eq!(
        format!("{:?}", RstStatus::REFUSED_STREAM),
        "RstStatus(REFUSED_STREAM)"
    );
    assert_eq!(GoAwayStatus::OK.to_string(), "OK");
    assert_eq!(GoAwayStatus::INTERNAL_ERROR.0, 2);
}

#[tokio::test]
async fn codec_over_a_pipe() {
    let (a, b) = tokio::io::duplex(1024);
    let mut tx = FramedWrite::new(a, FrameCodec::new());
    let mut rx = FramedRead::new(b, FrameCodec::new());
    let frames = vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: headers(&[("streamtype", "stdin")]),
        },
        Frame::SynStream {
            stream_id: 3,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: headers(&[("streamtype", "stdout")]),
        },
        Frame::Data {
            stream_id: 1,
            flags: 0,
            data: Bytes::from(vec![7; 5000]),
        },
        Frame::Headers {
            stream_id: 3,
            flags: FLAG_FIN,
            headers: headers(&[("streamtype", "stdout"), ("x", "y")]),
        },
        Frame::GoAway {
            last_good_stream_id: 3,
            status: GoAwayStatus::OK,
        },
    ];
    let sent = frames.clone();
    let writer = tokio::spawn(async move {
        for frame in sent {
            tx.send(frame).await.unwrap();
        }
    });
    for want in frames {
        assert_eq!(rx.next().await.unwrap().unwrap(), want);
    }
    writer.await.unwrap();
    assert!(rx.next().await.is_none());
}

fn arb_headers() -> impl Strategy<Value = Headers> {
    // Unique names: a repeated name would come back grouped, in another order.
    prop::collection::btree_map("[a-z][a-z0-9-]{0,12}", "[ -~]{0,24}", 0..6)
        .prop_map(|map| map.into_iter().collect())
}

fn arb_stream_id() -> impl Strategy<Value = u32> {
    prop_oneof![1..64u32, 0..=STREAM_ID_MASK]
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            arb_stream_id(),
            arb_stream_id(),
            0..8u8,
            any::<u8>(),
            any::<u8>(),
            arb_headers()
        )
            .prop_map(
                |(stream_id, associated_to, priority, slot, flags, headers)| Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    slot,
                    flags,
                    headers,
                }
            ),
        (arb_stream_id(), any::<u8>(), arb_headers()).prop_map(|(stream_id, flags, headers)| {
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
        }),
        (arb_stream_id(), any::<u8>(), arb_headers()).prop_map(|(stream_id, flags, headers)| {
            Frame::Headers {
                stream_id,
                flags,
                headers,
            }
        }),
        (arb_stream_id(), any::<u32>()).prop_map(|(stream_id, status)| Frame::RstStream {
            stream_id,
            status: RstStatus(status),
        }),
        (
            any::<u8>(),
            prop::collection::vec((any::<u8>(), 0..=0x00ff_ffffu32, any::<u32>()), 0..5)
        )
            .prop_map(|(flags, entries)| Frame::Settings {
                flags,
                entries: entries
                    .into_iter()
                    .map(|(flags, id, value)| Setting { flags, id, value })
                    .collect(),
            }),
        any::<u32>().prop_map(|id| Frame::Ping { id }),
        (arb_stream_id(), any::<u32>()).prop_map(|(last_good_stream_id, status)| {
            Frame::GoAway {
                last_good_stream_id,
                status: GoAwayStatus(status),
            }
        }),
        (prop_oneof![Just(0u32), arb_stream_id()], 0..=MAX_WINDOW)
            .prop_map(|(stream_id, delta)| Frame::WindowUpdate { stream_id, delta }),
        (
            arb_stream_id(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(stream_id, flags, data)| Frame::Data {
                stream_id,
                flags,
                data: Bytes::from(data),
            }),
        (
            0..=0x7fffu16,
            prop_oneof![Just(0u16), Just(5u16), 10..=u16::MAX],
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(version, frame_type, flags, payload)| Frame::Unknown {
                version,
                frame_type,
                flags,
                payload: Bytes::from(payload),
            }),
    ]
}

/// Runs the decoder over `input` fed `chunk` bytes at a time until it stops.
fn decode_in_chunks(
    codec: &mut FrameCodec,
    input: &[u8],
    chunk: usize,
) -> Result<Vec<Frame>, SpdyError> {
    let mut src = BytesMut::new();
    let mut frames = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        src.extend_from_slice(piece);
        while let Some(frame) = codec.decode_frame(&mut src)? {
            frames.push(frame);
        }
    }
    Ok(frames)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..2048), chunk in 1..64usize) {
        let mut codec = FrameCodec::with_max_frame_len(4096);
        let _ = decode_in_chunks(&mut codec, &input, chunk);
    }

    #[test]
    fn arbitrary_control_payloads_never_panic(
        frame_type in 1..=9u16,
        flags in any::<u8>(),
        payload in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut input = vec![0x80, 0x03];
        input.extend_from_slice(&frame_type.to_be_bytes());
        input.push(flags);
        input.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        input.extend_from_slice(&payload);
        let _ = decode_in_chunks(&mut FrameCodec::new(), &input, input.len());
    }

    #[test]
    fn valid_frames_round_trip(frames in prop::collection::vec(arb_frame(), 1..8), chunk in 1..200usize) {
        let mut sender = FrameCodec::new();
        let mut wire = BytesMut::new();
        for frame in &frames {
            sender.encode_frame(frame, &mut wire).unwrap();
        }
        let mut receiver = FrameCodec::new();
        let decoded = decode_in_chunks(&mut receiver, &wire, chunk).unwrap();
        prop_assert_eq!(decoded, frames);
    }
}
