//! RST_STREAM both ways, refusing streams, and what dropping streams and `Incoming`
//! resets.

use super::*;

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
