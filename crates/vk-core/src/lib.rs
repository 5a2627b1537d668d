//! # vk-core: the Virtual Kubelet controllers
//!
//! Work in progress: see the modules.

pub mod env;
pub mod provider;
pub mod quantity;
pub mod queue;

pub use provider::{
    NaiveNodeProvider, NodeProvider, NodeStatusSink, PodLifecycleHandler, PodNotifier,
    PodStatusSink,
};
pub use quantity::Quantity;
