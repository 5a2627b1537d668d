//! The bridge against a fake exec server speaking a Nomad-like JSON framing: stdin as
//! `{"stdin":{"data":<base64>}}`, `{"stdin":{"close":true}}`,
//! `{"tty_size":{"height":..,"width":..}}`; output as `{"stdout":{"data":..}}` /
//! `{"stderr":{"data":..}}` and the end as `{"exited":true,"result":{"exit_code":..}}`
//! (the shapes of Nomad's `/v1/client/allocation/:id/exec`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use super::*;
use crate::http::tests::{TestCa, TestServer, accept_loop, answer, quick_config, serve};
use crate::http::{HttpClient, HttpClientConfig, HttpError};

/// The test's framing, as a Nomad provider would write it.
struct NomadLike;

impl ExecFraming for NomadLike {
    fn stdin(&mut self, data: &[u8]) -> WsMessage {
        WsMessage::Text(json!({"stdin": {"data": BASE64.encode(data)}}).to_string())
    }

    fn stdin_closed(&mut self) -> Option<WsMessage> {
        Some(WsMessage::Text(
            json!({"stdin": {"close": true}}).to_string(),
        ))
    }

    fn resize(&mut self, size: TermSize) -> Option<WsMessage> {
        let message = json!({"tty_size": {"height": size.height, "width": size.width}});
        Some(WsMessage::Text(message.to_string()))
    }

    fn decode(&mut self, message: WsMessage) -> Result<Vec<RemoteEvent>, BridgeError> {
        let WsMessage::Text(text) = message else {
            return Err(BridgeError::Decode("expected a text message".into()));
        };
        let value: Value =
            serde_json::from_str(&text).map_err(|e| BridgeError::Decode(e.to_string()))?;
        let data = |stream: &str| -> Result<Option<Bytes>, BridgeError> {
            match value[stream]["data"].as_str() {
                None => Ok(None),
                Some(b64) => BASE64
                    .decode(b64)
                    .map(|d| Some(Bytes::from(d)))
                    .map_err(|e| BridgeError::Decode(e.to_string())),
            }
        };
        let mut events = Vec::new();
        if let Some(out) = data("stdout")? {
            events.push(RemoteEvent::Stdout(out));
        }
        if let Some(err) = data("stderr")? {
            events.push(RemoteEvent::Stderr(err));
        }
        if value["exited"] == true {
            let code = value["result"]["exit_code"].as_i64().unwrap_or(0);
            events.push(RemoteEvent::Exit(i32::try_from(code).unwrap_or(-1)));
        }
        Ok(events)
    }
}

/// What the fake server saw.
#[derive(Debug, PartialEq)]
enum Seen {
    /// The handshake's token header and offered subprotocols.
    Handshake {
        token: Option<String>,
        protocols: Option<String>,
    },
    /// A text message.
    Text(Value),
    /// The answer to the server's ping.
    Pong,
    /// The connection ended (close message, or the peer went away).
    Closed,
}

/// How the fake command behaves when stdin closes.
#[derive(Clone, Copy)]
enum OnStdinClose {
    /// Says `stdin closed` and exits with 3.
    Exit3,
    /// Says `stdin closed` and closes the socket without an exit message.
    CloseSocket,
}

fn output(stream: &str, data: &[u8]) -> Message {
    Message::text(json!({ stream: {"data": BASE64.encode(data)} }).to_string())
}

