//! What went wrong with an outbound request, and its [`vk_errdefs`] kind.

use std::fmt;
use std::time::Duration;

use http::{Method, StatusCode};
use vk_errdefs::ErrorKind;

/// A failed outbound HTTP operation. Each variant names the operation that failed and,
/// for requests, the method and URL path (never the query, headers or request body, so
/// tokens never end up in logs or events).
///
/// Convert it with `?` into a [`vk_errdefs::Error`]; the kind follows
/// [`HttpError::kind`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Building the client failed: bad TLS material, no trusted roots...
    #[error("building the HTTP client for {base_url}: {reason}")]
    BuildClient {
        /// The base URL of the client being built.
        base_url: String,
        /// What was wrong.
        reason: String,
    },
    /// The base URL or a request path does not make a valid URL.
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl {
        /// The URL (base URL, or base URL and path, without the query).
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The request could not be built: a bad header name or value.
    #[error("building the request {method} {path}: {reason}")]
    InvalidRequest {
        /// The request method.
        method: Method,
        /// The URL path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// Serializing the request's JSON body failed.
    #[error("encoding the JSON body of {method} {path}: {reason}")]
    EncodeBody {
        /// The request method.
        method: Method,
        /// The URL path.
        path: String,
        /// The serializer's message.
        reason: String,
    },
    /// No connection could be made (refused, unreachable, DNS, connect timeout).
    #[error("connecting for {method} {path} ({attempts}): {reason}")]
    Connect {
        /// The request method.
        method: Method,
        /// The URL path.
        path: String,
        /// Attempts made.
        attempts: Attempts,
        /// The underlying error chain.
        reason: String,
    },
    /// The TLS handshake failed: untrusted or invalid certificate, client certificate
    /// rejected, no common protocol... Not retried: it will fail the same way.
    #[error("TLS handshake for {method} {path}: {reason}")]
    Tls {
        /// The request method.
        method: Method,
        /// The URL path.
        path: String,
        /// The TLS error (rustls names the problem, e.g. `UnknownIssuer`).
        reason: String,
    },
    /// No response headers arrived within the request timeout.
    #[error("{method} {path}: no response within {timeout:?} ({attempts})")]
    Timeout {
        /// The request method.
        method: Method,
        /// The URL path.
        path: String,
        /// The request timeout.
        timeout: Duration,
        /// Attempts made.
        attempts: Attempts,
    },
    /// The connection failed while sending the request or waiting for the answer.
    #[error("sending {method} {path} ({attempts}): {reason}")]
    Send {
        /// The request method.
        method: Method,
        /// The URL path.
        path: String,
        /// Attempts made.
        attempts: Attempts,
        /// The underlying error chain.
        reason: String,
    },
    /// The server answered with an error status (400 or above).
    #[error("{method} {path} answered {status}{}{}: {body}", RetryAfter(*retry_after), attempts.after_retries())]
    Status {
        /// The request method.
        method: Method,
        /// The URL path.
        path: String,
        /// The status of the last answer.
        status: StatusCode,
        /// The start of the answer's body (lossy UTF-8, truncated), for the message.
        body: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// Attempts made.
        attempts: Attempts,
    },
    /// Reading the response body failed (connection reset mid-body, body timeout).
    #[error("reading the body of {method} {path}: {reason}")]
    ReadBody {
        /// The request method.
        method: Method,
        /// The URL path.
        path: String,
        /// The underlying error chain.
        reason: String,
    },
    /// The response body is not the JSON expected.
    #[error("decoding the JSON body of {method} {path}: at `{field}`: {reason}")]
    Decode {
        /// The request method.
        method: Method,
        /// The URL path.
        path: String,
        /// Where in the document decoding failed, e.g. `items[0].name` (`.` is the
        /// document itself).
        field: String,
        /// The decoder's message, with line and column.
        reason: String,
    },
    /// The server did not accept the WebSocket upgrade properly (answered without
    /// `101 Switching Protocols`, wrong `Sec-WebSocket-Accept`, unoffered subprotocol).
    /// A refusal with an error status is [`HttpError::Status`].
    #[error("WebSocket handshake for {path}: {reason}")]
    WebSocketHandshake {
        /// The URL path.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

impl HttpError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `Retry-After` on an error answer.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The [`ErrorKind`]: statuses map through [`ErrorKind::from_http_status`];
    /// connect, TLS, timeout, send and body read failures are `Unavailable`; a bad URL,
    /// request or request body is `InvalidInput`; undecodable answers and failed
    /// WebSocket handshakes are `Unknown`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            HttpError::Status { status, .. } => ErrorKind::from_http_status(status.as_u16()),
            HttpError::Connect { .. }
            | HttpError::Tls { .. }
            | HttpError::Timeout { .. }
            | HttpError::Send { .. }
            | HttpError::ReadBody { .. } => ErrorKind::Unavailable,
            HttpError::BuildClient { .. }
            | HttpError::InvalidUrl { .. }
            | HttpError::InvalidRequest { .. }
            | HttpError::EncodeBody { .. } => ErrorKind::InvalidInput,
            HttpError::Decode { .. } | HttpError::WebSocketHandshake { .. } => ErrorKind::Unknown,
        }
    }
}

