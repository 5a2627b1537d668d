//! Pod → Nomad job: one job per pod, one task group, one task per container.
//!
//! # The mapping
//!
//! | pod | job |
//! |---|---|
//! | namespace, name | job ID `<prefix><namespace>_<name>` (`_` is in neither, so IDs never collide), `Name` = pod name |
//! | UID, node, the pod itself | job `Meta`: `vk_pod_uid`, `vk_pod_namespace`, `vk_pod_name`, `vk_node`, `vk_pod` (the pod without status, for adoption after a restart) |
//! | `restartPolicy: Always` | a `service` job, restarts in place for ever (`mode = "delay"`), unlimited rescheduling |
//! | `OnFailure` | a `batch` job, failed tasks restart for ever (`mode = "delay"`), no rescheduling |
//! | `Never` | a `batch` job, no restart (`attempts = 0`, `mode = "fail"`), no rescheduling |
//! | init containers | `prestart` tasks (`sidecar = true` for native sidecars, `restartPolicy: Always`) |
//! | containers named in the `nomad.virtual-kubelet.io/poststart-sidecars` annotation | `poststart` sidecar tasks |
//! | driver | the `nomad.virtual-kubelet.io/driver` annotation, else the configured default |
//! | `docker`: image, command, args, workingDir | `image`, `entrypoint`, `args`, `work_dir` |
//! | `exec`/`raw_exec`: command + args | `command` (the first word), `args` (the rest); an image is ignored |
//! | env | `Env` (the core resolved ConfigMap/Secret/field references already) |
//! | CPU request (limit if no request) | `CPU` MHz = cores × `cpu_mhz_per_core`, rounded up |
//! | memory request (limit if none) / limit above it | `MemoryMB` / `MemoryMaxMB`, bytes → MiB rounded up |
//! | container ports | group network `DynamicPorts` (`To` = containerPort) or `ReservedPorts` (hostPort); docker `ports` |
//! | `terminationGracePeriodSeconds` | every task's `KillTimeout` (Nomad clients cap it at their `max_kill_timeout`) |
//! | `runAsUser` | `User` (exec/raw_exec/docker) |
//! | datacenters, node pool, constraints | the configuration, then the annotations `nomad.virtual-kubelet.io/datacenters` (comma-separated), `.../node-pool`, `.../constraints` (a JSON array of Nomad constraints) |
//!
//! A pod that cannot be expressed (no image for docker, no command for exec, an
//! unknown driver, a bad annotation) is a [`NomadError::Mapping`]: the provider
//! reports it once and never retries it.
//!
//! Known differences: Nomad starts all prestart tasks at once where Kubernetes runs
//! init containers one after the other; volumes and probes are not mapped.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};

use crate::api::types::{
    Constraint, Job, Lifecycle, NetworkResource, Port, ReschedulePolicy, Resources, RestartPolicy,
    Task, TaskGroup,
};
use crate::config::{Driver, NomadConfig};
use crate::error::NomadError;

/// The annotation choosing a pod's driver.
pub const DRIVER_ANNOTATION: &str = "nomad.virtual-kubelet.io/driver";
/// The annotation listing datacenters (comma-separated), replacing the configured ones.
pub const DATACENTERS_ANNOTATION: &str = "nomad.virtual-kubelet.io/datacenters";
/// The annotation naming the node pool.
pub const NODE_POOL_ANNOTATION: &str = "nomad.virtual-kubelet.io/node-pool";
/// The annotation adding constraints: a JSON array of `{"LTarget","RTarget","Operand"}`.
pub const CONSTRAINTS_ANNOTATION: &str = "nomad.virtual-kubelet.io/constraints";
/// The annotation naming containers (comma-separated) that run as poststart sidecars.
pub const POSTSTART_ANNOTATION: &str = "nomad.virtual-kubelet.io/poststart-sidecars";

/// Job meta key: the pod's UID.
pub const META_UID: &str = "vk_pod_uid";
/// Job meta key: the pod's namespace.
pub const META_NAMESPACE: &str = "vk_pod_namespace";
/// Job meta key: the pod's name.
pub const META_NAME: &str = "vk_pod_name";
/// Job meta key: the virtual node's name.
pub const META_NODE: &str = "vk_node";
/// Job meta key: the pod (JSON, without status).
pub const META_POD: &str = "vk_pod";

