//! The JSON shapes of Nomad's HTTP API v1 that vk-nomad reads and writes, as
//! documented at <https://developer.hashicorp.com/nomad/api-docs> (jobs, allocations,
//! nodes, client). Only the fields vk-nomad uses are modelled; unknown fields are
//! ignored when reading, and absent optional fields are left out when writing so that
//! Nomad applies its own defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A job (`Job` in the *Create Job* payload and the *Read Job* answer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Job {
    /// The job's ID, unique in its namespace.
    #[serde(rename = "ID")]
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: String,
    /// `service`, `batch`, `system`, `sysbatch`.
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    /// The namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The scheduling priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Datacenters the job may run in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datacenters: Vec<String>,
    /// The node pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
    /// Placement constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<Constraint>>,
    /// The task groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_groups: Option<Vec<TaskGroup>>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<BTreeMap<String, String>>,
    /// Whether the job was stopped (deregistered without purge).
    #[serde(default, skip_serializing)]
    pub stop: bool,
    /// `pending`, `running` or `dead` (read only).
    #[serde(default, skip_serializing)]
    pub status: String,
    /// The index of the job's last change (read only).
    #[serde(default, skip_serializing)]
    pub modify_index: u64,
}

/// A job as *List Jobs* returns it (`meta=true` adds `Meta`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobListStub {
    /// The job's ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// The namespace (when listing several).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Whether the job was stopped.
    #[serde(default)]
    pub stop: bool,
    /// `pending`, `running`, `dead`.
    #[serde(default)]
    pub status: String,
    /// The job's metadata, present when listed with `meta=true`.
    #[serde(default)]
    pub meta: Option<BTreeMap<String, String>>,
}

/// A placement constraint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Constraint {
    /// The attribute (left side).
    #[serde(rename = "LTarget", default)]
    pub l_target: String,
    /// The value (right side).
    #[serde(rename = "RTarget", default)]
    pub r_target: String,
    /// The operator.
    #[serde(default)]
    pub operand: String,
}

/// A task group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskGroup {
    /// The group's name.
    pub name: String,
    /// How many allocations to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The tasks.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// Restarts in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Rescheduling onto other clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_policy: Option<ReschedulePolicy>,
    /// The group network (ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkResource>>,
    /// Group metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<BTreeMap<String, String>>,
}

/// A `restart` block (durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    /// Restarts allowed within `interval`.
    pub attempts: u32,
    /// The window for `attempts`, in ns.
    pub interval: u64,
    /// The wait before a restart, in ns.
    pub delay: u64,
    /// `fail` or `delay` once the attempts are used up.
    pub mode: String,
}

/// A `reschedule` block (durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReschedulePolicy {
    /// Reschedules allowed within `interval`.
    pub attempts: u32,
    /// The window for `attempts`, in ns.
    pub interval: u64,
    /// The first delay, in ns.
    pub delay: u64,
    /// `constant`, `exponential`, `fibonacci`.
    pub delay_function: String,
    /// The longest delay, in ns.
    pub max_delay: u64,
    /// Reschedule for ever.
    pub unlimited: bool,
}

/// A network (group `Networks` entry, or an allocation's allocated network).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkResource {
    /// `host`, `bridge`, `none`, `cni/<name>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// The allocated IP (read only).
    #[serde(rename = "IP", default, skip_serializing)]
    pub ip: String,
    /// Ports with a fixed host port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_ports: Option<Vec<Port>>,
    /// Ports Nomad picks a host port for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_ports: Option<Vec<Port>>,
}

/// A port label with its host port (`Value`) and the port inside the task (`To`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Port {
    /// The label tasks refer to.
    pub label: String,
    /// The host port (0: dynamic).
    #[serde(default)]
    pub value: u16,
    /// The port inside the task's network namespace (0: same as `Value`).
    #[serde(default)]
    pub to: i32,
}

/// Lifecycle of a task that is not a main task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Lifecycle {
    /// `prestart`, `poststart`, `poststop`.
    pub hook: String,
    /// Whether the task keeps running alongside the main tasks.
    #[serde(default)]
    pub sidecar: bool,
}

/// A task's resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resources {
    /// CPU in MHz.
    #[serde(rename = "CPU", default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// Memory reserved, in MB.
    #[serde(rename = "MemoryMB", default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Memory limit (oversubscription), in MB.
    #[serde(
        rename = "MemoryMaxMB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_max_mb: Option<u64>,
}

