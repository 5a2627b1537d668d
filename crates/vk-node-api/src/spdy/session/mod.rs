//! The server side of a SPDY/3.1 session: [`serve`] and the handles it returns.
//!
//! # Architecture
//!
//! [`serve`] spawns one I/O task that owns the connection and the [`FrameCodec`]
//! (hence both zlib streams). Everything else — the [`Session`], [`Incoming`] and the
//! stream halves — shares a small state object behind a mutex with it:
//!
//! * frames read from the peer are applied to that state (data appended to the
//!   stream's receive buffer, windows updated, wakers woken);
//! * handles never touch the connection: they queue frames (SYN_REPLY, DATA,
//!   RST_STREAM, WINDOW_UPDATE...) and wake the I/O task, which encodes and writes them
//!   in queue order. PING answers and WINDOW_UPDATEs go through a separate queue that
//!   is written first.
//!
//! # Flow control
//!
//! * Sending: each DATA frame is charged to the stream's and the session's send
//!   windows (initially 64 KiB each, SPDY/3.1). With [`SendWindowMode::Enforce`] a
//!   writer parks while either window is exhausted, until the peer's WINDOW_UPDATE (or a
//!   larger SETTINGS_INITIAL_WINDOW_SIZE) arrives. With [`SendWindowMode::Detect`], the
//!   default, the windows are enforced only once the peer has shown it implements flow
//!   control by sending a WINDOW_UPDATE or SETTINGS_INITIAL_WINDOW_SIZE: Go's
//!   `spdystream`, which `kubectl` and the API server use, never sends WINDOW_UPDATE,
//!   and enforcing windows against it would stall every stream after 64 KiB.
//! * Receiving: the session returns credit (WINDOW_UPDATE for the stream and for the
//!   session, stream id 0) as the application reads, once half a window has been
//!   consumed. Since `spdystream` ignores windows, received data is not checked
//!   against them; instead, memory is bounded by backpressure: while more than a
//!   window's worth of received data sits unread, the session stops reading from the
//!   connection (as `spdystream` does), which also holds up the other streams.
//!
//! # Ending
//!
//! The session ends when the peer closes the connection, on an I/O error, on a protocol
//! error by the peer (after sending GOAWAY PROTOCOL_ERROR), on [`Session::close`], on the
//! idle timeout, after the peer's GOAWAY once no stream is left, or when every handle
//! ([`Session`], [`Incoming`], streams and their halves) is dropped. Frames already
//! queued are written before our GOAWAY, within a 10 s grace period.
//!
//! # Layout
//!
//! * this file: [`serve`] and its [`SessionConfig`];
//! * `handles.rs`: what the application holds ([`Session`], [`Incoming`], [`Stream`],
//!   [`StreamReader`], [`StreamWriter`]);
//! * `state.rs`: the state they share with the I/O task (stream table, windows, send
//!   queues) and the bookkeeping on it;
//! * `stream_ops.rs`: what reading, writing, flushing, shutting down, resetting and
//!   dropping a stream do to that state;
//! * `dispatch.rs`: what each frame received from the peer does to it;
//! * `driver.rs`: the I/O task (reading, writing, idle timeout, draining on close).

mod dispatch;
mod driver;
mod handles;
mod state;
mod stream_ops;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use super::frame::{
    DEFAULT_INITIAL_WINDOW, DEFAULT_MAX_FRAME_LEN, Frame, FrameCodec, MAX_FRAME_PAYLOAD,
    MAX_WINDOW, SETTINGS_INITIAL_WINDOW_SIZE, Setting,
};
use driver::{Connection, Idle};
use handles::Handle;
use state::{Inner, Shared, State};

pub use handles::{Incoming, Session, Stream, StreamReader, StreamWriter};

/// Largest DATA payload the session sends in one frame.
pub const MAX_DATA_FRAME_PAYLOAD: usize = 16 * 1024;

/// How the session treats the peer's receive windows when sending DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendWindowMode {
    /// Always respect the peer's windows, as SPDY/3.1 requires: writers park when the
    /// stream's or the session's window is exhausted, until WINDOW_UPDATE arrives.
    Enforce,
    /// Respect the peer's windows once it has shown that it implements flow control (a
    /// WINDOW_UPDATE or SETTINGS_INITIAL_WINDOW_SIZE received); until then send freely,
    /// as Go's `spdystream` (the Kubernetes client side, which never sends
    /// WINDOW_UPDATE) expects.
    #[default]
    Detect,
}

