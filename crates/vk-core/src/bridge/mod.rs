//! Remote exec: joins a kubelet-side exec or attach session ([`ExecIo`]) to a command
//! running behind a backend's WebSocket.
//!
//! Backends frame an exec session differently — Nomad sends JSON messages with base64
//! data, Azure Container Instances raw bytes after a password, a web bridge perhaps the
//! Kubernetes channel framing — so a provider describes its backend's framing with an
//! [`ExecFraming`] and [`bridge`] does the rest:
//!
//! * the client's stdin becomes [`ExecFraming::stdin`] messages; its end becomes
//!   [`ExecFraming::stdin_closed`] (sent at once when the client attached no stdin),
//!   while output keeps flowing;
//! * terminal resizes become [`ExecFraming::resize`] messages;
//! * each message from the backend is [`decode`](ExecFraming::decode)d into
//!   [`RemoteEvent`]s: output is written and flushed to the client's stdout or stderr
//!   (with a terminal, stderr output goes to stdout: a terminal has one stream);
//! * the session ends with the backend's exit event (its code is returned) or with the
//!   socket's close (`None`: the backend did not say how the command ended).
//!
//! Both directions are pumped concurrently in the one future; pings are answered by
//! the [`WebSocket`]. Dropping the future (the kubelet client went away) drops the
//! socket, which closes the connection: the backend sees its client leave.
//!
//! ## An example framing
//!
//! The Kubernetes channel framing: every binary message starts with a byte naming the
//! stream (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize).
//!
//! ```
//! use bytes::Bytes;
//! use vk_core::bridge::{BridgeError, ExecFraming, RemoteEvent};
//! use vk_core::capabilities::TermSize;
//! use vk_core::http::WsMessage;
//!
//! struct ChannelFraming;
//!
//! fn on_channel(channel: u8, data: &[u8]) -> WsMessage {
//!     let mut frame = Vec::with_capacity(data.len() + 1);
//!     frame.push(channel);
//!     frame.extend_from_slice(data);
//!     WsMessage::Binary(Bytes::from(frame))
//! }
//!
//! impl ExecFraming for ChannelFraming {
//!     fn stdin(&mut self, data: &[u8]) -> WsMessage {
//!         on_channel(0, data)
//!     }
//!     fn stdin_closed(&mut self) -> Option<WsMessage> {
//!         None // this framing has no way to say it
//!     }
//!     fn resize(&mut self, size: TermSize) -> Option<WsMessage> {
//!         let json = format!(r#"{{"Width":{},"Height":{}}}"#, size.width, size.height);
//!         Some(on_channel(4, json.as_bytes()))
//!     }
//!     fn decode(&mut self, message: WsMessage) -> Result<Vec<RemoteEvent>, BridgeError> {
//!         let WsMessage::Binary(bytes) = message else {
//!             return Ok(Vec::new()); // text messages mean nothing here
//!         };
//!         let Some((&channel, _)) = bytes.split_first() else {
//!             return Ok(Vec::new());
//!         };
//!         let data = bytes.slice(1..);
//!         Ok(vec![match channel {
//!             1 => RemoteEvent::Stdout(data),
//!             2 => RemoteEvent::Stderr(data),
//!             3 => RemoteEvent::Error(String::from_utf8_lossy(&data).into_owned()),
//!             other => return Err(BridgeError::Decode(format!("unknown channel {other}"))),
//!         }])
//!     }
//! }
//!
//! let mut framing = ChannelFraming;
//! assert_eq!(framing.stdin(b"ls\n"), WsMessage::Binary(Bytes::from_static(b"\x00ls\n")));
//! let events = framing.decode(WsMessage::Binary(Bytes::from_static(b"\x01hi"))).unwrap();
//! assert_eq!(events, [RemoteEvent::Stdout(Bytes::from_static(b"hi"))]);
//! ```
//!
//! A provider's `exec` then opens the socket and bridges:
//!
//! ```no_run
//! # use vk_core::bridge::{ExecFraming, bridge};
//! # async fn exec(
//! #     client: vk_core::http::HttpClient,
//! #     framing: impl ExecFraming,
//! #     io: vk_core::capabilities::ExecIo,
//! # ) -> vk_errdefs::Result<i32> {
//! let ws = client.get("/exec").query("tty", io.tty.to_string()).websocket(&[]).await?;
//! let code = bridge(ws, framing, io).await?;
//! Ok(code.unwrap_or(0))
//! # }
//! ```

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

use crate::capabilities::{ExecIo, Input, Output, TermSize};
use crate::http::{WebSocket, WsError, WsMessage};

#[cfg(test)]
mod tests;

/// How much stdin is read into one message at most.
const STDIN_CHUNK: usize = 32 * 1024;

/// What a backend's message means for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteEvent {
    /// Output on the command's stdout.
    Stdout(Bytes),
    /// Output on the command's stderr.
    Stderr(Bytes),
    /// The command exited with this code; the session ends.
    Exit(i32),
    /// The backend reports a failure; the session ends with [`BridgeError::Remote`].
    Error(String),
}

/// A backend's exec protocol over a WebSocket: the messages to send for the client's
/// input, and the meaning of the messages received. See the [module docs](self) for an
/// example.
pub trait ExecFraming: Send {
    /// Messages to send first, before any input (a password, a hello); none by default.
    fn opening(&mut self) -> Vec<WsMessage> {
        Vec::new()
    }

    /// The message carrying `data` read from the client's stdin.
    fn stdin(&mut self, data: &[u8]) -> WsMessage;

    /// The message telling the backend that stdin ended, if the protocol has one.
    fn stdin_closed(&mut self) -> Option<WsMessage>;

