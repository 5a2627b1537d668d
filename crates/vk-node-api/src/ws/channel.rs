//! The multiplexed channel connection used by `exec` and `attach`.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::{CancellationToken, PollSender};
use tracing::{debug, trace, warn};

use super::frame::{self, Incoming};
use super::{CLOSE_SIGNAL, ChannelProtocol, ERROR, STDERR, STDOUT, WsError};

/// How long [`ChannelConn::close`] waits for the close handshake (and the reader task
/// for the client's Close reply) before dropping the connection.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes a claimed reader may have waiting before the connection stops reading from
/// the socket (back-pressure).
const READER_BUFFER: usize = 256 * 1024;
/// Bytes kept, over all channels, for channels no reader has been claimed for yet.
const UNCLAIMED_BUFFER: usize = 256 * 1024;
/// The largest payload one write turns into one message.
const MAX_MESSAGE_PAYLOAD: usize = 64 * 1024;
/// Messages queued for the socket before writers wait.
const OUTGOING_QUEUE: usize = 32;

/// A WebSocket connection speaking a Kubernetes channel protocol, server side.
///
/// Created over an upgraded connection by [`ChannelConn::server`], which starts two
/// tasks: one reads messages and distributes their payloads to the channels' readers
/// (answering pings on the way), the other sends what the writers queue, in order.
///
/// Claim the readers ([`reader`](Self::reader)) right after creating the connection:
/// data that arrives for a channel before it is claimed is kept (up to 256 KiB over
/// all channels, the excess is dropped) and handed to the reader when it is claimed;
/// data for a channel whose reader was dropped is discarded. A reader that is not read
/// eventually stops the whole connection from reading (back-pressure, as with the
/// kubelet's pipes), so drop the readers you do not consume.
///
/// Finish with [`close`](Self::close), which sends what is queued and then a normal
/// Close. Dropping the connection instead leaves the tasks running until every writer
/// is dropped (the connection then closes normally) or the client goes away.
#[derive(Debug)]
pub struct ChannelConn {
    protocol: ChannelProtocol,
    shared: Arc<Shared>,
    outgoing: mpsc::Sender<Outgoing>,
    read_task: JoinHandle<()>,
    write_task: JoinHandle<()>,
}

/// What the writers queue for the write task.
#[derive(Debug)]
enum Outgoing {
    /// A framed message.
    Message(Message),
    /// Flush the socket, then acknowledge.
    Flush(oneshot::Sender<()>),
    /// Send a normal Close, acknowledge, stop.
    Close(oneshot::Sender<()>),
}

/// State shared by the connection, its tasks and its readers.
#[derive(Debug, Default)]
struct Shared {
    demux: Mutex<Demux>,
    /// Cancelled when the read task has ended: the client closed or the connection broke.
    terminated: CancellationToken,
    /// Cancelled once our Close frame is sent (or the write task ended).
    close_sent: CancellationToken,
}

#[derive(Debug, Default)]
struct Demux {
    slots: HashMap<u8, Slot>,
    /// Bytes held by unclaimed slots.
    unclaimed_bytes: usize,
    /// The read task has ended: every slot is at EOF.
    ended: bool,
    /// The read task, waiting for a reader to make room.
    demux_waker: Option<Waker>,
}

