//! Container group → pod status, and the pod a group stands for after a restart.
//!
//! Phase, from the group's `provisioningState` and `instanceView.state`:
//!
//! | provisioningState | instanceView.state | phase |
//! |---|---|---|
//! | `Failed` | any | `Failed`, reason `ProviderFailed`, message from the group's events |
//! | `Succeeded` (or being updated) | `Running` | `Running` |
//! | | `Succeeded` | `Succeeded` |
//! | | `Failed` | `Failed` |
//! | | `Stopped` | `Succeeded` when every container exited 0, else `Failed` |
//! | anything else | | `Pending` (any running container makes it `Running`) |
//!
//! Container statuses come from each container's instance view: `currentState`
//! `Running`/`Terminated`/`Waiting` → `state`, `previousState` → `lastState`,
//! `restartCount`, exit codes, and `detailStatus` as the reason. A container ACI shows
//! no view for yet is waiting with reason `ContainerCreating`. `podIP` is the group's
//! `ipAddress.ip`.

use k8s_openapi::api::core::v1::{
    Container as KubeContainer, ContainerState as KubeState, ContainerStateRunning,
    ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP,
    PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::names::OwnerTags;
use crate::arm::types::{ContainerGroup, ContainerInstanceView, ContainerState, Event};

/// The reason of a pod whose group failed to provision.
pub const PROVIDER_FAILED: &str = "ProviderFailed";

fn time(text: Option<&str>) -> Option<Time> {
    text.and_then(|t| t.parse::<Timestamp>().ok()).map(Time)
}

fn kube_state(state: &ContainerState) -> KubeState {
    match state.state.as_deref() {
        Some("Running") => KubeState {
            running: Some(ContainerStateRunning {
                started_at: time(state.start_time.as_deref()),
            }),
            ..KubeState::default()
        },
        Some("Terminated") => {
            let exit_code = state.exit_code.unwrap_or(0);
            let reason = state
                .detail_status
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| if exit_code == 0 { "Completed" } else { "Error" }.into());
            KubeState {
                terminated: Some(ContainerStateTerminated {
                    exit_code,
                    reason: Some(reason),
                    started_at: time(state.start_time.as_deref()),
                    finished_at: time(state.finish_time.as_deref()),
                    ..ContainerStateTerminated::default()
                }),
                ..KubeState::default()
            }
        }
        _ => KubeState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(
                    state
                        .detail_status
                        .clone()
                        .filter(|d| !d.is_empty())
                        .unwrap_or_else(|| "ContainerCreating".into()),
                ),
                message: None,
            }),
            ..KubeState::default()
        },
    }
}

fn creating() -> KubeState {
    KubeState {
        waiting: Some(ContainerStateWaiting {
            reason: Some("ContainerCreating".into()),
            message: None,
        }),
        ..KubeState::default()
    }
}

fn container_status(
    group: &str,
    name: &str,
    image: &str,
    view: Option<&ContainerInstanceView>,
) -> ContainerStatus {
    let state = view
        .and_then(|v| v.current_state.as_ref())
        .map(kube_state)
        .unwrap_or_else(creating);
    let last_state = view
        .and_then(|v| v.previous_state.as_ref())
        .filter(|s| s.state.is_some())
        .map(kube_state);
    let running = state.running.is_some();
    ContainerStatus {
        name: name.to_string(),
        image: image.to_string(),
        image_id: String::new(),
        container_id: Some(format!("aci://{group}/{name}")),
        ready: running,
        started: Some(running),
        restart_count: view.and_then(|v| v.restart_count).unwrap_or(0),
        state: Some(state),
        last_state,
        ..ContainerStatus::default()
    }
}

fn condition(kind: &str, ok: bool, now: &Time) -> PodCondition {
    PodCondition {
        type_: kind.to_string(),
        status: if ok { "True" } else { "False" }.into(),
        last_transition_time: Some(now.clone()),
        ..PodCondition::default()
    }
}

/// The last warning-ish message of the group's events (for a failed group).
fn failure_message(group: &ContainerGroup) -> String {
    let events: Vec<&Event> = group
        .properties
        .instance_view
        .iter()
        .flat_map(|v| v.events.iter())
        .chain(
            group
                .properties
                .containers
                .iter()
                .filter_map(|c| c.properties.instance_view.as_ref())
                .flat_map(|v| v.events.iter()),
        )
        .collect();
    events
        .iter()
        .rev()
        .find(|e| {
            e.event_type.as_deref() == Some("Warning")
                || e.name.as_deref().is_some_and(|n| n.starts_with("Failed"))
        })
        .or(events.last())
        .map(|e| {
            format!(
                "{}: {}",
                e.name.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            )
        })
        .unwrap_or_else(|| "the container group failed to provision".into())
}

