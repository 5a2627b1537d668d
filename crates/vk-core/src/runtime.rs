//! Running virtual nodes: [`VirtualNode`] wires the node controller, the pod controller,
//! the pod watch, the Node watch, the Service cache and the event publisher of one node;
//! [`Fleet`] runs many nodes in one process over **one** pod watch, one Node watch and
//! one Service cache.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::events::EventSink;
use crate::node::presence::{self, NodePresence};
use crate::node::{NodeController, NodeControllerConfig, NodeTemplate};
use crate::pod::{FeedEvent, PodController, PodControllerConfig, PodNodeInfo};
use crate::provider::{NaiveNodeProvider, SharedNodeProvider, SharedPodHandler};
use crate::quantity::Quantity;
use crate::resources::ResourceAccess;

/// Errors building a [`VirtualNode`].
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No pod handler was given.
    #[error("virtual node {node}: no pod handler; call VirtualNodeBuilder::pod_handler")]
    MissingPodHandler {
        /// The node.
        node: String,
    },
    /// A capacity value is not a quantity.
    #[error(
        "virtual node {node}: capacity/allocatable {resource}={value:?} is not a Kubernetes quantity: {reason}"
    )]
    InvalidQuantity {
        /// The node.
        node: String,
        /// The resource name.
        resource: String,
        /// The value.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
}

/// Builds a [`VirtualNode`].
pub struct VirtualNodeBuilder {
    client: Client,
    template: NodeTemplate,
    resources: ResourceAccess,
    pod_handler: Option<SharedPodHandler>,
    node_provider: SharedNodeProvider,
    pod_config: PodControllerConfig,
    node_config: NodeControllerConfig,
    events: bool,
    event_sink: Option<EventSink>,
}

impl VirtualNodeBuilder {
    /// Read access to cluster objects for the provider (share it with the provider
    /// before passing the provider to [`VirtualNodeBuilder::pod_handler`]).
    pub fn resources(&self) -> ResourceAccess {
        self.resources.clone()
    }

    /// The provider's pod operations (required).
    pub fn pod_handler(mut self, handler: SharedPodHandler) -> Self {
        self.pod_handler = Some(handler);
        self
    }

    /// The provider's node hooks (default: [`NaiveNodeProvider`]).
    pub fn node_provider(mut self, provider: SharedNodeProvider) -> Self {
        self.node_provider = provider;
        self
    }

    /// Pod controller tuning.
    pub fn pod_config(mut self, config: PodControllerConfig) -> Self {
        self.pod_config = config;
        self
    }

    /// Node controller timing.
    pub fn node_config(mut self, config: NodeControllerConfig) -> Self {
        self.node_config = config;
        self
    }

    /// Whether to record Kubernetes events (default true).
    pub fn events(mut self, enabled: bool) -> Self {
        self.events = enabled;
        self
    }

    /// Publish events through `sink` (e.g. one the provider also records to) instead
    /// of starting a publisher for this node.
    pub fn event_sink(mut self, sink: EventSink) -> Self {
        self.event_sink = Some(sink);
        self
    }

    /// Builds the node. Must be called inside a Tokio runtime (the event publisher
    /// starts here).
    pub fn build(self) -> Result<VirtualNode, BuildError> {
        let name = self.template.name.clone();
        let pod_handler = self
            .pod_handler
            .ok_or_else(|| BuildError::MissingPodHandler { node: name.clone() })?;
        let mut allocatable = std::collections::BTreeMap::new();
        for (resource, value) in self.template.effective_allocatable() {
            let q = Quantity::parse(value).map_err(|e| BuildError::InvalidQuantity {
                node: name.clone(),
                resource: resource.clone(),
                value: value.clone(),
                reason: e.to_string(),
            })?;
            allocatable.insert(resource.clone(), q);
        }
        for (resource, value) in &self.template.capacity {
            Quantity::parse(value).map_err(|e| BuildError::InvalidQuantity {
                node: name.clone(),
                resource: resource.clone(),
                value: value.clone(),
                reason: e.to_string(),
            })?;
        }
        let events = match (self.events, self.event_sink) {
            (false, _) => EventSink::disabled(),
            (true, Some(sink)) => sink,
            (true, None) => EventSink::start(self.client.clone(), &name),
        };
        let pods = PodController::new(
            self.client.clone(),
            PodNodeInfo {
                node_name: name.clone(),
                host_ip: self.template.internal_ip.clone(),
                allocatable,
            },
            pod_handler,
            self.resources.clone(),
            events,
            self.pod_config,
        );
        let node = NodeController::new(
            self.client.clone(),
            self.template,
            self.node_provider,
            self.node_config,
        );
        Ok(VirtualNode {
            name,
            client: self.client,
            resources: self.resources,
            node,
            pods,
        })
    }
}