/// One incoming channel.
#[derive(Debug, Default)]
struct Slot {
    queue: VecDeque<Bytes>,
    queued_bytes: usize,
    /// No more data will come (close signal, or the connection ended).
    eof: bool,
    /// A reader was handed out.
    claimed: bool,
    /// The reader was dropped: discard what comes.
    released: bool,
    reader_waker: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Demux> {
        self.demux.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `payload` to `channel`'s slot, waiting while a claimed reader is full.
    fn poll_deliver(
        &self,
        cx: &mut Context<'_>,
        channel: u8,
        payload: &mut Option<Bytes>,
    ) -> Poll<()> {
        let mut guard = self.lock();
        let Demux {
            slots,
            unclaimed_bytes,
            demux_waker,
            ..
        } = &mut *guard;
        let slot = slots.entry(channel).or_default();
        let Some(data) = payload.take() else {
            return Poll::Ready(());
        };
        if data.is_empty() || slot.released || slot.eof {
            trace!(channel, len = data.len(), "discarding channel data");
            return Poll::Ready(());
        }
        if !slot.claimed {
            if *unclaimed_bytes + data.len() > UNCLAIMED_BUFFER {
                warn!(
                    channel,
                    len = data.len(),
                    "dropping data for a channel nobody reads"
                );
                return Poll::Ready(());
            }
            *unclaimed_bytes += data.len();
        } else if slot.queued_bytes >= READER_BUFFER {
            *payload = Some(data);
            *demux_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        slot.queued_bytes += data.len();
        slot.queue.push_back(data);
        if let Some(w) = slot.reader_waker.take() {
            w.wake();
        }
        Poll::Ready(())
    }

    /// The client half-closed `channel`.
    fn close_channel(&self, channel: u8) {
        let mut guard = self.lock();
        let slot = guard.slots.entry(channel).or_default();
        slot.eof = true;
        if let Some(w) = slot.reader_waker.take() {
            w.wake();
        }
    }

    /// The read side is over: every channel reaches EOF once drained.
    fn terminate(&self) {
        let mut guard = self.lock();
        guard.ended = true;
        for slot in guard.slots.values_mut() {
            slot.eof = true;
            if let Some(w) = slot.reader_waker.take() {
                w.wake();
            }
        }
        drop(guard);
        self.terminated.cancel();
    }

    fn claim(&self, channel: u8) -> bool {
        let mut guard = self.lock();
        let Demux {
            slots,
            unclaimed_bytes,
            ended,
            ..
        } = &mut *guard;
        let slot = slots.entry(channel).or_default();
        if slot.claimed {
            return false;
        }
        slot.claimed = true;
        *unclaimed_bytes -= slot.queued_bytes;
        slot.eof |= *ended;
        true
    }

    fn release(&self, channel: u8) {
        let mut guard = self.lock();
        let Demux {
            slots, demux_waker, ..
        } = &mut *guard;
        if let Some(slot) = slots.get_mut(&channel) {
            slot.released = true;
            slot.queue.clear();
            slot.queued_bytes = 0;
            slot.reader_waker = None;
        }
        if let Some(w) = demux_waker.take() {
            w.wake();
        }
    }

    /// Takes up to `max` bytes of `channel`'s queue: `Some(empty)` at EOF.
    fn poll_take(&self, cx: &mut Context<'_>, channel: u8, max: usize) -> Poll<Option<Bytes>> {
        let mut guard = self.lock();
        let Demux {
            slots, demux_waker, ..
        } = &mut *guard;
        let Some(slot) = slots.get_mut(&channel) else {
            return Poll::Ready(None);
        };
        if let Some(front) = slot.queue.front_mut() {
            let n = max.min(front.len());
            let chunk = front.split_to(n);
            if front.is_empty() {
                slot.queue.pop_front();
            }
            slot.queued_bytes -= n;
            if slot.queued_bytes < READER_BUFFER
                && let Some(w) = demux_waker.take()
            {
                w.wake();
            }
            return Poll::Ready(Some(chunk));
        }
        if slot.eof {
            return Poll::Ready(Some(Bytes::new()));
        }
        slot.reader_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl ChannelConn {
    /// Runs the server side of a channel connection over `io`, an upgraded HTTP
    /// connection (the 101 response has been sent), speaking `protocol`.
    ///
    /// Must be called within a Tokio runtime: it spawns the connection's tasks.
    pub async fn server<T>(io: T, protocol: ChannelProtocol) -> ChannelConn
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let ws =
            WebSocketStream::from_raw_socket(io, Role::Server, Some(super::server_config())).await;
        let (sink, stream) = ws.split();
        let shared = Arc::new(Shared::default());
        let (outgoing, rx) = mpsc::channel(OUTGOING_QUEUE);
        let read_task = tokio::spawn(read_loop(stream, protocol, Arc::clone(&shared)));
        let write_task = tokio::spawn(write_loop(sink, rx, Arc::clone(&shared)));
        ChannelConn {
            protocol,
            shared,
            outgoing,
            read_task,
            write_task,
        }
    }

    /// The negotiated protocol.
    pub fn protocol(&self) -> ChannelProtocol {
        self.protocol
    }

    /// The reader of the incoming `channel` (e.g. [`STDIN`](super::STDIN),
    /// [`RESIZE`](super::RESIZE)), or `None` if it was already taken (or, in v5, for
    /// the close-signal channel 255).
    ///
    /// The reader yields the channel's payloads in order, then EOF once the client
    /// half-closes the channel (v5 close signal) or the connection ends, whichever
    /// comes first. Dropping it discards whatever else arrives on the channel.
    pub fn reader(&mut self, channel: u8) -> Option<ChannelReader> {
        if self.protocol.supports_close_signal() && channel == CLOSE_SIGNAL {
            return None;
        }
        self.shared.claim(channel).then(|| ChannelReader {
            channel,
            shared: Arc::clone(&self.shared),
        })
    }

    /// A writer for the outgoing `channel` (e.g. [`STDOUT`], [`STDERR`], [`ERROR`]).
    /// Each write becomes one message on the channel (payloads above 64 KiB are split
    /// over several writes); several writers may share a channel, and messages from all
    /// writers go out in the order they were queued.
    pub fn writer(&self, channel: u8) -> ChannelWriter {
        ChannelWriter {
            channel,
            protocol: self.protocol,
            sender: PollSender::new(self.outgoing.clone()),
            dirty: false,
            flushing: None,
            shut_down: false,
        }
    }

    /// Queues one empty message on `channel`.
    pub async fn send_empty(&self, channel: u8) -> Result<(), WsError> {
        let message = frame::encode(self.protocol, channel, &[]);
        self.outgoing
            .send(Outgoing::Message(message))
            .await
            .map_err(|_| WsError::ConnectionClosed)
    }

    /// Queues the kubelet's "ready" signal: an empty message on the lowest server-writable
    /// channel the request asked for — [`STDOUT`] if `stdout`, else [`STDERR`] if
    /// `stderr`, else [`ERROR`]. Call it once, right after setting up the streams.
    pub async fn send_ready(&self, stdout: bool, stderr: bool) -> Result<(), WsError> {
        let channel = if stdout {
            STDOUT
        } else if stderr {
            STDERR
        } else {
            ERROR
        };
        self.send_empty(channel).await
    }

    /// Whether the connection's read side has ended (the client closed it, or it broke).
    pub fn is_closed(&self) -> bool {
        self.shared.terminated.is_cancelled()
    }

    /// Completes when the connection's read side ends: the client closed the connection
    /// or it broke. Useful to stop the work behind a session whose client went away.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shared.terminated.clone().cancelled_owned()
    }

    /// Sends everything queued so far, then a Close with status 1000 (normal), and waits
    /// (up to 5 seconds) for the client's Close reply; then drops the connection.
    /// Writes made after this are refused, and the readers reach EOF.
    pub async fn close(self) {
        self.close_with_timeout(CLOSE_TIMEOUT).await;
    }

    /// [`close`](Self::close) with another limit on the wait.
    pub async fn close_with_timeout(self, timeout: Duration) {
        let ChannelConn {
            shared,
            outgoing,
            read_task,
            write_task,
            ..
        } = self;
        // The tasks still to wait for (a finished JoinHandle must not be awaited again).
        let mut tasks = [Some(write_task), Some(read_task)];
        let handshake = async {
            let (ack, acked) = oneshot::channel();
            if outgoing.send(Outgoing::Close(ack)).await.is_ok() {
                // An error only means the write task had already stopped.
                let _ = acked.await;
            }
            drop(outgoing);
            for task in &mut tasks {
                if let Some(handle) = task.as_mut() {
                    let _ = handle.await;
                    *task = None;
                }
            }
        };
        if tokio::time::timeout(timeout, handshake).await.is_err() {
            debug!("WebSocket close handshake timed out; dropping the connection");
        }
        for handle in tasks.into_iter().flatten() {
            handle.abort();
            let _ = handle.await;
        }
        shared.close_sent.cancel();
        shared.terminate();
    }
}

/// Ends the connection's read side even if the read task is aborted.
struct TerminateOnDrop(Arc<Shared>);

impl Drop for TerminateOnDrop {
    fn drop(&mut self) {
        self.0.terminate();
    }
}

async fn read_loop<S>(mut stream: S, protocol: ChannelProtocol, shared: Arc<Shared>)
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let _terminate = TerminateOnDrop(Arc::clone(&shared));
    let close_sent = shared.close_sent.clone();
    // Once our Close is out, give the client a while to answer, then stop reading.
    let deadline = async move {
        close_sent.cancelled().await;
        tokio::time::sleep(CLOSE_TIMEOUT).await;
    };
    tokio::pin!(deadline);
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            () = &mut deadline => {
                debug!("the client did not answer the WebSocket Close; stop reading");
                return;
            }
        };
        let data = match message {
            None => {
                trace!("WebSocket closed");
                return;
            }
            Some(Err(e)) => {
                debug!(error = %e, "WebSocket receive failed");
                return;
            }
            Some(Ok(message @ (Message::Binary(_) | Message::Text(_)))) => message.into_data(),
            // Pings are answered by tungstenite; a Close is answered too and the stream
            // then ends.
            Some(Ok(_)) => continue,
        };
        match frame::decode(protocol, data) {
            Incoming::Data { channel, payload } => {
                let mut payload = Some(payload);
                let deliver = poll_fn(|cx| shared.poll_deliver(cx, channel, &mut payload));
                tokio::select! {
                    () = deliver => {}
                    () = &mut deadline => return,
                }
            }
            Incoming::Close { channel } => {
                trace!(channel, "client half-closed a channel");
                shared.close_channel(channel);
            }
            Incoming::Empty => {}
            Incoming::Invalid(reason) => {
                warn!(%protocol, reason, "ignoring a malformed WebSocket message");
            }
        }
    }
}

