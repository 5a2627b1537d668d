//! Pod checks: running, deployments, env resolution, deletion, failures, restarts.

use std::collections::BTreeMap;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;

use super::Target;
use super::harness::{Harness, eventually, is_running_and_ready};
use crate::wait::{eventually_ok, within};

/// A pod bound to the node reaches Running with a podIP and Ready=True, and
/// `kubectl get pods -o wide` shows it on the node.
pub async fn pod_runs_with_ip_and_ready(target: &dyn Target) {
    let h = Harness::start(target, "conf-run").await;
    h.create_pod(&h.pod("web", json!({}))).await;
    let pod = h.wait_running("web").await;
    let status = pod.status.unwrap_or_default();
    assert!(
        status.host_ip.is_some_and(|ip| !ip.is_empty()),
        "hostIP missing"
    );
    assert!(status.start_time.is_some(), "startTime missing");
    let wide = h.kubectl(&["get", "pods", "-o", "wide", "-n", h.namespace()]);
    let line = wide
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_default();
    assert!(
        line.contains("Running") && line.contains(h.node_name()),
        "kubectl get pods -o wide: {wide}"
    );
}

/// A Deployment whose pods tolerate the taint (and select this node) gets all replicas
/// Running on the virtual node, through the real scheduler.
pub async fn deployment_replicas_run_on_the_node(target: &dyn Target) {
    let h = Harness::start(target, "conf-deploy").await;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": h.namespace()},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": h.node_name()},
                    "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                    "containers": [{"name": "web", "image": "nginx:1.25"}]
                }
            }
        }
    }))
    .expect("deployment");
    let api: Api<Deployment> = Api::namespaced(h.client(), h.namespace());
    eventually_ok("creating the deployment", || {
        let (api, deployment) = (api.clone(), &deployment);
        async move { api.create(&PostParams::default(), deployment).await }
    })
    .await;
    let pods = h.pods();
    eventually("3 replicas Running and Ready on the virtual node", || {
        let pods = pods.clone();
        let node = h.node_name().to_owned();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            let ok = list
                .items
                .iter()
                .filter(|p| {
                    is_running_and_ready(p)
                        && p.spec.as_ref().and_then(|s| s.node_name.as_deref())
                            == Some(node.as_str())
                })
                .count();
            (ok == 3).then_some(())
        }
    })
    .await;
    eventually("the Deployment reports 3 available replicas", || {
        let api = api.clone();
        async move {
            let d = api.get("web").await.ok()?;
            (d.status?.available_replicas == Some(3)).then_some(())
        }
    })
    .await;
}

fn env_map(pod: &Pod) -> BTreeMap<String, String> {
    pod.spec
        .as_ref()
        .map(|s| s.containers[0].env.clone().unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect()
}

async fn create_config(h: &Harness) {
    let cms: Api<ConfigMap> = Api::namespaced(h.client(), h.namespace());
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings"},
        "data": {"LEVEL": "debug", "MODE": "fast"}
    }))
    .expect("cm");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let secrets: Api<Secret> = Api::namespaced(h.client(), h.namespace());
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds"},
        "stringData": {"PASSWORD": "s3cret"}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
}

/// The provider receives a fully resolved environment: ConfigMap/Secret keys, envFrom
/// with prefix, fieldRef (including status.podIP and status.hostIP), resourceFieldRef and
/// `$(VAR)` expansion. Needs [`super::Inspect`].
pub async fn env_is_resolved_for_the_provider(target: &dyn Target) {
    let h = Harness::start(target, "conf-env").await;
    create_config(&h).await;
    let pod = h.pod(
        "env",
        json!({"containers": [{
            "name": "main",
            "image": "example.com/app:1",
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {"name": "CPU_MILLIS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}}},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
                {"name": "URL", "value": "http://$(POD_IP):80/$(CFG_MODE)?x=$(UNDEFINED)"}
            ]
        }]}),
    );
    h.create_pod(&pod).await;
    let running = h.wait_running("env").await;
    let received = h
        .inspect()
        .received_pod(h.namespace(), "env")
        .expect("the provider has the pod");
    let env = env_map(&received);
    let pod_ip = running.status.and_then(|s| s.pod_ip).unwrap_or_default();
    let expect = [
        ("POD_NAME", "env".to_owned()),
        ("POD_NS", h.namespace().to_owned()),
        ("NODE", h.node_name().to_owned()),
        ("POD_IP", pod_ip.clone()),
        ("HOST_IP", "127.0.0.1".to_owned()),
        ("CPU_MILLIS", "500".to_owned()),
        ("MEM_MI", "128".to_owned()),
        ("LEVEL", "debug".to_owned()),
        ("PASSWORD", "s3cret".to_owned()),
        ("CFG_LEVEL", "debug".to_owned()),
        ("CFG_MODE", "fast".to_owned()),
        ("URL", format!("http://{pod_ip}:80/fast?x=$(UNDEFINED)")),
    ];
    for (k, v) in expect {
        assert_eq!(env.get(k), Some(&v), "env {k} (all: {env:?})");
    }
    assert!(!pod_ip.is_empty());
    assert!(
        env.contains_key("KUBERNETES_SERVICE_HOST"),
        "service links missing: {env:?}"
    );
    let container = &received.spec.expect("spec").containers[0];
    assert!(
        container.env_from.is_none(),
        "envFrom must be resolved away"
    );
}

