//! The conformance suite (vk-testkit) against vk-mock, on the real control plane.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::core::v1::PodStatus;
use vk_core::{PodLifecycleHandler, ResourceAccess};
use vk_mock::{Faults, MockProvider};
use vk_testkit::conformance::{self, Inspect, Instance, Target};

struct Mock;

struct MockInspect(Arc<MockProvider>);

impl Inspect for MockInspect {
    fn received_pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.0.pod(namespace, name)
    }
    fn create_calls(&self) -> u64 {
        self.0.calls().create.load(Ordering::Relaxed)
    }
    fn delete_calls(&self) -> u64 {
        self.0.calls().delete.load(Ordering::Relaxed)
    }
    fn fail_creates(&self, message: Option<&str>) {
        self.0.fail_creates(message);
    }
    fn fail_pings(&self, message: Option<&str>) {
        self.0.fail_pings(message);
    }
    fn insert_pod(&self, pod: Pod) {
        self.0.insert_pod(pod);
    }
    fn lose_pod(&self, namespace: &str, name: &str) {
        self.0.lose_pod(namespace, name);
    }
}

/// vk-mock without its notifier: the core must poll for status.
struct Polled(Arc<MockProvider>);

#[async_trait::async_trait]
impl PodLifecycleHandler for Polled {
    async fn create_pod(&self, pod: &Pod) -> vk_errdefs::Result<()> {
        self.0.create_pod(pod).await
    }
    async fn update_pod(&self, pod: &Pod) -> vk_errdefs::Result<()> {
        self.0.update_pod(pod).await
    }
    async fn delete_pod(&self, pod: &Pod) -> vk_errdefs::Result<()> {
        self.0.delete_pod(pod).await
    }
    async fn get_pod(&self, ns: &str, name: &str) -> vk_errdefs::Result<Option<Pod>> {
        self.0.get_pod(ns, name).await
    }
    async fn get_pod_status(&self, ns: &str, name: &str) -> vk_errdefs::Result<Option<PodStatus>> {
        self.0.get_pod_status(ns, name).await
    }
    async fn get_pods(&self) -> vk_errdefs::Result<Vec<Pod>> {
        self.0.get_pods().await
    }
    // No pod_notifier(): the default (None) makes the core poll.
}

struct MockWithoutNotifier;

impl Target for MockWithoutNotifier {
    fn name(&self) -> &str {
        "mock"
    }
    fn instantiate(&self, node_name: &str, _resources: ResourceAccess) -> Instance {
        let mock = Arc::new(MockProvider::new(node_name, Faults::default()));
        mock.set_host_ip(Some("127.0.0.1".into()));
        Instance {
            pods: Arc::new(Polled(mock.clone())),
            node: Some(mock.clone()),
            inspect: Some(Arc::new(MockInspect(mock))),
        }
    }
}

impl Target for Mock {
    fn name(&self) -> &str {
        "mock"
    }
    fn instantiate(&self, node_name: &str, _resources: ResourceAccess) -> Instance {
        let mock = Arc::new(MockProvider::new(node_name, Faults::default()));
        mock.set_host_ip(Some("127.0.0.1".into()));
        Instance {
            pods: mock.clone(),
            node: Some(mock.clone()),
            inspect: Some(Arc::new(MockInspect(mock))),
        }
    }
}

macro_rules! check {
    ($name:ident => $path:path) => {
        check!($name => $path, Mock);
    };
    ($name:ident => $path:path, $target:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $path(&$target).await;
        }
    };
}

check!(node_registers_and_turns_ready => conformance::node::registers_and_turns_ready);
check!(deleted_node_is_recreated => conformance::node::deleted_node_is_recreated);
check!(deleted_node_keeps_its_pods => conformance::node::deleted_node_keeps_its_pods);
check!(failing_ping_turns_node_not_ready => conformance::node::failing_ping_turns_node_not_ready);
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

// The status path for providers without a notifier (periodic polling).
check!(polled_pod_runs_with_ip_and_ready => conformance::pods::pod_runs_with_ip_and_ready, MockWithoutNotifier);
check!(polled_graceful_delete_reaches_the_provider => conformance::pods::graceful_delete_reaches_the_provider, MockWithoutNotifier);
check!(polled_restart_adopts_pods => conformance::pods::restart_adopts_pods_and_removes_dangling_ones, MockWithoutNotifier);
check!(foreign_metadata_and_conditions_survive => conformance::node::foreign_metadata_and_conditions_survive);
