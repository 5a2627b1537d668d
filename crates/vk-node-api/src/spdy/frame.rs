//! SPDY/3.1 frames: their in-memory form, their wire encoding, and a codec.
//!
//! Every frame starts with 8 bytes. A *control frame* has the high bit of the first
//! byte set:
//!
//! ```text
//! +----------------------------------+
//! |1|  version (15)  |   type (16)   |
//! +----------------------------------+
//! |  flags (8)  |   length (24)      |
//! +----------------------------------+
//! |           data (length)          |
//! ```
//!
//! A *data frame* has it clear:
//!
//! ```text
//! +----------------------------------+
//! |0|        stream id (31)          |
//! +----------------------------------+
//! |  flags (8)  |   length (24)      |
//! +----------------------------------+
//! |           data (length)          |
//! ```
//!
//! Stream ids are 31 bits; where they appear inside control frames the high bit is
//! reserved, ignored when reading and written as zero.
//!
//! SYN_STREAM, SYN_REPLY and HEADERS carry a compressed header block (see
//! [`super::headers`]); encoding and decoding them needs the session's
//! [`HeaderCompressor`] or [`HeaderDecompressor`], which [`FrameCodec`] holds.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::SpdyError;
use super::headers::{HeaderCompressor, HeaderDecompressor, Headers};

/// The protocol version this module speaks (SPDY/3 and 3.1 both use 3 on the wire).
pub const VERSION: u16 = 3;
/// The control bit: high bit of the first 32-bit word of a control frame.
pub const CONTROL_BIT: u32 = 0x8000_0000;
/// Size of the common frame header.
pub const FRAME_HEADER_LEN: usize = 8;
/// Largest payload the 24-bit length field can describe.
pub const MAX_FRAME_PAYLOAD: usize = 0x00ff_ffff;
/// Default limit on the payload of a received frame: the wire maximum (16 MiB - 1).
pub const DEFAULT_MAX_FRAME_LEN: usize = MAX_FRAME_PAYLOAD;
/// Mask of a 31-bit stream id (the high bit is reserved).
pub const STREAM_ID_MASK: u32 = 0x7fff_ffff;
/// Largest flow-control window and WINDOW_UPDATE delta: 2^31 - 1.
pub const MAX_WINDOW: u32 = 0x7fff_ffff;
/// Initial flow-control window of streams and of the session in SPDY/3.1: 64 KiB.
pub const DEFAULT_INITIAL_WINDOW: u32 = 64 * 1024;

/// Control frame type of SYN_STREAM.
pub const TYPE_SYN_STREAM: u16 = 1;
/// Control frame type of SYN_REPLY.
pub const TYPE_SYN_REPLY: u16 = 2;
/// Control frame type of RST_STREAM.
pub const TYPE_RST_STREAM: u16 = 3;
/// Control frame type of SETTINGS.
pub const TYPE_SETTINGS: u16 = 4;
/// Control frame type of PING.
pub const TYPE_PING: u16 = 6;
/// Control frame type of GOAWAY.
pub const TYPE_GOAWAY: u16 = 7;
/// Control frame type of HEADERS.
pub const TYPE_HEADERS: u16 = 8;
/// Control frame type of WINDOW_UPDATE.
pub const TYPE_WINDOW_UPDATE: u16 = 9;

/// Flag of SYN_STREAM, SYN_REPLY, HEADERS and DATA: the sender's last frame on the
/// stream (it half-closes).
pub const FLAG_FIN: u8 = 0x01;
/// Flag of SYN_STREAM: the recipient may not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// Flag of SETTINGS: clear previously persisted settings.
pub const FLAG_SETTINGS_CLEAR_SETTINGS: u8 = 0x01;
/// Flag of a SETTINGS entry: the recipient should persist the value.
pub const FLAG_SETTINGS_PERSIST_VALUE: u8 = 0x01;
/// Flag of a SETTINGS entry: the value was persisted earlier and is being returned.
pub const FLAG_SETTINGS_PERSISTED: u8 = 0x02;

