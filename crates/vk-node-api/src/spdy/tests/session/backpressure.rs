//! Backpressure: bounded memory when the application or the peer does not read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::super::super::frame::DEFAULT_INITIAL_WINDOW;
use super::*;

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
