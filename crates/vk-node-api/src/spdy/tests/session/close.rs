//! How the session ends: the peer's GOAWAY, end of the connection, `Session::close`,
//! the last handle dropped, and the idle timeout.

use tokio::time::Instant;

use super::*;

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
