//! The zlib streams that carry header blocks: [`HeaderCompressor`] for what a session
//! sends, [`HeaderDecompressor`] for what it receives. Both apply the SPDY/3
//! dictionary by hand, as the docs of [`headers`](super) explain.

use bytes::{BufMut, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};

use super::super::SpdyError;
use super::Headers;
use super::block::{decode_header_block, encode_header_block};
use super::dictionary::{DICTIONARY, DICTIONARY_ID};

/// Default bound on the size of one decompressed header block (1 MiB), against
/// decompression bombs.
pub const DEFAULT_MAX_HEADER_BLOCK_LEN: usize = 1 << 20;

/// zlib `CMF` byte: deflate with a 32 KiB window.
const ZLIB_CMF: u8 = 0x78;
/// zlib `FLG` bit telling that a preset dictionary is used (`FDICT`).
const ZLIB_FDICT: u8 = 0x20;
/// zlib `FLG` byte of our stream: default compression level (`FLEVEL` 2), `FDICT`, and
/// the check bits that make `CMF * 256 + FLG` a multiple of 31.
pub(crate) const ZLIB_FLG: u8 = {
    let flg = 0x80 | ZLIB_FDICT;
    let rem = ((ZLIB_CMF as u16) << 8 | flg as u16) % 31;
    if rem == 0 {
        flg
    } else {
        flg + (31 - rem as u8)
    }
};

fn inflate_error(reason: impl Into<String>) -> SpdyError {
    SpdyError::InflateHeaders {
        reason: reason.into(),
    }
}

/// The largest payload of one stored deflate block.
const MAX_STORED_BLOCK: usize = u16::MAX as usize;

/// The compressing side of a session's header zlib stream.
///
/// Every header block the session sends goes through the same compressor, in the
/// order the frames are written.
///
/// # Stored blocks, not compression
///
/// The stream is a valid zlib stream (header with `FDICT` and the dictionary's id,
/// then deflate data), but its deflate data are *stored* blocks: the header block's
/// bytes, uncompressed, behind a 5-byte block header (`BFINAL` 0, `BTYPE` 00, `LEN`,
/// `NLEN`). Each header block then ends, as a zlib sync flush ends, with an *empty*
/// stored block (`00 00 00 ff ff`): Go's `compress/flate` (kubectl's SPDY framer)
/// hands out a stored block's bytes only when the next block starts, and the empty
/// one is what makes it deliver them within the frame. Without it kubectl waits for
/// the reply's headers forever.
///
/// Why: a deflate compressor keeps a 32 KiB window, hash chains and a code buffer,
/// about 240 KB per session, zeroed at creation, to shrink the two or three header
/// blocks a streaming session sends by a few hundred bytes. Idle exec and
/// port-forward sessions are what a node holds many of, so their memory matters
/// more than those bytes. The receiving side still inflates the peer's real
/// compression ([`HeaderDecompressor`]).
///
/// ```
/// use bytes::BytesMut;
/// use vk_node_api::spdy::{HeaderCompressor, HeaderDecompressor, Headers};
///
/// let mut headers = Headers::new();
/// headers.append("streamtype", "data");
/// let mut wire = BytesMut::new();
/// HeaderCompressor::new().compress(&headers, &mut wire)?;
/// assert_eq!(HeaderDecompressor::new().decompress(&wire)?, headers);
/// # Ok::<(), vk_node_api::spdy::SpdyError>(())
/// ```
#[derive(Debug, Default)]
pub struct HeaderCompressor {
    started: bool,
    plain: Vec<u8>,
}

impl HeaderCompressor {
    /// A fresh compressor; the zlib header goes in front of the first block.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serializes and compresses `headers`, appending the compressed block to `dst`.
    pub fn compress(&mut self, headers: &Headers, dst: &mut BytesMut) -> Result<(), SpdyError> {
        let mut plain = std::mem::take(&mut self.plain);
        plain.clear();
        let result = encode_header_block(headers, &mut plain)
            .and_then(|()| self.compress_block(&plain, dst));
        self.plain = plain;
        result
    }

