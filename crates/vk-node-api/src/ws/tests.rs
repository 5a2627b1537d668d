//! End-to-end tests: a tungstenite client talks to the server side over an in-memory
//! duplex pipe.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::*;

type Client = WebSocketStream<DuplexStream>;

const LIMIT: Duration = Duration::from_secs(10);

async fn pair(protocol: ChannelProtocol) -> (Client, ChannelConn) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = ChannelConn::server(server_io, protocol).await;
    let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    (client, server)
}

/// The next data or close message the client receives (pings and pongs skipped).
async fn next_message(client: &mut Client) -> Option<Message> {
    loop {
        let message = tokio::time::timeout(LIMIT, client.next())
            .await
            .expect("client receive timed out")?
            .expect("client receive failed");
        match message {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return Some(other),
        }
    }
}

async fn next_binary(client: &mut Client) -> Vec<u8> {
    match next_message(client).await {
        Some(Message::Binary(data)) => data.to_vec(),
        other => panic!("expected a binary message, got {other:?}"),
    }
}

async fn expect_normal_close(client: &mut Client) {
    match next_message(client).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a normal Close, got {other:?}"),
    }
    // The client's reply goes out while it keeps reading; then the stream ends.
    while let Some(message) = tokio::time::timeout(LIMIT, client.next())
        .await
        .expect("client did not see the end of the connection")
    {
        if let Ok(message) = message {
            panic!("unexpected message after Close: {message:?}");
        }
    }
}

