//! The conformance suite (vk-testkit) against vk-nomad and the fake Nomad agent, on the
//! real control plane. Each check gets its own fake agent; the suite's images (no
//! command) run as docker tasks that wait until they are killed.
//!
//! [`Recorded`] wraps the real provider to count calls and fail creates or pings on
//! demand; a "lost" pod is one whose job an operator purged behind vk-nomad's back.

mod fake;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use fake::{FakeNomad, FakeOptions};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use vk_core::capabilities::Capabilities;
use vk_core::{NodeProvider, PodLifecycleHandler, PodNotifier, ResourceAccess};
use vk_errdefs::{Error, Result};
use vk_nomad::{NomadConfig, NomadProvider, start_watch};
use vk_testkit::conformance::{self, Inspect, Instance, Target};

struct Recorded {
    inner: Arc<NomadProvider>,
    fake: Arc<FakeNomad>,
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
        // Registered in Nomad behind the core's back: a dangling job.
        block_on(self.inner.create_pod(&pod)).expect("vk-nomad registers the dangling pod");
    }
    fn lose_pod(&self, namespace: &str, name: &str) {
        // An operator purges the job (`nomad job stop -purge`).
        let id = vk_nomad::mapping::job_id("", namespace, name);
        self.fake.purge_job("default", &id);
    }
}

/// vk-nomad; one fake agent per check (shared by the instances of a restart).
struct Nomad {
    fake: OnceLock<Arc<FakeNomad>>,
}

impl Target for Nomad {
    fn name(&self) -> &str {
        "nomad"
    }

    fn instantiate(&self, node_name: &str, _resources: ResourceAccess) -> Instance {
        let fake = self
            .fake
            .get_or_init(|| FakeNomad::start_in_runtime(FakeOptions::default()))
            .clone();
        let connection = NomadConfig::default()
            .connection_with(|name| (name == "NOMAD_ADDR").then(|| fake.address()))
            .expect("connection");
        let provider =
            NomadProvider::with_connection(node_name, NomadConfig::default(), connection)
                .expect("provider")
                .with_host_ip(Some("127.0.0.1".into()));
        let provider = Arc::new(provider);
        block_on(provider.recover()).expect("recover the node's jobs");
        block_on(provider.refresh_single_address());
        start_watch(&provider);
        let recorded = Arc::new(Recorded {
            inner: provider,
            fake,
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
            $path(&Nomad {
                fake: OnceLock::new(),
            })
            .await;
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
check!(lost_pods_are_marked_failed => conformance::pods::lost_pods_are_marked_failed);
