//! The conformance suite (vk-testkit) against vk-process, on the real control plane:
//! every pod of the suite runs as real local processes (`sleep 3600` for the suite's
//! images).
//!
//! vk-process has no fault-injection switches of its own, so [`Recorded`] wraps the real
//! provider: it counts and records calls, and fails creates or pings on demand — the
//! provider underneath is untouched. The suite's "lost pod" check is left out: a
//! vk-process pod is lost only when its state directory is, which the provider itself
//! never reports as such.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use vk_core::capabilities::Capabilities;
use vk_core::{
    NodeProvider, NodeStatusSink, PodLifecycleHandler, PodNotifier, PodRef, ResourceAccess,
};
use vk_errdefs::{Error, Result};
use vk_process::{ProcessConfig, ProcessProvider, SharedProvider};
use vk_testkit::conformance::{self, Inspect, Instance, Target};

const SHIM: &str = env!("CARGO_BIN_EXE_vk-process");

/// vk-process with call counting and fault switches around it.
struct Recorded {
    inner: Arc<SharedProvider>,
    state_dir: PathBuf,
    received: Mutex<HashMap<(String, String), Pod>>,
    creates: AtomicU64,
    deletes: AtomicU64,
    fail_creates: Mutex<Option<String>>,
    fail_pings: Mutex<Option<String>>,
}

fn key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Runs a provider call from the suite's synchronous [`Inspect`] methods.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[async_trait]
impl PodLifecycleHandler for Recorded {
    async fn create_pod(&self, pod: &Pod) -> Result<()> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        let failure = self.fail_creates.lock().expect("lock").clone();
        if let Some(message) = failure {
            return Err(Error::unavailable(message));
        }
        self.received
            .lock()
            .expect("lock")
            .insert(key(pod), pod.clone());
        self.inner.create_pod(pod).await
    }
    async fn update_pod(&self, pod: &Pod) -> Result<()> {
        self.received
            .lock()
            .expect("lock")
            .insert(key(pod), pod.clone());
        self.inner.update_pod(pod).await
    }
    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete_pod(pod).await
    }
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        self.inner.get_pod(namespace, name).await
    }
    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        self.inner.get_pod_status(namespace, name).await
    }
    async fn get_pods(&self) -> Result<Vec<Pod>> {
        self.inner.get_pods().await
    }
    async fn get_pod_refs(&self) -> Result<Vec<PodRef>> {
        self.inner.get_pod_refs().await
    }
    fn pod_notifier(&self) -> Option<&dyn PodNotifier> {
        self.inner.pod_notifier()
    }
    fn capabilities(self: Arc<Self>) -> Capabilities {
        Arc::clone(&self.inner).capabilities()
    }
    fn pod_ip_hint(&self, pod: &Pod) -> Option<std::net::IpAddr> {
        self.inner.pod_ip_hint(pod)
    }
}

#[async_trait]
impl NodeProvider for Recorded {
    async fn ping(&self) -> Result<()> {
        let failure = self.fail_pings.lock().expect("lock").clone();
        match failure {
            Some(message) => Err(Error::unavailable(message)),
            None => self.inner.ping().await,
        }
    }
    fn notify_node_status(&self, sink: NodeStatusSink) {
        self.inner.notify_node_status(sink);
    }
}

impl Inspect for Recorded {
    fn received_pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.received
            .lock()
            .expect("lock")
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }
    fn has_pod(&self, namespace: &str, name: &str) -> bool {
        block_on(self.inner.get_pod(namespace, name))
            .ok()
            .flatten()
            .is_some()
    }
    fn create_calls(&self) -> u64 {
        self.creates.load(Ordering::SeqCst)
    }
    fn delete_calls(&self) -> u64 {
        self.deletes.load(Ordering::SeqCst)
    }
    fn fail_creates(&self, message: Option<&str>) {
        *self.fail_creates.lock().expect("lock") = message.map(str::to_owned);
    }
    fn fail_pings(&self, message: Option<&str>) {
        *self.fail_pings.lock().expect("lock") = message.map(str::to_owned);
    }
    fn insert_pod(&self, pod: Pod) {
        // Really started in vk-process, behind the core's back.
        block_on(self.inner.create_pod(&pod)).expect("vk-process runs the dangling pod");
    }
    fn lose_pod(&self, _namespace: &str, _name: &str) {
        panic!("vk-process cannot lose a pod on demand; the lost-pod check is not run for it");
    }
}

