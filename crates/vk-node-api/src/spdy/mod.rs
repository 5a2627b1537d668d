//! SPDY/3.1, server side, as Kubernetes streaming uses it.
//!
//! `kubectl exec`, `attach` and `port-forward` reach a kubelet through the API server
//! as an HTTP request upgraded to `SPDY/3.1` (the upgrade itself is handled
//! elsewhere). On the upgraded byte stream the client (Go's `spdystream`, through
//! `k8s.io/apimachinery/pkg/util/httpstream/spdy`) opens one SPDY stream per channel —
//! `streamtype: error`, `stdin`, `stdout`, `stderr`, `resize` for exec/attach; `data`
//! and `error` plus `port` and `requestid` for port-forward — and the kubelet, the
//! server, accepts each with SYN_REPLY and then exchanges DATA on it.
//!
//! # Where to start
//!
//! Call [`serve`] with the upgraded connection and a [`SessionConfig`]. It spawns the
//! I/O task and returns a [`Session`] (to [`close`](Session::close) it or wait until it
//! is [`closed`](Session::closed)) and an [`Incoming`] to [`accept`](Incoming::accept)
//! the peer's streams. Look at a [`Stream`]'s [`headers`](Stream::headers), call
//! [`reply`](Stream::reply), then [`split`](Stream::split) it into a [`StreamReader`]
//! (`AsyncRead`) and a [`StreamWriter`] (`AsyncWrite`; shut it down to half-close).
//!
//! ```no_run
//! # async fn example(conn: tokio::net::TcpStream) -> Result<(), vk_node_api::spdy::SpdyError> {
//! use vk_node_api::spdy::{SessionConfig, serve};
//!
//! let (session, mut incoming) = serve(conn, SessionConfig::default());
//! while let Some(stream) = incoming.accept().await {
//!     let kind = stream.headers().get("streamtype").unwrap_or_default().to_owned();
//!     stream.reply().await?;
//!     let (reader, writer) = stream.split();
//!     // ... hand `reader` / `writer` to the stdin / stdout / ... plumbing by `kind`.
//! #   drop((kind, reader, writer));
//! }
//! session.closed().await;
//! # Ok(())
//! # }
//! ```
//!
//! The layers below are public too: [`frame`] (the [`Frame`] enum, its encoding and the
//! [`FrameCodec`]) and [`headers`] (name/value blocks and their zlib compression with
//! the SPDY/3 dictionary).
//!
//! # Caveats
//!
//! * Flow control: see [`SendWindowMode`]. By default the session enforces the peer's
//!   windows only once the peer shows it implements them, because `spdystream` never
//!   sends WINDOW_UPDATE. Received data is not checked against our windows; memory is
//!   bounded by pausing reads from the connection instead (a stream nobody reads stalls
//!   the whole session, as with `spdystream`).
//! * Only the server role is implemented: the session never opens streams (no server
//!   push) and never pings.
//! * HEADERS frames from the peer are decoded (to keep the zlib state in step) but their
//!   headers are not surfaced; their FIN flag is honoured.
//! * Header blocks the peer sends must be valid UTF-8; uppercase names are lowercased.
//! * `flate2` is built with its pure-Rust backend, which cannot load a zlib preset
//!   dictionary; [`headers`] explains how the dictionary is applied instead.
//!
//! # Layout
//!
//! The module is self-contained: it uses nothing else from `vk-node-api`, only `bytes`,
//! `flate2`, `futures`, `thiserror`, `tokio`, `tokio-util` and `tracing` (plus
//! `proptest` and Tokio's `test-util` in its tests), and refers to its own parts by
//! relative paths, so it can move to a crate of its own as it is. The Kubernetes side
//! (the HTTP upgrade, which stream carries what) stays with its users in `vk-node-api`:
//! the `upgrade`, `remotecommand` and `portforward` modules.
//!
//! * [`frame`]: frame types, their encoding and decoding, [`FrameCodec`];
//! * [`headers`]: name/value blocks and their zlib streams;
//! * `session/`: [`serve`], the handles, the shared state and the I/O task;
//! * `error.rs`: [`SpdyError`];
//! * `tests/`: the unit tests, one file per layer (the session's by topic).

mod error;
pub mod frame;
pub mod headers;
mod session;
#[cfg(test)]
mod tests;

pub use error::SpdyError;
pub use frame::{Frame, FrameCodec, GoAwayStatus, RstStatus, Setting};
pub use headers::{HeaderCompressor, HeaderDecompressor, Headers};
pub use session::{
    Incoming, MAX_DATA_FRAME_PAYLOAD, SendWindowMode, Session, SessionConfig, Stream, StreamReader,
    StreamWriter, serve,
};
