//! Container group names and the tags tying a group to its pod.
//!
//! ARM names of container groups are 1–63 characters of lowercase letters, digits and
//! single hyphens, starting and ending with a letter or digit. A pod's group is named
//! `<namespace>-<name>` (sanitised, cut to 54 characters) plus `-` and eight hex
//! digits of a SHA-256 of node, namespace and name: deterministic, so a restarted
//! provider finds its groups again, and unique even when sanitising or cutting made two
//! pods' prefixes equal. The tags are what adoption trusts: a group belongs to a pod
//! when its [`TAG_NODE`], [`TAG_NAMESPACE`], [`TAG_POD`] match, and is *that* pod (not
//! an older one of the same name) when [`TAG_POD_UID`] matches.

use std::collections::BTreeMap;

/// The node that owns the group.
pub const TAG_NODE: &str = "vk-node";
/// The pod's namespace.
pub const TAG_NAMESPACE: &str = "vk-namespace";
/// The pod's name.
pub const TAG_POD: &str = "vk-pod";
/// The pod's UID.
pub const TAG_POD_UID: &str = "vk-pod-uid";
/// The pod's creation time (RFC 3339), for the pod rebuilt at adoption.
pub const TAG_POD_CREATED: &str = "vk-pod-created";
/// A hash of the group's desired body: an update with the same hash sends nothing.
pub const TAG_SPEC_HASH: &str = "vk-spec-hash";

/// The longest prefix kept before the hash suffix.
const PREFIX_MAX: usize = 54;

/// The container group name of pod `namespace/name` on `node`.
///
/// ```
/// let name = vk_aci::mapping::group_name("vk-aci", "default", "web-7d9f.abc");
/// assert!(name.starts_with("default-web-7d9f-abc-"));
/// assert_eq!(name.len(), "default-web-7d9f-abc-".len() + 8);
/// ```
pub fn group_name(node: &str, namespace: &str, name: &str) -> String {
    let mut prefix = String::new();
    for c in format!("{namespace}-{name}").chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (prefix.is_empty() || prefix.ends_with('-')) {
            continue;
        }
        prefix.push(c);
    }
    prefix.truncate(PREFIX_MAX);
    let prefix = prefix.trim_end_matches('-');
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{node}/{namespace}/{name}").as_bytes(),
    );
    let hash: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if prefix.is_empty() {
        format!("pod-{hash}")
    } else {
        format!("{prefix}-{hash}")
    }
}

/// The pod a group's tags name, if they name one of `node`'s pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerTags {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: Option<String>,
    /// Creation time.
    pub created: Option<String>,
    /// Spec hash.
    pub spec_hash: Option<String>,
}

/// Reads the owner tags of a group, `None` when it is not `node`'s.
pub fn owner(tags: &BTreeMap<String, String>, node: &str) -> Option<OwnerTags> {
    if tags.get(TAG_NODE).map(String::as_str) != Some(node) {
        return None;
    }
    Some(OwnerTags {
        namespace: tags.get(TAG_NAMESPACE)?.clone(),
        name: tags.get(TAG_POD)?.clone(),
        uid: tags.get(TAG_POD_UID).cloned(),
        created: tags.get(TAG_POD_CREATED).cloned(),
        spec_hash: tags.get(TAG_SPEC_HASH).cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
            && !name.contains("--")
    }

    #[test]
    fn names_are_valid_arm_names_and_distinct() {
        let long = "x".repeat(253);
        for (ns, name) in [
            ("default", "web"),
            ("a-b", "c"),
            ("a", "b-c"),
            ("Team.NS", "pod..name--1"),
            ("kube-system", long.as_str()),
            ("-", "."),
        ] {
            let n = group_name("node", ns, name);
            assert!(valid(&n), "{n:?} from {ns}/{name}");
        }
        assert_ne!(
            group_name("node", "a-b", "c"),
            group_name("node", "a", "b-c")
        );
        assert_ne!(group_name("n1", "a", "b"), group_name("n2", "a", "b"));
        assert_eq!(group_name("n1", "a", "b"), group_name("n1", "a", "b"));
    }

    #[test]
    fn only_the_nodes_tagged_groups_are_owned() {
        let tags: BTreeMap<String, String> = [
            (TAG_NODE, "vk"),
            (TAG_NAMESPACE, "ns"),
            (TAG_POD, "p"),
            (TAG_POD_UID, "u"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let found = owner(&tags, "vk").expect("owned");
        assert_eq!(
            (found.namespace.as_str(), found.uid.as_deref()),
            ("ns", Some("u"))
        );
        assert!(owner(&tags, "other").is_none());
    }
}
