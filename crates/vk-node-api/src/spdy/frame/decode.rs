//! Decoding frames from their wire form: [`Frame::decode`], with the length checks of
//! each control frame type.

use bytes::{Buf, Bytes, BytesMut};

use super::super::SpdyError;
use super::super::headers::HeaderDecompressor;
use super::{
    CONTROL_BIT, FRAME_HEADER_LEN, Frame, GoAwayStatus, MAX_WINDOW, RstStatus, STREAM_ID_MASK,
    Setting, TYPE_GOAWAY, TYPE_HEADERS, TYPE_PING, TYPE_RST_STREAM, TYPE_SETTINGS, TYPE_SYN_REPLY,
    TYPE_SYN_STREAM, TYPE_WINDOW_UPDATE, VERSION,
};

impl Frame {
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

fn decode_error(reason: impl Into<String>) -> SpdyError {
    SpdyError::DecodeFrame {
        reason: reason.into(),
    }
}
