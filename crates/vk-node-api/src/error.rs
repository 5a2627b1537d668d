//! Errors of the kubelet API and the HTTP answers they become.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failed kubelet API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter or path element is invalid (400).
    #[error("{0}")]
    BadRequest(String),
    /// The pod or container does not exist on this node (404).
    #[error("{0}")]
    NotFound(String),
    /// The provider does not offer this capability (501).
    #[error("{0}")]
    NotImplemented(String),
    /// No valid credentials (401).
    #[error("Unauthorized")]
    Unauthorized,
    /// Authenticated but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// The provider failed; the status comes from its error kind.
    #[error("{message}")]
    Provider {
        /// HTTP status from the vk-errdefs kind.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// Something on our side failed (500).
    #[error("{0}")]
    Internal(String),
    /// The server is limiting work of this kind (429, with `Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        /// What is limited.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        let code = match self {
            ApiError::BadRequest(_) => 400,
            ApiError::NotFound(_) => 404,
            ApiError::NotImplemented(_) => 501,
            ApiError::Unauthorized => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::Provider { status, .. } => *status,
            ApiError::Internal(_) => 500,
            ApiError::TooManyRequests { .. } => 429,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<vk_errdefs::Error> for ApiError {
    /// NotFound → 404, InvalidInput → 400, NotImplemented → 501, others by kind.
    fn from(e: vk_errdefs::Error) -> Self {
        ApiError::Provider {
            status: e.kind().http_status(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    /// Plain text, as the kubelet answers errors; 429 says when to retry (whole
    /// seconds, at least one).
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            format!("{self}\n"),
        )
            .into_response();
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            let seconds = retry_after
                .as_secs()
                .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
                .max(1);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_errdefs_mapping() {
        assert_eq!(
            ApiError::from(vk_errdefs::Error::not_found("x")).status(),
            404
        );
        assert_eq!(
            ApiError::from(vk_errdefs::Error::invalid_input("x")).status(),
            400
        );
        assert_eq!(
            ApiError::from(vk_errdefs::Error::not_implemented("x")).status(),
            501
        );
        assert_eq!(
            ApiError::from(vk_errdefs::Error::unavailable("x")).status(),
            503
        );
        assert_eq!(ApiError::Unauthorized.status(), 401);
        assert_eq!(ApiError::Forbidden("no".into()).status(), 403);
    }

    #[test]
    fn too_many_requests_says_when_to_retry_in_whole_seconds() {
        let retry = |after: Duration| {
            let r = ApiError::TooManyRequests {
                message: "slow down".into(),
                retry_after: after,
            }
            .into_response();
            assert_eq!(r.status(), 429);
            r.headers()[axum::http::header::RETRY_AFTER]
                .to_str()
                .expect("ascii")
                .to_owned()
        };
        assert_eq!(retry(Duration::from_millis(100)), "1");
        assert_eq!(retry(Duration::ZERO), "1");
        assert_eq!(retry(Duration::from_millis(2500)), "3");
        assert_eq!(retry(Duration::MAX), u64::MAX.to_string());
    }
}
