//! The conformance suite (vk-testkit) against vk-web on the real control plane, with
//! real bridges as separate processes:
//!
//! * `python`: the reference bridge (`examples/python-bridge/bridge.py`, v2: status
//!   watch), its pods real local processes (`sleep 3600`);
//! * `v1`: the smallest v1 bridge (`examples/v1-memory/bridge.py`, status polled), for
//!   the node and pod checks.
//!
//! One bridge per node name (the restart check instantiates a node twice: the second
//! provider finds the first one's pods in the same bridge). The suite's [`Recorder`]
//! wraps the real provider to count calls and inject create/ping failures; the provider
//! underneath is untouched. The "lost pod" check is left out: neither bridge loses pods
//! on demand.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use vk_core::ResourceAccess;
use vk_testkit::conformance::{self, Backend, Instance, Recorder, Target, block_on};
use vk_web::{BridgeClient, WebConfig, WebProvider};

const PYTHON_BRIDGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/python-bridge/bridge.py"
);
const V1_BRIDGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/v1-memory/bridge.py");

/// Running bridges by node name: (URL, process).
static BRIDGES: Mutex<Option<HashMap<String, (String, Child)>>> = Mutex::new(None);

/// Starts `script` on a free port (tied to this test process); returns its URL.
fn start_bridge(script: &str, extra: &[&str]) -> (String, Child) {
    let mut child = vk_testkit::tied::command("python3".as_ref())
        .arg(script)
        .args(["--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the bridge");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the bridge's first line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from the bridge: {line:?}"))
        .to_owned();
    (url, child)
}

fn bridge_for(node: &str, script: &str, extra: &[&str]) -> String {
    let mut bridges = BRIDGES.lock().expect("lock");
    let bridges = bridges.get_or_insert_with(HashMap::new);
    bridges
        .entry(node.to_owned())
        .or_insert_with(|| start_bridge(script, extra))
        .0
        .clone()
}

/// The bridge behind vk-web, asked directly.
struct Bridge(BridgeClient);

impl Backend<WebProvider> for Bridge {
    fn has_pod(&self, _provider: &WebProvider, namespace: &str, name: &str) -> bool {
        block_on(self.0.get_pod(namespace, name))
            .ok()
            .flatten()
            .is_some()
    }
    fn insert_pod(&self, _provider: &WebProvider, pod: Pod) {
        // Created in the bridge directly, behind the core's back.
        block_on(self.0.create_pod(&pod)).expect("the bridge takes the dangling pod");
    }
}

/// Which bridge the target runs.
struct Web {
    script: &'static str,
    extra: &'static [&'static str],
    name: &'static str,
}

const PYTHON: Web = Web {
    script: PYTHON_BRIDGE,
    extra: &["--default-command", "sleep 3600"],
    name: "web",
};

const V1: Web = Web {
    script: V1_BRIDGE,
    extra: &[],
    name: "web",
};

impl Target for Web {
    fn name(&self) -> &str {
        self.name
    }

    fn instantiate(&self, node_name: &str, _resources: ResourceAccess) -> Instance {
        let url = bridge_for(node_name, self.script, self.extra);
        let mut config = WebConfig::new(url);
        config.status_poll_interval = Duration::from_secs(1);
        config.node_status_interval = Duration::from_secs(5);
        let provider = Arc::new(WebProvider::new(node_name, config).expect("provider"));
        let bridge = Bridge(provider.bridge().clone());
        Recorder::new(provider, bridge).instance()
    }
}

macro_rules! checks {
    ($target:expr; $($name:ident => $path:path),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $path(&$target).await;
            }
        )*
    };
}

mod python {
    use super::*;
    checks! { PYTHON;
        node_registers_and_turns_ready => conformance::node::registers_and_turns_ready,
        deleted_node_is_recreated => conformance::node::deleted_node_is_recreated,
        deleted_node_keeps_its_pods => conformance::node::deleted_node_keeps_its_pods,
        failing_ping_turns_node_not_ready => conformance::node::failing_ping_turns_node_not_ready,
        foreign_metadata_and_conditions_survive => conformance::node::foreign_metadata_and_conditions_survive,
        pod_runs_with_ip_and_ready => conformance::pods::pod_runs_with_ip_and_ready,
        deployment_replicas_run_on_the_node => conformance::pods::deployment_replicas_run_on_the_node,
        env_is_resolved_for_the_provider => conformance::pods::env_is_resolved_for_the_provider,
        mandatory_missing_references_block_the_pod => conformance::pods::mandatory_missing_references_block_the_pod,
        optional_missing_references_are_skipped => conformance::pods::optional_missing_references_are_skipped,
        graceful_delete_reaches_the_provider => conformance::pods::graceful_delete_reaches_the_provider,
        force_delete_reaches_the_provider => conformance::pods::force_delete_reaches_the_provider,
        provider_failures_are_reported_and_retried => conformance::pods::provider_failures_are_reported_and_retried,
        restart_adopts_pods_and_removes_dangling_ones => conformance::pods::restart_adopts_pods_and_removes_dangling_ones,
        finished_pods_are_left_untouched => conformance::pods::finished_pods_are_left_untouched,
        label_changes_reach_the_provider => conformance::pods::label_changes_reach_the_provider,
    }
}

mod v1 {
    use super::*;
    checks! { V1;
        node_registers_and_turns_ready => conformance::node::registers_and_turns_ready,
        deleted_node_is_recreated => conformance::node::deleted_node_is_recreated,
        failing_ping_turns_node_not_ready => conformance::node::failing_ping_turns_node_not_ready,
        foreign_metadata_and_conditions_survive => conformance::node::foreign_metadata_and_conditions_survive,
        pod_runs_with_ip_and_ready => conformance::pods::pod_runs_with_ip_and_ready,
        deployment_replicas_run_on_the_node => conformance::pods::deployment_replicas_run_on_the_node,
        graceful_delete_reaches_the_provider => conformance::pods::graceful_delete_reaches_the_provider,
        force_delete_reaches_the_provider => conformance::pods::force_delete_reaches_the_provider,
        restart_adopts_pods_and_removes_dangling_ones => conformance::pods::restart_adopts_pods_and_removes_dangling_ones,
        label_changes_reach_the_provider => conformance::pods::label_changes_reach_the_provider,
    }
}
