//! Errors of the kubelet API and the HTTP answers they become.

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
    /// Plain text, as the kubelet answers errors.
    fn into_response(self) -> Response {
        let status = self.status();
        (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            format!("{self}\n"),
        )
            .into_response()
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
}
