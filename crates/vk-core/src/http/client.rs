//! The client and its requests: building, sending, retrying.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use super::config::HttpClientConfig;
use super::counters::{Counters, HttpCounts};
use super::endpoint::BaseUrl;
use super::error::{Attempts, HttpError, chain_text, find_tls_error};
use super::response::HttpResponse;
use super::retry::{RetryPolicy, is_idempotent, parse_retry_after, status_is_retryable};
use super::tls;

type HyperClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An outbound HTTP client for one backend service; cheap to clone (clones share the
/// connection pool and the counters).
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
/// use vk_core::http::{HttpClient, HttpClientConfig};
///
/// #[derive(Deserialize)]
/// struct Job { #[serde(rename = "ID")] id: String }
/// #[derive(Serialize)]
/// struct Stop { purge: bool }
///
/// # async fn demo() -> Result<(), vk_errdefs::Error> {
/// let client = HttpClient::new(
///     HttpClientConfig::new("https://nomad.example:4646").sensitive_header("X-Nomad-Token", "..."),
/// )?;
/// let jobs: Vec<Job> = client.get_json("/v1/jobs").await?;
/// let one: Job = client
///     .get("/v1/job/web")
///     .query("namespace", "prod")
///     .send()
///     .await?
///     .json()
///     .await?;
/// client.delete("/v1/job/web").await?;
/// # let _ = (jobs, one.id, Stop { purge: true }.purge);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: HyperClient,
    base: BaseUrl,
    default_headers: HeaderMap,
    request_timeout: Option<Duration>,
    connect_timeout: Duration,
    retry: RetryPolicy,
    error_body_limit: usize,
    counters: Counters,
}

impl HttpClient {
    /// Builds a client: parses the base URL and headers, reads the TLS material, and
    /// logs a warning when certificate verification is turned off.
    pub fn new(config: HttpClientConfig) -> Result<Self, HttpError> {
        let base = BaseUrl::parse(&config.base_url)?;
        let build_error = |reason: String| HttpError::BuildClient {
            base_url: base.display(),
            reason,
        };
        let mut default_headers = HeaderMap::new();
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| build_error("the user agent is not a valid header value".into()))?;
        default_headers.insert(USER_AGENT, user_agent);
        for header in &config.headers {
            let name = HeaderName::from_bytes(header.name.as_bytes())
                .map_err(|_| build_error(format!("invalid header name {:?}", header.name)))?;
            // The value is not echoed: it may be a token.
            let mut value = HeaderValue::from_str(&header.value)
                .map_err(|_| build_error(format!("invalid value for header {name}")))?;
            value.set_sensitive(header.sensitive);
            default_headers.insert(name, value);
        }

