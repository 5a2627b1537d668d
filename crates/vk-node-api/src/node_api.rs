//! [`NodeApi`]: everything the handlers of one node need — the provider, its
//! capabilities (resolved once, when the API is built), authentication and the streaming
//! timeouts — and the checks every handler shares.
//!
//! The route handlers ([`crate::router`], [`crate::remotecommand`],
//! [`crate::portforward`]) depend on this module; it depends on none of them.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use vk_core::SharedPodHandler;
use vk_core::capabilities::{
    Capabilities, ContainerAttach, ContainerExec, ContainerLogs, PortForward,
};
use vk_core::stats::StatsProvider;

use crate::auth::Authenticator;
use crate::error::ApiError;

/// Timeouts of streaming sessions (exec, attach, port-forward).
#[derive(Debug, Clone, Copy)]
pub struct StreamingConfig {
    /// How long the client may take to open the streams it asked for (kubelet: 30 s).
    pub stream_creation_timeout: Duration,
    /// A session with no traffic for this long is closed (kubelet: 4 h).
    pub idle_timeout: Duration,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        Self {
            stream_creation_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(4 * 3600),
        }
    }
}

/// Everything the handlers of one node need.
///
/// ```
/// # use std::sync::Arc;
/// # fn demo(provider: vk_core::SharedPodHandler) {
/// use vk_node_api::auth::{AuthConfig, Authenticator};
/// use vk_node_api::node_api::{NodeApi, StreamingConfig};
///
/// let auth = Authenticator::new(AuthConfig::default(), "my-node", None);
/// let api = NodeApi::new("my-node", provider, auth, StreamingConfig::default());
/// println!("serving {:?}", api.capabilities());
/// # }
/// ```
pub struct NodeApi {
    node: String,
    provider: SharedPodHandler,
    capabilities: Capabilities,
    auth: Authenticator,
    streaming: StreamingConfig,
    bound_pods: Option<BoundPods>,
}

/// Lists the pods bound to the node as the API server has them (see
/// [`NodeApi::with_bound_pods`]).
pub type BoundPods = Arc<dyn Fn() -> Vec<Pod> + Send + Sync>;

impl std::fmt::Debug for NodeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeApi")
            .field("node", &self.node)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

impl NodeApi {
    /// The API of node `node` served by `provider`; asks the provider for its
    /// [`Capabilities`] once, here.
    pub fn new(
        node: impl Into<String>,
        provider: SharedPodHandler,
        auth: Authenticator,
        streaming: StreamingConfig,
    ) -> Self {
        let capabilities = Arc::clone(&provider).capabilities();
        Self {
            node: node.into(),
            provider,
            capabilities,
            auth,
            streaming,
            bound_pods: None,
        }
    }

    /// Serves `/pods` from `list` — the pods bound to the node as the API server has
    /// them, including pods the provider never created (one waiting for a missing
    /// Secret...), as a kubelet does — instead of from the provider's `get_pods`.
    /// `/runningpods/` keeps listing the provider's pods.
    ///
    /// ```
    /// # fn demo(api: vk_node_api::node_api::NodeApi, node: &vk_core::runtime::VirtualNode) {
    /// let lister = node.pods().lister();
    /// let api = api.with_bound_pods(move || lister.list());
    /// # }
    /// ```
    pub fn with_bound_pods(mut self, list: impl Fn() -> Vec<Pod> + Send + Sync + 'static) -> Self {
        self.bound_pods = Some(Arc::new(list));
        self
    }

    /// The pods `/pods` lists: [`NodeApi::with_bound_pods`]'s, else the provider's.
    pub async fn bound_pods(&self) -> Result<Vec<Pod>, ApiError> {
        match &self.bound_pods {
            Some(list) => Ok(list()),
            None => Ok(self.provider.get_pods().await?),
        }
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The provider.
    pub fn provider(&self) -> &SharedPodHandler {
        &self.provider
    }

    /// What the provider offers.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Authentication and authorization.
    pub fn auth(&self) -> &Authenticator {
        &self.auth
    }

    /// Streaming timeouts.
    pub fn streaming(&self) -> StreamingConfig {
        self.streaming
    }

    /// Container logs, or 501.
    pub fn logs(&self) -> Result<Arc<dyn ContainerLogs>, ApiError> {
        missing(&self.capabilities.logs, "container logs are")
    }

    /// Exec, or 501.
    pub fn exec(&self) -> Result<Arc<dyn ContainerExec>, ApiError> {
        missing(&self.capabilities.exec, "exec is")
    }

    /// Attach, or 501.
    pub fn attach(&self) -> Result<Arc<dyn ContainerAttach>, ApiError> {
        missing(&self.capabilities.attach, "attach is")
    }

    /// Port-forward, or 501.
    pub fn port_forward(&self) -> Result<Arc<dyn PortForward>, ApiError> {
        missing(&self.capabilities.port_forward, "port-forward is")
    }

    /// Statistics, or 501.
    pub fn stats(&self) -> Result<Arc<dyn StatsProvider>, ApiError> {
        missing(&self.capabilities.stats, "statistics are")
    }

    /// Checks, before a streaming upgrade, that the provider runs the pod — and with a
    /// UID in the path, that it is the pod with that UID — so the client gets a plain 404
    /// as from a kubelet rather than an error after the upgrade.
    pub async fn check_pod(
        &self,
        namespace: &str,
        pod: &str,
        uid: Option<&str>,
    ) -> Result<(), ApiError> {
        let found = self.provider.get_pod(namespace, pod).await?;
        match (found, uid) {
            (None, _) => Err(ApiError::NotFound(format!(
                "pod {namespace}/{pod} does not exist on node {}",
                self.node
            ))),
            (Some(p), Some(uid)) if p.metadata.uid.as_deref() != Some(uid) => Err(
                ApiError::NotFound(format!("pod {namespace}/{pod} with UID {uid} not found")),
            ),
            (Some(_), _) => Ok(()),
        }
    }
}

fn missing<T: ?Sized>(capability: &Option<Arc<T>>, what: &str) -> Result<Arc<T>, ApiError> {
    capability
        .clone()
        .ok_or_else(|| ApiError::NotImplemented(format!("{what} not supported by this provider")))
}
