//! `kubectl exec` through ACI's exec WebSocket.
//!
//! `containers/{name}/exec` answers a `webSocketUri` and a `password`
//! (`ContainerExecResponse`); the client connects, sends the password as its first
//! message, then the session is raw terminal bytes both ways: stdin as text messages,
//! output in text or binary messages (ACI's exec is a terminal: stdout and stderr
//! arrive mixed).
//!
//! What ACI does not have, and what vk-aci does instead:
//! * **Exit codes.** ACI never reports how the command ended; the session ends when
//!   the socket closes and vk-aci returns exit code 0. A caller needing the code must
//!   print it (`sh -c 'cmd; echo "exit $?"'`).
//! * **Arguments.** The request takes one `command` string; the kubelet's argument list
//!   is joined with spaces (arguments containing spaces are not preserved).
//! * **Resize.** The terminal size is fixed at the start (`terminalSize`); later resizes
//!   are ignored.
//! * **End of stdin.** There is no message for it; the session goes on until the
//!   command exits.

use bytes::Bytes;
use vk_core::bridge::{BridgeError, ExecFraming, RemoteEvent};
use vk_core::capabilities::TermSize;
use vk_core::http::WsMessage;

use crate::auth::Secret;

/// ACI's exec framing: the password first, raw bytes after.
#[derive(Debug)]
pub struct AciExecFraming {
    password: Option<Secret>,
}

impl AciExecFraming {
    /// The framing of a session opened with `password`.
    pub fn new(password: Secret) -> Self {
        Self {
            password: Some(password),
        }
    }
}

impl ExecFraming for AciExecFraming {
    fn opening(&mut self) -> Vec<WsMessage> {
        self.password
            .take()
            .map(|p| vec![WsMessage::Text(p.expose().to_string())])
            .unwrap_or_default()
    }

    fn stdin(&mut self, data: &[u8]) -> WsMessage {
        match std::str::from_utf8(data) {
            Ok(text) => WsMessage::Text(text.to_string()),
            Err(_) => WsMessage::Binary(Bytes::copy_from_slice(data)),
        }
    }

    fn stdin_closed(&mut self) -> Option<WsMessage> {
        None
    }

    fn resize(&mut self, _size: TermSize) -> Option<WsMessage> {
        None
    }

    fn decode(&mut self, message: WsMessage) -> Result<Vec<RemoteEvent>, BridgeError> {
        Ok(match message {
            WsMessage::Text(text) if !text.is_empty() => {
                vec![RemoteEvent::Stdout(Bytes::from(text))]
            }
            WsMessage::Binary(bytes) if !bytes.is_empty() => vec![RemoteEvent::Stdout(bytes)],
            _ => Vec::new(),
        })
    }
}

/// The kubelet's command as ACI's one command string.
pub fn command_line(command: &[String]) -> String {
    command.join(" ")
}

/// `wss://host/path?q` → (`https://host`, `/path?q`), the form `vk_core::http` takes.
pub fn split_websocket_uri(uri: &str) -> Option<(String, String)> {
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = match scheme {
        "wss" | "https" => "https",
        "ws" | "http" => "http",
        _ => return None,
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!host.is_empty()).then(|| (format!("{scheme}://{host}"), path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_goes_first_then_raw_bytes() {
        let mut framing = AciExecFraming::new(Secret::new("pw"));
        assert_eq!(framing.opening(), vec![WsMessage::Text("pw".into())]);
        assert!(framing.opening().is_empty(), "sent once");
        assert_eq!(framing.stdin(b"ls\n"), WsMessage::Text("ls\n".into()));
        assert_eq!(
            framing.stdin(&[0xff]),
            WsMessage::Binary(Bytes::from_static(&[0xff]))
        );
        assert!(
            framing
                .resize(TermSize {
                    width: 80,
                    height: 24
                })
                .is_none()
        );
        assert_eq!(
            framing
                .decode(WsMessage::Binary(Bytes::from_static(b"out")))
                .expect("decodes"),
            vec![RemoteEvent::Stdout(Bytes::from_static(b"out"))]
        );
        assert!(
            framing
                .decode(WsMessage::Text(String::new()))
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn websocket_uris_split_into_base_and_path() {
        // ContainerExec.json (azure-rest-api-specs example): "wss://web-socket-uri".
        assert_eq!(
            split_websocket_uri("wss://web-socket-uri"),
            Some(("https://web-socket-uri".into(), "/".into()))
        );
        assert_eq!(
            split_websocket_uri("ws://127.0.0.1:9/exec/abc?x=1"),
            Some(("http://127.0.0.1:9".into(), "/exec/abc?x=1".into()))
        );
        assert_eq!(split_websocket_uri("ftp://x/y"), None);
        assert_eq!(
            command_line(&["sh".into(), "-c".into(), "ls".into()]),
            "sh -c ls"
        );
    }
}
