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

impl Ports {
    /// The ports of the cluster named `name`: the defaults for [`DEFAULT_CLUSTER`],
    /// otherwise the defaults shifted by a multiple of 100 chosen from the name (slots 1
    /// to 40), so that several named clusters run side by side. Two names may share a
    /// slot (the second `up` then reports the ports in use): pick another name.
    ///
    /// ```
    /// use vk_testkit::cluster::Ports;
    /// let remote = Ports::for_cluster("remote");
    /// assert_ne!(remote.apiserver, Ports::default().apiserver);
    /// assert_eq!(remote, Ports::for_cluster("remote"));
    /// assert_eq!((remote.apiserver - Ports::default().apiserver) % 100, 0);
    /// ```
    pub fn for_cluster(name: &str) -> Self {
        let base = Self::default();
        if name == DEFAULT_CLUSTER {
            return base;
        }
        // FNV-1a: stable across runs and Rust versions (unlike `DefaultHasher`).
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let shift = u16::try_from(hash % 40).unwrap_or(0).saturating_add(1) * 100;
        Self {
            etcd_client: base.etcd_client + shift,
            etcd_peer: base.etcd_peer + shift,
            apiserver: base.apiserver + shift,
            controller_manager: base.controller_manager + shift,
            scheduler: base.scheduler + shift,
        }
    }
}

/// The name of the cluster used when none is given (`cargo xtask cluster up`).
pub const DEFAULT_CLUSTER: &str = "default";

/// The variable naming the cluster that tools and tests use (set by
/// `eval "$(cargo xtask cluster env --name NAME)"`); unset or empty means
/// [`DEFAULT_CLUSTER`].
pub const CLUSTER_NAME_ENV: &str = "VK_CLUSTER_NAME";

/// Checks a cluster name: 1-30 lowercase letters, digits and `-`.
pub fn validate_cluster_name(name: &str) -> Result<(), ClusterError> {
    let ok = !name.is_empty()
        && name.len() <= 30
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ClusterError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// The directories and ports of one local cluster.
///
/// Several clusters can run side by side, each with a name (`cargo xtask cluster up
/// --name remote`): the default one is `default`; another one keeps its state in a
/// sibling directory `<state>-<name>`, its etcd data in its own directory, and listens on
/// [`Ports::for_cluster`]. The cache (the built binaries) is shared.
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
    name: String,
    cache_root: PathBuf,
    state: PathBuf,
    etcd_data: PathBuf,
    /// The ports the control plane listens on.
    pub ports: Ports,
}

impl Layout {
    /// The layout of the cluster named by `VK_CLUSTER_NAME` (default: `default`), with
    /// the directories the environment chooses (see the type's documentation).
    pub fn from_env() -> Result<Self, ClusterError> {
        let name = std::env::var(CLUSTER_NAME_ENV)
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_CLUSTER.to_owned());
        Self::named(&name)
    }

    /// The layout of the cluster `name`, with the directories the environment chooses.
    pub fn named(name: &str) -> Result<Self, ClusterError> {
        validate_cluster_name(name)?;
        let default = Self::default_from_env()?;
        if name == DEFAULT_CLUSTER {
            return Ok(default);
        }
        let sibling = |dir: &Path| {
            let mut os = dir.as_os_str().to_owned();
            os.push(format!("-{name}"));
            PathBuf::from(os)
        };
        Ok(Self {
            state: sibling(&default.state),
            etcd_data: sibling(&default.etcd_data),
            ports: Ports::for_cluster(name),
            name: name.to_owned(),
            ..default
        })
    }

    /// The default cluster's layout, from the environment.
    fn default_from_env() -> Result<Self, ClusterError> {
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

    /// A layout of the default cluster with explicit directories and the default ports.
    pub fn new(cache_root: PathBuf, state: PathBuf, etcd_data: PathBuf) -> Self {
        Self {
            name: DEFAULT_CLUSTER.to_owned(),
            cache_root,
            state,
            etcd_data,
            ports: Ports::default(),
        }
    }

    /// The cluster's name (`default` unless chosen).
    pub fn name(&self) -> &str {
        &self.name
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

#[cfg(test)]
mod tests {
    use super::*;

    fn default_layout() -> Layout {
        Layout::new(
            "/cache".into(),
            "/state/cluster".into(),
            "/dev/shm/vk-rs-etcd-0".into(),
        )
    }

    #[test]
    fn named_clusters_get_their_own_state_etcd_and_ports() {
        let default = default_layout();
        let named = Layout {
            state: PathBuf::from("/state/cluster-remote"),
            etcd_data: PathBuf::from("/dev/shm/vk-rs-etcd-0-remote"),
            ports: Ports::for_cluster("remote"),
            name: "remote".into(),
            ..default.clone()
        };
        assert_eq!(
            named.bin_dir(),
            default.bin_dir(),
            "the build cache is shared"
        );
        assert_ne!(named.kubeconfig(), default.kubeconfig());
        assert_ne!(named.server_url(), default.server_url());
        let p = Ports::for_cluster("remote");
        let d = Ports::default();
        for (a, b) in [
            (p.etcd_client, d.etcd_client),
            (p.etcd_peer, d.etcd_peer),
            (p.apiserver, d.apiserver),
            (p.controller_manager, d.controller_manager),
            (p.scheduler, d.scheduler),
        ] {
            assert!(a > b && (a - b) % 100 == 0 && a - b <= 4000, "{a} vs {b}");
        }
        assert_eq!(Ports::for_cluster(DEFAULT_CLUSTER), d);
    }

    #[test]
    fn cluster_names_are_checked() {
        for good in ["remote", "faults-1", "a"] {
            assert!(validate_cluster_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Remote", "a/b", "../x", "with space", &"x".repeat(31)] {
            let err = validate_cluster_name(bad).expect_err(bad).to_string();
            assert!(err.contains("invalid cluster name"), "{err}");
        }
    }
}
