//! The real TLS server (`serve_tls_with` on loopback, a self-signed certificate) under
//! hostile clients: floods of idle connections and half-open handshakes, trickled and
//! oversized request heads, path traversal in names, absurd query values, and a
//! connection cap. Timeouts are set short here; the assertions wait on events (a
//! connection closed, a connection counted), never on elapsed time.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;
use vk_core::capabilities::{
    ByteStream, Capabilities, ContainerAttach, ContainerLogs, ExecIo, LogOptions,
};
use vk_core::procfs::Process;
use vk_core::{PodLifecycleHandler, SharedPodHandler};
use vk_errdefs::{Error, Result};
use vk_node_api::auth::{AuthConfig, Authenticator, AuthzMode};
use vk_node_api::connections::ConnectionLimit;
use vk_node_api::node_api::{NodeApi, StreamingConfig};
use vk_node_api::router::router;
use vk_node_api::server::{ServeOptions, serve_tls_with};
use vk_node_api::tls::{ReloadingCert, ServingCert, server_config};

const NODE: &str = "vk-hostile";
/// The longest any single step may take before the test fails.
const LIMIT: Duration = Duration::from_secs(60);
/// A timeout that never fires during a test.
const NEVER: Duration = Duration::from_secs(3600);
/// A timeout that fires soon, yet leaves a loaded machine time for the handshakes
/// and requests that must succeed.
const SHORT: Duration = Duration::from_secs(1);

// ----------------------------------------------------------------------------------
// A provider: pod default/web with container app (logs "line\n"), container quiet
// (when followed: "first\n", then "second\n" once released), and an echoing attach.
// ----------------------------------------------------------------------------------

#[derive(Default)]
struct Stub {
    log_calls: Mutex<Vec<String>>,
    release: Arc<Notify>,
}

impl Stub {
    fn containers_asked_for(&self) -> Vec<String> {
        self.log_calls.lock().expect("lock").clone()
    }
}

fn web() -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some("web".into()),
            uid: Some("uid-web".into()),
            ..Default::default()
        },
        spec: None,
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
    }
}

#[async_trait]
impl PodLifecycleHandler for Stub {
    async fn create_pod(&self, _pod: &Pod) -> Result<()> {
        Ok(())
    }
    async fn update_pod(&self, _pod: &Pod) -> Result<()> {
        Ok(())
    }
    async fn delete_pod(&self, _pod: &Pod) -> Result<()> {
        Ok(())
    }
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Ok((namespace == "default" && name == "web").then(web))
    }
    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        Ok(self.get_pod(namespace, name).await?.and_then(|p| p.status))
    }
    async fn get_pods(&self) -> Result<Vec<Pod>> {
        Ok(vec![web()])
    }
    fn capabilities(self: Arc<Self>) -> Capabilities {
        Capabilities::none()
            .with_logs(self.clone())
            .with_attach(self)
    }
}

#[async_trait]
impl ContainerLogs for Stub {
    async fn container_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        options: &LogOptions,
    ) -> Result<ByteStream> {
        self.log_calls
            .lock()
            .expect("lock")
            .push(container.to_owned());
        if (namespace, pod) != ("default", "web") {
            return Err(Error::not_found(format!("pod {namespace}/{pod} not found")));
        }
        match container {
            "app" => Ok(Box::pin(futures::stream::iter([Ok(Bytes::from_static(
                b"line\n",
            ))]))),
            "quiet" if options.follow => {
                let release = Arc::clone(&self.release);
                let first = futures::stream::once(async { Ok(Bytes::from_static(b"first\n")) });
                let second = futures::stream::once(async move {
                    release.notified().await;
                    Ok(Bytes::from_static(b"second\n"))
                });
                Ok(Box::pin(first.chain(second)))
            }
            other => Err(Error::not_found(format!("container {other:?} not found"))),
        }
    }
}

#[async_trait]
impl ContainerAttach for Stub {
    async fn attach(
        &self,
        _namespace: &str,
        _pod: &str,
        _container: &str,
        mut io: ExecIo,
    ) -> Result<Option<i32>> {
        if let (Some(input), Some(output)) = (io.stdin.as_mut(), io.stdout.as_mut()) {
            let mut buf = [0u8; 1024];
            loop {
                match input.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if output.write_all(&buf[..n]).await.is_err()
                            || output.flush().await.is_err()
                        {
                            break;
                        }
                    }
                }
            }
        }
        Ok(None)
    }
}

