//! The client of the remote cluster.

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::KubeProviderConfig;
use crate::error::KubeProviderError;

/// A client for the remote cluster named by `config` (`kubeconfig` and `context`).
pub async fn client(config: &KubeProviderConfig) -> Result<kube::Client, KubeProviderError> {
    let path = config
        .kubeconfig
        .clone()
        .ok_or(KubeProviderError::MissingKubeconfig)?;
    let kubeconfig =
        Kubeconfig::read_from(&path).map_err(|source| KubeProviderError::ReadKubeconfig {
            path: path.clone(),
            source,
        })?;
    let options = KubeConfigOptions {
        context: config.context.clone(),
        ..Default::default()
    };
    let client_config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|source| KubeProviderError::LoadKubeconfig { path, source })?;
    kube::Client::try_from(client_config).map_err(KubeProviderError::CreateClient)
}
