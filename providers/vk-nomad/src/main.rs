//! The `vk-nomad` binary: a virtual node whose pods run as Nomad jobs.

use std::sync::Arc;
use std::time::Duration;

use vk_nomad::{NomadConfig, NomadProvider, provider};

fn main() -> std::process::ExitCode {
    vk_cli::main(
        vk_cli::ProviderInfo {
            name: "nomad",
            binary: "vk-nomad",
            version: env!("CARGO_PKG_VERSION"),
            about: "A Virtual Kubelet node whose pods run as HashiCorp Nomad jobs \
                    (NOMAD_ADDR, NOMAD_TOKEN, NOMAD_NAMESPACE... as the nomad CLI).",
        },
        |mut ctx: vk_cli::ProviderContext| async move {
            let config: NomadConfig = ctx.load_config()?;
            let host_ip = ctx.template.internal_ip.clone();
            let provider = NomadProvider::new(ctx.node_name.clone(), config.clone())?
                .with_events(ctx.events.clone())
                .with_host_ip(host_ip);
            let connection = config.connection()?;
            ctx.template.labels.insert(
                "nomad.virtual-kubelet.io/namespace".to_owned(),
                connection.namespace.clone(),
            );
            if let Some(region) = &connection.region {
                ctx.template
                    .labels
                    .insert("nomad.virtual-kubelet.io/region".to_owned(), region.clone());
            }
            if let [dc] = config.datacenters.as_slice()
                && dc != "*"
            {
                ctx.template
                    .labels
                    .insert("nomad.virtual-kubelet.io/datacenter".to_owned(), dc.clone());
            }
            // Capacity and adoption need Nomad; a Nomad that is down at start delays
            // neither the node (NotReady until ping succeeds) nor adoption (the watch
            // loop recovers the jobs once Nomad answers).
            let client = provider.client().clone();
            match tokio::time::timeout(
                Duration::from_secs(20),
                provider::cluster_capacity(&client, &config),
            )
            .await
            {
                Ok(Ok(capacity)) => ctx.template.capacity = capacity,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reading the Nomad cluster's capacity; using the configured one")
                }
                Err(_) => tracing::warn!(
                    "reading the Nomad cluster's capacity timed out; using the configured one"
                ),
            }
            if ctx.template.capacity.is_empty() || !config.capacity.is_empty() {
                ctx.template.capacity.extend(config.capacity.clone());
            }
            match tokio::time::timeout(Duration::from_secs(20), provider.recover()).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(pods = n, "adopted this node's Nomad jobs"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "listing this node's Nomad jobs; retried by the watch loop")
                }
                Err(_) => tracing::warn!(
                    "listing this node's Nomad jobs timed out; retried by the watch loop"
                ),
            }
            provider.refresh_single_address().await;
            let provider = Arc::new(provider);
            vk_nomad::start_watch(&provider);
            Ok(vk_cli::Provider {
                template: ctx.template,
                pods: provider.clone(),
                node: Some(provider),
            })
        },
    )
}