async fn binary(client: &mut Client, data: &'static [u8]) {
    client
        .send(Message::binary(Bytes::from_static(data)))
        .await
        .expect("client send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_exec_session_end_to_end() {
    let (mut client, mut conn) = pair(ChannelProtocol::V5).await;
    let mut stdin = conn.reader(STDIN).expect("stdin reader");
    let mut resize = conn.reader(RESIZE).expect("resize reader");
    assert!(conn.reader(STDIN).is_none(), "a channel is claimed once");
    assert!(conn.reader(CLOSE_SIGNAL).is_none());
    let mut stdout = conn.writer(STDOUT);
    let mut stderr = conn.writer(STDERR);
    let mut error = conn.writer(ERROR);
    conn.send_ready(true, true).await.expect("ready");

    // The ready signal: an empty message on stdout.
    assert_eq!(next_binary(&mut client).await, [STDOUT]);

    binary(&mut client, b"\x00hello").await;
    binary(&mut client, b"\x04{\"Width\":80,\"Height\":24}").await;
    binary(&mut client, b"\x00 world").await;
    binary(&mut client, b"\x07ignored: nobody reads channel 7").await;
    binary(&mut client, &[CLOSE_SIGNAL, STDIN]).await;
    binary(&mut client, b"\x04{\"Width\":100,\"Height\":30}").await;

    let mut input = Vec::new();
    tokio::time::timeout(LIMIT, stdin.read_to_end(&mut input))
        .await
        .expect("stdin timed out")
        .expect("stdin read");
    assert_eq!(input, b"hello world");
    assert_eq!(
        resize.recv().await.as_deref(),
        Some(&b"{\"Width\":80,\"Height\":24}"[..])
    );
    assert_eq!(
        resize.recv().await.as_deref(),
        Some(&b"{\"Width\":100,\"Height\":30}"[..])
    );

    stdout.write_all(b"out").await.expect("stdout");
    stderr.write_all(b"err").await.expect("stderr");
    stdout.flush().await.expect("flush");
    let status = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"}"#;
    error.write_all(status).await.expect("status");
    error.shutdown().await.expect("shutdown");
    assert!(error.write_all(b"x").await.is_err());

    assert_eq!(next_binary(&mut client).await, b"\x01out");
    assert_eq!(next_binary(&mut client).await, b"\x02err");
    let mut expected = vec![ERROR];
    expected.extend_from_slice(status);
    assert_eq!(next_binary(&mut client).await, expected);

    let server = tokio::spawn(async move {
        conn.close().await;
        // After close: writes are refused and the readers are at EOF.
        assert!(stdout.write_all(b"late").await.is_err());
        assert_eq!(resize.recv().await, None);
    });
    expect_normal_close(&mut client).await;
    tokio::time::timeout(LIMIT, server)
        .await
        .expect("close timed out")
        .expect("server task");
}

#[tokio::test]
async fn base64_framing_both_directions() {
    let (mut client, mut conn) = pair(ChannelProtocol::Base64V4).await;
    let mut stdin = conn.reader(STDIN).expect("stdin reader");
    let mut stdout = conn.writer(STDOUT);
    conn.send_ready(false, false).await.expect("ready");
    match next_message(&mut client).await {
        Some(Message::Text(t)) => assert_eq!(t.as_str(), "3"),
        other => panic!("expected the ready message, got {other:?}"),
    }

    client.send(Message::text("0Zm9vCg==")).await.expect("send");
    // Binary messages are read with the protocol's (base64) framing too.
    client
        .send(Message::binary(Bytes::from_static(b"0YmFy")))
        .await
        .expect("send");
    let mut buf = [0u8; 7];
    stdin.read_exact(&mut buf).await.expect("stdin");
    assert_eq!(&buf, b"foo\nbar");
    // The close signal is a v5 feature: here [255, 0] is a bad channel digit.
    binary(&mut client, &[CLOSE_SIGNAL, STDIN]).await;

    stdout.write_all(b"\n").await.expect("write");
    stdout.flush().await.expect("flush");
    match next_message(&mut client).await {
        Some(Message::Text(t)) => assert_eq!(t.as_str(), "1Cg=="),
        other => panic!("expected a text message, got {other:?}"),
    }

    let server = tokio::spawn(conn.close());
    expect_normal_close(&mut client).await;
    server.await.expect("server task");
    // EOF only came with the end of the connection.
    let mut rest = Vec::new();
    stdin.read_to_end(&mut rest).await.expect("stdin");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn v4_has_no_close_signal_and_eof_comes_with_the_connection() {
    let (mut client, mut conn) = pair(ChannelProtocol::V4).await;
    let mut stdin = conn.reader(STDIN).expect("stdin reader");
    // In v4 channel 255 is an ordinary channel; [255, 0] is data on it.
    binary(&mut client, &[CLOSE_SIGNAL, STDIN]).await;
    binary(&mut client, b"\x00data").await;
    let mut buf = [0u8; 4];
    stdin.read_exact(&mut buf).await.expect("stdin");
    assert_eq!(&buf, b"data");

    // The client closes the connection: the readers reach EOF, closed() completes.
    let closed = conn.closed();
    client
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: Utf8Bytes::default(),
        })))
        .await
        .expect("client close");
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, stdin.read_to_end(&mut rest))
        .await
        .expect("stdin EOF timed out")
        .expect("stdin");
    assert!(rest.is_empty());
    tokio::time::timeout(LIMIT, closed)
        .await
        .expect("closed() timed out");
    assert!(conn.is_closed());

    // The server answered the Close.
    match next_message(&mut client).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected the Close reply, got {other:?}"),
    }
    // Writing now fails (possibly only once the write task noticed).
    let mut stdout = conn.writer(STDOUT);
    let mut failed = false;
    for _ in 0..100 {
        if stdout.write_all(b"x").await.is_err() || stdout.flush().await.is_err() {
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(failed, "writes after the client closed must fail");
    tokio::time::timeout(LIMIT, conn.close())
        .await
        .expect("close after the client closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_answered_and_messages_keep_their_order() {
    let (mut client, conn) = pair(ChannelProtocol::V5).await;
    client
        .send(Message::Ping(Bytes::from_static(b"hb")))
        .await
        .expect("ping");
    match tokio::time::timeout(LIMIT, client.next()).await {
        Ok(Some(Ok(Message::Pong(data)))) => assert_eq!(&data[..], b"hb"),
        other => panic!("expected a pong, got {other:?}"),
    }

    // Large writes are split into messages; many writes from several writers keep
    // the order in which they were queued.
    let mut stdout = conn.writer(STDOUT);
    let big = vec![0xabu8; 150 * 1024];
    let writer = tokio::spawn(async move {
        stdout.write_all(&big).await.expect("write");
        for i in 0..200u32 {
            stdout
                .write_all(format!("{i};").as_bytes())
                .await
                .expect("write");
        }
        stdout.flush().await.expect("flush");
    });
    let mut received = Vec::new();
    let mut expected = vec![0xabu8; 150 * 1024];
    for i in 0..200u32 {
        expected.extend_from_slice(format!("{i};").as_bytes());
    }
    while received.len() < expected.len() {
        let message = next_binary(&mut client).await;
        assert_eq!(message[0], STDOUT);
        assert!(message.len() > 1 && message.len() <= 64 * 1024 + 1);
        received.extend_from_slice(&message[1..]);
    }
    assert_eq!(received, expected);
    writer.await.expect("writer task");

    let server = tokio::spawn(conn.close());
    expect_normal_close(&mut client).await;
    server.await.expect("server task");
}

#[tokio::test]
async fn close_gives_up_on_a_silent_client() {
    let (client, conn) = pair(ChannelProtocol::V5).await;
    // The client never reads nor answers: close() still returns.
    tokio::time::timeout(LIMIT, conn.close_with_timeout(Duration::from_millis(200)))
        .await
        .expect("close must not hang");
    drop(client);
}

#[tokio::test]
async fn dropping_everything_closes_normally() {
    let (mut client, conn) = pair(ChannelProtocol::V4).await;
    let mut stdout = conn.writer(STDOUT);
    drop(conn);
    stdout.write_all(b"bye").await.expect("write");
    drop(stdout);
    assert_eq!(next_binary(&mut client).await, b"\x01bye");
    expect_normal_close(&mut client).await;
}

async fn tunnel_pair() -> (Client, ByteTunnel<DuplexStream>) {
    let (client_io, server_io) = tokio::io::duplex(16 * 1024);
    let server = ByteTunnel::server(server_io).await;
    let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    (client, server)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_tunnel_carries_bytes_both_ways_in_order() {
    let (client, tunnel) = tunnel_pair().await;
    let (mut client_tx, mut client_rx) = client.split();
    let (mut server_rx, mut server_tx) = tokio::io::split(tunnel);

    let upstream = pattern(300 * 1024 + 17, 1);
    let downstream = pattern(200 * 1024 + 3, 2);

    // Client → server: many messages of varying sizes, including empty ones.
    let to_send = upstream.clone();
    let client_sender = tokio::spawn(async move {
        let mut offset = 0;
        let mut size = 0;
        while offset < to_send.len() {
            size = (size * 7 + 13) % 5000;
            let end = (offset + size).min(to_send.len());
            client_tx
                .send(Message::binary(to_send[offset..end].to_vec()))
                .await
                .expect("client send");
            offset = end;
        }
        client_tx
    });
    // Server → client: writes of odd sizes.
    let to_write = downstream.clone();
    let server_writer = tokio::spawn(async move {
        for chunk in to_write.chunks(70_001) {
            server_tx.write_all(chunk).await.expect("server write");
        }
        server_tx.flush().await.expect("server flush");
        server_tx
    });

    let mut got = vec![0u8; upstream.len()];
    tokio::time::timeout(LIMIT, server_rx.read_exact(&mut got))
        .await
        .expect("server read timed out")
        .expect("server read");
    assert_eq!(got, upstream);

    let mut received = Vec::new();
    while received.len() < downstream.len() {
        match tokio::time::timeout(LIMIT, client_rx.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => received.extend_from_slice(&data),
            other => panic!("expected binary data, got {other:?}"),
        }
    }
    assert_eq!(received, downstream);

    let mut client_tx = client_sender.await.expect("client task");
    let mut server_tx = server_writer.await.expect("server task");

    // The server shuts down: the client sees a normal Close and answers; the server
    // then reads EOF.
    server_tx.shutdown().await.expect("shutdown");
    match tokio::time::timeout(LIMIT, client_rx.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a normal Close, got {other:?}"),
    }
    // tungstenite queues the reply; flushing sends it.
    let _ = client_tx.flush().await;
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, server_rx.read_to_end(&mut rest))
        .await
        .expect("server EOF timed out")
        .expect("server read");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn byte_tunnel_eof_on_client_close_and_error_on_text() {
    let (mut client, mut tunnel) = tunnel_pair().await;
    client
        .send(Message::binary(Bytes::from_static(b"abc")))
        .await
        .expect("send");
    client
        .send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .expect("ping");
    client
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: Utf8Bytes::default(),
        })))
        .await
        .expect("close");
    let mut data = Vec::new();
    tokio::time::timeout(LIMIT, tunnel.read_to_end(&mut data))
        .await
        .expect("read timed out")
        .expect("read");
    assert_eq!(data, b"abc");
    // The client got the pong and the Close reply.
    let mut saw_close = false;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(LIMIT, client.next()).await {
        match message {
            Message::Pong(p) => assert_eq!(&p[..], b"p"),
            Message::Close(_) => saw_close = true,
            other => panic!("unexpected {other:?}"),
        }
        if saw_close {
            break;
        }
    }
    assert!(saw_close);
    // Shutting down after the client closed is not an error.
    tunnel.shutdown().await.expect("shutdown");
    assert!(tunnel.write_all(b"x").await.is_err());

    let (mut client, mut tunnel) = tunnel_pair().await;
    client.send(Message::text("nope")).await.expect("send");
    let mut buf = [0u8; 8];
    let err = tokio::time::timeout(LIMIT, tunnel.read(&mut buf))
        .await
        .expect("read timed out")
        .expect_err("text must be refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}
