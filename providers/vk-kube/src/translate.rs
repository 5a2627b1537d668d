//! Home pod → remote pod, and remote pod → the home view of it.
//!
//! What a remote pod carries ([`to_remote`]):
//! * the home pod's containers, init containers, resources, environment (already
//!   resolved by the core: plain values), volumes, security context, DNS settings,
//!   restart policy, grace period and deadline, as given;
//! * the home labels and annotations, plus vk-kube's own ([`crate::naming`]);
//! * ConfigMap and Secret volumes (also inside projected volumes) and image pull
//!   secrets renamed to the copies [`crate::deps`] makes;
//! * no home ServiceAccount token: the volume the home cluster's admission added
//!   (mounted at [`SERVICE_ACCOUNT_MOUNT`], or a projected `serviceAccountToken`) is
//!   removed; the pod runs as the configured remote ServiceAccount (default: the remote
//!   namespace's `default`) with `automountServiceAccountToken: false` unless
//!   `mount_remote_token` is set;
//! * tolerations, nodeSelector and affinity as the [`SchedulingConfig`] says;
//! * `hostname` = the home pod's name (when it is a valid hostname and the pod sets
//!   none), so the workload sees its own name, not the remote one;
//! * not: `nodeName`, `schedulerName`, `priority`/`priorityClassName`/
//!   `preemptionPolicy` (the remote cluster's defaults apply), service links
//!   (`enableServiceLinks: false`: the home ones are already in the environment).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{LocalObjectReference, Pod, PodSpec, PodStatus, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::config::{FieldPolicy, KubeProviderConfig, SchedulingConfig};
use crate::naming;

/// Where the ServiceAccount admission plugin mounts a pod's token.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The kind of a copied object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DependencyKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

/// A ConfigMap or Secret a pod uses, by its home name (in the pod's home namespace).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dependency {
    /// ConfigMap or Secret.
    pub kind: DependencyKind,
    /// Its name at home.
    pub name: String,
}

/// Identity of the home pod a remote pod runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HomeRef {
    /// Home namespace.
    pub namespace: String,
    /// Home name.
    pub name: String,
    /// Home UID.
    pub uid: String,
}

impl HomeRef {
    /// The home identity recorded on `remote`, if it is one of ours.
    pub fn of_remote(remote: &Pod) -> Option<Self> {
        let ann = remote.metadata.annotations.as_ref()?;
        let labels = remote.metadata.labels.as_ref()?;
        Some(Self {
            namespace: ann.get(naming::HOME_NAMESPACE_ANNOTATION)?.clone(),
            name: ann.get(naming::HOME_NAME_ANNOTATION)?.clone(),
            uid: labels.get(naming::HOME_UID_LABEL)?.clone(),
        })
    }
}

/// A remote pod ready to create, and what it needs copied first.
#[derive(Debug, Clone)]
pub struct RemotePlan {
    /// The pod to create remotely.
    pub pod: Pod,
    /// The ConfigMaps and Secrets (home names) to copy before it.
    pub dependencies: BTreeSet<Dependency>,
}

/// The labels every remote object of home node `node` carries.
pub fn owner_labels(node: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            naming::NODE_LABEL.to_owned(),
            naming::node_label_value(node),
        ),
        (naming::MANAGED_LABEL.to_owned(), "true".to_owned()),
    ])
}

/// The remote metadata for `home`'s labels and annotations (the home ones plus ours).
pub fn remote_metadata(
    home: &Pod,
    node: &str,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut labels = home.metadata.labels.clone().unwrap_or_default();
    labels.extend(owner_labels(node));
    labels.insert(
        naming::HOME_UID_LABEL.to_owned(),
        home.metadata.uid.clone().unwrap_or_default(),
    );
    let mut annotations = home.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(
        naming::HOME_NAMESPACE_ANNOTATION.to_owned(),
        home.metadata.namespace.clone().unwrap_or_default(),
    );
    annotations.insert(
        naming::HOME_NAME_ANNOTATION.to_owned(),
        home.metadata.name.clone().unwrap_or_default(),
    );
    annotations.insert(naming::HOME_NODE_ANNOTATION.to_owned(), node.to_owned());
    let tolerations = home
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    if !tolerations.is_empty() {
        annotations.insert(
            naming::HOME_TOLERATIONS_ANNOTATION.to_owned(),
            serde_json::to_string(&tolerations).unwrap_or_default(),
        );
    }
    (labels, annotations)
}