/// A mandatory missing ConfigMap or Secret keeps the pod from the provider, with the
/// upstream event reason and `ProviderFailed` status; creating the object lets the pod
/// run. Needs [`super::Inspect`].
pub async fn mandatory_missing_references_block_the_pod(target: &dyn Target) {
    let h = Harness::start(target, "conf-mandatory").await;
    let inspect = h.inspect();
    for (name, env, reason) in [
        (
            "needs-cm",
            json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent-cm", "key": "k"}}}]),
            "MandatoryConfigMapNotFound",
        ),
        (
            "needs-secret",
            json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent-secret", "key": "k"}}}]),
            "MandatorySecretNotFound",
        ),
    ] {
        h.create_pod(&h.pod(
            name,
            json!({"containers": [{"name": "main", "image": "i", "env": env}]}),
        ))
        .await;
        h.wait_event(name, reason).await;
        let pod = h
            .wait_pod(name, "reason ProviderFailed", |p| {
                p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("ProviderFailed")
            })
            .await;
        assert_ne!(pod.status.and_then(|s| s.phase).as_deref(), Some("Running"));
        assert!(
            !inspect.has_pod(h.namespace(), name),
            "{name} must not reach the provider"
        );
    }
    // Creating the ConfigMap heals the first pod.
    let cms: Api<ConfigMap> = Api::namespaced(h.client(), h.namespace());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "absent-cm"}, "data": {"k": "v"}}))
            .expect("cm");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let pod = h.wait_running("needs-cm").await;
    assert_eq!(
        pod.status.and_then(|s| s.reason),
        None,
        "ProviderFailed must be cleared"
    );
}

/// Optional missing references are skipped with the upstream event reasons and the pod
/// runs.
pub async fn optional_missing_references_are_skipped(target: &dyn Target) {
    let h = Harness::start(target, "conf-optional").await;
    h.create_pod(&h.pod(
        "opt",
        json!({"containers": [{"name": "main", "image": "i", "env": [
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}},
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}}
        ]}]}),
    ))
    .await;
    h.wait_running("opt").await;
    h.wait_event("opt", "OptionalConfigMapNotFound").await;
    h.wait_event("opt", "OptionalSecretNotFound").await;
}

