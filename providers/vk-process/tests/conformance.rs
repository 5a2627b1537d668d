//! The conformance suite (vk-testkit) against vk-process, on the real control plane:
//! every pod of the suite runs as real local processes (`sleep 3600` for the suite's
//! images).
//!
//! vk-process has no fault-injection switches of its own, so the suite's [`Recorder`]
//! wraps the real provider: it counts and records calls, and fails creates or pings on
//! demand — the provider underneath is untouched. The suite's "lost pod" check is left out: a
//! vk-process pod is lost only when its state directory is, which the provider itself
//! never reports as such.

use std::path::PathBuf;
use std::sync::Arc;

use vk_core::ResourceAccess;
use vk_process::{ProcessConfig, ProcessProvider, SharedProvider};
use vk_testkit::conformance::{self, Backend, Instance, Recorder, Target};

const SHIM: &str = env!("CARGO_BIN_EXE_vk-process");

/// vk-process's side of the suite's inspection: the recorder's defaults ask the provider
/// itself (it cannot lose a pod on demand); the pods a check leaves running are stopped
/// when the check's node is dropped.
struct Cleanup {
    inner: Arc<SharedProvider>,
    state_dir: PathBuf,
}

impl Backend<SharedProvider> for Cleanup {}

impl Drop for Cleanup {
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
        let inner = Arc::new(SharedProvider(Arc::new(provider)));
        let cleanup = Cleanup {
            inner: inner.clone(),
            state_dir,
        };
        Recorder::new(inner, cleanup).instance()
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
