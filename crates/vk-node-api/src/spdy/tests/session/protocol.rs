//! PING answers, and what the session does with frames that break the protocol (a
//! stream reset or the end of the session).

use super::*;

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
