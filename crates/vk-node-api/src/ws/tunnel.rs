//! A WebSocket carrying an opaque byte stream: the port-forward SPDY tunnel.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::WsError;

/// The largest payload one write turns into one message.
const MAX_MESSAGE_PAYLOAD: usize = 64 * 1024;

/// A server-side WebSocket used as a plain duplex byte stream, as
/// `kubectl port-forward` does with the sub-protocol
/// [`PORT_FORWARD_TUNNEL_PROTOCOL`](super::PORT_FORWARD_TUNNEL_PROTOCOL): the bytes of
/// its SPDY/3.1 connection travel in binary messages, with no framing of their own
/// (message boundaries mean nothing).
///
/// * Reading yields the payloads of the client's binary messages in order, and EOF when
///   the client closes the WebSocket (its Close is answered). A text message is an
///   error ([`io::ErrorKind::InvalidData`]), as in client-go. Pings are answered
///   while reading, so keep a read pending.
/// * Each write sends one binary message (at most 64 KiB of payload) and starts
///   flushing it; [`flush`](tokio::io::AsyncWriteExt::flush) completes the flush.
/// * Shutting down sends a Close with status 1000 (normal); keep reading until EOF to
///   let the client's reply arrive, then drop the tunnel.
///
/// Reads and writes may go on concurrently from two tasks through
/// [`tokio::io::split`].
#[derive(Debug)]
pub struct ByteTunnel<T> {
    ws: WebSocketStream<T>,
    /// What is left of the message being read.
    pending: Bytes,
    /// The read side has ended (EOF or error).
    read_done: bool,
    /// Our Close has been queued.
    close_queued: bool,
}

fn to_io(e: tungstenite::Error, wrap: fn(Box<tungstenite::Error>) -> WsError) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, WsError::ConnectionClosed)
        }
        other => io::Error::other(wrap(Box::new(other))),
    }
}

impl<T> ByteTunnel<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    /// Runs the server side of a WebSocket tunnel over `io`, an upgraded HTTP
    /// connection (the 101 response has been sent).
    pub async fn server(io: T) -> ByteTunnel<T> {
        ByteTunnel {
            ws: WebSocketStream::from_raw_socket(io, Role::Server, Some(super::server_config()))
                .await,
            pending: Bytes::new(),
            read_done: false,
            close_queued: false,
        }
    }

    /// The underlying connection.
    pub fn get_ref(&self) -> &T {
        self.ws.get_ref()
    }
}

impl<T> AsyncRead for ByteTunnel<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let n = buf.remaining().min(this.pending.len());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.read_done || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.ws.poll_next_unpin(cx)) {
                None => this.read_done = true,
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Text(_))) => {
                    this.read_done = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        WsError::UnexpectedTextMessage,
                    )));
                }
                // Pings are answered by tungstenite; after a Close the stream ends.
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    this.read_done = true;
                    return Poll::Ready(Err(to_io(e, WsError::Receive)));
                }
            }
        }
    }
}

impl<T> AsyncWrite for ByteTunnel<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let ws = &mut self.ws;
        ready!(ws.poll_ready_unpin(cx)).map_err(|e| to_io(e, WsError::Send))?;
        let n = buf.len().min(MAX_MESSAGE_PAYLOAD);
        ws.start_send_unpin(Message::binary(Bytes::copy_from_slice(&buf[..n])))
            .map_err(|e| to_io(e, WsError::Send))?;
        // Push the message out now rather than at the next flush: callers do not always
        // flush after every write. If the socket is busy the rest goes with the next
        // write or flush.
        if let Poll::Ready(Err(e)) = ws.poll_flush_unpin(cx) {
            return Poll::Ready(Err(to_io(e, WsError::Send)));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ws
            .poll_flush_unpin(cx)
            .map_err(|e| to_io(e, WsError::Send))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.close_queued {
            match ready!(this.ws.poll_ready_unpin(cx)) {
                Ok(()) => {
                    let close = Message::Close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: Utf8Bytes::default(),
                    }));
                    match this.ws.start_send_unpin(close) {
                        // Already closed (by the client): nothing to say any more.
                        Ok(())
                        | Err(tungstenite::Error::ConnectionClosed)
                        | Err(tungstenite::Error::AlreadyClosed)
                        | Err(tungstenite::Error::Protocol(_)) => {}
                        Err(e) => return Poll::Ready(Err(to_io(e, WsError::Send))),
                    }
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {}
                Err(e) => return Poll::Ready(Err(to_io(e, WsError::Send))),
            }
            this.close_queued = true;
        }
        match ready!(this.ws.poll_flush_unpin(cx)) {
            Ok(())
            | Err(tungstenite::Error::ConnectionClosed)
            | Err(tungstenite::Error::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(to_io(e, WsError::Send))),
        }
    }
}
