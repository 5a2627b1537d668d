//! Error kinds shared by the Virtual Kubelet core, the kubelet API and providers.
//!
//! A provider reports failures as an [`Error`] carrying an [`ErrorKind`]; the core and the
//! kubelet API decide what to do from the kind alone:
//!
//! | kind               | HTTP (kubelet API) | controller                               |
//! |--------------------|--------------------|------------------------------------------|
//! | `NotFound`         | 404                | the object is absent (not a failure)     |
//! | `InvalidInput`     | 400                | permanent: event, no fast retry          |
//! | `AlreadyExists`    | 409                | treated as success for creates           |
//! | `Conflict`         | 409                | retried                                  |
//! | `Unavailable`      | 503                | retried with backoff                     |
//! | `NotImplemented`   | 501                | capability missing, not retried          |
//! | `Forbidden`        | 403                | permanent                                |
//! | `Unknown`          | 500                | retried with backoff                     |
//!
//! The `is_*` helpers and [`kind_of`] walk the [`std::error::Error::source`] chain, so a
//! provider may wrap an [`Error`] in its own error type and the kind is still found.
//!
//! ```
//! use vk_errdefs::{Error, ErrorKind};
//!
//! fn lookup(name: &str) -> Result<(), Error> {
//!     Err(Error::not_found(format!("pod {name} is not known to the backend")))
//! }
//!
//! let err = lookup("web").unwrap_err();
//! assert!(vk_errdefs::is_not_found(&err));
//! assert_eq!(err.kind().http_status(), 404);
//! assert!(!ErrorKind::InvalidInput.is_retryable());
//! ```

use std::fmt;

/// What went wrong, in terms the core can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object does not exist (in the provider's backend).
    NotFound,
    /// The request cannot succeed as given (bad spec, bad option); retrying will not help.
    InvalidInput,
    /// The object exists already.
    AlreadyExists,
    /// A concurrent change got in the way; retrying may help.
    Conflict,
    /// The backend is temporarily unreachable or overloaded; retry later.
    Unavailable,
    /// The provider does not support this operation.
    NotImplemented,
    /// The caller is not allowed to do this.
    Forbidden,
    /// Anything else.
    Unknown,
}

impl ErrorKind {
    /// The HTTP status the kubelet API answers with for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::InvalidInput => 400,
            ErrorKind::AlreadyExists | ErrorKind::Conflict => 409,
            ErrorKind::Unavailable => 503,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Forbidden => 403,
            ErrorKind::Unknown => 500,
        }
    }

    /// The kind matching an HTTP status a remote backend answered with, so every provider
    /// maps the statuses of its backend's API the same way:
    ///
    /// | status                        | kind             |
    /// |-------------------------------|------------------|
    /// | 404, 410                      | `NotFound`       |
    /// | 400, 422, any other 4xx       | `InvalidInput`   |
    /// | 409, 412                      | `Conflict`       |
    /// | 401, 403                      | `Forbidden`      |
    /// | 408, 429, 502, 503, 504       | `Unavailable`    |
    /// | 405, 501                      | `NotImplemented` |
    /// | any other 5xx, 1xx–3xx        | `Unknown`        |
    ///
    /// `AlreadyExists` is never derived from a status alone: a 409 may mean either, and
    /// only the body tells (a provider that knows its backend's body may refine it).
    ///
    /// ```
    /// use vk_errdefs::ErrorKind;
    /// assert_eq!(ErrorKind::from_http_status(404), ErrorKind::NotFound);
    /// assert_eq!(ErrorKind::from_http_status(429), ErrorKind::Unavailable);
    /// assert_eq!(ErrorKind::from_http_status(500), ErrorKind::Unknown);
    /// ```
    pub fn from_http_status(status: u16) -> ErrorKind {
        match status {
            404 | 410 => ErrorKind::NotFound,
            409 | 412 => ErrorKind::Conflict,
            401 | 403 => ErrorKind::Forbidden,
            405 | 501 => ErrorKind::NotImplemented,
            408 | 429 | 502..=504 => ErrorKind::Unavailable,
            400..=499 => ErrorKind::InvalidInput,
            _ => ErrorKind::Unknown,
        }
    }

    /// Whether a controller should retry an operation that failed with this kind.
    /// `InvalidInput`, `NotImplemented` and `Forbidden` are permanent; everything else
    /// may succeed later. (The core still retries permanent failures, slowly, because a
    /// provider's backend can be fixed without the pod changing.)
    pub fn is_retryable(self) -> bool {
        !matches!(
            self,
            ErrorKind::InvalidInput | ErrorKind::NotImplemented | ErrorKind::Forbidden
        )
    }

    /// The upstream-style name (`NotFound`, `InvalidInput`...), also used as a metrics
    /// label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "NotFound",
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::AlreadyExists => "AlreadyExists",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::Unavailable => "Unavailable",
            ErrorKind::NotImplemented => "NotImplemented",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::Unknown => "Unknown",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error with a [`ErrorKind`], a message and optionally the error that caused it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Source>,
}

