//! Names, labels and annotations that tie remote objects to their home ones.
//!
//! # Remote pods
//!
//! A home pod `ns/name` with UID `u` becomes the remote pod
//! `<name, at most 52 characters>-<10 hex digits of the SHA-256 of ns, name and u>` in the mapped
//! namespace ([`remote_pod_name`]): two home namespaces with a pod of the same name,
//! or a pod re-created under the same name while its predecessor still terminates,
//! never share a remote name, and the result stays a valid hostname (≤ 63).
//!
//! Every remote pod carries:
//! * label [`NODE_LABEL`] = the home node (the remote watch selects on it; hashed when
//!   the node name is not a valid label value),
//! * label [`HOME_UID_LABEL`] = the home pod's UID (adoption and clean-up are exact by
//!   UID),
//! * label [`MANAGED_LABEL`] = `true`,
//! * annotations [`HOME_NAMESPACE_ANNOTATION`], [`HOME_NAME_ANNOTATION`],
//!   [`HOME_NODE_ANNOTATION`] (the real values, which labels cannot always hold).
//!
//! # Copied ConfigMaps and Secrets
//!
//! A home ConfigMap or Secret `ns/name` is copied as
//! `<name, at most 52 characters>-<10 hex digits of the SHA-256 of ns and name>`
//! ([`dependency_name`]), so a copy never overwrites a remote object of its own and
//! copies from two home namespaces sharing a remote namespace never collide.

use ring::digest::{SHA256, digest};

/// The prefix of every label and annotation vk-kube sets.
pub const PREFIX: &str = "vk-kube.virtual-kubelet.io";
/// Label: the home node a remote object belongs to.
pub const NODE_LABEL: &str = "vk-kube.virtual-kubelet.io/node";
/// Label: the UID of the home pod a remote pod runs.
pub const HOME_UID_LABEL: &str = "vk-kube.virtual-kubelet.io/home-uid";
/// Label: marks objects vk-kube manages (`true`).
pub const MANAGED_LABEL: &str = "vk-kube.virtual-kubelet.io/managed";
/// Annotation: the home object's namespace.
pub const HOME_NAMESPACE_ANNOTATION: &str = "vk-kube.virtual-kubelet.io/home-namespace";
/// Annotation: the home object's name.
pub const HOME_NAME_ANNOTATION: &str = "vk-kube.virtual-kubelet.io/home-name";
/// Annotation: the home node's name.
pub const HOME_NODE_ANNOTATION: &str = "vk-kube.virtual-kubelet.io/home-node";
/// Annotation on a remote pod: the home pod's tolerations (JSON), so that the home view
/// of the pod matches the home pod whatever the scheduling policy did remotely.
pub const HOME_TOLERATIONS_ANNOTATION: &str = "vk-kube.virtual-kubelet.io/home-tolerations";
/// Annotation on a remote pod: the ConfigMaps and Secrets it uses (JSON list of
/// `{"kind", "name"}` in the home namespace).
pub const DEPENDENCIES_ANNOTATION: &str = "vk-kube.virtual-kubelet.io/dependencies";
/// Annotation on a copied ConfigMap/Secret: the home object's resourceVersion it was
/// copied from.
pub const HOME_VERSION_ANNOTATION: &str = "vk-kube.virtual-kubelet.io/home-resource-version";
/// Label on the home node: the remote cluster's name.
pub const CLUSTER_LABEL: &str = "vk-kube.virtual-kubelet.io/cluster";

/// The longest kept part of a home name in a remote name.
const KEPT: usize = 52;

