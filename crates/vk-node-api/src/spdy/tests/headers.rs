//! Tests of [`headers`](super::super::headers): the dictionary, our zlib header, the
//! name/value block codec, blocks compressed by C zlib, and the limits.

use bytes::BytesMut;

use super::super::headers::zlib::ZLIB_FLG;
use super::super::headers::*;
use super::super::{FrameCodec, SpdyError};

/// Adler-32, written out here so the dictionary id is checked independently.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    b << 16 | a
}

/// `block` as the first block of a zlib stream primed with the dictionary and really
/// compressed (level 6, sync flush), as peers send: [`HeaderCompressor`] only stores.
/// The dictionary is primed as `deflateSetDictionary` does, by compressing it first
/// and dropping that output.
fn deflated(block: &[u8]) -> BytesMut {
    use flate2::{Compress, Compression, FlushCompress};
    fn sync(deflate: &mut Compress, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + 1024);
        let start = deflate.total_in();
        loop {
            let taken = usize::try_from(deflate.total_in() - start).unwrap();
            deflate
                .compress_vec(&input[taken..], &mut out, FlushCompress::Sync)
                .unwrap();
            if deflate.total_in() - start == input.len() as u64 && out.len() < out.capacity() {
                return out;
            }
            out.reserve(out.capacity());
        }
    }
    let mut deflate = Compress::new(Compression::default(), false);
    sync(&mut deflate, DICTIONARY);
    let mut wire = BytesMut::new();
    wire.extend_from_slice(&[0x78, ZLIB_FLG]);
    wire.extend_from_slice(&DICTIONARY_ID.to_be_bytes());
    wire.extend_from_slice(&sync(&mut deflate, block));
    wire
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().copied().collect()
}

/// `streamtype: error`, `streamtype: stdout`,
/// `port: 8080, requestid: 0, streamtype: data` and `x-multi: a\0b`, compressed in
/// that order on one zlib stream by CPython's zlib (the C library, 1.2.13):
///
/// ```python
/// c = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY)
/// for block in blocks:
///     print(c.compress(block) + c.flush(zlib.Z_SYNC_FLUSH))
/// ```
///
/// (Level 9 as Go's `spdystream` uses; each block is the SPDY/3 name/value encoding
/// with 32-bit big-endian counts and lengths.)
const PY_BLOCKS: [&[u8]; 4] = [
    &[
        0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0xa6, 0x23, 0x46, 0x70, 0x3a, 0x2b, 0x29, 0x4a,
        0x4d, 0xcc, 0x85, 0x16, 0x25, 0xac, 0xa9, 0xa0, 0x80, 0x06, 0x00, 0x00, 0x00, 0xff, 0xff,
    ],
    &[
        0xc2, 0x2a, 0x05, 0x4c, 0xcc, 0x29, 0xf9, 0xa5, 0x25, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
    ],
    &[
        0x02, 0xa5, 0x55, 0x48, 0xb1, 0x5d, 0x04, 0xce, 0x21, 0x16, 0x06, 0x16, 0x06, 0x40, 0x9a,
        0xb3, 0x08, 0x12, 0xcd, 0x99, 0xa0, 0xe4, 0xcf, 0x68, 0x80, 0xa1, 0x1b, 0x54, 0x46, 0x25,
        0x02, 0x00, 0x00, 0x00, 0xff, 0xff,
    ],
    &[
        0x82, 0x9a, 0xcb, 0x5e, 0xa1, 0x9b, 0x5b, 0x9a, 0x53, 0x92, 0x09, 0x2e, 0x88, 0x19, 0x92,
        0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
    ],
];

#[test]
fn dictionary_is_the_spdy3_one() {
    assert_eq!(DICTIONARY.len(), 1423);
    assert_eq!(&DICTIONARY[..11], b"\x00\x00\x00\x07options");
    assert_eq!(&DICTIONARY[765..771], b"200 OK");
    assert_eq!(&DICTIONARY[786..794], b"HTTP/1.1");
    assert_eq!(&DICTIONARY[829..839], b"keep-alive");
    assert_eq!(&DICTIONARY[0x100..0x108], b"\x00\x00\x00\x0econt");
    assert_eq!(&DICTIONARY[1000..1010], b"anently400");
    assert_eq!(&DICTIONARY[1417..], b"enq=0.");
    assert_eq!(adler32(DICTIONARY), DICTIONARY_ID);
}

