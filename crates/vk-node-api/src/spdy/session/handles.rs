//! What the application holds: the [`Session`], the [`Incoming`] queue of streams,
//! each [`Stream`] and its halves ([`StreamReader`], [`StreamWriter`]), and the
//! [`Handle`] inside each of them that keeps the session alive.
//!
//! They never touch the connection: they act on the shared state (their stream
//! operations are in `stream_ops.rs`) and wake the I/O task.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::super::SpdyError;
use super::super::frame::{Frame, GoAwayStatus, RstStatus};
use super::super::headers::Headers;
use super::state::{Inner, Shared, State, set_waker};

/// Handle on a running session: close it, or wait for its end.
///
/// Cloning gives another handle on the same session. The session keeps running while
/// any handle (this, [`Incoming`], a stream or a stream half) is alive.
pub struct Session {
    pub(super) handle: Handle,
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
    pub(super) handle: Handle,
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
///
/// [`MAX_DATA_FRAME_PAYLOAD`]: super::MAX_DATA_FRAME_PAYLOAD
/// [`SendWindowMode`]: super::SendWindowMode
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

/// Counts as one live handle on the session for as long as it exists.
pub(super) struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    pub(super) fn new(shared: &Arc<Shared>, inner: &mut Inner) -> Self {
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
