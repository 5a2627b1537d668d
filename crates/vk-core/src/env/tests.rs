use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use serde_json::json;

use super::*;

/// An in-memory object source (a unit-test data seam, not an API server).
#[derive(Default)]
struct Objects {
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
    services: Vec<Service>,
    fail_reads: bool,
}

fn find<'a, T: kube::Resource>(items: &'a [T], ns: &str, name: &str) -> Option<&'a T> {
    items.iter().find(|o| {
        o.meta().namespace.as_deref() == Some(ns) && o.meta().name.as_deref() == Some(name)
    })
}

#[async_trait]
impl EnvSource for Objects {
    async fn config_map(&self, ns: &str, name: &str) -> vk_errdefs::Result<Option<ConfigMap>> {
        if self.fail_reads {
            return Err(vk_errdefs::Error::unavailable("api down"));
        }
        Ok(find(&self.config_maps, ns, name).cloned())
    }
    async fn secret(&self, ns: &str, name: &str) -> vk_errdefs::Result<Option<Secret>> {
        Ok(find(&self.secrets, ns, name).cloned())
    }
    async fn services(&self, ns: &str) -> vk_errdefs::Result<Vec<Service>> {
        Ok(self
            .services
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
            .cloned()
            .collect())
    }
}

fn objects() -> Objects {
    Objects {
        config_maps: vec![
            serde_json::from_value(json!({
                "metadata": {"name": "cfg", "namespace": "ns"},
                "data": {"LEVEL": "debug", "MODE": "fast", "bad key": "x", "1BAD": "y"}
            }))
            .expect("cm"),
        ],
        secrets: vec![
            serde_json::from_value(json!({
                "metadata": {"name": "creds", "namespace": "ns"},
                "data": {"PASSWORD": "c2VjcmV0"}
            }))
            .expect("secret"),
        ],
        services: vec![
            serde_json::from_value(json!({
                "metadata": {"name": "kubernetes", "namespace": "default"},
                "spec": {"clusterIP": "10.0.0.1", "ports": [{"name": "https", "port": 443}]}
            }))
            .expect("svc"),
            serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "ns"},
                "spec": {"clusterIP": "10.0.0.20", "ports": [{"port": 80}]}
            }))
            .expect("svc"),
        ],
        fail_reads: false,
    }
}

fn pod(env: serde_json::Value, env_from: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "p", "namespace": "ns", "uid": "u-1",
            "labels": {"app": "demo"}, "annotations": {"team": "core"}
        },
        "spec": {
            "nodeName": "vk-node",
            "serviceAccountName": "default",
            "containers": [{
                "name": "main",
                "image": "busybox",
                "env": env,
                "envFrom": env_from,
                "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}
            }]
        }
    }))
    .expect("pod")
}

fn ctx() -> EnvContext {
    EnvContext {
        host_ip: Some("192.0.2.10".into()),
        pod_ip: Some("10.244.0.5".into()),
        node_allocatable: [
            ("cpu".to_owned(), Quantity::from_units(8)),
            (
                "ephemeral-storage".to_owned(),
                Quantity::parse("10Gi").expect("q"),
            ),
        ]
        .into(),
        keep_secret_refs: false,
    }
}

