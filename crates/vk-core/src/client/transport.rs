//! The connections under the home client: requests share one HTTP/2 connection, each
//! watch has an HTTP/1.1 connection of its own.
//!
//! kube's own stack ([`kube::client::ClientBuilder`]'s `TryFrom<Config>`) speaks only
//! HTTP/1.1, so every request in flight holds a TLS connection of its own: the Lease
//! renewals of a 1,000-node fleet, about 50 every 500 ms, kept dozens of connections
//! busy, each woken, written and read on its own. client-go (the kubelet's client)
//! negotiates HTTP/2 with the API server and multiplexes all its requests on one
//! connection; this stack does the same for every request but watches:
//!
//! - **Requests** (everything that is not a watch) go to a client offering `h2` and
//!   `http/1.1` by ALPN. Against an API server that is one connection, its requests
//!   written and answered together. A server or proxy that does not offer `h2` gets
//!   HTTP/1.1 as before, and a plain `http://` URL is HTTP/1.1.
//! - **Watches** (`watch=true` or `watch=1` in the query) go to an HTTP/1.1-only
//!   client. A watch holds its stream for minutes, and the API server allows 100
//!   streams per HTTP/2 connection (its defence against CVE-2023-44487): watches on the
//!   shared connection would take streams from the requests, and past 100 of them every
//!   request would queue behind streams that do not end. A process holds a handful of
//!   watches (a fleet: one of its nodes, one of its pods), so their connections cost
//!   little.
//!
//! The HTTP/2 connection is checked with a PING every [`PING_INTERVAL`] and dropped when
//! the answer takes longer than [`PING_TIMEOUT`] (client-go's `ReadIdleTimeout` and
//! `PingTimeout`): with every request on one connection, a connection that died without
//! a word (a dropped NAT entry, a rebooted load balancer) must not wait for TCP's
//! minutes-long timeout. Idle connections are closed after [`IDLE_TIMEOUT`].
//!
//! Everything above the connections is kube's own, from the same [`kube::Config`]:
//! the base URL, authentication (tokens, client certificates, exec plugins, refreshed
//! as kube refreshes them), extra headers (impersonation), TLS settings (CA, server
//! name, `insecure-skip-tls-verify`) and the connect/read/write timeouts. Two things
//! are not carried over: kube's tracing span per request (the process counts requests
//! in [`super::ApiStats`] instead) and the expiry hint of an exec plugin's client
//! certificate (`Client::valid_until`, which kube cannot be asked for from outside).
//! A configured proxy (`proxy-url`) is left to kube's own stack, HTTP/1.1.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ClientBuilder, ConfigExt as _, DynBody};
use tower::util::BoxService;
use tower::{BoxError, ServiceBuilder, ServiceExt as _};

/// How often the shared HTTP/2 connection is checked with a PING (client-go's
/// `ReadIdleTimeout`).
pub const PING_INTERVAL: Duration = Duration::from_secs(30);

/// How long a PING may wait for its answer before the connection is dropped (client-go's
/// `PingTimeout`).
pub const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// How long an unused connection is kept open.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The service type kube's [`ClientBuilder`] starts from.
pub(crate) type Stack = BoxService<Request<Body>, Response<Box<DynBody>>, BoxError>;

type Connector = TimeoutConnector<hyper_rustls::HttpsConnector<HttpConnector>>;
type Connections = HyperClient<Connector, Body>;

/// kube's [`ClientBuilder`] for `config`, over the connections described in the module
/// docs. Must be called within a Tokio runtime.
pub(crate) fn builder(config: kube::Config) -> Result<ClientBuilder<Stack>, kube::Error> {
    if config.proxy_url.is_some() {
        return ClientBuilder::try_from(config);
    }
    let requests = connections(&config, Protocols::Http2AndHttp1)?;
    let watches = connections(&config, Protocols::Http1)?;
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(ByKind { requests, watches })
        .map_response(|response: Response<Incoming>| {
            response.map(|body| {
                Box::new(http_body_util::BodyExt::map_err(body, BoxError::from)) as Box<DynBody>
            })
        });
    Ok(ClientBuilder::new(
        BoxService::new(service),
        config.default_namespace.clone(),
    ))
}

/// Which protocols a connection pool offers the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocols {
    Http2AndHttp1,
    Http1,
}

fn connections(config: &kube::Config, protocols: Protocols) -> Result<Connections, kube::Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let tls = config.rustls_client_config()?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let https = match &config.tls_server_name {
        Some(name) => {
            let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| {
                kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
            })?;
            https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => https,
    };
    let https = match protocols {
        Protocols::Http2AndHttp1 => https.enable_all_versions().wrap_connector(http),
        Protocols::Http1 => https.enable_http1().wrap_connector(http),
    };
    let mut connector = TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let mut builder = HyperClient::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .http2_keep_alive_interval(PING_INTERVAL)
        .http2_keep_alive_timeout(PING_TIMEOUT);
    Ok(builder.build(connector))
}

