//! # vk-core: the Virtual Kubelet controllers
//!
//! What a provider author imports to turn a backend into a Kubernetes node.
//!
//! ## Where to start
//!
//! 1. Implement the provider contract in [`provider`]: [`PodLifecycleHandler`]
//!    (required), [`PodNotifier`] (push status; otherwise the core polls) and
//!    [`NodeProvider`] (ping and pushed node status; [`NaiveNodeProvider`] by default).
//!    Read cluster objects through [`ResourceAccess`], never the API server directly.
//!    Declare what the kubelet API can do for your pods — logs, exec, attach,
//!    port-forward, stats — once, in
//!    [`PodLifecycleHandler::capabilities`] ([`capabilities::Capabilities`]).
//! 2. Describe the node with a [`node::NodeTemplate`] (capacity, labels, taints...).
//! 3. Build a [`runtime::VirtualNode`] and run it, or several in a [`runtime::Fleet`]
//!    sharing one client and one pod watch. Most binaries use `vk-cli`, which does this.
//!
//! ## What the core does for you
//!
//! * [`node`]: registers the Node (re-creating it if someone deletes it), renews its
//!   Lease every 10 s, writes status every 5 minutes or on change, and turns Ready=False
//!   (reason `ProviderPingFailed`) while the provider's ping fails.
//! * [`pod`]: watches the pods bound to the node, creates/updates/deletes them in the
//!   provider with per-pod backoff that never gives up, writes provider status with
//!   patches that leave others' conditions alone, finishes graceful deletes as soon as
//!   the provider reports the pod stopped, adopts the provider's pods after a restart
//!   and removes dangling ones.
//! * [`env`](mod@env): resolves env/envFrom (ConfigMaps, Secrets, fieldRef incl. `status.podIP`,
//!   resourceFieldRef, service links, `$(VAR)`) with upstream's event reasons.
//! * [`client`]: a client-side QPS/burst limit (kube-rs has none) and request counts.
//!
//! ## The provider author's kit
//!
//! * [`logs`]: the kubelet's log options (tail, since, timestamps, limitBytes, follow)
//!   applied to your lines, whole texts, byte streams or followed files — implement
//!   [`capabilities::ContainerLogs`] by producing lines, not by re-implementing options.
//! * `vk_cli::load_provider_config` (in `vk-cli`): your `--provider-config` file with
//!   `VK_<PROVIDER>_*` overrides and errors naming the file, line and key.
//!
//! A provider whose backend is a web API (Nomad, Azure, a web bridge) also uses:
//!
//! * [`http`]: the outbound HTTP client — base URL and token headers, rustls with ring
//!   (system roots, CA bundles, mutual TLS), connect and request timeouts, retries
//!   honouring `Retry-After`, JSON helpers, streamed bodies, WebSockets, and errors
//!   that convert into [`vk_errdefs`] kinds
//!   ([`ErrorKind::from_http_status`](vk_errdefs::ErrorKind::from_http_status)).
//! * [`bridge`]: remote exec — joins the kubelet's exec session to the backend's exec
//!   WebSocket through a small [`bridge::ExecFraming`] describing the backend's messages.
//!
//! ## Observability
//!
//! * [`trace_fields`]: the span and field conventions — one INFO `pod.sync` span per
//!   pod sync (`pod.namespace`, `pod.name`, `pod.uid`, `node.name`, `vk.operation`,
//!   `vk.result`) with a child span per provider call (`provider.create_pod`, ...,
//!   `error.kind` on failure), DEBUG `node.status_update` and `node.lease_renew`.
//! * [`metrics`]: Prometheus collectors over what the controllers count and measure.
//! * [`procfs`]: the one reader of Linux's `/proc` (process and host CPU time and
//!   memory in the real clock-tick and page units), behind the `process_*` metrics
//!   and providers' stats.
//!
//! Errors are [`vk_errdefs`] kinds throughout.
//!
//! ## Choosing the Kubernetes version: the binary's job
//!
//! `k8s-openapi` compiles the API of exactly one Kubernetes version, chosen by a cargo
//! feature. This crate, like every library crate of the project, depends on it
//! **without** a version feature, so that it never imposes a version on its users and
//! builds against any version `k8s-openapi` knows (1.33 to 1.37 for 0.29). The
//! **provider binary** picks one, in its own `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! # The oldest API server the binary supports (`earliest` = 1.33).
//! k8s-openapi = { version = "0.29", default-features = false, features = ["std", "earliest"] }
//! ```
//!
//! A library crate on top of this one does the same in its `[dev-dependencies]` only, and
//! its `[package.metadata.docs.rs]` names a version for the documentation build
//! (`features = ["k8s-openapi/latest"]`, as this crate's does). Without any of these,
//! `k8s-openapi`'s build script stops with "None of the v1_* features are enabled"; with
//! two, it stops with "Both v1_… and v1_… features are enabled". Inside this workspace,
//! `.cargo/config.toml` sets `K8S_OPENAPI_ENABLED_VERSION` so that `cargo check -p vk-core`
//! works alone; nothing outside the workspace relies on it.

pub mod bridge;
pub mod capabilities;
pub mod client;
pub mod compact;
pub mod election;
pub mod env;
pub mod events;
#[cfg(test)]
mod fake_api;
pub mod http;
pub mod kube_errors;
pub mod logs;
pub mod metrics;
pub mod node;
pub mod phase;
pub mod pod;
pub mod procfs;
pub mod provider;
pub mod quantity;
pub mod queue;
pub mod resources;
pub mod runtime;
pub mod stats;
pub mod trace_fields;

pub use provider::{
    NaiveNodeProvider, NodeProvider, NodeStatusSink, PodLifecycleHandler, PodNotifier, PodRef,
    PodStatusSink, SharedNodeProvider, SharedPodHandler,
};
pub use quantity::Quantity;
pub use resources::ResourceAccess;
