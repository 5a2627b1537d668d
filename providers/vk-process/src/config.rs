//! vk-process's configuration (`--provider-config`, TOML or JSON by extension,
//! overridden by `VK_PROCESS_*` variables; loaded by [`vk_cli::load_provider_config`]).
//!
//! ```toml
//! state_dir = "/var/lib/vk-process"
//! volume_refresh_seconds = 15
//! api_server = "https://10.1.2.3:6443"   # default: the API server the node uses
//!
//! [images]
//! "python:3" = ["python3"]
//! "busybox" = []            # no prefix: the pod's command runs as given
//!
//! [capacity]                # defaults: the host's CPUs and memory, 110 pods
//! cpu = "4"
//! memory = "8Gi"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use vk_cli::ProviderConfig;

/// The whole configuration; every field has a default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// Where pods' working directories, logs, volumes and run records live.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Image name → command prefix. A container without `command` runs
    /// `prefix + args`; a container with `command` runs it as given.
    #[serde(default)]
    pub images: BTreeMap<String, Vec<String>>,
    /// Capacity overrides (`cpu`, `memory`, `pods`, ...); missing keys default to the
    /// host's CPUs and memory and 110 pods.
    #[serde(default)]
    pub capacity: BTreeMap<String, String>,
    /// How often configMap, secret, downwardAPI and projected volumes are refreshed.
    #[serde(default = "default_refresh")]
    pub volume_refresh_seconds: u64,
    /// A delegated cgroup v2 directory under which per-container cgroups are created to
    /// enforce CPU and memory limits. Unset (the default): limits are not enforced.
    #[serde(default)]
    pub cgroup_parent: Option<PathBuf>,
    /// The API server address pods get as `KUBERNETES_SERVICE_HOST`/`PORT`
    /// (`https://host:port`, `host:port`). Unset (the default): the API server this
    /// node itself uses. See [`crate::incluster`].
    #[serde(default)]
    pub api_server: Option<String>,
}

fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("vk-process")
}

fn default_refresh() -> u64 {
    15
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            images: BTreeMap::new(),
            capacity: BTreeMap::new(),
            volume_refresh_seconds: default_refresh(),
            cgroup_parent: None,
            api_server: None,
        }
    }
}

impl ProcessConfig {
    /// How often projected sources are refreshed (at least one second).
    pub fn volume_refresh(&self) -> Duration {
        Duration::from_secs(self.volume_refresh_seconds.max(1))
    }

    /// The node capacity: host CPUs and memory (from /proc) and 110 pods, overridden by
    /// the `capacity` table.
    pub fn capacity(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        out.insert("cpu".to_owned(), cpus.to_string());
        if let Some(bytes) = vk_core::procfs::meminfo().ok().and_then(|m| m.total_bytes) {
            out.insert("memory".to_owned(), format!("{}Ki", bytes / 1024));
        }
        out.insert("pods".to_owned(), "110".to_owned());
        out.extend(self.capacity.clone());
        out
    }
}

impl ProviderConfig for ProcessConfig {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, text: &str) -> Result<ProcessConfig, vk_cli::ProviderConfigError> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        vk_cli::load_provider_config(Some(&path), "VK_PROCESS_TEST_")
    }

    #[test]
    fn toml_and_json_parse_with_defaults() {
        let c = parse(
            "c.toml",
            "state_dir = \"/s\"\n[images]\n\"python:3\" = [\"python3\"]\n[capacity]\ncpu = \"3\"\n",
        )
        .expect("toml");
        assert_eq!(c.state_dir, PathBuf::from("/s"));
        assert_eq!(c.images["python:3"], vec!["python3".to_owned()]);
        assert_eq!(c.capacity()["cpu"], "3");
        assert_eq!(c.capacity()["pods"], "110");
        assert_eq!(c.volume_refresh(), Duration::from_secs(15));
        let j = parse("c.json", r#"{"images": {"a": ["b", "c"]}}"#).expect("json");
        assert_eq!(j.images["a"].len(), 2);
        let e = parse("c.toml", "nope = 1").expect_err("unknown");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