#[test]
fn zlib_header_of_our_stream() {
    assert_eq!(ZLIB_FLG, 0xbb);
    let mut compressor = HeaderCompressor::new();
    let mut out = BytesMut::new();
    compressor.compress(&Headers::new(), &mut out).unwrap();
    assert_eq!(&out[..6], &[0x78, 0xbb, 0xe3, 0xc6, 0xa7, 0xc2]);
    // Then one stored block (not final, 4 bytes: the pair count 0), then the empty
    // stored block of a sync flush, which Go's inflater needs to hand the bytes out.
    assert_eq!(
        &out[6..],
        &[
            0x00, 0x04, 0x00, 0xfb, 0xff, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0xff, 0xff
        ]
    );
    // The next block has no zlib header.
    let mut second = BytesMut::new();
    compressor.compress(&Headers::new(), &mut second).unwrap();
    assert_ne!(&second[..2], &[0x78, 0xbb]);
}

#[test]
fn block_encoding_is_byte_exact() {
    let mut out = Vec::new();
    let h = headers(&[("Port", "8080"), ("x", "a"), ("port", "9090"), ("e", "")]);
    encode_header_block(&h, &mut out).unwrap();
    let mut want = Vec::new();
    want.extend_from_slice(&[0, 0, 0, 3]);
    want.extend_from_slice(&[0, 0, 0, 4]);
    want.extend_from_slice(b"port");
    want.extend_from_slice(&[0, 0, 0, 9]);
    want.extend_from_slice(b"8080\x009090");
    want.extend_from_slice(&[0, 0, 0, 1]);
    want.extend_from_slice(b"x");
    want.extend_from_slice(&[0, 0, 0, 1]);
    want.extend_from_slice(b"a");
    want.extend_from_slice(&[0, 0, 0, 1]);
    want.extend_from_slice(b"e");
    want.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(out, want);

    let back = decode_header_block(&out).unwrap();
    assert_eq!(
        back.as_slice(),
        headers(&[("port", "8080"), ("port", "9090"), ("x", "a"), ("e", "")]).as_slice()
    );
    assert_eq!(back.get("PORT"), Some("8080"));
    assert_eq!(back.get_all("port").collect::<Vec<_>>(), ["8080", "9090"]);
    assert_eq!(back.get("missing"), None);
}

#[test]
fn bad_blocks_are_rejected() {
    let cases: &[&[u8]] = &[
        b"",
        b"\x00\x00\x00",
        // One pair announced, nothing follows.
        b"\x00\x00\x00\x01",
        // A huge count.
        b"\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00",
        // Name length past the end.
        b"\x00\x00\x00\x01\x00\x00\x00\x09abc\x00\x00\x00\x00",
        // Empty name.
        b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01v",
        // Name not UTF-8.
        b"\x00\x00\x00\x01\x00\x00\x00\x01\xff\x00\x00\x00\x00",
        // Trailing bytes.
        b"\x00\x00\x00\x00\x01",
    ];
    for case in cases {
        let err = decode_header_block(case).unwrap_err();
        assert!(
            matches!(err, SpdyError::DecodeHeaders { .. }),
            "{case:?}: {err}"
        );
    }
    let mut out = Vec::new();
    assert!(encode_header_block(&headers(&[("", "v")]), &mut out).is_err());
    assert!(encode_header_block(&headers(&[("n", "a\0b")]), &mut out).is_err());
}

#[test]
fn uppercase_names_are_lowercased() {
    let block = b"\x00\x00\x00\x01\x00\x00\x00\x0aStreamType\x00\x00\x00\x05error";
    let h = decode_header_block(block).unwrap();
    assert_eq!(
        h.as_slice(),
        &[("streamtype".to_owned(), "error".to_owned())]
    );
}