async fn write_loop<S>(mut sink: S, mut rx: mpsc::Receiver<Outgoing>, shared: Arc<Shared>)
where
    S: futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let normal_close = || {
        Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: Utf8Bytes::default(),
        }))
    };
    loop {
        let Some(item) = rx.recv().await else {
            // Every writer and the connection are gone: close normally.
            if let Err(e) = sink.send(normal_close()).await {
                debug!(error = %e, "sending the WebSocket Close failed");
            }
            break;
        };
        match item {
            Outgoing::Message(message) => {
                let mut result = sink.feed(message).await;
                if result.is_ok() && rx.is_empty() {
                    result = sink.flush().await;
                }
                if let Err(e) = result {
                    debug!(error = %e, "WebSocket send failed");
                    break;
                }
            }
            Outgoing::Flush(ack) => match sink.flush().await {
                Ok(()) => {
                    let _ = ack.send(());
                }
                Err(e) => {
                    debug!(error = %e, "WebSocket flush failed");
                    break;
                }
            },
            Outgoing::Close(ack) => {
                if let Err(e) = sink.send(normal_close()).await {
                    debug!(error = %e, "sending the WebSocket Close failed");
                }
                shared.close_sent.cancel();
                let _ = ack.send(());
                break;
            }
        }
    }
    // Refuse further writes; pending flush requests fail.
    rx.close();
    shared.close_sent.cancel();
}

