//! The `vk-web` binary: a virtual node whose pods live behind an HTTP bridge.

use std::sync::Arc;

use vk_web::{WebConfig, WebProvider};

fn main() -> std::process::ExitCode {
    vk_cli::main(
        vk_cli::ProviderInfo {
            name: "web",
            binary: "vk-web",
            version: env!("CARGO_PKG_VERSION"),
            about: "A Virtual Kubelet node that forwards every provider call to an HTTP \
                    bridge (--provider-config key `endpoint`, or WEB_ENDPOINT_URL).",
        },
        |ctx: vk_cli::ProviderContext| async move {
            let config: WebConfig = ctx.load_config::<WebConfig>()?.with_env_endpoint();
            tracing::info!(config = ?config, "bridge configuration");
            let provider = Arc::new(WebProvider::new(ctx.node_name.clone(), config)?);
            Ok(vk_cli::Provider {
                template: ctx.template,
                pods: provider.clone(),
                node: Some(provider),
            })
        },
    )
}
