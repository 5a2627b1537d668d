//! Sub-protocol names, negotiation and the opening handshake.

use std::fmt;

use base64::Engine as _;
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, Response, StatusCode};

use super::WsError;

/// The sub-protocol `kubectl port-forward` (≥ 1.31) asks for when it tunnels its SPDY/3.1
/// connection through a WebSocket: the prefix `SPDY/3.1+` and the SPDY port-forward
/// protocol `portforward.k8s.io`. The byte stream travels in binary messages with no
/// channel byte; serve it with [`ByteTunnel`](super::ByteTunnel).
pub const PORT_FORWARD_TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// A Kubernetes WebSocket channel sub-protocol (`exec`, `attach`).
///
/// The versions are those of the remote-command protocol: they differ in which channels
/// exist and how the final status is encoded, not in framing (binary or base64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelProtocol {
    /// `v5.channel.k8s.io`: v4 plus the client's close signal (stdin half-close).
    V5,
    /// `v4.channel.k8s.io`: the error channel carries a JSON `metav1.Status`.
    V4,
    /// `v3.channel.k8s.io`: adds the resize channel.
    V3,
    /// `v2.channel.k8s.io`.
    V2,
    /// `channel.k8s.io`, also what a client that offers no sub-protocol gets.
    V1,
    /// `v4.base64.channel.k8s.io`: v4 in base64 text messages.
    Base64V4,
    /// `base64.channel.k8s.io`: v1 in base64 text messages.
    Base64V1,
}

impl ChannelProtocol {
    /// All channel protocols, in the server's order of preference.
    pub const PREFERENCE: [ChannelProtocol; 7] = [
        ChannelProtocol::V5,
        ChannelProtocol::V4,
        ChannelProtocol::V3,
        ChannelProtocol::V2,
        ChannelProtocol::V1,
        ChannelProtocol::Base64V4,
        ChannelProtocol::Base64V1,
    ];

    /// The sub-protocol name, as sent in `Sec-WebSocket-Protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelProtocol::V5 => "v5.channel.k8s.io",
            ChannelProtocol::V4 => "v4.channel.k8s.io",
            ChannelProtocol::V3 => "v3.channel.k8s.io",
            ChannelProtocol::V2 => "v2.channel.k8s.io",
            ChannelProtocol::V1 => "channel.k8s.io",
            ChannelProtocol::Base64V4 => "v4.base64.channel.k8s.io",
            ChannelProtocol::Base64V1 => "base64.channel.k8s.io",
        }
    }

    /// The protocol with this exact (case-sensitive) name, if any.
    pub fn from_name(name: &str) -> Option<ChannelProtocol> {
        Self::PREFERENCE.into_iter().find(|p| p.as_str() == name)
    }

    /// Whether messages are base64 text (rather than raw binary).
    pub fn is_base64(self) -> bool {
        matches!(self, ChannelProtocol::Base64V4 | ChannelProtocol::Base64V1)
    }

    /// Whether the client may half-close a channel with the close signal (v5 only).
    pub fn supports_close_signal(self) -> bool {
        self == ChannelProtocol::V5
    }

    /// Whether the error channel carries a JSON `metav1.Status` (v4 and later, binary
    /// or base64) rather than plain text.
    pub fn status_is_json(self) -> bool {
        matches!(
            self,
            ChannelProtocol::V5 | ChannelProtocol::V4 | ChannelProtocol::Base64V4
        )
    }

    /// Whether the protocol has the resize channel (v3 and later).
    pub fn supports_resize(self) -> bool {
        matches!(
            self,
            ChannelProtocol::V5
                | ChannelProtocol::V4
                | ChannelProtocol::V3
                | ChannelProtocol::Base64V4
        )
    }
}

