//! Name/value header blocks and their compression.
//!
//! SYN_STREAM, SYN_REPLY and HEADERS frames carry a *name/value header block*: a
//! 32-bit big-endian number of pairs, then for each pair a 32-bit length and the
//! name, a 32-bit length and the value. Names are lowercase; a name appears once, and
//! several values for it are joined with a NUL byte (`\0`).
//!
//! The block is compressed with zlib. Each direction of a session is one endless zlib
//! stream, primed with the SPDY/3 [`DICTIONARY`] and flushed with `Z_SYNC_FLUSH` at the
//! end of every block, so a block can reference text of the blocks sent before it. A
//! session therefore owns exactly one [`HeaderCompressor`] (for what it sends) and one
//! [`HeaderDecompressor`] (for what it receives), and must feed them every header
//! block in order, including those of frames it then ignores.
//!
//! # Preset dictionary without `deflateSetDictionary`
//!
//! The crate builds `flate2` with its pure-Rust backend, which has no
//! `set_dictionary`. The dictionary is applied by hand on raw deflate streams, which is
//! equivalent to what zlib does:
//!
//! * compressing: the compressor first compresses the dictionary itself and sync-flushes
//!   (the output is thrown away; only the sliding window and match state are kept). What
//!   it produces afterwards starts on a block boundary and may refer back into the
//!   dictionary, exactly like a stream from `deflateSetDictionary`. The zlib header
//!   (with `FDICT` set and the dictionary's Adler-32) is written in front of the first
//!   block by hand. The stream is never finished, so no Adler-32 trailer is needed.
//! * decompressing: the raw inflater is first fed a *stored* (uncompressed) deflate
//!   block holding the dictionary, whose output is thrown away; this puts the
//!   dictionary in the window. The peer's zlib header is parsed and checked by hand and
//!   the rest of its stream is inflated as is.

use bytes::{BufMut, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::SpdyError;

/// The SPDY/3 zlib dictionary for header blocks (SPDY/3 §2.6.10.1), 1423 bytes.
///
/// A protocol constant: both peers prime their zlib streams with it.
pub const DICTIONARY: &[u8; 1423] = b"\
    \x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\
    \x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05trace\
    \x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\
    \x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\
    \x00\x00\x00\x0daccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\
    \x00\x00\x00\x0dauthorization\x00\x00\x00\x0dcache-control\
    \x00\x00\x00\x0aconnection\x00\x00\x00\x0ccontent-base\
    \x00\x00\x00\x10content-encoding\x00\x00\x00\x10content-language\
    \x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-location\
    \x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range\
    \x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\
    \x00\x00\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00\x04from\
    \x00\x00\x00\x04host\x00\x00\x00\x08if-match\
    \x00\x00\x00\x11if-modified-since\x00\x00\x00\x0dif-none-match\
    \x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since\
    \x00\x00\x00\x0dlast-modified\x00\x00\x00\x08location\
    \x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\
    \x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization\
    \x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\
    \x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer\
    \x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgrade\
    \x00\x00\x00\x0auser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\
    \x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\
    \x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\
    \x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\
    \x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\x0aset-cookie\
    \x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin\
    1001012012022052063003023033043053063074024054064074084094104114\
    12413414415416417502504505203 Non-Authoritative Information204 N\
    o Content301 Moved Permanently400 Bad Request401 Unauthorized403 F\
    orbidden404 Not Found500 Internal Server Error501 Not Implemente\
    d503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct N\
    ov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,te\
    xt/html,image/png,image/jpg,image/gif,application/xml,applicatio\
    n/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip\
    ,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/// Adler-32 checksum of [`DICTIONARY`]: the `DICTID` field of a zlib stream primed
/// with it.
pub const DICTIONARY_ID: u32 = 0xe3c6_a7c2;

/// Default bound on the size of one decompressed header block (1 MiB), against
/// decompression bombs.
pub const DEFAULT_MAX_HEADER_BLOCK_LEN: usize = 1 << 20;

/// zlib `CMF` byte: deflate with a 32 KiB window.
const ZLIB_CMF: u8 = 0x78;
/// zlib `FLG` bit telling that a preset dictionary is used (`FDICT`).
const ZLIB_FDICT: u8 = 0x20;
/// zlib `FLG` byte of our stream: default compression level (`FLEVEL` 2), `FDICT`, and
/// the check bits that make `CMF * 256 + FLG` a multiple of 31.
const ZLIB_FLG: u8 = {
    let flg = 0x80 | ZLIB_FDICT;
    let rem = ((ZLIB_CMF as u16) << 8 | flg as u16) % 31;
    if rem == 0 {
        flg
    } else {
        flg + (31 - rem as u8)
    }
};

/// The header pairs of a stream, in the order they were received.
///
/// Names are stored lowercase. A header with several values (NUL-separated on the
/// wire) appears as several pairs with the same name. [`Headers::get`] compares names
/// case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair; the name is lowercased.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let mut name = name.into();
        name.make_ascii_lowercase();
        self.entries.push((name, value.into()));
    }

    /// The first value of header `name` (any case), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name` (any case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of pairs (a header with two values counts twice).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pairs as a slice.
    pub fn as_slice(&self) -> &[(String, String)] {
        &self.entries
    }

    /// The pairs as a vector.
    pub fn into_vec(self) -> Vec<(String, String)> {
        self.entries
    }
}

