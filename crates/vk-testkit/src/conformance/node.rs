//! Node checks: registration, labels and taint, Lease, re-creation, ping-gated Ready.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::DeleteParams;

use super::Target;
use super::harness::{Harness, HarnessOptions, eventually};

fn ready_condition(node: &Node) -> Option<(String, Option<String>)> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// The node registers, turns Ready, carries the default labels and the provider taint,
/// publishes its InternalIP and kubelet port, and its Lease (owned by the Node) renews.
pub async fn registers_and_turns_ready(target: &dyn Target) {
    let h = Harness::start(target, "conf-node").await;
    let node = eventually("node is Ready", || async {
        h.node_object()
            .await
            .filter(|n| ready_condition(n).is_some_and(|(s, _)| s == "True"))
    })
    .await;
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("type").map(String::as_str),
        Some("virtual-kubelet")
    );
    assert_eq!(
        labels.get("kubernetes.io/role").map(String::as_str),
        Some("agent")
    );
    assert_eq!(
        labels.get("kubernetes.io/hostname"),
        Some(&h.node_name().to_owned())
    );
    assert_eq!(
        labels.get("kubernetes.io/os").map(String::as_str),
        Some("linux")
    );
    assert_eq!(
        labels
            .get("node.kubernetes.io/exclude-from-external-load-balancers")
            .map(String::as_str),
        Some("true")
    );
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    assert!(
        taints.iter().any(|t| t.key == "virtual-kubelet.io/provider"
            && t.value.as_deref() == Some(target.name())
            && t.effect == "NoSchedule"),
        "provider taint missing: {taints:?}"
    );
    let status = node.status.clone().unwrap_or_default();
    assert!(
        status
            .addresses
            .iter()
            .flatten()
            .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1"),
        "InternalIP missing: {:?}",
        status.addresses
    );
    assert!(
        status
            .daemon_endpoints
            .and_then(|d| d.kubelet_endpoint)
            .is_some_and(|e| e.port > 0)
    );
    assert!(status.capacity.is_some_and(|c| c.contains_key("pods")));

    let uid = node.metadata.uid.clone().unwrap_or_default();
    let leases: Api<Lease> = Api::namespaced(h.client(), "kube-node-lease");
    let lease = eventually("the node's Lease exists", || async {
        leases.get_opt(h.node_name()).await.ok().flatten()
    })
    .await;
    let owner = lease.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owner.iter().any(|o| o.kind == "Node" && o.uid == uid),
        "lease owner: {owner:?}"
    );
    let spec = lease.spec.clone().unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some(h.node_name()));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let first = spec.renew_time.map(|t| t.0);
    eventually("the Lease's renewTime advances", || async {
        let l = leases.get_opt(h.node_name()).await.ok().flatten()?;
        let now = l.spec?.renew_time.map(|t| t.0);
        (now > first).then_some(())
    })
    .await;
    assert!(
        h.kubectl(&["get", "nodes"]).contains(h.node_name()),
        "kubectl get nodes does not show the node"
    );
}

/// Deleting the Node object makes the controller re-create it (with a new UID) and it
/// turns Ready again, with its Lease owned by the new Node (and only by it) and renewed.
pub async fn deleted_node_is_recreated(target: &dyn Target) {
    let h = Harness::start(target, "conf-recreate").await;
    let nodes: Api<Node> = Api::all(h.client());
    let before = eventually("node exists", || async { h.node_object().await }).await;
    let old_uid = before.metadata.uid.clone().unwrap_or_default();
    let deleted_at = Instant::now();
    nodes
        .delete(h.node_name(), &DeleteParams::default())
        .await
        .expect("delete node");
    let (new_uid, lease) = wait_recreated(&h, &old_uid).await;
    eprintln!(
        "deleted_node_is_recreated [{}]: new Node Ready with its Lease {:?} after the delete call",
        target.name(),
        deleted_at.elapsed()
    );
    let owners = lease.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owners.len() == 1 && owners[0].kind == "Node" && owners[0].uid == new_uid,
        "the Lease must be owned by the new Node alone: {owners:?}"
    );
    let leases: Api<Lease> = Api::namespaced(h.client(), "kube-node-lease");
    let renewed = lease.spec.and_then(|s| s.renew_time).map(|t| t.0);
    eventually(
        "the new Lease is renewed, still owned by the new Node",
        || async {
            let l = leases.get_opt(h.node_name()).await.ok().flatten()?;
            let owned = l
                .metadata
                .owner_references
                .iter()
                .flatten()
                .all(|o| o.uid == new_uid);
            let now = l.spec?.renew_time.map(|t| t.0);
            (owned && now > renewed).then_some(())
        },
    )
    .await;
}

