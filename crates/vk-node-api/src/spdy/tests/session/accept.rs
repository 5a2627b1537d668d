//! Accepting the peer's streams: SYN_STREAM, SYN_REPLY, FIN on the opening frame or in
//! HEADERS, unidirectional streams.

use super::super::super::frame::FLAG_UNIDIRECTIONAL;
use super::*;

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
