//! Tests of the SPDY session: [`serve`] and its handles, driven through an in-memory
//! pipe by a test client made of the crate's own frame codec and header compression.
//!
//! Every test runs on a paused Tokio clock. Timers then fire only once every task is
//! idle, so "nothing more happens" ([`ClientRx::expect_quiet`], [`quiesce`]) and the
//! hang guards ([`guard`]) are exact, and idle timeouts are tested without waiting.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::time::{Instant, timeout};

use super::frame::{
    DEFAULT_INITIAL_WINDOW, FLAG_FIN, FLAG_UNIDIRECTIONAL, MAX_FRAME_PAYLOAD, MAX_WINDOW,
    SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS,
};
use super::*;

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

// ---------------------------------------------------------------------------------
// Accepting streams.

#[tokio::test(start_paused = true)]
async fn accept_yields_the_stream_and_reply_sends_syn_reply() {
    let (session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());

    // exec's channels, and port-forward's (several headers, one with two values).
    let exec = [("streamtype", "error")];
    let forward = [("streamtype", "data"), ("port", "8080"), ("requestid", "0")];
    tx.send(syn(1, &exec)).await;
    tx.send(Frame::SynStream {
        stream_id: 3,
        associated_to: 0,
        priority: 5,
        slot: 0,
        flags: 0,
        headers: headers(&forward),
    })
    .await;
    tx.send(syn(5, &[("StreamType", "stdout"), ("x", "a"), ("x", "b")]))
        .await;

    let first = accept(&mut incoming).await;
    assert_eq!(first.id(), 1);
    assert_eq!(first.headers().get("streamtype"), Some("error"));
    let second = accept(&mut incoming).await;
    assert_eq!(second.id(), 3);
    assert_eq!(second.priority(), 5);
    assert_eq!(second.headers(), &headers(&forward));
    assert_eq!(second.headers().get("port"), Some("8080"));
    let third = accept(&mut incoming).await;
    assert_eq!(third.headers().get("streamtype"), Some("stdout"));
    assert_eq!(third.headers().get_all("x").collect::<Vec<_>>(), ["a", "b"]);

    // Nothing is sent before the application replies.
    rx.expect_quiet().await;

    // Reply out of order: every SYN_REPLY must decode with the client's one zlib
    // stream, so the server's compressor must stay in step.
    second.reply().await.unwrap();
    first.reply().await.unwrap();
    assert_eq!(rx.recv().await, syn_reply(3));
    assert_eq!(rx.recv().await, syn_reply(1));
    // A second reply does nothing more.
    first.reply().await.unwrap();
    third.reply().await.unwrap();
    assert_eq!(rx.recv().await, syn_reply(5));
    rx.expect_quiet().await;
    assert!(!session.is_closed());
}

#[tokio::test(start_paused = true)]
async fn writing_before_reply_fails() {
    let (_session, mut incoming, mut tx, _rx) = start(SessionConfig::default());
    tx.send(syn(1, &[("streamtype", "stdout")])).await;
    let (_reader, mut writer) = accept(&mut incoming).await.split();
    let err = writer.write(b"x").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    assert!(matches!(spdy_error(&err), SpdyError::NotReplied));
    let err = writer.shutdown().await.unwrap_err();
    assert!(matches!(spdy_error(&err), SpdyError::NotReplied));
}

#[tokio::test(start_paused = true)]
async fn syn_stream_with_fin_reads_as_eof_at_once() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    tx.send(syn_flags(1, &[("streamtype", "error")], FLAG_FIN))
        .await;
    let stream = accept(&mut incoming).await;
    stream.reply().await.unwrap();
    assert_eq!(rx.recv().await, syn_reply(1));
    let (mut reader, mut writer) = stream.split();
    assert!(read_all(&mut reader).await.is_empty());
    writer.write_all(b"status").await.unwrap();
    writer.shutdown().await.unwrap();
    assert_eq!(rx.collect(&[1]).await[0].0, b"status");
    // Closed both ways: dropping the halves sends nothing.
    drop((reader, writer));
    rx.expect_quiet().await;
}

#[tokio::test(start_paused = true)]
async fn headers_with_fin_half_close_the_stream() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    let (mut reader, _writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdin")],
    )
    .await;
    tx.send(data(1, b"abc", false)).await;
    tx.send(Frame::Headers {
        stream_id: 1,
        flags: 0,
        headers: headers(&[("x", "1")]),
    })
    .await;
    tx.send(data(1, b"def", false)).await;
    tx.send(Frame::Headers {
        stream_id: 1,
        flags: FLAG_FIN,
        headers: headers(&[("x", "2")]),
    })
    .await;
    assert_eq!(read_all(&mut reader).await, b"abcdef");
    rx.expect_quiet().await;
}

#[tokio::test(start_paused = true)]
async fn incoming_is_a_futures_stream() {
    use futures::StreamExt;
    let (_session, mut incoming, mut tx, _rx) = start(SessionConfig::default());
    tx.send(syn(1, &[("streamtype", "data")])).await;
    tx.send(syn(3, &[("streamtype", "error")])).await;
    tx.send(Frame::GoAway {
        last_good_stream_id: 0,
        status: GoAwayStatus::OK,
    })
    .await;
    let ids: Vec<u32> = guard("collect", (&mut incoming).map(|s| s.id()).collect()).await;
    assert_eq!(ids, [1, 3]);
}

#[test]
fn handles_can_move_between_tasks() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Session>();
    send_sync::<Incoming>();
    send_sync::<Stream>();
    send_sync::<StreamReader>();
    send_sync::<StreamWriter>();
}

#[tokio::test(start_paused = true)]
async fn unidirectional_stream_is_not_replied_to_and_not_writable() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    tx.send(syn_flags(
        1,
        &[("streamtype", "stdin")],
        FLAG_UNIDIRECTIONAL,
    ))
    .await;
    let stream = accept(&mut incoming).await;
    stream.reply().await.unwrap();
    rx.expect_quiet().await;
    let (mut reader, mut writer) = stream.split();
    let err = writer.write(b"x").await.unwrap_err();
    assert!(matches!(spdy_error(&err), SpdyError::StreamClosed));
    tx.send(data(1, b"in", true)).await;
    assert_eq!(read_all(&mut reader).await, b"in");
    drop((reader, writer));
    rx.expect_quiet().await;
}

// ---------------------------------------------------------------------------------
// Data in both directions, FIN.

#[tokio::test(start_paused = true)]
async fn data_flows_both_ways_split_in_frames_and_fin_half_closes() {
    let (_session, mut incoming, mut tx, mut rx) = start_with_pipe(SessionConfig::default(), 8192);
    let (mut reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdin")],
    )
    .await;

    let upload = pattern(100_000, 1);
    let download = pattern(3 * MAX_DATA_FRAME_PAYLOAD + 123, 2);

    let client = async {
        // 32 KiB DATA frames, as spdystream writes what io.Copy gives it; FIN on the last.
        let chunks: Vec<_> = upload.chunks(32 * 1024).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            tx.send(data(1, chunk, i + 1 == chunks.len())).await;
        }
        rx.collect(&[1]).await.remove(0)
    };
    let server = async {
        let got = read_all(&mut reader).await;
        writer.write_all(&download).await.unwrap();
        writer.shutdown().await.unwrap();
        got
    };
    let ((downloaded, sizes), uploaded) =
        guard("transfer", async { tokio::join!(client, server) }).await;

    assert_eq!(uploaded, upload);
    assert_eq!(downloaded, download);
    assert!(sizes.len() >= 4, "{sizes:?}");
    assert!(
        sizes.iter().all(|&n| n <= MAX_DATA_FRAME_PAYLOAD),
        "{sizes:?}"
    );

    // EOF stays EOF; writing after shutdown fails; shutdown again is fine.
    let mut buf = [0; 8];
    assert_eq!(reader.read(&mut buf).await.unwrap(), 0);
    let err = writer.write(b"late").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    assert!(matches!(spdy_error(&err), SpdyError::StreamClosed));
    writer.shutdown().await.unwrap();

    // Closed in both directions: dropping the halves resets nothing.
    drop((reader, writer));
    rx.expect_quiet().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_an_empty_data_frame_with_fin() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    let (_reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    writer.write_all(b"hello").await.unwrap();
    writer.flush().await.unwrap();
    assert_eq!(rx.recv().await, data(1, b"hello", false));
    writer.shutdown().await.unwrap();
    assert_eq!(rx.recv().await, data(1, b"", true));
    rx.expect_quiet().await;
}

