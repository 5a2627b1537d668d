//! The conformance suite (vk-testkit) against vk-kube, on two real control planes: each
//! check's virtual node lives in the home cluster and its pods run in the remote
//! cluster (`cargo xtask cluster up --name remote`, started if needed) on a real
//! vk-process node (the suite's images run `sleep 3600` there). See `support`.
//!
//! [`Recorded`] wraps the real provider: it counts and records calls and fails creates
//! or pings on demand; a "lost" pod is a remote pod deleted behind the provider's back.
//!
//! Not run: `env_is_resolved_for_the_provider`, which requires `status.podIP` to be
//! resolved at home, before `create_pod`, to the IP the pod will have. A remote pod's IP
//! is only known once the remote cluster placed it; vk-kube instead leaves IP
//! `fieldRef`s to the remote kubelet (see `translate::restore_remote_field_refs`,
//! checked end to end in `e2e_kube`). Every other part of that check (ConfigMap/Secret
//! keys, envFrom, resourceFieldRef, service links) is the core's and is covered by the
//! other providers' runs.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::Api;
use kube::api::DeleteParams;
use vk_core::capabilities::Capabilities;
use vk_core::{
    NodeProvider, NodeStatusSink, PodLifecycleHandler, PodNotifier, PodRef, ResourceAccess,
};
use vk_errdefs::{Error, Result};
use vk_kube::{KubeProvider, KubeProviderConfig};
use vk_testkit::conformance::{self, Inspect, Instance, Target};

/// vk-kube with call counting and fault switches around it.
struct Recorded {
    inner: Arc<KubeProvider>,
    remote: kube::Client,
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

/// Runs an async call from the suite's synchronous [`Inspect`] methods.
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
        // Really created in the remote cluster, behind the core's back.
        block_on(self.inner.create_pod(&pod)).expect("the dangling pod is created remotely");
        let (namespace, name) = key(&pod);
        block_on(vk_testkit::wait::eventually(
            "the dangling pod is watched",
            || {
                let inner = self.inner.clone();
                let (namespace, name) = (namespace.clone(), name.clone());
                async move { inner.get_pod(&namespace, &name).await.ok().flatten() }
            },
        ));
    }
    fn lose_pod(&self, namespace: &str, name: &str) {
        // Deleted in the remote cluster by someone else.
        for pod in self.inner.remote_pods() {
            let home = vk_kube::translate::HomeRef::of_remote(&pod);
            if home.is_some_and(|h| h.namespace == namespace && h.name == name) {
                let api: Api<Pod> = Api::namespaced(
                    self.remote.clone(),
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                );
                block_on(api.delete(
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    &DeleteParams::default().grace_period(0),
                ))
                .expect("delete the remote pod");
            }
        }
    }
}

struct Kube {
    remote_kubeconfig: PathBuf,
    remote_node: String,
}

impl Target for Kube {
    fn name(&self) -> &str {
        "kube"
    }

    fn instantiate(&self, node_name: &str, resources: ResourceAccess) -> Instance {
        let mut config = KubeProviderConfig {
            kubeconfig: Some(self.remote_kubeconfig.clone()),
            dependency_refresh_seconds: 1,
            capacity_refresh_seconds: 2,
            ..Default::default()
        };
        config.scheduling.add_node_selector = [(
            "kubernetes.io/hostname".to_owned(),
            self.remote_node.clone(),
        )]
        .into();
        config.scheduling.add_tolerations = vec![k8s_openapi::api::core::v1::Toleration {
            key: Some("virtual-kubelet.io/provider".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }];
        let remote = block_on(vk_kube::remote::client(&config)).expect("remote client");
        let provider = KubeProvider::start(node_name, config, remote.clone(), resources);
        let recorded = Arc::new(Recorded {
            inner: Arc::new(provider),
            remote,
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

async fn target() -> Kube {
    let remote = support::remote().await;
    Kube {
        remote_kubeconfig: remote.kubeconfig.clone(),
        remote_node: remote.node.clone(),
    }
}

macro_rules! check {
    ($name:ident => $path:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $path(&target().await).await;
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
check!(mandatory_missing_references_block_the_pod => conformance::pods::mandatory_missing_references_block_the_pod);
check!(optional_missing_references_are_skipped => conformance::pods::optional_missing_references_are_skipped);
check!(graceful_delete_reaches_the_provider => conformance::pods::graceful_delete_reaches_the_provider);
check!(force_delete_reaches_the_provider => conformance::pods::force_delete_reaches_the_provider);
check!(provider_failures_are_reported_and_retried => conformance::pods::provider_failures_are_reported_and_retried);
check!(restart_adopts_pods_and_removes_dangling_ones => conformance::pods::restart_adopts_pods_and_removes_dangling_ones);
check!(finished_pods_are_left_untouched => conformance::pods::finished_pods_are_left_untouched);
check!(label_changes_reach_the_provider => conformance::pods::label_changes_reach_the_provider);
check!(lost_pods_are_marked_failed => conformance::pods::lost_pods_are_marked_failed);