/// A task: one container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    /// The task's name (the container's name).
    pub name: String,
    /// The task driver.
    pub driver: String,
    /// The driver's configuration (`image`, `command`, `args`...).
    #[serde(default)]
    pub config: BTreeMap<String, serde_json::Value>,
    /// The environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// The user to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Time between the kill signal and a forced kill, in ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_timeout: Option<u64>,
    /// Prestart/poststart/poststop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Task metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<BTreeMap<String, String>>,
}

/// The body of *Create Job*.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterRequest<'a> {
    /// The job.
    pub job: &'a Job,
}

/// The answer of *Create Job* and *Stop a Job*.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobWriteResponse {
    /// The evaluation created (empty when none was needed).
    #[serde(rename = "EvalID", default)]
    pub eval_id: String,
    /// The job's modify index after the write.
    #[serde(default)]
    pub job_modify_index: u64,
    /// Warnings about the job.
    #[serde(default)]
    pub warnings: String,
}

/// An allocation (*Read Allocation*, and the stubs of *List Allocations* / *List Job
/// Allocations*, which carry the same status fields).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Allocation {
    /// The allocation's UUID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its namespace.
    #[serde(default)]
    pub namespace: String,
    /// Its job's ID.
    #[serde(rename = "JobID", default)]
    pub job_id: String,
    /// Its task group.
    #[serde(default)]
    pub task_group: String,
    /// The client node's ID.
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    /// What the servers want: `run`, `stop`, `evict`.
    #[serde(default)]
    pub desired_status: String,
    /// What the client reports: `pending`, `running`, `complete`, `failed`, `lost`,
    /// `unknown`.
    #[serde(default)]
    pub client_status: String,
    /// A human description of the client status.
    #[serde(default)]
    pub client_description: String,
    /// Per-task states.
    #[serde(default)]
    pub task_states: Option<BTreeMap<String, TaskState>>,
    /// The network status (address in bridge/CNI mode).
    #[serde(default)]
    pub network_status: Option<AllocNetworkStatus>,
    /// Allocated resources (with `resources=true` on lists).
    #[serde(default)]
    pub allocated_resources: Option<AllocatedResources>,
    /// Legacy resources (older agents).
    #[serde(default)]
    pub resources: Option<LegacyResources>,
    /// Creation index.
    #[serde(default)]
    pub create_index: u64,
    /// Last modification index.
    #[serde(default)]
    pub modify_index: u64,
    /// Creation time, Unix ns.
    #[serde(default)]
    pub create_time: i64,
    /// Last modification time, Unix ns.
    #[serde(default)]
    pub modify_time: i64,
}

/// `NetworkStatus` of an allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocNetworkStatus {
    /// The allocation's address in its network namespace.
    #[serde(default)]
    pub address: String,
    /// The interface.
    #[serde(default)]
    pub interface_name: String,
}

/// `AllocatedResources` of an allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocatedResources {
    /// Group-level resources (networks).
    #[serde(default)]
    pub shared: Option<SharedResources>,
}

/// `AllocatedResources.Shared`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SharedResources {
    /// The allocated networks.
    #[serde(default)]
    pub networks: Option<Vec<NetworkResource>>,
}

/// The legacy `Resources` of an allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LegacyResources {
    /// The allocated networks.
    #[serde(default)]
    pub networks: Option<Vec<NetworkResource>>,
}

/// One task's state in an allocation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskState {
    /// `pending`, `running`, `dead`.
    #[serde(default)]
    pub state: String,
    /// Whether the task failed.
    #[serde(default)]
    pub failed: bool,
    /// Restarts so far.
    #[serde(default)]
    pub restarts: u64,
    /// Last start (RFC 3339; the zero time when never).
    #[serde(default)]
    pub started_at: Option<String>,
    /// End (RFC 3339; the zero time while running).
    #[serde(default)]
    pub finished_at: Option<String>,
    /// The last (up to 10) events, oldest first.
    #[serde(default)]
    pub events: Option<Vec<TaskEvent>>,
}

/// A task event (`Started`, `Terminated`, `Driver Failure`...).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskEvent {
    /// The event type.
    #[serde(rename = "Type", default)]
    pub event_type: String,
    /// Unix ns.
    #[serde(default)]
    pub time: i64,
    /// Whether the event fails the task.
    #[serde(default)]
    pub fails_task: bool,
    /// Exit code (`Terminated`).
    #[serde(default)]
    pub exit_code: i32,
    /// Signal (`Terminated`).
    #[serde(default)]
    pub signal: i32,
    /// A message.
    #[serde(default)]
    pub message: String,
    /// A human message (newer agents).
    #[serde(default)]
    pub display_message: String,
    /// The driver's error (`Driver Failure`).
    #[serde(default)]
    pub driver_error: String,
    /// The setup error (`Setup Failure`).
    #[serde(default)]
    pub setup_error: String,
    /// Why it was killed (`Killing`).
    #[serde(default)]
    pub kill_reason: String,
    /// Why it restarts (`Restarting`).
    #[serde(default)]
    pub restart_reason: String,
    /// Details (`exit_code`, `oom_killed`...), all strings.
    #[serde(default)]
    pub details: Option<BTreeMap<String, String>>,
}

