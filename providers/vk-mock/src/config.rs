//! vk-mock's configuration (`--provider-config`, TOML or JSON by extension, overridden
//! by `VK_MOCK_*` variables; loaded by [`vk_cli::load_provider_config`]).
//!
//! ```toml
//! log_lines = ["hello", "world"]
//! [capacity]
//! cpu = "8"
//! [faults]
//! error_rate = 0.1      # or VK_MOCK_FAULTS__ERROR_RATE=0.1
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use vk_cli::{InvalidValue, ProviderConfig};

/// Fault injection.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Fraction (0..=1) of create/update/delete calls that fail with `Unavailable`.
    #[serde(default)]
    pub error_rate: f64,
    /// Milliseconds added to every pod operation.
    #[serde(default)]
    pub latency_ms: u64,
}

/// Per-node overrides.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeOverride {
    /// Capacity of this node.
    #[serde(default)]
    pub capacity: BTreeMap<String, String>,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    /// Capacity of every node (`cpu`, `memory`, `pods`, and any other resource).
    #[serde(default = "default_capacity")]
    pub capacity: BTreeMap<String, String>,
    /// Per-node overrides by node name.
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeOverride>,
    /// Fault injection.
    #[serde(default)]
    pub faults: Faults,
    /// Keep pods in this file across restarts (off by default; one JSON pod per line,
    /// written at most once a second and on exit).
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// The lines `kubectl logs` shows for every container.
    #[serde(default = "default_log_lines")]
    pub log_lines: Vec<String>,
}

fn default_capacity() -> BTreeMap<String, String> {
    [
        ("cpu", "20"),
        ("memory", "100Gi"),
        ("pods", "110"),
        ("ephemeral-storage", "100Gi"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn default_log_lines() -> Vec<String> {
    (1..=10).map(|i| format!("mock log line {i}")).collect()
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            capacity: default_capacity(),
            nodes: BTreeMap::new(),
            faults: Faults::default(),
            state_file: None,
            log_lines: default_log_lines(),
        }
    }
}

impl MockConfig {
    /// The capacity of node `name`.
    pub fn capacity_for(&self, name: &str) -> BTreeMap<String, String> {
        let mut cap = self.capacity.clone();
        if let Some(o) = self.nodes.get(name) {
            cap.extend(o.capacity.clone());
        }
        cap
    }
}

impl ProviderConfig for MockConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        if !(0.0..=1.0).contains(&self.faults.error_rate) {
            return Err(InvalidValue::new(
                "faults.error_rate",
                format!(
                    "is {}; use a fraction between 0 and 1",
                    self.faults.error_rate
                ),
            ));
        }
        if let Some(path) = &self.state_file {
            // Refused now rather than failing every second while nothing is persisted.
            crate::state::check_path(path).map_err(|e| {
                // "state_file is …" → "key `state_file` is …".
                let message = e.to_string();
                let reason = message.strip_prefix("state_file ").unwrap_or(&message);
                InvalidValue::new("state_file", reason)
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_and_json_with_defaults() {
        let dir = std::env::temp_dir().join(format!("vk-mock-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let toml_path = dir.join("c.toml");
        std::fs::write(&toml_path, "[capacity]\ncpu = \"4\"\n[nodes.n2.capacity]\npods = \"5000\"\n[faults]\nerror_rate = 0.5\n").expect("write");
        let c = vk_cli::load_provider_config::<MockConfig>(Some(&toml_path), "VK_MOCK_TEST_")
            .expect("toml");
        assert_eq!(c.capacity["cpu"], "4");
        assert_eq!(c.capacity_for("n2")["pods"], "5000");
        assert!(!c.capacity_for("n1").contains_key("pods"));
        assert_eq!(c.faults.error_rate, 0.5);
        let json_path = dir.join("c.json");
        std::fs::write(&json_path, r#"{"faults": {"latency_ms": 5}}"#).expect("write");
        let c = vk_cli::load_provider_config::<MockConfig>(Some(&json_path), "VK_MOCK_TEST_")
            .expect("json");
        assert_eq!(c.faults.latency_ms, 5);
        assert_eq!(c.capacity["pods"], "110");
    }

    #[test]
    fn bad_values_name_the_field() {
        let dir = std::env::temp_dir().join(format!("vk-mock-cfg-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("c.toml");
        std::fs::write(&p, "[faults]\nerror_rate = 2.0\n").expect("write");
        let e = vk_cli::load_provider_config::<MockConfig>(Some(&p), "VK_MOCK_TEST_")
            .expect_err("invalid")
            .to_string();
        assert!(e.contains("faults.error_rate"), "{e}");
        std::fs::write(&p, "[capacity]\ncpu = 4\n").expect("write");
        let e = vk_cli::load_provider_config::<MockConfig>(Some(&p), "VK_MOCK_TEST_")
            .expect_err("invalid")
            .to_string();
        assert!(e.contains("cpu") || e.contains("capacity"), "{e}");
        std::fs::write(&p, "bogus = 1\n").expect("write");
        let e = vk_cli::load_provider_config::<MockConfig>(Some(&p), "VK_MOCK_TEST_")
            .expect_err("unknown")
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn a_state_file_the_provider_could_not_write_is_refused_at_load() {
        let dir = std::env::temp_dir().join(format!("vk-mock-cfg-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("c.toml");
        let state = dir.join("missing").join("state.json");
        std::fs::write(
            &p,
            format!("state_file = {:?}\n", state.display().to_string()),
        )
        .expect("write");
        let e = vk_cli::load_provider_config::<MockConfig>(Some(&p), "VK_MOCK_TEST_")
            .expect_err("missing directory")
            .to_string();
        assert!(
            e.contains(&format!("key `state_file` is {}", state.display()))
                && e.contains("does not exist; create it"),
            "{e}"
        );
        let state = dir.join("state.json");
        std::fs::write(
            &p,
            format!("state_file = {:?}\n", state.display().to_string()),
        )
        .expect("write");
        let c = vk_cli::load_provider_config::<MockConfig>(Some(&p), "VK_MOCK_TEST_")
            .expect("a writable directory");
        assert_eq!(c.state_file, Some(state));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
