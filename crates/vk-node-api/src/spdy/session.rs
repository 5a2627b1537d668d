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

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_util::io::poll_read_buf;

use super::SpdyError;
use super::frame::{
    DEFAULT_INITIAL_WINDOW, DEFAULT_MAX_FRAME_LEN, FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame,
    FrameCodec, GoAwayStatus, MAX_FRAME_PAYLOAD, MAX_WINDOW, RstStatus,
    SETTINGS_INITIAL_WINDOW_SIZE, Setting,
};
use super::headers::Headers;

/// Largest DATA payload the session sends in one frame.
pub const MAX_DATA_FRAME_PAYLOAD: usize = 16 * 1024;
/// DATA bytes that may wait in the send queue (over all streams) before writers park.
const MAX_QUEUED_DATA: usize = 256 * 1024;
/// The I/O task encodes queued frames until this many bytes await writing.
const WRITE_BUF_TARGET: usize = 64 * 1024;
/// Free room ensured in the read buffer before each read.
const READ_RESERVE: usize = 16 * 1024;
/// Streams opened by the peer but not yet accepted; more are refused.
const MAX_PENDING_ACCEPT: usize = 1024;
/// Frames waiting in the send queues (both) beyond which the session stops reading
/// until the writes catch up. Frames the peer makes us send (PING answers, RST_STREAM
/// for frames on unknown streams...) would otherwise pile up without bound when the
/// peer sends them faster than it reads, or never reads.
const MAX_QUEUED_FRAMES: usize = 1024;
/// How long queued frames, our GOAWAY and the connection shutdown may take once the
/// session is closing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames decoded per round of the I/O loop, so that writing gets its turn.
const FRAMES_PER_ROUND: usize = 64;
/// Rounds of the I/O loop before it yields to the runtime.
const ROUNDS_PER_POLL: usize = 32;

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

/// Handle on a running session: close it, or wait for its end.
///
/// Cloning gives another handle on the same session. The session keeps running while
/// any handle (this, [`Incoming`], a stream or a stream half) is alive.
pub struct Session {
    handle: Handle,
}

impl Session {
    /// Closes the session: sends GOAWAY (status OK) after the frames already queued,
    /// then shuts the connection down, and waits for that to finish. Streams still
    /// open see [`SpdyError::ConnectionClosed`].
    pub async fn close(&self) {
        self.handle.shared.lock().begin_close(GoAwayStatus::OK);
        self.closed().await;
    }

    /// Resolves once the session has ended and the I/O task has let go of the
    /// connection.
    pub async fn closed(&self) {
        let mut rx = self.handle.shared.closed.subscribe();
        // An error means the sender is gone, which also means the end.
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        *self.handle.shared.closed.borrow()
    }
}

