//! A thin typed client of Nomad's HTTP API v1.
//!
//! # Why not the `nomad-client` crate
//!
//! The product card names `nomad-client`; it and the other Nomad client on crates.io
//! were evaluated first (2026-11-30) and neither is used:
//!
//! * `nomad-client` 0.0.10 is marked *Deprecated* on crates.io. It is generated from an
//!   OpenAPI description, on reqwest 0.11 (hyper 0.14: a second HTTP and TLS stack next
//!   to the workspace's hyper 1 + rustls/ring). Its `/v1/client/fs/logs` call returns
//!   the whole body as one `String` (no follow stream), it has no
//!   `/v1/client/allocation/:id/exec` WebSocket, and although its calls take the
//!   blocking-query `index` they never return the `X-Nomad-Index` answer header, so a
//!   blocking query cannot be chained.
//! * `nomad-client-rs` 0.10.3 (maintained) has jobs, allocations, file reads and the
//!   event stream but no `/v1/client/fs/logs` stream and no exec WebSocket either, and
//!   is built on reqwest 0.13 whose default feature brings aws-lc-rs (the workspace
//!   allows ring only).
//!
//! Logs and exec are two of the three things a kubelet does after running pods, and
//! either crate would add a second HTTP client next to [`vk_core::http`], whose
//! retries, timeouts, TLS settings and sensitive headers every provider shares.
//!
//! So this module is a few typed calls ([`NomadClient`]) over [`vk_core::http`] with
//! only the JSON fields vk-nomad reads or writes ([`types`]), following the documented
//! API at <https://developer.hashicorp.com/nomad/api-docs>.

mod client;
pub mod types;

pub use client::{INDEX_HEADER, Indexed, LogType, NomadClient, TOKEN_HEADER};

/// The documented JSON samples under `tests/fixtures/`, each wrapped as
/// `{"source": <doc page>, "body": <sample>}`.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture file");
    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
    assert!(
        doc["source"]
            .as_str()
            .is_some_and(|s| s.contains("developer.hashicorp.com"))
    );
    doc["body"].take()
}

#[cfg(test)]
mod tests {
    use super::types::*;

    #[test]
    fn documented_samples_decode() {
        let alloc: Allocation =
            serde_json::from_value(super::fixture("read-allocation.json")).expect("alloc");
        assert_eq!(alloc.client_status, "running");
        assert_eq!(
            alloc.task_states.as_ref().expect("states")["redis"].state,
            "running"
        );
        let payload = super::fixture("create-job-payload.json");
        let job: Job = serde_json::from_value(payload["Job"].clone()).expect("job");
        let group = &job.task_groups.as_ref().expect("groups")[0];
        assert_eq!(
            group.networks.as_ref().expect("net")[0]
                .dynamic_ports
                .as_ref()
                .expect("ports")[0]
                .to,
            6379
        );
        assert_eq!(group.tasks[0].config["image"], "redis:7");
        assert_eq!(job.node_pool.as_deref(), Some("prod"));
        let written: JobWriteResponse =
            serde_json::from_value(super::fixture("create-job-response.json")).expect("resp");
        assert_eq!(written.job_modify_index, 109);
        let stopped: JobWriteResponse =
            serde_json::from_value(super::fixture("stop-job-response.json")).expect("stop");
        assert_eq!(stopped.eval_id, "d092fdc0-e1fd-2536-67d8-43af8ca798ac");
        let jobs: Vec<JobListStub> =
            serde_json::from_value(super::fixture("list-jobs.json")).expect("jobs");
        assert_eq!(jobs[0].id, "example");
        assert_eq!(jobs[0].meta, None);
        let nodes: Vec<NodeListStub> =
            serde_json::from_value(super::fixture("list-nodes.json")).expect("nodes");
        assert_eq!(
            nodes[0]
                .node_resources
                .as_ref()
                .and_then(|r| r.cpu.as_ref())
                .map(|c| c.cpu_shares),
            Some(32000)
        );
        let leader: String =
            serde_json::from_value(super::fixture("status-leader.json")).expect("leader");
        assert_eq!(leader, "127.0.0.1:4647");
    }

    #[test]
    fn written_jobs_leave_unset_fields_out() {
        let job = Job {
            id: "x".into(),
            ..Default::default()
        };
        let value = serde_json::to_value(&job).expect("json");
        // Read-only fields are never sent; unset optional ones are left to Nomad.
        assert_eq!(value, serde_json::json!({"ID": "x", "Name": ""}));
    }
}