// ----------------------------------------------------------------------------------
// The server and TLS clients
// ----------------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    provider: Arc<Stub>,
    connections: ConnectionLimit,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn open_auth() -> AuthConfig {
    AuthConfig {
        anonymous: true,
        token_webhook: false,
        authorization: AuthzMode::AlwaysAllow,
    }
}

/// Options with every timeout `timeout` and a cap of 10,000 unless `cap`.
fn options(timeout: Duration, cap: usize) -> ServeOptions {
    ServeOptions {
        handshake_timeout: timeout,
        header_read_timeout: timeout,
        idle_timeout: timeout,
        connections: ConnectionLimit::new("kubelet API", cap),
        ..Default::default()
    }
}

async fn start(options: ServeOptions, auth: AuthConfig) -> Server {
    // Hundreds of connections, both ends in this process.
    vk_node_api::fd_limit::raise_open_file_limit().expect("raise the open-file limit");
    let cert = ReloadingCert::new(&ServingCert::SelfSigned {
        names: vec!["localhost".into()],
    })
    .expect("certificate");
    let tls = Arc::new(server_config(Arc::new(cert), None).expect("TLS config"));
    let provider = Arc::new(Stub::default());
    let api = Arc::new(NodeApi::new(
        NODE,
        Arc::clone(&provider) as SharedPodHandler,
        Authenticator::new(auth, NODE, None),
        StreamingConfig::default(),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = options.connections.clone();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve_tls_with(
        listener,
        tls,
        router(api),
        options,
        shutdown.clone(),
    ));
    Server {
        addr,
        provider,
        connections,
        shutdown,
    }
}

/// Accepts any server certificate (the server's is self-signed).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn connector() -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    tokio::time::timeout(LIMIT, connector().connect(name, tcp))
        .await
        .expect("handshake timed out")
        .expect("handshake")
}

/// An HTTP/1.1 client connection over TLS; the task ends when the connection does.
async fn http_client(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Body>,
    tokio::task::JoinHandle<()>,
) {
    let stream = tls_connect(addr).await;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    let task = tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    (send, task)
}

fn get_request(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, "localhost")
        .body(Body::empty())
        .expect("request")
}

/// Sends `req` on `send`; the status and whole body.
async fn send(
    send: &mut hyper::client::conn::http1::SendRequest<Body>,
    req: Request<Body>,
) -> (StatusCode, String) {
    let response = tokio::time::timeout(LIMIT, send.send_request(req))
        .await
        .expect("request timed out")
        .expect("response");
    let status = response.status();
    let body = tokio::time::timeout(
        LIMIT,
        axum::body::to_bytes(Body::new(response.into_body()), usize::MAX),
    )
    .await
    .expect("body timed out")
    .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `GET path` on a new connection.
async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let (mut sender, _task) = http_client(addr).await;
    send(&mut sender, get_request(path)).await
}

