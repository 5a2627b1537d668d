//! The `vk-mock` binary: a virtual node backed by the in-memory provider.

use std::sync::Arc;

use vk_mock::{MockConfig, MockProvider};

fn main() -> std::process::ExitCode {
    vk_cli::main(
        vk_cli::ProviderInfo {
            name: "mock",
            binary: "vk-mock",
            version: env!("CARGO_PKG_VERSION"),
            about: "A Virtual Kubelet node backed by an in-memory mock provider: pods go \
                    Running at once. For tests, demos and benchmarks.",
        },
        |mut ctx: vk_cli::ProviderContext| async move {
            let config: MockConfig = ctx.load_config()?;
            ctx.template.capacity = config.capacity_for(&ctx.node_name);
            let mut provider = MockProvider::new(ctx.node_name.clone(), config.faults.clone())
                .with_log_lines(config.log_lines.clone());
            if let Some(state) = &config.state_file {
                let file = if ctx.node_count > 1 {
                    state.with_file_name(format!(
                        "{}-{}",
                        ctx.node_name,
                        state
                            .file_name()
                            .and_then(|n| n.to_str())
                            .unwrap_or("state.json")
                    ))
                } else {
                    state.clone()
                };
                provider = provider.with_state_file(file)?;
            }
            provider.set_host_ip(ctx.template.internal_ip.clone());
            let provider = Arc::new(provider);
            provider.start_state_writer(std::time::Duration::from_secs(1));
            Ok(vk_cli::Provider {
                template: ctx.template,
                pods: provider.clone(),
                node: Some(provider),
            })
        },
    )
}
