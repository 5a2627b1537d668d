//! [`ArmError`]: a failed Resource Manager operation.

use vk_core::http::HttpError;
use vk_errdefs::ErrorKind;

use super::client::cloud_error;
use crate::auth::AuthError;

/// A failed Resource Manager operation; every variant names the operation.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// No token could be obtained.
    #[error("{operation}: authenticating: {source}")]
    Auth {
        /// The operation.
        operation: &'static str,
        /// Why.
        source: Box<AuthError>,
    },
    /// ARM answered with an error body (`CloudError`).
    #[error("{operation}: {status} {code}: {message}")]
    Cloud {
        /// The operation.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// The ARM error code (`ResourceNotFound`, `ContainerGroupQuotaReached`...).
        code: String,
        /// The message.
        message: String,
        /// The transport error it came from.
        source: Box<HttpError>,
    },
    /// The request failed without an ARM error body (transport, decoding...).
    #[error("{operation}: {source}")]
    Http {
        /// The operation.
        operation: &'static str,
        /// Why.
        source: Box<HttpError>,
    },
    /// A long-running operation ended in failure.
    #[error("{operation}: the operation failed: {code}: {message}")]
    OperationFailed {
        /// The operation.
        operation: &'static str,
        /// The error code of the operation status.
        code: String,
        /// Its message.
        message: String,
    },
    /// ARM sent an operation or next-page URL that is not an `http(s)` URL with a path.
    #[error("{operation}: cannot follow {url}: not an http(s) URL with a path")]
    ForeignUrl {
        /// The operation.
        operation: &'static str,
        /// The URL without its query.
        url: String,
    },
}

impl ArmError {
    pub(crate) fn from_http(operation: &'static str, source: HttpError) -> Self {
        if let HttpError::Status { status, body, .. } = &source
            && let Some(cloud) = cloud_error(body)
        {
            return ArmError::Cloud {
                operation,
                status: status.as_u16(),
                code: cloud.error.code,
                message: cloud.error.message,
                source: Box::new(source),
            };
        }
        ArmError::Http {
            operation,
            source: Box::new(source),
        }
    }

    /// The ARM error code, when ARM gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ArmError::Cloud { code, .. } | ArmError::OperationFailed { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            ArmError::Cloud { status, .. } => *status == 404,
            ArmError::Http { source, .. } => source.status().is_some_and(|s| s.as_u16() == 404),
            _ => false,
        }
    }

    /// Whether a regional quota (cores, groups, GPUs) refused the request.
    pub fn is_quota(&self) -> bool {
        self.code().is_some_and(|c| {
            let c = c.to_ascii_lowercase();
            c.contains("quota")
                || c == "insufficientcapacity"
                || c == "resourcerequestsexceedsquota"
        })
    }

    /// The `vk_errdefs` kind: quotas are `Unavailable` (they may free up), others by
    /// status.
    pub fn kind(&self) -> ErrorKind {
        if self.is_quota() {
            return ErrorKind::Unavailable;
        }
        match self {
            ArmError::Auth { source, .. } => match source.as_ref() {
                AuthError::Request(e) => e.kind(),
                AuthError::Refused { .. } => ErrorKind::Forbidden,
                _ => ErrorKind::InvalidInput,
            },
            ArmError::Cloud { status, .. } => ErrorKind::from_http_status(*status),
            ArmError::Http { source, .. } => source.kind(),
            ArmError::OperationFailed { .. } => ErrorKind::Unknown,
            ArmError::ForeignUrl { .. } => ErrorKind::Unknown,
        }
    }
}

impl From<ArmError> for vk_errdefs::Error {
    fn from(err: ArmError) -> Self {
        let message = if err.is_quota() {
            format!("Azure quota exceeded: {err}")
        } else {
            err.to_string()
        };
        vk_errdefs::Error::wrap(err.kind(), message, err)
    }
}
