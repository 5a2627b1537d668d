//! Which labels, annotations and taints of the Node are ours, across restarts.
//!
//! A Node has many writers: the virtual kubelet, admins (`kubectl label`, `kubectl
//! taint`), controllers. When the configuration changes between two runs — a taint
//! disabled, a `--node-labels` entry dropped — what we set before and no longer want
//! must go, while what others set must stay. Server-side apply would track this for
//! maps, but `spec.taints` is an atomic list there (applying it would take every taint,
//! admins' included), so the node records what it owns itself: the annotation
//! [`OWNED_ANNOTATION`] holds the label keys, annotation keys and taints (key and effect)
//! it set, as JSON. At registration:
//!
//! * labels and annotations we want are set (ours win a conflict on the same key);
//! * those recorded as ours and no longer wanted are removed;
//! * taints: ours replace any with the same key and effect; recorded ones no longer
//!   wanted are removed; every other taint is kept;
//! * the record is rewritten with what we set now.
//!
//! A Node without the record (registered by an older version) is treated as owning only
//! the default provider taint ([`super::keys::PROVIDER_TAINT`]),
//! so that `--disable-taint` still removes it.
//!
//! ```
//! use k8s_openapi::api::core::v1::Node;
//! use vk_core::node::{NodeTemplate, ownership};
//!
//! // Registered before with the default taint; an admin then added a taint of their own.
//! let before = NodeTemplate::new("vk-1", "mock");
//! let mut node: Node = before.to_node();
//! ownership::apply(&mut node, &ownership::desired(&before));
//! node.spec.as_mut().unwrap().taints.as_mut().unwrap().push(k8s_openapi::api::core::v1::Taint {
//!     key: "admin".into(), effect: "NoExecute".into(), ..Default::default()
//! });
//! // Restarted with the taint disabled: ours goes, the admin's stays.
//! let mut now = NodeTemplate::new("vk-1", "mock");
//! now.taints.clear();
//! ownership::apply(&mut node, &ownership::desired(&now));
//! let keys: Vec<_> = node.spec.unwrap().taints.unwrap().into_iter().map(|t| t.key).collect();
//! assert_eq!(keys, ["admin"]);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Taint};
use serde::{Deserialize, Serialize};

use super::template::{NodeTemplate, keys};

/// The annotation holding the record of what the node owns.
pub const OWNED_ANNOTATION: &str = "virtual-kubelet.io/owned-metadata";

/// What the node sets on its Node object, and records as its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owned {
    /// Label keys.
    #[serde(default)]
    pub labels: BTreeSet<String>,
    /// Annotation keys (the record itself excluded).
    #[serde(default)]
    pub annotations: BTreeSet<String>,
    /// Taints as `key:Effect`.
    #[serde(default)]
    pub taints: BTreeSet<String>,
}

impl Owned {
    /// The record on `node`: what an earlier run set. Without one (an older version
    /// registered the node) only the default provider taint counts as ours.
    pub fn recorded(node: &Node) -> Self {
        let record = node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(OWNED_ANNOTATION))
            .and_then(|v| serde_json::from_str::<Owned>(v).ok());
        match record {
            Some(owned) => owned,
            None => Owned {
                taints: node_taints(node)
                    .iter()
                    .filter(|t| t.key == keys::PROVIDER_TAINT)
                    .map(taint_id)
                    .collect(),
                ..Owned::default()
            },
        }
    }

    /// The record's annotation value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What the node wants on its Node: labels, annotations and taints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations (without the record).
    pub annotations: BTreeMap<String, String>,
    /// Taints.
    pub taints: Vec<Taint>,
}

impl Desired {
    /// The record of this state.
    pub fn owned(&self) -> Owned {
        Owned {
            labels: self.labels.keys().cloned().collect(),
            annotations: self
                .annotations
                .keys()
                .filter(|k| *k != OWNED_ANNOTATION)
                .cloned()
                .collect(),
            taints: self.taints.iter().map(taint_id).collect(),
        }
    }
}

/// What `template` wants on the Node.
pub fn desired(template: &NodeTemplate) -> Desired {
    Desired {
        labels: template.labels.clone(),
        annotations: template
            .annotations
            .iter()
            .filter(|(k, _)| *k != OWNED_ANNOTATION)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        taints: template.taints.clone(),
    }
}

/// A taint's identity: `key:Effect`.
fn taint_id(t: &Taint) -> String {
    format!("{}:{}", t.key, t.effect)
}

fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