#[test]
fn round_trip_several_blocks_on_one_stream() {
    let mut compressor = HeaderCompressor::new();
    let mut decompressor = HeaderDecompressor::new();
    let blocks = [
        headers(&[("streamtype", "error")]),
        headers(&[("streamtype", "stdin")]),
        headers(&[("streamtype", "stdout")]),
        Headers::new(),
        headers(&[("port", "8080"), ("requestid", "0"), ("streamtype", "data")]),
        headers(&[("a", "1"), ("a", "2"), ("content-type", "text/plain")]),
    ];
    let mut sizes = Vec::new();
    for h in &blocks {
        let mut wire = BytesMut::new();
        compressor.compress(h, &mut wire).unwrap();
        sizes.push(wire.len());
        assert_eq!(&decompressor.decompress(&wire).unwrap(), h);
    }
    // Stored, not compressed: the same block costs the same the second time.
    let mut again = BytesMut::new();
    compressor.compress(&blocks[4], &mut again).unwrap();
    assert_eq!(again.len(), sizes[4]);
    assert_eq!(decompressor.decompress(&again).unwrap(), blocks[4]);
}

#[test]
fn blocks_over_64_kib_are_split_into_stored_blocks() {
    let mut compressor = HeaderCompressor::new();
    let mut decompressor = HeaderDecompressor::new();
    for len in [0, 1, 65_535, 65_536, 200_000] {
        let block: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut wire = BytesMut::new();
        compressor.compress_block(&block, &mut wire).unwrap();
        assert_eq!(
            decompressor.decompress_block(&wire).unwrap(),
            block,
            "{len}"
        );
    }
}

/// What C zlib (Python's `zlib.decompressobj(zdict=DICTIONARY)`) reads from our
/// stream, recorded: `decompress(first + second)` of two blocks from a fresh
/// compressor, `streamtype: error` then `port: 8080`.
#[test]
fn our_stream_is_what_c_zlib_reads() {
    let mut compressor = HeaderCompressor::new();
    let mut wire = BytesMut::new();
    compressor
        .compress(&headers(&[("streamtype", "error")]), &mut wire)
        .unwrap();
    compressor
        .compress(&headers(&[("port", "8080")]), &mut wire)
        .unwrap();
    assert_eq!(hex(&wire), OUR_TWO_BLOCKS_HEX);
}

/// Checked with Python: `zlib.decompressobj(zdict=DICTIONARY).decompress(wire)` gives
/// both blocks, in order, and nothing is left unconsumed. Checked with Go 1.19's
/// `compress/zlib` read as kubectl's SPDY framer reads it (one reader over an
/// `io.LimitedReader` set to each frame's length, exact reads of the count, lengths
/// and strings): both frames decode and nothing is left unread; without each block's
/// trailing `000000ffff` the second frame fails with "unexpected EOF", the bytes of
/// the first having been handed out only when Go's inflater hit the end of the frame.
const OUR_TWO_BLOCKS_HEX: &str = "78bbe3c6a7c2\
    001b00e4ff000000010000000a73747265616d74797065000000056572726f72\
    000000ffff\
    001400ebff0000000100000004706f72740000000438303830\
    000000ffff";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn decodes_blocks_compressed_by_c_zlib() {
    let mut decompressor = HeaderDecompressor::new();
    let want = [
        headers(&[("streamtype", "error")]),
        headers(&[("streamtype", "stdout")]),
        headers(&[("port", "8080"), ("requestid", "0"), ("streamtype", "data")]),
        headers(&[("x-multi", "a"), ("x-multi", "b")]),
    ];
    for (wire, want) in PY_BLOCKS.iter().zip(&want) {
        assert_eq!(&decompressor.decompress(wire).unwrap(), want);
    }
}

#[test]
fn zlib_header_may_arrive_in_pieces() {
    let mut decompressor = HeaderDecompressor::new();
    let first = PY_BLOCKS[0];
    // Only part of the zlib header: nothing to inflate yet.
    assert!(
        decompressor
            .decompress_block(&first[..3])
            .unwrap()
            .is_empty()
    );
    let plain = decompressor.decompress_block(&first[3..]).unwrap();
    assert_eq!(
        decode_header_block(&plain).unwrap().get("streamtype"),
        Some("error")
    );
}

#[test]
fn stream_without_dictionary_is_accepted() {
    // `zlib.compressobj(6)` (no zdict), `streamtype: stdin`, Z_SYNC_FLUSH.
    let wire = [
        0x78, 0x9c, 0x62, 0x60, 0x60, 0x60, 0x64, 0x60, 0x60, 0xe0, 0x2a, 0x2e, 0x29, 0x4a, 0x4d,
        0xcc, 0x2d, 0xa9, 0x2c, 0x48, 0x05, 0xf2, 0x58, 0x8b, 0x4b, 0x52, 0x32, 0xf3, 0x00, 0x00,
        0x00, 0x00, 0xff, 0xff,
    ];
    let h = HeaderDecompressor::new().decompress(&wire).unwrap();
    assert_eq!(h.get("streamtype"), Some("stdin"));
}