impl From<Vec<(String, String)>> for Headers {
    /// Takes the pairs as they are, lowercasing the names.
    fn from(mut entries: Vec<(String, String)>) -> Self {
        for (name, _) in &mut entries {
            name.make_ascii_lowercase();
        }
        Self { entries }
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in iter {
            headers.append(name, value);
        }
        headers
    }
}

impl IntoIterator for Headers {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// Serializes `headers` as an uncompressed SPDY/3 name/value block, appending to `out`.
///
/// Pairs with the same name are merged into one entry with NUL-separated values, in
/// the order of the name's first appearance. Fails on an empty name, a value
/// containing NUL (it would read back as two values), or lengths beyond 32 bits.
pub fn encode_header_block(headers: &Headers, out: &mut Vec<u8>) -> Result<(), SpdyError> {
    let mut merged: Vec<(&str, Vec<&str>)> = Vec::new();
    for (name, value) in headers.iter() {
        if name.is_empty() {
            return Err(encode_error("empty header name"));
        }
        if value.contains('\0') {
            return Err(encode_error(format!(
                "value of header {name:?} contains NUL"
            )));
        }
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => merged.push((name, vec![value])),
        }
    }
    put_len(out, merged.len())?;
    for (name, values) in merged {
        put_len(out, name.len())?;
        out.extend_from_slice(name.as_bytes());
        let value_len = values.iter().map(|v| v.len()).sum::<usize>() + values.len() - 1;
        put_len(out, value_len)?;
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.push(0);
            }
            out.extend_from_slice(value.as_bytes());
        }
    }
    Ok(())
}

/// Parses an uncompressed SPDY/3 name/value block.
///
/// Lenient where that is harmless: uppercase names are lowercased and a repeated
/// name adds values. Strict where it protects the parser: every length must fit in
/// the block, names must be non-empty, names and values must be UTF-8, and no bytes
/// may follow the last pair.
pub fn decode_header_block(block: &[u8]) -> Result<Headers, SpdyError> {
    let mut rest = block;
    let count = take_u32(&mut rest)?;
    // Each pair takes at least 8 bytes, so a count the block cannot hold is rejected
    // before it drives an allocation.
    if u64::from(count) * 8 > rest.len() as u64 {
        return Err(decode_error(format!(
            "{count} pairs announced in {} bytes",
            rest.len()
        )));
    }
    let mut headers = Headers {
        entries: Vec::with_capacity((count as usize).min(32)),
    };
    for _ in 0..count {
        let name = take_bytes(&mut rest)?;
        let value = take_bytes(&mut rest)?;
        if name.is_empty() {
            return Err(decode_error("empty header name"));
        }
        let mut name = std::str::from_utf8(name)
            .map_err(|_| decode_error("header name is not UTF-8"))?
            .to_owned();
        name.make_ascii_lowercase();
        let value = std::str::from_utf8(value)
            .map_err(|_| decode_error(format!("value of header {name:?} is not UTF-8")))?;
        for part in value.split('\0') {
            headers.entries.push((name.clone(), part.to_owned()));
        }
    }
    if !rest.is_empty() {
        return Err(decode_error(format!(
            "{} bytes after the last header",
            rest.len()
        )));
    }
    Ok(headers)
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), SpdyError> {
    let len = u32::try_from(len).map_err(|_| encode_error("header longer than 4 GiB"))?;
    out.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, SpdyError> {
    let Some((word, tail)) = rest.split_first_chunk::<4>() else {
        return Err(decode_error("truncated header block"));
    };
    *rest = tail;
    Ok(u32::from_be_bytes(*word))
}

fn take_bytes<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], SpdyError> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(decode_error(format!(
            "header field of {len} bytes in the {} bytes left",
            rest.len()
        )));
    }
    let (field, tail) = rest.split_at(len);
    *rest = tail;
    Ok(field)
}