impl Drop for Recorded {
    /// Stops the pods the check left running: the suite's node is gone, nobody else
    /// will. Their supervisors are told to stop first (so none restarts a container),
    /// then the container process groups (PIDs in the state directory) are killed.
    fn drop(&mut self) {
        for rt in self.inner.0.runtimes() {
            rt.request_stop(std::time::Duration::ZERO);
        }
        for pid_file in pid_files(&self.state_dir) {
            let pid = std::fs::read(&pid_file)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["pid"].as_i64())
                .and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw);
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn pid_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(pid_files(&path));
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".pid.json"))
        {
            out.push(path);
        }
    }
    out
}

struct Process;

impl Target for Process {
    fn name(&self) -> &str {
        "process"
    }

    fn instantiate(&self, node_name: &str, resources: ResourceAccess) -> Instance {
        let state_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("conformance")
            .join(node_name);
        let sleeper = vec!["sleep".to_owned(), "3600".to_owned()];
        let config = ProcessConfig {
            state_dir: state_dir.clone(),
            images: ["example.com/app:1", "nginx:1.25", "i"]
                .into_iter()
                .map(|image| (image.to_owned(), sleeper.clone()))
                .collect(),
            ..Default::default()
        };
        let provider = ProcessProvider::new(
            node_name,
            config,
            SHIM.into(),
            Arc::new(resources),
            "127.0.0.1",
        );
        let recorded = Arc::new(Recorded {
            inner: Arc::new(SharedProvider(Arc::new(provider))),
            state_dir,
            received: Mutex::default(),
            creates: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            fail_creates: Mutex::new(None),
            fail_pings: Mutex::new(None),
        });
        Instance {
            pods: recorded.clone(),
            node: Some(recorded.clone()),
            inspect: Some(recorded),
        }
    }
}

macro_rules! check {
    ($name:ident => $path:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $path(&Process).await;
        }
    };
}

check!(node_registers_and_turns_ready => conformance::node::registers_and_turns_ready);
check!(deleted_node_is_recreated => conformance::node::deleted_node_is_recreated);
check!(deleted_node_keeps_its_pods => conformance::node::deleted_node_keeps_its_pods);
check!(failing_ping_turns_node_not_ready => conformance::node::failing_ping_turns_node_not_ready);
check!(foreign_metadata_and_conditions_survive => conformance::node::foreign_metadata_and_conditions_survive);
check!(pod_runs_with_ip_and_ready => conformance::pods::pod_runs_with_ip_and_ready);
check!(deployment_replicas_run_on_the_node => conformance::pods::deployment_replicas_run_on_the_node);
check!(env_is_resolved_for_the_provider => conformance::pods::env_is_resolved_for_the_provider);
check!(mandatory_missing_references_block_the_pod => conformance::pods::mandatory_missing_references_block_the_pod);
check!(optional_missing_references_are_skipped => conformance::pods::optional_missing_references_are_skipped);
check!(graceful_delete_reaches_the_provider => conformance::pods::graceful_delete_reaches_the_provider);
check!(force_delete_reaches_the_provider => conformance::pods::force_delete_reaches_the_provider);
check!(provider_failures_are_reported_and_retried => conformance::pods::provider_failures_are_reported_and_retried);
check!(restart_adopts_pods_and_removes_dangling_ones => conformance::pods::restart_adopts_pods_and_removes_dangling_ones);
check!(finished_pods_are_left_untouched => conformance::pods::finished_pods_are_left_untouched);
check!(label_changes_reach_the_provider => conformance::pods::label_changes_reach_the_provider);
