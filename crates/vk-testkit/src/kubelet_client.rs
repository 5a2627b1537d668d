//! A direct client for a virtual node's kubelet port (TLS, optional client
//! certificate), for tests of its authentication and protocols that must not go
//! through the API server.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Why a kubelet client could not be built or could not connect.
#[derive(Debug, thiserror::Error)]
pub enum KubeletClientError {
    /// A PEM certificate or key could not be parsed.
    #[error("parsing {what}: {source}")]
    Pem {
        /// Which PEM input.
        what: &'static str,
        /// The parser's error.
        source: rustls::pki_types::pem::Error,
    },
    /// The TLS configuration was refused (e.g. a key not matching its certificate).
    #[error("building the TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// Connecting, the handshake, or the exchange failed.
    #[error("talking to the kubelet port: {0}")]
    Io(#[from] std::io::Error),
    /// The WebSocket handshake failed.
    #[error("WebSocket handshake: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
}

/// TLS client for `127.0.0.1:port` that trusts `ca_pem` and presents `identity`
/// (certificate and key PEM) when given.
///
/// ```no_run
/// # async fn demo(ca: &str) -> Result<(), vk_testkit::kubelet_client::KubeletClientError> {
/// let client = vk_testkit::kubelet_client::KubeletClient::new(ca, None)?;
/// let (status, _body) = client.get(10250, "/pods").await?;
/// assert_eq!(status, 401);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KubeletClient {
    connector: TlsConnector,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient").finish_non_exhaustive()
    }
}

impl KubeletClient {
    /// A client trusting `ca_pem`, authenticating with `identity` = (cert PEM, key PEM).
    pub fn new(ca_pem: &str, identity: Option<(&str, &str)>) -> Result<Self, KubeletClientError> {
        crate::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let cert = cert.map_err(|source| KubeletClientError::Pem {
                what: "CA certificate",
                source,
            })?;
            roots.add(cert)?;
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|source| KubeletClientError::Pem {
                        what: "client certificate",
                        source,
                    })?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|source| {
                    KubeletClientError::Pem {
                        what: "client key",
                        source,
                    }
                })?;
                builder.with_client_auth_cert(chain, key)?
            }
        };
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// A TLS connection to `127.0.0.1:port` (the server certificate must name 127.0.0.1).
    pub async fn connect(&self, port: u16) -> Result<TlsStream<TcpStream>, KubeletClientError> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        Ok(self.connector.connect(name, tcp).await?)
    }

    /// `GET path` (HTTP/1.0); returns the status code and the body. A server that
    /// refuses the client certificate during the handshake shows as an I/O error.
    pub async fn get(&self, port: u16, path: &str) -> Result<(u16, String), KubeletClientError> {
        self.get_with_token(port, path, None).await
    }

    /// [`get`](Self::get) with `Authorization: Bearer TOKEN` when `token` is given.
    pub async fn get_with_token(
        &self,
        port: u16,
        path: &str,
        token: Option<&str>,
    ) -> Result<(u16, String), KubeletClientError> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        self.get_with_headers(port, path, &headers).await
    }

    /// [`get`](Self::get) with extra request headers.
    pub async fn get_with_headers(
        &self,
        port: u16,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String), KubeletClientError> {
        let mut tls = self.connect(port).await?;
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        tls.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{extra}\r\n").as_bytes())
            .await?;
        // What the socket did not take at once stays in the TLS session until flushed;
        // unflushed, the server may never see the end of the request.
        tls.flush().await?;
        let mut raw = Vec::new();
        // A TLS peer may close without close_notify; what arrived is still the answer.
        if let Err(e) = tls.read_to_end(&mut raw).await
            && raw.is_empty()
        {
            return Err(e.into());
        }
        Ok(crate::http::parse_response(&String::from_utf8_lossy(&raw)))
    }

    /// Opens a WebSocket on `path` offering exactly `protocols` (comma-separated in one
    /// `Sec-WebSocket-Protocol` header); returns the stream and the chosen protocol.
    pub async fn websocket(
        &self,
        port: u16,
        path: &str,
        protocols: &[&str],
    ) -> Result<
        (
            tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>,
            Option<String>,
        ),
        KubeletClientError,
    > {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let tls = self.connect(port).await?;
        let mut request = format!("wss://127.0.0.1:{port}{path}").into_client_request()?;
        if !protocols.is_empty() {
            let value =
                protocols
                    .join(", ")
                    .parse()
                    .map_err(|e: http::header::InvalidHeaderValue| {
                        std::io::Error::other(e.to_string())
                    })?;
            request
                .headers_mut()
                .insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
        }
        let (ws, response) = tokio_tungstenite::client_async(request, tls).await?;
        let chosen = response
            .headers()
            .get(http::header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((ws, chosen))
    }
}