    /// Compresses an already serialized name/value block, appending to `dst`.
    ///
    /// The first call also writes the zlib header (with the dictionary's id).
    pub fn compress_block(&mut self, block: &[u8], dst: &mut BytesMut) -> Result<(), SpdyError> {
        if !self.started {
            dst.put_u8(ZLIB_CMF);
            dst.put_u8(ZLIB_FLG);
            dst.put_u32(DICTIONARY_ID);
            self.started = true;
        }
        dst.reserve(block.len() + 5 * (block.len().div_ceil(MAX_STORED_BLOCK) + 1));
        for chunk in block.chunks(MAX_STORED_BLOCK) {
            put_stored_block(dst, chunk);
        }
        // The sync-flush marker (see the type's docs).
        put_stored_block(dst, &[]);
        Ok(())
    }
}

/// Appends one non-final stored deflate block holding `data` (at most 65,535 bytes).
fn put_stored_block(dst: &mut BytesMut, data: &[u8]) {
    // Stored blocks only: the stream is always byte-aligned here, so the 3 header
    // bits (`BFINAL` 0, `BTYPE` 00) and their padding make one zero byte.
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    dst.put_u8(0);
    dst.put_u16_le(len);
    dst.put_u16_le(!len);
    dst.put_slice(&data[..usize::from(len)]);
}

/// Where the decompressor is in the peer's zlib stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InflatePhase {
    /// Reading the 2-byte zlib header, then the 4-byte dictionary id if `FDICT` is set.
    Header,
    /// Inflating deflate data.
    Body,
}

/// The decompressing side of a session's header zlib stream.
///
/// Every header block the session receives must go through the same decompressor, in
/// order. After an error the stream is unusable and the session must end.
pub struct HeaderDecompressor {
    inflate: Decompress,
    primed: bool,
    phase: InflatePhase,
    header: [u8; 6],
    header_len: usize,
    max_block_len: usize,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HeaderDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDecompressor")
            .field("phase", &self.phase)
            .field("total_in", &self.inflate.total_in())
            .field("total_out", &self.inflate.total_out())
            .field("max_block_len", &self.max_block_len)
            .finish()
    }
}

impl HeaderDecompressor {
    /// A fresh decompressor bounding blocks to [`DEFAULT_MAX_HEADER_BLOCK_LEN`].
    pub fn new() -> Self {
        Self::with_max_block_len(DEFAULT_MAX_HEADER_BLOCK_LEN)
    }

    /// A fresh decompressor refusing blocks that inflate to more than `max` bytes.
    pub fn with_max_block_len(max: usize) -> Self {
        Self {
            inflate: Decompress::new(false),
            primed: false,
            phase: InflatePhase::Header,
            header: [0; 6],
            header_len: 0,
            max_block_len: max,
        }
    }