fn encode_error(reason: impl Into<String>) -> SpdyError {
    SpdyError::EncodeHeaders {
        reason: reason.into(),
    }
}

fn decode_error(reason: impl Into<String>) -> SpdyError {
    SpdyError::DecodeHeaders {
        reason: reason.into(),
    }
}

fn deflate_error(reason: impl Into<String>) -> SpdyError {
    SpdyError::DeflateHeaders {
        reason: reason.into(),
    }
}

fn inflate_error(reason: impl Into<String>) -> SpdyError {
    SpdyError::InflateHeaders {
        reason: reason.into(),
    }
}

/// The compressing side of a session's header zlib stream.
///
/// Every header block the session sends goes through the same compressor, in the
/// order the frames are written. After an error the stream is unusable (the peer's
/// decompressor would no longer match) and the session must end.
pub struct HeaderCompressor {
    deflate: Compress,
    started: bool,
    plain: Vec<u8>,
    scratch: Vec<u8>,
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HeaderCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderCompressor")
            .field("started", &self.started)
            .field("total_in", &self.deflate.total_in())
            .field("total_out", &self.deflate.total_out())
            .finish()
    }
}

impl HeaderCompressor {
    /// A fresh compressor; the dictionary is loaded on first use.
    pub fn new() -> Self {
        Self {
            deflate: Compress::new(Compression::default(), false),
            started: false,
            plain: Vec::new(),
            scratch: Vec::new(),
        }
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
            self.scratch.clear();
            deflate_sync(&mut self.deflate, DICTIONARY, &mut self.scratch)?;
            dst.put_u8(ZLIB_CMF);
            dst.put_u8(ZLIB_FLG);
            dst.put_u32(DICTIONARY_ID);
            self.started = true;
        }
        self.scratch.clear();
        deflate_sync(&mut self.deflate, block, &mut self.scratch)?;
        dst.put_slice(&self.scratch);
        Ok(())
    }
}