/// Waits until the Node is back under a UID other than `old_uid`, Ready, with a Lease
/// owned by the new UID; returns the new UID and the Lease.
async fn wait_recreated(h: &Harness, old_uid: &str) -> (String, Lease) {
    let again = eventually("node is re-created with a new UID and Ready", || async {
        h.node_object().await.filter(|n| {
            n.metadata.uid.as_deref().is_some_and(|u| u != old_uid)
                && ready_condition(n).is_some_and(|(s, _)| s == "True")
        })
    })
    .await;
    let new_uid = again.metadata.uid.clone().unwrap_or_default();
    let leases: Api<Lease> = Api::namespaced(h.client(), "kube-node-lease");
    let lease = eventually("the Lease is owned by the new Node", || async {
        let l = leases.get_opt(h.node_name()).await.ok().flatten()?;
        l.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Node" && o.uid == new_uid)
            .then_some(l)
    })
    .await;
    (new_uid, lease)
}

/// Every pod of `uids` (name, UID) exists with its UID and is not being deleted.
async fn assert_pods_kept(pods: &Api<Pod>, uids: &[(&str, String)], deleted_at: Instant) {
    for (name, uid) in uids {
        let pod = pods.get_opt(name).await.expect("read pod");
        let Some(pod) = pod else {
            panic!(
                "pod {name} was deleted {:?} after its node was",
                deleted_at.elapsed()
            );
        };
        assert_eq!(
            pod.metadata.uid.as_deref(),
            Some(uid.as_str()),
            "pod {name} was replaced"
        );
        assert!(
            pod.metadata.deletion_timestamp.is_none(),
            "pod {name} is being deleted {:?} after its node was",
            deleted_at.elapsed()
        );
    }
}

/// How long after the Node's deletion the pods are watched: kube-controller-manager's
/// pod garbage collector runs every 20 s and deletes the pods of a node missing for its
/// 40 s quarantine, so a pod that survives 60 s survived it. This is an observation
/// window the check must span (the collector reports nothing observable when it spares
/// a pod), not a pause waiting for something to happen.
pub const POD_GC_WINDOW: Duration = Duration::from_secs(60);