/// The status of the pod `spec` describes, as container group `group` shows it.
pub fn group_status(group: &ContainerGroup, spec: &PodSpec, created: Option<&Time>) -> PodStatus {
    let now = Time(Timestamp::now());
    let group_name = group.name.clone().unwrap_or_default();
    let by_name = |name: &str| {
        group
            .properties
            .containers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.properties.instance_view.as_ref())
    };
    let init_by_name = |name: &str| {
        group
            .properties
            .init_containers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.properties.instance_view.as_ref())
    };
    let image = |c: &KubeContainer| c.image.clone().unwrap_or_default();
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(&group_name, &c.name, &image(c), by_name(&c.name)))
        .collect();
    let init_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(&group_name, &c.name, &image(c), init_by_name(&c.name)))
        .map(|mut s| {
            s.ready = s
                .state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0);
            s
        })
        .collect();
    let provisioning = group.properties.provisioning_state.as_deref().unwrap_or("");
    let state = group
        .properties
        .instance_view
        .as_ref()
        .and_then(|v| v.state.as_deref())
        .unwrap_or("");
    let any_running = statuses
        .iter()
        .any(|s| s.state.as_ref().is_some_and(|st| st.running.is_some()));
    let all_exited_zero = !statuses.is_empty()
        && statuses.iter().all(|s| {
            s.state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0)
        });
    let (phase, reason, message) = match (provisioning, state) {
        ("Failed", _) => (
            "Failed",
            Some(PROVIDER_FAILED.to_string()),
            Some(failure_message(group)),
        ),
        (_, "Succeeded") => ("Succeeded", None, None),
        (_, "Failed") => ("Failed", None, None),
        (_, "Stopped") if all_exited_zero => ("Succeeded", None, None),
        (_, "Stopped") => ("Failed", None, None),
        (_, "Running") => ("Running", None, None),
        _ if any_running => ("Running", None, None),
        _ => ("Pending", None, None),
    };
    let ready = phase == "Running" && !statuses.is_empty() && statuses.iter().all(|s| s.ready);
    let initialized = init_statuses.iter().all(|s| s.ready) || phase == "Running";
    let pod_ip = group
        .properties
        .ip_address
        .as_ref()
        .and_then(|ip| ip.ip.clone())
        .filter(|ip| !ip.is_empty());
    let start_time = statuses
        .iter()
        .filter_map(|s| s.state.as_ref()?.running.as_ref()?.started_at.clone())
        .min_by_key(|t| t.0)
        .or_else(|| created.cloned());
    PodStatus {
        phase: Some(phase.to_string()),
        reason,
        message,
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time,
        conditions: Some(vec![
            condition("PodScheduled", true, &now),
            condition("Initialized", initialized, &now),
            condition("ContainersReady", ready, &now),
            condition("Ready", ready, &now),
        ]),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        ..PodStatus::default()
    }
}