    /// The message carrying a terminal resize, if the protocol has one.
    fn resize(&mut self, size: TermSize) -> Option<WsMessage>;

    /// What a text or binary message from the backend means (close messages end the
    /// session and never reach here). An `Err` ends the session.
    fn decode(&mut self, message: WsMessage) -> Result<Vec<RemoteEvent>, BridgeError>;
}

/// Why a bridged session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// Sending to the backend failed.
    #[error("sending {what} to the backend")]
    Send {
        /// What was being sent: `opening`, `stdin`, `stdin close`, `resize`.
        what: &'static str,
        /// The WebSocket error.
        #[source]
        source: WsError,
    },
    /// Receiving from the backend failed.
    #[error("receiving from the backend")]
    Receive(#[source] WsError),
    /// Reading the client's stdin failed.
    #[error("reading the client's stdin")]
    ReadStdin(#[source] std::io::Error),
    /// Writing output to the client failed (the client went away).
    #[error("writing the command's {stream} to the client")]
    WriteOutput {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A message from the backend made no sense to the framing.
    #[error("decoding a message from the backend: {0}")]
    Decode(String),
    /// The backend reported a failure.
    #[error("the backend reported: {0}")]
    Remote(String),
}

impl From<BridgeError> for vk_errdefs::Error {
    /// Transport failures are `Unavailable`; nonsense and reported failures `Unknown`.
    fn from(err: BridgeError) -> Self {
        let kind = match &err {
            BridgeError::Send { .. }
            | BridgeError::Receive(_)
            | BridgeError::ReadStdin(_)
            | BridgeError::WriteOutput { .. } => vk_errdefs::ErrorKind::Unavailable,
            BridgeError::Decode(_) | BridgeError::Remote(_) => vk_errdefs::ErrorKind::Unknown,
        };
        vk_errdefs::Error::wrap(kind, err.to_string(), err)
    }
}

/// Runs an exec (or attach) session: pumps `io` to and from `ws` through `framing`
/// until the backend reports the exit (`Ok(Some(code))`) or closes the socket
/// (`Ok(None)`). See the [module docs](self).
pub async fn bridge<F: ExecFraming>(
    mut ws: WebSocket,
    mut framing: F,
    io: ExecIo,
) -> Result<Option<i32>, BridgeError> {
    let ExecIo {
        mut stdin,
        mut stdout,
        stderr,
        tty,
        mut resize,
    } = io;
    // With a terminal there is one output stream.
    let mut stderr = if tty { None } else { stderr };

    for message in framing.opening() {
        send(&mut ws, "opening", message).await?;
    }
    if stdin.is_none()
        && let Some(message) = framing.stdin_closed()
    {
        send(&mut ws, "stdin close", message).await?;
    }

    let mut buf = vec![0u8; STDIN_CHUNK];
    loop {
        tokio::select! {
            incoming = ws.recv() => {
                let message = match incoming {
                    None | Some(Ok(WsMessage::Close(_))) => {
                        // Completes the closing handshake when the backend started it.
                        let _ = ws.close().await;
                        return Ok(None);
                    }
                    Some(Err(err)) => return Err(BridgeError::Receive(err)),
                    Some(Ok(message)) => message,
                };
                for event in framing.decode(message)? {
                    match event {
                        RemoteEvent::Stdout(data) => write(&mut stdout, "stdout", &data).await?,
                        RemoteEvent::Stderr(data) if tty => {
                            write(&mut stdout, "stdout", &data).await?;
                        }
                        RemoteEvent::Stderr(data) => write(&mut stderr, "stderr", &data).await?,
                        RemoteEvent::Exit(code) => {
                            let _ = ws.close().await;
                            return Ok(Some(code));
                        }
                        RemoteEvent::Error(message) => return Err(BridgeError::Remote(message)),
                    }
                }
            }
            read = read_some(&mut stdin, &mut buf) => match read {
                Ok(0) => {
                    stdin = None;
                    if let Some(message) = framing.stdin_closed() {
                        send(&mut ws, "stdin close", message).await?;
                    }
                }
                Ok(n) => {
                    let message = framing.stdin(&buf[..n]);
                    send(&mut ws, "stdin", message).await?;
                }
                Err(err) => return Err(BridgeError::ReadStdin(err)),
            },
            size = next_size(&mut resize) => match size {
                Some(size) => {
                    if let Some(message) = framing.resize(size) {
                        send(&mut ws, "resize", message).await?;
                    }
                }
                None => resize = None,
            },
        }
    }
}

async fn send(
    ws: &mut WebSocket,
    what: &'static str,
    message: WsMessage,
) -> Result<(), BridgeError> {
    ws.send(message)
        .await
        .map_err(|source| BridgeError::Send { what, source })
}

/// Reads from stdin; pending for ever once there is none (EOF seen, or not attached).
async fn read_some(stdin: &mut Option<Input>, buf: &mut [u8]) -> std::io::Result<usize> {
    match stdin {
        Some(input) => input.read(buf).await,
        None => std::future::pending().await,
    }
}

/// The next resize; pending for ever once there are no more.
async fn next_size(resize: &mut Option<mpsc::Receiver<TermSize>>) -> Option<TermSize> {
    match resize {
        Some(sizes) => sizes.recv().await,
        None => std::future::pending().await,
    }
}

/// Writes and flushes `data` to `output`, or drops it when the client did not ask for
/// that stream.
async fn write(
    output: &mut Option<Output>,
    stream: &'static str,
    data: &[u8],
) -> Result<(), BridgeError> {
    let Some(output) = output else {
        return Ok(());
    };
    let result = async {
        output.write_all(data).await?;
        output.flush().await
    }
    .await;
    result.map_err(|source| BridgeError::WriteOutput { stream, source })
}