#[test]
fn other_dictionary_is_rejected() {
    // `zlib.compressobj(6, zdict=b"not the spdy dictionary")`.
    let wire = [
        0x78, 0xbb, 0x67, 0xdb, 0x08, 0xe9, 0x62, 0x60, 0x60, 0x60, 0x04, 0x62, 0xae, 0xe2, 0x92,
        0xa2, 0xd4, 0xc4, 0xdc, 0x92, 0xca, 0x82, 0x54, 0x20, 0x8f, 0xb5, 0xb8, 0x24, 0x25, 0x33,
        0x0f, 0x00, 0x00, 0x00, 0xff, 0xff,
    ];
    let err = HeaderDecompressor::new().decompress(&wire).unwrap_err();
    assert!(matches!(err, SpdyError::InflateHeaders { .. }), "{err}");
}

#[test]
fn garbage_is_an_inflate_error() {
    for wire in [
        &b"\x12\x34"[..],
        b"\x78\x9d",
        b"\x78\xbb\xe3\xc6\xa7\xc2\xff\xff\xff\xff",
    ] {
        let err = HeaderDecompressor::new().decompress(wire).unwrap_err();
        assert!(
            matches!(err, SpdyError::InflateHeaders { .. }),
            "{wire:?}: {err}"
        );
    }
}

#[test]
fn decompression_bombs_are_bounded() {
    let wire = deflated(&vec![b'a'; 4 << 20]);
    assert!(wire.len() < 64 * 1024, "{}", wire.len());
    let err = HeaderDecompressor::new()
        .decompress_block(&wire)
        .unwrap_err();
    assert!(
        matches!(err, SpdyError::HeaderBlockTooLarge { max } if max == DEFAULT_MAX_HEADER_BLOCK_LEN),
        "{err}"
    );
    assert!(err.to_string().contains("more than 1048576 bytes"), "{err}");

    // Just under a small limit passes, just over fails.
    let mut compressor = HeaderCompressor::new();
    let mut wire = BytesMut::new();
    compressor.compress_block(&[b'b'; 1000], &mut wire).unwrap();
    assert_eq!(
        HeaderDecompressor::with_max_block_len(1000)
            .decompress_block(&wire)
            .unwrap()
            .len(),
        1000
    );
    assert!(matches!(
        HeaderDecompressor::with_max_block_len(999).decompress_block(&wire),
        Err(SpdyError::HeaderBlockTooLarge { max: 999 })
    ));
}

/// Deflate's bit packing (RFC 1951 §3.1.1): fields least significant bit first,
/// Huffman codes most significant bit first.
#[derive(Default)]
struct DeflateBits {
    out: Vec<u8>,
    acc: u32,
    len: u32,
}