/// SETTINGS id: expected upload bandwidth.
pub const SETTINGS_UPLOAD_BANDWIDTH: u32 = 1;
/// SETTINGS id: expected download bandwidth.
pub const SETTINGS_DOWNLOAD_BANDWIDTH: u32 = 2;
/// SETTINGS id: expected round-trip time.
pub const SETTINGS_ROUND_TRIP_TIME: u32 = 3;
/// SETTINGS id: how many concurrent streams the sender accepts.
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u32 = 4;
/// SETTINGS id: the sender's TCP congestion window.
pub const SETTINGS_CURRENT_CWND: u32 = 5;
/// SETTINGS id: the sender's retransmission rate.
pub const SETTINGS_DOWNLOAD_RETRANS_RATE: u32 = 6;
/// SETTINGS id: the initial window of new streams (flow control).
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;
/// SETTINGS id: size of the client certificate vector (SPDY/3 only).
pub const SETTINGS_CLIENT_CERTIFICATE_VECTOR_SIZE: u32 = 8;

/// Status code of a RST_STREAM frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RstStatus(pub u32);

impl RstStatus {
    /// Generic error.
    pub const PROTOCOL_ERROR: Self = Self(1);
    /// A frame arrived for a stream that is not active.
    pub const INVALID_STREAM: Self = Self(2);
    /// The stream was refused before any processing.
    pub const REFUSED_STREAM: Self = Self(3);
    /// The recipient does not support the SPDY version.
    pub const UNSUPPORTED_VERSION: Self = Self(4);
    /// The stream is no longer needed.
    pub const CANCEL: Self = Self(5);
    /// The implementation failed internally.
    pub const INTERNAL_ERROR: Self = Self(6);
    /// The peer violated flow control.
    pub const FLOW_CONTROL_ERROR: Self = Self(7);
    /// A SYN_STREAM or SYN_REPLY for a stream already open.
    pub const STREAM_IN_USE: Self = Self(8);
    /// Data or SYN_REPLY for a stream already half-closed.
    pub const STREAM_ALREADY_CLOSED: Self = Self(9);
    /// Credentials were invalid (SPDY/3 only).
    pub const INVALID_CREDENTIALS: Self = Self(10);
    /// A frame was too large for the implementation.
    pub const FRAME_TOO_LARGE: Self = Self(11);

    /// The spec's name of the code, if it is a known one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "PROTOCOL_ERROR",
            2 => "INVALID_STREAM",
            3 => "REFUSED_STREAM",
            4 => "UNSUPPORTED_VERSION",
            5 => "CANCEL",
            6 => "INTERNAL_ERROR",
            7 => "FLOW_CONTROL_ERROR",
            8 => "STREAM_IN_USE",
            9 => "STREAM_ALREADY_CLOSED",
            10 => "INVALID_CREDENTIALS",
            11 => "FRAME_TOO_LARGE",
            _ => return None,
        })
    }
}

impl fmt::Display for RstStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "status {}", self.0),
        }
    }
}

impl fmt::Debug for RstStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RstStatus({self})")
    }
}

/// Status code of a GOAWAY frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GoAwayStatus(pub u32);

impl GoAwayStatus {
    /// Normal session teardown.
    pub const OK: Self = Self(0);
    /// The peer violated the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1);
    /// The implementation failed internally.
    pub const INTERNAL_ERROR: Self = Self(2);

    /// The spec's name of the code, if it is a known one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "OK",
            1 => "PROTOCOL_ERROR",
            2 => "INTERNAL_ERROR",
            _ => return None,
        })
    }
}

impl fmt::Display for GoAwayStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "status {}", self.0),
        }
    }
}

impl fmt::Debug for GoAwayStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GoAwayStatus({self})")
    }
}

/// One entry of a SETTINGS frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Entry flags ([`FLAG_SETTINGS_PERSIST_VALUE`], [`FLAG_SETTINGS_PERSISTED`]).
    pub flags: u8,
    /// Setting id (24 bits), e.g. [`SETTINGS_INITIAL_WINDOW_SIZE`].
    pub id: u32,
    /// Setting value.
    pub value: u32,
}

