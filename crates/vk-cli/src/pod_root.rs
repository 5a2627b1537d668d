//! Running as a pod **without a mount namespace** (under vk-process).
//!
//! vk-process runs a pod's containers as host processes: it cannot mount volumes at
//! their `mountPath`. It materialises them in a per-pod directory instead, links every
//! mount path under the pod's root there, and tells the process where that root is in
//! `VK_POD_ROOT` (see vk-process's README). A provider binary started that way (the
//! Helm chart's pod scheduled to a vk-process node) therefore reads the in-pod absolute
//! paths it is given under that root:
//!
//! * the files of its flags (`--provider-config`, `--tls-cert-file`,
//!   `--tls-private-key-file`, `--client-ca-file`), when the rooted file exists;
//! * the ServiceAccount directory `/var/run/secrets/kubernetes.io/serviceaccount`
//!   (`token`, `ca.crt`, `namespace`) for its in-cluster client configuration, with the
//!   API server at `KUBERNETES_SERVICE_HOST`:`KUBERNETES_SERVICE_PORT` as usual.
//!
//! Without `VK_POD_ROOT` (a container runtime mounted the volumes) nothing changes.
//!
//! ```
//! use std::path::Path;
//! let root = tempfile::tempdir().unwrap();
//! std::fs::create_dir_all(root.path().join("etc/vk")).unwrap();
//! std::fs::write(root.path().join("etc/vk/provider.toml"), "").unwrap();
//! let inside = Path::new("/etc/vk/provider.toml");
//! assert_eq!(vk_cli::pod_root::resolve_in(Some(root.path()), inside), root.path().join("etc/vk/provider.toml"));
//! // Not in the pod root: the path as given.
//! assert_eq!(vk_cli::pod_root::resolve_in(Some(root.path()), Path::new("/etc/hosts")), Path::new("/etc/hosts"));
//! assert_eq!(vk_cli::pod_root::resolve_in(None, inside), inside);
//! ```

use std::path::{Path, PathBuf};

/// The variable naming the pod's root directory (set by vk-process).
pub const POD_ROOT_ENV: &str = "VK_POD_ROOT";

