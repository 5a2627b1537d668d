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
//! [`HeaderCompressor`](super::headers::HeaderCompressor) or
//! [`HeaderDecompressor`](super::headers::HeaderDecompressor), which [`FrameCodec`]
//! holds.
//!
//! # Layout
//!
//! * this file: the framing constants and the [`Frame`] enum;
//! * `control.rs`: the vocabulary of control frames (type codes, SETTINGS ids and
//!   flags, [`RstStatus`], [`GoAwayStatus`], [`Setting`]);
//! * `encode.rs`: [`Frame::encode`]; `decode.rs`: [`Frame::decode`];
//! * `codec.rs`: [`FrameCodec`], which pairs them with a session's header compression.

mod codec;
mod control;
mod decode;
mod encode;

use bytes::Bytes;

use super::headers::Headers;

pub use codec::FrameCodec;
pub use control::{
    FLAG_SETTINGS_CLEAR_SETTINGS, FLAG_SETTINGS_PERSIST_VALUE, FLAG_SETTINGS_PERSISTED,
    GoAwayStatus, RstStatus, SETTINGS_CLIENT_CERTIFICATE_VECTOR_SIZE, SETTINGS_CURRENT_CWND,
    SETTINGS_DOWNLOAD_BANDWIDTH, SETTINGS_DOWNLOAD_RETRANS_RATE, SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_ROUND_TRIP_TIME, SETTINGS_UPLOAD_BANDWIDTH, Setting,
    TYPE_GOAWAY, TYPE_HEADERS, TYPE_PING, TYPE_RST_STREAM, TYPE_SETTINGS, TYPE_SYN_REPLY,
    TYPE_SYN_STREAM, TYPE_WINDOW_UPDATE,
};

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

/// Flag of SYN_STREAM, SYN_REPLY, HEADERS and DATA: the sender's last frame on the
/// stream (it half-closes).
pub const FLAG_FIN: u8 = 0x01;
/// Flag of SYN_STREAM: the recipient may not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

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
}