impl TaskEvent {
    /// The most useful human text of the event.
    pub fn text(&self) -> &str {
        [
            &self.display_message,
            &self.driver_error,
            &self.setup_error,
            &self.message,
            &self.kill_reason,
            &self.restart_reason,
        ]
        .into_iter()
        .find(|s| !s.is_empty())
        .map_or("", |s| s.as_str())
    }

    /// Whether the event says the task was killed for using too much memory.
    pub fn oom_killed(&self) -> bool {
        self.details
            .as_ref()
            .and_then(|d| d.get("oom_killed"))
            .is_some_and(|v| v == "true")
    }
}

/// A client node as *List Nodes* returns it (`resources=true` adds resources).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeListStub {
    /// The node's UUID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its datacenter.
    #[serde(default)]
    pub datacenter: String,
    /// Its address (the IP host-network allocations get).
    #[serde(default)]
    pub address: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// `initializing`, `ready`, `down`, `disconnected`.
    #[serde(default)]
    pub status: String,
    /// `eligible` or `ineligible`.
    #[serde(default)]
    pub scheduling_eligibility: String,
    /// Whether it is draining.
    #[serde(default)]
    pub drain: bool,
    /// Its node pool.
    #[serde(default)]
    pub node_pool: String,
    /// Total resources (with `resources=true`).
    #[serde(default)]
    pub node_resources: Option<NodeResources>,
    /// Resources reserved for the OS (with `resources=true`).
    #[serde(default)]
    pub reserved_resources: Option<NodeReservedResources>,
}

/// `NodeResources` of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeResources {
    /// CPU.
    #[serde(default)]
    pub cpu: Option<NodeCpu>,
    /// Memory.
    #[serde(default)]
    pub memory: Option<NodeMemory>,
}

/// `NodeReservedResources` of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeReservedResources {
    /// CPU.
    #[serde(default)]
    pub cpu: Option<NodeReservedCpu>,
    /// Memory.
    #[serde(default)]
    pub memory: Option<NodeMemory>,
}

/// Node CPU (total compute in MHz).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeCpu {
    /// Total MHz.
    #[serde(default)]
    pub cpu_shares: u64,
}

/// Reserved CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeReservedCpu {
    /// Reserved MHz.
    #[serde(default)]
    pub cpu_shares: u64,
}

/// Node memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeMemory {
    /// MB.
    #[serde(rename = "MemoryMB", default)]
    pub memory_mb: u64,
}

/// One frame of a framed *Stream Logs* / *Stream File* answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamFrame {
    /// Base64 data.
    #[serde(default)]
    pub data: Option<String>,
    /// `file deleted`, `file truncated`.
    #[serde(default)]
    pub file_event: Option<String>,
    /// The offset.
    #[serde(default)]
    pub offset: i64,
    /// The file.
    #[serde(default)]
    pub file: Option<String>,
}

/// One line of the `/v1/event/stream` answer: a batch of events at `Index`, or `{}`
/// (a heartbeat).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventBatch {
    /// The index of the batch (0 for heartbeats).
    #[serde(default)]
    pub index: u64,
    /// The events.
    #[serde(default)]
    pub events: Option<Vec<Event>>,
}

/// One event of the stream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    /// `Allocation`, `Job`, ...
    #[serde(default)]
    pub topic: String,
    /// `AllocationUpdated`, `JobRegistered`, `JobDeregistered`, ...
    #[serde(rename = "Type", default)]
    pub event_type: String,
    /// The object's key (an allocation or job ID).
    #[serde(default)]
    pub key: String,
    /// Its namespace.
    #[serde(default)]
    pub namespace: String,
    /// The index of the change.
    #[serde(default)]
    pub index: u64,
    /// The object, under its topic's name.
    #[serde(default)]
    pub payload: EventPayload,
}

/// An event's payload (only the topics vk-nomad follows).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventPayload {
    /// For the `Allocation` topic: the allocation, without its job.
    #[serde(default)]
    pub allocation: Option<Allocation>,
    /// For the `Job` topic: the job.
    #[serde(default)]
    pub job: Option<Job>,
}