/// One virtual node: node controller + pod controller (+ the kubelet API, served by
/// `vk-node-api`).
///
/// ```no_run
/// # use std::sync::Arc;
/// # async fn demo(client: kube::Client, provider: vk_core::SharedPodHandler) -> Result<(), Box<dyn std::error::Error>> {
/// use vk_core::{node::NodeTemplate, runtime::VirtualNode};
/// let node = VirtualNode::builder(client, NodeTemplate::new("vk-1", "example"))
///     .pod_handler(provider)
///     .build()?;
/// let shutdown = tokio_util::sync::CancellationToken::new();
/// node.run(shutdown).await;
/// # Ok(()) }
/// ```
pub struct VirtualNode {
    name: String,
    client: Client,
    resources: ResourceAccess,
    node: NodeController,
    pods: PodController,
}

impl VirtualNode {
    /// Starts building a node from `template`.
    pub fn builder(client: Client, template: NodeTemplate) -> VirtualNodeBuilder {
        let resources = ResourceAccess::new(client.clone(), template.name.clone());
        VirtualNodeBuilder {
            client,
            template,
            resources,
            pod_handler: None,
            node_provider: Arc::new(NaiveNodeProvider),
            pod_config: PodControllerConfig::default(),
            node_config: NodeControllerConfig::default(),
            events: true,
            event_sink: None,
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Read access to cluster objects.
    pub fn resources(&self) -> ResourceAccess {
        self.resources.clone()
    }

    /// The pod controller (stats, sync state).
    pub fn pods(&self) -> &PodController {
        &self.pods
    }

    /// The node controller (stats, registration state).
    pub fn node(&self) -> &NodeController {
        &self.node
    }

    /// Whether the Node is registered and the first pod list is reconciled.
    pub fn is_ready(&self) -> bool {
        *self.node.registered().borrow() && *self.pods.synced().borrow()
    }

    /// Completes once the Node is registered and the first pod list is reconciled (what
    /// [`VirtualNode::is_ready`] reports), without polling.
    pub async fn ready(&self) {
        let mut registered = self.node.registered();
        let mut synced = self.pods.synced();
        // A closed channel means the controller stopped: nothing more to wait for.
        let _ = registered.wait_for(|r| *r).await;
        let _ = synced.wait_for(|s| *s).await;
    }

    /// Runs this node alone (its own pod watch, Node watch and Service cache) until
    /// `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        Fleet::run(std::slice::from_ref(self), shutdown).await;
    }

    async fn run_with_feed(
        &self,
        feed: mpsc::Receiver<FeedEvent>,
        presence: watch::Receiver<NodePresence>,
        shutdown: CancellationToken,
    ) {
        tokio::join!(
            self.node.run(presence, shutdown.clone()),
            self.pods.run(feed, shutdown)
        );
    }
}

/// Several virtual nodes in one process, sharing one client, one pod watch, one Node
/// watch and one Service cache.
#[derive(Debug)]
pub struct Fleet;

impl Fleet {
    /// Runs every node in `nodes` until `shutdown`. With one node the pod watch selects
    /// `spec.nodeName=<node>`; with several, one watch selects all bound pods and events
    /// are routed by node name (pods of other nodes are dropped on arrival, never stored).
    /// Likewise one metadata-only Node watch tells each node controller at once when its
    /// Node is deleted ([`presence`] explains how it is selected).
    pub async fn run(nodes: &[VirtualNode], shutdown: CancellationToken) {
        Self::run_in_namespace(nodes, None, shutdown).await;
    }

