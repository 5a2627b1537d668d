//! # {{crate}}: a Virtual Kubelet provider for {{name}}
//!
//! [`{{Type}}Provider`] implements the provider contract of `vk-core`; the `{{crate}}`
//! binary (`src/main.rs`) runs it through `vk_cli::main`.

mod config;
mod provider;

pub use config::{{Type}}Config;
pub use provider::{{Type}}Provider;
