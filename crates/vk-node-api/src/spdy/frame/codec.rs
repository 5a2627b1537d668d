//! [`FrameCodec`]: frame encoding and decoding bound to one session's header
//! compression state, usable with `tokio_util`'s `Framed`.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::super::SpdyError;
use super::super::headers::{HeaderCompressor, HeaderDecompressor};
use super::{DEFAULT_MAX_FRAME_LEN, Frame};

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