/// The pod a group of this node stands for, rebuilt from the group and its tags
/// (adoption after a restart): name, namespace, UID, creation time, containers'
/// names and images, restart policy and status. Labels, annotations and the rest of the
/// spec are not in the group; the core sends an update for them, which
/// [`spec_hash`](super::spec_hash) turns into no request when the body is unchanged.
pub fn group_to_pod(group: &ContainerGroup, owner: &OwnerTags) -> Pod {
    let container = |name: &str, image: &str| KubeContainer {
        name: name.to_string(),
        image: Some(image.to_string()),
        ..KubeContainer::default()
    };
    let spec = PodSpec {
        containers: group
            .properties
            .containers
            .iter()
            .map(|c| container(&c.name, &c.properties.image))
            .collect(),
        init_containers: (!group.properties.init_containers.is_empty()).then(|| {
            group
                .properties
                .init_containers
                .iter()
                .map(|c| container(&c.name, &c.properties.image))
                .collect()
        }),
        restart_policy: group.properties.restart_policy.clone(),
        ..PodSpec::default()
    };
    let created = time(owner.created.as_deref());
    let status = group_status(group, &spec, created.as_ref());
    Pod {
        metadata: ObjectMeta {
            name: Some(owner.name.clone()),
            namespace: Some(owner.namespace.clone()),
            uid: owner.uid.clone(),
            creation_timestamp: created,
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: Some(status),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(names: &[&str]) -> PodSpec {
        PodSpec {
            containers: names
                .iter()
                .map(|n| KubeContainer {
                    name: n.to_string(),
                    image: Some("nginx".into()),
                    ..KubeContainer::default()
                })
                .collect(),
            ..PodSpec::default()
        }
    }

    fn group(value: serde_json::Value) -> ContainerGroup {
        serde_json::from_value(value).expect("group")
    }

    #[test]
    fn the_documented_failed_group_is_a_failed_pod_with_its_event() {
        let g: ContainerGroup = serde_json::from_str(include_str!(
            "../../tests/fixtures/ContainerGroupsGet_Failed.json"
        ))
        .expect("fixture");
        let s = group_status(&g, &spec(&["demo1"]), None);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(s.reason.as_deref(), Some(PROVIDER_FAILED));
        assert_eq!(
            s.message.as_deref(),
            Some("FailedMount: Output: mount error(2): Permission denied")
        );
        assert_eq!(s.pod_ip.as_deref(), Some("10.0.0.1"));
        let c = &s.container_statuses.expect("statuses")[0];
        assert!(c.state.as_ref().and_then(|s| s.waiting.as_ref()).is_some());
    }

    #[test]
    fn running_group_with_a_restarted_container() {
        let g = group(json!({
            "name": "g1", "location": "westeurope",
            "properties": {
                "provisioningState": "Succeeded", "osType": "Linux",
                "ipAddress": {"type": "Private", "ip": "10.1.0.4", "ports": []},
                "instanceView": {"state": "Running"},
                "containers": [{"name": "app", "properties": {"image": "nginx",
                    "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                    "instanceView": {"restartCount": 2,
                        "currentState": {"state": "Running", "startTime": "2026-11-30T10:00:05Z", "detailStatus": ""},
                        "previousState": {"state": "Terminated", "exitCode": 137, "detailStatus": "OOMKilled",
                                          "startTime": "2026-11-30T09:59:00Z", "finishTime": "2026-11-30T10:00:00Z"}}}}]
            }
        }));
        let s = group_status(&g, &spec(&["app"]), None);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.1.0.4"));
        let c = &s.container_statuses.as_ref().expect("statuses")[0];
        assert!(c.ready);
        assert_eq!(c.restart_count, 2);
        let last = c
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .expect("last");
        assert_eq!(
            (last.exit_code, last.reason.as_deref()),
            (137, Some("OOMKilled"))
        );
        let ready = s
            .conditions
            .expect("conditions")
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .expect("ready");
        assert_eq!(ready.status, "True");
        assert_eq!(
            s.start_time.map(|t| t.0.to_string()),
            Some("2026-11-30T10:00:05Z".into())
        );
    }

    #[test]
    fn terminated_groups_succeed_or_fail_by_exit_code_and_creating_ones_wait() {
        let terminated = |code: i32| {
            group(
                json!({"name": "g", "properties": {"provisioningState": "Succeeded", "osType": "Linux",
                "instanceView": {"state": "Stopped"},
                "containers": [{"name": "job", "properties": {"image": "busybox",
                    "instanceView": {"currentState": {"state": "Terminated", "exitCode": code}}}}]}}),
            )
        };
        assert_eq!(
            group_status(&terminated(0), &spec(&["job"]), None)
                .phase
                .as_deref(),
            Some("Succeeded")
        );
        let failed = group_status(&terminated(3), &spec(&["job"]), None);
        assert_eq!(failed.phase.as_deref(), Some("Failed"));
        let t = failed.container_statuses.expect("s")[0]
            .state
            .clone()
            .expect("state")
            .terminated
            .expect("t");
        assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
        let creating = group(
            json!({"name": "g", "properties": {"provisioningState": "Creating", "osType": "Linux",
            "containers": [{"name": "job", "properties": {"image": "busybox"}}]}}),
        );
        let s = group_status(&creating, &spec(&["job"]), None);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let waiting = s.container_statuses.expect("s")[0]
            .state
            .clone()
            .expect("state")
            .waiting
            .expect("w");
        assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
    }

    #[test]
    fn adopted_groups_become_pods_with_owner_identity() {
        let g = group(
            json!({"name": "g", "properties": {"provisioningState": "Succeeded", "osType": "Linux",
            "restartPolicy": "Never",
            "containers": [{"name": "c", "properties": {"image": "busybox:1"}}],
            "initContainers": [{"name": "i", "properties": {"image": "alpine"}}]}}),
        );
        let owner = OwnerTags {
            namespace: "ns".into(),
            name: "p".into(),
            uid: Some("u".into()),
            created: Some("2026-11-30T09:00:00Z".into()),
            spec_hash: None,
        };
        let pod = group_to_pod(&g, &owner);
        assert_eq!(pod.metadata.uid.as_deref(), Some("u"));
        let spec = pod.spec.expect("spec");
        assert_eq!(spec.containers[0].image.as_deref(), Some("busybox:1"));
        assert_eq!(spec.init_containers.expect("init")[0].name, "i");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    }
}