impl From<HttpError> for vk_errdefs::Error {
    fn from(err: HttpError) -> Self {
        vk_errdefs::Error::wrap(err.kind(), err.to_string(), err)
    }
}

/// How many attempts a request took, shown as "1 attempt" / "3 attempts".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts(pub u32);

impl Attempts {
    fn after_retries(self) -> AfterRetries {
        AfterRetries(self.0)
    }
}

impl fmt::Display for Attempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 attempt"),
            n => write!(f, "{n} attempts"),
        }
    }
}

/// " (after 3 attempts)" when the request was retried, nothing otherwise.
struct AfterRetries(u32);

impl fmt::Display for AfterRetries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > 1 {
            write!(f, " (after {} attempts)", self.0)?;
        }
        Ok(())
    }
}

/// ", retry after 120s" when the server said so.
struct RetryAfter(Option<Duration>);

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(after) = self.0 {
            write!(f, ", retry after {after:?}")?;
        }
        Ok(())
    }
}

/// The messages of `err` and its sources, joined with ": ", skipping repeats.
pub(crate) fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// The rustls error somewhere in `err`'s chain (also inside `std::io::Error`s, whose
/// `source` skips the error they wrap).
pub(crate) fn find_tls_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        // An io::Error may wrap another io::Error wrapping the rustls error.
        let mut wrapped = Some(e);
        while let Some(w) = wrapped {
            if let Some(tls) = w.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
            wrapped = w
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|inner| inner as &(dyn std::error::Error + 'static));
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<Duration>, attempts: u32) -> HttpError {
        HttpError::Status {
            method: Method::GET,
            path: "/v1/jobs".into(),
            status: StatusCode::from_u16(code).expect("status"),
            body: "slow down".into(),
            retry_after,
            attempts: Attempts(attempts),
        }
    }

    #[test]
    fn status_errors_map_through_errdefs_and_read_well() {
        let err = status(429, Some(Duration::from_secs(120)), 1);
        assert_eq!(
            err.to_string(),
            "GET /v1/jobs answered 429 Too Many Requests, retry after 120s: slow down"
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
        let converted: vk_errdefs::Error = err.into();
        assert_eq!(converted.kind(), ErrorKind::Unavailable);

        let err = status(503, None, 3);
        assert_eq!(
            err.to_string(),
            "GET /v1/jobs answered 503 Service Unavailable (after 3 attempts): slow down"
        );
        for (code, kind) in [
            (404, ErrorKind::NotFound),
            (400, ErrorKind::InvalidInput),
            (422, ErrorKind::InvalidInput),
            (409, ErrorKind::Conflict),
            (401, ErrorKind::Forbidden),
            (403, ErrorKind::Forbidden),
            (502, ErrorKind::Unavailable),
            (504, ErrorKind::Unavailable),
            (501, ErrorKind::NotImplemented),
            (500, ErrorKind::Unknown),
        ] {
            assert_eq!(vk_errdefs::Error::from(status(code, None, 1)).kind(), kind);
        }
    }

    #[test]
    fn transport_and_decode_errors_have_kinds() {
        let connect = HttpError::Connect {
            method: Method::POST,
            path: "/x".into(),
            attempts: Attempts(3),
            reason: "tcp connect error: Connection refused".into(),
        };
        assert_eq!(connect.kind(), ErrorKind::Unavailable);
        assert_eq!(
            connect.to_string(),
            "connecting for POST /x (3 attempts): tcp connect error: Connection refused"
        );
        let decode = HttpError::Decode {
            method: Method::GET,
            path: "/x".into(),
            field: "items[0].name".into(),
            reason: "invalid type".into(),
        };
        assert_eq!(decode.kind(), ErrorKind::Unknown);
        let timeout = HttpError::Timeout {
            method: Method::GET,
            path: "/x".into(),
            timeout: Duration::from_millis(300),
            attempts: Attempts(1),
        };
        assert!(vk_errdefs::is_unavailable(&vk_errdefs::Error::from(
            timeout
        )));
    }

    #[test]
    fn chains_are_joined_without_repeats() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        #[derive(Debug, thiserror::Error)]
        #[error("tcp connect error")]
        struct Outer(#[source] std::io::Error);
        assert_eq!(chain_text(&Outer(inner)), "tcp connect error: refused");

        let tls = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let outer = Outer(std::io::Error::other(tls));
        assert!(matches!(
            find_tls_error(&outer),
            Some(rustls::Error::InvalidCertificate(_))
        ));
    }
}