/// Deleting the Node object (`kubectl delete node`) loses no pod: the node controller
/// re-creates the Node (new UID, Ready, Lease owned by it) before the pod garbage
/// collector's quarantine ends, every pod bound to the node still exists with the same
/// UID after [`POD_GC_WINDOW`], and the provider was asked to delete none. Needs
/// [`super::Inspect`].
///
/// The node runs with production timing (Lease renewed every 10 s), except that its
/// periodic status write is pushed out of the window, so the check cannot pass thanks
/// to a status write falling into it by chance. Prints how long the re-creation took.
pub async fn deleted_node_keeps_its_pods(target: &dyn Target) {
    let options = HarnessOptions {
        node: vk_core::node::NodeControllerConfig {
            status_update_interval: Duration::from_secs(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let h = Harness::start_with(target, "conf-keeppods", options).await;
    let inspect = h.inspect();
    let names = ["keep-a", "keep-b", "keep-c"];
    for name in names {
        h.create_pod(&h.pod(name, serde_json::json!({}))).await;
    }
    let mut uids = Vec::new();
    for name in names {
        let pod = h.wait_running(name).await;
        uids.push((name, pod.metadata.uid.clone().unwrap_or_default()));
    }
    h.wait_until_idle().await;
    let deletes_before = inspect.delete_calls();
    let old_uid = h
        .node_object()
        .await
        .and_then(|n| n.metadata.uid)
        .expect("the node exists");

    let nodes: Api<Node> = Api::all(h.client());
    let deleted_at = Instant::now();
    nodes
        .delete(h.node_name(), &DeleteParams::default())
        .await
        .expect("delete node");
    let (new_uid, _) = wait_recreated(&h, &old_uid).await;
    eprintln!(
        "deleted_node_keeps_its_pods [{}]: new Node {new_uid} Ready with its Lease {:?} after the delete call",
        target.name(),
        deleted_at.elapsed()
    );

    // The observation window: every pod is looked at once a second until the pod GC's
    // window has passed since the deletion, so a lost pod fails the check when it goes.
    let pods = h.pods();
    while deleted_at.elapsed() < POD_GC_WINDOW {
        assert_pods_kept(&pods, &uids, deleted_at).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_pods_kept(&pods, &uids, deleted_at).await;
    h.wait_until_idle().await;
    assert_eq!(
        inspect.delete_calls(),
        deletes_before,
        "the provider was asked to delete pods"
    );
    for (name, _) in &uids {
        assert!(
            inspect.has_pod(h.namespace(), name),
            "the provider no longer has pod {name}"
        );
    }
    let node = h.node_object().await.expect("the node exists");
    assert_eq!(
        node.metadata.uid.as_deref(),
        Some(new_uid.as_str()),
        "the node was re-created once"
    );
}

/// A provider whose ping keeps failing turns the node NotReady (reason
/// `ProviderPingFailed`); when ping works again, the node is Ready. Needs [`super::Inspect`].
pub async fn failing_ping_turns_node_not_ready(target: &dyn Target) {
    let h = Harness::start(target, "conf-ping").await;
    let inspect = h.inspect();
    eventually("node is Ready", || async {
        h.node_object()
            .await
            .filter(|n| ready_condition(n).is_some_and(|(s, _)| s == "True"))
    })
    .await;
    inspect.fail_pings(Some("backend unreachable (injected)"));
    let node = eventually(
        "node turns Ready=False with reason ProviderPingFailed",
        || async {
            h.node_object().await.filter(|n| {
                ready_condition(n).is_some_and(|(s, r)| {
                    s == "False" && r.as_deref() == Some("ProviderPingFailed")
                })
            })
        },
    )
    .await;
    let message = node
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.message)
        .unwrap_or_default();
    assert!(
        message.contains("backend unreachable"),
        "Ready message: {message}"
    );
    assert!(
        h.kubectl(&["get", "node", h.node_name()])
            .contains("NotReady")
    );
    inspect.fail_pings(None);
    eventually("node is Ready again", || async {
        h.node_object()
            .await
            .filter(|n| ready_condition(n).is_some_and(|(s, _)| s == "True"))
    })
    .await;
}

/// Labels, annotations, taints and conditions set by others survive the node
/// controller's writes (including a restart, which re-applies our metadata).
pub async fn foreign_metadata_and_conditions_survive(target: &dyn Target) {
    use kube::api::{Patch, PatchParams};
    use serde_json::json;
    let mut h = Harness::start(target, "conf-foreign").await;
    let nodes: Api<Node> = Api::all(h.client());
    nodes
        .patch(
            h.node_name(),
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"labels": {"example.com/team": "blue"}, "annotations": {"example.com/note": "keep"}},
                "spec": {"taints": [
                    {"key": "virtual-kubelet.io/provider", "value": target.name(), "effect": "NoSchedule"},
                    {"key": "example.com/dedicated", "value": "blue", "effect": "NoSchedule"}
                ]}
            })),
        )
        .await
        .expect("label the node");
    nodes
        .patch_status(
            h.node_name(),
            &PatchParams::default(),
            &Patch::Strategic(json!({"status": {"conditions": [
                {"type": "example.com/Custom", "status": "True", "reason": "SetByTest"}
            ]}})),
        )
        .await
        .expect("add a condition");
    let heartbeat = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_heartbeat_time.clone())
            .map(|t| t.0)
    };
    let before = heartbeat(&h.node_object().await.expect("node"));
    h.stop_controllers().await;
    h.start_controllers().await;
    let node = eventually("the node controller wrote its status again", || async {
        h.node_object().await.filter(|n| heartbeat(n) > before)
    })
    .await;
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("example.com/team").map(String::as_str),
        Some("blue")
    );
    assert_eq!(
        labels.get("type").map(String::as_str),
        Some("virtual-kubelet")
    );
    let annotations = node.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("example.com/note").map(String::as_str),
        Some("keep")
    );
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    assert!(
        taints.iter().any(|t| t.key == "example.com/dedicated"),
        "foreign taint lost: {taints:?}"
    );
    assert!(
        taints
            .iter()
            .any(|t| t.key == "virtual-kubelet.io/provider"),
        "our taint lost: {taints:?}"
    );
    let conditions = node.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "example.com/Custom" && c.status == "True"),
        "foreign condition lost: {conditions:?}"
    );
}
