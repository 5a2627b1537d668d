//! # vk-mock: an in-memory Virtual Kubelet provider
//!
//! Pods go Running as soon as they are created (with an IP from 10.244.0.0/16 and
//! running container statuses, pushed through the core's notifier), and stop when
//! deleted. Optional fault injection (error rate, latency) and switches for tests
//! ([`MockProvider::fail_creates`], [`MockProvider::fail_pings`]) make failure paths
//! testable; an optional state file keeps pods across restarts. It reports fake but
//! kubelet-shaped statistics ([`stats`]) for `/stats/summary` and `/metrics/resource`.
//!
//! The `vk-mock` binary runs it as a virtual node through `vk-cli`.

mod api;
mod config;
mod ips;
mod provider;
mod state;
pub mod stats;

pub use config::{Faults, MockConfig, NodeOverride};
pub use provider::{CallCounts, MockProvider, SharedMock};
pub use state::StateFileError;
