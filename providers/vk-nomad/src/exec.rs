//! `kubectl exec`: Nomad's `/v1/client/allocation/:alloc_id/exec` WebSocket bridged to
//! the kubelet's exec session by [`vk_core::bridge`].
//!
//! Nomad's frames are JSON text messages (documented under *Exec Allocation*):
//! `{"stdin":{"data":"<base64>"}}`, `{"stdin":{"close":true}}`,
//! `{"tty_size":{"height":H,"width":W}}` to Nomad; `{"stdout":{"data":..}}`,
//! `{"stderr":{"data":..}}`, `{"stdout":{"close":true}}`,
//! `{"exited":true,"result":{"exit_code":N}}` and `{}` heartbeats from it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use vk_core::bridge::{BridgeError, ExecFraming, RemoteEvent, bridge};
use vk_core::capabilities::{ContainerExec, ExecIo, TermSize};
use vk_core::http::WsMessage;
use vk_errdefs::{Error, Result};

use crate::provider::NomadProvider;

/// Nomad's exec framing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NomadExecFraming;

#[derive(Deserialize, Default)]
struct Frame {
    #[serde(default)]
    stdout: Option<StreamData>,
    #[serde(default)]
    stderr: Option<StreamData>,
    #[serde(default)]
    exited: bool,
    #[serde(default)]
    result: Option<ExitResult>,
}

#[derive(Deserialize, Default)]
struct StreamData {
    #[serde(default)]
    data: Option<String>,
}

#[derive(Deserialize, Default)]
struct ExitResult {
    #[serde(default)]
    exit_code: i32,
}

fn text(value: serde_json::Value) -> WsMessage {
    WsMessage::Text(value.to_string())
}

impl ExecFraming for NomadExecFraming {
    fn stdin(&mut self, data: &[u8]) -> WsMessage {
        text(json!({"stdin": {"data": STANDARD.encode(data)}}))
    }

    fn stdin_closed(&mut self) -> Option<WsMessage> {
        Some(text(json!({"stdin": {"close": true}})))
    }

    fn resize(&mut self, size: TermSize) -> Option<WsMessage> {
        Some(text(
            json!({"tty_size": {"height": size.height, "width": size.width}}),
        ))
    }

    fn decode(&mut self, message: WsMessage) -> std::result::Result<Vec<RemoteEvent>, BridgeError> {
        let raw: Vec<u8> = match message {
            WsMessage::Text(t) => t.into_bytes(),
            WsMessage::Binary(b) => b.to_vec(),
            _ => return Ok(Vec::new()),
        };
        let frame: Frame = serde_json::from_slice(&raw)
            .map_err(|e| BridgeError::Decode(format!("not a Nomad exec frame: {e}")))?;
        let mut events = Vec::new();
        let decode = |data: &str| {
            STANDARD
                .decode(data)
                .map(Bytes::from)
                .map_err(|e| BridgeError::Decode(format!("bad base64 in a Nomad exec frame: {e}")))
        };
        if let Some(data) = frame.stdout.and_then(|s| s.data) {
            events.push(RemoteEvent::Stdout(decode(&data)?));
        }
        if let Some(data) = frame.stderr.and_then(|s| s.data) {
            events.push(RemoteEvent::Stderr(decode(&data)?));
        }
        if frame.exited {
            events.push(RemoteEvent::Exit(
                frame.result.unwrap_or_default().exit_code,
            ));
        }
        Ok(events)
    }
}

#[async_trait::async_trait]
impl ContainerExec for NomadProvider {
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: Vec<String>,
        io: ExecIo,
    ) -> Result<i32> {
        let alloc = self.allocation_of(namespace, pod, container).await?;
        let ws = self
            .client()
            .exec(&alloc, container, &command, io.tty)
            .await?;
        match bridge(ws, NomadExecFraming, io).await? {
            Some(code) => Ok(code),
            None => Err(Error::unavailable(
                "the Nomad exec session closed without reporting the command's exit",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_match_the_documented_shapes() {
        let mut f = NomadExecFraming;
        assert_eq!(
            f.stdin(b"ls\n"),
            WsMessage::Text(r#"{"stdin":{"data":"bHMK"}}"#.into())
        );
        assert_eq!(
            f.stdin_closed(),
            Some(WsMessage::Text(r#"{"stdin":{"close":true}}"#.into()))
        );
        assert_eq!(
            f.resize(TermSize {
                width: 80,
                height: 24
            }),
            Some(WsMessage::Text(
                r#"{"tty_size":{"height":24,"width":80}}"#.into()
            ))
        );
        // The sample response of the Exec Allocation page.
        let events = f
            .decode(WsMessage::Text(
                r#"{"stdout":{"data":"G1tIG1sySiQg"}}"#.into(),
            ))
            .expect("stdout");
        assert_eq!(
            events,
            [RemoteEvent::Stdout(Bytes::from_static(b"\x1b[H\x1b[2J$ "))]
        );
        let events = f
            .decode(WsMessage::Text(r#"{"stderr":{"data":"b29wcw=="}}"#.into()))
            .expect("stderr");
        assert_eq!(events, [RemoteEvent::Stderr(Bytes::from_static(b"oops"))]);
        let events = f
            .decode(WsMessage::Text(
                r#"{"exited":true,"result":{"exit_code":3}}"#.into(),
            ))
            .expect("exit");
        assert_eq!(events, [RemoteEvent::Exit(3)]);
        assert!(
            f.decode(WsMessage::Text("{}".into()))
                .expect("heartbeat")
                .is_empty()
        );
        assert!(
            f.decode(WsMessage::Text(r#"{"stdout":{"close":true}}"#.into()))
                .expect("close")
                .is_empty()
        );
        assert!(f.decode(WsMessage::Text("nope".into())).is_err());
    }
}
