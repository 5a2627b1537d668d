//! What the node looks like: the [`NodeTemplate`] a provider (or the command line)
//! fills in, turned into the Node object we register.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
    Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KQuantity;
use kube::api::ObjectMeta;

/// Label and annotation keys.
pub mod keys {
    /// `type=virtual-kubelet`, upstream's marker label.
    pub const TYPE: &str = "type";
    /// `kubernetes.io/role=agent`.
    pub const ROLE: &str = "kubernetes.io/role";
    /// Operating system.
    pub const OS: &str = "kubernetes.io/os";
    /// Deprecated OS label, still read by old tooling.
    pub const BETA_OS: &str = "beta.kubernetes.io/os";
    /// CPU architecture.
    pub const ARCH: &str = "kubernetes.io/arch";
    /// The node's host name.
    pub const HOSTNAME: &str = "kubernetes.io/hostname";
    /// Keeps virtual nodes out of cloud load balancers.
    pub const EXCLUDE_FROM_LB: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
    /// Default taint key (`virtual-kubelet.io/provider=<provider>:NoSchedule`).
    pub const PROVIDER_TAINT: &str = "virtual-kubelet.io/provider";
}

/// Everything about the node that does not change while it runs (plus its initial
/// capacity). Build it with [`NodeTemplate::new`] and adjust the fields.
///
/// ```
/// use vk_core::node::NodeTemplate;
/// let mut t = NodeTemplate::new("vk-1", "mock");
/// t.capacity.insert("cpu".into(), "8".into());
/// let node = t.to_node();
/// assert_eq!(node.metadata.labels.unwrap()["type"], "virtual-kubelet");
/// assert_eq!(node.spec.unwrap().taints.unwrap()[0].key, "virtual-kubelet.io/provider");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTemplate {
    /// Node name.
    pub name: String,
    /// Provider name (used in the default taint's value).
    pub provider: String,
    /// Operating system (`linux`, `windows`).
    pub os: String,
    /// Architecture (`amd64`, `arm64`).
    pub arch: String,
    /// Labels; the defaults are set by [`NodeTemplate::new`].
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Taints; by default the provider taint.
    pub taints: Vec<Taint>,
    /// Capacity (`cpu`, `memory`, `pods`, ... as quantity strings).
    pub capacity: BTreeMap<String, String>,
    /// Allocatable; defaults to the capacity when empty.
    pub allocatable: BTreeMap<String, String>,
    /// The node's InternalIP (kube-apiserver connects to the kubelet API there).
    pub internal_ip: Option<String>,
    /// The kubelet API port published in `status.daemonEndpoints`.
    pub kubelet_port: i32,
    /// Versions reported in `status.nodeInfo`.
    pub kubelet_version: String,
    /// Pod CIDR, if the provider assigns pod IPs from one.
    pub pod_cidr: Option<String>,
}

impl NodeTemplate {
    /// A template with upstream's default labels and taint for `provider`.
    pub fn new(name: impl Into<String>, provider: impl Into<String>) -> Self {
        let name = name.into();
        let provider = provider.into();
        let os = "linux".to_owned();
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
        .to_owned();
        let mut labels = BTreeMap::new();
        labels.insert(keys::TYPE.into(), "virtual-kubelet".into());
        labels.insert(keys::ROLE.into(), "agent".into());
        labels.insert(keys::OS.into(), os.clone());
        labels.insert(keys::BETA_OS.into(), os.clone());
        labels.insert(keys::ARCH.into(), arch.clone());
        labels.insert(keys::HOSTNAME.into(), name.clone());
        labels.insert(keys::EXCLUDE_FROM_LB.into(), "true".into());
        let taints = vec![Taint {
            key: keys::PROVIDER_TAINT.into(),
            value: Some(provider.clone()),
            effect: "NoSchedule".into(),
            time_added: None,
        }];
        Self {
            name,
            provider,
            os,
            arch,
            labels,
            annotations: BTreeMap::new(),
            taints,
            capacity: BTreeMap::new(),
            allocatable: BTreeMap::new(),
            internal_ip: None,
            kubelet_port: 10250,
            kubelet_version: format!("vk-rs-v{}", env!("CARGO_PKG_VERSION")),
            pod_cidr: None,
        }
    }