/// `kubectl delete pod` (graceful): the API shows a deletion grace period, the provider is
/// told, and the pod object is removed as soon as the provider reports it stopped.
/// Needs [`super::Inspect`].
pub async fn graceful_delete_reaches_the_provider(target: &dyn Target) {
    let h = Harness::start(target, "conf-delete").await;
    let inspect = h.inspect();
    h.create_pod(&h.pod("victim", json!({"terminationGracePeriodSeconds": 30})))
        .await;
    h.wait_running("victim").await;
    let deletes_before = inspect.delete_calls();
    // Watch the pod to see the graceful phase (deletionGracePeriodSeconds > 0).
    let api = h.pods();
    let stream = watcher(
        api.clone(),
        watcher::Config::default().fields("metadata.name=victim"),
    )
    .applied_objects()
    .boxed();
    // The watch delivers the pod as listed first; changes after that list (the delete
    // below) are then delivered by the watch that resumes from the list's version, so
    // the delete must not start before that first object arrived.
    let (listed, first_object) = tokio::sync::oneshot::channel();
    let observer = tokio::spawn(async move {
        let mut stream = stream;
        let mut listed = Some(listed);
        while let Some(Ok(pod)) = stream.next().await {
            if let Some(listed) = listed.take() {
                let _ = listed.send(());
            }
            if pod
                .metadata
                .deletion_grace_period_seconds
                .is_some_and(|g| g > 0)
            {
                return true;
            }
        }
        false
    });
    within("the watch on victim delivers the pod", first_object)
        .await
        .expect("the watch ended before delivering the pod");
    h.kubectl(&[
        "delete",
        "pod",
        "victim",
        "-n",
        h.namespace(),
        "--wait=false",
    ]);
    h.wait_pod_gone("victim").await;
    let saw_grace = within("the watch on victim sees the graceful delete", observer)
        .await
        .expect("observer");
    assert!(
        saw_grace,
        "deletionGracePeriodSeconds > 0 was never observed"
    );
    assert!(
        inspect.delete_calls() > deletes_before,
        "the provider was not asked to delete"
    );
    assert!(
        !inspect.has_pod(h.namespace(), "victim"),
        "the provider still has the pod"
    );
    h.wait_event("victim", "ProviderDeleteSuccess").await;
}

/// `kubectl delete --force --grace-period=0` removes the pod from the provider too.
/// Needs [`super::Inspect`].
pub async fn force_delete_reaches_the_provider(target: &dyn Target) {
    let h = Harness::start(target, "conf-force").await;
    let inspect = h.inspect();
    h.create_pod(&h.pod("forced", json!({}))).await;
    h.wait_running("forced").await;
    let api = h.pods();
    api.delete(
        "forced",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .expect("force delete");
    h.wait_pod_gone("forced").await;
    eventually(
        "the provider no longer has the force-deleted pod",
        || async { (!inspect.has_pod(h.namespace(), "forced")).then_some(()) },
    )
    .await;
}

/// A pod whose provider create keeps failing shows `ProviderFailed` with a Warning event
/// `ProviderCreateFailed`, keeps being retried, and runs once the provider heals.
/// Needs [`super::Inspect`].
pub async fn provider_failures_are_reported_and_retried(target: &dyn Target) {
    let h = Harness::start(target, "conf-fail").await;
    let inspect = h.inspect();
    inspect.fail_creates(Some("backend refused (injected)"));
    h.create_pod(&h.pod("flaky", json!({}))).await;
    h.wait_event("flaky", "ProviderCreateFailed").await;
    let pod = h
        .wait_pod("flaky", "reason ProviderFailed", |p| {
            p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("ProviderFailed")
        })
        .await;
    assert!(
        pod.status
            .and_then(|s| s.message)
            .unwrap_or_default()
            .contains("backend refused"),
        "the status message names the provider error"
    );
    let attempts = inspect.create_calls();
    eventually("create keeps being retried", || async {
        (inspect.create_calls() >= attempts + 2).then_some(())
    })
    .await;
    inspect.fail_creates(None);
    let pod = h.wait_running("flaky").await;
    assert_eq!(pod.status.and_then(|s| s.reason), None);
}

/// Restarting the controllers with 50 running pods, while the provider keeps its state:
/// no duplicate creates, no wrongful deletes, everything still Running; a provider-only
/// (dangling) pod is deleted. Needs [`super::Inspect`].
pub async fn restart_adopts_pods_and_removes_dangling_ones(target: &dyn Target) {
    let mut h = Harness::start(target, "conf-restart").await;
    let inspect = h.inspect();
    const N: usize = 50;
    for i in 0..N {
        h.create_pod(&h.pod(&format!("p{i:02}"), json!({}))).await;
    }
    let api = h.pods();
    let count_running = |api: Api<Pod>| async move {
        let list = api.list(&ListParams::default()).await.ok()?;
        Some(
            list.items
                .iter()
                .filter(|p| is_running_and_ready(p))
                .count(),
        )
    };
    eventually("50 pods Running", || {
        let api = api.clone();
        async move { (count_running(api).await? == N).then_some(()) }
    })
    .await;
    h.stop_controllers().await;
    let creates = inspect.create_calls();
    let deletes = inspect.delete_calls();
    // A pod the API never had appears in the provider while the controllers are down.
    let dangling = h.pod("dangling", json!({}));
    inspect.insert_pod(dangling);
    h.start_controllers().await;
    eventually("the dangling pod is deleted from the provider", || async {
        (!inspect.has_pod(h.namespace(), "dangling")).then_some(())
    })
    .await;
    // A duplicate create or a wrongful delete would happen in the sync of one of the 50
    // pods. Instead of giving the workers some time and checking that nothing happened,
    // wait for the event that proves each of those syncs has ended: the controller
    // synced and idle (nothing queued, in process or waiting for a retry).
    h.wait_until_idle().await;
    assert_eq!(
        inspect.create_calls(),
        creates,
        "pods were created again after the restart"
    );
    assert_eq!(
        inspect.delete_calls(),
        deletes + 1,
        "only the dangling pod may be deleted"
    );
    assert_eq!(
        count_running(api.clone()).await,
        Some(N),
        "all pods still Running"
    );
    for i in 0..N {
        assert!(
            inspect.has_pod(h.namespace(), &format!("p{i:02}")),
            "p{i:02} lost"
        );
    }
}

/// Pods already Succeeded or Failed when the controller starts are left untouched: not
/// created in the provider, status unchanged. Needs [`super::Inspect`].
pub async fn finished_pods_are_left_untouched(target: &dyn Target) {
    let mut h = Harness::start(target, "conf-finished").await;
    let inspect = h.inspect();
    h.stop_controllers().await;
    let api = h.pods();
    for (name, phase) in [("done", "Succeeded"), ("broken", "Failed")] {
        h.create_pod(&h.pod(name, json!({"restartPolicy": "Never"})))
            .await;
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": phase, "message": "finished elsewhere"}})),
        )
        .await
        .expect("set the phase");
    }
    let creates = inspect.create_calls();
    // Sending them to the provider or rewriting their status would happen in their
    // first syncs, which have all ended once the controller is synced and idle.
    h.start_controllers().await;
    h.wait_until_idle().await;
    assert_eq!(
        inspect.create_calls(),
        creates,
        "a finished pod was sent to the provider"
    );
    for (name, phase) in [("done", "Succeeded"), ("broken", "Failed")] {
        assert!(
            !inspect.has_pod(h.namespace(), name),
            "the finished pod {name} was sent to the provider"
        );
        let pod = api.get(name).await.expect("pod");
        let status = pod.status.unwrap_or_default();
        assert_eq!(status.phase.as_deref(), Some(phase));
        assert_eq!(status.message.as_deref(), Some("finished elsewhere"));
    }
}

