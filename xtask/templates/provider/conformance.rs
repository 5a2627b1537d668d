//! The conformance suite (vk-testkit) against {{crate}}, on a real control plane
//! (`cargo xtask cluster up` in the virtual-kubelet-rs workspace, or any cluster
//! vk_testkit::LocalCluster::from_env() finds).

use std::sync::Arc;

use vk_core::ResourceAccess;
use vk_testkit::conformance::{self, Instance, Target};
use {{crate_ident}}::{ {{Type}}Config, {{Type}}Provider};

struct {{Type}};

impl Target for {{Type}} {
    fn name(&self) -> &str {
        "{{name}}"
    }
    fn instantiate(&self, _node_name: &str, _resources: ResourceAccess) -> Instance {
        let provider = Arc::new({{Type}}Provider::new({{Type}}Config::default()));
        Instance {
            pods: provider.clone(),
            node: Some(provider),
            // Implement vk_testkit::conformance::Inspect to enable the checks that look
            // inside the provider or inject faults.
            inspect: None,
        }
    }
}

macro_rules! check {
    ($name:ident => $path:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $path(&{{Type}}).await;
        }
    };
}

check!(node_registers_and_turns_ready => conformance::node::registers_and_turns_ready);
check!(deleted_node_is_recreated => conformance::node::deleted_node_is_recreated);
check!(foreign_metadata_and_conditions_survive => conformance::node::foreign_metadata_and_conditions_survive);
// Once pods run in the backend, add the pod checks (see vk_testkit::conformance::pods):
// check!(pod_runs_with_ip_and_ready => conformance::pods::pod_runs_with_ip_and_ready);
// check!(graceful_delete_reaches_the_provider => conformance::pods::graceful_delete_reaches_the_provider);
