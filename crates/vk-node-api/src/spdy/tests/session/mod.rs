//! Tests of the SPDY session: [`serve`] and its handles, driven through an in-memory
//! pipe by a test client made of the module's own frame codec and header compression.
//! This file holds the client and the helpers; the tests are in the submodules, by
//! topic.
//!
//! Every test runs on a paused Tokio clock. Timers then fire only once every task is
//! idle, so "nothing more happens" ([`ClientRx::expect_quiet`], [`quiesce`]) and the
//! hang guards ([`guard`]) are exact, and idle timeouts are tested without waiting.

mod accept;
mod backpressure;
mod close;
mod data;
mod flow_control;
mod protocol;
mod random;
mod reset;

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::time::timeout;

use super::super::frame::{FLAG_FIN, MAX_FRAME_PAYLOAD, SETTINGS_INITIAL_WINDOW_SIZE};
use super::super::*;

/// Virtual time after which a test counts as hung. The clock is paused, so this costs
/// nothing and cannot flake; it only turns a deadlock into a failure.
const GUARD: Duration = Duration::from_secs(24 * 3600);

/// Capacity of each direction of the test pipe, unless a test says otherwise.
const PIPE: usize = 256 * 1024;

/// Awaits `fut`, failing the test if it never completes.
async fn guard<F: Future>(what: &str, fut: F) -> F::Output {
    match timeout(GUARD, fut).await {
        Ok(out) => out,
        Err(_) => panic!("hung: {what}"),
    }
}

/// Returns once every task is idle (the paused clock only moves then).
async fn quiesce() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// The writing side of the test client.
struct ClientTx {
    io: WriteHalf<DuplexStream>,
    compressor: HeaderCompressor,
}

impl ClientTx {
    async fn send(&mut self, frame: Frame) {
        self.try_send(frame).await.expect("client write");
    }

    async fn try_send(&mut self, frame: Frame) -> io::Result<()> {
        let mut wire = BytesMut::new();
        frame
            .encode(&mut self.compressor, &mut wire)
            .expect("encoding a test frame");
        self.io.write_all(&wire).await?;
        self.io.flush().await
    }

    async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }
}

/// The reading side of the test client.
struct ClientRx {
    io: ReadHalf<DuplexStream>,
    decompressor: HeaderDecompressor,
    buf: BytesMut,
}

impl ClientRx {
    /// The next frame from the server, `None` at end of file. Cancel-safe.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) =
                Frame::decode(&mut self.buf, &mut self.decompressor, MAX_FRAME_PAYLOAD)
                    .expect("the server sent a malformed frame")
            {
                return Some(frame);
            }
            self.buf.reserve(16 * 1024);
            let n = self.io.read_buf(&mut self.buf).await.expect("client read");
            if n == 0 {
                assert!(self.buf.is_empty(), "EOF inside a frame");
                return None;
            }
        }
    }

    /// The next frame; fails on EOF or hang.
    async fn recv(&mut self) -> Frame {
        guard("waiting for a frame", self.next())
            .await
            .expect("unexpected EOF from the server")
    }

    /// The next frame that is not a WINDOW_UPDATE.
    async fn recv_no_updates(&mut self) -> Frame {
        loop {
            match self.recv().await {
                Frame::WindowUpdate { .. } => {}
                frame => return frame,
            }
        }
    }

    /// The next frame if one comes before everything goes idle.
    async fn try_recv(&mut self) -> Option<Frame> {
        timeout(Duration::from_millis(1), self.next())
            .await
            .ok()
            .map(|frame| frame.expect("unexpected EOF from the server"))
    }

    /// Fails if the server sends anything before everything goes idle.
    async fn expect_quiet(&mut self) {
        if let Some(frame) = self.try_recv().await {
            panic!("unexpected frame from the server: {frame:?}");
        }
    }

    /// Expects the end of the connection (skipping WINDOW_UPDATEs).
    async fn expect_eof(&mut self) {
        loop {
            match guard("waiting for EOF", self.next()).await {
                None => return,
                Some(Frame::WindowUpdate { .. }) => {}
                Some(frame) => panic!("expected EOF, got {frame:?}"),
            }
        }
    }

    /// Expects GOAWAY (after any WINDOW_UPDATEs), then EOF.
    async fn expect_goaway(&mut self, last_good_stream_id: u32, status: GoAwayStatus) {
        assert_eq!(
            self.recv_no_updates().await,
            Frame::GoAway {
                last_good_stream_id,
                status
            }
        );
        self.expect_eof().await;
    }

    /// Collects the DATA of the given streams until each sent FIN. Returns the payload
    /// and the DATA frame sizes of each stream, in the order of `ids`. Fails on frames
    /// other than DATA for these streams and WINDOW_UPDATE.
    async fn collect(&mut self, ids: &[u32]) -> Vec<(Vec<u8>, Vec<usize>)> {
        let mut out = vec![(Vec::new(), Vec::new()); ids.len()];
        let mut open = ids.len();
        while open > 0 {
            match self.recv().await {
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => {
                    let i = ids
                        .iter()
                        .position(|id| *id == stream_id)
                        .unwrap_or_else(|| panic!("DATA on unexpected stream {stream_id}"));
                    out[i].0.extend_from_slice(&data);
                    out[i].1.push(data.len());
                    if flags & FLAG_FIN != 0 {
                        open -= 1;
                    }
                }
                Frame::WindowUpdate { .. } => {}
                frame => panic!("unexpected frame {frame:?}"),
            }
        }
        out
    }

    /// Reads DATA of any stream until everything goes idle; returns the byte count.
    /// Fails on any other frame than WINDOW_UPDATE.
    async fn all_data_until_quiet(&mut self) -> usize {
        let mut total = 0;
        while let Some(frame) = self.try_recv().await {
            match frame {
                Frame::Data { data, .. } => total += data.len(),
                Frame::WindowUpdate { .. } => {}
                frame => panic!("unexpected frame {frame:?}"),
            }
        }
        total
    }

    /// Reads DATA of stream `id` until everything goes idle; returns the byte count.
    /// Fails on FIN or any other frame than WINDOW_UPDATE.
    async fn data_until_quiet(&mut self, id: u32) -> usize {
        let mut total = 0;
        while let Some(frame) = self.try_recv().await {
            match frame {
                Frame::Data {
                    stream_id, data, ..
                } if stream_id == id => total += data.len(),
                Frame::WindowUpdate { .. } => {}
                frame => panic!("unexpected frame {frame:?}"),
            }
        }
        total
    }
}

