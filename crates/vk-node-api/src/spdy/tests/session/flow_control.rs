//! Flow control of what the session sends: the peer's windows, enforced or detected
//! (see `SendWindowMode`), and window overflows.

use super::super::super::frame::{
    DEFAULT_INITIAL_WINDOW, MAX_WINDOW, SETTINGS_MAX_CONCURRENT_STREAMS,
};
use super::*;

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
