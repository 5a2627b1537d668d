//! Resource limits through a **delegated cgroup v2** directory (`cgroup_parent` in the
//! configuration): one child cgroup per container, `memory.max` from
//! `resources.limits.memory` and `cpu.max` from `resources.limits.cpu`, and OOM kills
//! read back from `memory.events`.
//!
//! Without a usable `cgroup_parent` (not set, not cgroup v2, or the `memory`/`cpu`
//! controllers not enabled in its `cgroup.subtree_control`), limits are not enforced and
//! vk-process logs one warning per pod that has limits. vk-process never touches any
//! other cgroup (hosts often mount cgroup v1 controllers owned by someone else).
//!
//! To delegate one as root on a cgroup v2 host:
//! ```sh
//! mkdir /sys/fs/cgroup/vk-process
//! echo "+cpu +memory" > /sys/fs/cgroup/cgroup.subtree_control
//! echo "+cpu +memory" > /sys/fs/cgroup/vk-process/cgroup.subtree_control
//! # then: cgroup_parent = "/sys/fs/cgroup/vk-process" in the provider config
//! ```

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use vk_core::Quantity;

/// Why `parent` cannot be used for limits, or `Ok` when it can.
pub fn check_parent(parent: Option<&Path>) -> Result<(), String> {
    let Some(parent) = parent else {
        return Err("no cgroup_parent is configured".into());
    };
    let controls = std::fs::read_to_string(parent.join("cgroup.subtree_control"))
        .map_err(|e| format!("{} is not a cgroup v2 directory: {e}", parent.display()))?;
    for needed in ["memory", "cpu"] {
        if !controls.split_whitespace().any(|c| c == needed) {
            return Err(format!(
                "the {needed} controller is not enabled in {}/cgroup.subtree_control",
                parent.display()
            ));
        }
    }
    Ok(())
}

/// Whether `container` has CPU or memory limits.
pub fn has_limits(container: &Container) -> bool {
    container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .is_some_and(|l| l.contains_key("cpu") || l.contains_key("memory"))
}

fn cgroup_dir(parent: &Path, pod: &Pod, container: &Container) -> PathBuf {
    let uid = pod.metadata.uid.as_deref().unwrap_or("pod");
    parent.join(format!("{uid}_{}", container.name))
}

/// `cpu.max` for a CPU limit in millicores: quota and period in microseconds.
///
/// ```
/// assert_eq!(vk_process::limits::cpu_max(500), "50000 100000");
/// ```
pub fn cpu_max(millicores: i64) -> String {
    format!("{} 100000", (millicores.max(1) * 100).max(1000))
}

/// Creates the container's cgroup with its limits; `None` when limits do not apply.
pub fn prepare(parent: Option<&Path>, pod: &Pod, container: &Container) -> Option<PathBuf> {
    if !has_limits(container) || check_parent(parent).is_err() {
        return None;
    }
    let dir = cgroup_dir(parent?, pod, container);
    std::fs::create_dir_all(&dir).ok()?;
    let limits = container.resources.as_ref()?.limits.as_ref()?;
    if let Some(mem) = limits
        .get("memory")
        .and_then(|q| Quantity::parse(&q.0).ok())
    {
        let _ = std::fs::write(dir.join("memory.max"), mem.units_ceil().to_string());
    }
    if let Some(cpu) = limits.get("cpu").and_then(|q| Quantity::parse(&q.0).ok()) {
        let _ = std::fs::write(
            dir.join("cpu.max"),
            cpu_max(i64::try_from(cpu.millis()).unwrap_or(i64::MAX)),
        );
    }
    Some(dir)
}

/// Whether the kernel OOM-killed a process of the container's cgroup.
pub fn oom_killed(parent: Option<&Path>, pod: &Pod, container: &Container) -> bool {
    let Some(parent) = parent else { return false };
    let events = std::fs::read_to_string(cgroup_dir(parent, pod, container).join("memory.events"));
    events.is_ok_and(|e| {
        e.lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .any(|n| n.trim() != "0")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_parents_say_why() {
        assert!(check_parent(None).is_err());
        let tmp = tempfile::tempdir().expect("tmp");
        assert!(
            check_parent(Some(tmp.path()))
                .expect_err("not cgroup")
                .contains("cgroup v2")
        );
        std::fs::write(tmp.path().join("cgroup.subtree_control"), "cpu\n").expect("write");
        assert!(
            check_parent(Some(tmp.path()))
                .expect_err("no memory")
                .contains("memory")
        );
        std::fs::write(tmp.path().join("cgroup.subtree_control"), "cpu memory\n").expect("write");
        assert!(check_parent(Some(tmp.path())).is_ok());
    }
}
