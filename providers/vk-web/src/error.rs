//! What can go wrong talking to a bridge, and the [`vk_errdefs`] kind of each failure.

use std::path::PathBuf;

use vk_core::http::HttpError;
use vk_errdefs::ErrorKind;

/// A failed vk-web operation. Variants name the operation; call failures also name the
/// route (method and path, never the query, headers or bodies, so tokens never reach
/// logs or events).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// Neither `endpoint` nor `WEB_ENDPOINT_URL` names the bridge.
    #[error("no bridge endpoint: set `endpoint` in --provider-config or WEB_ENDPOINT_URL")]
    NoEndpoint,
    /// Reading a file named by the configuration failed.
    #[error("reading the {what} file {path}")]
    ReadFile {
        /// Which setting: `bearer token`, `CA`, `client certificate`, `client key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Building the HTTP client failed (bad URL, bad TLS material).
    #[error("building the client for bridge {endpoint}: {source}")]
    BuildClient {
        /// The configured endpoint.
        endpoint: String,
        /// What the HTTP stack said.
        #[source]
        source: Box<HttpError>,
    },
    /// A call to the bridge failed: not reachable, timed out, an error status, or an
    /// answer that is not the JSON expected (the message names the field).
    #[error("{call}: {source}")]
    Call {
        /// The operation, e.g. `create pod default/web`.
        call: String,
        /// The HTTP failure (names method and route).
        #[source]
        source: Box<HttpError>,
    },
    /// A v1 log answer was larger than `max_log_bytes`.
    #[error("{call}: the bridge's log answer to GET {route} exceeds {limit} bytes (max_log_bytes)")]
    LogTooLarge {
        /// The operation.
        call: String,
        /// The route.
        route: &'static str,
        /// The configured limit.
        limit: u64,
    },
    /// The bridge does not offer what was asked (a v1 bridge asked for exec...).
    #[error("{call}: the bridge does not support it ({reason})")]
    Unsupported {
        /// The operation.
        call: String,
        /// Why: which protocol or feature is missing.
        reason: String,
    },
    /// The bridge answers but reports its Ready condition other than True.
    #[error("the bridge reports Ready={status}: {reason}: {message}")]
    NotReady {
        /// The condition's status (`False`, `Unknown`).
        status: String,
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// A v2 message from the bridge made no sense.
    #[error("{call}: bad message from the bridge on {route}: {reason}")]
    BadMessage {
        /// The operation.
        call: String,
        /// The route.
        route: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl WebError {
    /// A failed call: `call` names the operation, `source` the HTTP failure.
    pub fn call(call: impl Into<String>, source: HttpError) -> Self {
        WebError::Call {
            call: call.into(),
            source: Box::new(source),
        }
    }

    /// The [`ErrorKind`]: an HTTP failure's own kind (404 → `NotFound`, 400 →
    /// `InvalidInput`, 409 → `Conflict`, 429/502/503/504 and transport failures →
    /// `Unavailable`...); configuration problems are `InvalidInput`; unsupported
    /// features `NotImplemented`; nonsense from the bridge `Unknown`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            WebError::NoEndpoint | WebError::ReadFile { .. } | WebError::BuildClient { .. } => {
                ErrorKind::InvalidInput
            }
            WebError::Call { source, .. } => source.kind(),
            WebError::LogTooLarge { .. } => ErrorKind::InvalidInput,
            WebError::Unsupported { .. } => ErrorKind::NotImplemented,
            WebError::NotReady { .. } => ErrorKind::Unavailable,
            WebError::BadMessage { .. } => ErrorKind::Unknown,
        }
    }

    /// The HTTP status of a call the bridge answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            WebError::Call { source, .. } => source.status().map(|s| s.as_u16()),
            _ => None,
        }
    }
}

impl From<WebError> for vk_errdefs::Error {
    fn from(err: WebError) -> Self {
        vk_errdefs::Error::wrap(err.kind(), err.to_string(), err)
    }
}
