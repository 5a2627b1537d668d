//! A real, local Kubernetes control plane for tests, benchmarks and demos of Virtual
//! Kubelet providers, and the helpers end-to-end tests use.
//!
//! Where to start:
//! * [`LocalCluster`] installs, builds (once, cached), starts and stops etcd,
//!   kube-apiserver, kube-controller-manager and kube-scheduler on loopback. `cargo xtask
//!   cluster up|down|status|env` is a thin command line over it.
//! * [`TestContext`] is what an end-to-end test holds: a client for the running control
//!   plane (started if needed), uniquely named namespaces, and clean-up of everything the
//!   test registered, even when the test panics.
//! * [`wait`] and [`transcript`] replace sleeps: wait on a condition, or on what a child
//!   process prints, with a deadline and a message naming what was awaited.
//!
//! No fake API server is involved anywhere: tests using this crate talk to the real
//! Kubernetes components.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = vk_testkit::TestContext::new().await?;
//! let ns = ctx.namespace("smoke").await?; // deleted when `ns` is dropped
//! println!("testing in {}", ns.name());
//! # Ok(()) }
//! ```

pub mod cluster;
pub mod conformance;
mod context;
pub mod http;
pub mod kubelet_client;
pub mod prometheus;
pub mod tied;
pub mod transcript;
pub mod wait;

pub use cluster::{ClusterError, Layout, LocalCluster, UpOptions, UpOutcome};
pub use context::{ContextError, TestContext, TestNamespace, unique_name};

/// Installs rustls' `ring` crypto provider as the process default (once; later calls do
/// nothing). kube-rs and our servers use rustls, which panics at first use when it cannot
/// tell which provider to use.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it), for listeners
/// of processes a test starts.
pub fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
}