/// The taints `current` should have: others' kept, ours (same key and effect)
/// replaced, ours no longer wanted removed.
pub fn taints(current: &[Taint], previous: &Owned, wanted: &[Taint]) -> Vec<Taint> {
    let wanted_ids: BTreeSet<String> = wanted.iter().map(taint_id).collect();
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            let id = taint_id(t);
            !wanted_ids.contains(&id) && !previous.taints.contains(&id)
        })
        .cloned()
        .collect();
    out.extend(wanted.iter().cloned());
    out
}

/// A JSON merge patch that brings `current` to `wanted`: our labels and annotations
/// set, the ones recorded as ours and no longer wanted deleted (`null`), the taints as
/// [`taints`] computes them, and the record rewritten. `resourceVersion` is included
/// so a concurrent change makes the patch fail instead of being lost.
pub fn merge_patch(current: &Node, wanted: &Desired) -> serde_json::Value {
    let previous = Owned::recorded(current);
    let now = wanted.owned();
    let map = |ours: &BTreeMap<String, String>, before: &BTreeSet<String>| {
        let mut m = serde_json::Map::new();
        for gone in before.iter().filter(|k| !ours.contains_key(*k)) {
            m.insert(gone.clone(), serde_json::Value::Null);
        }
        for (k, v) in ours {
            m.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
        m
    };
    let labels = map(&wanted.labels, &previous.labels);
    let mut annotations = map(&wanted.annotations, &previous.annotations);
    annotations.insert(
        OWNED_ANNOTATION.to_owned(),
        serde_json::Value::String(now.to_annotation()),
    );
    serde_json::json!({
        "metadata": {
            "resourceVersion": current.metadata.resource_version,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"taints": taints(node_taints(current), &previous, &wanted.taints)},
    })
}

/// Applies `wanted` to `node` in memory, as [`merge_patch`] does on the server (for a
/// Node being created, and for tests).
pub fn apply(node: &mut Node, wanted: &Desired) {
    let previous = Owned::recorded(node);
    let labels = node.metadata.labels.get_or_insert_with(BTreeMap::new);
    for gone in previous
        .labels
        .iter()
        .filter(|k| !wanted.labels.contains_key(*k))
    {
        labels.remove(gone);
    }
    labels.extend(wanted.labels.clone());
    let annotations = node.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for gone in previous
        .annotations
        .iter()
        .filter(|k| !wanted.annotations.contains_key(*k))
    {
        annotations.remove(gone);
    }
    annotations.extend(wanted.annotations.clone());
    annotations.insert(OWNED_ANNOTATION.to_owned(), wanted.owned().to_annotation());
    let new_taints = taints(node_taints(node), &previous, &wanted.taints);
    node.spec.get_or_insert_with(Default::default).taints =
        (!new_taints.is_empty()).then_some(new_taints);
}

/// Whether `node` carries what we want and nothing we owned and dropped (the record
/// up to date included).
pub fn is_applied(node: &Node, wanted: &Desired) -> bool {
    let previous = Owned::recorded(node);
    let recorded_now = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(OWNED_ANNOTATION))
        .and_then(|v| serde_json::from_str::<Owned>(v).ok());
    if recorded_now.as_ref() != Some(&wanted.owned()) {
        return false;
    }
    let has = |theirs: Option<&BTreeMap<String, String>>, ours: &BTreeMap<String, String>| {
        ours.iter()
            .all(|(k, v)| theirs.and_then(|m| m.get(k)) == Some(v))
    };
    let current = node_taints(node);
    has(node.metadata.labels.as_ref(), &wanted.labels)
        && has(node.metadata.annotations.as_ref(), &wanted.annotations)
        && wanted.taints.iter().all(|t| {
            current
                .iter()
                .any(|x| x.key == t.key && x.effect == t.effect && x.value == t.value)
        })
        && taints(current, &previous, &wanted.taints).len() == current.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn registered(template: &NodeTemplate) -> Node {
        let mut node = template.to_node();
        apply(&mut node, &desired(template));
        node
    }

    fn keys_of(node: &Node) -> Vec<String> {
        node_taints(node).iter().map(taint_id).collect()
    }

    #[test]
    fn a_disabled_taint_goes_and_an_admin_taint_stays() {
        let mut node = registered(&NodeTemplate::new("n", "mock"));
        node.spec
            .as_mut()
            .and_then(|s| s.taints.as_mut())
            .expect("taints")
            .push(taint("admin", None, "NoSchedule"));
        let mut now = NodeTemplate::new("n", "mock");
        now.taints.clear();
        let wanted = desired(&now);
        assert!(!is_applied(&node, &wanted));
        apply(&mut node, &wanted);
        assert_eq!(keys_of(&node), ["admin:NoSchedule"]);
        assert!(is_applied(&node, &wanted));
    }

    #[test]
    fn a_changed_taint_replaces_ours_only() {
        let mut node = registered(&NodeTemplate::new("n", "mock"));
        let mut now = NodeTemplate::new("n", "mock");
        now.taints = vec![taint(
            "virtual-kubelet.io/provider",
            Some("mock"),
            "NoExecute",
        )];
        apply(&mut node, &desired(&now));
        assert_eq!(keys_of(&node), ["virtual-kubelet.io/provider:NoExecute"]);
    }

    #[test]
    fn labels_we_dropped_go_and_admin_labels_stay() {
        let mut first = NodeTemplate::new("n", "mock");
        first.labels.insert("team".into(), "a".into());
        first.labels.insert("tier".into(), "gold".into());
        let mut node = registered(&first);
        node.metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert("admin".into(), "x".into());
        let mut now = NodeTemplate::new("n", "mock");
        now.labels.insert("tier".into(), "silver".into());
        now.labels.insert("zone".into(), "z1".into());
        let wanted = desired(&now);
        let patch = merge_patch(&node, &wanted);
        assert_eq!(patch["metadata"]["labels"]["team"], serde_json::Value::Null);
        assert_eq!(patch["metadata"]["labels"]["tier"], "silver");
        assert!(
            patch["metadata"]["labels"].get("admin").is_none(),
            "untouched"
        );
        apply(&mut node, &wanted);
        let labels = node.metadata.labels.as_ref().expect("labels");
        assert!(!labels.contains_key("team"));
        assert_eq!(labels["tier"], "silver");
        assert_eq!(labels["zone"], "z1");
        assert_eq!(labels["admin"], "x");
        assert!(is_applied(&node, &wanted));
    }

    #[test]
    fn without_a_record_only_the_provider_taint_is_ours() {
        let mut node = NodeTemplate::new("n", "mock").to_node();
        node.spec
            .as_mut()
            .and_then(|s| s.taints.as_mut())
            .expect("taints")
            .push(taint("admin", None, "NoSchedule"));
        node.metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert("old-label".into(), "v".into());
        let mut now = NodeTemplate::new("n", "mock");
        now.taints.clear();
        apply(&mut node, &desired(&now));
        assert_eq!(keys_of(&node), ["admin:NoSchedule"]);
        assert!(
            node.metadata
                .labels
                .as_ref()
                .expect("labels")
                .contains_key("old-label"),
            "labels of unknown owner are kept"
        );
    }

    #[test]
    fn applied_means_our_metadata_is_there_whatever_else_is() {
        let mut t = NodeTemplate::new("n", "mock");
        t.annotations.insert("a".into(), "1".into());
        let wanted = desired(&t);
        let mut node = registered(&t);
        assert!(is_applied(&node, &wanted));
        node.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("example.com/team".into(), "blue".into());
        node.spec
            .get_or_insert_with(Default::default)
            .taints
            .get_or_insert_with(Vec::new)
            .push(taint("example.com/x", None, "NoSchedule"));
        assert!(
            is_applied(&node, &wanted),
            "foreign metadata does not matter"
        );
        let mut changed = node.clone();
        changed
            .metadata
            .annotations
            .as_mut()
            .expect("annotations")
            .remove("a");
        assert!(!is_applied(&changed, &wanted), "annotation missing");
        let mut changed = node.clone();
        if let Some(taints) = changed.spec.as_mut().and_then(|s| s.taints.as_mut()) {
            taints.retain(|x| x.key != keys::PROVIDER_TAINT);
        }
        assert!(!is_applied(&changed, &wanted), "taint missing");
        let mut changed = node.clone();
        changed
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(keys::ROLE.into(), "other".into());
        assert!(!is_applied(&changed, &wanted), "label changed");
        let mut changed = node;
        changed
            .metadata
            .annotations
            .as_mut()
            .expect("annotations")
            .remove(OWNED_ANNOTATION);
        assert!(!is_applied(&changed, &wanted), "record missing");
    }

    #[test]
    fn the_record_is_written_and_read_back() {
        let mut t = NodeTemplate::new("n", "mock");
        t.annotations.insert("note".into(), "hi".into());
        let node = registered(&t);
        let owned = Owned::recorded(&node);
        assert!(owned.labels.contains("type"));
        assert_eq!(owned.annotations, BTreeSet::from(["note".to_owned()]));
        assert_eq!(
            owned.taints,
            BTreeSet::from(["virtual-kubelet.io/provider:NoSchedule".to_owned()])
        );
    }
}
