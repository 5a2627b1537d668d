//! The kubelet's `--node-labels` and `--register-with-taints`, parsed and checked as the
//! kubelet checks them.
//!
//! * Labels: `key=value,...`; keys are qualified names (`[prefix/]name`, the prefix a DNS
//!   subdomain, the name at most 63 characters of alphanumerics, `-`, `_`, `.`, starting
//!   and ending alphanumeric), values at most 63 such characters (or empty). Labels in
//!   the `kubernetes.io` and `k8s.io` namespaces are refused unless the kubelet itself may
//!   set them (`kubernetes.io/hostname`, `kubernetes.io/os`, `topology.kubernetes.io/zone`,
//!   anything under `kubelet.kubernetes.io/` or `node.kubernetes.io/`, ...): the
//!   NodeRestriction admission plugin would refuse the others.
//! * Taints: `key=value:Effect` or `key:Effect`, effect `NoSchedule`, `PreferNoSchedule`
//!   or `NoExecute`.
//!
//! ```
//! let labels = vk_cli::node_meta::parse_labels("team=blue,node.kubernetes.io/pool=a").unwrap();
//! assert_eq!(labels["team"], "blue");
//! assert!(vk_cli::node_meta::parse_labels("kubernetes.io/role=master").is_err());
//! let taints = vk_cli::node_meta::parse_taints("gpu=true:NoSchedule,spot:PreferNoSchedule").unwrap();
//! assert_eq!((taints[1].key.as_str(), taints[1].value.as_deref()), ("spot", None));
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Taint;

/// Labels in the `kubernetes.io`/`k8s.io` namespaces the kubelet may set on its Node.
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.kubernetes.io/zone",
    "failure-domain.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
];

/// Label namespaces (with their subdomains) the kubelet may use freely.
const KUBELET_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

/// Parses `--node-labels`: `key=value` pairs separated by commas (empty: none).
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not key=value"))?;
        check_qualified_name(key).map_err(|e| format!("label key {key:?}: {e}"))?;
        check_label_value(value).map_err(|e| format!("label {key:?} value {value:?}: {e}"))?;
        check_kubelet_may_set(key)?;
        out.insert(key.to_owned(), value.to_owned());
    }
    Ok(out)
}

/// Parses `--register-with-taints`: `key=value:Effect` or `key:Effect`, comma-separated.
pub fn parse_taints(text: &str) -> Result<Vec<Taint>, String> {
    let mut out: Vec<Taint> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (rest, effect) = item
            .rsplit_once(':')
            .ok_or_else(|| format!("{item:?} is not key=value:Effect or key:Effect"))?;
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            return Err(format!(
                "taint {item:?}: effect {effect:?} must be NoSchedule, PreferNoSchedule or NoExecute"
            ));
        }
        let (key, value) = match rest.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (rest, None),
        };
        check_qualified_name(key).map_err(|e| format!("taint key {key:?}: {e}"))?;
        if let Some(v) = value {
            check_label_value(v).map_err(|e| format!("taint {key:?} value {v:?}: {e}"))?;
        }
        if out.iter().any(|t| t.key == key && t.effect == effect) {
            return Err(format!("taint {key}:{effect} is given twice"));
        }
        out.push(Taint {
            key: key.to_owned(),
            value: value.map(str::to_owned),
            effect: effect.to_owned(),
            time_added: None,
        });
    }
    Ok(out)
}

/// A label/taint key: `[prefix/]name`.
fn check_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return Err(format!(
            "prefix {p:?} must be a DNS subdomain (lowercase letters, digits, '-' and '.')"
        ));
    }
    if name.is_empty() || name.len() > 63 || !is_label_chars(name) {
        return Err(
            "the name must be 1-63 characters of letters, digits, '-', '_' and '.', starting \
             and ending with a letter or digit"
                .to_owned(),
        );
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters as a label name.
fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= 63 && is_label_chars(value)) {
        Ok(())
    } else {
        Err(
            "must be at most 63 characters of letters, digits, '-', '_' and '.', starting and \
             ending with a letter or digit"
                .to_owned(),
        )
    }
}

fn is_label_chars(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    edge(bytes.first())
        && edge(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.first().is_some_and(u8::is_ascii_alphanumeric)
                && b.last().is_some_and(u8::is_ascii_alphanumeric)
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Refuses `kubernetes.io`/`k8s.io` labels the kubelet may not set.
fn check_kubelet_may_set(key: &str) -> Result<(), String> {
    let Some((prefix, _)) = key.split_once('/') else {
        return Ok(());
    };
    let within = |ns: &str| prefix == ns || prefix.ends_with(&format!(".{ns}"));
    if !within("kubernetes.io") && !within("k8s.io") {
        return Ok(());
    }
    if KUBELET_LABELS.contains(&key) || KUBELET_NAMESPACES.iter().any(|ns| within(ns)) {
        return Ok(());
    }
    Err(format!(
        "label {key:?} is in the kubernetes.io/k8s.io namespace, which a node may only use \
         for {} or under {}; use your own prefix (e.g. example.com/{})",
        KUBELET_LABELS.join(", "),
        KUBELET_NAMESPACES
            .iter()
            .map(|n| format!("{n}/"))
            .collect::<Vec<_>>()
            .join(", "),
        key.rsplit('/').next().unwrap_or(key)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_validate() {
        let l = parse_labels(" a=1 , example.com/b=two,c=,node.kubernetes.io/pool=x").expect("ok");
        assert_eq!(l.len(), 4);
        assert_eq!(l["c"], "");
        assert!(parse_labels("").expect("empty").is_empty());
        for (bad, why) in [
            ("novalue", "key=value"),
            ("-a=1", "name"),
            ("a=-1", "value"),
            ("Example.com/a=1", "prefix"),
            (&format!("a={}", "x".repeat(64)), "value"),
            ("kubernetes.io/role=agent", "kubernetes.io/k8s.io"),
            ("foo.k8s.io/x=y", "kubernetes.io/k8s.io"),
        ] {
            let e = parse_labels(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        for allowed in [
            "kubernetes.io/hostname=h",
            "topology.kubernetes.io/zone=z",
            "kubelet.kubernetes.io/x=y",
            "a.node.kubernetes.io/x=y",
        ] {
            assert!(parse_labels(allowed).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn taints_parse_and_validate() {
        let t = parse_taints("a=b:NoSchedule, example.com/c:NoExecute").expect("ok");
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].key.as_str(), t[0].value.as_deref()), ("a", Some("b")));
        assert_eq!(
            (t[1].key.as_str(), t[1].effect.as_str()),
            ("example.com/c", "NoExecute")
        );
        for (bad, why) in [
            ("a=b", "Effect"),
            ("a=b:Sometimes", "effect"),
            ("=b:NoSchedule", "name"),
            ("a:NoSchedule,a:NoSchedule", "twice"),
        ] {
            let e = parse_taints(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(
            parse_taints("a:NoSchedule,a:NoExecute").is_ok(),
            "same key, other effect"
        );
    }
}