fn env_of(pod: &Pod) -> BTreeMap<String, String> {
    pod.spec.as_ref().expect("spec").containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

fn names_in_order(pod: &Pod) -> Vec<String> {
    pod.spec.as_ref().expect("spec").containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect()
}

#[tokio::test]
async fn resolves_every_kind_of_reference() {
    let p = pod(
        json!([
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['team']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "CPU_CORES", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "DISK", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage", "divisor": "1Gi"}}},
            {"name": "LVL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
            {"name": "URL", "value": "http://$(POD_IP):8080/$(CFG_MODE)?svc=$(WEB_SERVICE_HOST)&x=$(NOPE)"}
        ]),
        json!([{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}]),
    );
    let resolved = resolve(&p, &ctx(), &objects()).await.expect("resolve");
    let env = env_of(&resolved.pod);
    let want = [
        ("NAME", "p"),
        ("NS", "ns"),
        ("UID", "u-1"),
        ("APP", "demo"),
        ("TEAM", "core"),
        ("NODE", "vk-node"),
        ("SA", "default"),
        ("HOST_IP", "192.0.2.10"),
        ("POD_IP", "10.244.0.5"),
        ("CPU", "250"),
        ("CPU_CORES", "1"),
        ("MEM_MI", "64"),
        ("DISK", "10"),
        ("LVL", "debug"),
        ("PW", "secret"),
        ("URL", "http://10.244.0.5:8080/fast?svc=10.0.0.20&x=$(NOPE)"),
        ("CFG_LEVEL", "debug"),
        ("CFG_MODE", "fast"),
        ("WEB_SERVICE_HOST", "10.0.0.20"),
        ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
    ];
    for (k, v) in want {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
    }
    let container = &resolved.pod.spec.as_ref().expect("spec").containers[0];
    assert!(container.env_from.is_none());
    assert!(
        container
            .env
            .iter()
            .flatten()
            .all(|e| e.value_from.is_none())
    );
    // Invalid keys from envFrom were skipped with an event naming them.
    assert_eq!(resolved.events.len(), 1, "{:?}", resolved.events);
    assert_eq!(
        resolved.events[0].reason,
        reasons::INVALID_ENVIRONMENT_VARIABLE_NAMES
    );
    assert!(
        resolved.events[0].message.contains("CFG_bad key"),
        "{}",
        resolved.events[0].message
    );
    assert!(!env.contains_key("CFG_bad key"));
}

#[tokio::test]
async fn order_is_deterministic_and_later_definitions_win() {
    let p = pod(
        json!([
            {"name": "B", "value": "1"},
            {"name": "A", "value": "2"},
            {"name": "CFG_MODE", "value": "override"},
            {"name": "B", "value": "3"}
        ]),
        json!([{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}]),
    );
    let first = resolve(&p, &ctx(), &objects()).await.expect("resolve");
    let second = resolve(&p, &ctx(), &objects()).await.expect("resolve");
    assert_eq!(names_in_order(&first.pod), names_in_order(&second.pod));
    let names = names_in_order(&first.pod);
    // "1BAD" is not a valid name on its own, but with the prefix it is.
    assert_eq!(&names[..5], ["CFG_1BAD", "CFG_LEVEL", "CFG_MODE", "B", "A"]);
    let env = env_of(&first.pod);
    assert_eq!(env["B"], "3");
    assert_eq!(env["CFG_MODE"], "override");
    // Service variables come last, sorted.
    let svc: Vec<&String> = names.iter().skip(5).collect();
    let mut sorted = svc.clone();
    sorted.sort();
    assert_eq!(svc, sorted);
}

#[tokio::test]
async fn mandatory_missing_objects_fail_with_upstream_reasons() {
    let cases = [
        (
            json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]),
            json!([]),
            reasons::MANDATORY_CONFIG_MAP_NOT_FOUND,
        ),
        (
            json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]),
            json!([]),
            reasons::MANDATORY_SECRET_NOT_FOUND,
        ),
        (
            json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]),
            json!([]),
            reasons::MANDATORY_CONFIG_MAP_KEY_NOT_FOUND,
        ),
        (
            json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope"}}}]),
            json!([]),
            reasons::MANDATORY_SECRET_KEY_NOT_FOUND,
        ),
        (
            json!([]),
            json!([{"configMapRef": {"name": "nope"}}]),
            reasons::MANDATORY_CONFIG_MAP_NOT_FOUND,
        ),
        (
            json!([]),
            json!([{"secretRef": {"name": "nope"}}]),
            reasons::MANDATORY_SECRET_NOT_FOUND,
        ),
    ];
    for (env, env_from, reason) in cases {
        let failed = resolve(&pod(env, env_from), &ctx(), &objects())
            .await
            .expect_err("must fail");
        assert_eq!(failed.error.reason, reason);
        assert!(!failed.error.transient);
        assert_eq!(failed.events.last().map(|e| e.reason), Some(reason));
        assert!(
            failed.error.message.contains("nope"),
            "{}",
            failed.error.message
        );
    }
}

