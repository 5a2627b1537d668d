//! Framing of channel messages: encoding what the server sends, decoding what the
//! client sends. Pure functions, no I/O.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use bytes::{BufMut, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::Message;

use super::{CLOSE_SIGNAL, ChannelProtocol};

/// Decoder for incoming base64 payloads. Go's `base64.StdEncoding`, which the kubelet
/// uses, wants padding; accepting unpadded input and non-zero trailing bits too costs
/// nothing and only makes the server more forgiving.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The message carrying `payload` on `channel`.
///
/// Binary protocols: a binary message, the channel byte then the payload. Base64
/// protocols: a text message, the character `'0' + channel` then the payload in
/// standard padded base64 (channels above 9 give the characters after `'9'`, as the
/// Go implementation does).
pub(crate) fn encode(protocol: ChannelProtocol, channel: u8, payload: &[u8]) -> Message {
    if protocol.is_base64() {
        let mut text = String::with_capacity(2 + payload.len().div_ceil(3) * 4);
        text.push(char::from(b'0'.wrapping_add(channel)));
        STANDARD.encode_string(payload, &mut text);
        Message::text(text)
    } else {
        let mut frame = BytesMut::with_capacity(1 + payload.len());
        frame.put_u8(channel);
        frame.put_slice(payload);
        Message::binary(frame.freeze())
    }
}

/// What an incoming data message (text or binary alike) means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// Data for a channel; the payload may be empty.
    Data {
        /// The channel number.
        channel: u8,
        /// The decoded payload.
        payload: Bytes,
    },
    /// The v5 close signal: the client half-closes `channel`.
    Close {
        /// The channel closed.
        channel: u8,
    },
    /// A message with nothing in it (not even a channel); ignored, as by the kubelet.
    Empty,
    /// A malformed message, ignored; the reason is for the log.
    Invalid(&'static str),
}