/// Parameters of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Receive window of each stream, in bytes (SPDY/3.1 default: 64 KiB). A value
    /// other than the default is announced with SETTINGS_INITIAL_WINDOW_SIZE, and a
    /// larger one also enlarges the session window. Also sets how much unread data the
    /// session buffers before it stops reading (see the module docs). Clamped to
    /// 1..=2^31-1.
    pub initial_window: u32,
    /// Close the session (GOAWAY OK) when no frame was received or sent for this long.
    pub idle_timeout: Option<Duration>,
    /// Largest frame payload accepted from the peer; a larger frame ends the session
    /// with GOAWAY PROTOCOL_ERROR. At most (and by default) 16 MiB - 1, the wire limit.
    /// `spdystream` writes what the application gives it in one DATA frame (32 KiB
    /// for `io.Copy`), so do not go much lower.
    pub max_frame_len: usize,
    /// Whether to wait for the peer's WINDOW_UPDATEs when sending.
    pub send_window: SendWindowMode,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            initial_window: DEFAULT_INITIAL_WINDOW,
            idle_timeout: None,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            send_window: SendWindowMode::default(),
        }
    }
}

/// Starts serving a SPDY/3.1 session on `io`, an upgraded connection of which we are
/// the server side.
///
/// Spawns the I/O task with `tokio::spawn` (so it must be called within a Tokio
/// runtime) and returns the [`Session`] (to close it or wait for its end) and the
/// [`Incoming`] queue of streams the peer opens.
pub fn serve<T>(io: T, config: SessionConfig) -> (Session, Incoming)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let initial_window = config.initial_window.clamp(1, MAX_WINDOW);
    let session_window = initial_window.max(DEFAULT_INITIAL_WINDOW);
    let mut inner = Inner {
        state: State::Open,
        mode: config.send_window,
        peer_flow_control: false,
        peer_initial_window: i64::from(DEFAULT_INITIAL_WINDOW),
        session_send_window: i64::from(DEFAULT_INITIAL_WINDOW),
        stream_ack_threshold: (initial_window / 2).max(1),
        session_ack_threshold: (session_window / 2).max(1),
        session_recv_unacked: 0,
        recv_buffer_limit: session_window as usize,
        buffered: 0,
        read_paused: false,
        streams: HashMap::new(),
        last_peer_stream_id: 0,
        peer_goaway: false,
        pending_accept: VecDeque::new(),
        accept_waker: None,
        incoming_alive: true,
        handles: 0,
        urgent: VecDeque::new(),
        queue: VecDeque::new(),
        next_seq: 1,
        flushed_seq: 0,
        queued_data: 0,
        io_waker: None,
    };
    if initial_window != DEFAULT_INITIAL_WINDOW {
        inner.urgent.push_back(Frame::Settings {
            flags: 0,
            entries: vec![Setting {
                flags: 0,
                id: SETTINGS_INITIAL_WINDOW_SIZE,
                value: initial_window,
            }],
        });
    }
    if session_window > DEFAULT_INITIAL_WINDOW {
        inner.urgent.push_back(Frame::WindowUpdate {
            stream_id: 0,
            delta: session_window - DEFAULT_INITIAL_WINDOW,
        });
    }
    let (closed_tx, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        inner: Mutex::new(inner),
        closed: closed_tx,
    });
    let (session, incoming) = {
        let mut inner = shared.lock();
        (
            Session {
                handle: Handle::new(&shared, &mut inner),
            },
            Incoming {
                handle: Handle::new(&shared, &mut inner),
            },
        )
    };
    let idle = config.idle_timeout.map(|timeout| Idle {
        timeout,
        last_activity: Instant::now(),
        sleep: Box::pin(tokio::time::sleep(timeout)),
    });
    let conn = Connection {
        io,
        shared,
        codec: FrameCodec::with_max_frame_len(config.max_frame_len.min(MAX_FRAME_PAYLOAD)),
        read_buf: BytesMut::new(),
        write_buf: BytesMut::new(),
        batch: Vec::new(),
        encoded_seq: 0,
        needs_flush: false,
        idle,
        drain: None,
        shutting_down: false,
    };
    tokio::spawn(conn.run());
    (session, incoming)
}