#[tokio::test]
async fn optional_missing_objects_are_skipped_with_events() {
    let p = pod(
        json!([
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}},
            {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}},
            {"name": "Z", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope", "optional": true}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": true}}},
            {"name": "KEPT", "value": "yes"}
        ]),
        json!([{"secretRef": {"name": "absent", "optional": true}}]),
    );
    let resolved = resolve(&p, &ctx(), &objects()).await.expect("resolve");
    let reasons_seen: Vec<&str> = resolved.events.iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons_seen,
        [
            reasons::OPTIONAL_SECRET_NOT_FOUND,
            reasons::OPTIONAL_CONFIG_MAP_NOT_FOUND,
            reasons::OPTIONAL_SECRET_NOT_FOUND,
            reasons::OPTIONAL_CONFIG_MAP_KEY_NOT_FOUND,
            reasons::OPTIONAL_SECRET_KEY_NOT_FOUND,
        ]
    );
    let env = env_of(&resolved.pod);
    assert!(!env.contains_key("X") && !env.contains_key("Y") && !env.contains_key("Z"));
    assert_eq!(env["KEPT"], "yes");
}

#[tokio::test]
async fn read_failures_are_transient_errors() {
    let mut objs = objects();
    objs.fail_reads = true;
    let p = pod(
        json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": true}}}]),
        json!([]),
    );
    let failed = resolve(&p, &ctx(), &objs).await.expect_err("fails");
    assert_eq!(
        failed.error.reason,
        reasons::FAILED_TO_READ_OPTIONAL_CONFIG_MAP
    );
    assert!(failed.error.transient);
}

#[tokio::test]
async fn service_links_can_be_disabled_but_the_master_service_stays() {
    let mut p = pod(json!([]), json!([]));
    p.spec.as_mut().expect("spec").enable_service_links = Some(false);
    let env = env_of(&resolve(&p, &ctx(), &objects()).await.expect("resolve").pod);
    assert!(!env.contains_key("WEB_SERVICE_HOST"));
    assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.0.0.1");
}

#[tokio::test]
async fn unsupported_field_paths_name_the_variable_and_the_alternatives() {
    let p = pod(
        json!([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]),
        json!([]),
    );
    let failed = resolve(&p, &ctx(), &objects()).await.expect_err("fails");
    assert!(failed.error.message.contains("env X"));
    assert!(failed.error.message.contains("status.podIP"));
}

#[tokio::test]
async fn the_pods_own_ip_wins_over_the_hint_and_requests_default_to_limits() {
    let mut p = pod(
        json!([
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "REQ_MEM", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
            {"name": "REQ_CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}}
        ]),
        json!([]),
    );
    p.status = Some(serde_json::from_value(json!({"podIP": "10.1.2.3"})).expect("status"));
    let env = env_of(&resolve(&p, &ctx(), &objects()).await.expect("resolve").pod);
    assert_eq!(env["IP"], "10.1.2.3");
    assert_eq!(env["REQ_MEM"], (64u64 << 20).to_string());
    assert_eq!(env["REQ_CPU"], "250");
}

#[test]
fn env_name_validation_follows_kubernetes_1_20() {
    for ok in ["A", "a_b", "-x", ".x", "_1", "A.B-C"] {
        assert!(is_valid_env_name(ok), "{ok}");
    }
    for bad in ["", "1A", "a b", "a=b", "ä"] {
        assert!(!is_valid_env_name(bad), "{bad}");
    }
}

#[tokio::test]
async fn secret_origins_are_kept_only_when_asked() {
    let p = pod(
        json!([
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
            {"name": "LVL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}},
            {"name": "OVERRIDDEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
            {"name": "OVERRIDDEN", "value": "plain"}
        ]),
        json!([]),
    );
    let plain = resolve(&p, &ctx(), &objects()).await.expect("resolve");
    let env = &plain.pod.spec.as_ref().expect("spec").containers[0].env;
    assert!(env.iter().flatten().all(|e| e.value_from.is_none()));

    let kept = EnvContext {
        keep_secret_refs: true,
        ..ctx()
    };
    let resolved = resolve(&p, &kept, &objects()).await.expect("resolve");
    let env: Vec<_> = resolved.pod.spec.as_ref().expect("spec").containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let by_name = |n: &str| env.iter().find(|e| e.name == n).expect("var").clone();
    let pw = by_name("PW");
    assert_eq!(pw.value.as_deref(), Some("secret"));
    let origin = pw
        .value_from
        .and_then(|f| f.secret_key_ref)
        .expect("secret origin kept");
    assert_eq!(
        (origin.name.as_str(), origin.key.as_str()),
        ("creds", "PASSWORD")
    );
    assert!(
        by_name("LVL").value_from.is_none(),
        "ConfigMap values stay plain"
    );
    assert!(
        by_name("OVERRIDDEN").value_from.is_none(),
        "a later plain definition wins, and is plain"
    );
}