        let tls = tls::client_config(&config.tls, base.is_https()).map_err(build_error)?;
        if config.tls.insecure_skip_verify && base.is_https() {
            tracing::warn!(
                base_url = %base.display(),
                "TLS certificate verification is disabled for this backend: its identity is not checked"
            );
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                base,
                default_headers,
                request_timeout: config.request_timeout,
                connect_timeout: config.connect_timeout,
                retry: config.retry,
                error_body_limit: config.error_body_limit,
                counters: Counters::default(),
            }),
        })
    }

    /// The base URL (`scheme://host:port/prefix`).
    pub fn base_url(&self) -> String {
        self.inner.base.display()
    }

    /// What this client and its clones have done so far.
    pub fn counts(&self) -> HttpCounts {
        self.inner.counters.snapshot()
    }

    /// A request of `method` for `path`, relative to the base URL's path (with or
    /// without a leading `/`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            method,
            path: self.inner.base.path_of(path),
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            idempotent: None,
            timeout: None,
            error: None,
        }
    }

    /// A `GET` request for `path`.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// A `POST` request for `path`.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// A `PUT` request for `path`.
    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    /// `GET path` and decodes the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, HttpError> {
        self.get(path).accept_json().send().await?.json().await
    }

    /// `POST path` with `body` as JSON and decodes the JSON answer (an empty answer
    /// decodes as `null`, so `T` may be `()` or an `Option`).
    pub async fn post_json<B, T>(&self, path: &str, body: &B) -> Result<T, HttpError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.post(path)
            .accept_json()
            .json(body)
            .send()
            .await?
            .json()
            .await
    }

    /// `PUT path` with `body` as JSON and decodes the JSON answer.
    pub async fn put_json<B, T>(&self, path: &str, body: &B) -> Result<T, HttpError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.put(path)
            .accept_json()
            .json(body)
            .send()
            .await?
            .json()
            .await
    }

    /// Sends `DELETE path` and returns the answer (use
    /// [`request`](Self::request) with [`Method::DELETE`] for a query or headers).
    pub async fn delete(&self, path: &str) -> Result<HttpResponse, HttpError> {
        self.request(Method::DELETE, path).send().await
    }

    #[cfg(test)]
    pub(crate) fn inner_default_headers(&self) -> &HeaderMap {
        &self.inner.default_headers
    }

    pub(crate) fn uri(&self, path: &str, query: &[(String, String)]) -> Result<Uri, HttpError> {
        self.inner.base.uri(path, query)
    }

    /// Sends `request`, retrying per the policy, inside a DEBUG `http.request` span.
    pub(crate) async fn execute(&self, request: Prepared) -> Result<HttpResponse, HttpError> {
        let span = tracing::debug_span!(
            "http.request",
            http.method = %request.method,
            http.path = %request.path,
        );
        self.execute_with_retries(request).instrument(span).await
    }

    async fn execute_with_retries(&self, request: Prepared) -> Result<HttpResponse, HttpError> {
        let inner = &*self.inner;
        let max_attempts = inner.retry.attempts();
        let headers = self.merged_headers(&request.headers);
        let timeout = request.timeout.unwrap_or(inner.request_timeout);
        let mut attempt = 0;
        loop {
            attempt += 1;
            inner.counters.attempt();
            if attempt > 1 {
                inner.counters.retry();
            }
            let mut hyper_request = hyper::Request::new(Full::new(request.body.clone()));
            *hyper_request.method_mut() = request.method.clone();
            *hyper_request.uri_mut() = request.uri.clone();
            *hyper_request.headers_mut() = headers.clone();
            let sent = inner.client.request(hyper_request);
            let outcome = match timeout {
                Some(limit) => tokio::time::timeout(limit, sent).await.ok(),
                None => Some(sent.await),
            };
            let (error, retry_in) = match outcome {
                Some(Ok(response)) => {
                    let status = response.status();
                    inner.counters.response(status);
                    tracing::debug!(attempt, status = status.as_u16(), "response");
                    if !status.is_client_error() && !status.is_server_error() {
                        return Ok(HttpResponse::new(
                            response,
                            request.method.clone(),
                            request.path.clone(),
                        ));
                    }
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    let retryable = status_is_retryable(status, request.idempotent)
                        && retry_after.is_none_or(|after| after <= inner.retry.max_retry_after);
                    if retryable && attempt < max_attempts {
                        // Dropping the answer drops its connection; it is rare enough.
                        drop(response);
                        let wait = retry_after.unwrap_or_else(|| inner.retry.backoff(attempt));
                        self.wait_before_retry(attempt, wait, status.as_str()).await;
                        continue;
                    }
                    return Err(self
                        .status_error(&request, response, retry_after, attempt)
                        .await);
                }
                Some(Err(err)) => {
                    inner.counters.transport_error();
                    let (error, retryable) = transport_error(&request, err, attempt);
                    tracing::debug!(attempt, error = %error, "no response");
                    (error, retryable.then(|| inner.retry.backoff(attempt)))
                }
                None => {
                    inner.counters.transport_error();
                    let limit = timeout.unwrap_or_default();
                    tracing::debug!(attempt, timeout_ms = limit.as_millis(), "timed out");
                    let error = HttpError::Timeout {
                        method: request.method.clone(),
                        path: request.path.clone(),
                        timeout: limit,
                        attempts: Attempts(attempt),
                    };
                    (
                        error,
                        request.idempotent.then(|| inner.retry.backoff(attempt)),
                    )
                }
            };
            match retry_in {
                Some(wait) if attempt < max_attempts => {
                    self.wait_before_retry(attempt, wait, "transport").await;
                }
                _ => return Err(error),
            }
        }
    }

    async fn wait_before_retry(&self, attempt: u32, wait: Duration, reason: &str) {
        tracing::debug!(attempt, wait_ms = wait.as_millis(), reason, "retrying");
        tokio::time::sleep(wait).await;
    }

    /// The client's default headers with the request's own replacing those of the same
    /// name.
    fn merged_headers(&self, own: &HeaderMap) -> HeaderMap {
        let mut headers = self.inner.default_headers.clone();
        for name in own.keys() {
            headers.remove(name);
            for value in own.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        headers
    }

    /// [`HttpError::Status`] for an error answer, with the start of its body (read
    /// within the request timeout).
    async fn status_error(
        &self,
        request: &Prepared,
        response: hyper::Response<Incoming>,
        retry_after: Option<Duration>,
        attempt: u32,
    ) -> HttpError {
        let status = response.status();
        let body = excerpt(
            response.into_body(),
            self.inner.error_body_limit,
            self.inner.request_timeout,
        )
        .await;
        HttpError::Status {
            method: request.method.clone(),
            path: request.path.clone(),
            status,
            body,
            retry_after,
            attempts: Attempts(attempt),
        }
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let header_names: Vec<&str> = inner.default_headers.keys().map(|n| n.as_str()).collect();
        f.debug_struct("HttpClient")
            .field("base_url", &inner.base.display())
            .field("headers", &header_names)
            .field("connect_timeout", &inner.connect_timeout)
            .field("request_timeout", &inner.request_timeout)
            .field("retry", &inner.retry)
            .finish_non_exhaustive()
    }
}

/// A request being built; nothing is sent until [`send`](Self::send) (or
/// [`websocket`](Self::websocket)). Problems found while building (a bad header, a
/// body that does not serialize) are reported by `send`.
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    client: HttpClient,
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
    idempotent: Option<bool>,
    timeout: Option<Option<Duration>>,
    error: Option<HttpError>,
}

