//! The conformance suite (vk-testkit) against vk-nomad and the fake Nomad agent, on the
//! real control plane. Each check gets its own fake agent; the suite's images (no
//! command) run as docker tasks that wait until they are killed.
//!
//! The suite's [`Recorder`] wraps the real provider to count calls and fail creates or pings on
//! demand; a "lost" pod is one whose job an operator purged behind vk-nomad's back.

mod fake;

use std::sync::{Arc, OnceLock};

use fake::{FakeNomad, FakeOptions};
use vk_core::ResourceAccess;
use vk_nomad::{NomadConfig, NomadProvider, start_watch};
use vk_testkit::conformance::{self, Backend, Instance, Recorder, Target, block_on};

/// The fake agent behind vk-nomad: a "lost" pod's job is purged by an operator.
struct Agent(Arc<FakeNomad>);

impl Backend<NomadProvider> for Agent {
    fn lose_pod(&self, _provider: &NomadProvider, namespace: &str, name: &str) {
        // An operator purges the job (`nomad job stop -purge`).
        let id = vk_nomad::mapping::job_id("", namespace, name);
        self.0.purge_job("default", &id);
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
        Recorder::new(provider, Agent(fake)).instance()
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