/// The remote pod for `home` (bound to home node `node`) in `remote_namespace`.
pub fn to_remote(
    home: &Pod,
    node: &str,
    remote_namespace: &str,
    config: &KubeProviderConfig,
) -> RemotePlan {
    let namespace = home.metadata.namespace.clone().unwrap_or_default();
    let name = home.metadata.name.clone().unwrap_or_default();
    let uid = home.metadata.uid.clone().unwrap_or_default();
    let mut spec = home.spec.clone().unwrap_or_default();
    let mut dependencies = BTreeSet::new();

    spec.node_name = None;
    spec.scheduler_name = None;
    spec.priority = None;
    spec.priority_class_name = None;
    spec.preemption_policy = None;
    spec.enable_service_links = Some(false);
    spec.service_account = None;
    spec.service_account_name = config.service_account.clone();
    if !config.mount_remote_token {
        spec.automount_service_account_token = Some(false);
    }
    drop_home_token(&mut spec);
    rename_dependencies(&mut spec, &namespace, &mut dependencies);
    apply_scheduling(&mut spec, &config.scheduling);
    if spec.hostname.is_none() && naming::is_dns_label(&name) {
        spec.hostname = Some(name.clone());
    }

    let (labels, mut annotations) = remote_metadata(home, node);
    if !dependencies.is_empty() {
        annotations.insert(
            naming::DEPENDENCIES_ANNOTATION.to_owned(),
            serde_json::to_string(&dependencies).unwrap_or_default(),
        );
    }
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(naming::remote_pod_name(&namespace, &name, &uid)),
            namespace: Some(remote_namespace.to_owned()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    RemotePlan { pod, dependencies }
}

/// The `fieldRef` paths only the remote kubelet can resolve: the remote pod's and node's
/// IPs (unknown at home before the remote pod exists).
pub const REMOTE_FIELD_PATHS: [&str; 4] = [
    "status.podIP",
    "status.podIPs",
    "status.hostIP",
    "status.hostIPs",
];

/// Puts back, in `remote`, the `fieldRef`s of `original` (the home pod as the API has
/// it, before the core resolved its environment) that name [`REMOTE_FIELD_PATHS`], so
/// the remote kubelet fills in the remote pod's real IPs. Variables that `$(VAR)`
/// expanded from them at home keep the value resolved there.
pub fn restore_remote_field_refs(remote: &mut PodSpec, original: &PodSpec) {
    let originals = original
        .containers
        .iter()
        .chain(original.init_containers.iter().flatten());
    for source in originals {
        let refs: Vec<_> = source
            .env
            .iter()
            .flatten()
            .filter(|e| {
                e.value_from
                    .as_ref()
                    .and_then(|v| v.field_ref.as_ref())
                    .is_some_and(|f| REMOTE_FIELD_PATHS.contains(&f.field_path.as_str()))
            })
            .collect();
        if refs.is_empty() {
            continue;
        }
        let targets = remote
            .containers
            .iter_mut()
            .chain(remote.init_containers.iter_mut().flatten());
        for target in targets.filter(|c| c.name == source.name) {
            for env in target.env.iter_mut().flatten() {
                if let Some(r) = refs.iter().find(|r| r.name == env.name) {
                    env.value = None;
                    env.value_from = r.value_from.clone();
                }
            }
        }
    }
}

/// Removes the home ServiceAccount token volume(s) and their mounts.
fn drop_home_token(spec: &mut PodSpec) {
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        for m in c.volume_mounts.iter().flatten() {
            if m.mount_path.trim_end_matches('/') == SERVICE_ACCOUNT_MOUNT {
                dropped.insert(m.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        let projected_token = v.projected.as_ref().is_some_and(|p| {
            p.sources
                .iter()
                .flatten()
                .any(|s| s.service_account_token.is_some())
        });
        if projected_token {
            dropped.insert(v.name.clone());
        }
    }
    if dropped.is_empty() {
        return;
    }
    if let Some(volumes) = spec.volumes.as_mut() {
        volumes.retain(|v| !dropped.contains(&v.name));
    }
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        if let Some(mounts) = c.volume_mounts.as_mut() {
            mounts.retain(|m| !dropped.contains(&m.name));
        }
    }
}

/// Points ConfigMap/Secret volumes and image pull secrets at the remote copies and
/// records what must be copied.
fn rename_dependencies(spec: &mut PodSpec, namespace: &str, deps: &mut BTreeSet<Dependency>) {
    let mut rename = |kind: DependencyKind, name: &mut String| {
        deps.insert(Dependency {
            kind,
            name: name.clone(),
        });
        *name = naming::dependency_name(namespace, name);
    };
    for v in spec.volumes.iter_mut().flatten() {
        if let Some(cm) = v.config_map.as_mut() {
            rename(DependencyKind::ConfigMap, &mut cm.name);
        }
        if let Some(secret) = v.secret.as_mut()
            && let Some(name) = secret.secret_name.as_mut()
        {
            rename(DependencyKind::Secret, name);
        }
        if let Some(projected) = v.projected.as_mut() {
            for source in projected.sources.iter_mut().flatten() {
                if let Some(cm) = source.config_map.as_mut() {
                    rename(DependencyKind::ConfigMap, &mut cm.name);
                }
                if let Some(secret) = source.secret.as_mut() {
                    rename(DependencyKind::Secret, &mut secret.name);
                }
            }
        }
    }
    for LocalObjectReference { name } in spec.image_pull_secrets.iter_mut().flatten() {
        rename(DependencyKind::Secret, name);
    }
}

fn apply_scheduling(spec: &mut PodSpec, policy: &SchedulingConfig) {
    if policy.tolerations == FieldPolicy::Drop {
        spec.tolerations = None;
    }
    if policy.node_selector == FieldPolicy::Drop {
        spec.node_selector = None;
    }
    if policy.affinity == FieldPolicy::Drop {
        spec.affinity = None;
    }
    if !policy.add_node_selector.is_empty() {
        spec.node_selector
            .get_or_insert_with(BTreeMap::new)
            .extend(policy.add_node_selector.clone());
    }
    if !policy.add_tolerations.is_empty() {
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        for t in &policy.add_tolerations {
            if !tolerations.contains(t) {
                tolerations.push(t.clone());
            }
        }
    }
}

/// Whether a label or annotation key is one vk-kube sets (not the home pod's).
pub fn is_own_key(key: &str) -> bool {
    key.strip_prefix(naming::PREFIX)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// The home view of a remote pod: home namespace, name, UID, labels, annotations and
/// tolerations, the remote spec otherwise, and the remote status mapped back
/// ([`home_status`]). `None` for a pod that is not one of ours.
pub fn to_home(remote: &Pod) -> Option<Pod> {
    let home = HomeRef::of_remote(remote)?;
    let strip = |m: &Option<BTreeMap<String, String>>| -> BTreeMap<String, String> {
        m.iter()
            .flatten()
            .filter(|(k, _)| !is_own_key(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let tolerations: Option<Vec<Toleration>> = remote
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(naming::HOME_TOLERATIONS_ANNOTATION))
        .and_then(|t| serde_json::from_str(t).ok());
    let mut spec = remote.spec.clone();
    if let Some(spec) = spec.as_mut() {
        spec.tolerations = tolerations;
    }
    Some(Pod {
        metadata: ObjectMeta {
            namespace: Some(home.namespace),
            name: Some(home.name),
            uid: Some(home.uid),
            labels: Some(strip(&remote.metadata.labels)),
            annotations: Some(strip(&remote.metadata.annotations)),
            ..Default::default()
        },
        spec,
        status: remote.status.as_ref().map(home_status),
    })
}

/// The remote status as the home pod's: phase, conditions, container statuses,
/// restarts, pod and host IPs (of the remote node), start time, reason and message.
/// The remote scheduler's nomination is left out.
pub fn home_status(remote: &PodStatus) -> PodStatus {
    let mut status = remote.clone();
    status.nominated_node_name = None;
    status
}

/// The dependencies recorded on a remote pod.
pub fn recorded_dependencies(remote: &Pod) -> BTreeSet<Dependency> {
    remote
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(naming::DEPENDENCIES_ANNOTATION))
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NamespaceMapping;
    use serde_json::json;

    fn home() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"namespace": "team", "name": "web", "uid": "u-1",
                         "labels": {"app": "web"}, "annotations": {"note": "x"}},
            "spec": {
                "nodeName": "vk", "schedulerName": "custom", "priorityClassName": "high",
                "priority": 1000, "serviceAccountName": "builder",
                "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                "nodeSelector": {"type": "virtual-kubelet"},
                "imagePullSecrets": [{"name": "registry"}],
                "containers": [{"name": "c", "image": "i",
                    "env": [{"name": "A", "value": "1"}],
                    "volumeMounts": [
                        {"name": "cfg", "mountPath": "/cfg"},
                        {"name": "builder-token-abc", "mountPath": SERVICE_ACCOUNT_MOUNT}]}],
                "volumes": [
                    {"name": "cfg", "configMap": {"name": "settings"}},
                    {"name": "sec", "secret": {"secretName": "creds"}},
                    {"name": "builder-token-abc", "secret": {"secretName": "builder-token-abc"}},
                    {"name": "kube-api-access-x", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token"}}]}},
                    {"name": "both", "projected": {"sources": [
                        {"configMap": {"name": "settings"}}, {"secret": {"name": "creds"}}]}}
                ]
            }
        }))
        .expect("pod")
    }

    #[test]
    fn remote_pod_carries_the_spec_without_home_specifics() {
        let config = KubeProviderConfig::default();
        let plan = to_remote(&home(), "vk", "team", &config);
        let pod = plan.pod;
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(pod.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(
            pod.metadata.name.as_deref(),
            Some(naming::remote_pod_name("team", "web", "u-1").as_str())
        );
        assert_eq!(spec.node_name, None);
        assert_eq!(spec.scheduler_name, None);
        assert_eq!(spec.priority, None);
        assert_eq!(spec.priority_class_name, None);
        assert_eq!(spec.service_account_name, None);
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.enable_service_links, Some(false));
        assert_eq!(spec.tolerations, None);
        assert_eq!(spec.node_selector, None);
        assert_eq!(spec.hostname.as_deref(), Some("web"));
        let c = &spec.containers[0];
        assert_eq!(c.env.as_ref().expect("env")[0].value.as_deref(), Some("1"));
        let mounts: Vec<&str> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(mounts, ["cfg"], "the home token mount is gone");
        let volumes: Vec<&str> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(volumes, ["cfg", "sec", "both"]);
        let settings = naming::dependency_name("team", "settings");
        let creds = naming::dependency_name("team", "creds");
        let vols = spec.volumes.as_ref().expect("volumes");
        assert_eq!(vols[0].config_map.as_ref().expect("cm").name, settings);
        assert_eq!(
            vols[1].secret.as_ref().expect("s").secret_name.as_deref(),
            Some(creds.as_str())
        );
        let sources = vols[2]
            .projected
            .as_ref()
            .and_then(|p| p.sources.as_ref())
            .expect("sources");
        assert_eq!(sources[0].config_map.as_ref().expect("cm").name, settings);
        assert_eq!(sources[1].secret.as_ref().expect("s").name, creds);
        assert_eq!(
            spec.image_pull_secrets.as_ref().expect("ips")[0].name,
            naming::dependency_name("team", "registry")
        );
        let deps: Vec<(DependencyKind, &str)> = plan
            .dependencies
            .iter()
            .map(|d| (d.kind, d.name.as_str()))
            .collect();
        assert_eq!(
            deps,
            [
                (DependencyKind::ConfigMap, "settings"),
                (DependencyKind::Secret, "creds"),
                (DependencyKind::Secret, "registry"),
            ]
        );
        let labels = pod.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[naming::HOME_UID_LABEL], "u-1");
        assert_eq!(labels[naming::NODE_LABEL], "vk");
        let ann = pod.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(ann[naming::HOME_NAMESPACE_ANNOTATION], "team");
        assert_eq!(ann[naming::HOME_NAME_ANNOTATION], "web");
        assert_eq!(ann["note"], "x");
    }

    #[test]
    fn ip_field_refs_are_left_to_the_remote_kubelet() {
        let original: PodSpec =
            serde_json::from_value(json!({"containers": [{"name": "c", "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "URL", "value": "http://$(POD_IP)"}]}]}))
            .expect("spec");
        let mut remote: PodSpec =
            serde_json::from_value(json!({"containers": [{"name": "c", "env": [
            {"name": "POD_IP", "value": ""},
            {"name": "NODE", "value": "vk"},
            {"name": "URL", "value": "http://"}]}]}))
            .expect("spec");
        restore_remote_field_refs(&mut remote, &original);
        let env = remote.containers[0].env.as_ref().expect("env");
        assert_eq!(env[0].value, None);
        assert_eq!(
            env[0]
                .value_from
                .as_ref()
                .and_then(|v| v.field_ref.as_ref())
                .map(|f| f.field_path.as_str()),
            Some("status.podIP")
        );
        assert_eq!(
            env[1].value.as_deref(),
            Some("vk"),
            "the home node name stays"
        );
        assert_eq!(env[2].value.as_deref(), Some("http://"));
    }

    #[test]
    fn scheduling_policy_keeps_and_adds() {
        let mut config = KubeProviderConfig {
            namespace: NamespaceMapping::Same,
            ..Default::default()
        };
        config.scheduling.tolerations = FieldPolicy::Keep;
        config.scheduling.add_node_selector = BTreeMap::from([("pool".into(), "b".into())]);
        config.scheduling.add_tolerations = vec![Toleration {
            key: Some("remote".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }];
        config.service_account = Some("runner".into());
        config.mount_remote_token = true;
        let plan = to_remote(&home(), "vk", "team", &config);
        let spec = plan.pod.spec.expect("spec");
        let keys: Vec<Option<&str>> = spec
            .tolerations
            .iter()
            .flatten()
            .map(|t| t.key.as_deref())
            .collect();
        assert_eq!(keys, [Some("virtual-kubelet.io/provider"), Some("remote")]);
        assert_eq!(
            spec.node_selector,
            Some(BTreeMap::from([("pool".into(), "b".into())]))
        );
        assert_eq!(spec.service_account_name.as_deref(), Some("runner"));
        assert_eq!(spec.automount_service_account_token, None);
    }

    #[test]
    fn home_view_restores_identity_and_tolerations() {
        let config = KubeProviderConfig::default();
        let mut remote = to_remote(&home(), "vk", "team", &config).pod;
        remote.metadata.uid = Some("remote-uid".into());
        remote.status = Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("10.1.2.3".into()),
            host_ip: Some("192.0.2.1".into()),
            nominated_node_name: Some("other".into()),
            ..Default::default()
        });
        let view = to_home(&remote).expect("ours");
        assert_eq!(view.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(view.metadata.name.as_deref(), Some("web"));
        assert_eq!(view.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(view.metadata.labels, home().metadata.labels);
        assert_eq!(view.metadata.annotations, home().metadata.annotations);
        assert_eq!(
            view.spec.as_ref().and_then(|s| s.tolerations.clone()),
            home().spec.and_then(|s| s.tolerations)
        );
        let status = view.status.expect("status");
        assert_eq!(status.pod_ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(status.host_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(status.nominated_node_name, None);
        assert_eq!(
            recorded_dependencies(&remote).len(),
            3,
            "the dependencies are recorded on the remote pod"
        );
        assert!(to_home(&Pod::default()).is_none());
    }
}
