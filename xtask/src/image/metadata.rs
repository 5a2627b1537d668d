//! A provider crate's metadata (`cargo metadata`), for the image's labels and tag.

use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::paths;

/// What the image takes from the crate's `Cargo.toml`.
#[derive(Debug, Clone)]
pub struct CrateInfo {
    /// The package (and binary) name: `vk-mock`.
    pub name: String,
    /// Its own version (providers are versioned independently).
    pub version: String,
    /// `description`.
    pub description: String,
    /// `license` (SPDX).
    pub license: String,
    /// `repository`.
    pub repository: String,
    /// `homepage`.
    pub homepage: String,
}

impl CrateInfo {
    /// The OCI annotation keys (image-spec "annotations.md") used as image labels.
    pub fn labels(&self, created: &str) -> Value {
        let mut labels = json!({
            "org.opencontainers.image.title": self.name,
            "org.opencontainers.image.description": self.description,
            "org.opencontainers.image.version": self.version,
            "org.opencontainers.image.licenses": self.license,
            "org.opencontainers.image.source": self.repository,
            "org.opencontainers.image.url": self.homepage,
            "org.opencontainers.image.created": created,
        });
        if let Some(revision) = super::git(&["rev-parse", "HEAD"]) {
            labels["org.opencontainers.image.revision"] = Value::String(revision);
        }
        labels
    }
}

/// The workspace member `providers/<name>` (or `providers/vk-<name>`).
pub fn provider(name: &str) -> anyhow::Result<CrateInfo> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(paths::workspace_root())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let wanted = if name.starts_with("vk-") {
        name.to_owned()
    } else {
        format!("vk-{name}")
    };
    let providers = paths::workspace_root().join("providers");
    let packages = meta["packages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let package = packages
        .iter()
        .find(|p| {
            p["name"] == wanted.as_str()
                && p["manifest_path"]
                    .as_str()
                    .is_some_and(|m| std::path::Path::new(m).starts_with(&providers))
        })
        .with_context(|| format!("no provider crate {wanted} under providers/"))?;
    let field = |key: &str| package[key].as_str().unwrap_or_default().to_owned();
    Ok(CrateInfo {
        name: field("name"),
        version: field("version"),
        description: field("description"),
        license: field("license"),
        repository: field("repository"),
        homepage: field("homepage"),
    })
}