/// The task group's name.
pub const GROUP: &str = "pod";

const SECOND_NS: u64 = 1_000_000_000;
const MIB: u128 = 1024 * 1024;
/// Nomad refuses tasks with less memory than this.
const MIN_MEMORY_MB: u64 = 10;

/// The job ID of a pod.
///
/// ```
/// assert_eq!(vk_nomad::mapping::job_id("", "prod", "web-0"), "prod_web-0");
/// assert_eq!(vk_nomad::mapping::job_id("k8s-", "prod", "web-0"), "k8s-prod_web-0");
/// ```
pub fn job_id(prefix: &str, namespace: &str, name: &str) -> String {
    format!("{prefix}{namespace}_{name}")
}

/// What [`job_for`] needs besides the pod.
#[derive(Debug, Clone)]
pub struct MappingContext<'a> {
    /// The configuration (driver, datacenters, CPU factor...).
    pub config: &'a NomadConfig,
    /// The Nomad namespace.
    pub namespace: &'a str,
    /// The Nomad region, if set.
    pub region: Option<&'a str>,
    /// The virtual node's name.
    pub node_name: &'a str,
}

/// The Nomad job that runs `pod`.
pub fn job_for(pod: &Pod, ctx: &MappingContext<'_>) -> Result<Job, NomadError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let fail = |reason: String| NomadError::Mapping {
        pod: format!("{namespace}/{name}"),
        reason,
    };
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| fail("the pod has no spec".to_owned()))?;
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();

    let driver = match annotations.get(DRIVER_ANNOTATION) {
        Some(text) => Driver::parse(text).ok_or_else(|| {
            fail(format!(
                "annotation {DRIVER_ANNOTATION}: unknown driver {text:?} (docker, exec or raw_exec)"
            ))
        })?,
        None => ctx.config.driver,
    };
    let restart = spec.restart_policy.as_deref().unwrap_or("Always");
    let (job_type, restart_policy, reschedule) = match restart {
        "Always" => (
            "service",
            RestartPolicy {
                attempts: 10,
                interval: 300 * SECOND_NS,
                delay: 10 * SECOND_NS,
                mode: "delay".to_owned(),
            },
            ReschedulePolicy {
                attempts: 0,
                interval: 0,
                delay: 30 * SECOND_NS,
                delay_function: "exponential".to_owned(),
                max_delay: 3600 * SECOND_NS,
                unlimited: true,
            },
        ),
        "OnFailure" | "Never" => (
            "batch",
            if restart == "OnFailure" {
                RestartPolicy {
                    attempts: 10,
                    interval: 300 * SECOND_NS,
                    delay: 10 * SECOND_NS,
                    mode: "delay".to_owned(),
                }
            } else {
                RestartPolicy {
                    attempts: 0,
                    interval: 300 * SECOND_NS,
                    delay: 0,
                    mode: "fail".to_owned(),
                }
            },
            ReschedulePolicy {
                attempts: 0,
                interval: 0,
                delay: 5 * SECOND_NS,
                delay_function: "constant".to_owned(),
                max_delay: 0,
                unlimited: false,
            },
        ),
        other => return Err(fail(format!("unknown restartPolicy {other:?}"))),
    };

    let kill_timeout = spec
        .termination_grace_period_seconds
        .map(|s| u64::try_from(s).unwrap_or(0) * SECOND_NS);
    let user = spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .map(|u| u.to_string());
    let poststart: Vec<&str> = annotations
        .get(POSTSTART_ANNOTATION)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for sidecar in &poststart {
        if !spec.containers.iter().any(|c| c.name == *sidecar) {
            return Err(fail(format!(
                "annotation {POSTSTART_ANNOTATION} names {sidecar:?}, which is not a container of the pod"
            )));
        }
    }

    let mut network = NetworkResource {
        mode: ctx.config.network_mode.clone(),
        ..Default::default()
    };
    let mut tasks = Vec::new();
    let task_ctx = TaskContext {
        driver,
        cpu_mhz_per_core: ctx.config.cpu_mhz_per_core,
        kill_timeout,
        pod_user: user.as_deref(),
    };
    for init in spec.init_containers.iter().flatten() {
        let sidecar = init.restart_policy.as_deref() == Some("Always");
        let lifecycle = Lifecycle {
            hook: "prestart".to_owned(),
            sidecar,
        };
        tasks.push(task_for(init, &task_ctx, Some(lifecycle), &mut network).map_err(fail)?);
    }
    for container in &spec.containers {
        let lifecycle = poststart
            .contains(&container.name.as_str())
            .then(|| Lifecycle {
                hook: "poststart".to_owned(),
                sidecar: true,
            });
        tasks.push(task_for(container, &task_ctx, lifecycle, &mut network).map_err(fail)?);
    }
    if poststart.len() == spec.containers.len() {
        return Err(fail(format!(
            "annotation {POSTSTART_ANNOTATION} makes every container a sidecar; a pod needs a main container"
        )));
    }

    let has_ports = network.dynamic_ports.is_some() || network.reserved_ports.is_some();
    let networks = (has_ports || ctx.config.network_mode != "host").then(|| vec![network]);

    let datacenters = match annotations.get(DATACENTERS_ANNOTATION) {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        None => ctx.config.datacenters.clone(),
    };
    let mut constraints: Vec<Constraint> = ctx
        .config
        .constraints
        .iter()
        .map(|c| Constraint {
            l_target: c.attribute.clone(),
            r_target: c.value.clone(),
            operand: c.operator.clone(),
        })
        .collect();
    if let Some(text) = annotations.get(CONSTRAINTS_ANNOTATION) {
        let extra: Vec<Constraint> = serde_json::from_str(text).map_err(|e| {
            fail(format!(
                "annotation {CONSTRAINTS_ANNOTATION} is not a JSON array of constraints: {e}"
            ))
        })?;
        constraints.extend(extra);
    }

    let mut stored = pod.clone();
    stored.status = None;
    stored.metadata.managed_fields = None;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let meta = BTreeMap::from([
        (META_UID.to_owned(), uid),
        (META_NAMESPACE.to_owned(), namespace.clone()),
        (META_NAME.to_owned(), name.clone()),
        (META_NODE.to_owned(), ctx.node_name.to_owned()),
        (
            META_POD.to_owned(),
            serde_json::to_string(&stored).unwrap_or_default(),
        ),
    ]);

    Ok(Job {
        id: job_id(&ctx.config.job_prefix, &namespace, &name),
        name,
        job_type: Some(job_type.to_owned()),
        namespace: Some(ctx.namespace.to_owned()),
        region: ctx.region.map(str::to_owned),
        priority: ctx.config.priority,
        datacenters,
        node_pool: annotations
            .get(NODE_POOL_ANNOTATION)
            .cloned()
            .or_else(|| ctx.config.node_pool.clone()),
        constraints: (!constraints.is_empty()).then_some(constraints),
        task_groups: Some(vec![TaskGroup {
            name: GROUP.to_owned(),
            count: Some(1),
            tasks,
            restart_policy: Some(restart_policy),
            reschedule_policy: Some(reschedule),
            networks,
            meta: None,
        }]),
        meta: Some(meta),
        ..Default::default()
    })
}

