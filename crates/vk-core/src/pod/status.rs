//! Writing provider status to the API: what to send, and when not to send anything.
//!
//! Status goes to the pod's `status` subresource as a **strategic merge patch**:
//! * conditions merge by `type`, so conditions owned by others (for example a readiness
//!   gate set by a controller) survive; we only send the conditions the provider reports
//!   and only when they differ in something other than their timestamps;
//! * only fields that differ from what the API already has are sent, and nothing at all
//!   when nothing differs (no write);
//! * a terminal pod (Succeeded/Failed) is never moved back to a running phase;
//! * the patch carries the pod's UID, so it can never land on a new pod that reuses the
//!   name.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Map, Value, json};

use crate::events::reasons::PROVIDER_FAILED;

/// `Succeeded` or `Failed`.
pub fn is_terminal_phase(phase: Option<&str>) -> bool {
    matches!(phase, Some("Succeeded") | Some("Failed"))
}

/// The phase of an API pod.
pub fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Whether a provider status says the pod has stopped: a terminal phase, or every
/// container terminated.
pub fn reports_terminated(status: &PodStatus) -> bool {
    if is_terminal_phase(status.phase.as_deref()) {
        return true;
    }
    let containers = status.container_statuses.as_deref().unwrap_or_default();
    !containers.is_empty()
        && containers
            .iter()
            .all(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `v` without null and empty-object members (recursively): the API server returns
/// `lastState: {}` and `lastProbeTime: null` where a provider leaves them out, which
/// means the same thing and must not count as a difference.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !v.is_null() && !v.as_object().is_some_and(Map::is_empty))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// Conditions equal in everything but their timestamps.
fn same_condition(a: &PodCondition, b: &PodCondition) -> bool {
    a.type_ == b.type_ && a.status == b.status && a.reason == b.reason && a.message == b.message
}

/// The strategic merge patch that brings `api`'s status to what the provider reports,
/// or `None` when the API already says that (or when it would resurrect a terminal pod).
/// `host_ip` fills `hostIP` when the provider does not set it.
pub fn status_patch(api: &Pod, provider: &PodStatus, host_ip: Option<&str>) -> Option<Value> {
    let current = api.status.clone().unwrap_or_default();
    if is_terminal_phase(current.phase.as_deref()) && !is_terminal_phase(provider.phase.as_deref())
    {
        return None;
    }
    let mut status = Map::new();
    let mut set = |key: &str, want: Value, have: Value| {
        if normalized(&want) != normalized(&have) {
            status.insert(key.to_owned(), want);
        }
    };
    if let Some(phase) = &provider.phase {
        set("phase", json!(phase), to_value(&current.phase));
    }
    // reason and message are cleared when the provider has none (e.g. after a
    // ProviderFailed episode ended).
    set(
        "reason",
        to_value(&provider.reason),
        to_value(&current.reason),
    );
    set(
        "message",
        to_value(&provider.message),
        to_value(&current.message),
    );
    let host = provider
        .host_ip
        .clone()
        .or_else(|| host_ip.map(str::to_owned));
    if let Some(h) = host {
        set("hostIP", json!(h), to_value(&current.host_ip));
    }
    if let Some(ip) = &provider.pod_ip {
        set("podIP", json!(ip), to_value(&current.pod_ip));
        let ips = provider
            .pod_ips
            .clone()
            .unwrap_or_else(|| vec![k8s_openapi::api::core::v1::PodIP { ip: ip.clone() }]);
        // The API server fills podIPs from podIP when only the latter is set.
        let have_ips = current.pod_ips.clone().or_else(|| {
            current
                .pod_ip
                .clone()
                .map(|ip| vec![k8s_openapi::api::core::v1::PodIP { ip }])
        });
        set("podIPs", to_value(&ips), to_value(&have_ips));
    }
    if let Some(t) = &provider.start_time {
        set("startTime", to_value(t), to_value(&current.start_time));
    }
    for (key, want, have) in [
        (
            "containerStatuses",
            &provider.container_statuses,
            &current.container_statuses,
        ),
        (
            "initContainerStatuses",
            &provider.init_container_statuses,
            &current.init_container_statuses,
        ),
        (
            "ephemeralContainerStatuses",
            &provider.ephemeral_container_statuses,
            &current.ephemeral_container_statuses,
        ),
    ] {
        if let Some(want) = want {
            set(key, to_value(want), to_value(have));
        }
    }
    let have_conditions = current.conditions.unwrap_or_default();
    let changed: Vec<&PodCondition> = provider
        .conditions
        .iter()
        .flatten()
        .filter(|want| {
            !have_conditions
                .iter()
                .any(|have| same_condition(want, have))
        })
        .collect();
    if !changed.is_empty() {
        status.insert("conditions".into(), to_value(&changed));
    }
    if status.is_empty() {
        return None;
    }
    Some(json!({"metadata": {"uid": api.metadata.uid}, "status": status}))
}

/// The patch marking a pod the provider failed to run: reason `ProviderFailed` with the
/// error as message (phase Pending when the pod has not run yet), or `None` if the API
/// says exactly that already.
pub fn provider_failed_patch(api: &Pod, message: &str) -> Option<Value> {
    let current = api.status.clone().unwrap_or_default();
    if is_terminal_phase(current.phase.as_deref()) {
        return None;
    }
    if current.reason.as_deref() == Some(PROVIDER_FAILED)
        && current.message.as_deref() == Some(message)
    {
        return None;
    }
    let mut status = Map::new();
    status.insert("reason".into(), json!(PROVIDER_FAILED));
    status.insert("message".into(), json!(message));
    if current.phase.is_none() {
        status.insert("phase".into(), json!("Pending"));
    }
    Some(json!({"metadata": {"uid": api.metadata.uid}, "status": status}))
}

/// Exit code reported for containers the provider lost (as upstream: 128 + SIGKILL,
/// negated).
pub const NOT_FOUND_EXIT_CODE: i32 = -137;

/// The patch for a pod the provider no longer has although nobody deleted it: phase
/// Failed, reason `NotFound`, running containers terminated (upstream semantics).
pub fn not_found_patch(api: &Pod, now: Time) -> Option<Value> {
    let current = api.status.clone().unwrap_or_default();
    if is_terminal_phase(current.phase.as_deref()) {
        return None;
    }
    let mut containers = current.container_statuses.clone().unwrap_or_default();
    for c in &mut containers {
        let Some(state) = c.state.as_mut() else {
            continue;
        };
        let Some(running) = state.running.take() else {
            continue;
        };
        state.terminated = Some(ContainerStateTerminated {
            exit_code: NOT_FOUND_EXIT_CODE,
            reason: Some("NotFound".into()),
            message: Some("Container was not found and was likely deleted".into()),
            started_at: running.started_at,
            finished_at: Some(now.clone()),
            container_id: c.container_id.clone(),
            signal: None,
        });
        c.ready = false;
    }
    let mut status = json!({
        "phase": "Failed",
        "reason": "NotFound",
        "message": "The pod status was not found and may have been deleted from the provider",
    });
    if !containers.is_empty() {
        status["containerStatuses"] = to_value(&containers);
    }
    Some(json!({"metadata": {"uid": api.metadata.uid}, "status": status}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "n", "uid": "uid-1"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": status
        }))
        .expect("pod")
    }

    fn status(v: Value) -> PodStatus {
        serde_json::from_value(v).expect("status")
    }

    fn running() -> Value {
        json!({
            "phase": "Running",
            "podIP": "10.0.0.5",
            "hostIP": "192.0.2.1",
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ],
            "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true,
                "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}]
        })
    }

    #[test]
    fn first_status_is_written_with_uid_and_pod_ips() {
        let api = pod(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]}));
        let patch = status_patch(&api, &status(running()), None).expect("patch");
        assert_eq!(patch["metadata"]["uid"], "uid-1");
        let s = &patch["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.0.0.5");
        assert_eq!(s["podIPs"], json!([{"ip": "10.0.0.5"}]));
        // PodScheduled already matches: only Ready is sent (merge by type keeps others).
        assert_eq!(s["conditions"].as_array().map(Vec::len), Some(1));
        assert_eq!(s["conditions"][0]["type"], "Ready");
        // reason/message are absent on both sides: not sent.
        assert!(s.get("reason").is_none() && s.get("message").is_none());
    }

    #[test]
    fn nothing_is_written_when_the_api_already_agrees() {
        let api = pod(running());
        assert_eq!(status_patch(&api, &status(running()), None), None);
        // Timestamps alone do not count as a change.
        let mut newer = running();
        newer["conditions"][0]["lastTransitionTime"] = json!("2026-02-02T00:00:00Z");
        assert_eq!(status_patch(&api, &status(newer), None), None);
    }

    #[test]
    fn api_server_normalisations_are_not_differences() {
        // What the API returns for a status a provider wrote without lastState.
        let mut echoed = running();
        echoed["containerStatuses"][0]["lastState"] = json!({});
        echoed["conditions"][0]["lastProbeTime"] = Value::Null;
        let api = pod(echoed);
        assert_eq!(status_patch(&api, &status(running()), None), None);
    }

    #[test]
    fn conditions_owned_by_others_are_never_sent() {
        let mut with_gate = running();
        with_gate["conditions"]
            .as_array_mut()
            .expect("array")
            .push(json!({"type": "example.com/gate", "status": "True"}));
        let api = pod(with_gate);
        let mut provider = running();
        provider["conditions"][0]["status"] = json!("False");
        let patch = status_patch(&api, &status(provider), None).expect("patch");
        let sent: Vec<&str> = patch["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(sent, ["Ready"]);
    }

    #[test]
    fn terminal_pods_are_not_resurrected() {
        let api = pod(json!({"phase": "Succeeded"}));
        assert_eq!(status_patch(&api, &status(running()), None), None);
        let failed = status(json!({"phase": "Failed"}));
        let api = pod(json!({"phase": "Running"}));
        assert!(status_patch(&api, &failed, None).is_some());
    }

    #[test]
    fn provider_failed_is_set_once_and_cleared_by_a_healthy_status() {
        let api = pod(json!({}));
        let patch = provider_failed_patch(&api, "backend down").expect("patch");
        assert_eq!(patch["status"]["reason"], "ProviderFailed");
        assert_eq!(patch["status"]["phase"], "Pending");
        let failed =
            pod(json!({"phase": "Pending", "reason": "ProviderFailed", "message": "backend down"}));
        assert_eq!(provider_failed_patch(&failed, "backend down"), None);
        let healed = status_patch(&failed, &status(running()), None).expect("patch");
        assert_eq!(healed["status"]["reason"], Value::Null);
        assert!(
            healed["status"]
                .as_object()
                .expect("obj")
                .contains_key("reason")
        );
        assert_eq!(healed["status"]["phase"], "Running");
    }

    #[test]
    fn host_ip_defaults_to_the_node() {
        let api = pod(json!({}));
        let mut s = running();
        s.as_object_mut().expect("obj").remove("hostIP");
        let patch = status_patch(&api, &status(s), Some("127.0.0.1")).expect("patch");
        assert_eq!(patch["status"]["hostIP"], "127.0.0.1");
    }

    #[test]
    fn termination_detection() {
        assert!(reports_terminated(&status(json!({"phase": "Failed"}))));
        assert!(!reports_terminated(&status(running())));
        assert!(reports_terminated(&status(
            json!({"phase": "Running", "containerStatuses": [
                {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0}}}
            ]})
        )));
        assert!(!reports_terminated(&status(json!({"phase": "Pending"}))));
    }

    #[test]
    fn lost_pods_fail_with_not_found() {
        let api = pod(running());
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let patch = not_found_patch(&api, now).expect("patch");
        assert_eq!(patch["status"]["phase"], "Failed");
        assert_eq!(patch["status"]["reason"], "NotFound");
        let state = &patch["status"]["containerStatuses"][0]["state"];
        assert_eq!(state["terminated"]["exitCode"], NOT_FOUND_EXIT_CODE);
        assert!(state.get("running").is_none_or(Value::is_null));
        assert_eq!(
            not_found_patch(
                &pod(json!({"phase": "Failed"})),
                Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
            ),
            None
        );
    }
}
