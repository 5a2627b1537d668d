//! Errors of the local cluster, each naming the operation that failed and what to do.

use std::path::PathBuf;

/// Something went wrong while installing, building, starting, stopping or reaching the
/// local control plane.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A cluster name that cannot name directories and processes.
    #[error("invalid cluster name {name:?}: use 1-30 lowercase letters, digits and '-'")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// Neither the override variable nor `HOME` says where a directory goes.
    #[error("cannot choose the {what} directory: set {env} or HOME")]
    NoDirectory {
        /// Which directory (cache, state).
        what: &'static str,
        /// The variable that overrides it.
        env: &'static str,
    },
    /// Packages are missing and this process may not install them.
    #[error(
        "the Debian packages {packages} are missing and installing them needs root; \
         run this as root, or install them first: apt-get install -y {packages}"
    )]
    InstallNeedsRoot {
        /// Space-separated package names.
        packages: String,
    },
    /// An external command (apt-get, tar, make...) failed.
    #[error("{operation} failed: `{command}` {status}\n{output}")]
    Command {
        /// What we were trying to do.
        operation: &'static str,
        /// The command line.
        command: String,
        /// Its exit status or spawn error.
        status: String,
        /// The end of its output.
        output: String,
    },
    /// `make` in the Kubernetes tree failed.
    #[error("building Kubernetes {version} failed ({status}); the last lines of {log}:\n{tail}")]
    Build {
        /// Kubernetes version.
        version: &'static str,
        /// make's exit status.
        status: String,
        /// Full build log.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },
    /// A port the cluster needs is held by a process we did not start.
    #[error(
        "port {port} on 127.0.0.1, needed by {component}, is already in use by another \
         process; find it with `ss -ltnp 'sport = :{port}'` and stop it (if it is a cluster \
         from another checkout, `cargo xtask cluster down` there)"
    )]
    PortInUse {
        /// The component that needs the port.
        component: &'static str,
        /// The port.
        port: u16,
    },
    /// A component could not be started at all.
    #[error("starting {component} ({program}) failed: {source}")]
    Spawn {
        /// Component name.
        component: &'static str,
        /// Program path.
        program: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A component exited while we waited for it to become ready.
    #[error("{component} exited during startup; the last lines of {log}:\n{tail}")]
    Exited {
        /// Component name.
        component: &'static str,
        /// Its log file.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// A component kept running but never became ready.
    #[error(
        "{component} did not become ready within {seconds} s (last check: {last_error}); \
         the last lines of {log}:\n{tail}"
    )]
    NotReady {
        /// Component name.
        component: &'static str,
        /// How long we waited.
        seconds: u64,
        /// What the last readiness check said.
        last_error: String,
        /// Its log file.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// A component did not stop, even after SIGKILL.
    #[error("stopping {component} (pid {pid}) failed: {reason}")]
    Stop {
        /// Component name.
        component: &'static str,
        /// Its process id.
        pid: i32,
        /// Why.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What we were doing.
        operation: &'static str,
        /// On which path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("generating certificates failed: {0}")]
    Pki(#[from] rcgen::Error),
    /// The kubeconfig could not be turned into a client.
    #[error("creating a Kubernetes client from {kubeconfig} failed: {reason}")]
    Client {
        /// The kubeconfig file.
        kubeconfig: PathBuf,
        /// Why.
        reason: String,
    },
    /// A background task panicked or was cancelled.
    #[error("{operation} was interrupted: {reason}")]
    Interrupted {
        /// What was running.
        operation: &'static str,
        /// Why it stopped.
        reason: String,
    },
}
