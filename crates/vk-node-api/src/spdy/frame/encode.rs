//! Encoding frames to their wire form: [`Frame::encode`].

use bytes::{BufMut, BytesMut};

use super::super::SpdyError;
use super::super::headers::HeaderCompressor;
use super::{
    FRAME_HEADER_LEN, Frame, MAX_FRAME_PAYLOAD, MAX_WINDOW, STREAM_ID_MASK, TYPE_GOAWAY,
    TYPE_HEADERS, TYPE_PING, TYPE_RST_STREAM, TYPE_SETTINGS, TYPE_SYN_REPLY, TYPE_SYN_STREAM,
    TYPE_WINDOW_UPDATE, VERSION,
};

impl Frame {
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
