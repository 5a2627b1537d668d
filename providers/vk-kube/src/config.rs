//! vk-kube's configuration (`--provider-config`, TOML or JSON by extension, overridden
//! by `VK_KUBE_*` variables; loaded by [`vk_cli::load_provider_config`]).
//!
//! ```toml
//! kubeconfig = "/etc/vk-kube/remote.kubeconfig"   # required: the remote cluster
//! context = "burst"                               # default: the file's current context
//! cluster_name = "burst-eu"                       # label value on the home node
//!
//! [namespace]                  # where remote pods go
//! mode = "same"                # same name, created on demand (the default)
//! # mode = "fixed", name = "offload"
//! # mode = "prefix", prefix = "home-"
//!
//! [scheduling]                 # what happens to the home pod's scheduling constraints
//! tolerations = "drop"         # "drop" (default) or "keep"
//! node_selector = "drop"
//! affinity = "drop"
//! add_node_selector = { "pool" = "burst" }
//! add_tolerations = [{ key = "virtual-kubelet.io/provider", operator = "Exists" }]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Toleration;
use serde::Deserialize;
use vk_cli::{InvalidValue, ProviderConfig};

/// The whole configuration; only `kubeconfig` is required.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubeProviderConfig {
    /// The remote cluster's kubeconfig file.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; the file's current context when unset.
    #[serde(default)]
    pub context: Option<String>,
    /// A name for the remote cluster: the value of the home node's label
    /// [`CLUSTER_LABEL`](crate::naming::CLUSTER_LABEL).
    #[serde(default = "default_cluster_name")]
    pub cluster_name: String,
    /// Where the remote pods (and the ConfigMaps and Secrets they use) are created.
    #[serde(default)]
    pub namespace: NamespaceMapping,
    /// What happens to tolerations, nodeSelector and affinity.
    #[serde(default)]
    pub scheduling: SchedulingConfig,
    /// The remote ServiceAccount remote pods run as; unset: the remote namespace's
    /// `default`.
    #[serde(default)]
    pub service_account: Option<String>,
    /// Mount the *remote* ServiceAccount's token in remote pods. Off by default: a home
    /// workload then gets no credentials for the remote cluster. Home tokens are never
    /// mounted remotely.
    #[serde(default)]
    pub mount_remote_token: bool,
    /// How often copied ConfigMaps and Secrets are compared with the home ones (and
    /// unreferenced copies removed).
    #[serde(default = "default_dependency_refresh")]
    pub dependency_refresh_seconds: u64,
    /// How often the node's capacity is recomputed from the remote nodes.
    #[serde(default = "default_capacity_refresh")]
    pub capacity_refresh_seconds: u64,
    /// How long a health check of the remote API server may take.
    #[serde(default = "default_ping_timeout")]
    pub ping_timeout_seconds: u64,
}

fn default_cluster_name() -> String {
    "remote".to_owned()
}
fn default_dependency_refresh() -> u64 {
    10
}
fn default_capacity_refresh() -> u64 {
    30
}
fn default_ping_timeout() -> u64 {
    5
}

impl Default for KubeProviderConfig {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            cluster_name: default_cluster_name(),
            namespace: NamespaceMapping::default(),
            scheduling: SchedulingConfig::default(),
            service_account: None,
            mount_remote_token: false,
            dependency_refresh_seconds: default_dependency_refresh(),
            capacity_refresh_seconds: default_capacity_refresh(),
            ping_timeout_seconds: default_ping_timeout(),
        }
    }
}

impl KubeProviderConfig {
    /// [`KubeProviderConfig::dependency_refresh_seconds`] (at least one second).
    pub fn dependency_refresh(&self) -> Duration {
        Duration::from_secs(self.dependency_refresh_seconds.max(1))
    }

    /// [`KubeProviderConfig::capacity_refresh_seconds`] (at least one second).
    pub fn capacity_refresh(&self) -> Duration {
        Duration::from_secs(self.capacity_refresh_seconds.max(1))
    }

    /// [`KubeProviderConfig::ping_timeout_seconds`] (at least one second).
    pub fn ping_timeout(&self) -> Duration {
        Duration::from_secs(self.ping_timeout_seconds.max(1))
    }
}

impl ProviderConfig for KubeProviderConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        if self.kubeconfig.is_none() {
            return Err(InvalidValue::new(
                "kubeconfig",
                "the remote cluster's kubeconfig is required (VK_KUBE_KUBECONFIG or `kubeconfig = \"...\"`)",
            ));
        }
        if !crate::naming::is_label_value(&self.cluster_name) {
            return Err(InvalidValue::new(
                "cluster_name",
                "must be a valid label value (at most 63 letters, digits, '-', '_', '.')",
            ));
        }
        self.namespace.validate()
    }
}