/// An incoming channel of a [`ChannelConn`]: its payloads as a byte stream.
///
/// Implements [`AsyncRead`]; [`recv`](Self::recv) gives the payloads message by message
/// instead (handy for the resize channel, one JSON object per message).
#[derive(Debug)]
pub struct ChannelReader {
    channel: u8,
    shared: Arc<Shared>,
}

impl ChannelReader {
    /// The channel number.
    pub fn channel(&self) -> u8 {
        self.channel
    }

    /// The rest of the next message's payload (what [`AsyncRead`] has not consumed of
    /// it yet), or `None` at EOF. Empty messages are skipped.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let chunk = poll_fn(|cx| self.shared.poll_take(cx, self.channel, usize::MAX)).await?;
        (!chunk.is_empty()).then_some(chunk)
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Some(chunk) = ready!(self.shared.poll_take(cx, self.channel, buf.remaining())) {
            buf.put_slice(chunk.chunk());
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for ChannelReader {
    fn drop(&mut self) {
        self.shared.release(self.channel);
    }
}

/// An outgoing channel of a [`ChannelConn`].
///
/// Implements [`AsyncWrite`]: each write queues one message (at most 64 KiB of payload;
/// base64-encoded in the base64 protocols). A zero-length write sends nothing (use
/// [`ChannelConn::send_empty`] for an empty message). Flushing waits until this
/// writer's messages have been written to the connection; shutting down flushes and
/// then refuses further writes (no message is sent: the protocols have no server-side
/// half-close). Writes fail with [`io::ErrorKind::BrokenPipe`] once the connection is
/// closed.
#[derive(Debug)]
pub struct ChannelWriter {
    channel: u8,
    protocol: ChannelProtocol,
    sender: PollSender<Outgoing>,
    /// Messages were queued since the last flush.
    dirty: bool,
    flushing: Option<oneshot::Receiver<()>>,
    shut_down: bool,
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, WsError::ConnectionClosed)
}

impl ChannelWriter {
    /// The channel number.
    pub fn channel(&self) -> u8 {
        self.channel
    }
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.shut_down {
            return Poll::Ready(Err(closed_error()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(self.sender.poll_reserve(cx)).map_err(|_| closed_error())?;
        let n = buf.len().min(MAX_MESSAGE_PAYLOAD);
        let message = frame::encode(self.protocol, self.channel, &buf[..n]);
        self.sender
            .send_item(Outgoing::Message(message))
            .map_err(|_| closed_error())?;
        self.dirty = true;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some(acked) = self.flushing.as_mut() {
                let result = ready!(Pin::new(acked).poll(cx));
                self.flushing = None;
                return Poll::Ready(result.map_err(|_| closed_error()));
            }
            if !self.dirty {
                return Poll::Ready(Ok(()));
            }
            ready!(self.sender.poll_reserve(cx)).map_err(|_| closed_error())?;
            let (ack, acked) = oneshot::channel();
            self.sender
                .send_item(Outgoing::Flush(ack))
                .map_err(|_| closed_error())?;
            self.dirty = false;
            self.flushing = Some(acked);
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shut_down {
            ready!(self.as_mut().poll_flush(cx))?;
            self.shut_down = true;
            self.sender.close();
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn deliver_now(shared: &Shared, channel: u8, payload: Bytes) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let mut payload = Some(payload);
        shared
            .poll_deliver(&mut cx, channel, &mut payload)
            .is_ready()
    }

    fn drain(shared: &Shared, channel: u8) -> (Vec<u8>, bool) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        loop {
            match shared.poll_take(&mut cx, channel, 7) {
                Poll::Ready(Some(chunk)) if chunk.is_empty() => return (out, true),
                Poll::Ready(Some(chunk)) => out.extend_from_slice(&chunk),
                Poll::Ready(None) | Poll::Pending => return (out, false),
            }
        }
    }

    #[test]
    fn data_before_claim_is_kept_and_close_signal_gives_eof() {
        let shared = Shared::default();
        assert!(deliver_now(&shared, 0, Bytes::from_static(b"early ")));
        assert!(shared.claim(0));
        assert!(!shared.claim(0));
        assert!(deliver_now(&shared, 0, Bytes::from_static(b"late")));
        shared.close_channel(0);
        assert!(deliver_now(&shared, 0, Bytes::from_static(b"after close")));
        assert_eq!(drain(&shared, 0), (b"early late".to_vec(), true));
        assert_eq!(shared.lock().unclaimed_bytes, 0);
    }

    #[test]
    fn unclaimed_data_is_bounded_and_released_channels_discard() {
        let shared = Shared::default();
        let big = Bytes::from(vec![7u8; UNCLAIMED_BUFFER]);
        assert!(deliver_now(&shared, 9, big.clone()));
        // Over the limit: dropped, not blocking.
        assert!(deliver_now(&shared, 8, Bytes::from_static(b"x")));
        assert_eq!(shared.lock().unclaimed_bytes, UNCLAIMED_BUFFER);

        assert!(shared.claim(1));
        shared.release(1);
        assert!(deliver_now(&shared, 1, big));
        assert_eq!(shared.lock().slots[&1].queued_bytes, 0);
    }

    #[test]
    fn a_full_reader_applies_back_pressure() {
        let shared = Shared::default();
        assert!(shared.claim(0));
        assert!(deliver_now(
            &shared,
            0,
            Bytes::from(vec![1u8; READER_BUFFER])
        ));
        assert!(!deliver_now(&shared, 0, Bytes::from_static(b"more")));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            shared.poll_take(&mut cx, 0, 10),
            Poll::Ready(Some(ref c)) if c.len() == 10
        ));
        assert!(deliver_now(&shared, 0, Bytes::from_static(b"more")));
    }

