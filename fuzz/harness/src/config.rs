//! Provider configuration files, loaded by [`vk_cli::load_provider_config`] as a
//! provider binary does at start.

use std::fmt::Debug;
use std::path::Path;

use vk_cli::{ProviderConfig, load_provider_config};
use vk_mock::MockConfig;
use vk_process::ProcessConfig;

/// An environment prefix no variable has, so that only the file counts.
const ENV_PREFIX: &str = "VK_FUZZ_HARNESS_NO_SUCH_PREFIX_";

/// Target `provider_config`: the first byte chooses the format (bit 0: JSON, else
/// TOML) and the configuration type (bit 1: vk-process's [`ProcessConfig`], else
/// vk-mock's [`MockConfig`]); the rest is the file, written to a temporary file with
/// the matching extension and loaded.
///
/// Checks: loading returns a configuration or an error, never panics, and the error
/// prints; a loaded configuration passed its own validation (vk-mock: an error rate
/// between 0 and 1).
pub fn load(data: &[u8]) {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let extension = if selector & 1 == 1 { ".json" } else { ".toml" };
    let file = match tempfile::Builder::new()
        .prefix("vk-fuzz-config-")
        .suffix(extension)
        .tempfile()
    {
        Ok(file) => file,
        Err(err) => panic!("creating a temporary config file: {err}"),
    };
    if let Err(err) = std::fs::write(file.path(), text) {
        panic!("writing {}: {err}", file.path().display());
    }
    if selector & 2 == 0 {
        if let Some(config) = load_as::<MockConfig>(file.path()) {
            assert!(
                (0.0..=1.0).contains(&config.faults.error_rate),
                "{config:?}"
            );
        }
    } else {
        let _ = load_as::<ProcessConfig>(file.path());
    }
}

fn load_as<T: ProviderConfig + Debug>(path: &Path) -> Option<T> {
    match load_provider_config::<T>(Some(path), ENV_PREFIX) {
        Ok(config) => Some(config),
        Err(err) => {
            assert!(!err.to_string().is_empty());
            None
        }
    }
}
