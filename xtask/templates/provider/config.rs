//! The provider's configuration: `--provider-config` (TOML or JSON) with
//! `VK_{{ENV}}_*` environment overrides (`__` for nesting).

use serde::Deserialize;

/// What `{{crate}}` needs to reach its backend.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct {{Type}}Config {
    /// The backend's address (example setting: replace with yours).
    pub endpoint: String,
}

impl vk_cli::ProviderConfig for {{Type}}Config {}
