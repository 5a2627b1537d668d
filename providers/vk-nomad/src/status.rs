//! Nomad allocations → pod status: phase, conditions, container statuses, podIP.
//!
//! # Which allocation
//!
//! A job has one allocation at a time, but a service job that was rescheduled or
//! re-registered has older ones too. The pod follows the newest allocation the
//! servers want running (`DesiredStatus: run`), else the newest of all.
//!
//! # Phase (from the allocation's `ClientStatus`)
//!
//! | ClientStatus | phase |
//! |---|---|
//! | none yet (the evaluation is still being scheduled), `pending` | Pending |
//! | `running` | Running |
//! | `complete` | Succeeded |
//! | `failed`, `lost` | Failed (`lost`: reason `NodeLost`) |
//! | `unknown` (client disconnected) | Unknown |
//!
//! # Containers (from `TaskStates`)
//!
//! * `pending`: waiting — `CrashLoopBackOff` after a `Restarting` event,
//!   `CreateContainerError` after a `Driver Failure` or `Setup Failure`,
//!   `ContainerCreating` otherwise;
//! * `running`: running since `StartedAt`, ready;
//! * `dead`: terminated with the last `Terminated` event's exit code and signal;
//!   reason `OOMKilled` when the event says so, `Completed` for exit 0 without
//!   failure, `Error` otherwise; a task that never started (driver failure) gets
//!   exit code 128 and reason `ContainerCannotRun`.
//!
//! `restartCount` is the task's `Restarts`; after a restart `lastState` holds the
//! previous `Terminated` event.

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::types::{Allocation, TaskEvent, TaskState};

/// Exit code reported for a task that could not start.
pub const CANNOT_RUN_EXIT_CODE: i32 = 128;

/// The allocation a pod follows (see the [module docs](self)).
pub fn current_allocation(allocs: &[Allocation]) -> Option<&Allocation> {
    allocs
        .iter()
        .filter(|a| a.desired_status == "run")
        .max_by_key(|a| a.create_index)
        .or_else(|| allocs.iter().max_by_key(|a| a.create_index))
}

/// Whether the allocation's client status is final.
pub fn is_terminal(alloc: &Allocation) -> bool {
    matches!(alloc.client_status.as_str(), "complete" | "failed" | "lost")
}

/// The status of `pod` given its job's allocations; `host_ip` is the virtual node's.
pub fn pod_status(pod: &Pod, allocs: &[Allocation], host_ip: Option<&str>) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let qos_class = pod.status.as_ref().and_then(|s| s.qos_class.clone());
    let Some(alloc) = current_allocation(allocs) else {
        return PodStatus {
            phase: Some("Pending".to_owned()),
            reason: Some("Scheduling".to_owned()),
            message: Some("waiting for Nomad to place the job".to_owned()),
            host_ip: host_ip.map(str::to_owned),
            conditions: Some(vec![condition("PodScheduled", false, Some("Scheduling"))]),
            container_statuses: Some(
                spec.containers
                    .iter()
                    .map(|c| waiting(c, "ContainerCreating", None))
                    .collect(),
            ),
            qos_class,
            ..Default::default()
        };
    };
    let states = alloc.task_states.clone().unwrap_or_default();
    let status_of = |c: &Container| match states.get(&c.name) {
        Some(state) => container_status(c, state, &alloc.id),
        None => waiting(c, "ContainerCreating", None),
    };
    let containers: Vec<ContainerStatus> = spec.containers.iter().map(status_of).collect();
    let inits: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(status_of)
        .collect();

    let (phase, reason) = match alloc.client_status.as_str() {
        "running" => ("Running", None),
        "complete" => ("Succeeded", None),
        "failed" => ("Failed", None),
        "lost" => ("Failed", Some("NodeLost")),
        "unknown" => ("Unknown", Some("NodeUnreachable")),
        _ => ("Pending", None),
    };
    let message = (!alloc.client_description.is_empty() && phase != "Running")
        .then(|| alloc.client_description.clone());
    let all_ready = !containers.is_empty() && containers.iter().all(|c| c.ready);
    let initialized = inits.iter().all(|c| {
        c.ready
            || c.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0)
    });
    let not_ready_reason = match phase {
        "Succeeded" | "Failed" => "PodCompleted",
        _ => "ContainersNotReady",
    };
    let ip = pod_ip(alloc);
    PodStatus {
        phase: Some(phase.to_owned()),
        reason: reason.map(str::to_owned),
        message,
        host_ip: host_ip.map(str::to_owned),
        pod_ip: ip.clone(),
        pod_ips: ip.map(|ip| vec![PodIP { ip }]),
        start_time: nanos(alloc.create_time),
        conditions: Some(vec![
            condition("PodScheduled", true, None),
            condition(
                "Initialized",
                initialized,
                (!initialized).then_some("ContainersNotInitialized"),
            ),
            condition(
                "ContainersReady",
                all_ready,
                (!all_ready).then_some(not_ready_reason),
            ),
            condition("Ready", all_ready, (!all_ready).then_some(not_ready_reason)),
        ]),
        container_statuses: Some(containers),
        init_container_statuses: (!inits.is_empty()).then_some(inits),
        qos_class,
        ..Default::default()
    }
}

