//! The `vk-aci` binary: a virtual node backed by Azure Container Instances.

use std::sync::Arc;

use vk_aci::{AciConfig, setup};

fn main() -> std::process::ExitCode {
    vk_cli::main(
        vk_cli::ProviderInfo {
            name: "aci",
            binary: "vk-aci",
            version: env!("CARGO_PKG_VERSION"),
            about: "A Virtual Kubelet node backed by Azure Container Instances: each pod \
                    runs as a container group.",
        },
        |mut ctx: vk_cli::ProviderContext| async move {
            let config: AciConfig = ctx.load_config()?;
            let arm = setup::arm_client(&config)?;
            setup::fill_template(&mut ctx.template, &config, &arm).await;
            let provider = Arc::new(setup::provider(
                &config,
                arm,
                &ctx.node_name,
                &ctx.settings.cluster_domain,
                Some(ctx.resources.clone()),
                ctx.events.clone(),
            )?);
            Ok(vk_cli::Provider {
                template: ctx.template,
                pods: provider.clone(),
                node: Some(provider),
            })
        },
    )
}
