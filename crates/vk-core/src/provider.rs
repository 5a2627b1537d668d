//! The provider contract: what a backend implements to become a virtual node.
//!
//! * [`PodLifecycleHandler`] (required): create, update, delete and read pods in the
//!   backend.
//! * [`PodNotifier`] (optional, strongly recommended): the backend pushes pod status
//!   changes through a [`PodStatusSink`]; without it the core polls
//!   [`PodLifecycleHandler::get_pods`] periodically.
//! * [`NodeProvider`] (optional): health (`ping`, which gates the node's Ready condition)
//!   and pushed node status changes. [`NaiveNodeProvider`] is the default.
//!
//! The provider never talks to the API server. What it needs from the cluster
//! (ConfigMaps, Secrets, Services, its Node) it reads through
//! [`ResourceAccess`](crate::ResourceAccess).
//!
//! # Errors
//!
//! Every method returns [`vk_errdefs::Error`]. The core acts on the kind:
//! `NotFound` from `get_*`/`delete_pod` means "absent" and is not a failure;
//! `AlreadyExists` from `create_pod` counts as success; anything else is retried with
//! per-pod exponential backoff and reported on the pod (`ProviderFailed` + a Warning
//! event).

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use vk_errdefs::Result;

/// Pod operations in the provider's backend.
///
/// The pods handed to `create_pod`/`update_pod` have their environment already resolved:
/// every container's `env` holds plain `name`/`value` pairs (ConfigMap/Secret/field/
/// resource references, `envFrom` and service links expanded, `$(VAR)` references
/// substituted) and `envFrom` is empty.
///
/// ```
/// use async_trait::async_trait;
/// use k8s_openapi::api::core::v1::{Pod, PodStatus};
/// use vk_core::PodLifecycleHandler;
/// use vk_errdefs::Result;
///
/// struct Nothing;
///
/// #[async_trait]
/// impl PodLifecycleHandler for Nothing {
///     async fn create_pod(&self, _pod: &Pod) -> Result<()> { Ok(()) }
///     async fn update_pod(&self, _pod: &Pod) -> Result<()> { Ok(()) }
///     async fn delete_pod(&self, _pod: &Pod) -> Result<()> { Ok(()) }
///     async fn get_pod(&self, _ns: &str, _name: &str) -> Result<Option<Pod>> { Ok(None) }
///     async fn get_pod_status(&self, _ns: &str, _name: &str) -> Result<Option<PodStatus>> {
///         Ok(None)
///     }
///     async fn get_pods(&self) -> Result<Vec<Pod>> { Ok(Vec::new()) }
/// }
/// ```
#[async_trait]
pub trait PodLifecycleHandler: Send + Sync + 'static {
    /// Starts `pod` in the backend. Called once per pod (and again after a failure).
    async fn create_pod(&self, pod: &Pod) -> Result<()>;

    /// Applies a changed spec (containers, init/ephemeral containers,
    /// activeDeadlineSeconds, tolerations, labels or annotations) to a running pod.
    async fn update_pod(&self, pod: &Pod) -> Result<()>;

    /// Stops `pod`. The pod carries `metadata.deletionGracePeriodSeconds`: give the
    /// containers that long to stop. Report the terminal status through the
    /// [`PodStatusSink`] (or from `get_pod_status`) when they have stopped; the core then
    /// removes the pod from the API. `NotFound` means it is already gone.
    async fn delete_pod(&self, pod: &Pod) -> Result<()>;

    /// The backend's view of a pod (its spec as created and its current status), or
    /// `None` when the backend does not have it.
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>>;

    /// Just the status of a pod, or `None` when the backend does not have it.
    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>>;

    /// Every pod the backend runs for this node (used for start-up reconciliation, and
    /// for status polling when there is no notifier).
    async fn get_pods(&self) -> Result<Vec<Pod>>;

    /// Calls `visit` with each of the backend's pods, one at a time (start-up
    /// reconciliation uses it). The default calls [`PodLifecycleHandler::get_pods`]; a
    /// backend holding many pods can avoid materialising them all at once.
    async fn visit_pods(&self, visit: &mut (dyn FnMut(Pod) + Send)) -> Result<()> {
        for pod in self.get_pods().await? {
            visit(pod);
        }
        Ok(())
    }

    /// Just the identities of the backend's pods, for the periodic dangling-pod check.
    /// The default derives them from [`PodLifecycleHandler::get_pods`]; a backend that
    /// holds many pods should answer this more cheaply.
    async fn get_pod_refs(&self) -> Result<Vec<PodRef>> {
        Ok(self.get_pods().await?.iter().map(PodRef::of).collect())
    }

    /// The provider's push channel for status changes, if it has one. Implement
    /// [`PodNotifier`] and return `Some(self)`.
    fn pod_notifier(&self) -> Option<&dyn PodNotifier> {
        None
    }

    /// The kubelet-API capabilities the provider offers (logs, exec, attach,
    /// port-forward, stats), declared once; the default is none (those routes answer
    /// 501). Called once per node at start-up.
    ///
    /// A provider that serves logs only (one implementing all five capability traits
    /// returns `Capabilities::all(self)`):
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use async_trait::async_trait;
    /// # use k8s_openapi::api::core::v1::{Pod, PodStatus};
    /// use vk_core::PodLifecycleHandler;
    /// use vk_core::capabilities::{ByteStream, Capabilities, ContainerLogs, LogOptions};
    /// # use vk_errdefs::Result;
    ///
    /// struct Backend;
    ///
    /// #[async_trait]
    /// impl ContainerLogs for Backend {
    ///     async fn container_logs(&self, _ns: &str, _pod: &str, _c: &str, _o: &LogOptions)
    ///         -> Result<ByteStream> {
    ///         Ok(Box::pin(futures::stream::empty()))
    ///     }
    /// }
    ///
    /// #[async_trait]
    /// impl PodLifecycleHandler for Backend {
    /// #   async fn create_pod(&self, _pod: &Pod) -> Result<()> { Ok(()) }
    /// #   async fn update_pod(&self, _pod: &Pod) -> Result<()> { Ok(()) }
    /// #   async fn delete_pod(&self, _pod: &Pod) -> Result<()> { Ok(()) }
    /// #   async fn get_pod(&self, _ns: &str, _name: &str) -> Result<Option<Pod>> { Ok(None) }
    /// #   async fn get_pod_status(&self, _ns: &str, _name: &str) -> Result<Option<PodStatus>> { Ok(None) }
    /// #   async fn get_pods(&self) -> Result<Vec<Pod>> { Ok(Vec::new()) }
    ///     // ...
    ///     fn capabilities(self: Arc<Self>) -> Capabilities {
    ///         Capabilities::none().with_logs(self)
    ///     }
    /// }
    ///
    /// let caps = Arc::new(Backend).capabilities();
    /// assert_eq!(caps.names(), ["logs"]);
    /// ```
    fn capabilities(self: Arc<Self>) -> crate::capabilities::Capabilities {
        crate::capabilities::Capabilities::none()
    }

    /// Whether env values resolved from a Secret should keep their origin: when true,
    /// such variables reach `create_pod`/`update_pod` with their resolved `value` *and*
    /// a `valueFrom.secretKeyRef` naming the Secret and key (for backends that store
    /// secrets differently, like Azure's `secureValue`). Default false: plain values.
    fn keep_secret_env_refs(&self) -> bool {
        false
    }

    /// The IP address the backend will give `pod`, if it can tell before `create_pod`.
    /// Used to resolve `fieldRef: status.podIP` in the pod's environment (which a real
    /// kubelet knows before starting containers). Return `None` when unknown; the
    /// variable is then empty.
    fn pod_ip_hint(&self, pod: &Pod) -> Option<IpAddr> {
        let _ = pod;
        None
    }
}