/// Ten hex digits of the SHA-256 of `parts` joined with NUL (which no name contains).
fn short_hash(parts: &[&str]) -> String {
    let d = digest(&SHA256, parts.join("\0").as_bytes());
    d.as_ref()
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `name` cut to `max` characters, without a trailing `-` or `.`.
fn cut(name: &str, max: usize) -> &str {
    let end = name.char_indices().nth(max).map_or(name.len(), |(i, _)| i);
    name[..end].trim_end_matches(['-', '.'])
}

/// The remote name of the home pod `namespace/name` with UID `uid`.
///
/// ```
/// let a = vk_kube::naming::remote_pod_name("team-a", "web-0", "u1");
/// let b = vk_kube::naming::remote_pod_name("team-b", "web-0", "u1");
/// assert!(a.starts_with("web-0-") && a.len() == "web-0-".len() + 10);
/// assert_ne!(a, b);
/// ```
pub fn remote_pod_name(namespace: &str, name: &str, uid: &str) -> String {
    format!(
        "{}-{}",
        cut(name, KEPT),
        short_hash(&[namespace, name, uid])
    )
}

/// The remote name of a copy of the home ConfigMap or Secret `namespace/name`.
pub fn dependency_name(namespace: &str, name: &str) -> String {
    format!("{}-{}", cut(name, KEPT), short_hash(&[namespace, name]))
}

/// The value of [`NODE_LABEL`] for home node `node`: the name itself when it is a valid
/// label value, else `h-` and a hash of it.
pub fn node_label_value(node: &str) -> String {
    if is_label_value(node) {
        node.to_owned()
    } else {
        format!("h-{}", short_hash(&[node]))
    }
}

/// Whether `s` is a valid label value (empty, or ≤ 63 alphanumerics, `-`, `_`, `.`,
/// starting and ending with an alphanumeric).
pub fn is_label_value(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Whether `s` is a DNS-1123 label (≤ 63 lowercase alphanumerics or `-`, starting and
/// ending with an alphanumeric): a namespace name, a hostname.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// `prefix` + `namespace`, shortened with a hash when longer than a namespace may be.
pub fn prefixed_namespace(prefix: &str, namespace: &str) -> String {
    let full = format!("{prefix}{namespace}");
    if full.len() <= 63 {
        return full;
    }
    let hash = short_hash(&[namespace]);
    format!("{}-{hash}", cut(&full, 63 - 11))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names_are_stable_distinct_and_valid() {
        let a = remote_pod_name("ns", "web", "uid-1");
        assert_eq!(a, remote_pod_name("ns", "web", "uid-1"));
        assert_ne!(a, remote_pod_name("ns", "web", "uid-2"));
        assert_ne!(a, remote_pod_name("ns2", "web", "uid-1"));
        // "ns/a-b" + "c" and "ns/a" + "b-c" must not meet through the separator.
        assert_ne!(
            remote_pod_name("ns", "a", "b/c"),
            remote_pod_name("ns", "a/b", "c")
        );
        let long = "x".repeat(51) + "-.y";
        let n = remote_pod_name("ns", &long, "u");
        assert!(is_dns_label(&n), "{n}");
        assert!(n.starts_with(&"x".repeat(51)), "{n}");
        assert!(!n.contains("--"), "{n}");
    }

    #[test]
    fn dependency_names_depend_on_the_namespace() {
        let a = dependency_name("a", "cfg");
        assert!(a.starts_with("cfg-") && a.len() == 14, "{a}");
        assert_ne!(a, dependency_name("b", "cfg"));
    }

    #[test]
    fn label_values_and_dns_labels() {
        assert!(is_label_value("vk-kube.node_1"));
        assert!(!is_label_value("-a"));
        assert!(!is_label_value(&"a".repeat(64)));
        assert_eq!(node_label_value("n1"), "n1");
        let hashed = node_label_value(&"n".repeat(80));
        assert!(hashed.starts_with("h-") && is_label_value(&hashed));
        assert!(is_dns_label("team-a"));
        assert!(!is_dns_label("Team"));
        assert!(!is_dns_label("a.b"));
    }

    #[test]
    fn prefixed_namespaces_stay_valid() {
        assert_eq!(prefixed_namespace("home-", "ns"), "home-ns");
        let long = prefixed_namespace("home-", &"n".repeat(63));
        assert!(is_dns_label(&long) && long.len() <= 63, "{long}");
        assert_ne!(long, prefixed_namespace("home-", &"n".repeat(62)));
    }
}