/// Whether `request` is a watch: `watch=true` (or `1`) in its query, as the API server
/// reads it.
fn is_watch<B>(request: &Request<B>) -> bool {
    request.uri().query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1" | "watch=True" | "watch=TRUE"))
    })
}

/// Sends watches to one pool of connections and every other request to the other.
#[derive(Clone)]
struct ByKind {
    requests: Connections,
    watches: Connections,
}

impl tower::Service<Request<Body>> for ByKind {
    type Response = Response<Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // hyper-util's client is always ready: a request waits for its connection
        // inside its own future.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let pool = if is_watch(&request) {
            &self.watches
        } else {
            &self.requests
        };
        Box::pin(pool.request(request))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use hyper_util::server::conn::auto;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::Api;
    use kube::api::WatchParams;

    use super::*;
    use crate::http::tests::TestCa;

    #[test]
    fn watches_are_told_by_their_query() {
        let request = |uri: &str| Request::get(uri).body(()).expect("a request");
        assert!(is_watch(&request("/api/v1/pods?watch=true")));
        assert!(is_watch(&request(
            "/api/v1/pods?fieldSelector=a&watch=1&timeoutSeconds=290"
        )));
        assert!(!is_watch(&request("/api/v1/pods")));
        assert!(!is_watch(&request("/api/v1/pods?watch=false")));
        assert!(!is_watch(&request(
            "/api/v1/pods?labelSelector=watch%3Dtrue"
        )));
        assert!(!is_watch(&request("/api/v1/namespaces/watch=true")));
    }

    /// A TLS server offering `h2` and `http/1.1` that records, per request, the HTTP
    /// version and the peer's port (one port per connection). Answers a namespace, or
    /// one watch event for a watch.
    async fn recording_server(
        ca: &TestCa,
    ) -> (String, Arc<Mutex<Vec<(String, http::Version, u16)>>>) {
        let mut tls = Arc::unwrap_or_clone(ca.server_tls(None));
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("an address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |request: Request<Incoming>| {
                        let query = request.uri().query().unwrap_or_default().to_owned();
                        record.lock().expect("the record").push((
                            query.clone(),
                            request.version(),
                            peer.port(),
                        ));
                        async move {
                            let body = if query.contains("watch=true") {
                                r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ns","resourceVersion":"2"}}}
"#
                            } else {
                                r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ns"}}"#
                            };
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                bytes::Bytes::from_static(body.as_bytes()),
                            )))
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (format!("https://{addr}"), seen)
    }

    fn config_for(url: &str, ca: &TestCa) -> kube::Config {
        use rustls::pki_types::pem::PemObject as _;
        let ca = rustls::pki_types::CertificateDer::from_pem_slice(ca.cert_pem.as_bytes())
            .expect("a PEM certificate");
        let mut config = kube::Config::new(url.parse().expect("a URL"));
        config.root_cert = Some(vec![ca.to_vec()]);
        config
    }

    /// Twenty requests at once share one HTTP/2 connection; a watch goes over HTTP/1.1
    /// on a connection of its own.
    #[tokio::test]
    async fn requests_share_one_http2_connection_and_watches_use_http1() {
        let ca = TestCa::new("transport-test-ca");
        let (url, seen) = recording_server(&ca).await;
        let client = builder(config_for(&url, &ca)).expect("a builder").build();
        let api = Api::<Namespace>::all(client);
        let gets = (0..20).map(|_| api.get("ns"));
        for got in futures::future::join_all(gets).await {
            assert_eq!(
                got.expect("a namespace").metadata.name.as_deref(),
                Some("ns")
            );
        }
        let events = api
            .watch(&WatchParams::default(), "1")
            .await
            .expect("a watch");
        let mut events = std::pin::pin!(events);
        let first = futures::StreamExt::next(&mut events).await;
        assert!(matches!(first, Some(Ok(_))), "{first:?}");

        let seen = seen.lock().expect("the record").clone();
        let (watches, requests): (Vec<_>, Vec<_>) = seen
            .iter()
            .partition(|(query, _, _)| query.contains("watch=true"));
        assert_eq!(requests.len(), 20);
        assert!(
            requests
                .iter()
                .all(|(_, version, _)| *version == http::Version::HTTP_2)
        );
        let ports: std::collections::BTreeSet<_> = requests.iter().map(|r| r.2).collect();
        assert_eq!(ports.len(), 1, "one connection for all requests: {ports:?}");
        assert_eq!(watches.len(), 1);
        assert_eq!(watches[0].1, http::Version::HTTP_11);
        assert!(
            !ports.contains(&watches[0].2),
            "the watch has its own connection"
        );
    }
}