/// A SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// SYN_STREAM: opens a stream.
    SynStream {
        /// Id of the new stream (odd when the client opens it).
        stream_id: u32,
        /// Stream this one is associated with (server push), or 0.
        associated_to: u32,
        /// Priority, 0 (highest) to 7.
        priority: u8,
        /// Credential slot (SPDY/3; 0 in 3.1).
        slot: u8,
        /// [`FLAG_FIN`] and/or [`FLAG_UNIDIRECTIONAL`].
        flags: u8,
        /// The stream's headers.
        headers: Headers,
    },
    /// SYN_REPLY: accepts a stream.
    SynReply {
        /// The stream being answered.
        stream_id: u32,
        /// [`FLAG_FIN`] or 0.
        flags: u8,
        /// Response headers.
        headers: Headers,
    },
    /// RST_STREAM: aborts a stream.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why.
        status: RstStatus,
    },
    /// SETTINGS: the sender's parameters.
    Settings {
        /// [`FLAG_SETTINGS_CLEAR_SETTINGS`] or 0.
        flags: u8,
        /// The entries.
        entries: Vec<Setting>,
    },
    /// PING: the recipient echoes it back. Ids are odd from the client, even from the
    /// server.
    Ping {
        /// Opaque id.
        id: u32,
    },
    /// GOAWAY: the sender takes no new streams.
    GoAway {
        /// Last stream id the sender accepted from the recipient.
        last_good_stream_id: u32,
        /// Why.
        status: GoAwayStatus,
    },
    /// HEADERS: more headers for a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// [`FLAG_FIN`] or 0.
        flags: u8,
        /// The headers.
        headers: Headers,
    },
    /// WINDOW_UPDATE: the recipient may send `delta` more bytes (stream id 0: on the
    /// whole session, SPDY/3.1).
    WindowUpdate {
        /// The stream, or 0 for the session window.
        stream_id: u32,
        /// Window increment (31 bits).
        delta: u32,
    },
    /// DATA: payload bytes of a stream.
    Data {
        /// The stream.
        stream_id: u32,
        /// [`FLAG_FIN`] or 0.
        flags: u8,
        /// The payload.
        data: Bytes,
    },
    /// A control frame of a type this module does not know (e.g. SPDY/3's CREDENTIAL).
    /// Receivers ignore it.
    Unknown {
        /// Version field of the frame.
        version: u16,
        /// Type field of the frame.
        frame_type: u16,
        /// Flags of the frame.
        flags: u8,
        /// Raw payload.
        payload: Bytes,
    },
}