impl fmt::Display for ChannelProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sub-protocols a request offers, in its order: every `Sec-WebSocket-Protocol`
/// header line, split at commas, trimmed, empty and non-ASCII entries skipped.
pub fn offered_protocols(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Chooses the channel protocol for an `exec`/`attach` upgrade request: the most
/// preferred of [`ChannelProtocol::PREFERENCE`] the client offers, [`ChannelProtocol::V1`]
/// if it offers none at all (as the kubelet does), `None` if it only offers unknown ones.
pub fn negotiate(offered: &HeaderMap) -> Option<ChannelProtocol> {
    let offered = offered_protocols(offered);
    if offered.is_empty() {
        return Some(ChannelProtocol::V1);
    }
    ChannelProtocol::PREFERENCE
        .into_iter()
        .find(|p| offered.contains(&p.as_str()))
}

/// Chooses the sub-protocol for a port-forward upgrade request tunnelling SPDY:
/// [`PORT_FORWARD_TUNNEL_PROTOCOL`] if the client offers it, else `None` (the request
/// is then for the legacy channel port-forward, or not supported).
pub fn negotiate_port_forward_tunnel(offered: &HeaderMap) -> Option<&'static str> {
    offered_protocols(offered)
        .contains(&PORT_FORWARD_TUNNEL_PROTOCOL)
        .then_some(PORT_FORWARD_TUNNEL_PROTOCOL)
}

/// Whether the request asks to upgrade to a WebSocket: an `Upgrade` header naming
/// `websocket` and a `Connection` header with the `upgrade` token (both
/// case-insensitive, in any header line, among comma-separated values).
pub fn is_websocket_upgrade(req_headers: &HeaderMap) -> bool {
    has_token(req_headers, UPGRADE, "websocket") && has_token(req_headers, CONNECTION, "upgrade")
}

fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The `Sec-WebSocket-Accept` value answering a `Sec-WebSocket-Key` (RFC 6455 §4.2.2):
/// base64 of the SHA-1 of the key and the protocol's GUID. Surrounding white space of
/// the key is ignored.
pub fn accept_key(sec_websocket_key: &str) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(
        sec_websocket_key.trim().as_bytes(),
    )
}

