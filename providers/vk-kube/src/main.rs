//! The `vk-kube` binary: a virtual node whose pods run in another Kubernetes cluster.

use std::sync::Arc;
use std::time::Duration;

use vk_kube::{KubeProvider, KubeProviderConfig, capacity, naming};

fn main() -> std::process::ExitCode {
    vk_cli::main(
        vk_cli::ProviderInfo {
            name: "kube",
            binary: "vk-kube",
            version: env!("CARGO_PKG_VERSION"),
            about: "A Virtual Kubelet node whose pods run in another Kubernetes cluster \
                    (the remote kubeconfig is in the provider config).",
        },
        |mut ctx: vk_cli::ProviderContext| async move {
            let config: KubeProviderConfig = ctx.load_config()?;
            let remote = vk_kube::remote::client(&config).await?;
            ctx.template.labels.insert(
                naming::CLUSTER_LABEL.to_owned(),
                config.cluster_name.clone(),
            );
            match tokio::time::timeout(Duration::from_secs(10), capacity::read(&remote)).await {
                Ok(Ok(c)) => {
                    ctx.template.capacity = c.capacity;
                    ctx.template.allocatable = c.allocatable;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "reading the remote capacity failed"),
                Err(_) => tracing::warn!("the remote cluster did not answer within 10s"),
            }
            let provider = Arc::new(KubeProvider::start(
                ctx.node_name.clone(),
                config,
                remote,
                ctx.resources.clone(),
            ));
            Ok(vk_cli::Provider {
                template: ctx.template,
                pods: provider.clone(),
                node: Some(provider),
            })
        },
    )
}
