//! vk-aci: a Virtual Kubelet provider backed by Azure Container Instances.
//!
//! Every pod scheduled to the virtual node runs as one ACI container group (the AKS
//! "virtual nodes" use case). Where to start:
//!
//! * [`config`]: what to configure (subscription, resource group, region, network).
//! * [`auth`]: Microsoft Entra tokens for every credential type Azure users expect
//!   (client secret, certificate, workload identity, managed identity), hand-rolled on
//!   `vk_core::http` — the module docs say why the Azure SDK crates are not used.
//! * [`arm`]: a thin typed client of the `Microsoft.ContainerInstance/containerGroups`
//!   REST API (long-running operations, throttling).
//! * [`mapping`]: pod → container group, and container group → pod status.
//! * [`AciProvider`]: the provider itself; [`exec`] and [`logs`] say what ACI offers
//!   for `kubectl exec` and `kubectl logs` and what vk-aci does about the rest.

pub mod arm;
pub mod auth;
pub mod config;
pub mod mapping;

pub use config::AciConfig;
pub mod exec;
pub mod logs;
pub mod provider;
pub mod setup;

pub use provider::{AciProvider, ProviderSettings};