#[tokio::test(start_paused = true)]
async fn reading_returns_flow_control_credit() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    let (mut reader, _writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdin")],
    )
    .await;
    // Under half a window: no credit yet.
    tx.send(data(1, &[1; 1000], false)).await;
    let mut buf = vec![0; 1000];
    reader.read_exact(&mut buf).await.unwrap();
    rx.expect_quiet().await;
    // Over half a window read at once: one WINDOW_UPDATE each for the stream and the
    // session, returning everything read.
    for _ in 0..4 {
        tx.send(data(1, &[2; 10_000], false)).await;
    }
    quiesce().await;
    let mut buf = vec![0; 40_000];
    reader.read_exact(&mut buf).await.unwrap();
    let mut updates = Vec::new();
    while let Some(frame) = rx.try_recv().await {
        updates.push(frame);
    }
    updates.sort_by_key(|frame| frame.stream_id());
    assert_eq!(
        updates,
        [window_update(0, 41_000), window_update(1, 41_000)]
    );
}

#[tokio::test(start_paused = true)]
async fn larger_receive_window_is_announced() {
    let config = SessionConfig {
        initial_window: 1 << 20,
        ..SessionConfig::default()
    };
    let (_session, _incoming, _tx, mut rx) = start(config);
    assert_eq!(rx.recv().await, initial_window_setting(1 << 20));
    assert_eq!(
        rx.recv().await,
        window_update(0, (1 << 20) - DEFAULT_INITIAL_WINDOW)
    );
    rx.expect_quiet().await;

    let config = SessionConfig {
        initial_window: 16 * 1024,
        ..SessionConfig::default()
    };
    let (_session, _incoming, _tx, mut rx) = start(config);
    assert_eq!(rx.recv().await, initial_window_setting(16 * 1024));
    rx.expect_quiet().await;
}

// ---------------------------------------------------------------------------------
// Concurrent streams.

#[tokio::test(start_paused = true)]
async fn concurrent_streams_keep_their_data_apart() {
    let (_session, mut incoming, mut tx, mut rx) = start_with_pipe(SessionConfig::default(), 4096);
    let ids = [1u32, 3, 5];
    let mut halves = Vec::new();
    for (id, kind) in ids.into_iter().zip(["stdin", "stdout", "stderr"]) {
        halves.push(open(&mut tx, &mut rx, &mut incoming, id, &[("streamtype", kind)]).await);
    }
    let mut tasks = Vec::new();
    for (id, (mut reader, mut writer)) in ids.into_iter().zip(halves) {
        tasks.push(tokio::spawn(async move {
            // Echo with a stream-specific prefix, writing as data arrives.
            let mut received = Vec::new();
            let mut buf = vec![0; 7000];
            writer.write_all(&[id as u8; 3]).await.unwrap();
            loop {
                let n = reader.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&buf[..n]);
                writer.write_all(&buf[..n]).await.unwrap();
            }
            writer.shutdown().await.unwrap();
            received
        }));
    }

    let sent: Vec<Vec<u8>> = ids
        .iter()
        .map(|&id| pattern(60_000 + id as usize * 1000, id as u8))
        .collect();
    let client = async {
        // Interleave frames of the three streams, of varying sizes.
        let mut offsets = [0usize; 3];
        let mut round = 0;
        while offsets.iter().zip(&sent).any(|(o, s)| *o < s.len()) {
            for i in 0..3 {
                let size = 1 + (round * 7919 + i * 104_729) % 9000;
                let start = offsets[i];
                if start >= sent[i].len() {
                    continue;
                }
                let end = (start + size).min(sent[i].len());
                tx.send(data(ids[i], &sent[i][start..end], end == sent[i].len()))
                    .await;
                offsets[i] = end;
            }
            round += 1;
        }
    };
    let (_, echoed) = guard("echo", async { tokio::join!(client, rx.collect(&ids)) }).await;

    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap(), sent[i], "stream {}", ids[i]);
        let mut want = vec![ids[i] as u8; 3];
        want.extend_from_slice(&sent[i]);
        assert_eq!(echoed[i].0, want, "stream {}", ids[i]);
    }
    rx.expect_quiet().await;
}

// ---------------------------------------------------------------------------------
// PING.

#[tokio::test(start_paused = true)]
async fn client_pings_are_echoed() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    for id in [1, 3, 0x7fff_ffff, 0xffff_ffff] {
        tx.send(Frame::Ping { id }).await;
        assert_eq!(rx.recv().await, Frame::Ping { id });
    }
    // Even ids would answer pings of ours, and we send none: not echoed.
    tx.send(Frame::Ping { id: 2 }).await;
    rx.expect_quiet().await;

    // Echoed while streams are busy too.
    let (_reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    writer.write_all(b"x").await.unwrap();
    tx.send(Frame::Ping { id: 5 }).await;
    let mut frames = vec![rx.recv().await, rx.recv().await];
    frames.sort_by_key(|frame| frame.stream_id());
    assert_eq!(frames, [Frame::Ping { id: 5 }, data(1, b"x", false)]);
}

// ---------------------------------------------------------------------------------
// RST_STREAM.

#[tokio::test(start_paused = true)]
async fn peer_reset_fails_the_reader_and_the_writer() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    let (mut reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdin")],
    )
    .await;
    tx.send(data(1, b"unread", false)).await;
    quiesce().await;
    // A read parked on the stream...
    let pending_read = tokio::spawn(async move {
        let mut buf = [0; 6];
        reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"unread");
        let err = reader.read(&mut buf).await.unwrap_err();
        (reader, err)
    });
    quiesce().await;
    assert!(!pending_read.is_finished());
    // ...fails when the peer resets it.
    tx.send(rst(1, RstStatus::CANCEL)).await;
    let (mut reader, err) = guard("reader", pending_read).await.unwrap();
    assert_reset(&err, RstStatus::CANCEL);
    let err = reader.read(&mut [0; 4]).await.unwrap_err();
    assert_reset(&err, RstStatus::CANCEL);
    let err = writer.write(b"x").await.unwrap_err();
    assert_reset(&err, RstStatus::CANCEL);
    let err = writer.shutdown().await.unwrap_err();
    assert_reset(&err, RstStatus::CANCEL);
    // No RST_STREAM in answer to RST_STREAM, even when the halves go.
    drop((reader, writer));
    rx.expect_quiet().await;
    // Later frames for the stream are ignored.
    tx.send(data(1, b"late", false)).await;
    tx.send(window_update(1, 10)).await;
    rx.expect_quiet().await;
}

#[tokio::test(start_paused = true)]
async fn peer_reset_wakes_a_writer_parked_on_the_window() {
    let config = SessionConfig {
        send_window: SendWindowMode::Enforce,
        ..SessionConfig::default()
    };
    let (_session, mut incoming, mut tx, mut rx) = start(config);
    tx.send(initial_window_setting(10)).await;
    let (_reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    let write = tokio::spawn(async move { writer.write_all(&[7; 100]).await });
    assert_eq!(rx.data_until_quiet(1).await, 10);
    assert!(!write.is_finished());
    tx.send(rst(1, RstStatus::CANCEL)).await;
    let err = guard("writer", write).await.unwrap().unwrap_err();
    assert_reset(&err, RstStatus::CANCEL);
}

#[tokio::test(start_paused = true)]
async fn peer_reset_of_a_stream_not_yet_accepted_hides_it() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    tx.send(syn(1, &[("streamtype", "error")])).await;
    tx.send(syn(3, &[("streamtype", "stdout")])).await;
    tx.send(data(1, &[0; 100], false)).await;
    tx.send(rst(1, RstStatus::CANCEL)).await;
    quiesce().await;
    let stream = accept(&mut incoming).await;
    assert_eq!(stream.id(), 3);
    rx.expect_quiet().await;
}

