//! The v2 protocol's client side (see `PROTOCOL.md` in the crate for the contract a
//! bridge implements): capabilities, the status watch, logs with every kubelet option,
//! exec/attach and port-forward over WebSockets, stats and ping.

use bytes::Bytes;
use futures::StreamExt as _;
use http::Method;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vk_core::bridge::{BridgeError, ExecFraming, RemoteEvent};
use vk_core::capabilities::{ByteStream, Duplex, LogOptions, TermSize};
use vk_core::http::{HttpError, WebSocket, WsMessage};
use vk_core::stats::Summary;

use crate::client::{BridgeClient, json};
use crate::config::CallKind;
use crate::error::WebError;

/// The protocol version this crate speaks (`PROTOCOL.md`).
pub const PROTOCOL_VERSION: u32 = 2;

/// `GET /v2/capabilities`.
pub const CAPABILITIES: &str = "/v2/capabilities";
/// `GET /v2/ping`.
pub const PING: &str = "/v2/ping";
/// `GET /v2/watch` (NDJSON or SSE stream).
pub const WATCH: &str = "/v2/watch";
/// `GET /v2/logs`.
pub const LOGS: &str = "/v2/logs";
/// `GET /v2/exec` (WebSocket).
pub const EXEC: &str = "/v2/exec";
/// `GET /v2/attach` (WebSocket).
pub const ATTACH: &str = "/v2/attach";
/// `GET /v2/portforward` (WebSocket).
pub const PORT_FORWARD: &str = "/v2/portforward";
/// `GET /v2/stats/summary`.
pub const STATS_SUMMARY: &str = "/v2/stats/summary";

/// The features a v2 bridge may advertise.
pub mod feature {
    /// `GET /v2/watch`.
    pub const WATCH: &str = "watch";
    /// `GET /v2/logs`.
    pub const LOGS: &str = "logs";
    /// `GET /v2/exec`.
    pub const EXEC: &str = "exec";
    /// `GET /v2/attach`.
    pub const ATTACH: &str = "attach";
    /// `GET /v2/portforward`.
    pub const PORT_FORWARD: &str = "portforward";
    /// `GET /v2/stats/summary`.
    pub const STATS: &str = "stats";
    /// `GET /v2/ping`.
    pub const PING: &str = "ping";
}

/// The answer of `GET /v2/capabilities`.
///
/// ```
/// let c: vk_web::v2::BridgeCapabilities =
///     serde_json::from_str(r#"{"version": 2, "features": ["watch", "logs"]}"#).unwrap();
/// assert!(c.has("watch") && !c.has("exec"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeCapabilities {
    /// The protocol version the bridge speaks (2).
    pub version: u32,
    /// The optional routes it serves (see [`feature`]).
    #[serde(default)]
    pub features: Vec<String>,
    /// The IP address every pod of the bridge gets, when it is one for all (a bridge
    /// running pods as local processes); used to resolve `status.podIP` references in
    /// a pod's environment before the pod exists.
    #[serde(rename = "podIP", default, skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<std::net::IpAddr>,
}

impl BridgeCapabilities {
    /// Whether the bridge serves `feature`.
    pub fn has(&self, feature: &str) -> bool {
        self.version >= PROTOCOL_VERSION && self.features.iter().any(|f| f == feature)
    }
}