/// The allocation's address: its network namespace's (bridge/CNI), else the host
/// network's allocated IP.
pub fn pod_ip(alloc: &Allocation) -> Option<String> {
    let from_status = alloc
        .network_status
        .as_ref()
        .map(|n| n.address.clone())
        .filter(|a| !a.is_empty());
    let allocated = || {
        alloc
            .allocated_resources
            .as_ref()
            .and_then(|r| r.shared.as_ref())
            .and_then(|s| s.networks.as_ref())
            .and_then(|n| n.iter().map(|n| n.ip.clone()).find(|ip| !ip.is_empty()))
    };
    let legacy = || {
        alloc
            .resources
            .as_ref()
            .and_then(|r| r.networks.as_ref())
            .and_then(|n| n.iter().map(|n| n.ip.clone()).find(|ip| !ip.is_empty()))
    };
    from_status.or_else(allocated).or_else(legacy)
}

fn condition(type_: &str, ok: bool, reason: Option<&str>) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.map(str::to_owned),
        ..Default::default()
    }
}

fn base(c: &Container, alloc_id: Option<&str>) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        container_id: alloc_id.map(|a| format!("nomad://{a}/{}", c.name)),
        ..Default::default()
    }
}

fn waiting(c: &Container, reason: &str, message: Option<String>) -> ContainerStatus {
    ContainerStatus {
        started: Some(false),
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.to_owned()),
                message,
            }),
            ..Default::default()
        }),
        ..base(c, None)
    }
}

fn container_status(c: &Container, state: &TaskState, alloc_id: &str) -> ContainerStatus {
    let events = state.events.clone().unwrap_or_default();
    let last = |types: &[&str]| {
        events
            .iter()
            .rev()
            .find(|e| types.contains(&e.event_type.as_str()))
    };
    let restart_count = i32::try_from(state.restarts).unwrap_or(i32::MAX);
    let started_at = time(state.started_at.as_deref());
    let finished_at = time(state.finished_at.as_deref());
    // The Terminated event before the latest Started one: the previous run.
    let last_state = (state.restarts > 0)
        .then(|| {
            let last_start = events.iter().rposition(|e| e.event_type == "Started")?;
            events[..last_start]
                .iter()
                .rev()
                .find(|e| e.event_type == "Terminated")
                .map(|e| terminated_from(e, None, nanos(e.time), false))
        })
        .flatten()
        .map(|t| ContainerState {
            terminated: Some(t),
            ..Default::default()
        });
    let mut status = ContainerStatus {
        restart_count,
        last_state,
        ..base(c, Some(alloc_id))
    };
    match state.state.as_str() {
        "running" => {
            status.ready = true;
            status.started = Some(true);
            status.state = Some(ContainerState {
                running: Some(ContainerStateRunning { started_at }),
                ..Default::default()
            });
        }
        "dead" => {
            let terminated = match last(&["Terminated"]) {
                Some(event) => terminated_from(event, started_at, finished_at, state.failed),
                None => {
                    let cause = last(&[
                        "Driver Failure",
                        "Setup Failure",
                        "Failed Validation",
                        "Killed",
                    ]);
                    let killed = cause.is_some_and(|e| e.event_type == "Killed");
                    ContainerStateTerminated {
                        exit_code: if killed {
                            137
                        } else if state.failed {
                            CANNOT_RUN_EXIT_CODE
                        } else {
                            0
                        },
                        reason: Some(
                            if killed {
                                "Killed"
                            } else if state.failed {
                                "ContainerCannotRun"
                            } else {
                                "Completed"
                            }
                            .to_owned(),
                        ),
                        message: cause.map(|e| e.text().to_owned()).filter(|m| !m.is_empty()),
                        started_at,
                        finished_at,
                        ..Default::default()
                    }
                }
            };
            status.started = Some(false);
            status.state = Some(ContainerState {
                terminated: Some(terminated),
                ..Default::default()
            });
        }
        _ => {
            let (reason, message) = match last(&[
                "Restarting",
                "Driver Failure",
                "Setup Failure",
                "Started",
                "Received",
            ]) {
                Some(e) if e.event_type == "Restarting" => {
                    ("CrashLoopBackOff", Some(e.text().to_owned()))
                }
                Some(e) if e.event_type.ends_with("Failure") => {
                    ("CreateContainerError", Some(e.text().to_owned()))
                }
                _ => ("ContainerCreating", None),
            };
            status.started = Some(false);
            status.state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.to_owned()),
                    message: message.filter(|m| !m.is_empty()),
                }),
                ..Default::default()
            });
        }
    }
    status
}

fn terminated_from(
    event: &TaskEvent,
    started_at: Option<Time>,
    finished_at: Option<Time>,
    failed: bool,
) -> ContainerStateTerminated {
    let exit_code = event
        .details
        .as_ref()
        .and_then(|d| d.get("exit_code"))
        .and_then(|c| c.parse().ok())
        .unwrap_or(event.exit_code);
    let reason = if event.oom_killed() {
        "OOMKilled"
    } else if exit_code == 0 && !failed {
        "Completed"
    } else {
        "Error"
    };
    ContainerStateTerminated {
        exit_code,
        signal: (event.signal != 0).then_some(event.signal),
        reason: Some(reason.to_owned()),
        message: Some(event.text().to_owned()).filter(|m| !m.is_empty()),
        started_at,
        finished_at: finished_at.or_else(|| nanos(event.time)),
        ..Default::default()
    }
}

/// An RFC 3339 time from Nomad; its zero time (`0001-01-01T00:00:00Z`) means unset.
fn time(text: Option<&str>) -> Option<Time> {
    let t: Timestamp = text?.parse().ok()?;
    (t.as_second() > 0).then_some(Time(t))
}

/// Unix nanoseconds from Nomad; 0 means unset.
fn nanos(ns: i64) -> Option<Time> {
    if ns <= 0 {
        return None;
    }
    Timestamp::from_nanosecond(i128::from(ns)).ok().map(Time)
}

#[cfg(test)]
mod tests;
