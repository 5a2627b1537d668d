//! The client against loopback servers: plain HTTP, HTTPS with test CAs, mutual TLS.
//! Also the test servers and certificates the bridge tests use.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use vk_errdefs::ErrorKind;

use super::*;

// ---------------------------------------------------------------------------------
// Test servers and certificates
// ---------------------------------------------------------------------------------

pub(crate) type TestBody = UnsyncBoxBody<Bytes, Infallible>;

/// A response with `status` and `body`.
pub(crate) fn answer(status: u16, body: impl Into<Bytes>) -> Response<TestBody> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    response
}

/// A loopback server; stops accepting when dropped.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    /// Connections accepted and not yet finished.
    pub(crate) open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub(crate) fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// Accepts connections on a loopback port and hands each to `connection`.
pub(crate) async fn accept_loop<C, F>(connection: C) -> TestServer
where
    C: Fn(TcpStream) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let open = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&open);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let served = connection(tcp);
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                served.await;
                count.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    TestServer { addr, open, task }
}

/// An HTTP/1.1 server (over TLS with `tls`) answering with `handler`.
pub(crate) async fn serve<H, F>(tls: Option<Arc<rustls::ServerConfig>>, handler: H) -> TestServer
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<TestBody>> + Send + 'static,
{
    accept_loop(move |tcp| {
        let handler = handler.clone();
        let tls = tls.clone();
        async move {
            let service = service_fn(move |request| {
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let http = http1::Builder::new();
            match tls {
                Some(config) => {
                    let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                    else {
                        return;
                    };
                    let _ = http
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                }
                None => {
                    let _ = http
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades()
                        .await;
                }
            }
        }
    })
    .await
}

/// A certificate authority for tests.
pub(crate) struct TestCa {
    pub(crate) cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
pub(crate) struct Issued {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    pub(crate) fn issue(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, "test");
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server config with a certificate for 127.0.0.1 and localhost; with
    /// `client_ca`, clients must present a certificate it issued.
    pub(crate) fn server_tls(&self, client_ca: Option<&TestCa>) -> Arc<rustls::ServerConfig> {
        let issued = self.issue(
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let certs = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("certs");
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca.cert_pem.as_bytes()) {
                    roots.add(cert.expect("ca pem")).expect("add ca");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        Arc::new(builder.with_single_cert(certs, key).expect("server config"))
    }
}

/// A config for `url` that retries quickly.
pub(crate) fn quick_config(url: String) -> HttpClientConfig {
    HttpClientConfig::new(url).retry(RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(10),
    })
}

// ---------------------------------------------------------------------------------
// Plain HTTP
// ---------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Job {
    id: String,
    count: u32,
}

#[tokio::test]
async fn json_get_and_post_round_trip() {
    let server = serve(None, |request: Request<Incoming>| async move {
        let token = request
            .headers()
            .get("x-token")
            .map(|v| v.as_bytes().to_vec());
        let agent = request
            .headers()
            .get("user-agent")
            .map(|v| v.as_bytes().to_vec());
        if token.as_deref() != Some(b"s3cr3t") || agent.as_deref() != Some(b"vk-test/1") {
            return answer(401, "who are you");
        }
        match (request.method().as_str(), request.uri().path()) {
            ("GET", "/api/v1/jobs") => {
                let query = request.uri().query().unwrap_or_default().to_string();
                answer(200, format!(r#"[{{"id":"{query}","count":1}}]"#))
            }
            ("POST", "/api/v1/jobs") => {
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                let mut job: Job = serde_json::from_slice(&body).expect("job json");
                job.count += 1;
                answer(201, serde_json::to_vec(&job).expect("json"))
            }
            _ => answer(404, "no route"),
        }
    })
    .await;
    let client = HttpClient::new(
        quick_config(format!("{}/api/", server.http_url()))
            .sensitive_header("X-Token", "s3cr3t")
            .user_agent("vk-test/1"),
    )
    .expect("client");

    let listed: Vec<Job> = client
        .get("v1/jobs")
        .query("namespace", "prod a&b")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("decode");
    assert_eq!(
        listed,
        [Job {
            id: "namespace=prod%20a%26b".into(),
            count: 1
        }]
    );
    let all: Vec<Job> = client.get_json("/v1/jobs").await.expect("get_json");
    assert_eq!(all.len(), 1);

    let created: Job = client
        .post_json(
            "/v1/jobs",
            &Job {
                id: "web".into(),
                count: 2,
            },
        )
        .await
        .expect("post");
    assert_eq!(
        created,
        Job {
            id: "web".into(),
            count: 3
        }
    );
    let counts = client.counts();
    assert_eq!((counts.attempts, counts.retries), (3, 0));
    assert_eq!(counts.responses(2), 3);
}

#[tokio::test]
async fn not_found_maps_to_the_not_found_kind() {
    let server = serve(None, |_| async { answer(404, "no such job \"web\"\n") }).await;
    let client = HttpClient::new(quick_config(server.http_url())).expect("client");
    let err = client.delete("/v1/job/web").await.expect_err("404");
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(
        err.to_string(),
        "DELETE /v1/job/web answered 404 Not Found: no such job \"web\""
    );
    let err: vk_errdefs::Error = err.into();
    assert!(vk_errdefs::is_not_found(&err));
    // 404 is not retried.
    assert_eq!(client.counts().attempts, 1);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let hits = Arc::new(AtomicU32::new(0));
    let server = serve(None, {
        let hits = hits.clone();
        move |_| {
            let hit = hits.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if hit <= 2 {
                    let mut response = answer(429, "slow down");
                    response
                        .headers_mut()
                        .insert("retry-after", http::HeaderValue::from_static("1"));
                    response
                } else {
                    answer(200, r#"{"ok":true}"#)
                }
            }
        }
    })
    .await;
    let client = HttpClient::new(quick_config(server.http_url()).retry(RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(1),
        ..RetryPolicy::default()
    }))
    .expect("client");

    let started = Instant::now();
    let body: serde_json::Value = client.get_json("/v1/jobs").await.expect("third time");
    assert_eq!(body["ok"], true);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited only {:?} for two Retry-After: 1",
        started.elapsed()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let counts = client.counts();
    assert_eq!((counts.attempts, counts.retries), (3, 2));
    assert_eq!((counts.responses(4), counts.responses(2)), (2, 1));
}

/// Answers `status` to every request on `/always` and `status` once then 200 on
/// `/once`, counting requests.
async fn failing_server(status: u16) -> (TestServer, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let server = serve(None, {
        let hits = hits.clone();
        move |request: Request<Incoming>| {
            let hit = hits.fetch_add(1, Ordering::SeqCst) + 1;
            let once = request.uri().path() == "/once";
            async move {
                if once && hit > 1 {
                    answer(200, "{}")
                } else {
                    answer(status, "busy")
                }
            }
        }
    })
    .await;
    (server, hits)
}

#[tokio::test]
async fn service_unavailable_is_retried_only_for_idempotent_requests() {
    let (server, hits) = failing_server(503).await;
    let client = HttpClient::new(quick_config(server.http_url())).expect("client");

    let err = client
        .post("/always")
        .body("x")
        .send()
        .await
        .expect_err("503");
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(
        hits.swap(0, Ordering::SeqCst),
        1,
        "a POST must not be repeated"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);

    let err = client.put("/always").send().await.expect_err("503");
    assert_eq!(hits.swap(0, Ordering::SeqCst), 3, "a PUT is retried");
    assert!(err.to_string().contains("(after 3 attempts)"), "{err}");

    client
        .post("/once")
        .idempotent(true)
        .send()
        .await
        .expect("a POST marked idempotent is retried");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn too_many_requests_is_retried_for_every_method() {
    let (server, hits) = failing_server(429).await;
    let client = HttpClient::new(quick_config(server.http_url())).expect("client");
    let _: serde_json::Value = client
        .post_json("/once", &serde_json::json!({"a": 1}))
        .await
        .expect("second attempt");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retry_after_beyond_the_cap_fails_at_once() {
    let hits = Arc::new(AtomicU32::new(0));
    let server = serve(None, {
        let hits = hits.clone();
        move |_| {
            hits.fetch_add(1, Ordering::SeqCst);
            async {
                let mut response = answer(429, "come back later");
                response
                    .headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static("120"));
                response
            }
        }
    })
    .await;
    let client = HttpClient::new(quick_config(server.http_url())).expect("client");
    let err = client.get("/v1/jobs").send().await.expect_err("429");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert!(err.to_string().contains("retry after 120s"), "{err}");
    assert_eq!(client.counts().retries, 0);
}

#[tokio::test]
async fn connection_refused_is_unavailable_after_every_attempt() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = HttpClient::new(quick_config(format!("http://{addr}"))).expect("client");
    let err = client
        .post("/v1/jobs")
        .send()
        .await
        .expect_err("nobody listens");
    let HttpError::Connect { attempts, .. } = &err else {
        panic!("expected a connect error, got {err:?}");
    };
    assert_eq!(*attempts, Attempts(3));
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!(vk_errdefs::Error::from(err).kind(), ErrorKind::Unavailable);
    let counts = client.counts();
    assert_eq!(
        (counts.attempts, counts.retries, counts.transport_errors),
        (3, 2, 3)
    );
}

#[tokio::test]
async fn request_timeout_bounds_the_wait_for_headers() {
    let server = serve(None, |_| async {
        std::future::pending::<()>().await;
        answer(200, "never")
    })
    .await;
    let client = HttpClient::new(
        HttpClientConfig::new(server.http_url())
            .request_timeout(Some(Duration::from_millis(100)))
            .retry(RetryPolicy::never()),
    )
    .expect("client");
    let err = client.get("/hang").send().await.expect_err("timeout");
    assert!(matches!(err, HttpError::Timeout { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn a_streaming_body_outlives_the_request_timeout() {
    let timeout = Duration::from_millis(150);
    let server = serve(None, move |_| async move {
        // The stream's own pace: a chunk every two request timeouts.
        let chunks =
            futures::stream::iter(["one\n", "two\n", "three\n"]).then(move |chunk| async move {
                tokio::time::sleep(timeout * 2).await;
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(chunk.as_bytes())))
            });
        Response::new(StreamBody::new(chunks).boxed_unsync())
    })
    .await;
    let client =
        HttpClient::new(HttpClientConfig::new(server.http_url()).request_timeout(Some(timeout)))
            .expect("client");
    let started = Instant::now();
    let response = client.get("/logs").send().await.expect("headers in time");
    let mut stream = response.into_stream();
    let mut received = Vec::new();
    while let Some(chunk) = stream.next().await {
        received.push(chunk.expect("chunk"));
    }
    assert_eq!(received, ["one\n", "two\n", "three\n"]);
    assert!(started.elapsed() > timeout * 6, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_bad_json_body_names_the_field() {
    let server = serve(None, |_| async {
        answer(200, r#"{"items": [{"name": "a"}, {"name": 5}]}"#)
    })
    .await;
    let client = HttpClient::new(quick_config(server.http_url())).expect("client");
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct List {
        items: Vec<Item>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        name: String,
    }
    let err = client
        .get_json::<List>("/v1/list")
        .await
        .expect_err("bad field");
    let text = err.to_string();
    assert!(
        text.starts_with("decoding the JSON body of GET /v1/list: at `items[1].name`"),
        "{text}"
    );
    assert!(text.contains("line 1 column"), "{text}");
    assert_eq!(err.kind(), ErrorKind::Unknown);
}

#[tokio::test]
async fn tokens_never_show_in_debug_output_or_errors() {
    const TOKEN: &str = "tok-8f2e-SECRET";
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let server = serve(None, {
        let seen = seen.clone();
        move |request: Request<Incoming>| {
            let token = request.headers().get("x-nomad-token").cloned();
            let bearer = request.headers().get("authorization").cloned();
            seen.lock().expect("lock").push((token, bearer));
            async { answer(403, "permission denied") }
        }
    })
    .await;
    let config = quick_config(server.http_url())
        .sensitive_header("X-Nomad-Token", TOKEN)
        .bearer_token(TOKEN);
    assert!(!format!("{config:?}").contains("SECRET"));
    let client = HttpClient::new(config).expect("client");
    assert!(!format!("{client:?}").contains("SECRET"));
    let request = client.get("/v1/jobs").sensitive_header("X-Other", TOKEN);
    assert!(!format!("{request:?}").contains("SECRET"));

    let err = request.send().await.expect_err("403");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    let wrapped = vk_errdefs::Error::from(err);
    for text in [wrapped.to_string(), format!("{wrapped:?}")] {
        assert!(!text.contains("SECRET"), "{text}");
    }
    // The token was sent, marked sensitive.
    {
        let seen = seen.lock().expect("lock");
        let (token, bearer) = seen.first().expect("a request");
        assert_eq!(token.as_ref().expect("token header"), TOKEN);
        assert_eq!(
            bearer.as_ref().expect("authorization header"),
            &format!("Bearer {TOKEN}")
        );
    }
    assert!(client.inner_headers_are_sensitive(&["x-nomad-token", "authorization"]));

    // Nor in a transport error.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = HttpClient::new(
        quick_config(format!("http://{addr}")).sensitive_header("X-Nomad-Token", TOKEN),
    )
    .expect("client");
    let err = client.get("/v1/jobs").send().await.expect_err("refused");
    assert!(!format!("{err} {err:?}").contains("SECRET"));
}

#[tokio::test]
async fn bad_configs_fail_to_build() {
    let err = HttpClient::new(HttpClientConfig::new("nomad:4646")).expect_err("no scheme");
    assert!(matches!(err, HttpError::InvalidUrl { .. }), "{err:?}");
    let err = HttpClient::new(HttpClientConfig::new("http://h").header("bad name", "v"))
        .expect_err("bad header");
    assert!(err.to_string().contains("invalid header name"), "{err}");
    let err = HttpClient::new(HttpClientConfig::new("http://h").sensitive_header("x", "a\nb"))
        .expect_err("bad value");
    assert_eq!(
        err.to_string(),
        "building the HTTP client for http://h: invalid value for header x"
    );
    let err = HttpClient::new(
        HttpClientConfig::new("https://h")
            .system_roots(false)
            .ca_pem("junk"),
    )
    .expect_err("bad CA");
    assert!(err.to_string().contains("CA bundle 1"), "{err}");
}

// ---------------------------------------------------------------------------------
// HTTPS
// ---------------------------------------------------------------------------------

async fn hello_over_tls(tls: Arc<rustls::ServerConfig>) -> TestServer {
    serve(Some(tls), |_| async { answer(200, "hello") }).await
}

#[tokio::test]
async fn https_with_a_trusted_ca() {
    let ca = TestCa::new("backend CA");
    let server = hello_over_tls(ca.server_tls(None)).await;
    let client = HttpClient::new(
        quick_config(server.https_url())
            .system_roots(false)
            .ca_pem(ca.cert_pem.clone()),
    )
    .expect("client");
    let text = client.get("/").send().await.expect("get").text().await;
    assert_eq!(text.expect("text"), "hello");
}

#[tokio::test]
async fn https_with_an_untrusted_ca_fails_naming_the_problem() {
    let ca = TestCa::new("backend CA");
    let other = TestCa::new("some other CA");
    let server = hello_over_tls(ca.server_tls(None)).await;
    // The system roots stay on: they do not know the test CA either.
    let client = HttpClient::new(quick_config(server.https_url()).ca_pem(other.cert_pem.clone()))
        .expect("client");
    let err = client.get("/").send().await.expect_err("untrusted");
    assert!(matches!(err, HttpError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(
        client.counts().attempts,
        1,
        "a certificate problem is not retried"
    );

    // Unless verification is off.
    let insecure = HttpClient::new(
        quick_config(server.https_url())
            .system_roots(false)
            .insecure_skip_verify(true),
    )
    .expect("client");
    let text = insecure.get("/").send().await.expect("get").text().await;
    assert_eq!(text.expect("text"), "hello");
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let ca = TestCa::new("backend CA");
    let server = hello_over_tls(ca.server_tls(Some(&ca))).await;
    let client_cert = ca.issue(&["vk-nomad"], ExtendedKeyUsagePurpose::ClientAuth);
    let config = quick_config(server.https_url())
        .system_roots(false)
        .ca_pem(ca.cert_pem.clone());

    let with_identity = HttpClient::new(
        config
            .clone()
            .client_identity_pem(client_cert.cert_pem, client_cert.key_pem),
    )
    .expect("client");
    let text = with_identity
        .get("/")
        .send()
        .await
        .expect("get")
        .text()
        .await;
    assert_eq!(text.expect("text"), "hello");

    let without = HttpClient::new(config.retry(RetryPolicy::never())).expect("client");
    let err = without
        .get("/")
        .send()
        .await
        .expect_err("no client certificate");
    // The server's refusal reaches the client as a TLS alert (or, if the server's
    // close wins the race with the alert, as a reset connection).
    match &err {
        HttpError::Tls { reason, .. } => assert!(reason.contains("CertificateRequired"), "{err}"),
        HttpError::Send { .. } => {}
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

impl HttpClient {
    /// Whether the default headers `names` are marked sensitive.
    fn inner_headers_are_sensitive(&self, names: &[&str]) -> bool {
        names.iter().all(|name| {
            self.inner_default_headers()
                .get(*name)
                .is_some_and(|v| v.is_sensitive())
        })
    }
}