impl Frame {
    /// The spec's name of the frame type.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::SynStream { .. } => "SYN_STREAM",
            Frame::SynReply { .. } => "SYN_REPLY",
            Frame::RstStream { .. } => "RST_STREAM",
            Frame::Settings { .. } => "SETTINGS",
            Frame::Ping { .. } => "PING",
            Frame::GoAway { .. } => "GOAWAY",
            Frame::Headers { .. } => "HEADERS",
            Frame::WindowUpdate { .. } => "WINDOW_UPDATE",
            Frame::Data { .. } => "DATA",
            Frame::Unknown { .. } => "unknown",
        }
    }

    /// The stream the frame is about, for frames that name one (0 for the session's
    /// WINDOW_UPDATE).
    pub fn stream_id(&self) -> Option<u32> {
        match self {
            Frame::SynStream { stream_id, .. }
            | Frame::SynReply { stream_id, .. }
            | Frame::RstStream { stream_id, .. }
            | Frame::Headers { stream_id, .. }
            | Frame::WindowUpdate { stream_id, .. }
            | Frame::Data { stream_id, .. } => Some(*stream_id),
            Frame::Settings { .. }
            | Frame::Ping { .. }
            | Frame::GoAway { .. }
            | Frame::Unknown { .. } => None,
        }
    }

    /// Appends the wire form of the frame to `dst`.
    ///
    /// Header blocks go through `compressor`, which must be the session's one: frames
    /// must then be sent in the order they were encoded. Fails, leaving `dst` as it
    /// was, if a field does not fit its wire width (stream ids over 31 bits, payloads
    /// over 24 bits, priority over 7...). A failure after the header block was
    /// compressed leaves `compressor` out of step with the peer.
    pub fn encode(
        &self,
        compressor: &mut HeaderCompressor,
        dst: &mut BytesMut,
    ) -> Result<(), SpdyError> {
        let start = dst.len();
        let result = self.encode_inner(compressor, dst, start);
        if result.is_err() {
            dst.truncate(start);
        }
        result
    }

    fn encode_inner(
        &self,
        compressor: &mut HeaderCompressor,
        dst: &mut BytesMut,
        start: usize,
    ) -> Result<(), SpdyError> {
        match self {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                flags,
                headers,
            } => {
                if *priority > 7 {
                    return Err(encode_error(format!("priority {priority} is over 7")));
                }
                put_control_header(dst, TYPE_SYN_STREAM, *flags);
                dst.put_u32(stream_id_field(*stream_id)?);
                dst.put_u32(stream_id_field(*associated_to)?);
                dst.put_u8(priority << 5);
                dst.put_u8(*slot);
                compressor.compress(headers, dst)?;
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
            | Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let frame_type = if matches!(self, Frame::SynReply { .. }) {
                    TYPE_SYN_REPLY
                } else {
                    TYPE_HEADERS
                };
                put_control_header(dst, frame_type, *flags);
                dst.put_u32(stream_id_field(*stream_id)?);
                compressor.compress(headers, dst)?;
            }
            Frame::RstStream { stream_id, status } => {
                put_control_header(dst, TYPE_RST_STREAM, 0);
                dst.put_u32(stream_id_field(*stream_id)?);
                dst.put_u32(status.0);
            }
            Frame::Settings { flags, entries } => {
                put_control_header(dst, TYPE_SETTINGS, *flags);
                let count =
                    u32::try_from(entries.len()).map_err(|_| encode_error("too many settings"))?;
                dst.put_u32(count);
                for entry in entries {
                    if entry.id > 0x00ff_ffff {
                        return Err(encode_error(format!(
                            "setting id {} is over 24 bits",
                            entry.id
                        )));
                    }
                    dst.put_u32(u32::from(entry.flags) << 24 | entry.id);
                    dst.put_u32(entry.value);
                }
            }
            Frame::Ping { id } => {
                put_control_header(dst, TYPE_PING, 0);
                dst.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                put_control_header(dst, TYPE_GOAWAY, 0);
                dst.put_u32(stream_id_field(*last_good_stream_id)?);
                dst.put_u32(status.0);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                if *delta > MAX_WINDOW {
                    return Err(encode_error(format!(
                        "window delta {delta} is over 31 bits"
                    )));
                }
                put_control_header(dst, TYPE_WINDOW_UPDATE, 0);
                dst.put_u32(stream_id_field(*stream_id)?);
                dst.put_u32(*delta);
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                dst.reserve(FRAME_HEADER_LEN + data.len());
                dst.put_u32(stream_id_field(*stream_id)?);
                dst.put_u32(u32::from(*flags) << 24);
                dst.put_slice(data);
            }
            Frame::Unknown {
                version,
                frame_type,
                flags,
                payload,
            } => {
                if *version > 0x7fff {
                    return Err(encode_error(format!("version {version} is over 15 bits")));
                }
                dst.put_u16(0x8000 | version);
                dst.put_u16(*frame_type);
                dst.put_u32(u32::from(*flags) << 24);
                dst.put_slice(payload);
            }
        }
        // Patch the 24-bit length, now that the payload is known.
        let len = dst.len() - start - FRAME_HEADER_LEN;
        if len > MAX_FRAME_PAYLOAD {
            return Err(encode_error(format!(
                "{} payload of {len} bytes does not fit 24 bits",
                self.kind()
            )));
        }
        let len_field = &mut dst[start + 5..start + FRAME_HEADER_LEN];
        len_field.copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        Ok(())
    }

    /// Decodes one frame from the front of `src`, if it holds a complete one.
    ///
    /// Returns `Ok(None)` (reserving room for the rest of the frame) when more bytes
    /// are needed. Payloads longer than `max_frame_len` are refused as soon as the
    /// header is seen, so memory use is bounded by it. Header blocks are inflated
    /// with `decompressor`, which must see every header block of the session in order.
    pub fn decode(
        src: &mut BytesMut,
        decompressor: &mut HeaderDecompressor,
        max_frame_len: usize,
    ) -> Result<Option<Frame>, SpdyError> {
        let Some(header) = src.first_chunk::<FRAME_HEADER_LEN>() else {
            return Ok(None);
        };
        let word0 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let flags = header[4];
        let len = u32::from_be_bytes([0, header[5], header[6], header[7]]) as usize;
        if len > max_frame_len {
            return Err(SpdyError::FrameTooLarge {
                len,
                max: max_frame_len,
            });
        }
        let total = FRAME_HEADER_LEN + len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(total);
        frame.advance(FRAME_HEADER_LEN);
        let payload = frame.freeze();
        if word0 & CONTROL_BIT == 0 {
            return Ok(Some(Frame::Data {
                stream_id: word0,
                flags,
                data: payload,
            }));
        }
        let version = (word0 >> 16) as u16 & 0x7fff;
        let frame_type = word0 as u16;
        decode_control(version, frame_type, flags, payload, decompressor).map(Some)
    }
}

