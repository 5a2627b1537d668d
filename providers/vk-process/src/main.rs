//! The `vk-process` binary: a virtual node whose pods run as local processes.
//!
//! `vk-process __shim SPEC` is the per-container shim (see `vk_process::shim`); every
//! other invocation is the node agent.

use std::sync::Arc;

use vk_process::incluster::ApiServer;
use vk_process::{ProcessConfig, ProcessProvider, SharedProvider};

fn main() -> std::process::ExitCode {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == vk_process::shim::SHIM_ARG) {
        let spec = args.next().unwrap_or_default();
        let code = vk_process::shim::run(std::path::Path::new(&spec));
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    vk_cli::main(
        vk_cli::ProviderInfo {
            name: "process",
            binary: "vk-process",
            version: env!("CARGO_PKG_VERSION"),
            about: "A Virtual Kubelet node that runs each pod's containers as local processes. \
                    It executes whatever is scheduled to it: keep the node's taint.",
        },
        |mut ctx: vk_cli::ProviderContext| async move {
            let mut config: ProcessConfig = ctx.load_config()?;
            if ctx.node_count > 1 {
                config.state_dir = config.state_dir.join(&ctx.node_name);
            }
            ctx.template.capacity = config.capacity();
            let shim = std::env::current_exe()?;
            let host_ip = ctx
                .template
                .internal_ip
                .clone()
                .unwrap_or_else(|| "127.0.0.1".to_owned());
            let api_server = config.api_server.as_deref().unwrap_or(&ctx.api_server);
            let api_server = ApiServer::parse(api_server)
                .ok_or_else(|| format!("api_server {api_server:?} is not https://host:port"))?;
            let provider = Arc::new(
                ProcessProvider::new(
                    ctx.node_name.clone(),
                    config,
                    shim,
                    Arc::new(ctx.resources.clone()),
                    host_ip,
                )
                .with_events(ctx.events.clone())
                .with_tokens(Arc::new(ctx.resources.clone()))
                .with_api_server(api_server),
            );
            let adopted = provider.recover();
            if adopted > 0 {
                tracing::info!(pods = adopted, "adopted pods from the state directory");
            }
            let shared = Arc::new(SharedProvider(provider));
            Ok(vk_cli::Provider {
                template: ctx.template,
                pods: shared.clone(),
                node: Some(shared),
            })
        },
    )
}
