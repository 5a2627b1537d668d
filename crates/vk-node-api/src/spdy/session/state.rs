//! The state the handles share with the I/O task: [`Shared`] holds the [`Inner`] state
//! behind a mutex (the table of [`StreamState`]s with their receive buffers and send
//! windows, the session's windows, the streams waiting to be accepted, the two send
//! queues) and the end-of-session signal. The bookkeeping used from every side is here
//! too: queueing frames, returning flow-control credit, resetting streams, closing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};

use bytes::Bytes;
use tokio::sync::watch;

use super::super::frame::{Frame, GoAwayStatus, MAX_WINDOW, RstStatus};
use super::super::headers::Headers;
use super::SendWindowMode;

/// DATA bytes that may wait in the send queue (over all streams) before writers park.
pub(super) const MAX_QUEUED_DATA: usize = 256 * 1024;

/// State shared by the I/O task and the handles.
pub(super) struct Shared {
    pub(super) inner: Mutex<Inner>,
    /// Set to `true` when the I/O task is done.
    pub(super) closed: watch::Sender<bool>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent between statements, so a panic elsewhere while
        // holding the lock does not make it unusable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Normal operation.
    Open,
    /// Our GOAWAY is queued: no new frames from the application, no more reading.
    Closing,
    /// The I/O task is done.
    Closed,
}

/// A stream waiting in [`Incoming`](super::Incoming).
pub(super) struct PendingStream {
    pub(super) id: u32,
    pub(super) headers: Headers,
    pub(super) priority: u8,
}

/// A frame in the ordered send queue, with its sequence number.
pub(super) struct Queued {
    pub(super) frame: Frame,
    pub(super) seq: u64,
}

/// One stream of the table: its receive buffer, send window and how far each side
/// has got.
pub(super) struct StreamState {
    /// Received data not yet read.
    pub(super) recv: VecDeque<Bytes>,
    /// The peer half-closed the stream.
    pub(super) recv_fin: bool,
    /// Bytes read (or discarded) and not yet returned to the peer by a WINDOW_UPDATE.
    pub(super) recv_unacked: u32,
    /// What we may still send before the peer's next WINDOW_UPDATE (may go negative
    /// when the peer lowers SETTINGS_INITIAL_WINDOW_SIZE, or while not enforced).
    pub(super) send_window: i64,
    /// SYN_REPLY queued.
    pub(super) replied: bool,
    /// Sequence number of the SYN_REPLY.
    pub(super) reply_seq: u64,
    /// FIN queued (or the stream is unidirectional): we send no more.
    pub(super) local_fin: bool,
    /// The stream was reset, by either side.
    pub(super) reset: Option<RstStatus>,
    /// We may not send at all.
    pub(super) unidirectional: bool,
    /// The reading side is still owned by the application (or waiting in Incoming).
    pub(super) reader_alive: bool,
    /// The writing side is still owned by the application (or waiting in Incoming).
    pub(super) writer_alive: bool,
    /// Handed out by [`Incoming`](super::Incoming).
    pub(super) accepted: bool,
    /// Sequence number of the last frame queued for this stream.
    pub(super) last_seq: u64,
    pub(super) read_waker: Option<Waker>,
    pub(super) write_waker: Option<Waker>,
    /// The writer waits for room in the send queue.
    pub(super) waiting_space: bool,
    /// The writer waits for its frames to be flushed.
    pub(super) waiting_flush: bool,
}

impl StreamState {
    pub(super) fn fully_closed(&self) -> bool {
        self.reset.is_some() || (self.local_fin && self.recv_fin)
    }

    pub(super) fn wake_reader(&mut self) {
        if let Some(waker) = self.read_waker.take() {
            waker.wake();
        }
    }

    pub(super) fn wake_writer(&mut self) {
        if let Some(waker) = self.write_waker.take() {
            waker.wake();
        }
    }
}