/// Where Kubernetes mounts a pod's ServiceAccount credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The pod root from `VK_POD_ROOT`, when set and not empty.
pub fn pod_root() -> Option<PathBuf> {
    std::env::var_os(POD_ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `path` inside `root` when `root` is given, `path` is absolute and the rooted path
/// exists; otherwise `path` unchanged.
pub fn resolve_in(root: Option<&Path>, path: &Path) -> PathBuf {
    let Some(root) = root else {
        return path.to_owned();
    };
    let Ok(relative) = path.strip_prefix("/") else {
        return path.to_owned();
    };
    let rooted = root.join(relative);
    if rooted.exists() {
        rooted
    } else {
        path.to_owned()
    }
}

/// [`resolve_in`] with the pod root of the environment.
pub fn resolve(path: &Path) -> PathBuf {
    resolve_in(pod_root().as_deref(), path)
}

/// The ServiceAccount directory inside the pod root, when this process runs under one
/// and the directory holds a token.
pub fn service_account_dir() -> Option<PathBuf> {
    service_account_dir_in(&pod_root()?)
}

fn service_account_dir_in(root: &Path) -> Option<PathBuf> {
    let dir = root.join(SERVICE_ACCOUNT_DIR.trim_start_matches('/'));
    dir.join("token").is_file().then_some(dir)
}

/// Errors building the in-cluster configuration from a pod root.
#[derive(Debug, thiserror::Error)]
pub enum InClusterError {
    /// `KUBERNETES_SERVICE_HOST` or `KUBERNETES_SERVICE_PORT` is missing or bad.
    #[error("reading {variable}: {reason}")]
    ServiceAddress {
        /// The variable.
        variable: &'static str,
        /// Why it is unusable.
        reason: String,
    },
    /// The namespace file could not be read.
    #[error("reading {path}: {source}")]
    ReadNamespace {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// kube refused the configuration (e.g. an unreadable CA bundle).
    #[error("loading the ServiceAccount credentials of {dir}: {source}")]
    Load {
        /// The ServiceAccount directory.
        dir: PathBuf,
        /// Cause.
        source: kube::config::KubeconfigError,
    },
}

/// The API server URL of `KUBERNETES_SERVICE_HOST`/`PORT` (IPv6 hosts bracketed).
///
/// ```
/// assert_eq!(vk_cli::pod_root::service_url("127.0.0.1", "6443").unwrap(), "https://127.0.0.1:6443");
/// assert_eq!(vk_cli::pod_root::service_url("::1", "443").unwrap(), "https://[::1]:443");
/// assert!(vk_cli::pod_root::service_url("h", "http").is_err());
/// ```
pub fn service_url(host: &str, port: &str) -> Result<String, InClusterError> {
    let port: u16 = port.parse().map_err(|e| InClusterError::ServiceAddress {
        variable: "KUBERNETES_SERVICE_PORT",
        reason: format!("{port:?}: {e}"),
    })?;
    if host.is_empty() {
        return Err(InClusterError::ServiceAddress {
            variable: "KUBERNETES_SERVICE_HOST",
            reason: "empty".into(),
        });
    }
    Ok(match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("https://[{ip}]:{port}"),
        _ => format!("https://{host}:{port}"),
    })
}

/// The in-cluster client configuration from the ServiceAccount directory `dir`, with
/// the API server at `KUBERNETES_SERVICE_HOST`:`KUBERNETES_SERVICE_PORT` (see
/// [`in_cluster_config_at`]).
pub async fn in_cluster_config(dir: &Path) -> Result<kube::Config, InClusterError> {
    let var = |variable: &'static str| {
        std::env::var(variable).map_err(|e| InClusterError::ServiceAddress {
            variable,
            reason: e.to_string(),
        })
    };
    let server = service_url(
        &var("KUBERNETES_SERVICE_HOST")?,
        &var("KUBERNETES_SERVICE_PORT")?,
    )?;
    in_cluster_config_at(dir, server).await
}

/// The in-cluster client configuration for the API server at `server` from the
/// ServiceAccount directory `dir`: trusting `dir/ca.crt`, authenticated with
/// `dir/token` (re-read as it is rotated, like kube's own in-cluster configuration),
/// in the namespace of `dir/namespace`.
pub async fn in_cluster_config_at(
    dir: &Path,
    server: String,
) -> Result<kube::Config, InClusterError> {
    use kube::config::{
        AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
    };
    let namespace_file = dir.join("namespace");
    let namespace = std::fs::read_to_string(&namespace_file)
        .map_err(|source| InClusterError::ReadNamespace {
            path: namespace_file,
            source,
        })?
        .trim()
        .to_owned();
    let file = |name: &str| Some(dir.join(name).display().to_string());
    let name = "in-cluster".to_owned();
    let kubeconfig = Kubeconfig {
        clusters: vec![NamedCluster {
            name: name.clone(),
            cluster: Some(Cluster {
                server: Some(server),
                certificate_authority: file("ca.crt"),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.clone(),
            auth_info: Some(AuthInfo {
                token_file: file("token"),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: name.clone(),
            context: Some(Context {
                cluster: name.clone(),
                user: Some(name.clone()),
                namespace: Some(namespace),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(name),
        ..Default::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|source| InClusterError::Load {
            dir: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_cluster_config_reads_the_service_account_directory() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = rcgen::generate_simple_self_signed(vec!["ca".to_owned()]).expect("ca");
        std::fs::write(dir.path().join("ca.crt"), ca.cert.pem()).expect("ca");
        std::fs::write(dir.path().join("token"), "t0k3n").expect("token");
        std::fs::write(dir.path().join("namespace"), "vk-system\n").expect("ns");
        let config = in_cluster_config_at(dir.path(), "https://127.0.0.1:6443".into())
            .await
            .expect("config");
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(config.default_namespace, "vk-system");
        assert_eq!(config.root_cert.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            config.auth_info.token_file,
            Some(dir.path().join("token").display().to_string())
        );

        std::fs::remove_file(dir.path().join("namespace")).expect("rm");
        let e = in_cluster_config_at(dir.path(), "https://h:1".into())
            .await
            .expect_err("no namespace");
        assert!(e.to_string().contains("namespace"), "{e}");
    }

    #[test]
    fn service_account_dir_needs_a_token_in_the_pod_root() {
        let root = tempfile::tempdir().expect("root");
        let dir = root
            .path()
            .join(SERVICE_ACCOUNT_DIR.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert_eq!(service_account_dir_in(root.path()), None);
        std::fs::write(dir.join("token"), "t").expect("token");
        assert_eq!(service_account_dir_in(root.path()), Some(dir));
    }
}