/// Interprets a message the client sent, whatever its WebSocket type (the kubelet's Go
/// implementation does not distinguish text from binary messages either): the framing
/// is that of the negotiated protocol.
pub(crate) fn decode(protocol: ChannelProtocol, mut data: Bytes) -> Incoming {
    let Some(&first) = data.first() else {
        return Incoming::Empty;
    };
    if protocol.supports_close_signal() && first == CLOSE_SIGNAL {
        return match *data {
            [_, channel] => Incoming::Close { channel },
            _ => Incoming::Invalid("close signal must be followed by exactly one channel byte"),
        };
    }
    let body = data.split_off(1);
    if !protocol.is_base64() {
        return Incoming::Data {
            channel: first,
            payload: body,
        };
    }
    // Base64: the channel is an ASCII digit ('0' + n, wrapping like the Go code) and
    // the payload is base64. Go's decoder skips CR and LF; so do we.
    let channel = first.wrapping_sub(b'0');
    let decoded = if body.iter().any(|b| matches!(b, b'\r' | b'\n')) {
        let cleaned: Vec<u8> = body
            .iter()
            .copied()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect();
        LENIENT_BASE64.decode(cleaned)
    } else {
        LENIENT_BASE64.decode(&body)
    };
    match decoded {
        Ok(payload) => Incoming::Data {
            channel,
            payload: Bytes::from(payload),
        },
        Err(_) => Incoming::Invalid("payload is not valid base64"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn binary(msg: Message) -> Vec<u8> {
        match msg {
            Message::Binary(b) => b.to_vec(),
            other => panic!("expected a binary message, got {other:?}"),
        }
    }

    fn text(msg: Message) -> String {
        match msg {
            Message::Text(t) => t.as_str().to_owned(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    #[test]
    fn binary_encoding_is_channel_byte_then_payload() {
        for p in [
            ChannelProtocol::V5,
            ChannelProtocol::V4,
            ChannelProtocol::V3,
            ChannelProtocol::V2,
            ChannelProtocol::V1,
        ] {
            assert_eq!(binary(encode(p, 1, b"\n")), [1, 10]);
            assert_eq!(binary(encode(p, 0, b"foo\n")), [0, 102, 111, 111, 10]);
            assert_eq!(binary(encode(p, 3, b"")), [3]);
            assert_eq!(binary(encode(p, 255, &[0, 255])), [255, 0, 255]);
        }
    }

    #[test]
    fn base64_encoding_is_digit_then_padded_base64() {
        for p in [ChannelProtocol::Base64V4, ChannelProtocol::Base64V1] {
            // The examples of the Kubernetes documentation.
            assert_eq!(text(encode(p, 1, b"\n")), "1Cg==");
            assert_eq!(text(encode(p, 0, b"foo\n")), "0Zm9vCg==");
            assert_eq!(text(encode(p, 2, b"")), "2");
            assert_eq!(text(encode(p, 3, b"ab")), "3YWI=");
            assert_eq!(text(encode(p, 10, b"abc")), ":YWJj");
        }
    }

    #[test]
    fn binary_decoding() {
        let d = decode(
            ChannelProtocol::V4,
            Bytes::from_static(&[0, 102, 111, 111, 10]),
        );
        assert_eq!(
            d,
            Incoming::Data {
                channel: 0,
                payload: Bytes::from_static(b"foo\n")
            }
        );
        let d = decode(ChannelProtocol::V1, Bytes::from_static(&[4]));
        assert_eq!(
            d,
            Incoming::Data {
                channel: 4,
                payload: Bytes::new()
            }
        );
        assert_eq!(decode(ChannelProtocol::V5, Bytes::new()), Incoming::Empty);
        // 255 is an ordinary (unknown) channel before v5.
        let d = decode(ChannelProtocol::V4, Bytes::from_static(&[255, 0]));
        assert_eq!(
            d,
            Incoming::Data {
                channel: 255,
                payload: Bytes::from_static(&[0])
            }
        );
    }

    #[test]
    fn v5_close_signal() {
        assert_eq!(
            decode(ChannelProtocol::V5, Bytes::from_static(&[255, 0])),
            Incoming::Close { channel: 0 }
        );
        assert_eq!(
            decode(ChannelProtocol::V5, Bytes::from_static(&[255, 4])),
            Incoming::Close { channel: 4 }
        );
        assert!(matches!(
            decode(ChannelProtocol::V5, Bytes::from_static(&[255])),
            Incoming::Invalid(_)
        ));
        assert!(matches!(
            decode(ChannelProtocol::V5, Bytes::from_static(&[255, 0, 1])),
            Incoming::Invalid(_)
        ));
    }

    #[test]
    fn base64_decoding() {
        let p = ChannelProtocol::Base64V4;
        assert_eq!(
            decode(p, Bytes::from_static(b"0Zm9vCg==")),
            Incoming::Data {
                channel: 0,
                payload: Bytes::from_static(b"foo\n")
            }
        );
        // Unpadded, and with line breaks.
        assert_eq!(
            decode(p, Bytes::from_static(b"0Zm9vCg")),
            Incoming::Data {
                channel: 0,
                payload: Bytes::from_static(b"foo\n")
            }
        );
        assert_eq!(
            decode(p, Bytes::from_static(b"4Zm9v\r\nCg==")),
            Incoming::Data {
                channel: 4,
                payload: Bytes::from_static(b"foo\n")
            }
        );
        assert_eq!(
            decode(p, Bytes::from_static(b"0")),
            Incoming::Data {
                channel: 0,
                payload: Bytes::new()
            }
        );
        assert!(matches!(
            decode(p, Bytes::from_static(b"0not base64!")),
            Incoming::Invalid(_)
        ));
        // No close signal in base64 protocols: "\xff" is just a (bad) channel digit.
        assert!(matches!(
            decode(p, Bytes::from_static(b"\xff0")),
            Incoming::Invalid(_) | Incoming::Data { .. }
        ));
    }

    fn any_protocol() -> impl Strategy<Value = ChannelProtocol> {
        proptest::sample::select(ChannelProtocol::PREFERENCE.to_vec())
    }

    proptest! {
        #[test]
        fn decode_never_panics(protocol in any_protocol(), data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(protocol, Bytes::from(data));
        }

        #[test]
        fn encode_then_decode_round_trips(
            protocol in any_protocol(),
            channel in 0u8..10,
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let data = encode(protocol, channel, &payload).into_data();
            prop_assert_eq!(
                decode(protocol, data),
                Incoming::Data { channel, payload: Bytes::from(payload) }
            );
        }
    }
}
