//! Where the local cluster keeps its files, and which ports it uses.

use std::path::{Path, PathBuf};

use super::error::ClusterError;
use super::pki::Pki;

/// The Kubernetes version the local control plane runs (built from Debian's source
/// package, which is the newest Kubernetes whose source and Go toolchain are both
/// installable here).
pub const KUBERNETES_VERSION: &str = "v1.20.2";

/// Loopback ports of the control plane. They are deliberately not the standard ones, so
/// the local cluster does not collide with a real etcd or kube-apiserver on the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// etcd client URL port.
    pub etcd_client: u16,
    /// etcd peer URL port.
    pub etcd_peer: u16,
    /// kube-apiserver HTTPS port.
    pub apiserver: u16,
    /// kube-controller-manager secure (health) port.
    pub controller_manager: u16,
    /// kube-scheduler secure (health) port.
    pub scheduler: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            etcd_client: 12379,
            etcd_peer: 12380,
            apiserver: 16443,
            controller_manager: 10357,
            scheduler: 10359,
        }
    }
}

/// The directories of one local cluster.
///
/// * the **cache** (`$VK_CACHE_DIR`, default `$XDG_CACHE_HOME/vk-rs` or `~/.cache/vk-rs`)
///   holds the Kubernetes source download and the built binaries, keyed by version; it
///   survives `down --wipe` so a second `up` starts in seconds;
/// * the **state** (`$VK_CLUSTER_DIR`, default `$XDG_STATE_HOME/vk-rs/cluster` or
///   `~/.local/state/vk-rs/cluster`) holds certificates, kubeconfigs, PID files and logs;
/// * **etcd's data** lives on tmpfs (`/dev/shm`) when it is available: the cluster is
///   disposable, and fsync latency on a shared disk would otherwise dominate API latency
///   in tests and benchmarks. Set `VK_CLUSTER_ETCD_DIR` to keep it elsewhere.
#[derive(Debug, Clone)]
pub struct Layout {
    cache_root: PathBuf,
    state: PathBuf,
    etcd_data: PathBuf,
    /// The ports the control plane listens on.
    pub ports: Ports,
}

impl Layout {
    /// The layout chosen by the environment (see the type's documentation).
    pub fn from_env() -> Result<Self, ClusterError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let cache_root = match (var("VK_CACHE_DIR"), var("XDG_CACHE_HOME"), &home) {
            (Some(dir), _, _) => PathBuf::from(dir),
            (None, Some(xdg), _) => PathBuf::from(xdg).join("vk-rs"),
            (None, None, Some(home)) => home.join(".cache").join("vk-rs"),
            (None, None, None) => {
                return Err(ClusterError::NoDirectory {
                    what: "cache",
                    env: "VK_CACHE_DIR",
                });
            }
        };
        let state = match (var("VK_CLUSTER_DIR"), var("XDG_STATE_HOME"), &home) {
            (Some(dir), _, _) => PathBuf::from(dir),
            (None, Some(xdg), _) => PathBuf::from(xdg).join("vk-rs").join("cluster"),
            (None, None, Some(home)) => home.join(".local/state/vk-rs/cluster"),
            (None, None, None) => {
                return Err(ClusterError::NoDirectory {
                    what: "state",
                    env: "VK_CLUSTER_DIR",
                });
            }
        };
        let etcd_data = match var("VK_CLUSTER_ETCD_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => default_etcd_dir(&state),
        };
        Ok(Self::new(cache_root, state, etcd_data))
    }

    /// A layout with explicit directories and the default ports.
    pub fn new(cache_root: PathBuf, state: PathBuf, etcd_data: PathBuf) -> Self {
        Self {
            cache_root,
            state,
            etcd_data,
            ports: Ports::default(),
        }
    }

    /// The per-version cache directory.
    pub fn cache(&self) -> PathBuf {
        self.cache_root
            .join(format!("kubernetes-{KUBERNETES_VERSION}"))
    }

    /// Directory of the built control-plane binaries.
    pub fn bin_dir(&self) -> PathBuf {
        self.cache().join("bin")
    }

    /// The state directory.
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// etcd's data directory.
    pub fn etcd_data(&self) -> &Path {
        &self.etcd_data
    }

    /// The certificates.
    pub fn pki(&self) -> Pki {
        Pki::new(self.state.join("pki"))
    }

    /// PID files.
    pub fn run_dir(&self) -> PathBuf {
        self.state.join("run")
    }

    /// One log file per component.
    pub fn log_dir(&self) -> PathBuf {
        self.state.join("logs")
    }

    /// The administrator's kubeconfig (`export KUBECONFIG=...`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.state.join("admin.kubeconfig")
    }

    /// A component's own kubeconfig.
    pub fn component_kubeconfig(&self, component: &str) -> PathBuf {
        self.state.join(format!("{component}.kubeconfig"))
    }

    /// The lock file that serialises `up` and `down` across processes.
    pub fn lock_file(&self) -> PathBuf {
        self.state.join("lock")
    }

    /// The API server's URL.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports.apiserver)
    }
}

fn default_etcd_dir(state: &Path) -> PathBuf {
    const MIN_FREE: u64 = 1 << 30;
    let shm = Path::new("/dev/shm");
    let roomy = nix::sys::statvfs::statvfs(shm)
        .map(|s| s.blocks_available() * s.fragment_size() >= MIN_FREE)
        .unwrap_or(false);
    if roomy {
        let uid = nix::unistd::getuid();
        shm.join(format!("vk-rs-etcd-{uid}"))
    } else {
        state.join("etcd")
    }
}