/// Identifies a pod in the provider's backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID, when the backend knows it.
    pub uid: Option<String>,
}

impl PodRef {
    /// The identity of `pod`.
    pub fn of(pod: &Pod) -> Self {
        Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone(),
        }
    }
}

/// A provider that pushes pod status changes instead of being polled.
pub trait PodNotifier: Send + Sync {
    /// Called once when the controller starts. Keep `sink` and call
    /// [`PodStatusSink::notify`] whenever a pod's status changes, including when it
    /// terminates; call [`PodStatusSink::notify_gone`] when the backend lost a pod on its
    /// own (it is then marked Failed).
    fn notify_pods(&self, sink: PodStatusSink);
}

/// Receives pod status changes from a provider; see [`PodNotifier`]. Cheap to clone;
/// calls never block and are ignored once the controller has stopped.
#[derive(Clone)]
pub struct PodStatusSink {
    target: Weak<dyn PodStatusReceiver>,
}

/// What a [`PodStatusSink`] forwards to (implemented by the pod controller).
pub(crate) trait PodStatusReceiver: Send + Sync {
    fn pod_status_changed(&self, pod: Pod);
    fn pod_gone(&self, namespace: &str, name: &str);
}

impl PodStatusSink {
    pub(crate) fn new(target: Weak<dyn PodStatusReceiver>) -> Self {
        Self { target }
    }

