//! Errors of setting vk-kube up. Pod and node operations report
//! [`vk_errdefs::Error`]s (kinds mapped from the remote API server's answers by
//! [`vk_core::kube_errors::from_kube`], with the failed operation in the message).

use std::path::PathBuf;

/// Why vk-kube could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeProviderError {
    /// The configuration names no remote kubeconfig.
    #[error("no remote kubeconfig configured (set `kubeconfig` in the provider config)")]
    MissingKubeconfig,
    /// The remote kubeconfig could not be read.
    #[error("reading the remote kubeconfig {path}: {source}")]
    ReadKubeconfig {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: kube::config::KubeconfigError,
    },
    /// The remote kubeconfig (or its context) is not usable.
    #[error("loading the remote cluster's client configuration from {path}: {source}")]
    LoadKubeconfig {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: kube::config::KubeconfigError,
    },
    /// The remote client could not be built.
    #[error("creating the remote cluster's client: {0}")]
    CreateClient(#[source] kube::Error),
}
