//! **vk-nomad**: a Virtual Kubelet provider whose pods run as HashiCorp Nomad jobs.
//!
//! Start with [`NomadProvider`] (the pod lifecycle, node health, logs and exec) and
//! [`NomadConfig`] (the `--provider-config` file and the `NOMAD_*` environment); the
//! `vk-nomad` binary wires them into [`vk_cli::main`].
//!
//! * [`api`]: a thin typed client of Nomad's HTTP API v1 (and why not the
//!   `nomad-client` crate);
//! * [`mapping`]: pod → job (one job per pod, one task per container);
//! * [`status`]: allocations → pod status;
//! * [`provider`]: the pod lifecycle (create, adopt, update, delete);
//! * [`watch`]: status pushed from Nomad's event stream (or blocking queries);
//! * [`node`]: readiness from the Nomad leader, capacity from the client nodes;
//! * [`logs`] and [`exec`]: `kubectl logs` and `kubectl exec`.

pub mod api;
pub mod config;
pub mod error;
pub mod exec;
pub mod logs;
pub mod mapping;
pub mod node;
pub mod provider;
pub mod status;
pub mod watch;

pub use config::NomadConfig;
pub use error::NomadError;
pub use provider::NomadProvider;
pub use watch::start_watch;