impl RequestBuilder {
    /// Appends the query parameter `name=value` (both percent-encoded).
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Sets a header, replacing the client's default of the same name.
    pub fn header(self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.set_header(name.as_ref(), value.as_ref(), false)
    }

    /// Sets a header whose value is a secret: never shown in `Debug` output or errors.
    pub fn sensitive_header(self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.set_header(name.as_ref(), value.as_ref(), true)
    }

    fn set_header(mut self, name: &str, value: &str, sensitive: bool) -> Self {
        let name = match HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) => name,
            Err(_) => {
                let reason = format!("invalid header name {name:?}");
                return self.fail(reason);
            }
        };
        match HeaderValue::from_str(value) {
            Ok(mut value) => {
                value.set_sensitive(sensitive);
                self.headers.insert(name, value);
                self
            }
            Err(_) => self.fail(format!("invalid value for header {name}")),
        }
    }

    fn fail(mut self, reason: String) -> Self {
        self.error.get_or_insert(HttpError::InvalidRequest {
            method: self.method.clone(),
            path: self.path.clone(),
            reason,
        });
        self
    }

    /// Sends `body` serialized as JSON, with `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Bytes::from(bytes);
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Err(e) => {
                self.error.get_or_insert(HttpError::EncodeBody {
                    method: self.method.clone(),
                    path: self.path.clone(),
                    reason: e.to_string(),
                });
            }
        }
        self
    }

    /// Sends `body` as is (set `Content-Type` with [`header`](Self::header)). Bodies are
    /// [`Bytes`] so a retry can send them again.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Marks the request as safe to repeat (or not), overriding what its method says:
    /// an idempotent request is also retried after timeouts, transport errors and
    /// `502`/`503`/`504` answers (see [`RetryPolicy`]).
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = Some(idempotent);
        self
    }

    /// Overrides the client's request timeout for this request (`None`: wait for ever),
    /// e.g. for a blocking query that holds its answer for minutes.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn accept_json(mut self) -> Self {
        self.headers
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        self
    }

    /// Sends the request, retrying per the client's [`RetryPolicy`]. Answers with a
    /// status of 400 or above are [`HttpError::Status`]; others (1xx–3xx, redirects are
    /// not followed) are returned.
    pub async fn send(self) -> Result<HttpResponse, HttpError> {
        let client = self.client.clone();
        let request = self.prepare()?;
        client.execute(request).await
    }

    pub(crate) fn prepare(self) -> Result<Prepared, HttpError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let uri = self.client.uri(&self.path, &self.query)?;
        Ok(Prepared {
            idempotent: self
                .idempotent
                .unwrap_or_else(|| is_idempotent(&self.method)),
            method: self.method,
            uri,
            path: self.path,
            headers: self.headers,
            body: self.body,
            timeout: self.timeout,
        })
    }

    pub(crate) fn set_method(&mut self, method: Method) {
        self.method = method;
    }

    pub(crate) fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.insert(name, value);
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn client(&self) -> &HttpClient {
        &self.client
    }
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.keys().map(|n| n.as_str()).collect();
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &header_names)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// A request ready to be sent (and sent again).
pub(crate) struct Prepared {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) idempotent: bool,
    pub(crate) timeout: Option<Option<Duration>>,
}

/// The error for an attempt that got no answer, and whether it may be retried.
fn transport_error(
    request: &Prepared,
    err: hyper_util::client::legacy::Error,
    attempt: u32,
) -> (HttpError, bool) {
    let method = request.method.clone();
    let path = request.path.clone();
    if let Some(tls) = find_tls_error(&err) {
        let reason = tls.to_string();
        return (
            HttpError::Tls {
                method,
                path,
                reason,
            },
            false,
        );
    }
    let reason = std::error::Error::source(&err).map_or_else(|| err.to_string(), chain_text);
    let attempts = Attempts(attempt);
    if err.is_connect() {
        // Nothing was sent: safe to retry whatever the method.
        (
            HttpError::Connect {
                method,
                path,
                attempts,
                reason,
            },
            true,
        )
    } else {
        let retryable = request.idempotent;
        (
            HttpError::Send {
                method,
                path,
                attempts,
                reason,
            },
            retryable,
        )
    }
}

/// The first `limit` bytes of `body` as (lossy) text, `…` marking a cut; whatever
/// arrived within `timeout`.
async fn excerpt(mut body: Incoming, limit: usize, timeout: Option<Duration>) -> String {
    let mut buf = Vec::new();
    let read = async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
                if buf.len() > limit {
                    break;
                }
            }
        }
    };
    match timeout {
        Some(limit) => {
            let _ = tokio::time::timeout(limit, read).await;
        }
        None => read.await,
    }
    let cut = buf.len() > limit;
    buf.truncate(limit);
    let mut text = String::from_utf8_lossy(&buf).trim().to_string();
    if cut {
        // A cut inside a multi-byte character shows as U+FFFD; that is fine here.
        text.push('…');
    }
    text
}
