//! What a pod's supervisor reports first: a pod without init containers is reported once
//! its container runs (one status write for a pod that starts), not ContainerCreating
//! first; a pod with init containers is reported while they run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStatus, Pod, Secret, Service};
use vk_core::env::EnvSource;
use vk_process::instance::Launcher;
use vk_process::layout::PodDir;
use vk_process::lifecycle::Backoff;
use vk_process::supervisor::{Context, PodRuntime, Publisher, run_pod};
use vk_testkit::wait;

/// Keeps every published status.
#[derive(Default)]
struct Recorder {
    reports: Mutex<Vec<Pod>>,
}

impl Publisher for Recorder {
    fn publish(&self, pod: Pod) {
        self.reports.lock().expect("lock").push(pod);
    }
}

impl Recorder {
    fn all(&self) -> Vec<Pod> {
        self.reports.lock().expect("lock").clone()
    }
}

/// No ConfigMaps, Secrets or Services.
struct Nothing;

#[async_trait]
impl EnvSource for Nothing {
    async fn config_map(&self, _: &str, _: &str) -> vk_errdefs::Result<Option<ConfigMap>> {
        Ok(None)
    }
    async fn secret(&self, _: &str, _: &str) -> vk_errdefs::Result<Option<Secret>> {
        Ok(None)
    }
    async fn services(&self, _: &str) -> vk_errdefs::Result<Vec<Service>> {
        Ok(Vec::new())
    }
}

/// The status of the container (or init container) `name` in `pod` (empty if none).
fn container(pod: &Pod, name: &str) -> ContainerStatus {
    let status = pod.status.as_ref();
    status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(
            status
                .and_then(|s| s.init_container_statuses.as_ref())
                .into_iter()
                .flatten(),
        )
        .find(|c| c.name == name)
        .cloned()
        .unwrap_or_default()
}

/// The waiting reason, or "running"/"terminated", of the container `name` in `pod`.
fn state(pod: &Pod, name: &str) -> String {
    let c = container(pod, name).state.unwrap_or_default();
    match (c.waiting, c.running, c.terminated) {
        (Some(w), _, _) => w.reason.unwrap_or_default(),
        (_, Some(_), _) => "running".into(),
        (_, _, Some(_)) => "terminated".into(),
        _ => "none".into(),
    }
}

/// Runs `pod` under a supervisor until its container `main` runs; returns the reports
/// published until then, then stops the pod.
async fn reports_until_running(pod: serde_json::Value) -> Vec<Pod> {
    let state_dir = tempfile::tempdir().expect("tempdir");
    let pod: Pod = serde_json::from_value(pod).expect("pod");
    let dir = PodDir::new(state_dir.path(), "ns", "p", "u1");
    std::fs::create_dir_all(dir.root()).expect("pod dir");
    let recorder = Arc::new(Recorder::default());
    let ctx = Context {
        launcher: Arc::new(Launcher {
            shim: env!("CARGO_BIN_EXE_vk-process").into(),
            images: BTreeMap::new(),
            cgroup_parent: None,
        }),
        source: Arc::new(Nothing),
        tokens: None,
        publisher: recorder.clone(),
        volume_refresh: Duration::from_secs(3600),
        backoff: Backoff::default(),
    };
    let rt = Arc::new(PodRuntime::new(pod, dir, None, "127.0.0.1"));
    let task = tokio::spawn(run_pod(ctx, rt.clone()));
    wait::eventually("the container to run", || {
        let running = recorder.all().iter().any(|p| state(p, "main") == "running");
        async move { running.then_some(()) }
    })
    .await;
    let reports = recorder.all();
    rt.request_stop(Duration::from_secs(5));
    rt.finished().await;
    task.await.expect("supervisor");
    reports
}

#[tokio::test]
async fn a_pod_without_init_containers_is_first_reported_running() {
    let reports = reports_until_running(serde_json::json!({
        "metadata": {"namespace": "ns", "name": "p", "uid": "u1"},
        "spec": {"containers": [{"name": "main", "image": "i", "command": ["sleep", "300"]}]}
    }))
    .await;
    let states: Vec<String> = reports.iter().map(|p| state(p, "main")).collect();
    assert_eq!(
        states.first().map(String::as_str),
        Some("running"),
        "{states:?}"
    );
    let phase = reports[0].status.as_ref().and_then(|s| s.phase.clone());
    assert_eq!(phase.as_deref(), Some("Running"));
}

#[tokio::test]
async fn a_container_without_probes_is_first_reported_ready() {
    // As the kubelet reports it: started and ready in the report that says it runs, not
    // in one more status write after it.
    let reports = reports_until_running(serde_json::json!({
        "metadata": {"namespace": "ns", "name": "p", "uid": "u1"},
        "spec": {"containers": [{"name": "main", "image": "i", "command": ["sleep", "300"]}]}
    }))
    .await;
    let main = container(&reports[0], "main");
    assert_eq!((main.started, main.ready), (Some(true), true), "{main:?}");
    let status = reports[0].status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone());
    assert_eq!(ready.as_deref(), Some("True"));
}

#[tokio::test]
async fn a_container_with_a_readiness_probe_is_first_reported_not_ready() {
    let reports = reports_until_running(serde_json::json!({
        "metadata": {"namespace": "ns", "name": "p", "uid": "u1"},
        "spec": {"containers": [{
            "name": "main", "image": "i", "command": ["sleep", "300"],
            "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 60}
        }]}
    }))
    .await;
    let main = container(&reports[0], "main");
    assert_eq!((main.started, main.ready), (Some(true), false), "{main:?}");
}

#[tokio::test]
async fn a_pod_with_init_containers_is_reported_while_they_run() {
    let reports = reports_until_running(serde_json::json!({
        "metadata": {"namespace": "ns", "name": "p", "uid": "u1"},
        "spec": {
            "initContainers": [{"name": "init", "image": "i", "command": ["true"]}],
            "containers": [{"name": "main", "image": "i", "command": ["sleep", "300"]}]
        }
    }))
    .await;
    assert_eq!(state(&reports[0], "main"), "PodInitializing");
}
