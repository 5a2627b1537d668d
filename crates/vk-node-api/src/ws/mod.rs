//! The Kubernetes WebSocket streaming protocols, server side.
//!
//! A kubelet answers `exec` and `attach` requests made over WebSocket with one of the
//! *channel* sub-protocols, and `kubectl port-forward` (≥ 1.31) may tunnel its SPDY
//! byte stream through a WebSocket. This module implements both on top of
//! [`tokio_tungstenite`], independently of the HTTP server: the caller checks the
//! request ([`is_websocket_upgrade`], [`negotiate`] or [`negotiate_port_forward_tunnel`]),
//! returns the response built by [`switching_protocols_response`], obtains the upgraded
//! connection (with `hyper::upgrade::on`) and hands it to [`ChannelConn::server`] or
//! [`ByteTunnel::server`].
//!
//! # Channel protocols
//!
//! Every WebSocket message carries data for one numbered *channel*:
//!
//! * binary protocols (`v5.channel.k8s.io` … `channel.k8s.io`): the message is binary,
//!   its first byte is the channel number and the rest is the payload;
//! * base64 protocols (`v4.base64.channel.k8s.io`, `base64.channel.k8s.io`): the message
//!   is text, its first character is the channel number as an ASCII digit (`'0'` + n)
//!   and the rest is the payload in standard, padded base64.
//!
//! For `exec`/`attach` the channels are [`STDIN`] (0, client → server), [`STDOUT`] (1),
//! [`STDERR`] (2), [`ERROR`] (3, server → client: the final status, JSON
//! `metav1.Status` from v4 on, plain text before) and [`RESIZE`] (4, client → server,
//! one JSON `{"Width":…,"Height":…}` per message, v3 and later). Protocol v5 adds a
//! *close signal*: a binary message `[255, n]` by which the client half-closes its
//! channel `n` (in practice stdin), see [`CLOSE_SIGNAL`].
//!
//! # The "ready" message
//!
//! Right after the upgrade the kubelet (and the API server's v5 translator) writes one
//! empty message on the lowest server-writable channel the request asked for — stdout,
//! else stderr, else the error channel — to tell the client the streams are set up.
//! `kubectl` ignores empty messages, but other clients (web consoles, older libraries)
//! wait for it. [`ChannelConn`] cannot know which streams the request asked for, so it
//! does not send it by itself: call [`ChannelConn::send_ready`] once the readers and
//! writers are in place.
//!
//! # Behaviour in edge cases
//!
//! * Negotiation follows the server's preference ([`ChannelProtocol::PREFERENCE`]:
//!   v5 … v1, then the base64 ones), not the client's order; names match exactly
//!   (case-sensitively), as in the kubelet.
//! * Incoming messages are decoded with the negotiated protocol's framing whatever
//!   their WebSocket type (text or binary), as the kubelet's Go code does. Outgoing
//!   messages are binary, or text in the base64 protocols.
//! * Empty messages and malformed ones (invalid base64, a v5 close signal not followed
//!   by exactly one byte) are ignored and logged; they never end the connection.
//! * Data for a channel nobody claimed a reader for is kept, up to 256 KiB over all
//!   channels, in case the reader is claimed later (this closes the race between
//!   [`ChannelConn::server`] starting to read and the caller claiming readers); past
//!   that it is dropped. Data for a channel whose reader was dropped, or that the client
//!   half-closed, is discarded. Unknown channels are therefore ignored, never an error.
//! * In v5 the server does not send close signals itself (neither does the kubelet):
//!   its streams end with the Close of the whole connection.

mod channel;
pub(crate) mod frame; // reached by `crate::fuzzing`
mod protocol;
mod tunnel;

#[cfg(test)]
mod tests;

pub use channel::{ChannelConn, ChannelReader, ChannelWriter};
pub use protocol::{
    ChannelProtocol, PORT_FORWARD_TUNNEL_PROTOCOL, accept_key, is_websocket_upgrade, negotiate,
    negotiate_port_forward_tunnel, offered_protocols, switching_protocols_response,
};
pub use tunnel::ByteTunnel;

/// What a server-side WebSocket reads from its connection at once, and so the size of
/// the buffer every open session keeps (and zeroes) for reading.
///
/// tungstenite's default is 128 KiB, which an idle exec or port-forward session would
/// hold for nothing: client messages are small (stdin, resize, port-forward bytes in
/// at most 32 KiB writes by kubectl), and a larger message is still read whole, in
/// several reads. 16 KiB keeps reads few while a session idles in little memory.
pub const READ_BUFFER_SIZE: usize = 16 * 1024;

/// The configuration of our server-side WebSockets: tungstenite's defaults with the
/// smaller [`READ_BUFFER_SIZE`].
fn server_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
}

/// Channel 0: the process's standard input (client → server).
pub const STDIN: u8 = 0;
/// Channel 1: the process's standard output (server → client).
pub const STDOUT: u8 = 1;
/// Channel 2: the process's standard error (server → client).
pub const STDERR: u8 = 2;
/// Channel 3: the final status of the command (server → client).
pub const ERROR: u8 = 3;
/// Channel 4: terminal size changes (client → server), one JSON object per message.
pub const RESIZE: u8 = 4;
/// The pseudo-channel of the v5 close signal: a message `[CLOSE_SIGNAL, n]` half-closes
/// channel `n`.
pub const CLOSE_SIGNAL: u8 = 255;

/// A failure of a WebSocket operation; the variant names the operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// Validating the upgrade request: it does not ask for a WebSocket
    /// (`Upgrade: websocket` and `Connection: upgrade` are required).
    #[error("WebSocket handshake: the request is not a WebSocket upgrade")]
    NotWebSocketUpgrade,
    /// Validating the upgrade request: `Sec-WebSocket-Version` is missing (empty string)
    /// or is not 13.
    #[error("WebSocket handshake: unsupported Sec-WebSocket-Version {0:?} (13 is required)")]
    UnsupportedVersion(String),
    /// Validating the upgrade request: `Sec-WebSocket-Key` is missing or is not the
    /// base64 form of 16 bytes.
    #[error("WebSocket handshake: missing or invalid Sec-WebSocket-Key")]
    InvalidKey,
    /// Building the 101 response: the chosen sub-protocol is not one the client offered.
    #[error("WebSocket handshake: sub-protocol {0:?} was not offered by the client")]
    ProtocolNotOffered(String),
    /// Building the 101 response failed.
    #[error("building the WebSocket 101 response: {0}")]
    BuildResponse(#[source] http::Error),
    /// Sending a message failed (the connection is broken or already closed).
    #[error("sending a WebSocket message: {0}")]
    Send(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// Receiving a message failed (protocol violation, broken connection).
    #[error("receiving a WebSocket message: {0}")]
    Receive(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// Receiving on the port-forward tunnel: the peer sent a text message where only
    /// binary messages are allowed.
    #[error("receiving on the WebSocket tunnel: unexpected text message")]
    UnexpectedTextMessage,
    /// Queueing a message: the connection has been closed (by either side) or its
    /// writer has stopped after an error.
    #[error("writing to the WebSocket: the connection is closed")]
    ConnectionClosed,
}
