//! # vk-core: the Virtual Kubelet controllers
//!
//! Work in progress: see the modules.

pub mod client;
pub mod env;
pub mod events;
pub mod kube_errors;
pub mod node;
pub mod pod;
pub mod provider;
pub mod quantity;
pub mod queue;
pub mod resources;
pub mod runtime;

pub use provider::{
    NaiveNodeProvider, NodeProvider, NodeStatusSink, PodLifecycleHandler, PodNotifier,
    PodStatusSink, SharedNodeProvider, SharedPodHandler,
};
pub use quantity::Quantity;
pub use resources::ResourceAccess;
