//! Microsoft Entra ID (Azure AD) access tokens for Resource Manager, hand-rolled on
//! [`vk_core::http`].
//!
//! ## Why not the Azure SDK crates
//!
//! `azure_identity`/`azure_core` bring their own HTTP pipeline (`typespec_client_core`
//! over reqwest, with its own TLS configuration, retry policy and logging), and their
//! certificate credential has depended on OpenSSL. The workspace has one outbound stack
//! (hyper + rustls on ring, `vk_core::http`) and must not compile a second TLS stack or
//! crypto provider (`cargo tree -i aws-lc-rs` stays empty). The token calls themselves
//! are four small documented requests, so they are written here:
//!
//! | credential | request (Microsoft identity platform docs) |
//! |---|---|
//! | [`Credential::ClientSecret`] | `POST {authority}/{tenant}/oauth2/v2.0/token`, `grant_type=client_credentials`, `client_secret` ("OAuth 2.0 client credentials flow", first case) |
//! | [`Credential::ClientCertificate`] | the same with `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and an RS256 JWT signed by the certificate's key, `x5t` = base64url SHA-1 thumbprint ("Microsoft identity platform certificate credentials") |
//! | [`Credential::WorkloadIdentity`] | the same with the federated token file's content as `client_assertion` ("Workload identity federation") |
//! | [`Credential::ManagedIdentity`] | `GET {imds}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=...` with `Metadata: true` ("How to use managed identities for Azure resources on an Azure VM to acquire an access token") |
//!
//! RSA signing and SHA-1/SHA-256 come from `ring`, PEM parsing from `x509-parser`,
//! both already in the tree.
//!
//! ## Guarantees
//!
//! * Tokens are cached and refreshed **before** they expire (when less than a fifth of
//!   their lifetime, at most five minutes, is left); concurrent callers share one
//!   refresh. [`TokenProvider::invalidate`] drops a token Resource Manager refused.
//! * Secrets (client secret, assertion, private key, access tokens) never appear in
//!   `Debug` output, logs or error messages: [`Secret`] redacts itself, and the HTTP
//!   client marks the `Authorization` header sensitive.

mod assertion;
mod credential;
mod form;
mod token;

pub use assertion::{CertificateKey, client_assertion};
pub use credential::{Credential, ResolvedAuth};

/// A resolved credential on the public cloud's authority (unit tests).
#[cfg(test)]
pub(crate) fn credential_for_tests(credential: Credential) -> ResolvedAuth {
    ResolvedAuth {
        credential,
        authority_host: crate::config::DEFAULT_AUTHORITY_HOST.to_string(),
    }
}
pub use token::{AccessToken, TokenProvider};

/// A secret string: its `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A failure to obtain an access token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credential is configured and managed identity is off.
    #[error("no Azure credential configured: {0}")]
    NotConfigured(String),
    /// Reading a credential file (certificate, federated token) failed.
    #[error("reading the credential file {path}: {source}")]
    ReadFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file is unusable.
    #[error("loading the client certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Signing the client assertion failed.
    #[error("signing the client assertion: {0}")]
    Sign(String),
    /// The token endpoint refused the request (`error` and `error_description` of its
    /// answer, which never contain the secret sent).
    #[error("requesting a token from {endpoint}: {code}: {description}")]
    Refused {
        /// The endpoint's host and path.
        endpoint: String,
        /// The OAuth error code (`invalid_client`...), or the HTTP status.
        code: String,
        /// The description.
        description: String,
    },
    /// The token request failed (transport, bad answer).
    #[error("requesting a token: {0}")]
    Request(#[from] vk_core::http::HttpError),
}

impl From<AuthError> for vk_errdefs::Error {
    fn from(err: AuthError) -> Self {
        let kind = match &err {
            AuthError::Request(e) => e.kind(),
            AuthError::Refused { .. } => vk_errdefs::ErrorKind::Forbidden,
            _ => vk_errdefs::ErrorKind::InvalidInput,
        };
        vk_errdefs::Error::wrap(kind, err.to_string(), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "hunter2");
    }
}