/// Waits until the peer closes `conn` (EOF or reset); fails after [`LIMIT`].
async fn closed_by_server<S: tokio::io::AsyncRead + Unpin>(conn: &mut S) {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(LIMIT, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closes the connection");
}

/// Waits until `done` holds; fails after [`LIMIT`].
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The start of a TLS ClientHello that announces 512 bytes and sends 6.
const HALF_HANDSHAKE: &[u8] = &[
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
];

async fn half_open_handshake(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(HALF_HANDSHAKE).await.expect("write");
    tcp
}

fn open_fds() -> u64 {
    Process::current().open_fds().expect("/proc/self/fd")
}

/// Sends `word` on stdin of a v5.channel.k8s.io session; whether it comes back on
/// stdout.
async fn echo(
    ws: &mut tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>,
    word: &str,
) -> bool {
    use tokio_tungstenite::tungstenite::Message;
    let mut frame = vec![0u8];
    frame.extend_from_slice(word.as_bytes());
    ws.send(Message::Binary(frame.into()))
        .await
        .expect("send stdin");
    tokio::time::timeout(LIMIT, async {
        while let Some(message) = ws.next().await {
            if let Ok(Message::Binary(data)) = message
                && data.first() == Some(&1)
                && data[1..] == *word.as_bytes()
            {
                return true;
            }
        }
        false
    })
    .await
    .expect("echo timed out")
}

// ----------------------------------------------------------------------------------
// Idle connections
// ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_does_not_stop_healthz_or_requests() {
    let server = start(options(NEVER, 10_000), open_auth()).await;
    let fds_before = open_fds();
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    let mut half = Vec::new();
    for _ in 0..20 {
        half.push(half_open_handshake(server.addr).await);
    }
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(tls_connect(server.addr).await);
    }
    until("the server holds all 240 connections", || {
        server.connections.open() >= 240
    })
    .await;
    let fds_flooded = open_fds();

    assert_eq!(
        get(server.addr, "/healthz").await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        get(server.addr, "/containerLogs/default/web/app").await,
        (StatusCode::OK, "line\n".into())
    );
    eprintln!(
        "flood: {} connections held by the server, open fds of the test process {fds_before} -> {fds_flooded} (both ends)",
        server.connections.open()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_by_the_server() {
    let server = start(options(SHORT, 10_000), open_auth()).await;
    let fds_before = open_fds();
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    let mut half = Vec::new();
    for _ in 0..10 {
        half.push(half_open_handshake(server.addr).await);
    }
    // The TLS handshake done, then nothing: the header-read timeout.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(tls_connect(server.addr).await);
    }
    // One request, then nothing: the keep-alive idle timeout.
    let mut kept = Vec::new();
    for _ in 0..10 {
        let (mut sender, task) = http_client(server.addr).await;
        assert_eq!(
            send(&mut sender, get_request("/healthz")).await.0,
            StatusCode::OK
        );
        kept.push((sender, task));
    }
    let fds_flooded = open_fds();
    for conn in &mut idle {
        closed_by_server(conn).await;
    }
    for conn in &mut half {
        closed_by_server(conn).await;
    }
    for conn in &mut silent {
        closed_by_server(conn).await;
    }
    for (_, task) in kept {
        tokio::time::timeout(LIMIT, task)
            .await
            .expect("the server closes the kept-alive connection")
            .expect("client task");
    }
    until("the server let go of every connection", || {
        server.connections.open() == 0
    })
    .await;
    drop((idle, half, silent));
    eprintln!(
        "idle: open fds of the test process {fds_before} -> {fds_flooded} with 230 idle connections -> {} after the server closed them",
        open_fds()
    );
    assert_eq!(
        get(server.addr, "/healthz").await,
        (StatusCode::OK, "ok".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_head_is_cut_off_but_a_kept_alive_connection_may_wait() {
    let server = start(
        ServeOptions {
            header_read_timeout: SHORT,
            ..options(NEVER, 10_000)
        },
        open_auth(),
    )
    .await;
    // A kept-alive connection (the idle timeout is long).
    let (mut kept, _task) = http_client(server.addr).await;
    assert_eq!(
        send(&mut kept, get_request("/healthz")).await.0,
        StatusCode::OK
    );

    // A head trickled a header line at a time never completes in time.
    let mut trickle = tls_connect(server.addr).await;
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("write");
    let cut = tokio::time::timeout(LIMIT, async {
        let mut buf = [0u8; 64];
        loop {
            if trickle.write_all(b"X-Slow: 1\r\n").await.is_err() {
                return;
            }
            tokio::select! {
                read = trickle.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { return },
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "the trickled head was never cut off");

    // Longer than the header-read timeout has passed; the idle connection is still
    // served.
    assert_eq!(
        send(&mut kept, get_request("/healthz")).await,
        (StatusCode::OK, "ok".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_responses_and_upgraded_sessions_outlive_the_http_timeouts() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let server = start(options(SHORT, 10_000), open_auth()).await;

    // A followed log that goes quiet after its first line.
    let (mut logs, _logs_task) = http_client(server.addr).await;
    let response = tokio::time::timeout(
        LIMIT,
        logs.send_request(get_request("/containerLogs/default/web/quiet?follow=true")),
    )
    .await
    .expect("logs timed out")
    .expect("logs");
    assert_eq!(response.status(), StatusCode::OK);
    let mut log = Body::new(response.into_body()).into_data_stream();
    let first = tokio::time::timeout(LIMIT, log.next())
        .await
        .expect("first line timed out")
        .expect("a first line")
        .expect("data");
    assert_eq!(first, "first\n");

    // An attach session over WebSocket that echoes stdin.
    let stream = tls_connect(server.addr).await;
    let mut request = "wss://localhost/attach/default/web/app?input=1&output=1"
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        "v5.channel.k8s.io".parse().expect("header"),
    );
    let (mut ws, response) =
        tokio::time::timeout(LIMIT, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("WebSocket handshake timed out")
            .expect("WebSocket handshake");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert!(echo(&mut ws, "ping").await, "the session echoes");

    // The event that shows the HTTP timeouts have passed for both: a connection opened
    // after them is closed by its header-read timeout.
    let mut witness = tls_connect(server.addr).await;
    closed_by_server(&mut witness).await;

    assert!(
        echo(&mut ws, "pong").await,
        "the upgraded session is still open"
    );
    server.provider.release.notify_one();
    let rest = tokio::time::timeout(LIMIT, log.next())
        .await
        .expect("second line timed out")
        .expect("a second line")
        .expect("data");
    assert_eq!(rest, "second\n", "the quiet response is still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_at_once() {
    let server = start(options(NEVER, 8), open_auth()).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    until("the server holds 8 connections", || {
        server.connections.open() == 8
    })
    .await;
    let mut excess = TcpStream::connect(server.addr).await.expect("connect");
    closed_by_server(&mut excess).await;
    assert_eq!(server.connections.refused(), 1);
    drop(held);
    until("the server let go of the 8", || {
        server.connections.open() == 0
    })
    .await;
    assert_eq!(
        get(server.addr, "/healthz").await,
        (StatusCode::OK, "ok".into())
    );
}

// ----------------------------------------------------------------------------------
// Hostile requests
// ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_head_is_431_or_closed() {
    let server = start(options(NEVER, 10_000), open_auth()).await;
    let mut conn = tls_connect(server.addr).await;
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 100 * 1024));
    head.extend_from_slice(b"\r\n\r\n");
    // The server may answer and close before the whole head is written.
    let _ = conn.write_all(&head).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(LIMIT, conn.read_to_end(&mut answer))
        .await
        .expect("the server answers or closes");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert_eq!(
        get(server.addr, "/healthz").await,
        (StatusCode::OK, "ok".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_bearer_token_is_401_without_a_review() {
    // Token webhook on and no API server client: a token that reached a review would
    // be a 500; a token over the length limit is refused before.
    let server = start(options(NEVER, 10_000), AuthConfig::default()).await;
    let (mut sender, _task) = http_client(server.addr).await;
    let token = "x".repeat(60 * 1024);
    let req = Request::get("/pods")
        .header(header::HOST, "localhost")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        send(&mut sender, req).await,
        (StatusCode::UNAUTHORIZED, "Unauthorized\n".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_in_names_is_400_and_never_reaches_the_provider() {
    let server = start(options(NEVER, 10_000), open_auth()).await;
    for path in [
        "/containerLogs/default/web/..%2F..%2Fetc%2Fpasswd",
        "/containerLogs/default/web/..%2f..%2fetc%2fpasswd",
        "/containerLogs/default/web/%2e%2e",
        "/containerLogs/default/web/..",
        "/containerLogs/default/%2E%2E%2F%2E%2E/app",
        "/containerLogs/default/web/app%2F..%2F..%2Fsecret",
        "/containerLogs/default/web/a%5C..%5Cb",
        "/containerLogs/default/web/app%00",
        "/attach/default/web/..%2F..%2Fbin%2Fsh?input=1&output=1",
    ] {
        let (status, body) = get(server.addr, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body.contains("invalid path segment"), "{path}: {body}");
    }
    assert_eq!(server.provider.containers_asked_for(), Vec::<String>::new());
    // An escaped but harmless name reaches the provider decoded, as a name.
    assert_eq!(
        get(server.addr, "/containerLogs/default/web/%61pp").await,
        (StatusCode::OK, "line\n".into())
    );
    assert_eq!(server.provider.containers_asked_for(), ["app"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_negative_query_values_are_400_naming_the_parameter() {
    let server = start(options(NEVER, 10_000), open_auth()).await;
    for (query, name) in [
        ("tailLines=-1", "tailLines"),
        ("tailLines=99999999999999999999", "tailLines"),
        ("limitBytes=99999999999999999999", "limitBytes"),
        ("limitBytes=-1", "limitBytes"),
        ("sinceSeconds=-5", "sinceSeconds"),
        ("sinceSeconds=99999999999999999999", "sinceSeconds"),
        ("sinceTime=99999-01-01T00:00:00Z", "sinceTime"),
    ] {
        let (status, body) = get(
            server.addr,
            &format!("/containerLogs/default/web/app?{query}"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body.contains(name), "{query}: {body}");
    }
    assert_eq!(server.provider.containers_asked_for(), Vec::<String>::new());
}
