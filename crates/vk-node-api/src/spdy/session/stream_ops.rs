//! What the application's operations on a stream do to the shared state: reading,
//! writing, waiting for a flush, shutting down, resetting, and letting go of a half.
//! The handles in `handles.rs` call these with the lock held.

use std::io;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::ReadBuf;

use super::super::SpdyError;
use super::super::frame::{FLAG_FIN, Frame, RstStatus};
use super::MAX_DATA_FRAME_PAYLOAD;
use super::state::{Inner, MAX_QUEUED_DATA, State, set_waker};

impl Inner {
    pub(super) fn reset_by_app(&mut self, id: u32, status: RstStatus) -> Result<(), SpdyError> {
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
    pub(super) fn release(&mut self, id: u32, reader: bool, writer: bool) {
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

    pub(super) fn poll_flushed(
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

    pub(super) fn poll_read(
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

    pub(super) fn poll_write(
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

    pub(super) fn poll_shutdown(
        &mut self,
        id: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SpdyError>> {
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
}
