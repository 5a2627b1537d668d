//! A conformance suite provider authors run against **their** provider, on a real
//! control plane.
//!
//! Implement [`Target`] for your provider (how to build an instance for a node, and
//! optionally [`Inspect`] for the checks that look inside the provider or inject
//! faults), then write one test per check:
//!
//! ```no_run
//! # struct MyTarget;
//! # impl vk_testkit::conformance::Target for MyTarget {
//! #   fn name(&self) -> &str { "mine" }
//! #   fn instantiate(&self, _node: &str, _r: vk_core::ResourceAccess) -> vk_testkit::conformance::Instance { unimplemented!() }
//! # }
//! #[tokio::test(flavor = "multi_thread")]
//! async fn node_registers_and_turns_ready() {
//!     vk_testkit::conformance::node::registers_and_turns_ready(&MyTarget).await;
//! }
//! ```
//!
//! Every check starts its own virtual node (in-process, through `vk-core`) with a unique
//! name and its own namespace, so checks run in parallel, and cleans up after itself.
//! Checks panic with a message describing what was expected and what was seen.

pub mod harness;
pub mod node;
pub mod pods;
pub mod recorder;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use vk_core::{ResourceAccess, SharedNodeProvider, SharedPodHandler};

pub use harness::{Harness, HarnessOptions};
pub use recorder::{Backend, Recorder, block_on};

/// One provider instance for one virtual node.
#[derive(Clone)]
pub struct Instance {
    /// Pod operations.
    pub pods: SharedPodHandler,
    /// Node hooks; `None` for the naive default.
    pub node: Option<SharedNodeProvider>,
    /// Introspection and fault injection, if the provider offers it.
    pub inspect: Option<Arc<dyn Inspect>>,
}

/// The provider under test.
pub trait Target: Send + Sync {
    /// Provider name (taint value, node info).
    fn name(&self) -> &str;
    /// A fresh provider instance for node `node_name`.
    fn instantiate(&self, node_name: &str, resources: ResourceAccess) -> Instance;
}

/// Introspection and fault injection some checks need. Checks that need it say so and
/// panic without it.
pub trait Inspect: Send + Sync {
    /// The pod as the provider received it (with the env resolved by the core).
    fn received_pod(&self, namespace: &str, name: &str) -> Option<Pod>;
    /// How many times `create_pod` was called (successful or not).
    fn create_calls(&self) -> u64;
    /// How many times `delete_pod` was called.
    fn delete_calls(&self) -> u64;
    /// Makes `create_pod` fail (`Some(message)`) or work again (`None`).
    fn fail_creates(&self, message: Option<&str>);
    /// Makes `ping` fail (`Some(message)`) or work again (`None`).
    fn fail_pings(&self, message: Option<&str>);
    /// Puts a pod into the provider behind the core's back (a dangling pod).
    fn insert_pod(&self, pod: Pod);
    /// Makes the provider lose a pod on its own (as a backend that crashed would).
    fn lose_pod(&self, namespace: &str, name: &str);
    /// Whether the provider currently has the pod.
    fn has_pod(&self, namespace: &str, name: &str) -> bool {
        self.received_pod(namespace, name).is_some()
    }
}
