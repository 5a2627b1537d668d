//! The error type of the SPDY module.

use std::io;

use super::frame::RstStatus;

/// What went wrong, named after the operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpdyError {
    /// A received frame is malformed (bad length for its type, unsupported version).
    #[error("decoding a SPDY frame: {reason}")]
    DecodeFrame {
        /// What is wrong with it.
        reason: String,
    },
    /// A received frame announced a payload over the configured limit.
    #[error("decoding a SPDY frame: payload of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Announced payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame could not be encoded: a field does not fit its wire width.
    #[error("encoding a SPDY frame: {reason}")]
    EncodeFrame {
        /// Which field.
        reason: String,
    },
    /// A received header block could not be decompressed (corrupt zlib data, wrong
    /// dictionary).
    #[error("inflating a SPDY header block: {reason}")]
    InflateHeaders {
        /// What failed.
        reason: String,
    },
    /// A received header block inflates to more than the decompressor's limit (see
    /// [`HeaderDecompressor::with_max_block_len`](super::HeaderDecompressor::with_max_block_len)):
    /// a decompression bomb, or headers larger than the session accepts. Inflation stops
    /// at the limit, so the block never occupies more than that in memory.
    #[error("inflating a SPDY header block: it inflates to more than {max} bytes")]
    HeaderBlockTooLarge {
        /// The limit, in inflated bytes.
        max: usize,
    },
    /// A decompressed header block is malformed.
    #[error("parsing a SPDY header block: {reason}")]
    DecodeHeaders {
        /// What is wrong with it.
        reason: String,
    },
    /// Headers could not be serialized (empty name, NUL in a value).
    #[error("serializing SPDY headers: {reason}")]
    EncodeHeaders {
        /// What is wrong with them.
        reason: String,
    },
    /// Reading from the connection failed.
    #[error("reading from the SPDY connection")]
    ReadFrame(#[source] io::Error),
    /// Writing to the connection failed.
    #[error("writing to the SPDY connection")]
    WriteFrame(#[source] io::Error),
    /// I/O error of a [`FrameCodec`](super::FrameCodec) driven by `tokio_util`'s
    /// `Framed`, which cannot say whether it was reading or writing.
    #[error("I/O on the SPDY connection")]
    Io(#[from] io::Error),
    /// The peer broke a rule of the protocol that ends the session.
    #[error("SPDY protocol error by the peer: {reason}")]
    Protocol {
        /// Which rule.
        reason: String,
    },
    /// The stream was reset, by the peer or locally, with this status.
    #[error("SPDY stream reset ({status})")]
    StreamReset {
        /// The RST_STREAM status.
        status: RstStatus,
    },
    /// Writing to a stream whose sending side is closed (after `shutdown`, or on a
    /// unidirectional stream).
    #[error("SPDY stream closed for writing")]
    StreamClosed,
    /// Writing to a stream before [`Stream::reply`](super::Stream::reply).
    #[error("SPDY stream not replied to (call Stream::reply before writing)")]
    NotReplied,
    /// The session ended (GOAWAY, connection closed, idle timeout, I/O error) before
    /// the operation could complete.
    #[error("SPDY connection closed")]
    ConnectionClosed,
}

impl SpdyError {
    /// The closest [`io::ErrorKind`], used when the error surfaces through
    /// `AsyncRead`/`AsyncWrite`.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            SpdyError::ReadFrame(e) | SpdyError::WriteFrame(e) | SpdyError::Io(e) => e.kind(),
            SpdyError::StreamReset { .. } => io::ErrorKind::ConnectionReset,
            SpdyError::StreamClosed => io::ErrorKind::BrokenPipe,
            SpdyError::ConnectionClosed => io::ErrorKind::ConnectionAborted,
            SpdyError::NotReplied => io::ErrorKind::NotConnected,
            _ => io::ErrorKind::InvalidData,
        }
    }
}

impl From<SpdyError> for io::Error {
    /// Wraps the error (recoverable with `io::Error::get_ref` and `downcast_ref`).
    fn from(err: SpdyError) -> Self {
        io::Error::new(err.io_kind(), err)
    }
}
