//! Deciding whether a pod's spec changed in a way the provider must hear about.
//!
//! The provider is told about changes to containers, init and ephemeral containers,
//! `activeDeadlineSeconds`, tolerations, labels and annotations (the parts of a pod that
//! matter to a backend; everything else is immutable or the API server's business). The
//! comparison ignores the order of each container's `env` list.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod, Toleration};
use serde::Serialize;

/// The parts of a pod the provider cares about, normalised for comparison.
#[derive(Serialize)]
struct Relevant<'a> {
    containers: Vec<Container>,
    init_containers: Vec<Container>,
    ephemeral_containers: Vec<EphemeralContainer>,
    active_deadline_seconds: Option<i64>,
    tolerations: Option<&'a Vec<Toleration>>,
    labels: Option<&'a std::collections::BTreeMap<String, String>>,
    annotations: Option<&'a std::collections::BTreeMap<String, String>>,
}

fn sorted_env(mut c: Container) -> Container {
    if let Some(env) = c.env.as_mut() {
        env.sort_by(|a, b| a.name.cmp(&b.name));
    }
    c
}

/// A fingerprint of the provider-relevant spec; equal fingerprints mean no update is
/// needed.
pub fn spec_fingerprint(pod: &Pod) -> u64 {
    let spec = pod.spec.as_ref();
    let relevant = Relevant {
        containers: spec
            .map(|s| s.containers.iter().cloned().map(sorted_env).collect())
            .unwrap_or_default(),
        init_containers: spec
            .and_then(|s| s.init_containers.as_ref())
            .map(|v| v.iter().cloned().map(sorted_env).collect())
            .unwrap_or_default(),
        ephemeral_containers: spec
            .and_then(|s| s.ephemeral_containers.as_ref())
            .map(|v| {
                v.iter()
                    .cloned()
                    .map(|mut c| {
                        if let Some(env) = c.env.as_mut() {
                            env.sort_by(|a, b| a.name.cmp(&b.name));
                        }
                        c
                    })
                    .collect()
            })
            .unwrap_or_default(),
        active_deadline_seconds: spec.and_then(|s| s.active_deadline_seconds),
        tolerations: spec.and_then(|s| s.tolerations.as_ref()),
        labels: pod.metadata.labels.as_ref(),
        annotations: pod.metadata.annotations.as_ref(),
    };
    let json = serde_json::to_vec(&relevant).unwrap_or_default();
    let mut h = DefaultHasher::new();
    json.hash(&mut h);
    h.finish()
}

/// Whether the provider's copy of a pod (as returned by `get_pod`) is behind the API's
/// in one of the fields a pod may change after creation: container images,
/// `activeDeadlineSeconds`, tolerations, labels, annotations, ephemeral containers.
/// Used when adopting pods at start-up; env is not compared because the provider's copy
/// holds the resolved env.
pub fn provider_copy_is_stale(api: &Pod, provider: &Pod) -> bool {
    let images = |p: &Pod| -> Vec<(String, Option<String>)> {
        p.spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .map(|c| (c.name.clone(), c.image.clone()))
            .collect()
    };
    let ephemeral = |p: &Pod| -> Vec<String> {
        p.spec
            .iter()
            .flat_map(|s| s.ephemeral_containers.iter().flatten())
            .map(|c| c.name.clone())
            .collect()
    };
    let ads = |p: &Pod| p.spec.as_ref().and_then(|s| s.active_deadline_seconds);
    let tolerations = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default()
    };
    let labels = |p: &Pod| p.metadata.labels.clone().unwrap_or_default();
    let annotations = |p: &Pod| p.metadata.annotations.clone().unwrap_or_default();
    images(api) != images(provider)
        || ephemeral(api) != ephemeral(provider)
        || ads(api) != ads(provider)
        || tolerations(api) != tolerations(provider)
        || labels(api) != labels(provider)
        || annotations(api) != annotations(provider)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn base() -> serde_json::Value {
        json!({
            "metadata": {"name": "p", "namespace": "n", "labels": {"a": "1"}, "resourceVersion": "1"},
            "spec": {"containers": [{"name": "c", "image": "i:1", "env": [
                {"name": "A", "value": "1"}, {"name": "B", "value": "2"}
            ]}]},
            "status": {"phase": "Pending"}
        })
    }

    #[test]
    fn env_order_status_and_resource_version_do_not_matter() {
        let a = pod(base());
        let mut v = base();
        v["spec"]["containers"][0]["env"] =
            json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]);
        v["metadata"]["resourceVersion"] = json!("99");
        v["status"]["phase"] = json!("Running");
        assert_eq!(spec_fingerprint(&a), spec_fingerprint(&pod(v)));
    }

    #[test]
    fn relevant_changes_are_detected() {
        let a = spec_fingerprint(&pod(base()));
        let edits: [fn(&mut serde_json::Value); 6] = [
            |v| v["spec"]["containers"][0]["image"] = json!("i:2"),
            |v| v["spec"]["containers"][0]["env"][0]["value"] = json!("changed"),
            |v| v["spec"]["activeDeadlineSeconds"] = json!(30),
            |v| v["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]),
            |v| v["metadata"]["labels"]["b"] = json!("2"),
            |v| v["metadata"]["annotations"] = json!({"x": "y"}),
        ];
        for edit in edits {
            let mut v = base();
            edit(&mut v);
            assert_ne!(a, spec_fingerprint(&pod(v)));
        }
    }

    #[test]
    fn stale_provider_copies_are_detected_but_resolved_env_is_ignored() {
        let api = pod(base());
        let mut resolved = base();
        resolved["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}, {"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.1"}]);
        assert!(!provider_copy_is_stale(&api, &pod(resolved)));
        let mut old_image = base();
        old_image["spec"]["containers"][0]["image"] = json!("i:0");
        assert!(provider_copy_is_stale(&api, &pod(old_image)));
        let mut old_labels = base();
        old_labels["metadata"]["labels"] = json!({});
        assert!(provider_copy_is_stale(&api, &pod(old_labels)));
    }
}