    /// [`Fleet::run`] with the pod watch restricted to `namespace` (`None`: all
    /// namespaces), as upstream's `--namespace`: pods bound to the nodes in other
    /// namespaces are then not seen at all.
    pub async fn run_in_namespace(
        nodes: &[VirtualNode],
        namespace: Option<&str>,
        shutdown: CancellationToken,
    ) {
        let Some(first) = nodes.first() else {
            return;
        };
        let client = first.client.clone();
        let mut routes = HashMap::new();
        let mut feeds = Vec::new();
        let mut presence_routes = HashMap::new();
        let mut presences = Vec::new();
        for node in nodes {
            // Bounded: when a node's controller falls behind the watch, the watch waits
            // instead of piling decoded pods up in memory.
            let (tx, rx) = mpsc::channel(FEED_CAPACITY);
            routes.insert(node.name.clone(), tx);
            feeds.push(rx);
            // The latest observation only: the Node watch never waits for a controller.
            let (tx, rx) = watch::channel(NodePresence::Unknown);
            presence_routes.insert(node.name.clone(), tx);
            presences.push(rx);
        }
        let selector = if nodes.len() == 1 {
            format!("spec.nodeName={}", first.name)
        } else {
            "spec.nodeName!=".to_owned()
        };
        let store = start_service_cache(client.clone(), shutdown.clone());
        for node in nodes {
            node.resources.install_service_cache(store.clone());
        }
        let node_watch = presence::watch_presence(
            client.clone(),
            presence::watch_config(nodes.iter().map(|n| n.node.template())),
            presence_routes,
            shutdown.clone(),
        );
        let watch = pod_watch(client, namespace, selector, routes, shutdown.clone());
        let runs =
            futures::future::join_all(nodes.iter().zip(feeds).zip(presences).map(
                |((node, feed), presence)| node.run_with_feed(feed, presence, shutdown.clone()),
            ));
        tokio::join!(watch, node_watch, runs);
    }
}

/// Events buffered between the pod watch and one node's controller.
const FEED_CAPACITY: usize = 256;

/// Watches pods matching `selector` (in `namespace`, or all) and routes events to the
/// node they are bound to.
async fn pod_watch(
    client: Client,
    namespace: Option<&str>,
    selector: String,
    routes: HashMap<String, mpsc::Sender<FeedEvent>>,
    shutdown: CancellationToken,
) {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let stream = watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
    futures::pin_mut!(stream);
    let route = |pod: &Pod| {
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| routes.get(n))
    };
    let broadcast = |make: fn() -> FeedEvent| {
        let senders: Vec<mpsc::Sender<FeedEvent>> = routes.values().cloned().collect();
        async move {
            for tx in senders {
                let _ = tx.send(make()).await;
            }
        }
    };
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = stream.next() => e,
        };
        match event {
            None => return,
            Some(Err(e)) => warn!(error = %e, "pod watch failed; retrying with backoff"),
            Some(Ok(watcher::Event::Init)) => broadcast(|| FeedEvent::InitStart).await,
            Some(Ok(watcher::Event::InitDone)) => broadcast(|| FeedEvent::InitDone).await,
            Some(Ok(watcher::Event::InitApply(pod))) => {
                if let Some(tx) = route(&pod) {
                    let _ = tx.send(FeedEvent::InitApply(Box::new(pod))).await;
                }
            }
            Some(Ok(watcher::Event::Apply(pod))) => {
                if let Some(tx) = route(&pod) {
                    let _ = tx.send(FeedEvent::Apply(Box::new(pod))).await;
                }
            }
            Some(Ok(watcher::Event::Delete(pod))) => {
                if let Some(tx) = route(&pod) {
                    let _ = tx.send(FeedEvent::Delete(Box::new(pod))).await;
                }
            }
        }
    }
}

/// A cluster-wide Service cache (Services are few compared to pods, ConfigMaps and
/// Secrets; every pod needs them for service-link variables).
fn start_service_cache(client: Client, shutdown: CancellationToken) -> Store<Service> {
    let (store, writer) = reflector::store();
    let api: Api<Service> = Api::all(client);
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|s: &mut Service| s.metadata.managed_fields = None),
    );
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                e = stream.next() => match e {
                    None => return,
                    Some(Err(e)) => warn!(error = %e, "service watch failed; retrying with backoff"),
                    Some(Ok(_)) => {}
                }
            }
        }
    });
    store
}