impl DeflateBits {
    fn field(&mut self, value: u32, bits: u32) {
        self.acc |= value << self.len;
        self.len += bits;
        while self.len >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.len -= 8;
        }
    }

    fn code(&mut self, code: u32, bits: u32) {
        self.field(code.reverse_bits() >> (32 - bits), bits);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A deflate bomb written by hand, independent of any compressor: one fixed-Huffman
/// block holding the literal `a` and then `matches` copies of "length 258, distance 1"
/// (13 bits each), so it inflates to `258 * matches + 1` bytes of `a`, ~160 times its
/// size. It is never terminated, as a peer would leave it to keep the inflater busy.
fn deflate_bomb(matches: usize) -> Vec<u8> {
    let mut bits = DeflateBits::default();
    bits.field(0, 1); // BFINAL: not the last block
    bits.field(1, 2); // BTYPE 01: fixed Huffman codes
    bits.code(0x30 + u32::from(b'a'), 8); // literal 0..=143: 0x30 + value, 8 bits
    for _ in 0..matches {
        bits.code(0xc0 + (285 - 280), 8); // length code 285 (258 bytes): 8 bits
        bits.code(0, 5); // distance code 0 (distance 1): 5 bits
    }
    bits.finish()
}

#[test]
fn a_real_bomb_in_a_syn_stream_frame_is_refused_with_bounded_memory() {
    // 40,000 matches: a 65 KB header block that inflates to 10 MB.
    let bomb = deflate_bomb(40_000);
    let mut block = vec![0x78, ZLIB_FLG];
    block.extend_from_slice(&DICTIONARY_ID.to_be_bytes());
    block.extend_from_slice(&bomb);
    assert!(block.len() < 66_000, "{}", block.len());

    // It really is a bomb: with a limit above its size it inflates to all 10 MB.
    let inflated = HeaderDecompressor::with_max_block_len(16 << 20)
        .decompress_block(&block)
        .unwrap();
    assert_eq!(inflated.len(), 258 * 40_000 + 1);
    assert!(inflated.iter().all(|&b| b == b'a'));

    // As the header block of a SYN_STREAM, the frame decoder refuses it by name.
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&[0x80, 0x03, 0x00, 0x01]); // control, version 3, SYN_STREAM
    let len = u32::try_from(10 + block.len()).unwrap();
    frame.extend_from_slice(&len.to_be_bytes()); // flags 0, 24-bit length
    frame.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]); // stream 1, no association
    frame.extend_from_slice(&block);
    let err = FrameCodec::new().decode_frame(&mut frame).unwrap_err();
    assert!(
        matches!(err, SpdyError::HeaderBlockTooLarge { max } if max == DEFAULT_MAX_HEADER_BLOCK_LEN),
        "{err}"
    );

    // And the memory it took is bounded by the limit, not by the bomb.
    let mut out = Vec::new();
    let err = HeaderDecompressor::new()
        .decompress_block_into(&block, &mut out)
        .unwrap_err();
    assert!(
        matches!(err, SpdyError::HeaderBlockTooLarge { .. }),
        "{err}"
    );
    assert!(
        out.capacity() <= DEFAULT_MAX_HEADER_BLOCK_LEN + 1,
        "{}",
        out.capacity()
    );
    // The same holds for a small limit, and for output appended after existing data.
    let mut out = b"kept".to_vec();
    out.shrink_to_fit();
    let err = HeaderDecompressor::with_max_block_len(1000)
        .decompress_block_into(&block, &mut out)
        .unwrap_err();
    assert!(
        matches!(err, SpdyError::HeaderBlockTooLarge { max: 1000 }),
        "{err}"
    );
    assert!(out.capacity() <= 4 + 1001, "{}", out.capacity());
    assert!(out.starts_with(b"kept"));
}

#[test]
fn a_block_that_fills_the_inflate_window_exactly_is_complete() {
    // The first inflate call writes into a window of 4 × the compressed size + 256
    // bytes. A block of exactly that size fills it and takes all the input; the
    // decompressor cannot tell whether more is pending, makes one more call that
    // inflates nothing, and must then accept the block (not report a lack of
    // progress, nor wait for input). Runs of a letter after a prefix give such blocks
    // for some run length.
    let mut found = 0;
    for prefix in ["", "x", "streamtype"] {
        for run in 200..1200 {
            let block = format!("{prefix}{}", "a".repeat(run)).into_bytes();
            let wire = deflated(&block);
            let compressed = wire.len() - 6; // after the zlib header and dictionary id
            if block.len() != compressed * 4 + 256 {
                continue;
            }
            found += 1;
            let inflated = HeaderDecompressor::new().decompress_block(&wire);
            assert_eq!(inflated.unwrap(), block, "run of {run} after {prefix:?}");
        }
    }
    assert!(found > 0, "no candidate fills the window exactly");
}

#[test]
fn limits_up_to_usize_max_are_accepted() {
    let mut wire = BytesMut::new();
    HeaderCompressor::new()
        .compress(&headers(&[("streamtype", "data")]), &mut wire)
        .unwrap();
    let h = HeaderDecompressor::with_max_block_len(usize::MAX)
        .decompress(&wire)
        .unwrap();
    assert_eq!(h.get("streamtype"), Some("data"));
}

#[test]
fn headers_collections() {
    let h: Headers = vec![("A".to_owned(), "1".to_owned())].into();
    assert_eq!(h.as_slice(), &[("a".to_owned(), "1".to_owned())]);
    assert_eq!(h.len(), 1);
    assert!(!h.is_empty());
    assert_eq!(h.iter().collect::<Vec<_>>(), [("a", "1")]);
    assert_eq!(h.clone().into_vec(), h.into_iter().collect::<Vec<_>>());
}
