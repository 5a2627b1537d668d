//! The I/O task of a session, [`Connection`]: it owns the connection and the
//! [`FrameCodec`], reads and decodes the peer's frames and applies them to the shared
//! state, encodes and writes what the handles queued, and runs the idle timeout and the
//! drain of a closing session.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tokio_util::io::poll_read_buf;

use super::super::SpdyError;
use super::super::frame::{Frame, FrameCodec, GoAwayStatus};
use super::state::{MAX_QUEUED_DATA, Queued, Shared, State, set_waker};

/// The I/O task encodes queued frames until this many bytes await writing.
const WRITE_BUF_TARGET: usize = 64 * 1024;
/// Free room ensured in the read buffer before each read.
const READ_RESERVE: usize = 16 * 1024;
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

/// Idle timeout bookkeeping.
pub(super) struct Idle {
    pub(super) timeout: Duration,
    pub(super) last_activity: Instant,
    pub(super) sleep: Pin<Box<Sleep>>,
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
pub(super) struct Connection<T> {
    pub(super) io: T,
    pub(super) shared: Arc<Shared>,
    pub(super) codec: FrameCodec,
    pub(super) read_buf: BytesMut,
    pub(super) write_buf: BytesMut,
    pub(super) batch: Vec<(Frame, Option<u64>)>,
    /// Sequence number of the last ordered frame encoded into `write_buf`.
    pub(super) encoded_seq: u64,
    pub(super) needs_flush: bool,
    pub(super) idle: Option<Idle>,
    /// Grace period of a closing session.
    pub(super) drain: Option<Pin<Box<Sleep>>>,
    pub(super) shutting_down: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Connection<T> {
    pub(super) async fn run(mut self) {
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