#[tokio::test(start_paused = true)]
async fn local_reset_sends_rst_stream_and_fails_the_halves() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    let (mut reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdin")],
    )
    .await;
    writer.reset(RstStatus::INTERNAL_ERROR).unwrap();
    assert_eq!(rx.recv().await, rst(1, RstStatus::INTERNAL_ERROR));
    let err = reader.read(&mut [0; 4]).await.unwrap_err();
    assert_reset(&err, RstStatus::INTERNAL_ERROR);
    let err = writer.write(b"x").await.unwrap_err();
    assert_reset(&err, RstStatus::INTERNAL_ERROR);
    // Resetting again sends nothing more; data the peer had in flight is ignored.
    writer.reset(RstStatus::CANCEL).unwrap();
    tx.send(data(1, b"in flight", true)).await;
    drop((reader, writer));
    rx.expect_quiet().await;
}

#[tokio::test(start_paused = true)]
async fn local_reset_drops_data_not_yet_written() {
    // A one-byte pipe the client does not read: the writes stay queued.
    let (_session, mut incoming, mut tx, mut rx) = start_with_pipe(SessionConfig::default(), 1);
    tx.send(syn(1, &[("streamtype", "stdout")])).await;
    let stream = accept(&mut incoming).await;
    let reply = tokio::spawn(async move {
        stream.reply().await.unwrap();
        stream
    });
    assert_eq!(rx.recv().await, syn_reply(1));
    let (_reader, mut writer) = guard("reply", reply).await.unwrap().split();
    writer.write_all(&[1; 50_000]).await.unwrap();
    writer.reset(RstStatus::CANCEL).unwrap();
    let mut data_bytes = 0;
    loop {
        match rx.recv().await {
            Frame::Data { data, .. } => data_bytes += data.len(),
            frame => {
                assert_eq!(frame, rst(1, RstStatus::CANCEL));
                break;
            }
        }
    }
    assert!(data_bytes < 50_000, "{data_bytes}");
    rx.expect_quiet().await;
}

#[tokio::test(start_paused = true)]
async fn refusing_a_stream() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    tx.send(syn(1, &[("streamtype", "resize")])).await;
    let stream = accept(&mut incoming).await;
    stream.reset(RstStatus::REFUSED_STREAM).unwrap();
    assert_eq!(rx.recv().await, rst(1, RstStatus::REFUSED_STREAM));
    assert!(matches!(
        stream.reply().await,
        Err(SpdyError::StreamReset {
            status: RstStatus::REFUSED_STREAM
        })
    ));
    drop(stream);
    rx.expect_quiet().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_an_open_stream_cancels_it() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    // Dropped unsplit, before reply.
    tx.send(syn(1, &[("streamtype", "error")])).await;
    drop(accept(&mut incoming).await);
    assert_eq!(rx.recv().await, rst(1, RstStatus::CANCEL));
    // Split, writer shut down but the peer never sent FIN.
    let (reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        3,
        &[("streamtype", "stdout")],
    )
    .await;
    writer.shutdown().await.unwrap();
    assert_eq!(rx.recv().await, data(3, b"", true));
    drop(writer);
    rx.expect_quiet().await;
    drop(reader);
    assert_eq!(rx.recv().await, rst(3, RstStatus::CANCEL));
    // Dropping the reader discards what arrives later, returning its credit.
    let (reader, _writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        5,
        &[("streamtype", "stdin")],
    )
    .await;
    drop(reader);
    for _ in 0..10 {
        tx.send(data(5, &[0; 10_000], false)).await;
    }
    let mut credit = [0u64; 2];
    while let Some(frame) = rx.try_recv().await {
        match frame {
            Frame::WindowUpdate { stream_id, delta } => {
                credit[usize::from(stream_id != 0)] += u64::from(delta);
            }
            frame => panic!("unexpected {frame:?}"),
        }
    }
    assert!(credit[0] >= 100_000 - 32 * 1024, "{credit:?}");
    assert!(credit[1] >= 100_000 - 32 * 1024, "{credit:?}");
}

#[tokio::test(start_paused = true)]
async fn dropping_incoming_refuses_pending_and_new_streams() {
    let (session, incoming, mut tx, mut rx) = start(SessionConfig::default());
    tx.send(syn(1, &[("streamtype", "error")])).await;
    tx.send(syn(3, &[("streamtype", "stdout")])).await;
    quiesce().await;
    drop(incoming);
    assert_eq!(rx.recv().await, rst(1, RstStatus::REFUSED_STREAM));
    assert_eq!(rx.recv().await, rst(3, RstStatus::REFUSED_STREAM));
    tx.send(syn(5, &[("streamtype", "stderr")])).await;
    assert_eq!(rx.recv().await, rst(5, RstStatus::REFUSED_STREAM));
    // Session still up.
    tx.send(Frame::Ping { id: 1 }).await;
    assert_eq!(rx.recv().await, Frame::Ping { id: 1 });
    assert!(!session.is_closed());
}

// ---------------------------------------------------------------------------------
// Ending the session.