/// Which remote namespace a home namespace maps to.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum NamespaceMapping {
    /// The namespace of the same name, created when missing (never deleted).
    #[default]
    Same,
    /// Every pod in one namespace, which must exist.
    Fixed {
        /// The remote namespace.
        name: String,
    },
    /// `prefix` + the home namespace, created when missing (never deleted).
    Prefix {
        /// What is put in front of the home namespace's name.
        prefix: String,
    },
}

impl NamespaceMapping {
    fn validate(&self) -> Result<(), InvalidValue> {
        match self {
            Self::Same => Ok(()),
            Self::Fixed { name } if crate::naming::is_dns_label(name) => Ok(()),
            Self::Fixed { .. } => Err(InvalidValue::new(
                "namespace.name",
                "must be a namespace name (a DNS label)",
            )),
            Self::Prefix { prefix }
                if !prefix.is_empty()
                    && prefix.len() < 40
                    && crate::naming::is_dns_label(&format!("{prefix}x")) =>
            {
                Ok(())
            }
            Self::Prefix { .. } => Err(InvalidValue::new(
                "namespace.prefix",
                "must be 1-39 lowercase letters, digits or '-', starting with a letter or digit",
            )),
        }
    }

    /// Whether remote namespaces are created on demand.
    pub fn creates_namespaces(&self) -> bool {
        !matches!(self, Self::Fixed { .. })
    }
}

/// What to do with one scheduling field of the home pod.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FieldPolicy {
    /// Not copied: it was about the home cluster (the virtual node's taint, its
    /// labels), which the remote nodes do not have.
    #[default]
    Drop,
    /// Copied unchanged (the remote nodes carry the same labels and taints).
    Keep,
}

/// Tolerations, nodeSelector and affinity of remote pods.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SchedulingConfig {
    /// The home pod's tolerations.
    #[serde(default)]
    pub tolerations: FieldPolicy,
    /// The home pod's nodeSelector.
    #[serde(default)]
    pub node_selector: FieldPolicy,
    /// The home pod's affinity.
    #[serde(default)]
    pub affinity: FieldPolicy,
    /// Added to every remote pod's nodeSelector (wins over a kept home value).
    #[serde(default)]
    pub add_node_selector: BTreeMap<String, String>,
    /// Added to every remote pod's tolerations.
    #[serde(default)]
    pub add_tolerations: Vec<Toleration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, text: &str) -> Result<KubeProviderConfig, vk_cli::ProviderConfigError> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        vk_cli::load_provider_config(Some(&path), "VK_KUBE_TEST_CONFIG_")
    }

    #[test]
    fn toml_parses_with_defaults() {
        let c = parse(
            "c.toml",
            "kubeconfig = \"/r\"\n[namespace]\nmode = \"prefix\"\nprefix = \"home-\"\n\
             [scheduling]\ntolerations = \"keep\"\nadd_node_selector = { pool = \"b\" }\n\
             add_tolerations = [{ key = \"k\", operator = \"Exists\" }]\n",
        )
        .expect("toml");
        assert_eq!(c.kubeconfig, Some(PathBuf::from("/r")));
        assert_eq!(
            c.namespace,
            NamespaceMapping::Prefix {
                prefix: "home-".into()
            }
        );
        assert_eq!(c.scheduling.tolerations, FieldPolicy::Keep);
        assert_eq!(c.scheduling.affinity, FieldPolicy::Drop);
        assert_eq!(c.scheduling.add_node_selector["pool"], "b");
        assert_eq!(c.scheduling.add_tolerations[0].key.as_deref(), Some("k"));
        assert_eq!(c.cluster_name, "remote");
        assert_eq!(c.dependency_refresh(), Duration::from_secs(10));
    }

    #[test]
    fn invalid_values_are_refused_with_their_key() {
        let e = parse("c.toml", "context = \"x\"\n").expect_err("no kubeconfig");
        assert!(e.to_string().contains("kubeconfig"), "{e}");
        let e = parse(
            "c.toml",
            "kubeconfig = \"/r\"\n[namespace]\nmode = \"fixed\"\nname = \"Not_Valid\"\n",
        )
        .expect_err("bad namespace");
        assert!(e.to_string().contains("namespace.name"), "{e}");
        let e = parse("c.toml", "kubeconfig = \"/r\"\ncluster_name = \"a b\"\n")
            .expect_err("bad cluster name");
        assert!(e.to_string().contains("cluster_name"), "{e}");
        let e = parse("c.toml", "kubeconfig = \"/r\"\nnope = 1\n").expect_err("unknown key");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