/// One fake exec session: pings once, echoes stdin to stdout (to stderr after an
/// `err:` prefix), reports resizes on stdout, and ends per `on_close`.
#[allow(clippy::result_large_err)] // tungstenite's handshake callback returns its Response
async fn exec_session<S>(stream: S, on_close: OnStdinClose, seen: mpsc::UnboundedSender<Seen>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake_seen = seen.clone();
    let callback = move |request: &Request, mut response: Response| {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let protocols = header("sec-websocket-protocol");
        if let Some(first) = protocols.as_deref().and_then(|p| p.split(',').next()) {
            let chosen = first.trim().parse().expect("protocol header");
            response
                .headers_mut()
                .insert("sec-websocket-protocol", chosen);
        }
        let _ = handshake_seen.send(Seen::Handshake {
            token: header("x-nomad-token"),
            protocols,
        });
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    if ws
        .send(Message::Ping("are you there".into()))
        .await
        .is_err()
    {
        return;
    }
    while let Some(Ok(message)) = ws.next().await {
        let text = match message {
            Message::Text(text) => text,
            Message::Pong(_) => {
                let _ = seen.send(Seen::Pong);
                continue;
            }
            Message::Close(_) => break,
            _ => continue,
        };
        let value: Value = serde_json::from_str(&text).expect("client sends JSON");
        let _ = seen.send(Seen::Text(value.clone()));
        let replies = if let Some(b64) = value["stdin"]["data"].as_str() {
            let data = BASE64.decode(b64).expect("base64");
            match data.strip_prefix(b"err:") {
                Some(rest) => vec![output("stderr", rest)],
                None => vec![output("stdout", &data)],
            }
        } else if value["stdin"]["close"] == true {
            let mut replies = vec![output("stdout", b"stdin closed\n")];
            replies.push(match on_close {
                OnStdinClose::Exit3 => {
                    Message::text(json!({"exited": true, "result": {"exit_code": 3}}).to_string())
                }
                OnStdinClose::CloseSocket => Message::Close(None),
            });
            replies
        } else if let Some(size) = value.get("tty_size") {
            let line = format!("size {}x{}\n", size["width"], size["height"]);
            vec![output("stdout", line.as_bytes())]
        } else {
            Vec::new()
        };
        for reply in replies {
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    }
    let _ = seen.send(Seen::Closed);
}

/// A fake exec server over plain TCP (or TLS).
async fn exec_server(
    on_close: OnStdinClose,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (TestServer, mpsc::UnboundedReceiver<Seen>) {
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let server = accept_loop(move |tcp: TcpStream| {
        let seen = seen_tx.clone();
        let tls = tls.clone();
        async move {
            match tls {
                None => exec_session(tcp, on_close, seen).await,
                Some(config) => {
                    if let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
                        exec_session(stream, on_close, seen).await;
                    }
                }
            }
        }
    })
    .await;
    (server, seen)
}

/// The kubelet side of a session: what the test writes to stdin, reads from stdout and
/// stderr, and sends as resizes.
struct Client {
    stdin: Option<DuplexStream>,
    stdout: DuplexStream,
    stderr: Option<DuplexStream>,
    resize: mpsc::Sender<TermSize>,
}

impl Client {
    async fn write(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(data).await.expect("write stdin");
    }

    async fn read_stdout(&mut self, expected: &str) {
        read_exactly(&mut self.stdout, expected).await;
    }

    async fn read_stderr(&mut self, expected: &str) {
        read_exactly(self.stderr.as_mut().expect("stderr"), expected).await;
    }
}

async fn read_exactly(stream: &mut DuplexStream, expected: &str) {
    let mut buf = vec![0u8; expected.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no {expected:?} within 10 s"))
        .expect("read output");
    assert_eq!(String::from_utf8_lossy(&buf), expected);
}

/// An [`ExecIo`] and the test's ends of it.
fn session(tty: bool, with_stdin: bool) -> (ExecIo, Client) {
    let (stdin_ours, stdin_theirs) = tokio::io::duplex(4096);
    let (stdout_ours, stdout_theirs) = tokio::io::duplex(4096);
    let (stderr_ours, stderr_theirs) = tokio::io::duplex(4096);
    let (resize_tx, resize_rx) = mpsc::channel(4);
    let io = ExecIo {
        stdin: with_stdin.then(|| Box::new(stdin_theirs) as Input),
        stdout: Some(Box::new(stdout_theirs)),
        stderr: (!tty).then(|| Box::new(stderr_theirs) as Output),
        tty,
        resize: Some(resize_rx),
    };
    let client = Client {
        stdin: with_stdin.then_some(stdin_ours),
        stdout: stdout_ours,
        stderr: (!tty).then_some(stderr_ours),
        resize: resize_tx,
    };
    (io, client)
}

async fn open(server: &TestServer) -> (HttpClient, WebSocket) {
    let client =
        HttpClient::new(quick_config(server.http_url()).sensitive_header("X-Nomad-Token", "tok"))
            .expect("client");
    let ws = client
        .get("/v1/client/allocation/5fc98185/exec")
        .query("task", "web")
        .websocket(&["v1.exec", "v2.exec"])
        .await
        .expect("websocket");
    (client, ws)
}

/// Waits for the server to see `wanted` (bounded, so a missing event fails the test).
async fn wait_for(seen: &mut mpsc::UnboundedReceiver<Seen>, wanted: impl Fn(&Seen) -> bool) {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = seen.recv().await {
            if wanted(&event) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "the server never saw the expected event");
}

async fn finish(
    task: tokio::task::JoinHandle<Result<Option<i32>, BridgeError>>,
) -> Result<Option<i32>, BridgeError> {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the bridge ends")
        .expect("bridge task")
}

#[tokio::test]
async fn echo_resize_and_exit_code() {
    let (server, mut seen) = exec_server(OnStdinClose::Exit3, None).await;
    let (_http, ws) = open(&server).await;
    assert_eq!(ws.protocol(), Some("v1.exec"));
    let (io, mut client) = session(false, true);
    let task = tokio::spawn(bridge(ws, NomadLike, io));

    client.write(b"hello\n").await;
    client.read_stdout("hello\n").await;
    client
        .resize
        .send(TermSize {
            width: 80,
            height: 24,
        })
        .await
        .expect("resize");
    client.read_stdout("size 80x24\n").await;
    client.write(b"err:oops\n").await;
    client.read_stderr("oops\n").await;
    drop(client.stdin.take());
    client.read_stdout("stdin closed\n").await;
    assert_eq!(finish(task).await.expect("bridge"), Some(3));

    let mut events = Vec::new();
    while let Ok(event) = seen.try_recv() {
        events.push(event);
    }
    assert_eq!(
        events.first(),
        Some(&Seen::Handshake {
            token: Some("tok".into()),
            protocols: Some("v1.exec, v2.exec".into())
        })
    );
    assert!(
        events.contains(&Seen::Pong),
        "the server's ping was answered"
    );
    let texts: Vec<&Value> = events
        .iter()
        .filter_map(|e| match e {
            Seen::Text(v) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        [
            &json!({"stdin": {"data": BASE64.encode("hello\n")}}),
            &json!({"tty_size": {"height": 24, "width": 80}}),
            &json!({"stdin": {"data": BASE64.encode("err:oops\n")}}),
            &json!({"stdin": {"close": true}}),
        ]
    );
}

#[tokio::test]
async fn stdin_eof_sends_the_close_message_and_output_keeps_flowing() {
    let (server, mut seen) = exec_server(OnStdinClose::CloseSocket, None).await;
    let (_http, ws) = open(&server).await;
    let (io, mut client) = session(false, true);
    let task = tokio::spawn(bridge(ws, NomadLike, io));

    client.write(b"last words\n").await;
    drop(client.stdin.take());
    client.read_stdout("last words\n").await;
    wait_for(
        &mut seen,
        |e| matches!(e, Seen::Text(v) if v["stdin"]["close"] == true),
    )
    .await;
    // Output after stdin's end still reaches the client.
    client.read_stdout("stdin closed\n").await;
    // The socket closed without an exit message: no code.
    assert_eq!(finish(task).await.expect("bridge"), None);
}

#[tokio::test]
async fn with_a_tty_stderr_goes_to_stdout() {
    let (server, _seen) = exec_server(OnStdinClose::Exit3, None).await;
    let (_http, ws) = open(&server).await;
    let (io, mut client) = session(true, true);
    assert!(io.stderr.is_none());
    let task = tokio::spawn(bridge(ws, NomadLike, io));

    client.write(b"err:to the terminal\n").await;
    client.read_stdout("to the terminal\n").await;
    drop(client.stdin.take());
    client.read_stdout("stdin closed\n").await;
    assert_eq!(finish(task).await.expect("bridge"), Some(3));
}

#[tokio::test]
async fn without_stdin_the_close_message_goes_first() {
    let (server, _seen) = exec_server(OnStdinClose::Exit3, None).await;
    let (_http, ws) = open(&server).await;
    let (io, mut client) = session(false, false);
    let task = tokio::spawn(bridge(ws, NomadLike, io));
    client.read_stdout("stdin closed\n").await;
    assert_eq!(finish(task).await.expect("bridge"), Some(3));
}

#[tokio::test]
async fn dropping_the_bridge_closes_the_socket() {
    let (server, mut seen) = exec_server(OnStdinClose::Exit3, None).await;
    let (_http, ws) = open(&server).await;
    let (io, mut client) = session(false, true);
    let task = tokio::spawn(bridge(ws, NomadLike, io));
    client.write(b"ping\n").await;
    client.read_stdout("ping\n").await;

    // The kubelet client went away: its future is dropped.
    task.abort();
    wait_for(&mut seen, |e| *e == Seen::Closed).await;
}

#[tokio::test]
async fn exec_over_wss_with_the_clients_tls_settings() {
    let ca = TestCa::new("exec CA");
    let (server, _seen) = exec_server(OnStdinClose::Exit3, Some(ca.server_tls(None))).await;
    let http = HttpClient::new(
        HttpClientConfig::new(server.https_url())
            .system_roots(false)
            .ca_pem(ca.cert_pem.clone()),
    )
    .expect("client");
    let ws = http
        .websocket("/exec", &[], http::HeaderMap::new())
        .await
        .expect("wss");
    assert_eq!(ws.protocol(), None);
    let (io, mut client) = session(false, true);
    let task = tokio::spawn(bridge(ws, NomadLike, io));
    client.write(b"secure\n").await;
    client.read_stdout("secure\n").await;
    drop(client.stdin.take());
    assert_eq!(finish(task).await.expect("bridge"), Some(3));
    assert_eq!(http.counts().responses(1), 1, "one 101 answer");
}

#[tokio::test]
async fn a_refused_upgrade_is_an_http_error() {
    let server = serve(None, |_| async { answer(404, "unknown allocation") }).await;
    let http = HttpClient::new(quick_config(server.http_url())).expect("client");
    let err = http
        .get("/v1/client/allocation/nope/exec")
        .websocket(&[])
        .await
        .expect_err("404");
    assert_eq!(err.status(), Some(http::StatusCode::NOT_FOUND));
    assert!(vk_errdefs::is_not_found(&vk_errdefs::Error::from(err)));

    let server = serve(None, |_| async { answer(200, "not a websocket") }).await;
    let http = HttpClient::new(quick_config(server.http_url())).expect("client");
    let err = http.get("/exec").websocket(&[]).await.expect_err("200");
    assert!(
        matches!(&err, HttpError::WebSocketHandshake { reason, .. } if reason.contains("200 OK")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_remote_error_or_nonsense_ends_the_session() {
    struct Strict;
    impl ExecFraming for Strict {
        fn stdin(&mut self, data: &[u8]) -> WsMessage {
            NomadLike.stdin(data)
        }
        fn stdin_closed(&mut self) -> Option<WsMessage> {
            None
        }
        fn resize(&mut self, _: TermSize) -> Option<WsMessage> {
            None
        }
        fn decode(&mut self, message: WsMessage) -> Result<Vec<RemoteEvent>, BridgeError> {
            match message {
                WsMessage::Text(t) if t.contains("stdout") => {
                    Ok(vec![RemoteEvent::Error("the task is gone".into())])
                }
                other => Err(BridgeError::Decode(format!("{other:?}"))),
            }
        }
    }
    let (server, _seen) = exec_server(OnStdinClose::Exit3, None).await;
    let (_http, ws) = open(&server).await;
    let (io, mut client) = session(false, true);
    let task = tokio::spawn(bridge(ws, Strict, io));
    client.write(b"x").await;
    let err = finish(task).await.expect_err("remote error");
    assert!(
        matches!(&err, BridgeError::Remote(m) if m == "the task is gone"),
        "{err:?}"
    );
    assert_eq!(
        vk_errdefs::Error::from(err).kind(),
        vk_errdefs::ErrorKind::Unknown
    );
}