fn start(config: SessionConfig) -> (Session, Incoming, ClientTx, ClientRx) {
    start_with_pipe(config, PIPE)
}

fn start_with_pipe(config: SessionConfig, pipe: usize) -> (Session, Incoming, ClientTx, ClientRx) {
    let (server_io, client_io) = tokio::io::duplex(pipe);
    let (session, incoming) = serve(server_io, config);
    let (rd, wr) = tokio::io::split(client_io);
    (
        session,
        incoming,
        ClientTx {
            io: wr,
            compressor: HeaderCompressor::new(),
        },
        ClientRx {
            io: rd,
            decompressor: HeaderDecompressor::new(),
            buf: BytesMut::new(),
        },
    )
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().copied().collect()
}

fn syn(stream_id: u32, pairs: &[(&str, &str)]) -> Frame {
    syn_flags(stream_id, pairs, 0)
}

fn syn_flags(stream_id: u32, pairs: &[(&str, &str)], flags: u8) -> Frame {
    Frame::SynStream {
        stream_id,
        associated_to: 0,
        priority: 0,
        slot: 0,
        flags,
        headers: headers(pairs),
    }
}

fn data(stream_id: u32, bytes: &[u8], fin: bool) -> Frame {
    Frame::Data {
        stream_id,
        flags: if fin { FLAG_FIN } else { 0 },
        data: Bytes::copy_from_slice(bytes),
    }
}

fn rst(stream_id: u32, status: RstStatus) -> Frame {
    Frame::RstStream { stream_id, status }
}

fn window_update(stream_id: u32, delta: u32) -> Frame {
    Frame::WindowUpdate { stream_id, delta }
}

fn initial_window_setting(value: u32) -> Frame {
    Frame::Settings {
        flags: 0,
        entries: vec![Setting {
            flags: 0,
            id: SETTINGS_INITIAL_WINDOW_SIZE,
            value,
        }],
    }
}

fn syn_reply(stream_id: u32) -> Frame {
    Frame::SynReply {
        stream_id,
        flags: 0,
        headers: Headers::new(),
    }
}

/// `len` bytes of a pattern that depends on `seed` and does not repeat every 256 bytes.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8) ^ seed)
        .collect()
}

async fn accept(incoming: &mut Incoming) -> Stream {
    guard("accepting a stream", incoming.accept())
        .await
        .expect("the session ended instead of yielding a stream")
}

/// Opens stream `id` from the client, accepts and replies to it on the server, checks
/// the SYN_REPLY, and returns the server's halves.
async fn open(
    tx: &mut ClientTx,
    rx: &mut ClientRx,
    incoming: &mut Incoming,
    id: u32,
    pairs: &[(&str, &str)],
) -> (StreamReader, StreamWriter) {
    tx.send(syn(id, pairs)).await;
    let stream = accept(incoming).await;
    assert_eq!(stream.id(), id);
    assert_eq!(stream.headers(), &headers(pairs));
    guard("reply", stream.reply()).await.unwrap();
    assert_eq!(rx.recv_no_updates().await, syn_reply(id));
    stream.split()
}

/// The [`SpdyError`] inside an `io::Error` from a stream half.
fn spdy_error(err: &io::Error) -> &SpdyError {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<SpdyError>())
        .unwrap_or_else(|| panic!("io::Error without a SpdyError: {err:?}"))
}

fn assert_reset(err: &io::Error, want: RstStatus) {
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err:?}");
    match spdy_error(err) {
        SpdyError::StreamReset { status } => assert_eq!(*status, want),
        other => panic!("expected StreamReset, got {other:?}"),
    }
}

fn assert_connection_closed(err: &io::Error) {
    assert!(
        matches!(spdy_error(err), SpdyError::ConnectionClosed),
        "{err:?}"
    );
}

async fn read_all(reader: &mut StreamReader) -> Vec<u8> {
    let mut out = Vec::new();
    guard("read_to_end", reader.read_to_end(&mut out))
        .await
        .unwrap();
    out
}
