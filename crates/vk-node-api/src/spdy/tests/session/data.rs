//! Data in both directions: DATA frames, FIN, flow-control credit for what is read, and
//! concurrent streams.

use super::super::super::frame::DEFAULT_INITIAL_WINDOW;
use super::*;

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