    #[test]
    fn termination_gives_eof_after_the_data_even_for_late_claims() {
        let shared = Shared::default();
        assert!(shared.claim(0));
        assert!(deliver_now(&shared, 0, Bytes::from_static(b"abc")));
        assert!(deliver_now(&shared, 4, Bytes::from_static(b"{}")));
        shared.terminate();
        assert_eq!(drain(&shared, 0), (b"abc".to_vec(), true));
        assert!(shared.claim(4));
        assert_eq!(drain(&shared, 4), (b"{}".to_vec(), true));
        assert!(shared.claim(2));
        assert_eq!(drain(&shared, 2), (Vec::new(), true));
        assert!(shared.terminated.is_cancelled());
    }

    fn any_protocol() -> impl Strategy<Value = ChannelProtocol> {
        proptest::sample::select(ChannelProtocol::PREFERENCE.to_vec())
    }

    proptest! {
        /// Arbitrary incoming messages never panic the demultiplexer, and whatever it
        /// accepts for a claimed channel comes out of it unchanged, in order.
        #[test]
        fn demultiplexer_survives_arbitrary_messages(
            protocol in any_protocol(),
            claimed in proptest::collection::vec(any::<u8>(), 0..4),
            messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..64),
        ) {
            let shared = Shared::default();
            for &c in &claimed {
                shared.claim(c);
            }
            let mut expected: HashMap<u8, Vec<u8>> = HashMap::new();
            let mut closed: Vec<u8> = Vec::new();
            for message in messages {
                match frame::decode(protocol, Bytes::from(message)) {
                    Incoming::Data { channel, payload } => {
                        if claimed.contains(&channel) && !closed.contains(&channel) {
                            expected.entry(channel).or_default().extend_from_slice(&payload);
                        }
                        prop_assert!(deliver_now(&shared, channel, payload));
                    }
                    Incoming::Close { channel } => {
                        closed.push(channel);
                        shared.close_channel(channel);
                    }
                    Incoming::Empty | Incoming::Invalid(_) => {}
                }
            }
            shared.terminate();
            for &c in &claimed {
                let (data, eof) = drain(&shared, c);
                prop_assert!(eof);
                prop_assert_eq!(data, expected.remove(&c).unwrap_or_default());
            }
        }
    }
}