/// Compresses all of `input` and sync-flushes, appending to `out`.
fn deflate_sync(
    deflate: &mut Compress,
    mut input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SpdyError> {
    loop {
        out.reserve(input.len() + 64);
        let before = deflate.total_in();
        deflate
            .compress_vec(input, out, FlushCompress::Sync)
            .map_err(|e| deflate_error(e.to_string()))?;
        let consumed = usize::try_from(deflate.total_in() - before)
            .map_err(|_| deflate_error("input counter overflow"))?;
        input = input.get(consumed..).unwrap_or_default();
        // Done once all input is taken and the flush did not run out of room.
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(());
        }
    }
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
        if !self.primed {
            self.prime()?;
        }
        let mut input = compressed;
        if self.phase == InflatePhase::Header {
            input = self.read_zlib_header(input)?;
        }
        let mut out = Vec::new();
        if self.phase == InflatePhase::Header {
            return Ok(out);
        }
        loop {
            let room = (self.max_block_len + 1).saturating_sub(out.len());
            if room == 0 {
                return Err(self.too_large());
            }
            let chunk = (input.len() * 4 + 256).max(out.len()).min(room);
            out.reserve_exact(chunk);
            let (in_before, out_before) = (self.inflate.total_in(), out.len());
            let status = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
                .map_err(|e| inflate_error(e.to_string()))?;
            let consumed = usize::try_from(self.inflate.total_in() - in_before)
                .map_err(|_| inflate_error("input counter overflow"))?;
            input = input.get(consumed..).unwrap_or_default();
            if status == Status::StreamEnd {
                return Err(inflate_error("the peer ended its zlib stream"));
            }
            if out.len() > self.max_block_len {
                return Err(self.too_large());
            }
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            if consumed == 0 && out.len() == out_before {
                return Err(inflate_error("inflate made no progress"));
            }
        }
    }

    fn too_large(&self) -> SpdyError {
        inflate_error(format!(
            "header block inflates to more than {} bytes",
            self.max_block_len
        ))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic on unexpected errors.
mod tests {
    use super::*;

    /// Adler-32, written out here so the dictionary id is checked independently.
    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        b << 16 | a
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
            0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0xa6, 0x23, 0x46, 0x70, 0x3a, 0x2b, 0x29,
            0x4a, 0x4d, 0xcc, 0x85, 0x16, 0x25, 0xac, 0xa9, 0xa0, 0x80, 0x06, 0x00, 0x00, 0x00,
            0xff, 0xff,
        ],
        &[
            0xc2, 0x2a, 0x05, 0x4c, 0xcc, 0x29, 0xf9, 0xa5, 0x25, 0x00, 0x00, 0x00, 0x00, 0xff,
            0xff,
        ],
        &[
            0x02, 0xa5, 0x55, 0x48, 0xb1, 0x5d, 0x04, 0xce, 0x21, 0x16, 0x06, 0x16, 0x06, 0x40,
            0x9a, 0xb3, 0x08, 0x12, 0xcd, 0x99, 0xa0, 0xe4, 0xcf, 0x68, 0x80, 0xa1, 0x1b, 0x54,
            0x46, 0x25, 0x02, 0x00, 0x00, 0x00, 0xff, 0xff,
        ],
        &[
            0x82, 0x9a, 0xcb, 0x5e, 0xa1, 0x9b, 0x5b, 0x9a, 0x53, 0x92, 0x09, 0x2e, 0x88, 0x19,
            0x92, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
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
        // A sync flush ends every block with an empty stored block.
        assert!(out.ends_with(&[0x00, 0x00, 0xff, 0xff]));
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
        // Shared state: the repeated block compresses better the second time.
        let mut again = BytesMut::new();
        compressor.compress(&blocks[4], &mut again).unwrap();
        assert!(again.len() < sizes[4], "{} vs {}", again.len(), sizes[4]);
        assert_eq!(decompressor.decompress(&again).unwrap(), blocks[4]);
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
            0x78, 0x9c, 0x62, 0x60, 0x60, 0x60, 0x64, 0x60, 0x60, 0xe0, 0x2a, 0x2e, 0x29, 0x4a,
            0x4d, 0xcc, 0x2d, 0xa9, 0x2c, 0x48, 0x05, 0xf2, 0x58, 0x8b, 0x4b, 0x52, 0x32, 0xf3,
            0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
        ];
        let h = HeaderDecompressor::new().decompress(&wire).unwrap();
        assert_eq!(h.get("streamtype"), Some("stdin"));
    }

    #[test]
    fn other_dictionary_is_rejected() {
        // `zlib.compressobj(6, zdict=b"not the spdy dictionary")`.
        let wire = [
            0x78, 0xbb, 0x67, 0xdb, 0x08, 0xe9, 0x62, 0x60, 0x60, 0x60, 0x04, 0x62, 0xae, 0xe2,
            0x92, 0xa2, 0xd4, 0xc4, 0xdc, 0x92, 0xca, 0x82, 0x54, 0x20, 0x8f, 0xb5, 0xb8, 0x24,
            0x25, 0x33, 0x0f, 0x00, 0x00, 0x00, 0xff, 0xff,
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
        let mut compressor = HeaderCompressor::new();
        let mut wire = BytesMut::new();
        compressor
            .compress_block(&vec![b'a'; 4 << 20], &mut wire)
            .unwrap();
        assert!(wire.len() < 64 * 1024, "{}", wire.len());
        let err = HeaderDecompressor::new()
            .decompress_block(&wire)
            .unwrap_err();
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
        assert!(
            HeaderDecompressor::with_max_block_len(999)
                .decompress_block(&wire)
                .is_err()
        );
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
}