fn decode_control(
    version: u16,
    frame_type: u16,
    flags: u8,
    mut payload: Bytes,
    decompressor: &mut HeaderDecompressor,
) -> Result<Frame, SpdyError> {
    let known = matches!(
        frame_type,
        TYPE_SYN_STREAM
            | TYPE_SYN_REPLY
            | TYPE_RST_STREAM
            | TYPE_SETTINGS
            | TYPE_PING
            | TYPE_GOAWAY
            | TYPE_HEADERS
            | TYPE_WINDOW_UPDATE
    );
    if !known {
        return Ok(Frame::Unknown {
            version,
            frame_type,
            flags,
            payload,
        });
    }
    if version != VERSION {
        // A header block of another version cannot be inflated in step with ours.
        return Err(decode_error(format!(
            "control frame of version {version} (only {VERSION} is supported)"
        )));
    }
    let name = frame_name(frame_type);
    let len = payload.len();
    let frame = match frame_type {
        TYPE_SYN_STREAM => {
            need_at_least(name, len, 10)?;
            let stream_id = payload.get_u32() & STREAM_ID_MASK;
            let associated_to = payload.get_u32() & STREAM_ID_MASK;
            let priority = payload.get_u8() >> 5;
            let slot = payload.get_u8();
            let headers = decompressor.decompress(&payload)?;
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                flags,
                headers,
            }
        }
        TYPE_SYN_REPLY | TYPE_HEADERS => {
            need_at_least(name, len, 4)?;
            let stream_id = payload.get_u32() & STREAM_ID_MASK;
            let headers = decompressor.decompress(&payload)?;
            if frame_type == TYPE_SYN_REPLY {
                Frame::SynReply {
                    stream_id,
                    flags,
                    headers,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    flags,
                    headers,
                }
            }
        }
        TYPE_RST_STREAM => {
            need_exactly(name, len, 8)?;
            Frame::RstStream {
                stream_id: payload.get_u32() & STREAM_ID_MASK,
                status: RstStatus(payload.get_u32()),
            }
        }
        TYPE_SETTINGS => {
            need_at_least(name, len, 4)?;
            let count = payload.get_u32();
            if u64::from(count) * 8 != payload.len() as u64 {
                return Err(decode_error(format!(
                    "SETTINGS with {count} entries in {len} bytes"
                )));
            }
            let entries = (0..count)
                .map(|_| {
                    let word = payload.get_u32();
                    Setting {
                        flags: (word >> 24) as u8,
                        id: word & 0x00ff_ffff,
                        value: payload.get_u32(),
                    }
                })
                .collect();
            Frame::Settings { flags, entries }
        }
        TYPE_PING => {
            need_exactly(name, len, 4)?;
            Frame::Ping {
                id: payload.get_u32(),
            }
        }
        TYPE_GOAWAY => {
            need_exactly(name, len, 8)?;
            Frame::GoAway {
                last_good_stream_id: payload.get_u32() & STREAM_ID_MASK,
                status: GoAwayStatus(payload.get_u32()),
            }
        }
        _ => {
            need_exactly(name, len, 8)?;
            Frame::WindowUpdate {
                stream_id: payload.get_u32() & STREAM_ID_MASK,
                delta: payload.get_u32() & MAX_WINDOW,
            }
        }
    };
    Ok(frame)
}