struct TaskContext<'a> {
    driver: Driver,
    cpu_mhz_per_core: u32,
    kill_timeout: Option<u64>,
    pod_user: Option<&'a str>,
}

fn task_for(
    container: &Container,
    ctx: &TaskContext<'_>,
    lifecycle: Option<Lifecycle>,
    network: &mut NetworkResource,
) -> Result<Task, String> {
    let name = &container.name;
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    let mut config = BTreeMap::new();
    match ctx.driver {
        Driver::Docker => {
            let image = container
                .image
                .as_deref()
                .filter(|i| !i.trim().is_empty())
                .ok_or_else(|| format!("container {name:?} has no image (driver docker)"))?;
            config.insert("image".to_owned(), json!(image));
            if !command.is_empty() {
                config.insert("entrypoint".to_owned(), json!(command));
            }
            if !args.is_empty() {
                config.insert("args".to_owned(), json!(args));
            }
        }
        Driver::Exec | Driver::RawExec => {
            let mut words = command.into_iter().chain(args);
            let program = words.next().filter(|p| !p.trim().is_empty()).ok_or_else(|| {
                format!(
                    "container {name:?} has no command (driver {} runs command + args, not images)",
                    ctx.driver.as_str()
                )
            })?;
            config.insert("command".to_owned(), json!(program));
            let rest: Vec<String> = words.collect();
            if !rest.is_empty() {
                config.insert("args".to_owned(), json!(rest));
            }
        }
    }
    if let Some(dir) = container.working_dir.as_deref().filter(|d| !d.is_empty()) {
        config.insert("work_dir".to_owned(), json!(dir));
    }

    let mut labels = Vec::new();
    for (i, port) in container.ports.iter().flatten().enumerate() {
        if port
            .protocol
            .as_deref()
            .is_some_and(|p| p != "TCP" && p != "UDP")
        {
            return Err(format!(
                "container {name:?} port {}: protocol {:?} is not supported by Nomad",
                port.container_port,
                port.protocol.as_deref().unwrap_or_default()
            ));
        }
        let label = port
            .name
            .clone()
            .unwrap_or_else(|| format!("{name}-{i}"))
            .replace('-', "_");
        let entry = Port {
            label: label.clone(),
            value: 0,
            to: port.container_port,
        };
        match port.host_port.filter(|p| *p > 0) {
            Some(host) => {
                let value = u16::try_from(host)
                    .map_err(|_| format!("container {name:?}: hostPort {host} is out of range"))?;
                network
                    .reserved_ports
                    .get_or_insert_with(Vec::new)
                    .push(Port { value, ..entry });
            }
            None => network
                .dynamic_ports
                .get_or_insert_with(Vec::new)
                .push(entry),
        }
        labels.push(label);
    }
    if ctx.driver == Driver::Docker && !labels.is_empty() {
        config.insert("ports".to_owned(), json!(labels));
    }

    let env: BTreeMap<String, String> = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    let user = container
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .map(|u| u.to_string())
        .or_else(|| ctx.pod_user.map(str::to_owned));

    Ok(Task {
        name: name.clone(),
        driver: ctx.driver.as_str().to_owned(),
        config: config.into_iter().collect::<BTreeMap<String, Value>>(),
        env: (!env.is_empty()).then_some(env),
        user,
        resources: resources_for(container, ctx.cpu_mhz_per_core)?,
        kill_timeout: ctx.kill_timeout,
        lifecycle,
        meta: None,
    })
}