/// The session's state, behind the mutex of [`Shared`].
pub(super) struct Inner {
    pub(super) state: State,
    pub(super) mode: SendWindowMode,
    /// The peer sent WINDOW_UPDATE or SETTINGS_INITIAL_WINDOW_SIZE.
    pub(super) peer_flow_control: bool,
    /// Send window of new streams (the peer's SETTINGS_INITIAL_WINDOW_SIZE).
    pub(super) peer_initial_window: i64,
    pub(super) session_send_window: i64,
    pub(super) stream_ack_threshold: u32,
    pub(super) session_ack_threshold: u32,
    pub(super) session_recv_unacked: u32,
    /// Unread received bytes beyond which reading pauses.
    pub(super) recv_buffer_limit: usize,
    /// Unread received bytes over all streams.
    pub(super) buffered: usize,
    pub(super) read_paused: bool,
    pub(super) streams: HashMap<u32, StreamState>,
    pub(super) last_peer_stream_id: u32,
    pub(super) peer_goaway: bool,
    pub(super) pending_accept: VecDeque<PendingStream>,
    pub(super) accept_waker: Option<Waker>,
    pub(super) incoming_alive: bool,
    /// Live [`Handle`](super::handles::Handle)s.
    pub(super) handles: usize,
    /// Frames written before the ordered queue (PING answers, WINDOW_UPDATE, SETTINGS).
    pub(super) urgent: VecDeque<Frame>,
    /// Frames written in order (SYN_REPLY, DATA, RST_STREAM, GOAWAY).
    pub(super) queue: VecDeque<Queued>,
    pub(super) next_seq: u64,
    /// Every queued frame with a sequence number up to this one has been flushed.
    pub(super) flushed_seq: u64,
    /// DATA payload bytes in `queue`.
    pub(super) queued_data: usize,
    pub(super) io_waker: Option<Waker>,
}

impl Inner {
    pub(super) fn enforcing(&self) -> bool {
        self.mode == SendWindowMode::Enforce || self.peer_flow_control
    }

    pub(super) fn wake_io(&mut self) {
        if let Some(waker) = &self.io_waker {
            waker.wake_by_ref();
        }
    }

    /// Queues a frame in order; returns its sequence number.
    pub(super) fn enqueue(&mut self, frame: Frame) -> u64 {
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

    pub(super) fn enqueue_urgent(&mut self, frame: Frame) {
        self.urgent.push_back(frame);
        self.wake_io();
    }

    /// Starts closing: GOAWAY after what is queued, then shutdown.
    pub(super) fn begin_close(&mut self, status: GoAwayStatus) {
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
    pub(super) fn finish(&mut self) {
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
    pub(super) fn ack(&mut self, stream_id: Option<u32>, n: usize) {
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
    pub(super) fn drop_buffered(&mut self, id: u32, stream_credit: bool) {
        let Some(st) = self.streams.get_mut(&id) else {
            return;
        };
        let n: usize = st.recv.drain(..).map(|chunk| chunk.len()).sum();
        self.unbuffer(n);
        self.ack(stream_credit.then_some(id), n);
    }

    /// `n` buffered bytes left the receive buffers.
    pub(super) fn unbuffer(&mut self, n: usize) {
        self.buffered = self.buffered.saturating_sub(n);
        if self.read_paused && self.buffered <= self.recv_buffer_limit {
            self.read_paused = false;
            self.wake_io();
        }
    }

    /// Forgets a stream nobody holds.
    pub(super) fn discard_stream(&mut self, id: u32) {
        self.drop_buffered(id, false);
        self.streams.remove(&id);
    }

    /// Removes the frames of a stream not yet written.
    pub(super) fn purge_queue(&mut self, id: u32) {
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

    pub(super) fn wake_space_waiters(&mut self) {
        for st in self.streams.values_mut() {
            if st.waiting_space {
                st.waiting_space = false;
                st.wake_writer();
            }
        }
    }

    /// Resets a stream from our side.
    pub(super) fn reset_stream(&mut self, id: u32, status: RstStatus) {
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
}

pub(super) fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}
