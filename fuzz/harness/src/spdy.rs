//! SPDY/3.1 as the kubelet port receives it: frames ([`frames`]) and the zlib header
//! blocks inside them ([`header_blocks`]).

use bytes::BytesMut;
use vk_node_api::spdy::headers::{DICTIONARY_ID, decode_header_block, encode_header_block};
use vk_node_api::spdy::{
    Frame, FrameCodec, HeaderCompressor, HeaderDecompressor, Headers, SpdyError,
};

/// Target `spdy_frames`: a peer's byte stream, decoded by one session's [`FrameCodec`].
///
/// The first byte chooses how the stream arrives (all at once, byte by byte, or in
/// pieces of a few sizes), the rest is the stream. Checks: a partial frame consumes
/// nothing, a decoded frame consumes at least its 8-byte header, and every decoded
/// frame encodes (with a second session's codec) to bytes that decode to the same
/// frame. Decoding stops at the first error, as the session does.
pub fn frames(data: &[u8]) {
    let Some((&arrival, stream)) = data.split_first() else {
        return;
    };
    let piece = match arrival % 4 {
        0 => stream.len().max(1),
        1 => 1,
        2 => 7,
        _ => 64 + usize::from(arrival),
    };
    let mut decoder = FrameCodec::new();
    // Made on the first decoded frame: a compressor's state is large to set up.
    let mut round_trip_pair: Option<(FrameCodec, FrameCodec)> = None;
    let mut buffer = BytesMut::new();
    for chunk in stream.chunks(piece) {
        buffer.extend_from_slice(chunk);
        loop {
            let before = buffer.len();
            match decoder.decode_frame(&mut buffer) {
                Ok(Some(frame)) => {
                    assert!(buffer.len() + 8 <= before, "{frame:?} took under 8 bytes");
                    let (encoder, redecoder) = round_trip_pair
                        .get_or_insert_with(|| (FrameCodec::new(), FrameCodec::new()));
                    round_trip(&frame, encoder, redecoder);
                }
                Ok(None) => {
                    assert_eq!(buffer.len(), before, "a partial frame was consumed");
                    break;
                }
                Err(_) => return,
            }
        }
    }
}

/// Encodes `frame` with `encoder` and decodes it with `decoder` (a session pair kept
/// across frames, so header blocks share their zlib streams): the same frame must come
/// back, header blocks compared by [`grouped`] pairs.
fn round_trip(frame: &Frame, encoder: &mut FrameCodec, decoder: &mut FrameCodec) {
    let mut wire = BytesMut::new();
    if let Err(err) = encoder.encode_frame(frame, &mut wire) {
        panic!("decoded {frame:?} does not encode: {err}");
    }
    let back = match decoder.decode_frame(&mut wire) {
        Ok(Some(back)) => back,
        other => panic!("{frame:?} encoded as {wire:?}, which decodes as {other:?}"),
    };
    assert!(wire.is_empty(), "{frame:?} encoded with trailing bytes");
    assert_eq!(canonical(back), canonical(frame.clone()));
}

/// `frame` with its headers (if any) in [`grouped`] order.
fn canonical(frame: Frame) -> Frame {
    match frame {
        Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            slot,
            flags,
            headers,
        } => Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            slot,
            flags,
            headers: grouped(&headers),
        },
        Frame::SynReply {
            stream_id,
            flags,
            headers,
        } => Frame::SynReply {
            stream_id,
            flags,
            headers: grouped(&headers),
        },
        Frame::Headers {
            stream_id,
            flags,
            headers,
        } => Frame::Headers {
            stream_id,
            flags,
            headers: grouped(&headers),
        },
        other => other,
    }
}

