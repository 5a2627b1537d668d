//! The HTTP side of streaming upgrades: SPDY protocol negotiation
//! (`X-Stream-Protocol-Version`), 101 responses, and getting the upgraded connection.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use crate::error::ApiError;

/// The header carrying the offered/chosen streaming sub-protocol.
pub const STREAM_PROTOCOL_VERSION: &str = "X-Stream-Protocol-Version";

/// The remote-command protocols over SPDY, best first.
pub const REMOTE_COMMAND_PROTOCOLS: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// The port-forward protocol over SPDY.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";

/// An upgraded connection.
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// Whether the request asks for a SPDY/3.1 upgrade.
pub fn is_spdy_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or_default()
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "SPDY/3.1")
}

/// Picks the protocol: the client's first offer the server supports (the client lists
/// its preference; the kubelet follows it). `Ok(None)` when the client offered nothing
/// (the oldest protocol, with no header in the answer); 403 when nothing matches, as
/// the kubelet answers.
pub fn negotiate(
    headers: &HeaderMap,
    supported: &[&str],
) -> Result<Option<&'static str>, ApiError> {
    let offered: Vec<String> = headers
        .get_all(STREAM_PROTOCOL_VERSION)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or_default().split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(None);
    }
    for o in &offered {
        if let Some(s) = supported.iter().find(|s| *s == o) {
            return Ok(Some(static_name(s)));
        }
    }
    Err(ApiError::Forbidden(format!(
        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {supported:?}"
    )))
}

fn static_name(s: &str) -> &'static str {
    REMOTE_COMMAND_PROTOCOLS
        .iter()
        .chain(std::iter::once(&PORT_FORWARD_PROTOCOL))
        .find(|p| **p == s)
        .copied()
        .unwrap_or("channel.k8s.io")
}

/// The 101 answer to a SPDY upgrade.
pub fn spdy_switching_protocols(protocol: Option<&str>) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1");
    if let Some(p) = protocol {
        builder = builder.header(STREAM_PROTOCOL_VERSION, p);
    }
    builder
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Converts a 101 response built for WebSocket into an axum response.
pub fn into_axum(response: http::Response<()>) -> Response {
    let (parts, ()) = response.into_parts();
    Response::from_parts(parts, Body::empty())
}

/// Takes the upgrade future of `req` (it resolves after the 101 has been sent).
pub fn on_upgrade(req: &mut Request) -> Result<hyper::upgrade::OnUpgrade, ApiError> {
    req.extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| {
            ApiError::BadRequest("unable to upgrade: the connection cannot be upgraded".into())
        })
}

/// Awaits the upgraded connection.
pub async fn upgraded(on: hyper::upgrade::OnUpgrade) -> Option<Upgraded> {
    match on.await {
        Ok(u) => Some(TokioIo::new(u)),
        Err(e) => {
            tracing::debug!(error = %e, "the streaming upgrade failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in values {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    #[test]
    fn negotiation_follows_the_client_preference() {
        let h = headers(&[
            (STREAM_PROTOCOL_VERSION, "v4.channel.k8s.io"),
            (STREAM_PROTOCOL_VERSION, "v3.channel.k8s.io"),
        ]);
        assert_eq!(
            negotiate(&h, &REMOTE_COMMAND_PROTOCOLS).expect("ok"),
            Some("v4.channel.k8s.io")
        );
        let h = headers(&[(STREAM_PROTOCOL_VERSION, "v9.channel.k8s.io, channel.k8s.io")]);
        assert_eq!(
            negotiate(&h, &REMOTE_COMMAND_PROTOCOLS).expect("ok"),
            Some("channel.k8s.io")
        );
        assert_eq!(
            negotiate(&HeaderMap::new(), &REMOTE_COMMAND_PROTOCOLS).expect("ok"),
            None
        );
        let h = headers(&[(STREAM_PROTOCOL_VERSION, "v9.channel.k8s.io")]);
        assert_eq!(
            negotiate(&h, &REMOTE_COMMAND_PROTOCOLS)
                .expect_err("403")
                .status(),
            403
        );
    }

    #[test]
    fn spdy_upgrade_detection_is_case_insensitive() {
        assert!(is_spdy_upgrade(&headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1")
        ])));
        assert!(is_spdy_upgrade(&headers(&[
            ("connection", "keep-alive, upgrade"),
            ("upgrade", "spdy/3.1")
        ])));
        assert!(!is_spdy_upgrade(&headers(&[("upgrade", "SPDY/3.1")])));
        assert!(!is_spdy_upgrade(&headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket")
        ])));
    }
}
