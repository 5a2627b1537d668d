//! **vk-kube**: a Virtual Kubelet provider whose pods run in *another* Kubernetes
//! cluster (multi-cluster bursting).
//!
//! The virtual node lives in the home cluster; each pod scheduled to it is created in
//! the remote cluster named by the provider config's kubeconfig, watched there, and its
//! status mapped back. `kubectl logs`, `exec`, `attach`, `port-forward` and stats on the
//! home pod are relayed through the remote API server.
//!
//! Start with [`KubeProvider`] (the pod lifecycle, status push, deletion semantics) and
//! [`config::KubeProviderConfig`] (the `--provider-config` file); then:
//! * [`naming`]: remote names, and the labels/annotations tying remote objects to home
//!   ones;
//! * [`translate`]: what a remote pod carries (and drops), and the home view of it;
//! * [`deps`]: ConfigMaps and Secrets copied, refreshed and collected;
//! * [`pods`]: the one watch on the remote pods;
//! * [`capacity`]: the node's capacity from the remote nodes;
//! * [`streams`]: logs, exec, attach, port-forward and stats through the remote API.
//!
//! The `vk-kube` binary wires them into [`vk_cli::main`].

pub mod capacity;
pub mod config;
pub mod deps;
pub mod error;
pub mod naming;
pub mod pods;
pub mod provider;
pub mod remote;
pub mod streams;
pub mod translate;

pub use config::KubeProviderConfig;
pub use error::KubeProviderError;
pub use provider::KubeProvider;