macro_rules! constructor {
    ($(#[$doc:meta])* $name:ident => $kind:ident) => {
        $(#[$doc])*
        pub fn $name(message: impl Into<String>) -> Self {
            Self::new(ErrorKind::$kind, message)
        }
    };
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` with `message`, caused by `source`.
    ///
    /// ```
    /// use vk_errdefs::{Error, ErrorKind};
    /// let io = std::io::Error::other("connection reset");
    /// let err = Error::wrap(ErrorKind::Unavailable, "calling the backend", io);
    /// assert_eq!(err.to_string(), "calling the backend");
    /// assert!(std::error::Error::source(&err).is_some());
    /// ```
    pub fn wrap(kind: ErrorKind, message: impl Into<String>, source: impl Into<Source>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    constructor!(
        /// [`ErrorKind::NotFound`].
        not_found => NotFound
    );
    constructor!(
        /// [`ErrorKind::InvalidInput`].
        invalid_input => InvalidInput
    );
    constructor!(
        /// [`ErrorKind::AlreadyExists`].
        already_exists => AlreadyExists
    );
    constructor!(
        /// [`ErrorKind::Conflict`].
        conflict => Conflict
    );
    constructor!(
        /// [`ErrorKind::Unavailable`].
        unavailable => Unavailable
    );
    constructor!(
        /// [`ErrorKind::NotImplemented`].
        not_implemented => NotImplemented
    );
    constructor!(
        /// [`ErrorKind::Forbidden`].
        forbidden => Forbidden
    );
    constructor!(
        /// [`ErrorKind::Unknown`].
        unknown => Unknown
    );

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message (without the cause).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<std::io::Error> for Error {
    /// Maps I/O errors by their kind (`NotFound` → `NotFound`, `InvalidInput` →
    /// `InvalidInput`, timeouts and refused connections → `Unavailable`...).
    fn from(err: std::io::Error) -> Self {
        let kind = io_kind(&err);
        Self::wrap(kind, err.to_string(), err)
    }
}

fn io_kind(err: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as Io;
    match err.kind() {
        Io::NotFound => ErrorKind::NotFound,
        Io::InvalidInput | Io::InvalidData => ErrorKind::InvalidInput,
        Io::AlreadyExists => ErrorKind::AlreadyExists,
        Io::PermissionDenied => ErrorKind::Forbidden,
        Io::Unsupported => ErrorKind::NotImplemented,
        Io::TimedOut
        | Io::ConnectionRefused
        | Io::ConnectionReset
        | Io::ConnectionAborted
        | Io::NotConnected
        | Io::BrokenPipe
        | Io::WouldBlock
        | Io::Interrupted => ErrorKind::Unavailable,
        _ => ErrorKind::Unknown,
    }
}

/// The kind of the first [`Error`] (or `std::io::Error`) in `err`'s source chain,
/// starting with `err` itself.
pub fn kind_of(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(ours) = e.downcast_ref::<Error>() {
            return Some(ours.kind);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io_kind(io));
        }
        current = e.source();
    }
    None
}

/// The kind of `err`, [`ErrorKind::Unknown`] when nothing in its chain has one.
pub fn kind_or_unknown(err: &(dyn std::error::Error + 'static)) -> ErrorKind {
    kind_of(err).unwrap_or(ErrorKind::Unknown)
}

macro_rules! is_kind {
    ($(#[$doc:meta])* $name:ident => $kind:ident) => {
        $(#[$doc])*
        pub fn $name(err: &(dyn std::error::Error + 'static)) -> bool {
            kind_of(err) == Some(ErrorKind::$kind)
        }
    };
}

is_kind!(
    /// Whether `err` (or what it wraps) is [`ErrorKind::NotFound`].
    is_not_found => NotFound
);
is_kind!(
    /// Whether `err` (or what it wraps) is [`ErrorKind::InvalidInput`].
    is_invalid_input => InvalidInput
);
is_kind!(
    /// Whether `err` (or what it wraps) is [`ErrorKind::AlreadyExists`].
    is_already_exists => AlreadyExists
);
is_kind!(
    /// Whether `err` (or what it wraps) is [`ErrorKind::Conflict`].
    is_conflict => Conflict
);
is_kind!(
    /// Whether `err` (or what it wraps) is [`ErrorKind::Unavailable`].
    is_unavailable => Unavailable
);
is_kind!(
    /// Whether `err` (or what it wraps) is [`ErrorKind::NotImplemented`].
    is_not_implemented => NotImplemented
);
is_kind!(
    /// Whether `err` (or what it wraps) is [`ErrorKind::Forbidden`].
    is_forbidden => Forbidden
);

/// Whether an operation that failed with `err` is worth retrying (see
/// [`ErrorKind::is_retryable`]); errors without a kind are retryable.
pub fn is_retryable(err: &(dyn std::error::Error + 'static)) -> bool {
    kind_or_unknown(err).is_retryable()
}

/// The HTTP status for `err` (500 when it has no kind).
pub fn http_status(err: &(dyn std::error::Error + 'static)) -> u16 {
    kind_or_unknown(err).http_status()
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("provider layer: {0}")]
    struct ProviderError(#[source] Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] ProviderError);

    #[test]
    fn kinds_are_found_through_wrapping() {
        let err = Outer(ProviderError(Error::not_found("gone")));
        assert!(is_not_found(&err));
        assert!(!is_conflict(&err));
        assert_eq!(kind_of(&err), Some(ErrorKind::NotFound));
        assert_eq!(http_status(&err), 404);
    }

    #[test]
    fn io_errors_map_by_kind() {
        let err: Error = std::io::Error::from(std::io::ErrorKind::NotFound).into();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let wrapped = Outer(ProviderError(Error::wrap(
            ErrorKind::Unknown,
            "x",
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        )));
        // The first kinded error in the chain wins.
        assert_eq!(kind_of(&wrapped), Some(ErrorKind::Unknown));
        let bare = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(is_unavailable(&bare));
    }

    #[test]
    fn errors_without_kind_are_unknown_and_retryable() {
        let err = std::fmt::Error;
        assert_eq!(kind_of(&err), None);
        assert_eq!(http_status(&err), 500);
        assert!(is_retryable(&err));
    }

    #[test]
    fn http_statuses_map_to_kinds() {
        let cases = [
            (404, ErrorKind::NotFound),
            (410, ErrorKind::NotFound),
            (400, ErrorKind::InvalidInput),
            (422, ErrorKind::InvalidInput),
            (413, ErrorKind::InvalidInput),
            (409, ErrorKind::Conflict),
            (412, ErrorKind::Conflict),
            (401, ErrorKind::Forbidden),
            (403, ErrorKind::Forbidden),
            (408, ErrorKind::Unavailable),
            (429, ErrorKind::Unavailable),
            (502, ErrorKind::Unavailable),
            (503, ErrorKind::Unavailable),
            (504, ErrorKind::Unavailable),
            (405, ErrorKind::NotImplemented),
            (501, ErrorKind::NotImplemented),
            (500, ErrorKind::Unknown),
            (505, ErrorKind::Unknown),
            (599, ErrorKind::Unknown),
            (200, ErrorKind::Unknown),
            (302, ErrorKind::Unknown),
        ];
        for (status, kind) in cases {
            assert_eq!(ErrorKind::from_http_status(status), kind, "{status}");
        }
    }

    #[test]
    fn mapping_table() {
        let cases = [
            (ErrorKind::NotFound, 404, true),
            (ErrorKind::InvalidInput, 400, false),
            (ErrorKind::AlreadyExists, 409, true),
            (ErrorKind::Conflict, 409, true),
            (ErrorKind::Unavailable, 503, true),
            (ErrorKind::NotImplemented, 501, false),
            (ErrorKind::Forbidden, 403, false),
            (ErrorKind::Unknown, 500, true),
        ];
        for (kind, status, retry) in cases {
            assert_eq!(kind.http_status(), status, "{kind}");
            assert_eq!(kind.is_retryable(), retry, "{kind}");
            assert_eq!(Error::new(kind, "m").kind(), kind);
        }
    }
}