/// Changing a running pod's labels reaches the provider as an update.
/// Needs [`super::Inspect`].
pub async fn label_changes_reach_the_provider(target: &dyn Target) {
    let h = Harness::start(target, "conf-update").await;
    let inspect = h.inspect();
    h.create_pod(&h.pod("upd", json!({}))).await;
    h.wait_running("upd").await;
    h.pods()
        .patch(
            "upd",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "gold"}}})),
        )
        .await
        .expect("label the pod");
    eventually("the provider's copy has the new label", || async {
        let p = inspect.received_pod(h.namespace(), "upd")?;
        (p.metadata.labels?.get("tier").map(String::as_str) == Some("gold")).then_some(())
    })
    .await;
    h.wait_event("upd", "ProviderUpdateSuccess").await;
}

/// A pod the provider loses on its own (not deleted by anyone) is marked Failed with
/// reason `NotFound`, its running containers terminated. Needs [`super::Inspect`].
pub async fn lost_pods_are_marked_failed(target: &dyn Target) {
    let h = Harness::start(target, "conf-lost").await;
    h.create_pod(&h.pod("lost", json!({}))).await;
    h.wait_running("lost").await;
    h.inspect().lose_pod(h.namespace(), "lost");
    let pod = h
        .wait_pod("lost", "phase Failed with reason NotFound", |p| {
            let s = p.status.as_ref();
            s.and_then(|s| s.phase.as_deref()) == Some("Failed")
                && s.and_then(|s| s.reason.as_deref()) == Some("NotFound")
        })
        .await;
    let terminated = pod
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default()
        .iter()
        .all(|c| c.state.as_ref().is_some_and(|st| st.terminated.is_some()));
    assert!(terminated, "containers of a lost pod must be terminated");
}
