//! What can go wrong in vk-nomad, each variant naming the failed operation.

use vk_core::http::HttpError;
use vk_errdefs::ErrorKind;

/// A vk-nomad failure. Converts into a [`vk_errdefs::Error`] with `?`: configuration
/// and mapping problems are `InvalidInput`, Nomad's answers keep the kind of their
/// HTTP status (403 → `Forbidden`, 404 → `NotFound`, 429/5xx → `Unavailable`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NomadError {
    /// A configuration value (file key or `NOMAD_*` variable) is unusable.
    #[error("configuration {key}: {reason}")]
    Config {
        /// The key or variable.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading a TLS file named by the configuration failed.
    #[error("reading {what} {path}: {source}")]
    ReadFile {
        /// `CA certificate`, `client certificate`, `client key`.
        what: &'static str,
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Building the HTTP client failed.
    #[error("building the Nomad client: {0}")]
    Client(#[source] Box<HttpError>),
    /// Nomad refused the token (403): missing, unknown, or lacking a policy.
    #[error(
        "{operation}: Nomad answered 403 Permission denied; check NOMAD_TOKEN (or the \
         `token` setting) and that its ACL policy grants {capability} in namespace {namespace}"
    )]
    PermissionDenied {
        /// What was being done.
        operation: &'static str,
        /// The ACL capability the endpoint needs.
        capability: &'static str,
        /// The namespace.
        namespace: String,
        /// The HTTP error.
        #[source]
        source: Box<HttpError>,
    },
    /// A Nomad API call failed.
    #[error("{operation}: {source}")]
    Api {
        /// What was being done (`registering job web`...).
        operation: &'static str,
        /// The HTTP error.
        #[source]
        source: Box<HttpError>,
    },
    /// A pod cannot be expressed as a Nomad job.
    #[error("pod {pod} cannot run on Nomad: {reason}")]
    Mapping {
        /// `namespace/name`.
        pod: String,
        /// What cannot be mapped.
        reason: String,
    },
}

impl NomadError {
    /// The `vk_errdefs` kind of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            NomadError::Config { .. }
            | NomadError::ReadFile { .. }
            | NomadError::Client(_)
            | NomadError::Mapping { .. } => ErrorKind::InvalidInput,
            NomadError::PermissionDenied { .. } => ErrorKind::Forbidden,
            NomadError::Api { source, .. } => source.kind(),
        }
    }

    /// Whether Nomad said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, NomadError::Api { source, .. } if source.status().is_some_and(|s| s.as_u16() == 404))
    }
}

impl From<NomadError> for vk_errdefs::Error {
    fn from(err: NomadError) -> Self {
        vk_errdefs::Error::wrap(err.kind(), err.to_string(), err)
    }
}
