//! Mapping kube-rs errors onto [`vk_errdefs`] kinds.

use vk_errdefs::{Error, ErrorKind};

/// The kind of a kube-rs error: API status codes map to their meaning, transport
/// failures are `Unavailable`.
pub fn kind_of_kube(err: &kube::Error) -> ErrorKind {
    match err {
        kube::Error::Api(status) => match status.code {
            404 | 410 => ErrorKind::NotFound,
            409 if status.reason == "AlreadyExists" => ErrorKind::AlreadyExists,
            409 => ErrorKind::Conflict,
            400 | 422 => ErrorKind::InvalidInput,
            401 | 403 => ErrorKind::Forbidden,
            405 | 501 => ErrorKind::NotImplemented,
            429 | 500..=599 => ErrorKind::Unavailable,
            _ => ErrorKind::Unknown,
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Unknown,
    }
}

/// Wraps a kube-rs error from `operation` into an [`Error`] of the matching kind.
pub fn from_kube(operation: &str, err: kube::Error) -> Error {
    let kind = kind_of_kube(&err);
    Error::wrap(kind, format!("{operation}: {err}"), err)
}

/// Whether `err` is an API 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

/// Whether `err` is an API 409 (conflict or already exists).
pub fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409)
}
