use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;
use crate::api::fixture;

fn redis_pod(restart: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": "a", "name": "cache", "uid": "u"},
        "spec": {"restartPolicy": restart, "containers": [{"name": "redis", "image": "redis:7"}]}
    }))
    .expect("pod")
}

fn documented_alloc() -> Allocation {
    serde_json::from_value(fixture("read-allocation.json")).expect("alloc")
}

fn terminated(code: i32, details: serde_json::Value) -> serde_json::Value {
    json!({"Type": "Terminated", "Time": 1495747380000000000i64, "ExitCode": code, "Details": details})
}

#[test]
fn the_documented_running_allocation_is_a_running_ready_pod() {
    let status = pod_status(
        &redis_pod("Always"),
        &[documented_alloc()],
        Some("10.0.0.1"),
    );
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(
        status.pod_ip.as_deref(),
        Some("127.0.0.1"),
        "from the allocation's network"
    );
    assert_eq!(status.host_ip.as_deref(), Some("10.0.0.1"));
    let c = &status.container_statuses.as_ref().expect("containers")[0];
    assert!(c.ready);
    assert_eq!(c.restart_count, 0);
    let running = c
        .state
        .as_ref()
        .and_then(|s| s.running.as_ref())
        .expect("running");
    assert_eq!(
        running.started_at.as_ref().map(|t| t.0.to_string()),
        Some("2017-07-25T23:36:26.106431265Z".to_owned())
    );
    assert_eq!(
        c.container_id.as_deref(),
        Some("nomad://a8198d79-cfdb-6593-a999-1e9adabcba2e/redis")
    );
    let ready = status
        .conditions
        .as_ref()
        .expect("conditions")
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.status, "True");
    assert!(status.start_time.is_some());
}

#[test]
fn no_allocation_yet_is_pending_scheduling() {
    let status = pod_status(&redis_pod("Always"), &[], None);
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(status.reason.as_deref(), Some("Scheduling"));
    let waiting = status.container_statuses.expect("c")[0]
        .state
        .clone()
        .expect("state")
        .waiting
        .expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
}

#[test]
fn batch_exits_map_to_succeeded_and_failed_with_exit_codes() {
    let mut alloc = documented_alloc();
    alloc.client_status = "complete".into();
    let mut state = alloc.task_states.as_ref().expect("s")["redis"].clone();
    state.state = "dead".into();
    state.finished_at = Some("2017-07-25T23:40:00Z".into());
    state
        .events
        .get_or_insert_default()
        .push(serde_json::from_value(terminated(0, json!({"exit_code": "0"}))).expect("event"));
    alloc
        .task_states
        .as_mut()
        .expect("s")
        .insert("redis".into(), state.clone());
    let status = pod_status(&redis_pod("Never"), &[alloc.clone()], None);
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let t = status.container_statuses.expect("c")[0]
        .state
        .clone()
        .expect("s")
        .terminated
        .expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));

    alloc.client_status = "failed".into();
    state.failed = true;
    state
        .events
        .get_or_insert_default()
        .push(serde_json::from_value(terminated(3, json!({"exit_code": "3"}))).expect("event"));
    alloc
        .task_states
        .as_mut()
        .expect("s")
        .insert("redis".into(), state);
    let status = pod_status(&redis_pod("Never"), &[alloc], None);
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let t = status.container_statuses.expect("c")[0]
        .state
        .clone()
        .expect("s")
        .terminated
        .expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    assert!(t.finished_at.is_some());
}

#[test]
fn restarts_oom_and_driver_failures_are_reported() {
    let mut alloc = documented_alloc();
    let state: TaskState = serde_json::from_value(json!({
        "State": "running",
        "Restarts": 2,
        "StartedAt": "2017-07-25T23:50:00Z",
        "Events": [
            {"Type": "Started", "Time": 1},
            terminated(137, json!({"exit_code": "137", "oom_killed": "true"})),
            {"Type": "Restarting", "Time": 3, "RestartReason": "Restart within policy"},
            {"Type": "Started", "Time": 4}
        ]
    }))
    .expect("state");
    alloc
        .task_states
        .as_mut()
        .expect("s")
        .insert("redis".into(), state);
    let c = pod_status(&redis_pod("Always"), &[alloc.clone()], None)
        .container_statuses
        .expect("c")[0]
        .clone();
    assert_eq!(c.restart_count, 2);
    let last = c.last_state.expect("last").terminated.expect("terminated");
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (137, Some("OOMKilled"))
    );

    let pending: TaskState = serde_json::from_value(json!({
        "State": "pending",
        "Restarts": 1,
        "Events": [{"Type": "Restarting", "Time": 3, "RestartReason": "Restart within policy"}]
    }))
    .expect("state");
    alloc
        .task_states
        .as_mut()
        .expect("s")
        .insert("redis".into(), pending);
    let c = pod_status(&redis_pod("Always"), &[alloc.clone()], None)
        .container_statuses
        .expect("c")[0]
        .clone();
    let waiting = c.state.expect("s").waiting.expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(waiting.message.as_deref(), Some("Restart within policy"));

    let driver: TaskState = serde_json::from_value(json!({
        "State": "dead",
        "Failed": true,
        "Events": [{"Type": "Driver Failure", "Time": 3, "DriverError": "image not found"}]
    }))
    .expect("state");
    alloc.client_status = "failed".into();
    alloc
        .task_states
        .as_mut()
        .expect("s")
        .insert("redis".into(), driver);
    let status = pod_status(&redis_pod("Never"), &[alloc], None);
    let t = status.container_statuses.expect("c")[0]
        .state
        .clone()
        .expect("s")
        .terminated
        .expect("terminated");
    assert_eq!(t.exit_code, CANNOT_RUN_EXIT_CODE);
    assert_eq!(t.reason.as_deref(), Some("ContainerCannotRun"));
    assert_eq!(t.message.as_deref(), Some("image not found"));
}

#[test]
fn the_newest_wanted_allocation_is_followed() {
    let mut old = documented_alloc();
    old.id = "old".into();
    old.client_status = "failed".into();
    old.create_index = 10;
    let mut new = documented_alloc();
    new.id = "new".into();
    new.create_index = 20;
    new.network_status = Some(crate::api::types::AllocNetworkStatus {
        address: "172.26.64.5".into(),
        interface_name: "eth0".into(),
    });
    let mut stopped = documented_alloc();
    stopped.id = "stopped".into();
    stopped.desired_status = "stop".into();
    stopped.create_index = 30;
    let allocs = [old, new, stopped];
    assert_eq!(
        current_allocation(&allocs).map(|a| a.id.as_str()),
        Some("new")
    );
    let status = pod_status(&redis_pod("Always"), &allocs, None);
    assert_eq!(
        status.pod_ip.as_deref(),
        Some("172.26.64.5"),
        "NetworkStatus wins"
    );
    let lost = Allocation {
        client_status: "lost".into(),
        ..documented_alloc()
    };
    let status = pod_status(&redis_pod("Always"), &[lost], None);
    assert_eq!(
        (status.phase.as_deref(), status.reason.as_deref()),
        (Some("Failed"), Some("NodeLost"))
    );
}