    /// Sets the operating system, updating the OS labels.
    pub fn set_os(&mut self, os: impl Into<String>) {
        self.os = os.into();
        self.labels.insert(keys::OS.into(), self.os.clone());
        self.labels.insert(keys::BETA_OS.into(), self.os.clone());
    }

    fn quantities(map: &BTreeMap<String, String>) -> BTreeMap<String, KQuantity> {
        map.iter()
            .map(|(k, v)| (k.clone(), KQuantity(v.clone())))
            .collect()
    }

    /// The allocatable resources (the capacity when not set separately).
    pub fn effective_allocatable(&self) -> &BTreeMap<String, String> {
        if self.allocatable.is_empty() {
            &self.capacity
        } else {
            &self.allocatable
        }
    }

    /// The status fields we own (everything but conditions).
    pub fn status(&self) -> NodeStatus {
        let mut addresses = Vec::new();
        if let Some(ip) = &self.internal_ip {
            addresses.push(NodeAddress {
                type_: "InternalIP".into(),
                address: ip.clone(),
            });
        }
        addresses.push(NodeAddress {
            type_: "Hostname".into(),
            address: self.name.clone(),
        });
        NodeStatus {
            capacity: Some(Self::quantities(&self.capacity)),
            allocatable: Some(Self::quantities(self.effective_allocatable())),
            addresses: Some(addresses),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: self.kubelet_port,
                }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: self.arch.clone(),
                operating_system: self.os.clone(),
                kubelet_version: self.kubelet_version.clone(),
                kube_proxy_version: String::new(),
                boot_id: String::new(),
                container_runtime_version: format!(
                    "{}://{}",
                    self.provider,
                    env!("CARGO_PKG_VERSION")
                ),
                // Fields added by later Kubernetes versions (1.37's
                // `running_in_user_namespace`) keep their defaults: this crate builds
                // against whichever version the binary's k8s-openapi feature selects.
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The Node object to create.
    pub fn to_node(&self) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(self.labels.clone()),
                annotations: (!self.annotations.is_empty()).then(|| self.annotations.clone()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: (!self.taints.is_empty()).then(|| self.taints.clone()),
                pod_cidr: self.pod_cidr.clone(),
                ..Default::default()
            }),
            status: Some(self.status()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_upstream() {
        let t = NodeTemplate::new("n1", "mock");
        let node = t.to_node();
        let labels = node.metadata.labels.expect("labels");
        assert_eq!(labels["type"], "virtual-kubelet");
        assert_eq!(labels["kubernetes.io/role"], "agent");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
        assert_eq!(
            labels["node.kubernetes.io/exclude-from-external-load-balancers"],
            "true"
        );
        let taints = node.spec.expect("spec").taints.expect("taints");
        assert_eq!(taints.len(), 1);
        assert_eq!(taints[0].value.as_deref(), Some("mock"));
        assert_eq!(taints[0].effect, "NoSchedule");
    }

    #[test]
    fn allocatable_defaults_to_capacity_and_endpoint_port_is_published() {
        let mut t = NodeTemplate::new("n1", "mock");
        t.capacity.insert("cpu".into(), "4".into());
        t.kubelet_port = 10333;
        t.internal_ip = Some("127.0.0.1".into());
        let s = t.status();
        assert_eq!(s.allocatable.expect("alloc")["cpu"].0, "4");
        assert_eq!(
            s.daemon_endpoints
                .expect("ep")
                .kubelet_endpoint
                .expect("k")
                .port,
            10333
        );
        assert_eq!(s.addresses.expect("addr")[0].address, "127.0.0.1");
    }
}
