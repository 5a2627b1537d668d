//! What a client is built from: base URL, default headers, TLS, timeouts, retries.

use std::fmt;
use std::time::Duration;

use super::retry::RetryPolicy;

/// The user agent sent when none is configured: `vk-core/<version>`.
pub const DEFAULT_USER_AGENT: &str = concat!("vk-core/", env!("CARGO_PKG_VERSION"));

/// The settings of an [`HttpClient`](super::HttpClient). Nothing is checked until
/// [`HttpClient::new`](super::HttpClient::new), which reports every problem as an
/// [`HttpError`](super::HttpError).
///
/// `Debug` shows header *names* only and never the client key, so a config can be
/// logged.
///
/// ```
/// use std::time::Duration;
/// use vk_core::http::{HttpClientConfig, RetryPolicy};
///
/// let config = HttpClientConfig::new("https://nomad.example:4646")
///     .sensitive_header("X-Nomad-Token", "s3cr3t")
///     .header("X-Nomad-Namespace", "default")
///     .user_agent("vk-nomad/0.1")
///     .ca_pem(b"-----BEGIN CERTIFICATE-----...".to_vec())
///     .connect_timeout(Duration::from_secs(5))
///     .request_timeout(Some(Duration::from_secs(20)))
///     .retry(RetryPolicy { max_attempts: 5, ..RetryPolicy::default() });
/// assert!(!format!("{config:?}").contains("s3cr3t"));
/// ```
#[derive(Clone)]
pub struct HttpClientConfig {
    pub(crate) base_url: String,
    pub(crate) headers: Vec<DefaultHeader>,
    pub(crate) user_agent: String,
    pub(crate) tls: TlsSettings,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) retry: RetryPolicy,
    pub(crate) error_body_limit: usize,
}

/// A header sent with every request.
#[derive(Clone)]
pub(crate) struct DefaultHeader {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) sensitive: bool,
}

/// Which certificates the client trusts and presents.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    pub(crate) system_roots: bool,
    pub(crate) ca_pems: Vec<Vec<u8>>,
    pub(crate) identity: Option<Identity>,
    pub(crate) insecure_skip_verify: bool,
}

/// A client certificate chain and its key, both PEM.
#[derive(Clone)]
pub(crate) struct Identity {
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
}

impl HttpClientConfig {
    /// A config for the service at `base_url` (`http://` or `https://`, with an
    /// optional path prefix that every request path is relative to).
    ///
    /// Defaults: the system's trusted roots, connect timeout 10 s, request timeout 30 s
    /// (to the response headers), [`RetryPolicy::default`], user agent
    /// [`DEFAULT_USER_AGENT`].
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            headers: Vec::new(),
            user_agent: DEFAULT_USER_AGENT.to_string(),
            tls: TlsSettings {
                system_roots: true,
                ca_pems: Vec::new(),
                identity: None,
                insecure_skip_verify: false,
            },
            connect_timeout: Duration::from_secs(10),
            request_timeout: Some(Duration::from_secs(30)),
            retry: RetryPolicy::default(),
            error_body_limit: 1024,
        }
    }

    /// Sends `name: value` with every request (a request's own header of the same name
    /// replaces it).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(DefaultHeader {
            name: name.into(),
            value: value.into(),
            sensitive: false,
        });
        self
    }

    /// Like [`header`](Self::header), for secrets (API tokens): the value is marked
    /// sensitive for the HTTP stack and never appears in `Debug` output, logs or errors.
    pub fn sensitive_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(DefaultHeader {
            name: name.into(),
            value: value.into(),
            sensitive: true,
        });
        self
    }

    /// Sends `Authorization: Bearer <token>` (sensitive) with every request.
    pub fn bearer_token(self, token: impl AsRef<str>) -> Self {
        let value = format!("Bearer {}", token.as_ref());
        self.sensitive_header("authorization", value)
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Whether to trust the system's root certificates (default: yes). Turn them off to
    /// trust only the bundles given with [`ca_pem`](Self::ca_pem).
    pub fn system_roots(mut self, trust: bool) -> Self {
        self.tls.system_roots = trust;
        self
    }

    /// Also trusts the CA certificates of a PEM bundle (may be called repeatedly). With
    /// [`system_roots(false)`](Self::system_roots) the bundle replaces the system roots.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.ca_pems.push(pem.into());
        self
    }

    /// Presents a client certificate (mutual TLS): the PEM certificate chain (leaf
    /// first) and its PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn client_identity_pem(
        mut self,
        cert_chain_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.identity = Some(Identity {
            cert_pem: cert_chain_pem.into(),
            key_pem: key_pem.into(),
        });
        self
    }

    /// Accepts any server certificate without verification (Nomad's
    /// `NOMAD_SKIP_VERIFY`). Insecure: anyone on the path can read and change the
    /// traffic, tokens included. The client logs a warning when it is built.
    pub fn insecure_skip_verify(mut self, skip: bool) -> Self {
        self.tls.insecure_skip_verify = skip;
        self
    }

    /// How long to wait for a TCP connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for the response headers of each attempt (default 30 s);
    /// `None` waits for ever. A response body is never cut by it, so streams (logs
    /// followed, event streams) may last as long as they like.
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The retry policy (see [`RetryPolicy`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How much of an error answer's body goes into [`HttpError::Status`](super::HttpError::Status)
    /// (default 1024 bytes).
    pub fn error_body_limit(mut self, bytes: usize) -> Self {
        self.error_body_limit = bytes;
        self
    }
}

impl fmt::Debug for HttpClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|h| h.name.as_str()).collect();
        f.debug_struct("HttpClientConfig")
            .field("base_url", &self.base_url)
            .field("headers", &header_names)
            .field("user_agent", &self.user_agent)
            .field("system_roots", &self.tls.system_roots)
            .field("ca_bundles", &self.tls.ca_pems.len())
            .field("client_identity", &self.tls.identity.is_some())
            .field("insecure_skip_verify", &self.tls.insecure_skip_verify)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}