    /// A sink connected to nothing (for tests of providers).
    pub fn disconnected() -> Self {
        let target: Weak<dyn PodStatusReceiver> = Weak::<NoReceiver>::new();
        Self { target }
    }

    /// Reports `pod`'s current status (`metadata.namespace`, `metadata.name` and
    /// `status` are what matter).
    pub fn notify(&self, pod: Pod) {
        if let Some(target) = self.target.upgrade() {
            target.pod_status_changed(pod);
        }
    }

    /// Reports that the backend no longer has the pod although nobody deleted it.
    pub fn notify_gone(&self, namespace: &str, name: &str) {
        if let Some(target) = self.target.upgrade() {
            target.pod_gone(namespace, name);
        }
    }
}

impl std::fmt::Debug for PodStatusSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodStatusSink")
            .field("connected", &(self.target.strong_count() > 0))
            .finish()
    }
}

struct NoReceiver;
impl PodStatusReceiver for NoReceiver {
    fn pod_status_changed(&self, _pod: Pod) {}
    fn pod_gone(&self, _namespace: &str, _name: &str) {}
}

/// Node-level hooks of a provider.
#[async_trait]
pub trait NodeProvider: Send + Sync + 'static {
    /// Whether the backend is healthy. While it fails, heartbeats continue (the process
    /// is alive) but the node's Ready condition turns False with reason
    /// `ProviderPingFailed`, so the scheduler stops sending pods.
    async fn ping(&self) -> Result<()>;

    /// Called once when the node controller starts. Keep `sink` and call
    /// [`NodeStatusSink::notify`] with a Node whose status (capacity, allocatable,
    /// conditions, addresses...) or labels changed; it is written at once.
    fn notify_node_status(&self, sink: NodeStatusSink) {
        let _ = sink;
    }
}

/// A [`NodeProvider`] whose ping always succeeds and that never pushes changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct NaiveNodeProvider;

#[async_trait]
impl NodeProvider for NaiveNodeProvider {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

/// Receives node changes from a provider; see [`NodeProvider::notify_node_status`].
#[derive(Clone, Debug)]
pub struct NodeStatusSink {
    // Boxed: the channel allocates 32 slots at a time, 48 KB per node for bare Nodes.
    tx: tokio::sync::mpsc::UnboundedSender<Box<Node>>,
}

impl NodeStatusSink {
    pub(crate) fn new(tx: tokio::sync::mpsc::UnboundedSender<Box<Node>>) -> Self {
        Self { tx }
    }

    /// Reports a changed node. Only `status` and `metadata.labels`/`annotations` are used.
    pub fn notify(&self, node: Node) {
        let _ = self.tx.send(Box::new(node));
    }
}

/// Shared handle to a provider.
pub type SharedPodHandler = Arc<dyn PodLifecycleHandler>;
/// Shared handle to a node provider.
pub type SharedNodeProvider = Arc<dyn NodeProvider>;