/// Builds the `101 Switching Protocols` response accepting a WebSocket upgrade request
/// with the sub-protocol `protocol`.
///
/// The request must be a WebSocket upgrade ([`is_websocket_upgrade`]) of version 13
/// with a valid `Sec-WebSocket-Key`. If the client offered sub-protocols, `protocol`
/// must be one of them and is echoed in `Sec-WebSocket-Protocol`; if it offered none
/// (or `protocol` is empty) the header is left out, since RFC 6455 clients fail a
/// connection whose response names a sub-protocol they did not ask for — the
/// connection then speaks the default protocol (`channel.k8s.io` for `exec`).
///
/// The caller returns this response (with an empty body) and then takes the upgraded
/// connection with `hyper::upgrade::on`.
pub fn switching_protocols_response(
    req_headers: &HeaderMap,
    protocol: &str,
) -> Result<Response<()>, WsError> {
    if !is_websocket_upgrade(req_headers) {
        return Err(WsError::NotWebSocketUpgrade);
    }
    let version = req_headers
        .get(SEC_WEBSOCKET_VERSION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .unwrap_or_default();
    if version != "13" {
        return Err(WsError::UnsupportedVersion(version));
    }
    let key = req_headers
        .get(SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or(WsError::InvalidKey)?;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(decoded) if decoded.len() == 16 => {}
        _ => return Err(WsError::InvalidKey),
    }

    let offered = offered_protocols(req_headers);
    let echo = if offered.is_empty() || protocol.is_empty() {
        None
    } else if offered.contains(&protocol) {
        Some(protocol)
    } else {
        return Err(WsError::ProtocolNotOffered(protocol.to_owned()));
    };

    let mut builder = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "Upgrade")
        .header(SEC_WEBSOCKET_ACCEPT, accept_key(key));
    if let Some(protocol) = echo {
        builder = builder.header(SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    builder.body(()).map_err(WsError::BuildResponse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn upgrade_request(protocols: &[&'static str]) -> HeaderMap {
        let mut map = headers(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        for p in protocols {
            map.append(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
        }
        map
    }

    #[test]
    fn names_round_trip_and_properties() {
        for p in ChannelProtocol::PREFERENCE {
            assert_eq!(ChannelProtocol::from_name(p.as_str()), Some(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(ChannelProtocol::from_name("V5.channel.K8S.io"), None);
        let json: Vec<_> = ChannelProtocol::PREFERENCE
            .into_iter()
            .filter(|p| p.status_is_json())
            .collect();
        assert_eq!(
            json,
            [
                ChannelProtocol::V5,
                ChannelProtocol::V4,
                ChannelProtocol::Base64V4
            ]
        );
        let close: Vec<_> = ChannelProtocol::PREFERENCE
            .into_iter()
            .filter(|p| p.supports_close_signal())
            .collect();
        assert_eq!(close, [ChannelProtocol::V5]);
        let resize: Vec<_> = ChannelProtocol::PREFERENCE
            .into_iter()
            .filter(|p| p.supports_resize())
            .collect();
        assert_eq!(
            resize,
            [
                ChannelProtocol::V5,
                ChannelProtocol::V4,
                ChannelProtocol::V3,
                ChannelProtocol::Base64V4
            ]
        );
        let base64: Vec<_> = ChannelProtocol::PREFERENCE
            .into_iter()
            .filter(|p| p.is_base64())
            .collect();
        assert_eq!(
            base64,
            [ChannelProtocol::Base64V4, ChannelProtocol::Base64V1]
        );
    }

    #[test]
    fn negotiation_prefers_the_newest_binary_protocol() {
        let h = headers(&[(
            "sec-websocket-protocol",
            "base64.channel.k8s.io, v4.base64.channel.k8s.io, channel.k8s.io, v4.channel.k8s.io, v5.channel.k8s.io",
        )]);
        assert_eq!(negotiate(&h), Some(ChannelProtocol::V5));

        let h = headers(&[(
            "sec-websocket-protocol",
            "v4.base64.channel.k8s.io,channel.k8s.io",
        )]);
        assert_eq!(negotiate(&h), Some(ChannelProtocol::V1));

        let h = headers(&[(
            "sec-websocket-protocol",
            "base64.channel.k8s.io ,  v4.base64.channel.k8s.io",
        )]);
        assert_eq!(negotiate(&h), Some(ChannelProtocol::Base64V4));

        let h = headers(&[(
            "sec-websocket-protocol",
            "v2.channel.k8s.io, v3.channel.k8s.io",
        )]);
        assert_eq!(negotiate(&h), Some(ChannelProtocol::V3));
    }

    #[test]
    fn negotiation_reads_every_header_line() {
        let h = headers(&[
            ("sec-websocket-protocol", "base64.channel.k8s.io"),
            ("sec-websocket-protocol", "foo, v4.channel.k8s.io"),
            ("sec-websocket-protocol", "v2.channel.k8s.io"),
        ]);
        assert_eq!(negotiate(&h), Some(ChannelProtocol::V4));
        assert_eq!(
            offered_protocols(&h),
            [
                "base64.channel.k8s.io",
                "foo",
                "v4.channel.k8s.io",
                "v2.channel.k8s.io"
            ]
        );
    }

    #[test]
    fn negotiation_without_offer_is_v1_and_unknown_only_is_none() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(ChannelProtocol::V1));
        let h = headers(&[("sec-websocket-protocol", " , ")]);
        assert_eq!(negotiate(&h), Some(ChannelProtocol::V1));
        let h = headers(&[(
            "sec-websocket-protocol",
            "v6.channel.k8s.io, V5.CHANNEL.K8S.IO",
        )]);
        assert_eq!(negotiate(&h), None);
        let h = headers(&[("sec-websocket-protocol", PORT_FORWARD_TUNNEL_PROTOCOL)]);
        assert_eq!(negotiate(&h), None);
    }

    #[test]
    fn port_forward_tunnel_negotiation() {
        let h = headers(&[(
            "sec-websocket-protocol",
            "v4.channel.k8s.io, SPDY/3.1+portforward.k8s.io",
        )]);
        assert_eq!(
            negotiate_port_forward_tunnel(&h),
            Some(PORT_FORWARD_TUNNEL_PROTOCOL)
        );
        let h = headers(&[("sec-websocket-protocol", "portforward.k8s.io")]);
        assert_eq!(negotiate_port_forward_tunnel(&h), None);
        assert_eq!(negotiate_port_forward_tunnel(&HeaderMap::new()), None);
    }

    #[test]
    fn upgrade_detection() {
        assert!(is_websocket_upgrade(&headers(&[
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, Upgrade"),
        ])));
        assert!(is_websocket_upgrade(&headers(&[
            ("upgrade", "websocket"),
            ("connection", "keep-alive"),
            ("connection", "upgrade"),
        ])));
        assert!(!is_websocket_upgrade(&headers(&[("upgrade", "websocket")])));
        assert!(!is_websocket_upgrade(&headers(&[
            ("upgrade", "SPDY/3.1"),
            ("connection", "Upgrade"),
        ])));
        assert!(!is_websocket_upgrade(&headers(&[
            ("upgrade", "websocket"),
            ("connection", "upgraded"),
        ])));
    }

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            accept_key(" dGhlIHNhbXBsZSBub25jZQ== "),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn switching_protocols_response_echoes_the_protocol() {
        let req = upgrade_request(&["v4.channel.k8s.io, v5.channel.k8s.io"]);
        let resp = switching_protocols_response(&req, "v5.channel.k8s.io").expect("response");
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(resp.headers()[UPGRADE], "websocket");
        assert_eq!(resp.headers()[CONNECTION], "Upgrade");
        assert_eq!(
            resp.headers()[SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            resp.headers()
                .get_all(SEC_WEBSOCKET_PROTOCOL)
                .iter()
                .count(),
            1
        );
        assert_eq!(resp.headers()[SEC_WEBSOCKET_PROTOCOL], "v5.channel.k8s.io");
    }

    #[test]
    fn switching_protocols_response_without_offer_omits_the_protocol() {
        let req = upgrade_request(&[]);
        let resp =
            switching_protocols_response(&req, ChannelProtocol::V1.as_str()).expect("response");
        assert!(resp.headers().get(SEC_WEBSOCKET_PROTOCOL).is_none());
    }

    #[test]
    fn switching_protocols_response_rejects_bad_requests() {
        let req = upgrade_request(&["v4.channel.k8s.io"]);
        assert!(matches!(
            switching_protocols_response(&req, "v5.channel.k8s.io"),
            Err(WsError::ProtocolNotOffered(p)) if p == "v5.channel.k8s.io"
        ));

        let mut req = upgrade_request(&[]);
        req.remove(UPGRADE);
        assert!(matches!(
            switching_protocols_response(&req, ""),
            Err(WsError::NotWebSocketUpgrade)
        ));

        let mut req = upgrade_request(&[]);
        req.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert!(matches!(
            switching_protocols_response(&req, ""),
            Err(WsError::UnsupportedVersion(v)) if v == "8"
        ));

        let mut req = upgrade_request(&[]);
        req.remove(SEC_WEBSOCKET_VERSION);
        assert!(matches!(
            switching_protocols_response(&req, ""),
            Err(WsError::UnsupportedVersion(v)) if v.is_empty()
        ));

        let mut req = upgrade_request(&[]);
        req.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static("c2hvcnQ="));
        assert!(matches!(
            switching_protocols_response(&req, ""),
            Err(WsError::InvalidKey)
        ));

        let mut req = upgrade_request(&[]);
        req.remove(SEC_WEBSOCKET_KEY);
        assert!(matches!(
            switching_protocols_response(&req, ""),
            Err(WsError::InvalidKey)
        ));
    }
}