fn frame_name(frame_type: u16) -> &'static str {
    match frame_type {
        TYPE_SYN_STREAM => "SYN_STREAM",
        TYPE_SYN_REPLY => "SYN_REPLY",
        TYPE_RST_STREAM => "RST_STREAM",
        TYPE_SETTINGS => "SETTINGS",
        TYPE_PING => "PING",
        TYPE_GOAWAY => "GOAWAY",
        TYPE_HEADERS => "HEADERS",
        TYPE_WINDOW_UPDATE => "WINDOW_UPDATE",
        _ => "unknown",
    }
}

fn need_at_least(name: &str, len: usize, min: usize) -> Result<(), SpdyError> {
    if len < min {
        return Err(decode_error(format!(
            "{name} of {len} bytes (at least {min} needed)"
        )));
    }
    Ok(())
}

fn need_exactly(name: &str, len: usize, want: usize) -> Result<(), SpdyError> {
    if len != want {
        return Err(decode_error(format!(
            "{name} of {len} bytes ({want} expected)"
        )));
    }
    Ok(())
}

fn put_control_header(dst: &mut BytesMut, frame_type: u16, flags: u8) {
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(frame_type);
    // The length is patched in once the payload is written.
    dst.put_u32(u32::from(flags) << 24);
}

fn stream_id_field(id: u32) -> Result<u32, SpdyError> {
    if id > STREAM_ID_MASK {
        return Err(encode_error(format!("stream id {id} is over 31 bits")));
    }
    Ok(id)
}

fn encode_error(reason: impl Into<String>) -> SpdyError {
    SpdyError::EncodeFrame {
        reason: reason.into(),
    }
}

fn decode_error(reason: impl Into<String>) -> SpdyError {
    SpdyError::DecodeFrame {
        reason: reason.into(),
    }
}

/// A [`Decoder`]/[`Encoder`] of [`Frame`]s holding one session's header compression
/// state (one compressor for what it encodes, one decompressor for what it decodes).
///
/// Decoding refuses frames longer than the configured maximum. A decode or encode
/// error leaves the codec unusable: the session it belongs to must end.
#[derive(Debug)]
pub struct FrameCodec {
    compressor: HeaderCompressor,
    decompressor: HeaderDecompressor,
    max_frame_len: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameCodec {
    /// A codec accepting frames up to [`DEFAULT_MAX_FRAME_LEN`].
    pub fn new() -> Self {
        Self::with_max_frame_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A codec refusing received frames whose payload exceeds `max_frame_len` bytes.
    pub fn with_max_frame_len(max_frame_len: usize) -> Self {
        Self {
            compressor: HeaderCompressor::new(),
            decompressor: HeaderDecompressor::new(),
            max_frame_len,
        }
    }

    /// The limit on received payloads.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Appends the wire form of `frame` to `dst` (see [`Frame::encode`]).
    pub fn encode_frame(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), SpdyError> {
        frame.encode(&mut self.compressor, dst)
    }

    /// Decodes one frame from the front of `src` (see [`Frame::decode`]).
    pub fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        Frame::decode(src, &mut self.decompressor, self.max_frame_len)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = SpdyError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        self.decode_frame(src)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = SpdyError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), SpdyError> {
        self.encode_frame(&frame, dst)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic on unexpected errors.
mod tests {
    use futures::{SinkExt, StreamExt};
    use proptest::prelude::*;
    use tokio_util::codec::{FramedRead, FramedWrite};

    use super::*;

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
            0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0xa6, 0x23, 0x46, 0x70, 0x3a, 0x2b, 0x29,
            0x4a, 0x4d, 0xcc, 0x85, 0x16, 0x25, 0xac, 0xa9, 0xa0, 0x80, 0x06, 0x00, 0x00, 0x00,
            0xff, 0xff,
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
            (arb_stream_id(), any::<u8>(), arb_headers()).prop_map(
                |(stream_id, flags, headers)| {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            ),
            (arb_stream_id(), any::<u8>(), arb_headers()).prop_map(
                |(stream_id, flags, headers)| {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            ),
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
}
