//! Where a pod's files live under the state directory.
//!
//! ```text
//! <state_dir>/pods/<namespace>_<name>_<uid>/
//!   pod.json                      the pod as created (spec with resolved env)
//!   status.json                   the last status reported (restart counts survive restarts)
//!   root/                         the pod's root: every volumeMount's mountPath is a
//!                                 symlink here, e.g. root/etc/config -> ../../volumes/config
//!   volumes/<volume>/             materialised volumes (emptyDir, configMap, secret, ...)
//!   containers/<container>/
//!     work/                       the working directory (unless workingDir is set)
//!     stdin                       FIFO for `stdin: true` containers
//!     <instance>.spec.json        what the shim runs (instance = restart count)
//!     <instance>.pid.json         PID + start time of the running instance
//!     <instance>.exit.json        exit code of a finished instance
//!     <instance>.log              its stdout/stderr in the CRI log format
//! ```

use std::path::{Path, PathBuf};

/// The directories and files of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDir {
    dir: PathBuf,
}

impl PodDir {
    /// The directory of pod `namespace/name` with `uid` under `state_dir`.
    ///
    /// ```
    /// let d = vk_process::layout::PodDir::new("/s".as_ref(), "ns", "web", "u1");
    /// assert_eq!(d.path(), std::path::Path::new("/s/pods/ns_web_u1"));
    /// assert_eq!(d.log("c", 2), std::path::Path::new("/s/pods/ns_web_u1/containers/c/2.log"));
    /// ```
    pub fn new(state_dir: &Path, namespace: &str, name: &str, uid: &str) -> Self {
        Self {
            dir: pods_dir(state_dir).join(format!("{namespace}_{name}_{uid}")),
        }
    }

    /// A pod directory found on disk.
    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The pod's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The pod as created.
    pub fn pod_json(&self) -> PathBuf {
        self.dir.join("pod.json")
    }

    /// The last status.
    pub fn status_json(&self) -> PathBuf {
        self.dir.join("status.json")
    }

    /// The pod's root (mount paths).
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// A volume's directory.
    pub fn volume(&self, volume: &str) -> PathBuf {
        self.dir.join("volumes").join(volume)
    }

    /// A container's directory.
    pub fn container(&self, container: &str) -> PathBuf {
        self.dir.join("containers").join(container)
    }

    /// A container's default working directory.
    pub fn work(&self, container: &str) -> PathBuf {
        self.container(container).join("work")
    }

    /// A container's stdin FIFO.
    pub fn stdin(&self, container: &str) -> PathBuf {
        self.container(container).join("stdin")
    }

    /// The shim spec of an instance.
    pub fn spec(&self, container: &str, instance: u32) -> PathBuf {
        self.container(container)
            .join(format!("{instance}.spec.json"))
    }

    /// The PID record of an instance.
    pub fn pid(&self, container: &str, instance: u32) -> PathBuf {
        self.container(container)
            .join(format!("{instance}.pid.json"))
    }

    /// The exit record of an instance.
    pub fn exit(&self, container: &str, instance: u32) -> PathBuf {
        self.container(container)
            .join(format!("{instance}.exit.json"))
    }

    /// The log of an instance.
    pub fn log(&self, container: &str, instance: u32) -> PathBuf {
        self.container(container).join(format!("{instance}.log"))
    }

    /// Removes the files of instances older than `keep_from` (the previous instance is
    /// kept for `kubectl logs --previous`).
    pub fn prune(&self, container: &str, keep_from: u32) {
        for old in 0..keep_from {
            for p in [
                self.spec(container, old),
                self.pid(container, old),
                self.exit(container, old),
                self.log(container, old),
            ] {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// The directory holding every pod's directory.
pub fn pods_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("pods")
}

/// The environment variable naming a mount path: `VK_MOUNT_` + the path in upper case
/// with every other character than letters and digits as `_`.
///
/// ```
/// assert_eq!(vk_process::layout::mount_env_name("/etc/my-config"), "VK_MOUNT_ETC_MY_CONFIG");
/// ```
pub fn mount_env_name(mount_path: &str) -> String {
    let body: String = mount_path
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("VK_MOUNT_{body}")
}