/// The pairs of `headers` grouped by name, names in the order of their first
/// appearance: what the wire format keeps (one entry per name, its values in order).
fn grouped(headers: &Headers) -> Headers {
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in headers.iter() {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
        .iter()
        .flat_map(|name| headers.iter().filter(move |(n, _)| n == name))
        .collect()
}

/// Target `spdy_headers`: header-block decompression, the defence against zlib bombs,
/// and compression round trips.
///
/// The first byte chooses the mode:
///
/// * raw (`% 3 == 0`) or after a valid zlib header with the SPDY dictionary id
///   (`% 3 == 1`, so that the fuzzer spends its time on deflate data): the second byte
///   chooses the limit (64 B to 64 KiB), the rest is a sequence of blocks, each a
///   2-byte big-endian length and that many bytes, inflated in order by one
///   [`HeaderDecompressor`]. Checks: a block never inflates past the limit, a block
///   over it is [`SpdyError::HeaderBlockTooLarge`], and the output buffer's capacity
///   never exceeds the limit plus one byte, whatever the compression ratio.
/// * round trip (`% 3 == 2`): the rest is text, blocks separated by newlines, pairs by
///   `;`, name and value by `=` (a value `v*N` is `v` repeated N times, up to 32 KiB
///   per block). Each block is compressed by one [`HeaderCompressor`] and inflated by
///   one [`HeaderDecompressor`] limited to 16 KiB: the pairs must come back (grouped by
///   name, as the wire keeps them), or the block is over the limit and refused as
///   such; blocks the encoder refuses (empty name, NUL in a value) are skipped.
pub fn header_blocks(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => inflate_blocks(rest, false),
        1 => inflate_blocks(rest, true),
        _ => compress_round_trip(rest),
    }
}

fn inflate_blocks(data: &[u8], with_zlib_header: bool) {
    let Some((&limit_selector, mut rest)) = data.split_first() else {
        return;
    };
    let limit = 64usize << (limit_selector % 11);
    let mut decompressor = HeaderDecompressor::with_max_block_len(limit);
    let mut first = true;
    while let Some((length, tail)) = rest.split_first_chunk::<2>() {
        let length = usize::from(u16::from_be_bytes(*length)).min(tail.len());
        let (body, tail) = tail.split_at(length);
        rest = tail;
        let mut block = Vec::with_capacity(6 + body.len());
        if first && with_zlib_header {
            block.extend_from_slice(&[0x78, 0xbb]);
            block.extend_from_slice(&DICTIONARY_ID.to_be_bytes());
        }
        first = false;
        block.extend_from_slice(body);
        let mut out = Vec::new();
        let result = decompressor.decompress_block_into(&block, &mut out);
        assert!(
            out.capacity() <= limit + 1,
            "inflating {} bytes took a buffer of {} bytes with a limit of {limit}",
            block.len(),
            out.capacity()
        );
        match result {
            Ok(()) => {
                assert!(out.len() <= limit, "{} bytes inflated", out.len());
                let _ = decode_header_block(&out);
            }
            Err(SpdyError::HeaderBlockTooLarge { max }) => assert_eq!(max, limit),
            Err(_) => return,
        }
    }
}

/// The limit of the round trip's decompressor: blocks above it must be refused.
const ROUND_TRIP_LIMIT: usize = 16 << 10;

fn compress_round_trip(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut compressor = HeaderCompressor::new();
    let mut decompressor = HeaderDecompressor::with_max_block_len(ROUND_TRIP_LIMIT);
    for line in text.split('\n') {
        let mut budget = 2 * ROUND_TRIP_LIMIT;
        let headers: Headers = line
            .split(';')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name, expand(value, &mut budget))
            })
            .collect();
        let mut plain = Vec::new();
        if encode_header_block(&headers, &mut plain).is_err() {
            // Empty name or NUL in a value: the compressor refuses it the same way,
            // before touching its stream.
            let refused = compressor.compress(&headers, &mut BytesMut::new());
            assert!(
                matches!(refused, Err(SpdyError::EncodeHeaders { .. })),
                "{refused:?}"
            );
            continue;
        }
        let mut wire = BytesMut::new();
        if let Err(err) = compressor.compress(&headers, &mut wire) {
            panic!("compressing {headers:?}: {err}");
        }
        match decompressor.decompress(&wire) {
            Ok(back) => {
                assert!(
                    plain.len() <= ROUND_TRIP_LIMIT,
                    "{} bytes accepted",
                    plain.len()
                );
                assert_eq!(back, grouped(&headers));
            }
            Err(SpdyError::HeaderBlockTooLarge { .. }) if plain.len() > ROUND_TRIP_LIMIT => {
                return;
            }
            Err(err) => panic!("{headers:?} compressed to {wire:?}, which inflates with {err}"),
        }
    }
}

/// `v*N` is `v` repeated `N` times, within what is left of `budget` (in bytes);
/// anything else is itself.
fn expand(value: &str, budget: &mut usize) -> String {
    let expanded = match value.rsplit_once('*') {
        Some((unit, count)) => match count.parse::<usize>() {
            Ok(count) => unit.repeat(count.min(*budget / unit.len().max(1))),
            Err(_) => value.to_owned(),
        },
        None => value.to_owned(),
    };
    *budget = budget.saturating_sub(expanded.len());
    expanded
}