impl Clone for Session {
    fn clone(&self) -> Self {
        let mut inner = self.handle.shared.lock();
        Session {
            handle: Handle::new(&self.handle.shared, &mut inner),
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The streams the peer opens, in the order it opened them.
///
/// Dropping it refuses (RST_STREAM REFUSED_STREAM) the streams not yet accepted and
/// all later ones.
pub struct Incoming {
    handle: Handle,
}

impl Incoming {
    /// The next stream opened by the peer, or `None` once the session is closing or
    /// has ended, or the peer sent GOAWAY and every stream it opened before was taken.
    pub async fn accept(&mut self) -> Option<Stream> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polling form of [`Incoming::accept`].
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Option<Stream>> {
        let shared = &self.handle.shared;
        let mut inner = shared.lock();
        if inner.state != State::Open {
            return Poll::Ready(None);
        }
        if let Some(pending) = inner.pending_accept.pop_front() {
            if let Some(st) = inner.streams.get_mut(&pending.id) {
                st.accepted = true;
            }
            let handle = Handle::new(shared, &mut inner);
            return Poll::Ready(Some(Stream {
                handle,
                id: pending.id,
                headers: pending.headers,
                priority: pending.priority,
                split: false,
            }));
        }
        if inner.peer_goaway {
            return Poll::Ready(None);
        }
        set_waker(&mut inner.accept_waker, cx);
        Poll::Pending
    }
}

impl futures::Stream for Incoming {
    type Item = Stream;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Stream>> {
        self.get_mut().poll_accept(cx)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        let mut inner = self.handle.shared.lock();
        inner.incoming_alive = false;
        inner.accept_waker = None;
        while let Some(pending) = inner.pending_accept.pop_front() {
            inner.discard_stream(pending.id);
            if inner.state == State::Open {
                inner.enqueue(Frame::RstStream {
                    stream_id: pending.id,
                    status: RstStatus::REFUSED_STREAM,
                });
            }
        }
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}

/// A stream opened by the peer, not yet split into its reading and writing halves.
///
/// Call [`Stream::reply`] to accept it (or [`Stream::reset`] to refuse it), then
/// [`Stream::split`] it. Dropping the stream — or both of its halves — before it is
/// closed in both directions resets it with CANCEL.
pub struct Stream {
    handle: Handle,
    id: u32,
    headers: Headers,
    priority: u8,
    split: bool,
}

impl Stream {
    /// The stream id (odd: opened by the client).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers of the peer's SYN_STREAM.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The priority of the peer's SYN_STREAM (0 highest, 7 lowest); informational.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Accepts the stream: sends SYN_REPLY with no headers and without FIN, and waits
    /// until it is written. Must be called before writing. Calling it again does
    /// nothing more; on a unidirectional stream (we may not send) it does nothing.
    pub async fn reply(&self) -> Result<(), SpdyError> {
        let shared = &self.handle.shared;
        let seq = {
            let mut inner = shared.lock();
            let inner = &mut *inner;
            if inner.state != State::Open {
                return Err(SpdyError::ConnectionClosed);
            }
            let st = inner
                .streams
                .get_mut(&self.id)
                .ok_or(SpdyError::ConnectionClosed)?;
            if let Some(status) = st.reset {
                return Err(SpdyError::StreamReset { status });
            }
            if st.unidirectional {
                return Ok(());
            }
            if st.replied {
                st.reply_seq
            } else {
                st.replied = true;
                let seq = inner.enqueue(Frame::SynReply {
                    stream_id: self.id,
                    flags: 0,
                    headers: Headers::new(),
                });
                if let Some(st) = inner.streams.get_mut(&self.id) {
                    st.reply_seq = seq;
                }
                seq
            }
        };
        poll_fn(|cx| shared.lock().poll_flushed(self.id, seq, cx)).await
    }

    /// Resets the stream (RST_STREAM with `status`, e.g. [`RstStatus::REFUSED_STREAM`]
    /// to refuse it). Data queued on it and not yet written is dropped.
    pub fn reset(&self, status: RstStatus) -> Result<(), SpdyError> {
        self.handle.shared.lock().reset_by_app(self.id, status)
    }

    /// Splits the stream into its reading and writing halves.
    pub fn split(mut self) -> (StreamReader, StreamWriter) {
        let shared = Arc::clone(&self.handle.shared);
        let mut inner = shared.lock();
        let reader = StreamReader {
            handle: Handle::new(&shared, &mut inner),
            id: self.id,
        };
        let writer = StreamWriter {
            handle: Handle::new(&shared, &mut inner),
            id: self.id,
        };
        drop(inner);
        self.split = true;
        (reader, writer)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if !self.split {
            let mut inner = self.handle.shared.lock();
            inner.release(self.id, true, true);
        }
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .finish()
    }
}

/// The reading half of a stream: the data the peer sends.
///
/// Reads return end of file once the peer half-closed the stream (FIN) and the data
/// before it was read; they fail with [`SpdyError::StreamReset`] once the stream was
/// reset, and with [`SpdyError::ConnectionClosed`] if the session ended before FIN (the
/// `io::Error` wraps the [`SpdyError`]). Reading returns flow-control credit to the
/// peer. Dropping the reader discards what arrives later on the stream.
pub struct StreamReader {
    handle: Handle,
    id: u32,
}

impl StreamReader {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let id = self.id;
        self.handle.shared.lock().poll_read(id, cx, buf)
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        self.handle.shared.lock().release(self.id, true, false);
    }
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("id", &self.id)
            .finish()
    }
}

/// The writing half of a stream: sends DATA frames.
///
/// A write queues at most [`MAX_DATA_FRAME_PAYLOAD`] bytes, and no more than the send
/// windows allow when they are enforced (see [`SendWindowMode`]); it parks while the
/// windows are exhausted or the session's send queue is full. `poll_flush` waits until
/// the queued data has been written to the connection. `poll_shutdown` half-closes the
/// stream (an empty DATA frame with FIN) and waits for it to be written; dropping the
/// writer without shutting it down leaves the stream open until the reader is dropped
/// too, which then resets it.
pub struct StreamWriter {
    handle: Handle,
    id: u32,
}

impl StreamWriter {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Resets the stream (RST_STREAM with `status`). Data queued and not yet written
    /// is dropped; the reader fails from now on.
    pub fn reset(&self, status: RstStatus) -> Result<(), SpdyError> {
        self.handle.shared.lock().reset_by_app(self.id, status)
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let id = self.id;
        self.handle
            .shared
            .lock()
            .poll_write(id, cx, buf)
            .map_err(io::Error::from)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let id = self.id;
        let mut inner = self.handle.shared.lock();
        let seq = inner.streams.get(&id).map_or(0, |st| st.last_seq);
        inner.poll_flushed(id, seq, cx).map_err(io::Error::from)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let id = self.id;
        self.handle
            .shared
            .lock()
            .poll_shutdown(id, cx)
            .map_err(io::Error::from)
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        self.handle.shared.lock().release(self.id, false, true);
    }
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("id", &self.id)
            .finish()
    }
}

/// State shared by the I/O task and the handles.
struct Shared {
    inner: Mutex<Inner>,
    /// Set to `true` when the I/O task is done.
    closed: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent between statements, so a panic elsewhere while
        // holding the lock does not make it unusable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts as one live handle on the session for as long as it exists.
struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    fn new(shared: &Arc<Shared>, inner: &mut Inner) -> Self {
        inner.handles += 1;
        Handle {
            shared: Arc::clone(shared),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.handles = inner.handles.saturating_sub(1);
        if inner.handles == 0 {
            inner.wake_io();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Normal operation.
    Open,
    /// Our GOAWAY is queued: no new frames from the application, no more reading.
    Closing,
    /// The I/O task is done.
    Closed,
}

/// A stream waiting in [`Incoming`].
struct PendingStream {
    id: u32,
    headers: Headers,
    priority: u8,
}

/// A frame in the ordered send queue, with its sequence number.
struct Queued {
    frame: Frame,
    seq: u64,
}

struct StreamState {
    /// Received data not yet read.
    recv: VecDeque<Bytes>,
    /// The peer half-closed the stream.
    recv_fin: bool,
    /// Bytes read (or discarded) and not yet returned to the peer by a WINDOW_UPDATE.
    recv_unacked: u32,
    /// What we may still send before the peer's next WINDOW_UPDATE (may go negative
    /// when the peer lowers SETTINGS_INITIAL_WINDOW_SIZE, or while not enforced).
    send_window: i64,
    /// SYN_REPLY queued.
    replied: bool,
    /// Sequence number of the SYN_REPLY.
    reply_seq: u64,
    /// FIN queued (or the stream is unidirectional): we send no more.
    local_fin: bool,
    /// The stream was reset, by either side.
    reset: Option<RstStatus>,
    /// We may not send at all.
    unidirectional: bool,
    /// The reading side is still owned by the application (or waiting in Incoming).
    reader_alive: bool,
    /// The writing side is still owned by the application (or waiting in Incoming).
    writer_alive: bool,
    /// Handed out by [`Incoming`].
    accepted: bool,
    /// Sequence number of the last frame queued for this stream.
    last_seq: u64,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    /// The writer waits for room in the send queue.
    waiting_space: bool,
    /// The writer waits for its frames to be flushed.
    waiting_flush: bool,
}

impl StreamState {
    fn fully_closed(&self) -> bool {
        self.reset.is_some() || (self.local_fin && self.recv_fin)
    }

    fn wake_reader(&mut self) {
        if let Some(waker) = self.read_waker.take() {
            waker.wake();
        }
    }

    fn wake_writer(&mut self) {
        if let Some(waker) = self.write_waker.take() {
            waker.wake();
        }
    }
}

struct Inner {
    state: State,
    mode: SendWindowMode,
    /// The peer sent WINDOW_UPDATE or SETTINGS_INITIAL_WINDOW_SIZE.
    peer_flow_control: bool,
    /// Send window of new streams (the peer's SETTINGS_INITIAL_WINDOW_SIZE).
    peer_initial_window: i64,
    session_send_window: i64,
    stream_ack_threshold: u32,
    session_ack_threshold: u32,
    session_recv_unacked: u32,
    /// Unread received bytes beyond which reading pauses.
    recv_buffer_limit: usize,
    /// Unread received bytes over all streams.
    buffered: usize,
    read_paused: bool,
    streams: HashMap<u32, StreamState>,
    last_peer_stream_id: u32,
    peer_goaway: bool,
    pending_accept: VecDeque<PendingStream>,
    accept_waker: Option<Waker>,
    incoming_alive: bool,
    /// Live [`Handle`]s.
    handles: usize,
    /// Frames written before the ordered queue (PING answers, WINDOW_UPDATE, SETTINGS).
    urgent: VecDeque<Frame>,
    /// Frames written in order (SYN_REPLY, DATA, RST_STREAM, GOAWAY).
    queue: VecDeque<Queued>,
    next_seq: u64,
    /// Every queued frame with a sequence number up to this one has been flushed.
    flushed_seq: u64,
    /// DATA payload bytes in `queue`.
    queued_data: usize,
    io_waker: Option<Waker>,
}

impl Inner {
    fn enforcing(&self) -> bool {
        self.mode == SendWindowMode::Enforce || self.peer_flow_control
    }

    fn wake_io(&mut self) {
        if let Some(waker) = &self.io_waker {
            waker.wake_by_ref();
        }
    }

    /// Queues a frame in order; returns its sequence number.
    fn enqueue(&mut self, frame: Frame) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Frame::Data { data, .. } = &frame {
            self.queued_data += data.len();
        }
        if let Some(id) = frame.stream_id()
            && let Some(st) = self.streams.get_mut(&id)
        {
            st.last_seq = seq;
        }
        self.queue.push_back(Queued { frame, seq });
        self.wake_io();
        seq
    }

    fn enqueue_urgent(&mut self, frame: Frame) {
        self.urgent.push_back(frame);
        self.wake_io();
    }

    /// Starts closing: GOAWAY after what is queued, then shutdown.
    fn begin_close(&mut self, status: GoAwayStatus) {
        if self.state != State::Open {
            return;
        }
        tracing::debug!(%status, "closing SPDY session");
        self.state = State::Closing;
        self.enqueue(Frame::GoAway {
            last_good_stream_id: self.last_peer_stream_id,
            status,
        });
        self.wake_all();
    }

    /// The I/O task is done: fail everything still waiting.
    fn finish(&mut self) {
        self.state = State::Closed;
        self.urgent.clear();
        self.queue.clear();
        self.queued_data = 0;
        while let Some(pending) = self.pending_accept.pop_front() {
            self.streams.remove(&pending.id);
        }
        self.io_waker = None;
        self.wake_all();
    }

    fn wake_all(&mut self) {
        for st in self.streams.values_mut() {
            st.wake_reader();
            st.wake_writer();
        }
        if let Some(waker) = self.accept_waker.take() {
            waker.wake();
        }
    }

    /// Returns `n` consumed bytes of flow-control credit to the peer, for the stream
    /// (if given and still receiving) and for the session.
    fn ack(&mut self, stream_id: Option<u32>, n: usize) {
        if n == 0 || self.state != State::Open {
            return;
        }
        let n = u32::try_from(n).unwrap_or(MAX_WINDOW);
        if let Some(id) = stream_id
            && let Some(st) = self.streams.get_mut(&id)
            && !st.recv_fin
            && st.reset.is_none()
        {
            st.recv_unacked = st.recv_unacked.saturating_add(n);
            if st.recv_unacked >= self.stream_ack_threshold {
                let delta = std::mem::take(&mut st.recv_unacked).min(MAX_WINDOW);
                self.enqueue_urgent(Frame::WindowUpdate {
                    stream_id: id,
                    delta,
                });
            }
        }
        self.session_recv_unacked = self.session_recv_unacked.saturating_add(n);
        if self.session_recv_unacked >= self.session_ack_threshold {
            let delta = std::mem::take(&mut self.session_recv_unacked).min(MAX_WINDOW);
            self.enqueue_urgent(Frame::WindowUpdate {
                stream_id: 0,
                delta,
            });
        }
    }

    /// Drops the unread data of a stream, returning its credit to the peer: for the
    /// session, and for the stream too if `stream_credit` (it may still receive).
    fn drop_buffered(&mut self, id: u32, stream_credit: bool) {
        let Some(st) = self.streams.get_mut(&id) else {
            return;
        };
        let n: usize = st.recv.drain(..).map(|chunk| chunk.len()).sum();
        self.unbuffer(n);
        self.ack(stream_credit.then_some(id), n);
    }

    /// `n` buffered bytes left the receive buffers.
    fn unbuffer(&mut self, n: usize) {
        self.buffered = self.buffered.saturating_sub(n);
        if self.read_paused && self.buffered <= self.recv_buffer_limit {
            self.read_paused = false;
            self.wake_io();
        }
    }

    /// Forgets a stream nobody holds.
    fn discard_stream(&mut self, id: u32) {
        self.drop_buffered(id, false);
        self.streams.remove(&id);
    }

    /// Removes the frames of a stream not yet written.
    fn purge_queue(&mut self, id: u32) {
        let before = self.queued_data;
        let mut purged = 0;
        self.queue.retain(|queued| {
            if queued.frame.stream_id() != Some(id) {
                return true;
            }
            if let Frame::Data { data, .. } = &queued.frame {
                purged += data.len();
            }
            false
        });
        self.queued_data -= purged;
        if before >= MAX_QUEUED_DATA && self.queued_data < MAX_QUEUED_DATA {
            self.wake_space_waiters();
        }
    }

    fn wake_space_waiters(&mut self) {
        for st in self.streams.values_mut() {
            if st.waiting_space {
                st.waiting_space = false;
                st.wake_writer();
            }
        }
    }

    /// Resets a stream from our side.
    fn reset_stream(&mut self, id: u32, status: RstStatus) {
        let Some(st) = self.streams.get_mut(&id) else {
            return;
        };
        if st.reset.is_some() {
            return;
        }
        st.reset = Some(status);
        st.wake_reader();
        st.wake_writer();
        self.drop_buffered(id, false);
        self.purge_queue(id);
        self.enqueue(Frame::RstStream {
            stream_id: id,
            status,
        });
    }

    fn reset_by_app(&mut self, id: u32, status: RstStatus) -> Result<(), SpdyError> {
        if self.state != State::Open {
            return Err(SpdyError::ConnectionClosed);
        }
        match self.streams.get(&id) {
            None => Err(SpdyError::ConnectionClosed),
            Some(st) if st.reset.is_some() => Ok(()),
            Some(_) => {
                tracing::debug!(stream_id = id, %status, "resetting SPDY stream");
                self.reset_stream(id, status);
                Ok(())
            }
        }
    }

    /// The application let go of the reading and/or writing side of a stream.
    fn release(&mut self, id: u32, reader: bool, writer: bool) {
        let Some(st) = self.streams.get_mut(&id) else {
            return;
        };
        if writer {
            st.writer_alive = false;
            st.write_waker = None;
        }
        if reader {
            st.reader_alive = false;
            st.read_waker = None;
            self.drop_buffered(id, true);
        }
        let Some(st) = self.streams.get(&id) else {
            return;
        };
        if st.reader_alive || st.writer_alive {
            return;
        }
        if !st.fully_closed() && self.state == State::Open {
            tracing::debug!(stream_id = id, "SPDY stream dropped while open, resetting");
            self.reset_stream(id, RstStatus::CANCEL);
        }
        self.streams.remove(&id);
        if self.peer_goaway {
            // The I/O task ends the session once the peer sent GOAWAY and no stream is
            // left, but only checks when it runs: a stream closed in both directions
            // goes without queueing a frame, so nothing else would wake it.
            self.wake_io();
        }
    }

    /// Whether `id` is a stream the peer never opened (ours would be even).
    fn never_opened(&self, id: u32) -> bool {
        id.is_multiple_of(2) || id > self.last_peer_stream_id
    }

    /// A frame for a stream we do not know: reset it if it was never opened, ignore it
    /// if it is a stream that is gone.
    fn unknown_stream(&mut self, id: u32, kind: &str) {
        if self.never_opened(id) && self.state == State::Open {
            tracing::debug!(stream_id = id, kind, "SPDY frame for a stream never opened");
            self.enqueue(Frame::RstStream {
                stream_id: id,
                status: RstStatus::INVALID_STREAM,
            });
        } else {
            tracing::trace!(
                stream_id = id,
                kind,
                "SPDY frame for a closed stream ignored"
            );
        }
    }

    fn poll_flushed(
        &mut self,
        id: u32,
        seq: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SpdyError>> {
        if self.flushed_seq >= seq {
            return Poll::Ready(Ok(()));
        }
        if self.state == State::Closed {
            return Poll::Ready(Err(SpdyError::ConnectionClosed));
        }
        let Some(st) = self.streams.get_mut(&id) else {
            return Poll::Ready(Err(SpdyError::ConnectionClosed));
        };
        if let Some(status) = st.reset {
            return Poll::Ready(Err(SpdyError::StreamReset { status }));
        }
        st.waiting_flush = true;
        set_waker(&mut st.write_waker, cx);
        Poll::Pending
    }

    fn poll_read(
        &mut self,
        id: u32,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(st) = self.streams.get_mut(&id) else {
            return Poll::Ready(Err(SpdyError::ConnectionClosed.into()));
        };
        if let Some(status) = st.reset {
            return Poll::Ready(Err(SpdyError::StreamReset { status }.into()));
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut n = 0;
        while buf.remaining() > 0 {
            let Some(chunk) = st.recv.front_mut() else {
                break;
            };
            let take = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..take]);
            chunk.advance(take);
            if chunk.is_empty() {
                st.recv.pop_front();
            }
            n += take;
        }
        if n > 0 {
            self.unbuffer(n);
            self.ack(Some(id), n);
            return Poll::Ready(Ok(()));
        }
        if st.recv_fin {
            return Poll::Ready(Ok(()));
        }
        if self.state == State::Closed {
            return Poll::Ready(Err(SpdyError::ConnectionClosed.into()));
        }
        set_waker(&mut st.read_waker, cx);
        Poll::Pending
    }

    fn poll_write(
        &mut self,
        id: u32,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, SpdyError>> {
        if self.state != State::Open {
            return Poll::Ready(Err(SpdyError::ConnectionClosed));
        }
        let enforcing = self.enforcing();
        let session_window = self.session_send_window;
        let queue_full = self.queued_data >= MAX_QUEUED_DATA;
        let Some(st) = self.streams.get_mut(&id) else {
            return Poll::Ready(Err(SpdyError::ConnectionClosed));
        };
        if let Some(status) = st.reset {
            return Poll::Ready(Err(SpdyError::StreamReset { status }));
        }
        if st.local_fin {
            return Poll::Ready(Err(SpdyError::StreamClosed));
        }
        if !st.replied {
            return Poll::Ready(Err(SpdyError::NotReplied));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if queue_full {
            st.waiting_space = true;
            set_waker(&mut st.write_waker, cx);
            return Poll::Pending;
        }
        let mut n = buf.len().min(MAX_DATA_FRAME_PAYLOAD);
        if enforcing {
            let window = st.send_window.min(session_window);
            if window <= 0 {
                set_waker(&mut st.write_waker, cx);
                return Poll::Pending;
            }
            n = n.min(usize::try_from(window).unwrap_or(usize::MAX));
        }
        st.send_window -= n as i64;
        self.session_send_window -= n as i64;
        self.enqueue(Frame::Data {
            stream_id: id,
            flags: 0,
            data: Bytes::copy_from_slice(&buf[..n]),
        });
        Poll::Ready(Ok(n))
    }

    fn poll_shutdown(&mut self, id: u32, cx: &mut Context<'_>) -> Poll<Result<(), SpdyError>> {
        let state = self.state;
        let Some(st) = self.streams.get_mut(&id) else {
            return Poll::Ready(Err(SpdyError::ConnectionClosed));
        };
        if let Some(status) = st.reset {
            return Poll::Ready(Err(SpdyError::StreamReset { status }));
        }
        if !st.local_fin {
            if state != State::Open {
                return Poll::Ready(Err(SpdyError::ConnectionClosed));
            }
            if !st.replied {
                return Poll::Ready(Err(SpdyError::NotReplied));
            }
            st.local_fin = true;
            self.enqueue(Frame::Data {
                stream_id: id,
                flags: FLAG_FIN,
                data: Bytes::new(),
            });
        }
        let seq = self.streams.get(&id).map_or(0, |st| st.last_seq);
        self.poll_flushed(id, seq, cx)
    }

    /// Applies a frame from the peer. An error is a session-level protocol error.
    fn on_frame(&mut self, frame: Frame) -> Result<(), SpdyError> {
        match frame {
            Frame::SynStream {
                stream_id,
                priority,
                flags,
                headers,
                ..
            } => self.on_syn_stream(stream_id, priority, flags, headers)?,
            Frame::Data {
                stream_id,
                flags,
                data,
            } => self.on_data(stream_id, flags, data)?,
            Frame::SynReply { stream_id, .. } => {
                // We open no streams, so nothing may be replied to.
                if self.streams.contains_key(&stream_id) {
                    self.reset_stream(stream_id, RstStatus::PROTOCOL_ERROR);
                } else {
                    self.unknown_stream(stream_id, "SYN_REPLY");
                }
            }
            Frame::Headers {
                stream_id, flags, ..
            } => match self.streams.get_mut(&stream_id) {
                Some(st) if st.reset.is_none() => {
                    // Extra headers are not surfaced; only their FIN matters.
                    if flags & FLAG_FIN != 0 {
                        st.recv_fin = true;
                        st.wake_reader();
                    }
                }
                Some(_) => {}
                None => self.unknown_stream(stream_id, "HEADERS"),
            },
            Frame::RstStream { stream_id, status } => self.on_rst_stream(stream_id, status),
            Frame::Settings { entries, .. } => self.on_settings(&entries),
            Frame::Ping { id } => {
                // Odd ids are the client's pings; even ones would answer ours, and we
                // send none.
                if id % 2 == 1 {
                    self.enqueue_urgent(Frame::Ping { id });
                }
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                tracing::debug!(last_good_stream_id, %status, "SPDY peer sent GOAWAY");
                self.peer_goaway = true;
                if let Some(waker) = self.accept_waker.take() {
                    waker.wake();
                }
            }
            Frame::WindowUpdate { stream_id, delta } => self.on_window_update(stream_id, delta)?,
            Frame::Unknown {
                frame_type,
                version,
                ..
            } => {
                tracing::trace!(frame_type, version, "unknown SPDY control frame ignored");
            }
        }
        Ok(())
    }

    fn on_syn_stream(
        &mut self,
        id: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    ) -> Result<(), SpdyError> {
        if id == 0 || id.is_multiple_of(2) {
            return Err(SpdyError::Protocol {
                reason: format!("SYN_STREAM with stream id {id} (a client's are odd)"),
            });
        }
        if id <= self.last_peer_stream_id {
            return Err(SpdyError::Protocol {
                reason: format!(
                    "SYN_STREAM with stream id {id} after {}",
                    self.last_peer_stream_id
                ),
            });
        }
        self.last_peer_stream_id = id;
        if self.peer_goaway
            || !self.incoming_alive
            || self.pending_accept.len() >= MAX_PENDING_ACCEPT
        {
            tracing::debug!(stream_id = id, "refusing SPDY stream");
            self.enqueue(Frame::RstStream {
                stream_id: id,
                status: RstStatus::REFUSED_STREAM,
            });
            return Ok(());
        }
        let unidirectional = flags & FLAG_UNIDIRECTIONAL != 0;
        tracing::debug!(stream_id = id, ?headers, "SPDY stream opened by the peer");
        self.streams.insert(
            id,
            StreamState {
                recv: VecDeque::new(),
                recv_fin: flags & FLAG_FIN != 0,
                recv_unacked: 0,
                send_window: self.peer_initial_window,
                replied: false,
                reply_seq: 0,
                local_fin: unidirectional,
                reset: None,
                unidirectional,
                reader_alive: true,
                writer_alive: true,
                accepted: false,
                last_seq: 0,
                read_waker: None,
                write_waker: None,
                waiting_space: false,
                waiting_flush: false,
            },
        );
        self.pending_accept.push_back(PendingStream {
            id,
            headers,
            priority,
        });
        if let Some(waker) = self.accept_waker.take() {
            waker.wake();
        }
        Ok(())
    }

    fn on_data(&mut self, id: u32, flags: u8, data: Bytes) -> Result<(), SpdyError> {
        if id == 0 {
            return Err(SpdyError::Protocol {
                reason: "DATA on stream 0".to_owned(),
            });
        }
        let len = data.len();
        let Some(st) = self.streams.get_mut(&id) else {
            self.ack(None, len);
            self.unknown_stream(id, "DATA");
            return Ok(());
        };
        if st.reset.is_some() {
            self.ack(None, len);
            return Ok(());
        }
        if st.recv_fin {
            self.ack(None, len);
            tracing::debug!(stream_id = id, "SPDY DATA after FIN");
            self.reset_stream(id, RstStatus::STREAM_ALREADY_CLOSED);
            return Ok(());
        }
        if flags & FLAG_FIN != 0 {
            st.recv_fin = true;
        }
        if len > 0 && st.reader_alive {
            st.recv.push_back(data);
            st.wake_reader();
            self.buffered += len;
            if self.buffered > self.recv_buffer_limit {
                self.read_paused = true;
            }
        } else {
            st.wake_reader();
            self.ack(Some(id), len);
        }
        Ok(())
    }

    fn on_rst_stream(&mut self, id: u32, status: RstStatus) {
        let Some(st) = self.streams.get_mut(&id) else {
            return;
        };
        if st.reset.is_some() {
            return;
        }
        tracing::debug!(stream_id = id, %status, "SPDY stream reset by the peer");
        st.reset = Some(status);
        st.wake_reader();
        st.wake_writer();
        let accepted = st.accepted;
        self.drop_buffered(id, false);
        self.purge_queue(id);
        if !accepted {
            self.pending_accept.retain(|pending| pending.id != id);
            self.streams.remove(&id);
        }
    }

    fn on_settings(&mut self, entries: &[Setting]) {
        for entry in entries {
            if entry.id != SETTINGS_INITIAL_WINDOW_SIZE {
                continue;
            }
            if entry.value > MAX_WINDOW {
                tracing::debug!(
                    value = entry.value,
                    "SPDY SETTINGS_INITIAL_WINDOW_SIZE out of range ignored"
                );
                continue;
            }
            let value = i64::from(entry.value);
            let delta = value - self.peer_initial_window;
            self.peer_initial_window = value;
            self.peer_flow_control = true;
            for st in self.streams.values_mut() {
                st.send_window += delta;
                st.wake_writer();
            }
        }
    }

    fn on_window_update(&mut self, id: u32, delta: u32) -> Result<(), SpdyError> {
        self.peer_flow_control = true;
        let delta = i64::from(delta);
        if id == 0 {
            self.session_send_window += delta;
            if self.session_send_window > i64::from(MAX_WINDOW) {
                return Err(SpdyError::Protocol {
                    reason: "session send window over 2^31 - 1".to_owned(),
                });
            }
            for st in self.streams.values_mut() {
                st.wake_writer();
            }
            return Ok(());
        }
        let Some(st) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        st.send_window += delta;
        st.wake_writer();
        if st.send_window > i64::from(MAX_WINDOW) {
            self.reset_stream(id, RstStatus::FLOW_CONTROL_ERROR);
        }
        Ok(())
    }
}

fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// Idle timeout bookkeeping.
struct Idle {
    timeout: Duration,
    last_activity: Instant,
    sleep: Pin<Box<Sleep>>,
}

/// Why the I/O loop stopped.
enum Stop {
    /// The peer closed the connection.
    Eof,
    /// The connection failed; nothing more can be written.
    Io(SpdyError),
    /// The peer broke the protocol: GOAWAY PROTOCOL_ERROR, then close.
    Protocol(SpdyError),
    /// We failed to encode a frame: GOAWAY INTERNAL_ERROR, then close.
    Internal(SpdyError),
}

/// The I/O task's state.
struct Connection<T> {
    io: T,
    shared: Arc<Shared>,
    codec: FrameCodec,
    read_buf: BytesMut,
    write_buf: BytesMut,
    batch: Vec<(Frame, Option<u64>)>,
    /// Sequence number of the last ordered frame encoded into `write_buf`.
    encoded_seq: u64,
    needs_flush: bool,
    idle: Option<Idle>,
    /// Grace period of a closing session.
    drain: Option<Pin<Box<Sleep>>>,
    shutting_down: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Connection<T> {
    async fn run(mut self) {
        let result = poll_fn(|cx| self.poll_run(cx)).await;
        match &result {
            Ok(()) => tracing::debug!("SPDY session ended"),
            Err(err) => tracing::debug!(error = %err, "SPDY session ended with an error"),
        }
        let Connection { io, shared, .. } = self;
        drop(io);
        shared.lock().finish();
        shared.closed.send_replace(true);
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SpdyError>> {
        for _ in 0..ROUNDS_PER_POLL {
            let (state, read_paused, handles, peer_done) = {
                let mut inner = self.shared.lock();
                set_waker(&mut inner.io_waker, cx);
                let peer_done = inner.peer_goaway
                    && inner.streams.is_empty()
                    && inner.pending_accept.is_empty();
                (inner.state, inner.read_paused, inner.handles, peer_done)
            };
            if state == State::Open && (handles == 0 || peer_done) {
                self.shared.lock().begin_close(GoAwayStatus::OK);
                continue;
            }
            if state != State::Open && self.drain.is_none() {
                self.drain = Some(Box::pin(tokio::time::sleep(DRAIN_TIMEOUT)));
            }
            let mut progress = false;
            if state == State::Open && !read_paused {
                match self.poll_read_frames(cx) {
                    Ok(p) => progress |= p,
                    Err(stop) => match self.stop(stop) {
                        Some(result) => return Poll::Ready(result),
                        None => continue,
                    },
                }
            }
            match self.poll_write_frames(cx) {
                Ok(p) => progress |= p,
                Err(stop) => match self.stop(stop) {
                    Some(result) => return Poll::Ready(result),
                    None => continue,
                },
            }
            if state == State::Open && self.poll_idle(cx) {
                tracing::debug!("SPDY session idle, closing");
                self.shared.lock().begin_close(GoAwayStatus::OK);
                continue;
            }
            if state != State::Open {
                if let Some(drain) = &mut self.drain
                    && drain.as_mut().poll(cx).is_ready()
                {
                    tracing::debug!("SPDY session did not drain in time, dropping the connection");
                    return Poll::Ready(Ok(()));
                }
                let drained = {
                    let inner = self.shared.lock();
                    inner.urgent.is_empty() && inner.queue.is_empty()
                };
                if drained && self.write_buf.is_empty() && !self.needs_flush {
                    self.shutting_down = true;
                }
                if self.shutting_down {
                    return match Pin::new(&mut self.io).poll_shutdown(cx) {
                        Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
                        Poll::Ready(Err(err)) => Poll::Ready(Err(SpdyError::WriteFrame(err))),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
        // Plenty done in this poll: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Handles the end of the loop: `Some` to finish now, `None` to keep going (a
    /// GOAWAY to send).
    fn stop(&mut self, stop: Stop) -> Option<Result<(), SpdyError>> {
        match stop {
            Stop::Eof => Some(Ok(())),
            Stop::Io(err) => Some(Err(err)),
            Stop::Protocol(err) => {
                tracing::warn!(error = %err, "SPDY protocol error, closing the session");
                self.begin_close_after_error(GoAwayStatus::PROTOCOL_ERROR)
            }
            Stop::Internal(err) => {
                tracing::warn!(error = %err, "SPDY internal error, closing the session");
                self.begin_close_after_error(GoAwayStatus::INTERNAL_ERROR)
            }
        }
    }

    fn begin_close_after_error(&mut self, status: GoAwayStatus) -> Option<Result<(), SpdyError>> {
        let mut inner = self.shared.lock();
        if inner.state == State::Open {
            inner.begin_close(status);
            None
        } else {
            // Already closing and failing again: give up on a clean close.
            Some(Ok(()))
        }
    }

    /// Reads and applies frames. `Ok(true)` if anything happened.
    fn poll_read_frames(&mut self, cx: &mut Context<'_>) -> Result<bool, Stop> {
        let mut progress = false;
        let mut frames = 0;
        loop {
            if frames == FRAMES_PER_ROUND {
                return Ok(true);
            }
            {
                let inner = self.shared.lock();
                if inner.read_paused || inner.state != State::Open {
                    return Ok(progress);
                }
                // No waker needed: the queues only shrink by our own writes, which make
                // progress (and loop back here) or wait for the connection to wake us.
                if inner.urgent.len() + inner.queue.len() >= MAX_QUEUED_FRAMES {
                    return Ok(progress);
                }
            }
            match self.codec.decode_frame(&mut self.read_buf) {
                Ok(Some(frame)) => {
                    progress = true;
                    frames += 1;
                    self.touch();
                    tracing::trace!(kind = frame.kind(), stream_id = ?frame.stream_id(), "SPDY frame received");
                    self.shared.lock().on_frame(frame).map_err(Stop::Protocol)?;
                    continue;
                }
                Ok(None) => {}
                Err(err) => return Err(Stop::Protocol(err)),
            }
            if self.read_buf.capacity() - self.read_buf.len() < READ_RESERVE {
                self.read_buf.reserve(READ_RESERVE);
            }
            match poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read_buf) {
                Poll::Ready(Ok(0)) => {
                    if !self.read_buf.is_empty() {
                        tracing::debug!(
                            bytes = self.read_buf.len(),
                            "SPDY connection closed inside a frame"
                        );
                    }
                    return Err(Stop::Eof);
                }
                Poll::Ready(Ok(_)) => progress = true,
                Poll::Ready(Err(err)) => return Err(Stop::Io(SpdyError::ReadFrame(err))),
                Poll::Pending => return Ok(progress),
            }
        }
    }

    /// Encodes queued frames and writes them. `Ok(true)` if anything happened.
    fn poll_write_frames(&mut self, cx: &mut Context<'_>) -> Result<bool, Stop> {
        let mut progress = false;
        loop {
            if self.write_buf.len() < WRITE_BUF_TARGET {
                self.take_batch();
                if !self.batch.is_empty() {
                    progress = true;
                    self.needs_flush = true;
                }
                for (frame, seq) in self.batch.drain(..) {
                    tracing::trace!(kind = frame.kind(), stream_id = ?frame.stream_id(), "SPDY frame sent");
                    self.codec
                        .encode_frame(&frame, &mut self.write_buf)
                        .map_err(Stop::Internal)?;
                    if let Some(seq) = seq {
                        self.encoded_seq = seq;
                    }
                }
            }
            if self.write_buf.is_empty() {
                break;
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.write_buf) {
                Poll::Ready(Ok(0)) => {
                    return Err(Stop::Io(SpdyError::WriteFrame(
                        io::ErrorKind::WriteZero.into(),
                    )));
                }
                Poll::Ready(Ok(n)) => {
                    self.write_buf.advance(n);
                    self.touch();
                    progress = true;
                }
                Poll::Ready(Err(err)) => return Err(Stop::Io(SpdyError::WriteFrame(err))),
                Poll::Pending => return Ok(progress),
            }
        }
        if self.needs_flush {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.needs_flush = false;
                    progress = true;
                    let mut inner = self.shared.lock();
                    inner.flushed_seq = self.encoded_seq;
                    for st in inner.streams.values_mut() {
                        if st.waiting_flush {
                            st.waiting_flush = false;
                            st.wake_writer();
                        }
                    }
                }
                Poll::Ready(Err(err)) => return Err(Stop::Io(SpdyError::WriteFrame(err))),
                Poll::Pending => {}
            }
        }
        Ok(progress)
    }

    /// Moves frames from the send queues into `self.batch`, up to about what
    /// `write_buf` has room for.
    fn take_batch(&mut self) {
        let mut inner = self.shared.lock();
        let mut budget = WRITE_BUF_TARGET.saturating_sub(self.write_buf.len());
        while budget > 0 {
            let Some(frame) = inner.urgent.pop_front() else {
                break;
            };
            budget = budget.saturating_sub(64);
            self.batch.push((frame, None));
        }
        let before = inner.queued_data;
        while budget > 0 {
            let Some(Queued { frame, seq }) = inner.queue.pop_front() else {
                break;
            };
            let size = match &frame {
                Frame::Data { data, .. } => {
                    inner.queued_data -= data.len();
                    data.len() + 8
                }
                _ => 64,
            };
            budget = budget.saturating_sub(size);
            self.batch.push((frame, Some(seq)));
        }
        if before >= MAX_QUEUED_DATA && inner.queued_data < MAX_QUEUED_DATA {
            inner.wake_space_waiters();
        }
    }

    fn touch(&mut self) {
        if let Some(idle) = &mut self.idle {
            idle.last_activity = Instant::now();
        }
    }

    /// Whether the idle timeout expired.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(idle) = &mut self.idle else {
            return false;
        };
        loop {
            if idle.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = idle.last_activity + idle.timeout;
            if deadline <= Instant::now() {
                return true;
            }
            // There was activity since the timer was set: move it.
            idle.sleep.as_mut().reset(deadline);
        }
    }
}