/// One event of the status watch.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum WatchEvent {
    /// A pod's current status (`pod.metadata.namespace`/`name` and `pod.status`).
    Status {
        /// The pod.
        pod: Box<Pod>,
    },
    /// The bridge lost a pod that nobody deleted (it crashed, was evicted...).
    Lost {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A pod deleted through `DELETE /deletePod` is gone (informational).
    Deleted {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Nothing happened; keeps idle connections alive.
    Heartbeat,
}

/// Parses one line of the watch stream: an NDJSON line, or an SSE `data:` line.
/// Blank lines, SSE comments (`:`) and other SSE fields (`event:`, `id:`, `retry:`)
/// give `Ok(None)`.
///
/// ```
/// use vk_web::v2::{WatchEvent, parse_watch_line};
/// assert_eq!(parse_watch_line(br#"{"type":"heartbeat"}"#).unwrap(), Some(WatchEvent::Heartbeat));
/// assert_eq!(parse_watch_line(br#"data: {"type":"heartbeat"}"#).unwrap(), Some(WatchEvent::Heartbeat));
/// assert_eq!(parse_watch_line(b": keep-alive").unwrap(), None);
/// assert!(parse_watch_line(b"{").is_err());
/// ```
pub fn parse_watch_line(line: &[u8]) -> Result<Option<WatchEvent>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() || trimmed.starts_with(b":") {
        return Ok(None);
    }
    let payload = if let Some(data) = trimmed.strip_prefix(b"data:") {
        data.trim_ascii()
    } else if trimmed.starts_with(b"{") {
        trimmed
    } else {
        // event:, id:, retry: of SSE.
        return Ok(None);
    };
    serde_json::from_slice::<WatchEvent>(payload)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The exec/attach framing of v2: binary messages whose first byte names the stream
/// (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close), as the Kubernetes
/// `v5.channel.k8s.io` framing. Status messages are JSON: `{"exitCode": N}` or
/// `{"error": "..."}`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChannelFraming;

/// Stream numbers of [`ChannelFraming`].
pub mod channel {
    /// Client to bridge: the command's stdin.
    pub const STDIN: u8 = 0;
    /// Bridge to client: stdout.
    pub const STDOUT: u8 = 1;
    /// Bridge to client: stderr.
    pub const STDERR: u8 = 2;
    /// Bridge to client: the end of the command (JSON).
    pub const STATUS: u8 = 3;
    /// Client to bridge: a terminal size (JSON `{"Width": w, "Height": h}`).
    pub const RESIZE: u8 = 4;
    /// Client to bridge: `[255, 0]` closes stdin.
    pub const CLOSE: u8 = 255;
}

fn framed(channel: u8, data: &[u8]) -> WsMessage {
    let mut frame = Vec::with_capacity(data.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(data);
    WsMessage::Binary(Bytes::from(frame))
}

#[derive(Deserialize)]
struct ExecStatus {
    #[serde(rename = "exitCode")]
    exit_code: Option<i32>,
    error: Option<String>,
}

impl ExecFraming for ChannelFraming {
    fn stdin(&mut self, data: &[u8]) -> WsMessage {
        framed(channel::STDIN, data)
    }

    fn stdin_closed(&mut self) -> Option<WsMessage> {
        Some(framed(channel::CLOSE, &[channel::STDIN]))
    }

    fn resize(&mut self, size: TermSize) -> Option<WsMessage> {
        let json = serde_json::to_vec(&size).unwrap_or_default();
        Some(framed(channel::RESIZE, &json))
    }

    fn decode(&mut self, message: WsMessage) -> Result<Vec<RemoteEvent>, BridgeError> {
        let WsMessage::Binary(bytes) = message else {
            return Ok(Vec::new());
        };
        let Some(&first) = bytes.first() else {
            return Ok(Vec::new());
        };
        let data = bytes.slice(1..);
        Ok(vec![match first {
            channel::STDOUT => RemoteEvent::Stdout(data),
            channel::STDERR => RemoteEvent::Stderr(data),
            channel::STATUS => {
                let status: ExecStatus = serde_json::from_slice(&data)
                    .map_err(|e| BridgeError::Decode(format!("status message: {e}")))?;
                match (status.exit_code, status.error) {
                    (_, Some(error)) => RemoteEvent::Error(error),
                    (Some(code), None) => RemoteEvent::Exit(code),
                    (None, None) => {
                        return Err(BridgeError::Decode(
                            "status message without exitCode or error".into(),
                        ));
                    }
                }
            }
            other => return Err(BridgeError::Decode(format!("unknown stream {other}"))),
        }])
    }
}

/// The query of an exec or attach request.
pub(crate) struct SessionQuery<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub container: &'a str,
    pub command: &'a [String],
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl BridgeClient {
    /// `GET /v2/capabilities`. `Ok(None)` when the bridge has no such route (a v1
    /// bridge: 404, 405 or 501).
    pub async fn capabilities(&self) -> Result<Option<BridgeCapabilities>, WebError> {
        let request = self
            .http
            .get(CAPABILITIES)
            .timeout(self.timeout(CallKind::Node));
        match json(request.send().await, || {
            "read the bridge's capabilities".into()
        })
        .await
        {
            Ok(caps) => Ok(Some(caps)),
            Err(e) if matches!(e.status(), Some(404 | 405 | 501)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v2/ping`: any 2xx answer is healthy.
    pub async fn ping_v2(&self) -> Result<(), WebError> {
        let response = self
            .http
            .get(PING)
            .timeout(self.timeout(CallKind::Node))
            .send()
            .await
            .map_err(|source| WebError::call("ping the bridge", source))?;
        let _ = response.bytes().await;
        Ok(())
    }

    /// `GET /v2/watch`: the stream of status events, as raw bytes.
    pub async fn watch(&self) -> Result<ByteStream, WebError> {
        let response = self
            .http
            .get(WATCH)
            .header("accept", "application/x-ndjson, text/event-stream")
            .timeout(self.timeout(CallKind::Node))
            .send()
            .await
            .map_err(|source| WebError::call("watch pod status", source))?;
        Ok(response.into_stream())
    }

    /// `GET /v2/logs` with every kubelet option; the bridge applies them and streams.
    pub async fn logs_v2(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        options: &LogOptions,
    ) -> Result<ByteStream, WebError> {
        let mut request = self
            .http
            .get(LOGS)
            .query("namespace", namespace)
            .query("pod", pod)
            .query("container", container)
            .timeout(self.timeout(CallKind::Logs));
        if options.follow {
            request = request.query("follow", "true");
        }
        if options.previous {
            request = request.query("previous", "true");
        }
        if options.timestamps {
            request = request.query("timestamps", "true");
        }
        if let Some(n) = options.tail_lines {
            request = request.query("tailLines", n.to_string());
        }
        if let Some(n) = options.limit_bytes {
            request = request.query("limitBytes", n.to_string());
        }
        if let Some(n) = options.since_seconds {
            request = request.query("sinceSeconds", n.to_string());
        }
        if let Some(t) = options.since_time {
            request = request.query("sinceTime", t.to_string());
        }
        let response = request.send().await.map_err(|source| {
            WebError::call(
                format!("read the logs of {namespace}/{pod}/{container}"),
                source,
            )
        })?;
        Ok(response.into_stream())
    }

    /// Opens `GET /v2/exec` or `/v2/attach` as a WebSocket.
    pub(crate) async fn session(
        &self,
        route: &'static str,
        q: SessionQuery<'_>,
    ) -> Result<WebSocket, WebError> {
        let mut request = self
            .http
            .get(route)
            .query("namespace", q.namespace)
            .query("pod", q.pod)
            .query("container", q.container)
            .timeout(self.timeout(CallKind::Node));
        for arg in q.command {
            request = request.query("command", arg.as_str());
        }
        for (name, on) in [
            ("stdin", q.stdin),
            ("stdout", q.stdout),
            ("stderr", q.stderr),
            ("tty", q.tty),
        ] {
            request = request.query(name, on.to_string());
        }
        let what = if route == EXEC {
            "exec in"
        } else {
            "attach to"
        };
        request.websocket(&[]).await.map_err(|source| {
            WebError::call(
                format!("{what} {}/{}/{}", q.namespace, q.pod, q.container),
                source,
            )
        })
    }

    /// Opens `GET /v2/portforward` as a WebSocket.
    pub(crate) async fn port_forward_socket(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<WebSocket, WebError> {
        self.http
            .get(PORT_FORWARD)
            .query("namespace", namespace)
            .query("pod", pod)
            .query("port", port.to_string())
            .timeout(self.timeout(CallKind::Node))
            .websocket(&[])
            .await
            .map_err(|source| {
                WebError::call(format!("forward port {port} of {namespace}/{pod}"), source)
            })
    }

    /// `GET /v2/stats/summary`.
    pub async fn stats_summary(&self) -> Result<Summary, WebError> {
        let request = self
            .http
            .request(Method::GET, STATS_SUMMARY)
            .timeout(self.timeout(CallKind::Node));
        json(request.send().await, || "read the stats summary".into()).await
    }
}

/// Copies bytes between `stream` and `ws` until both directions ended. A binary
/// message is data; an empty binary message ends one direction (half-close); a close
/// message or the socket's end ends both.
pub(crate) async fn pump_port(
    mut ws: WebSocket,
    stream: Box<dyn Duplex>,
    call: String,
) -> Result<(), WebError> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = vec![0u8; 32 * 1024];
    let mut local_open = true;
    let mut remote_open = true;
    let broken = |reason: String| WebError::BadMessage {
        call: call.clone(),
        route: PORT_FORWARD,
        reason,
    };
    while local_open || remote_open {
        tokio::select! {
            read = reader.read(&mut buf), if local_open => match read {
                Ok(0) | Err(_) => {
                    local_open = false;
                    ws.send(WsMessage::Binary(Bytes::new()))
                        .await
                        .map_err(|e| broken(e.to_string()))?;
                }
                Ok(n) => ws
                    .send(WsMessage::Binary(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .map_err(|e| broken(e.to_string()))?,
            },
            incoming = ws.recv(), if remote_open => match incoming {
                Some(Ok(WsMessage::Binary(data))) if data.is_empty() => {
                    remote_open = false;
                    let _ = writer.shutdown().await;
                }
                Some(Ok(WsMessage::Binary(data))) => {
                    if writer.write_all(&data).await.is_err() {
                        // The local client went away: nothing more to deliver.
                        remote_open = false;
                    }
                }
                Some(Ok(WsMessage::Text(_))) => {}
                Some(Ok(WsMessage::Close(_))) | None => {
                    let _ = writer.shutdown().await;
                    return Ok(());
                }
                Some(Err(e)) => return Err(broken(e.to_string())),
            },
        }
    }
    let _ = ws.close().await;
    Ok(())
}

/// Splits a byte stream into lines (without their `\n`), keeping the last partial line
/// for the next chunk.
pub(crate) fn lines(stream: ByteStream) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    futures::stream::unfold(
        (stream, Vec::<u8>::new(), false),
        |(mut stream, mut pending, mut ended)| async move {
            loop {
                if let Some(at) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=at).collect();
                    return Some((
                        Ok(Bytes::from(line[..line.len() - 1].to_vec())),
                        (stream, pending, ended),
                    ));
                }
                if ended {
                    if pending.is_empty() {
                        return None;
                    }
                    let line = std::mem::take(&mut pending);
                    return Some((Ok(Bytes::from(line)), (stream, pending, ended)));
                }
                match stream.next().await {
                    Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
                    Some(Err(e)) => return Some((Err(e), (stream, pending, true))),
                    None => ended = true,
                }
            }
        },
    )
}

/// An [`HttpError`] for a watch stream that broke, for messages.
pub(crate) fn read_error(route: &'static str, e: &std::io::Error) -> HttpError {
    HttpError::ReadBody {
        method: Method::GET,
        path: route.into(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_lines_parse_as_ndjson_and_sse() {
        let status = br#"{"type":"status","pod":{"metadata":{"namespace":"ns","name":"a"},"status":{"phase":"Running"}}}"#;
        let Some(WatchEvent::Status { pod }) = parse_watch_line(status).expect("ndjson") else {
            panic!("a status event");
        };
        assert_eq!(pod.metadata.name.as_deref(), Some("a"));
        let mut sse = b"data: ".to_vec();
        sse.extend_from_slice(status);
        sse.extend_from_slice(b"\r");
        assert!(matches!(
            parse_watch_line(&sse).expect("sse"),
            Some(WatchEvent::Status { .. })
        ));
        assert_eq!(
            parse_watch_line(br#"{"type":"lost","namespace":"ns","name":"a"}"#).expect("lost"),
            Some(WatchEvent::Lost {
                namespace: "ns".into(),
                name: "a".into()
            })
        );
        for ignored in [
            &b""[..],
            b"event: status",
            b"id: 7",
            b": comment",
            b"retry: 10",
        ] {
            assert_eq!(parse_watch_line(ignored).expect("ignored"), None);
        }
        let err = parse_watch_line(br#"{"type":"status","pod":{"metadata":{"name":3}}}"#)
            .expect_err("bad pod");
        assert!(err.contains("invalid type"), "{err}");
        assert!(parse_watch_line(br#"{"type":"nonsense"}"#).is_err());
    }

    #[test]
    fn channel_framing_is_byte_exact() {
        let mut f = ChannelFraming;
        assert_eq!(
            f.stdin(b"ls\n"),
            WsMessage::Binary(Bytes::from_static(b"\x00ls\n"))
        );
        assert_eq!(
            f.stdin_closed(),
            Some(WsMessage::Binary(Bytes::from_static(b"\xff\x00")))
        );
        assert_eq!(
            f.resize(TermSize {
                width: 80,
                height: 24
            }),
            Some(WsMessage::Binary(Bytes::from_static(
                b"\x04{\"Width\":80,\"Height\":24}"
            )))
        );
        let decode = |f: &mut ChannelFraming, b: &'static [u8]| {
            f.decode(WsMessage::Binary(Bytes::from_static(b)))
        };
        assert_eq!(
            decode(&mut f, b"\x01out").expect("stdout"),
            [RemoteEvent::Stdout(Bytes::from_static(b"out"))]
        );
        assert_eq!(
            decode(&mut f, b"\x02err").expect("stderr"),
            [RemoteEvent::Stderr(Bytes::from_static(b"err"))]
        );
        assert_eq!(
            decode(&mut f, b"\x03{\"exitCode\":3}").expect("exit"),
            [RemoteEvent::Exit(3)]
        );
        assert_eq!(
            decode(&mut f, b"\x03{\"error\":\"no such command\"}").expect("error"),
            [RemoteEvent::Error("no such command".into())]
        );
        assert!(decode(&mut f, b"\x03{}").is_err());
        assert!(decode(&mut f, b"\x03not json").is_err());
        assert!(decode(&mut f, b"\x09?").is_err());
        assert!(decode(&mut f, b"").expect("empty").is_empty());
        assert!(
            f.decode(WsMessage::Text("hello".into()))
                .expect("text")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn lines_split_across_chunks_and_keep_the_last_partial_line() {
        let chunks: Vec<std::io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"one\ntw")),
            Ok(Bytes::from_static(b"o\n\nthr")),
            Ok(Bytes::from_static(b"ee")),
        ];
        let stream: ByteStream = Box::pin(futures::stream::iter(chunks));
        let got: Vec<Bytes> = lines(stream)
            .map(|l| l.expect("line"))
            .collect::<Vec<_>>()
            .await;
        assert_eq!(
            got,
            [&b"one"[..], b"two", b"", b"three"].map(Bytes::from_static)
        );
    }
}
