//! The `{{crate}}` binary: a virtual node backed by the {{name}} provider.

use std::sync::Arc;

use {{crate_ident}}::{ {{Type}}Config, {{Type}}Provider};

fn main() -> std::process::ExitCode {
    vk_cli::main(
        vk_cli::ProviderInfo {
            name: "{{name}}",
            binary: "{{crate}}",
            version: env!("CARGO_PKG_VERSION"),
            about: "A Virtual Kubelet node backed by {{name}}.",
        },
        |ctx: vk_cli::ProviderContext| async move {
            // --provider-config (TOML/JSON), overridden by VK_{{ENV}}_* variables.
            let config: {{Type}}Config = ctx.load_config()?;
            let provider = Arc::new({{Type}}Provider::new(config));
            Ok(vk_cli::Provider {
                template: ctx.template,
                pods: provider.clone(),
                node: Some(provider),
            })
        },
    )
}