/// Nomad resources from a container's requests and limits (requests win; a limit
/// stands in for a missing request; a memory limit above the request is the
/// `MemoryMaxMB`). `None` when the container asks for nothing: Nomad's defaults apply.
fn resources_for(container: &Container, mhz_per_core: u32) -> Result<Option<Resources>, String> {
    let name = &container.name;
    let get = |which: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               key: &str|
     -> Result<Option<vk_core::Quantity>, String> {
        which
            .and_then(|m| m.get(key))
            .map(|q| {
                vk_core::Quantity::parse(&q.0)
                    .map_err(|e| format!("container {name:?}: {key} {:?}: {e}", q.0))
            })
            .transpose()
    };
    let requests = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref());
    let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
    let cpu = match get(requests, "cpu")? {
        Some(q) => Some(q),
        None => get(limits, "cpu")?,
    };
    let mem_request = get(requests, "memory")?;
    let mem_limit = get(limits, "memory")?;
    let cpu = cpu.map(|q| {
        let millis = u128::try_from(q.millis()).unwrap_or(0);
        let mhz = (millis * u128::from(mhz_per_core)).div_ceil(1000);
        u32::try_from(mhz.max(1)).unwrap_or(u32::MAX)
    });
    let to_mb = |q: &vk_core::Quantity| {
        let bytes = u128::try_from(q.units_ceil()).unwrap_or(0);
        u64::try_from(bytes.div_ceil(MIB)).unwrap_or(u64::MAX)
    };
    let memory = mem_request
        .as_ref()
        .or(mem_limit.as_ref())
        .map(|q| to_mb(q).max(MIN_MEMORY_MB));
    let memory_max = match (&mem_limit, memory) {
        (Some(limit), Some(reserved)) if to_mb(limit) > reserved => Some(to_mb(limit)),
        _ => None,
    };
    if cpu.is_none() && memory.is_none() {
        return Ok(None);
    }
    Ok(Some(Resources {
        cpu,
        memory_mb: memory,
        memory_max_mb: memory_max,
    }))
}

/// The pod recorded in a job's meta by [`job_for`], if any.
pub fn pod_from_meta(meta: &BTreeMap<String, String>) -> Option<Pod> {
    serde_json::from_str(meta.get(META_POD)?).ok()
}

#[cfg(test)]
mod tests;
