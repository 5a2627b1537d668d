//! What each frame received from the peer does to the session state:
//! [`Inner::on_frame`] dispatches it by type. An error it returns is a session-level
//! protocol error, which the I/O task answers with GOAWAY PROTOCOL_ERROR.

use std::collections::VecDeque;

use bytes::Bytes;

use super::super::SpdyError;
use super::super::frame::{
    FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame, MAX_WINDOW, RstStatus, SETTINGS_INITIAL_WINDOW_SIZE,
    Setting,
};
use super::super::headers::Headers;
use super::state::{Inner, PendingStream, State, StreamState};

/// Streams opened by the peer but not yet accepted; more are refused.
const MAX_PENDING_ACCEPT: usize = 1024;

impl Inner {
    /// Applies a frame from the peer. An error is a session-level protocol error.
    pub(super) fn on_frame(&mut self, frame: Frame) -> Result<(), SpdyError> {
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
}
