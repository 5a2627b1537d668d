//! **vk-process**: a Virtual Kubelet provider that runs each pod's containers as local
//! host processes — no container runtime, no cloud account.
//!
//! Start with [`ProcessProvider`] (the pod lifecycle) and [`config::ProcessConfig`]
//! (the `--provider-config` file); the `vk-process` binary wires them into
//! [`vk_cli::main`].
//!
//! # How pods run
//!
//! * Each container's `command` + `args` runs directly (no shell); without `command`,
//!   the image is looked up in the `images` table ([`launch`]).
//! * Each container instance runs under a small shim process ([`shim`]) that writes its
//!   logs, PID and exit code to files in the pod's directory ([`layout`]); the container
//!   has its own process group. So a restarted provider adopts running processes.
//! * Init containers, restart policies with the kubelet's crash back-off, the pod phase
//!   ([`lifecycle`]), probes ([`probes`]), `activeDeadlineSeconds` and deletion
//!   (SIGTERM to the process group, SIGKILL after the grace period) are in
//!   [`supervisor`].
//! * Pods get a working in-cluster configuration: the API server this node uses and
//!   ServiceAccount tokens from the TokenRequest API ([`incluster`]).
//! * Volumes are directories and symlinks ([`volumes`]); limits use a delegated cgroup
//!   v2 when configured ([`limits`]).
//!
//! # Security
//!
//! This provider executes **whatever pods are scheduled to its node**, as the user it
//! runs as (or, when root, as `runAsUser`/`runAsGroup`). The node's default taint
//! (`virtual-kubelet.io/provider=process:NoSchedule`) keeps pods away unless they
//! tolerate it explicitly; do not remove it on a shared cluster.

pub mod api;
pub mod config;
pub mod error;
pub mod incluster;
pub mod instance;
pub mod launch;
pub mod layout;
pub mod lifecycle;
pub mod limits;
pub mod logfmt;
pub mod probes;
pub mod process_end;
pub mod procfs;
pub mod provider;
pub mod read_cache;
pub mod shim;
pub mod stats;
pub mod supervisor;
pub mod volumes;

pub use config::ProcessConfig;
pub use error::ProcessError;
pub use provider::{ProcessProvider, SharedProvider};