#[tokio::test(start_paused = true)]
async fn peer_goaway_ends_accept_then_the_session() {
    let (session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    tx.send(syn(1, &[("streamtype", "stdin")])).await;
    tx.send(Frame::GoAway {
        last_good_stream_id: 0,
        status: GoAwayStatus::OK,
    })
    .await;
    quiesce().await;
    // The stream opened before GOAWAY is still handed out, then accept ends.
    let stream = accept(&mut incoming).await;
    assert!(guard("accept", incoming.accept()).await.is_none());
    assert!(!session.is_closed());

    // The stream still works.
    stream.reply().await.unwrap();
    assert_eq!(rx.recv().await, syn_reply(1));
    let (mut reader, mut writer) = stream.split();
    // New streams are refused.
    tx.send(syn(3, &[("streamtype", "stdout")])).await;
    assert_eq!(rx.recv().await, rst(3, RstStatus::REFUSED_STREAM));
    tx.send(data(1, b"last words", true)).await;
    assert_eq!(read_all(&mut reader).await, b"last words");
    writer.write_all(b"bye").await.unwrap();
    writer.shutdown().await.unwrap();
    assert_eq!(rx.collect(&[1]).await[0].0, b"bye");
    assert!(!session.is_closed());

    // Once the last stream is gone, the session closes itself.
    drop((reader, writer));
    rx.expect_goaway(3, GoAwayStatus::OK).await;
    guard("closed", session.closed()).await;
    assert!(session.is_closed());
}

#[tokio::test(start_paused = true)]
async fn peer_goaway_without_streams_closes_at_once() {
    let (session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    tx.send(Frame::GoAway {
        last_good_stream_id: 0,
        status: GoAwayStatus::OK,
    })
    .await;
    assert!(guard("accept", incoming.accept()).await.is_none());
    guard("closed", session.closed()).await;
    rx.expect_goaway(0, GoAwayStatus::OK).await;
}

#[tokio::test(start_paused = true)]
async fn connection_eof_ends_the_session_and_fails_open_streams() {
    let (session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    let (mut reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdin")],
    )
    .await;
    tx.send(data(1, b"before eof", false)).await;
    quiesce().await;
    let accepting = tokio::spawn(async move { incoming.accept().await.is_none() });
    quiesce().await;
    assert!(!accepting.is_finished());
    drop((tx, rx));

    assert!(guard("accept", accepting).await.unwrap());
    guard("closed", session.closed()).await;
    assert!(session.is_closed());
    // Data received before the end can still be read; then the stream fails.
    let mut buf = [0; 10];
    reader.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"before eof");
    let err = reader.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    assert_connection_closed(&err);
    let err = writer.write(b"x").await.unwrap_err();
    assert_connection_closed(&err);
    let err = writer.shutdown().await.unwrap_err();
    assert_connection_closed(&err);
    assert!(matches!(
        writer.reset(RstStatus::CANCEL),
        Err(SpdyError::ConnectionClosed)
    ));
    // close() on an ended session returns at once.
    guard("close", session.close()).await;
}

#[tokio::test(start_paused = true)]
async fn half_closed_connection_ends_the_session() {
    // The client only shuts down its writing side and keeps reading.
    let (session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    let (_reader, _writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdin")],
    )
    .await;
    tx.io.shutdown().await.unwrap();
    guard("closed", session.closed()).await;
    rx.expect_eof().await;
}

#[tokio::test(start_paused = true)]
async fn close_sends_goaway_after_queued_frames() {
    let (session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    let (mut reader1, mut writer1) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    let (_reader3, _writer3) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        3,
        &[("streamtype", "stderr")],
    )
    .await;
    writer1.write_all(b"queued").await.unwrap();
    let closing = {
        let session = session.clone();
        tokio::spawn(async move { session.close().await })
    };
    assert_eq!(rx.recv().await, data(1, b"queued", false));
    rx.expect_goaway(3, GoAwayStatus::OK).await;
    guard("close", closing).await.unwrap();
    assert!(session.is_closed());
    assert!(guard("accept", incoming.accept()).await.is_none());
    let err = writer1.write(b"x").await.unwrap_err();
    assert_connection_closed(&err);
    let err = reader1.read(&mut [0; 1]).await.unwrap_err();
    assert_connection_closed(&err);
    // Whatever the client sends now goes nowhere.
    let _ = tx.try_send(Frame::Ping { id: 1 }).await;
}

#[tokio::test(start_paused = true)]
async fn close_wakes_everything_parked_on_the_session() {
    let config = SessionConfig {
        send_window: SendWindowMode::Enforce,
        ..SessionConfig::default()
    };
    let (session, mut incoming, mut tx, mut rx) = start(config);
    tx.send(initial_window_setting(0)).await;
    let (mut reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdin")],
    )
    .await;
    let read = tokio::spawn(async move { reader.read(&mut [0; 8]).await });
    // Window 0: the writer parks.
    let write = tokio::spawn(async move { writer.write(b"blocked").await });
    let accepting = tokio::spawn(async move { incoming.accept().await.is_none() });
    quiesce().await;
    assert!(!read.is_finished() && !write.is_finished() && !accepting.is_finished());
    guard("close", session.close()).await;
    assert_connection_closed(&guard("read", read).await.unwrap().unwrap_err());
    assert_connection_closed(&guard("write", write).await.unwrap().unwrap_err());
    assert!(guard("accept", accepting).await.unwrap());
    rx.expect_goaway(1, GoAwayStatus::OK).await;
}

#[tokio::test(start_paused = true)]
async fn no_idle_timeout_by_default() {
    let (session, _incoming, mut tx, mut rx) = start(SessionConfig::default());
    tokio::time::sleep(Duration::from_secs(30 * 24 * 3600)).await;
    assert!(!session.is_closed());
    tx.send(Frame::Ping { id: 1 }).await;
    assert_eq!(rx.recv().await, Frame::Ping { id: 1 });
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_closes_the_session() {
    let (session, incoming, mut tx, mut rx) = start(SessionConfig::default());
    tx.send(Frame::Ping { id: 1 }).await;
    assert_eq!(rx.recv().await, Frame::Ping { id: 1 });
    let second = session.clone();
    drop(session);
    drop(incoming);
    rx.expect_quiet().await;
    assert!(!second.is_closed());
    drop(second);
    rx.expect_goaway(0, GoAwayStatus::OK).await;
}

#[tokio::test(start_paused = true)]
async fn a_session_whose_peer_never_reads_still_closes() {
    // Tiny pipe, and the client stops reading: close gives up after its grace period.
    let (session, mut incoming, mut tx, mut rx) = start_with_pipe(SessionConfig::default(), 64);
    let (_reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    writer.write_all(&[0; 10_000]).await.unwrap();
    quiesce().await;
    let start = Instant::now();
    guard("close", session.close()).await;
    assert!(start.elapsed() >= Duration::from_secs(10));
    let err = writer.flush().await.unwrap_err();
    assert_connection_closed(&err);
    drop(rx);
}

// ---------------------------------------------------------------------------------
// Flow control.

#[tokio::test(start_paused = true)]
async fn enforce_mode_respects_the_peer_stream_window() {
    let config = SessionConfig {
        send_window: SendWindowMode::Enforce,
        ..SessionConfig::default()
    };
    let (_session, mut incoming, mut tx, mut rx) = start(config);
    tx.send(initial_window_setting(1000)).await;
    let (_reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    let payload = pattern(5000, 9);
    let write = tokio::spawn({
        let payload = payload.clone();
        async move {
            writer.write_all(&payload).await.unwrap();
            writer.shutdown().await.unwrap();
        }
    });
    assert_eq!(rx.data_until_quiet(1).await, 1000);
    tx.send(window_update(1, 1500)).await;
    assert_eq!(rx.data_until_quiet(1).await, 1500);
    tx.send(window_update(1, 1)).await;
    assert_eq!(rx.data_until_quiet(1).await, 1);
    assert!(!write.is_finished());
    // Lowering the initial window applies to open streams: from 0 to -1000.
    tx.send(initial_window_setting(0)).await;
    tx.send(window_update(1, 1000)).await;
    assert_eq!(rx.data_until_quiet(1).await, 0);
    tx.send(window_update(1, 1499)).await;
    assert_eq!(rx.data_until_quiet(1).await, 1499);
    assert!(!write.is_finished());
    // Enough for the rest, then FIN (which needs no window).
    tx.send(window_update(1, 100_000)).await;
    let rest = rx.collect(&[1]).await.remove(0).0;
    assert_eq!(rest, payload[4000..]);
    guard("writer", write).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn enforce_mode_respects_the_session_window() {
    let config = SessionConfig {
        send_window: SendWindowMode::Enforce,
        ..SessionConfig::default()
    };
    let (_session, mut incoming, mut tx, mut rx) = start(config);
    // Large stream windows; the session window stays at 64 KiB until updated.
    tx.send(initial_window_setting(1 << 20)).await;
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for id in [1, 3] {
        let (reader, writer) = open(
            &mut tx,
            &mut rx,
            &mut incoming,
            id,
            &[("streamtype", "stdout")],
        )
        .await;
        readers.push(reader);
        writers.push(writer);
    }
    let mut writes = Vec::new();
    for mut writer in writers {
        writes.push(tokio::spawn(async move {
            let id = writer.id();
            writer.write_all(&pattern(50_000, id as u8)).await.unwrap();
            writer
        }));
    }
    assert_eq!(
        rx.all_data_until_quiet().await,
        DEFAULT_INITIAL_WINDOW as usize
    );
    tx.send(window_update(0, 10_000)).await;
    assert_eq!(rx.all_data_until_quiet().await, 10_000);
    tx.send(window_update(0, 100_000)).await;
    assert_eq!(
        rx.all_data_until_quiet().await,
        100_000 - 10_000 - DEFAULT_INITIAL_WINDOW as usize
    );
    for write in writes {
        guard("writer", write).await.unwrap();
    }
    drop(readers);
}

#[tokio::test(start_paused = true)]
async fn enforce_mode_stalls_after_64k_without_window_update() {
    let config = SessionConfig {
        send_window: SendWindowMode::Enforce,
        ..SessionConfig::default()
    };
    let (_session, mut incoming, mut tx, mut rx) = start(config);
    let (_reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    let write = tokio::spawn(async move { writer.write_all(&[0; 100_000]).await });
    assert_eq!(
        rx.data_until_quiet(1).await,
        DEFAULT_INITIAL_WINDOW as usize
    );
    assert!(!write.is_finished());
    tx.send(window_update(1, 100_000)).await;
    tx.send(window_update(0, 100_000)).await;
    assert_eq!(
        rx.data_until_quiet(1).await,
        100_000 - DEFAULT_INITIAL_WINDOW as usize
    );
    guard("writer", write).await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn detect_mode_sends_freely_to_a_peer_without_flow_control() {
    // Like spdystream: never a WINDOW_UPDATE or SETTINGS.
    let (_session, mut incoming, mut tx, mut rx) =
        start_with_pipe(SessionConfig::default(), 16 * 1024);
    let (_reader1, mut writer1) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    let (_reader3, mut writer3) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        3,
        &[("streamtype", "stderr")],
    )
    .await;
    let out1 = pattern(1 << 20, 1);
    let out3 = pattern(300_000, 3);
    let server = async {
        let a = async {
            writer1.write_all(&out1).await.unwrap();
            writer1.shutdown().await.unwrap();
        };
        let b = async {
            writer3.write_all(&out3).await.unwrap();
            writer3.shutdown().await.unwrap();
        };
        tokio::join!(a, b);
    };
    let (_, got) = guard("transfer", async {
        tokio::join!(server, rx.collect(&[1, 3]))
    })
    .await;
    assert_eq!(got[0].0, out1);
    assert_eq!(got[1].0, out3);
}

#[tokio::test(start_paused = true)]
async fn detect_mode_enforces_once_the_peer_sends_window_update() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    let (_reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    // Not enforced yet: 100 KB go out at once.
    writer.write_all(&[0; 100_000]).await.unwrap();
    assert_eq!(rx.data_until_quiet(1).await, 100_000);
    // The peer shows flow control: its windows are now 64 KiB - 100 000 + updates.
    tx.send(window_update(1, 40_000)).await;
    tx.send(window_update(0, 40_000)).await;
    quiesce().await;
    let write = tokio::spawn(async move {
        writer.write_all(&[1; 10_000]).await.unwrap();
        writer
    });
    let window = (DEFAULT_INITIAL_WINDOW as usize + 40_000) - 100_000;
    assert_eq!(rx.data_until_quiet(1).await, window);
    assert!(!write.is_finished());
    tx.send(window_update(1, 10_000)).await;
    tx.send(window_update(0, 10_000)).await;
    assert_eq!(rx.data_until_quiet(1).await, 10_000 - window);
    guard("writer", write).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn detect_mode_enforces_once_the_peer_sends_initial_window_size() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    tx.send(initial_window_setting(2000)).await;
    let (_reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    let write = tokio::spawn(async move { writer.write_all(&[0; 5000]).await });
    assert_eq!(rx.data_until_quiet(1).await, 2000);
    assert!(!write.is_finished());
    // Other settings do not count as flow control.
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    tx.send(Frame::Settings {
        flags: 0,
        entries: vec![Setting {
            flags: 0,
            id: SETTINGS_MAX_CONCURRENT_STREAMS,
            value: 100,
        }],
    })
    .await;
    let (_reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    writer.write_all(&[0; 100_000]).await.unwrap();
    assert_eq!(rx.data_until_quiet(1).await, 100_000);
}

#[tokio::test(start_paused = true)]
async fn window_overflow_is_a_stream_or_session_error() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    let (mut reader, _writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    // Stream window over 2^31 - 1: RST_STREAM FLOW_CONTROL_ERROR.
    tx.send(window_update(1, MAX_WINDOW)).await;
    assert_eq!(rx.recv().await, rst(1, RstStatus::FLOW_CONTROL_ERROR));
    let err = reader.read(&mut [0; 1]).await.unwrap_err();
    assert_reset(&err, RstStatus::FLOW_CONTROL_ERROR);
    // Session window over 2^31 - 1: the session ends.
    tx.send(window_update(0, MAX_WINDOW)).await;
    rx.expect_goaway(1, GoAwayStatus::PROTOCOL_ERROR).await;
}

// ---------------------------------------------------------------------------------
// Idle timeout.

/// `elapsed` is `secs` seconds, give or take the timer's millisecond resolution.
fn assert_about(elapsed: Duration, secs: u64) {
    let want = Duration::from_secs(secs);
    assert!(
        elapsed >= want && elapsed <= want + Duration::from_millis(10),
        "{elapsed:?} instead of {want:?}"
    );
}

fn start_with_idle(secs: u64) -> (Session, Incoming, ClientTx, ClientRx) {
    start(SessionConfig {
        idle_timeout: Some(Duration::from_secs(secs)),
        ..SessionConfig::default()
    })
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_an_idle_session() {
    let start = Instant::now();
    let (session, mut incoming, _tx, mut rx) = start_with_idle(30);
    rx.expect_goaway(0, GoAwayStatus::OK).await;
    assert_about(start.elapsed(), 30);
    guard("closed", session.closed()).await;
    assert!(incoming.accept().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn traffic_defers_the_idle_timeout() {
    let start = Instant::now();
    let (session, mut incoming, mut tx, mut rx) = start_with_idle(30);
    // PINGs (received and answered) count as activity...
    for i in 0..5u32 {
        tokio::time::sleep(Duration::from_secs(20)).await;
        tx.send(Frame::Ping { id: 2 * i + 1 }).await;
        assert_eq!(rx.recv().await, Frame::Ping { id: 2 * i + 1 });
    }
    assert!(!session.is_closed());
    // ...and so do frames only sent.
    let (_reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(20)).await;
        writer.write_all(b"tick").await.unwrap();
        assert_eq!(rx.recv().await, data(1, b"tick", false));
    }
    assert!(!session.is_closed());
    let last = Instant::now();
    // An open stream does not keep the session alive by itself.
    rx.expect_goaway(1, GoAwayStatus::OK).await;
    assert_about(last.elapsed(), 30);
    assert_about(start.elapsed(), 100 + 60 + 30);
    let err = writer.write(b"x").await.unwrap_err();
    assert_connection_closed(&err);
}

// ---------------------------------------------------------------------------------
// Protocol errors.

#[tokio::test(start_paused = true)]
async fn data_on_a_stream_never_opened_is_reset_invalid_stream() {
    let (session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    tx.send(data(7, b"who?", false)).await;
    assert_eq!(rx.recv().await, rst(7, RstStatus::INVALID_STREAM));
    // An even id can never be the client's.
    tx.send(data(2, b"who?", false)).await;
    assert_eq!(rx.recv().await, rst(2, RstStatus::INVALID_STREAM));
    tx.send(Frame::Headers {
        stream_id: 9,
        flags: 0,
        headers: headers(&[("a", "b")]),
    })
    .await;
    assert_eq!(rx.recv().await, rst(9, RstStatus::INVALID_STREAM));
    // The session goes on, its header compression in step.
    let (_reader, _writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        11,
        &[("streamtype", "data")],
    )
    .await;
    // A stream that existed and is gone: ignored.
    tx.send(syn(13, &[("streamtype", "error")])).await;
    drop(accept(&mut incoming).await);
    assert_eq!(rx.recv().await, rst(13, RstStatus::CANCEL));
    tx.send(data(13, b"late", false)).await;
    tx.send(data(5, b"late", false)).await;
    rx.expect_quiet().await;
    assert!(!session.is_closed());
}

#[tokio::test(start_paused = true)]
async fn data_after_fin_is_reset_stream_already_closed() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    let (mut reader, _writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdin")],
    )
    .await;
    tx.send(data(1, b"done", true)).await;
    tx.send(data(1, b"more", false)).await;
    assert_eq!(rx.recv().await, rst(1, RstStatus::STREAM_ALREADY_CLOSED));
    let err = reader.read(&mut [0; 8]).await.unwrap_err();
    assert_reset(&err, RstStatus::STREAM_ALREADY_CLOSED);
}

#[tokio::test(start_paused = true)]
async fn syn_reply_from_the_client_resets_the_stream() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    let (_reader, _writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdin")],
    )
    .await;
    tx.send(syn_reply(1)).await;
    assert_eq!(rx.recv().await, rst(1, RstStatus::PROTOCOL_ERROR));
    tx.send(syn_reply(4)).await;
    assert_eq!(rx.recv().await, rst(4, RstStatus::INVALID_STREAM));
}

/// Sends `frames`, then expects GOAWAY PROTOCOL_ERROR and the end of the session.
async fn expect_session_error(frames: Vec<Frame>, last_good: u32) {
    let (session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    for frame in frames {
        let _ = tx.try_send(frame).await;
    }
    rx.expect_goaway(last_good, GoAwayStatus::PROTOCOL_ERROR)
        .await;
    guard("closed", session.closed()).await;
    // Streams opened before the error were handed out or dropped; accept ends.
    while guard("accept", incoming.accept()).await.is_some() {}
}

#[tokio::test(start_paused = true)]
async fn even_or_zero_stream_ids_from_the_client_end_the_session() {
    expect_session_error(vec![syn(2, &[("streamtype", "error")])], 0).await;
    expect_session_error(vec![syn(0, &[("streamtype", "error")])], 0).await;
    expect_session_error(vec![syn(1, &[("streamtype", "error")]), syn(4, &[])], 1).await;
    expect_session_error(vec![data(0, b"x", false)], 0).await;
}

#[tokio::test(start_paused = true)]
async fn duplicate_or_decreasing_stream_ids_end_the_session() {
    expect_session_error(
        vec![
            syn(3, &[("streamtype", "error")]),
            syn(3, &[("streamtype", "stdout")]),
        ],
        3,
    )
    .await;
    expect_session_error(
        vec![
            syn(5, &[("streamtype", "error")]),
            syn(1, &[("streamtype", "stdout")]),
        ],
        5,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn malformed_bytes_end_the_session() {
    let cases: Vec<Vec<u8>> = vec![
        // SYN_STREAM too short for its fields.
        vec![0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1],
        // PING of 3 bytes.
        vec![0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x03, 1, 2, 3],
        // SYN_STREAM of SPDY/2.
        vec![
            0x80, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
        ],
        // SYN_STREAM whose header block is not zlib.
        vec![
            0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, b'g',
            b'a', b'r', b'b', b'a', b'g', b'e', b'!',
        ],
    ];
    for bytes in cases {
        let (session, _incoming, mut tx, mut rx) = start(SessionConfig::default());
        tx.send_raw(&bytes).await.unwrap();
        rx.expect_goaway(0, GoAwayStatus::PROTOCOL_ERROR).await;
        guard("closed", session.closed()).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_frame_over_the_size_limit_ends_the_session() {
    let config = SessionConfig {
        max_frame_len: 1000,
        ..SessionConfig::default()
    };
    let (session, mut incoming, mut tx, mut rx) = start(config);
    let (_reader, _writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdin")],
    )
    .await;
    tx.send(data(1, &[0; 1000], false)).await;
    // Only the header is needed to refuse it.
    tx.send_raw(&[0, 0, 0, 1, 0, 0x00, 0x03, 0xe9])
        .await
        .unwrap();
    rx.expect_goaway(1, GoAwayStatus::PROTOCOL_ERROR).await;
    guard("closed", session.closed()).await;
}

#[tokio::test(start_paused = true)]
async fn unknown_control_frames_are_ignored() {
    let (session, _incoming, mut tx, mut rx) = start(SessionConfig::default());
    tx.send(Frame::Unknown {
        version: 3,
        frame_type: 10,
        flags: 0,
        payload: Bytes::from_static(b"credential"),
    })
    .await;
    tx.send(Frame::Ping { id: 1 }).await;
    assert_eq!(rx.recv().await, Frame::Ping { id: 1 });
    assert!(!session.is_closed());
}

#[tokio::test(start_paused = true)]
async fn too_many_unaccepted_streams_are_refused() {
    let (_session, mut incoming, mut tx, mut rx) = start(SessionConfig::default());
    for i in 0..1025u32 {
        tx.send(syn(2 * i + 1, &[("streamtype", "data")])).await;
    }
    assert_eq!(rx.recv().await, rst(2049, RstStatus::REFUSED_STREAM));
    rx.expect_quiet().await;
    assert_eq!(accept(&mut incoming).await.id(), 1);
}

// ---------------------------------------------------------------------------------
// Backpressure.

#[tokio::test(start_paused = true)]
async fn an_unread_stream_pauses_reading_instead_of_buffering() {
    let (session, mut incoming, mut tx, mut rx) =
        start_with_pipe(SessionConfig::default(), 16 * 1024);
    let (mut reader, _writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdin")],
    )
    .await;
    let total = 1 << 20;
    let sent = Arc::new(AtomicUsize::new(0));
    let upload = pattern(total, 5);
    let client = tokio::spawn({
        let sent = Arc::clone(&sent);
        let upload = upload.clone();
        async move {
            for chunk in upload.chunks(16 * 1024) {
                tx.send(data(1, chunk, false)).await;
                sent.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            tx.send(Frame::Ping { id: 1 }).await;
            tx
        }
    });
    quiesce().await;
    // The session stopped reading after about a window's worth: what the client got
    // out is that plus what the pipe and the read buffer hold.
    let stalled_at = sent.load(Ordering::SeqCst);
    assert!(
        stalled_at >= DEFAULT_INITIAL_WINDOW as usize,
        "{stalled_at}"
    );
    assert!(stalled_at <= 192 * 1024, "{stalled_at}");
    assert!(!client.is_finished());
    // Nothing was read, so no credit goes back meanwhile.
    rx.expect_quiet().await;
    assert!(!session.is_closed());

    // Reading resumes it all, in order.
    let mut got = vec![0; total];
    guard("read", reader.read_exact(&mut got)).await.unwrap();
    assert!(got == upload, "data corrupted");
    let mut tx = guard("client", client).await.unwrap();
    assert_eq!(rx.recv_no_updates().await, Frame::Ping { id: 1 });
    tx.send(data(1, b"", true)).await;
    assert!(read_all(&mut reader).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_stream_not_yet_accepted_is_buffered_within_bounds() {
    let (_session, mut incoming, mut tx, mut rx) =
        start_with_pipe(SessionConfig::default(), 16 * 1024);
    tx.send(syn(1, &[("streamtype", "data")])).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let client = tokio::spawn({
        let sent = Arc::clone(&sent);
        async move {
            for _ in 0..64 {
                tx.send(data(1, &[9; 16 * 1024], false)).await;
                sent.fetch_add(16 * 1024, Ordering::SeqCst);
            }
            tx
        }
    });
    quiesce().await;
    assert!(sent.load(Ordering::SeqCst) <= 192 * 1024);
    let stream = accept(&mut incoming).await;
    stream.reply().await.unwrap();
    let (mut reader, _writer) = stream.split();
    let mut got = vec![0; 64 * 16 * 1024];
    let reading = async {
        reader.read_exact(&mut got).await.unwrap();
    };
    let draining = async {
        assert_eq!(rx.recv_no_updates().await, syn_reply(1));
    };
    guard("read", async { tokio::join!(reading, draining) }).await;
    assert!(got.iter().all(|&b| b == 9));
    guard("client", client).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn writers_park_when_the_peer_does_not_read() {
    let (_session, mut incoming, mut tx, mut rx) =
        start_with_pipe(SessionConfig::default(), 16 * 1024);
    let (_reader, mut writer) = open(
        &mut tx,
        &mut rx,
        &mut incoming,
        1,
        &[("streamtype", "stdout")],
    )
    .await;
    let accepted = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let total = 4 << 20;
    let write = tokio::spawn({
        let accepted = Arc::clone(&accepted);
        let done = Arc::clone(&done);
        async move {
            let payload = pattern(total, 4);
            let mut off = 0;
            while off < payload.len() {
                let n = writer.write(&payload[off..]).await.unwrap();
                off += n;
                accepted.fetch_add(n, Ordering::SeqCst);
            }
            writer.shutdown().await.unwrap();
            done.store(true, Ordering::SeqCst);
        }
    });
    quiesce().await;
    // Bounded by the send queue (256 KiB), the write buffer (64 KiB), the pipe and one
    // frame: far from the 4 MiB the writer has.
    let parked_at = accepted.load(Ordering::SeqCst);
    assert!(parked_at <= 400 * 1024, "{parked_at}");
    assert!(!done.load(Ordering::SeqCst));
    let got = guard("collect", rx.collect(&[1])).await.remove(0).0;
    assert!(got == pattern(total, 4), "data corrupted");
    guard("writer", write).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_does_not_read_cannot_grow_the_send_queues() {
    // Frames that each make the server queue an answer: PINGs, and DATA on streams
    // never opened (RST_STREAM INVALID_STREAM).
    let floods: [fn(u32) -> Frame; 2] = [
        |i| Frame::Ping { id: 2 * i + 1 },
        |i| data(2 * i + 1, b"", false),
    ];
    for make in floods {
        let count = 20_000u32;
        let (session, _incoming, mut tx, mut rx) =
            start_with_pipe(SessionConfig::default(), 16 * 1024);
        let mut wire = BytesMut::new();
        let mut compressor = HeaderCompressor::new();
        for i in 0..count {
            make(i).encode(&mut compressor, &mut wire).unwrap();
        }
        let flood = tokio::spawn(async move {
            tx.send_raw(&wire).await.unwrap();
            tx
        });
        quiesce().await;
        // The session stopped reading once its send queues were full enough.
        assert!(
            !flood.is_finished(),
            "the server queued answers without bound"
        );
        assert!(!session.is_closed());
        // Reading lets it all through, every frame answered in order.
        for i in 0..count {
            let want = match make(i) {
                Frame::Data { stream_id, .. } => rst(stream_id, RstStatus::INVALID_STREAM),
                ping => ping,
            };
            assert_eq!(rx.recv().await, want);
        }
        guard("flood", flood).await.unwrap();
        rx.expect_quiet().await;
    }
}

// ---------------------------------------------------------------------------------
// Random frame sequences.

/// What the client sends in the property test.
#[derive(Debug, Clone)]
enum Action {
    /// Opens the next stream (ids in order, as a well-behaved client does).
    Open { kind: &'static str, flags: u8 },
    /// DATA of `len` bytes (made at send time, to keep failure reports short).
    Data {
        stream_id: u32,
        len: usize,
        fin: bool,
    },
    /// Any frame, ids included.
    Frame(Frame),
    /// Bytes that may be anything, including a broken frame.
    Raw(Vec<u8>),
    /// Waits until everything is idle, letting the application catch up.
    Pause,
}

/// Mostly the ids of the first streams opened (so that sequences do more than end the
/// session early), sometimes any.
fn arb_id() -> impl Strategy<Value = u32> {
    prop_oneof![
        20 => (0..5u32).prop_map(|i| 2 * i + 1),
        2 => 0..12u32,
        1 => any::<u32>().prop_map(|id| id & 0x7fff_ffff),
    ]
}

fn arb_flags() -> impl Strategy<Value = u8> {
    prop::sample::select(vec![0u8, 0, FLAG_FIN, FLAG_UNIDIRECTIONAL, 0xff])
}

fn arb_kind() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["error", "stdin", "stdout", "stderr", "resize", "data"])
}

/// Frames a client may send without ending the session (mostly: a WINDOW_UPDATE can
/// still overflow the session window).
fn arb_benign_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        2 => (arb_id(), 0..12u32).prop_map(|(id, status)| rst(id, RstStatus(status))),
        1 => prop_oneof![Just(0u32), Just(10), Just(70_000), Just(MAX_WINDOW), any::<u32>()]
            .prop_map(initial_window_setting),
        3 => any::<u32>().prop_map(|id| Frame::Ping { id }),
        1 => (arb_id(), 0..3u32).prop_map(|(id, status)| Frame::GoAway {
            last_good_stream_id: id,
            status: GoAwayStatus(status),
        }),
        2 => (arb_id(), any::<u8>()).prop_map(|(id, flags)| Frame::Headers {
            stream_id: id,
            flags,
            headers: headers(&[("x", "y")]),
        }),
        1 => (arb_id(), any::<u8>()).prop_map(|(id, flags)| Frame::SynReply {
            stream_id: id,
            flags,
            headers: Headers::new(),
        }),
        4 => (arb_id(), prop_oneof![Just(0u32), 1..100_000u32, Just(MAX_WINDOW)])
            .prop_map(|(id, delta)| window_update(id, delta)),
        1 => (10..20u16, any::<u8>(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(
            |(frame_type, flags, payload)| Frame::Unknown {
                version: 3,
                frame_type,
                flags,
                payload: Bytes::from(payload),
            }
        ),
    ]
}

/// Frames that (most likely) end the session with a protocol error.
fn arb_fatal_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        // Stream ids not increasing, or even.
        (arb_id(), arb_kind(), arb_flags()).prop_map(|(id, kind, flags)| syn_flags(
            id,
            &[("streamtype", kind)],
            flags
        )),
        // Known types with a random payload, or of another version.
        (
            1..10u16,
            2..4u16,
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(frame_type, version, flags, payload)| Frame::Unknown {
                version,
                frame_type,
                flags,
                payload: Bytes::from(payload),
            }),
        Just(data(0, b"", false)),
    ]
}

/// What a client does; with `hostile`, also what ends the session.
fn arb_action(hostile: bool) -> impl Strategy<Value = Action> {
    let fatal = if hostile { 1 } else { 0 };
    prop_oneof![
        10 => (arb_kind(), arb_flags()).prop_map(|(kind, flags)| Action::Open { kind, flags }),
        12 => (arb_id(), prop_oneof![0..64usize, 0..40_000usize], any::<bool>())
            .prop_map(|(stream_id, len, fin)| Action::Data { stream_id, len, fin }),
        14 => arb_benign_frame().prop_map(Action::Frame),
        2 => Just(Action::Pause),
        fatal => arb_fatal_frame().prop_map(Action::Frame),
        fatal => prop::collection::vec(any::<u8>(), 1..32).prop_map(Action::Raw),
    ]
}

/// How the application treats the streams in the property test.
#[derive(Debug, Clone, Copy)]
enum App {
    /// Accepts, replies, reads everything and writes some.
    Serve,
    /// Accepts and drops the streams.
    Drop,
    /// Accepts streams and leaves them alone, until told to let go (after the client
    /// closed). Unread data stalls the session (see the module docs): it cannot see the
    /// end of the connection before the application reads or lets go.
    Hold,
    /// Drops `Incoming` at once.
    Refuse,
}

/// How the client ends the connection.
#[derive(Debug, Clone, Copy)]
enum Close {
    /// Shuts down its writing side, reading until the server is done.
    HalfClose,
    /// Drops the connection.
    Drop,
}

/// The application side of the property test.
async fn random_app(
    mut incoming: Incoming,
    app: App,
    mut release: tokio::sync::oneshot::Receiver<()>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let mut held = Vec::new();
    if matches!(app, App::Refuse) {
        return tasks;
    }
    loop {
        let stream = tokio::select! {
            stream = incoming.accept() => stream,
            _ = &mut release, if matches!(app, App::Hold) => break,
        };
        let Some(stream) = stream else {
            break;
        };
        match app {
            App::Serve => tasks.push(tokio::spawn(async move {
                let _ = stream.reply().await;
                let (mut reader, mut writer) = stream.split();
                let read = async move {
                    let mut sink = Vec::new();
                    let _ = reader.read_to_end(&mut sink).await;
                };
                let write = async move {
                    for _ in 0..3 {
                        if writer.write_all(&[1; 20_000]).await.is_err() {
                            return;
                        }
                    }
                    let _ = writer.shutdown().await;
                };
                tokio::join!(read, write);
            })),
            App::Hold => held.push(stream),
            App::Drop | App::Refuse => drop(stream),
        }
    }
    drop(held);
    tasks
}

/// Flow-control credit the client granted, counted before the frame is sent (so it is
/// never less than what the server has seen).
#[derive(Debug, Default)]
struct Credit {
    session: u64,
    streams: std::collections::HashMap<u32, u64>,
    /// Largest SETTINGS_INITIAL_WINDOW_SIZE sent (at least the default).
    max_initial: u64,
}

impl Credit {
    fn record(&mut self, frame: &Frame) {
        match frame {
            Frame::WindowUpdate {
                stream_id: 0,
                delta,
            } => self.session += u64::from(*delta),
            Frame::WindowUpdate { stream_id, delta } => {
                *self.streams.entry(*stream_id).or_default() += u64::from(*delta);
            }
            Frame::Settings { entries, .. } => {
                for entry in entries {
                    if entry.id == SETTINGS_INITIAL_WINDOW_SIZE {
                        self.max_initial = self.max_initial.max(u64::from(entry.value));
                    }
                }
            }
            _ => {}
        }
    }
}

/// What a stream looks like from the client, from the server's frames.
#[derive(Debug, Default)]
struct Seen {
    replied: bool,
    /// RST_STREAM status sent before SYN_REPLY.
    reset_before_reply: Option<RstStatus>,
    fin: bool,
    reset: bool,
    data: u64,
}

/// Reads the server's frames until EOF, checking rules any session must keep.
async fn check_server_frames(
    mut rx: ClientRx,
    credit: Arc<std::sync::Mutex<Credit>>,
    enforce: bool,
) {
    let mut streams: std::collections::HashMap<u32, Seen> = std::collections::HashMap::new();
    let mut total_data = 0u64;
    let mut goaway = false;
    while let Some(frame) = rx.next().await {
        assert!(!goaway, "{frame:?} after GOAWAY");
        match frame {
            Frame::SynReply {
                stream_id, flags, ..
            } => {
                assert_eq!(stream_id % 2, 1, "SYN_REPLY for an even stream");
                assert_eq!(flags, 0);
                let seen = streams.entry(stream_id).or_default();
                assert!(!seen.replied, "second SYN_REPLY for {stream_id}");
                // A RST_STREAM before may only be INVALID_STREAM, for frames the client
                // sent on the id before opening it: this is a new stream.
                if let Some(status) = seen.reset_before_reply {
                    assert_eq!(
                        status,
                        RstStatus::INVALID_STREAM,
                        "SYN_REPLY after RST_STREAM"
                    );
                }
                *seen = Seen {
                    replied: true,
                    ..Seen::default()
                };
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let seen = streams.entry(stream_id).or_default();
                assert!(seen.replied, "DATA on {stream_id} before SYN_REPLY");
                assert!(
                    !seen.fin && !seen.reset,
                    "DATA on {stream_id} after {seen:?}"
                );
                assert!(data.len() <= MAX_DATA_FRAME_PAYLOAD);
                seen.fin = flags & FLAG_FIN != 0;
                assert_eq!(flags & !FLAG_FIN, 0);
                seen.data += data.len() as u64;
                total_data += data.len() as u64;
                if enforce {
                    let credit = credit.lock().unwrap();
                    let initial = credit.max_initial.max(u64::from(DEFAULT_INITIAL_WINDOW));
                    let stream_credit = credit.streams.get(&stream_id).copied().unwrap_or(0);
                    assert!(
                        seen.data <= initial + stream_credit,
                        "stream {stream_id}: {} bytes sent, window {initial} + {stream_credit}",
                        seen.data
                    );
                    assert!(
                        total_data <= u64::from(DEFAULT_INITIAL_WINDOW) + credit.session,
                        "{total_data} bytes sent, session credit {}",
                        credit.session
                    );
                }
            }
            Frame::RstStream { stream_id, status } => {
                let seen = streams.entry(stream_id).or_default();
                if !seen.replied {
                    seen.reset_before_reply = Some(status);
                }
                seen.reset = true;
            }
            Frame::GoAway { .. } => goaway = true,
            Frame::Ping { id } => assert_eq!(id % 2, 1, "PING {id} echoed"),
            Frame::WindowUpdate { delta, .. } => assert!(delta > 0 && delta <= MAX_WINDOW),
            frame => panic!("the server sent {frame:?}"),
        }
    }
}

async fn run_random_session(actions: Vec<Action>, app: App, close: Close, config: SessionConfig) {
    let enforce = config.send_window == SendWindowMode::Enforce;
    let (session, incoming, mut tx, rx) = start_with_pipe(config, 8 * 1024);
    let (release_tx, release_rx) = tokio::sync::oneshot::channel();
    let app_task = tokio::spawn(random_app(incoming, app, release_rx));
    let credit = Arc::new(std::sync::Mutex::new(Credit::default()));
    let checker = tokio::spawn(check_server_frames(rx, Arc::clone(&credit), enforce));
    let mut next_id = 1;
    for action in actions {
        let send = async {
            match action {
                Action::Open { kind, flags } => {
                    next_id += 2;
                    tx.try_send(syn_flags(next_id - 2, &[("streamtype", kind)], flags))
                        .await
                }
                Action::Data {
                    stream_id,
                    len,
                    fin,
                } => {
                    tx.try_send(data(stream_id, &pattern(len, stream_id as u8), fin))
                        .await
                }
                Action::Frame(frame) => {
                    credit.lock().unwrap().record(&frame);
                    tx.try_send(frame).await
                }
                Action::Raw(bytes) => tx.send_raw(&bytes).await,
                Action::Pause => {
                    quiesce().await;
                    Ok(())
                }
            }
        };
        let result = if matches!(app, App::Hold) {
            // Sending stalls once the held streams have buffered enough: the client
            // then gives up (possibly in the middle of a frame).
            match timeout(Duration::from_secs(1), send).await {
                Ok(result) => result,
                Err(_) => break,
            }
        } else {
            guard("client send", send).await
        };
        if result.is_err() {
            // The server is gone.
            break;
        }
    }
    match close {
        Close::HalfClose => {
            // Let the application see everything first: the session ends as soon as it
            // reads EOF, dropping what it has not sent yet.
            quiesce().await;
            let _ = tx.io.shutdown().await;
            drop(tx);
        }
        Close::Drop => {
            drop(tx);
            checker.abort();
        }
    }
    let _ = release_tx.send(());
    guard("session end", session.closed()).await;
    assert!(session.is_closed());
    let tasks = guard("application", app_task).await.unwrap();
    for task in tasks {
        guard("stream task", task).await.unwrap();
    }
    match guard("checker", checker).await {
        Ok(()) => {}
        Err(err) if err.is_cancelled() => {}
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

proptest! {
    // No failure file: it would be written outside this module's directory. A failure
    // prints the minimal input, to turn into a test of its own.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_frames_never_panic_and_the_session_ends(
        actions in any::<bool>().prop_flat_map(|hostile| prop::collection::vec(arb_action(hostile), 0..40)),
        app in prop_oneof![4 => Just(App::Serve), 1 => Just(App::Drop), 1 => Just(App::Hold), 1 => Just(App::Refuse)],
        close in prop::sample::select(vec![Close::HalfClose, Close::Drop]),
        enforce in any::<bool>(),
        idle in any::<bool>(),
    ) {
        let config = SessionConfig {
            send_window: if enforce { SendWindowMode::Enforce } else { SendWindowMode::Detect },
            idle_timeout: idle.then_some(Duration::from_secs(5)),
            max_frame_len: 64 * 1024,
            ..SessionConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(run_random_session(actions, app, close, config));
    }
}