    /// Decompresses and parses one header block.
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let plain = self.decompress_block(compressed)?;
        decode_header_block(&plain)
    }

    /// Decompresses one header block without parsing it.
    pub fn decompress_block(&mut self, compressed: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::new();
        self.decompress_block_into(compressed, &mut out)?;
        Ok(out)
    }

    /// Decompresses one header block without parsing it, appending it to `out`.
    ///
    /// Memory is bounded by the limit, whatever the compression ratio: inflation stops
    /// one byte past the limit with [`SpdyError::HeaderBlockTooLarge`], and `out` never
    /// grows beyond its length on entry plus the limit plus that byte (its capacity
    /// included). On error `out` holds part of the block and the decompressor is
    /// unusable.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use vk_node_api::spdy::{HeaderCompressor, HeaderDecompressor, SpdyError};
    ///
    /// let mut wire = BytesMut::new();
    /// HeaderCompressor::new().compress_block(&[0; 100_000], &mut wire)?;
    /// let mut out = Vec::new();
    /// let err = HeaderDecompressor::with_max_block_len(4096)
    ///     .decompress_block_into(&wire, &mut out)
    ///     .unwrap_err();
    /// assert!(matches!(err, SpdyError::HeaderBlockTooLarge { max: 4096 }));
    /// assert!(out.capacity() <= 4097);
    /// # Ok::<(), SpdyError>(())
    /// ```
    pub fn decompress_block_into(
        &mut self,
        compressed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SpdyError> {
        if !self.primed {
            self.prime()?;
        }
        let mut input = compressed;
        if self.phase == InflatePhase::Header {
            input = self.read_zlib_header(input)?;
            if self.phase == InflatePhase::Header {
                return Ok(());
            }
        }
        let start = out.len();
        loop {
            let filled = out.len();
            // One byte more than the limit may be inflated: that is how a block over
            // the limit is told from one exactly at it.
            let room = (self.max_block_len.saturating_add(1)).saturating_sub(filled - start);
            if room == 0 {
                return Err(self.too_large());
            }
            // Grow geometrically from a guess based on the input, never past the room:
            // inflation writes into this window only.
            let window = (input.len() * 4 + 256).max(filled - start).min(room);
            out.reserve_exact(window);
            out.resize(filled + window, 0);
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(input, &mut out[filled..], FlushDecompress::Sync);
            let consumed = usize::try_from(self.inflate.total_in() - in_before)
                .map_err(|_| inflate_error("input counter overflow"))?;
            let inflated = usize::try_from(self.inflate.total_out() - out_before)
                .map_err(|_| inflate_error("output counter overflow"))?;
            out.truncate(filled + inflated.min(window));
            let status = status.map_err(|e| inflate_error(e.to_string()))?;
            input = input.get(consumed..).unwrap_or_default();
            if status == Status::StreamEnd {
                return Err(inflate_error("the peer ended its zlib stream"));
            }
            if out.len() - start > self.max_block_len {
                return Err(self.too_large());
            }
            // All input taken and the window not filled: nothing more is pending, the
            // block is complete. (A filled window means another turn, which ends here
            // with nothing inflated if the block happened to fill it exactly.)
            if input.is_empty() && inflated < window {
                return Ok(());
            }
            if consumed == 0 && inflated == 0 {
                return Err(inflate_error("inflate made no progress"));
            }
        }
    }

    fn too_large(&self) -> SpdyError {
        SpdyError::HeaderBlockTooLarge {
            max: self.max_block_len,
        }
    }

    /// Puts the dictionary in the inflater's window by inflating a stored block of it.
    fn prime(&mut self) -> Result<(), SpdyError> {
        let len = u16::try_from(DICTIONARY.len()).map_err(|_| inflate_error("dictionary size"))?;
        let mut stored = Vec::with_capacity(5 + DICTIONARY.len());
        // Block header bits: BFINAL = 0, BTYPE = 00 (stored), then padding to the byte.
        stored.push(0);
        stored.extend_from_slice(&len.to_le_bytes());
        stored.extend_from_slice(&(!len).to_le_bytes());
        stored.extend_from_slice(DICTIONARY);
        let mut sink = Vec::with_capacity(DICTIONARY.len() + 64);
        self.inflate
            .decompress_vec(&stored, &mut sink, FlushDecompress::Sync)
            .map_err(|e| inflate_error(format!("loading the dictionary: {e}")))?;
        if self.inflate.total_in() != stored.len() as u64 || sink.as_slice() != DICTIONARY {
            return Err(inflate_error("loading the dictionary: short inflate"));
        }
        self.primed = true;
        Ok(())
    }

    /// Consumes the zlib header from the front of `input`; returns what follows it.
    fn read_zlib_header<'a>(&mut self, mut input: &'a [u8]) -> Result<&'a [u8], SpdyError> {
        loop {
            let needed = if self.header_len >= 2 && self.header[1] & ZLIB_FDICT != 0 {
                6
            } else {
                2
            };
            if self.header_len == needed {
                break;
            }
            let Some((&byte, tail)) = input.split_first() else {
                return Ok(input);
            };
            self.header[self.header_len] = byte;
            self.header_len += 1;
            input = tail;
            if self.header_len == 2 {
                let [cmf, flg, ..] = self.header;
                if cmf & 0x0f != 8 || cmf >> 4 > 7 {
                    return Err(inflate_error(format!(
                        "not a deflate zlib stream (CMF {cmf:#04x})"
                    )));
                }
                if (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0 {
                    return Err(inflate_error("bad zlib header check bits"));
                }
            }
        }
        if self.header_len == 6 {
            let [_, _, a, b, c, d] = self.header;
            let id = u32::from_be_bytes([a, b, c, d]);
            if id != DICTIONARY_ID {
                return Err(inflate_error(format!(
                    "zlib stream wants dictionary {id:#010x}, not the SPDY/3 one"
                )));
            }
        }
        // Without FDICT the peer does not use the dictionary; having it in the window
        // is harmless since its stream never refers to it.
        self.phase = InflatePhase::Body;
        Ok(input)
    }
}
