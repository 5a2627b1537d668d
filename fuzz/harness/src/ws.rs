//! The WebSocket channel protocols of exec/attach: message framing and sub-protocol
//! negotiation.

use bytes::Bytes;
use http::header::SEC_WEBSOCKET_PROTOCOL;
use http::{HeaderMap, HeaderValue};
use vk_node_api::fuzzing::{WsIncoming, ws_decode, ws_encode};
use vk_node_api::ws::{ChannelProtocol, negotiate, offered_protocols};

/// Target `ws_channel`: one message from a client, and the same bytes as a
/// `Sec-WebSocket-Protocol` header.
///
/// The first byte chooses the protocol, the rest is the message. Checks:
///
/// * in the binary protocols the message decodes exactly as the framing says (empty;
///   the v5 close signal `[255, n]`, anything else starting with 255 in v5 invalid;
///   else channel byte and payload); in the base64 ones data is only produced with
///   the channel `first byte - '0'`, and the close signal exists only in v5;
/// * what the server encodes for (channel, payload) decodes back to them, for every
///   channel the protocol can express (in base64, those whose digit `'0' + n` is
///   ASCII; in v5, not 255, the close signal);
/// * negotiation picks a protocol the client offered, or v1 when it offered none.
pub fn channel_messages(data: &[u8]) {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    let protocols = ChannelProtocol::PREFERENCE;
    let protocol = protocols[usize::from(selector) % protocols.len()];
    check_decode(protocol, message);
    if let Some((&channel, payload)) = message.split_first() {
        check_round_trip(protocol, channel, payload);
    }
    check_negotiation(message);
}

fn check_decode(protocol: ChannelProtocol, message: &[u8]) {
    let decoded = ws_decode(protocol, Bytes::copy_from_slice(message));
    let close_signal = protocol.supports_close_signal() && message.first() == Some(&255);
    match (&decoded, message) {
        (WsIncoming::Empty, []) => {}
        (WsIncoming::Close { channel }, [255, n]) if close_signal => assert_eq!(channel, n),
        (WsIncoming::Invalid(_), _) if close_signal && message.len() != 2 => {}
        (WsIncoming::Data { channel, payload }, [first, rest @ ..])
            if !close_signal && !protocol.is_base64() =>
        {
            assert_eq!((channel, &payload[..]), (first, rest));
        }
        (WsIncoming::Data { channel, .. }, [first, ..])
            if !close_signal && protocol.is_base64() =>
        {
            assert_eq!(*channel, first.wrapping_sub(b'0'));
        }
        (WsIncoming::Invalid(_), [_, ..]) if !close_signal && protocol.is_base64() => {}
        _ => panic!("{protocol}: {message:?} decoded as {decoded:?}"),
    }
}

fn check_round_trip(protocol: ChannelProtocol, channel: u8, payload: &[u8]) {
    let expressible = if protocol.is_base64() {
        b'0'.wrapping_add(channel).is_ascii()
    } else {
        !(protocol.supports_close_signal() && channel == 255)
    };
    if !expressible {
        return;
    }
    let message = ws_encode(protocol, channel, payload);
    let decoded = ws_decode(protocol, message.clone());
    let expected = WsIncoming::Data {
        channel,
        payload: Bytes::copy_from_slice(payload),
    };
    assert_eq!(decoded, expected, "{protocol}: sent as {message:?}");
}

fn check_negotiation(value: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(value) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.append(SEC_WEBSOCKET_PROTOCOL, value);
    let offered = offered_protocols(&headers);
    match negotiate(&headers) {
        Some(chosen) if offered.is_empty() => assert_eq!(chosen, ChannelProtocol::V1),
        Some(chosen) => assert!(
            offered.contains(&chosen.as_str()),
            "{chosen} not in {offered:?}"
        ),
        None => assert!(
            offered
                .iter()
                .all(|o| ChannelProtocol::from_name(o).is_none()),
            "nothing chosen among {offered:?}"
        ),
    }
}
