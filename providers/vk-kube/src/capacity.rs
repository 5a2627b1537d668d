//! The home node's capacity, from the remote cluster's nodes.
//!
//! Capacity is the sum of the `allocatable` of the remote nodes that are Ready and
//! schedulable; allocatable is that minus the resource requests of the pods *others*
//! run on those nodes (pods vk-kube created are not subtracted: the home scheduler
//! already counts them against this node). Recomputed every
//! `capacity_refresh_seconds` and pushed to the home node.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use kube::api::ListParams;
use kube::{Api, Client};
use vk_core::Quantity;
use vk_core::kube_errors::from_kube;
use vk_errdefs::Result;

use crate::naming;

/// Capacity and allocatable of the home node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteCapacity {
    /// Sum of the usable remote nodes' allocatable.
    pub capacity: BTreeMap<String, String>,
    /// `capacity` minus what others' pods request on those nodes.
    pub allocatable: BTreeMap<String, String>,
    /// How many remote nodes were counted.
    pub nodes: usize,
}

impl RemoteCapacity {
    /// As the API's quantities.
    pub fn api_quantities(map: &BTreeMap<String, String>) -> BTreeMap<String, ApiQuantity> {
        map.iter()
            .map(|(k, v)| (k.clone(), ApiQuantity(v.clone())))
            .collect()
    }
}

/// Whether `node` is Ready and schedulable.
pub fn usable(node: &Node) -> bool {
    let schedulable = !node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    schedulable && ready
}

fn add(into: &mut BTreeMap<String, i128>, resource: &str, quantity: &str, sign: i128) {
    if let Ok(q) = Quantity::parse(quantity) {
        *into.entry(resource.to_owned()).or_default() += sign * q.millis();
    }
}

fn render(millis: &BTreeMap<String, i128>) -> BTreeMap<String, String> {
    millis
        .iter()
        .map(|(k, v)| {
            let v = (*v).max(0);
            let text = if k == "cpu" {
                format!("{v}m")
            } else {
                (v / 1000).to_string()
            };
            (k.clone(), text)
        })
        .collect()
}

/// The pod's effective requests: the larger of the sum of its containers' and each
/// init container's, per resource (as the scheduler counts them).
fn requests(pod: &Pod) -> BTreeMap<String, i128> {
    let mut total: BTreeMap<String, i128> = BTreeMap::new();
    let Some(spec) = pod.spec.as_ref() else {
        return total;
    };
    for c in &spec.containers {
        for (k, v) in c.resources.iter().flat_map(|r| r.requests.iter().flatten()) {
            add(&mut total, k, &v.0, 1);
        }
    }
    for c in spec.init_containers.iter().flatten() {
        let mut one = BTreeMap::new();
        for (k, v) in c.resources.iter().flat_map(|r| r.requests.iter().flatten()) {
            add(&mut one, k, &v.0, 1);
        }
        for (k, v) in one {
            let e = total.entry(k).or_default();
            *e = (*e).max(v);
        }
    }
    total.insert("pods".to_owned(), 1000);
    total
}

/// Computes [`RemoteCapacity`] from `nodes` and the `pods` running on them; pods
/// labelled as vk-kube's are not subtracted.
pub fn compute(nodes: &[Node], pods: &[Pod]) -> RemoteCapacity {
    let usable_nodes: Vec<&Node> = nodes.iter().filter(|n| usable(n)).collect();
    let names: std::collections::HashSet<&str> = usable_nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let mut capacity: BTreeMap<String, i128> = BTreeMap::new();
    for node in &usable_nodes {
        for (k, v) in node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .into_iter()
            .flatten()
        {
            add(&mut capacity, k, &v.0, 1);
        }
    }
    let mut allocatable = capacity.clone();
    for pod in pods {
        let on_usable = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| names.contains(n));
        let terminal = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let ours = pod
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(naming::MANAGED_LABEL));
        if !on_usable || terminal || ours {
            continue;
        }
        for (k, v) in requests(pod) {
            if let Some(a) = allocatable.get_mut(&k) {
                *a -= v;
            }
        }
    }
    RemoteCapacity {
        capacity: render(&capacity),
        allocatable: render(&allocatable),
        nodes: usable_nodes.len(),
    }
}

/// Reads the remote nodes and pods and computes the capacity.
pub async fn read(remote: &Client) -> Result<RemoteCapacity> {
    let nodes = Api::<Node>::all(remote.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| from_kube("listing the remote nodes", e))?;
    let pods = Api::<Pod>::all(remote.clone())
        .list(&ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed"))
        .await
        .map_err(|e| from_kube("listing the remote pods for capacity", e))?;
    Ok(compute(&nodes.items, &pods.items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: bool, unschedulable: bool, cpu: &str, memory: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"unschedulable": unschedulable},
            "status": {
                "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]
            }
        }))
        .expect("node")
    }

    fn pod(node: &str, cpu: &str, ours: bool, phase: &str) -> Pod {
        let labels = if ours {
            json!({naming::MANAGED_LABEL: "true"})
        } else {
            json!({})
        };
        serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": labels},
            "spec": {"nodeName": node, "containers": [
                {"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": phase}
        }))
        .expect("pod")
    }

    #[test]
    fn sums_usable_nodes_and_subtracts_others_pods() {
        let nodes = [
            node("a", true, false, "2", "1Gi"),
            node("b", true, false, "1500m", "1Gi"),
            node("down", false, false, "8", "8Gi"),
            node("cordoned", true, true, "8", "8Gi"),
        ];
        let pods = [
            pod("a", "500m", false, "Running"),
            pod("a", "1", true, "Running"),
            pod("down", "1", false, "Running"),
            pod("b", "1", false, "Succeeded"),
        ];
        let c = compute(&nodes, &pods);
        assert_eq!(c.nodes, 2);
        assert_eq!(c.capacity["cpu"], "3500m");
        assert_eq!(c.capacity["memory"], (2u64 << 30).to_string());
        assert_eq!(c.capacity["pods"], "220");
        assert_eq!(c.allocatable["cpu"], "3000m");
        assert_eq!(c.allocatable["pods"], "219");
    }

    #[test]
    fn no_usable_node_means_zero() {
        let c = compute(&[node("down", false, false, "8", "8Gi")], &[]);
        assert_eq!(c.nodes, 0);
        assert!(c.capacity.is_empty());
    }
}
