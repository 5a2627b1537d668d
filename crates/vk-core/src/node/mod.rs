//! The node controller: registers the virtual Node, keeps its status fresh, renews its
//! Lease, and reflects the provider's health in the Ready condition.
//!
//! # Flow
//!
//! 1. Create the Node from the [`NodeTemplate`] if it does not exist; if it does (a
//!    restart), merge our labels, annotations and taints into it without touching
//!    what others set. Then create (claim) the Lease in `kube-node-lease`, owned by
//!    the Node's UID.
//! 2. Every `lease_renew_interval` (10 s): renew the Lease. Each node's renewals,
//!    pings and status writes come at its [`phase`] (from its name), so
//!    the 1,000 nodes of a fleet neither renew all in the same instant (1,000
//!    connections) nor each at an instant of its own (1,000 wake-ups): about 100
//!    renew together every second. A renewal never creates
//!    the Lease nor changes its owner ([`LeaseKeeper`] explains why); a Lease gone or owned
//!    by another UID makes the controller check the Node first (step 5).
//! 3. Every `status_update_interval` (5 min, the kubelet's
//!    `nodeStatusReportFrequency`), and at once when the provider pushes a
//!    change or its health changes: write the status (our conditions with fresh
//!    heartbeats, capacity, allocatable, addresses, daemon endpoint, node info) with a
//!    strategic merge patch, so conditions owned by others survive.
//! 4. Every `ping_interval`: ping the provider. After `ping_failure_threshold`
//!    consecutive failures Ready turns False with reason `ProviderPingFailed` and the
//!    error as message (upstream just stops heartbeating); the first success turns it
//!    True again.
//! 5. When the Node is deleted or replaced, it is put back within moments:
//!    re-created (or adopted), then its Lease claimed for the new UID and the full
//!    status written. The pods bound to the node are kept: the pod garbage collector
//!    of kube-controller-manager deletes them only once their node has been missing
//!    for 40 s.
//!
//! # Learning that the Node is gone
//!
//! Fastest first:
//! - the Node watch ([`presence`]): one metadata-only watch per process, shared by a
//!   whole [`Fleet`](crate::runtime::Fleet), delivers the deletion within
//!   milliseconds; the module explains the choice over per-node watches;
//! - a Lease renewal finding the Lease gone (the garbage collector deletes it with its
//!   Node) or owned by another UID: within one renew interval, also when someone
//!   deleted only the Lease;
//! - a status write answered 404.

mod lease;
pub mod ownership;
pub mod presence;
mod resync;
mod template;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, warn};

pub use lease::{LEASE_NAMESPACE, LeaseError, LeaseKeeper, Renewal};
pub use presence::NodePresence;
pub use template::{NodeTemplate, keys};

use crate::events::reasons::PROVIDER_PING_FAILED;
use crate::kube_errors::{is_conflict, is_not_found};
use crate::phase;
use crate::provider::{NodeStatusSink, SharedNodeProvider};
use resync::Cause;

/// Timing of the node controller.
#[derive(Debug, Clone)]
pub struct NodeControllerConfig {
    /// Full status writes when nothing changed. Default 5 min, the kubelet's
    /// `nodeStatusReportFrequency`: the Lease is the frequent heartbeat, and changes
    /// (provider pushes, health) are written at once. Upstream Virtual Kubelet's 1 min
    /// made a fleet of 1,000 nodes write 17 Node statuses a second, each a Node watch
    /// event for every watcher in the cluster, for nothing.
    pub status_update_interval: Duration,
    /// Lease renewals. Default 10 s.
    pub lease_renew_interval: Duration,
    /// Lease validity. Default 40 s.
    pub lease_duration_seconds: i32,
    /// Provider pings. Default 10 s.
    pub ping_interval: Duration,
    /// Time limit of one ping. Default 5 s.
    pub ping_timeout: Duration,
    /// Consecutive failed pings before Ready turns False. Default 3.
    pub ping_failure_threshold: u32,
}

impl Default for NodeControllerConfig {
    fn default() -> Self {
        Self {
            status_update_interval: Duration::from_secs(300),
            lease_renew_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            ping_failure_threshold: 3,
        }
    }
}

/// Counters, for tests and metrics.
#[derive(Debug, Default)]
pub struct NodeControllerStats {
    /// Lease renewals that succeeded.
    pub lease_renewals: std::sync::atomic::AtomicU64,
    /// Lease renewals that failed.
    pub lease_failures: std::sync::atomic::AtomicU64,
    /// Status writes that succeeded.
    pub status_updates: std::sync::atomic::AtomicU64,
    /// Status writes that failed.
    pub status_failures: std::sync::atomic::AtomicU64,
    /// Times the Node was created, or our metadata merged into an existing one.
    pub registrations: std::sync::atomic::AtomicU64,
    /// Times the Node was found deleted or replaced by another UID while running, and
    /// was re-created or adopted (with its Lease claimed for the new UID).
    pub recreations: std::sync::atomic::AtomicU64,
    /// When the Lease was last renewed: Unix time in seconds as `f64` bits (0 = never;
    /// read with [`NodeControllerStats::last_lease_renewal`]).
    pub lease_last_renewal: std::sync::atomic::AtomicU64,
    /// When the status was last written: Unix time in seconds as `f64` bits (0 = never;
    /// read with [`NodeControllerStats::last_status_update`]).
    pub status_last_update: std::sync::atomic::AtomicU64,
}

impl NodeControllerStats {
    /// Unix time (seconds) of the last successful Lease renewal, if any.
    pub fn last_lease_renewal(&self) -> Option<f64> {
        read_time(&self.lease_last_renewal)
    }

    /// Unix time (seconds) of the last successful status write, if any.
    pub fn last_status_update(&self) -> Option<f64> {
        read_time(&self.status_last_update)
    }
}

fn read_time(cell: &std::sync::atomic::AtomicU64) -> Option<f64> {
    let t = f64::from_bits(cell.load(std::sync::atomic::Ordering::Relaxed));
    (t > 0.0).then_some(t)
}

fn stamp_now(cell: &std::sync::atomic::AtomicU64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    cell.store(now.to_bits(), std::sync::atomic::Ordering::Relaxed);
}

/// The node controller of one virtual node.
pub struct NodeController {
    client: Client,
    template: NodeTemplate,
    provider: SharedNodeProvider,
    config: NodeControllerConfig,
    registered: watch::Sender<bool>,
    stats: Arc<NodeControllerStats>,
}

/// Health as seen by pings.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Health {
    Healthy,
    Failing { count: u32, error: String },
}

impl NodeController {
    /// A controller for the node described by `template`.
    pub fn new(
        client: Client,
        template: NodeTemplate,
        provider: SharedNodeProvider,
        config: NodeControllerConfig,
    ) -> Self {
        Self {
            client,
            template,
            provider,
            config,
            registered: watch::Sender::new(false),
            stats: Arc::new(NodeControllerStats::default()),
        }
    }

    /// Becomes `true` once the Node is registered.
    pub fn registered(&self) -> watch::Receiver<bool> {
        self.registered.subscribe()
    }

    /// Counters.
    pub fn stats(&self) -> Arc<NodeControllerStats> {
        Arc::clone(&self.stats)
    }

    /// The template.
    pub fn template(&self) -> &NodeTemplate {
        &self.template
    }

    /// Runs until `shutdown` is cancelled. `presence` carries what the Node watch sees
    /// of this node ([`presence::watch_presence`]; [`Fleet`](crate::runtime::Fleet)
    /// runs one for all its nodes); a deletion seen there re-creates the Node at once.
    /// Without a watch, pass a receiver whose sender stays [`NodePresence::Unknown`]:
    /// deletions are then noticed by the Lease renewal, within one renew interval.
    pub async fn run(
        &self,
        mut presence: watch::Receiver<NodePresence>,
        shutdown: CancellationToken,
    ) {
        let (tx, mut pushed) = mpsc::unbounded_channel();
        self.provider.notify_node_status(NodeStatusSink::new(tx));
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut state = State {
            template: self.template.clone(),
            health: Health::Healthy,
            current: None,
            resync: None,
        };
        // Register, retrying until it works.
        let mut delay = Duration::from_millis(500);
        loop {
            match self.register(&nodes, &mut state).await {
                Ok(()) => break,
                Err(e) => {
                    warn!(node = %self.template.name, error = %e, "registering the node failed; retrying")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
        self.write_status(&nodes, &mut state).await;
        let mut lease = LeaseKeeper::new(
            self.client.clone(),
            &self.template.name,
            self.config.lease_duration_seconds,
        );
        // The UID comes straight from the registration: safe to create the Lease for.
        match lease.claim(&state.uid()).await {
            Ok(()) => self.lease_renewed(),
            Err(e) => {
                bump(&self.stats.lease_failures);
                warn!(node = %self.template.name, error = %e, "creating the lease failed");
                state.resync_needed(Cause::Lease);
            }
        }
        self.registered.send_replace(true);
        // The lease was just claimed and the status just written: the first renewal and
        // the first periodic write come at this node's phase within the interval.
        let name = &self.template.name;
        // Pings share the renewals' phase: with equal periods, one wake-up does both.
        let mut lease_tick = phase::interval(name, self.config.lease_renew_interval);
        let mut status_tick = phase::interval(name, self.config.status_update_interval);
        let mut ping_tick = phase::interval(name, self.config.ping_interval);
        let mut retry = resync::Retry::new(self.config.lease_renew_interval);
        let mut watching = true;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = presence.changed(), if watching => match changed {
                    Ok(()) => {
                        let seen = presence.borrow_and_update().clone();
                        if seen.contradicts(&state.uid()) {
                            debug!(node = %self.template.name, ?seen, "node watch: the node is gone or replaced");
                            state.resync_needed(Cause::Node);
                        }
                    }
                    // The watch stopped (shutdown): the lease renewal remains.
                    Err(_) => watching = false,
                },
                _ = lease_tick.tick() => self.renew_lease(&mut lease, &mut state).await,
                _ = status_tick.tick() => self.write_status(&nodes, &mut state).await,
                _ = ping_tick.tick() => {
                    let before = state.health.clone();
                    state.health = self.ping(&state.health).await;
                    let crossed = is_ready(&before, self.config.ping_failure_threshold)
                        != is_ready(&state.health, self.config.ping_failure_threshold);
                    if crossed {
                        match &state.health {
                            Health::Healthy => info!(node = %self.template.name, "provider ping recovered; node Ready"),
                            Health::Failing { error, .. } => warn!(node = %self.template.name, %error, "provider ping keeps failing; node NotReady"),
                        }
                        self.write_status(&nodes, &mut state).await;
                    }
                }
                Some(node) = pushed.recv() => {
                    state.merge_pushed(*node);
                    self.write_status(&nodes, &mut state).await;
                }
                _ = retry.wait(), if state.resync.is_some() => {}
            }
            if state.resync.is_some() && retry.due() {
                self.resync(&nodes, &mut state, &mut lease, &mut retry)
                    .await;
            }
        }
    }

    async fn renew_lease(&self, lease: &mut LeaseKeeper, state: &mut State) {
        let uid = state.uid();
        let span = tracing::debug_span!(
            crate::trace_fields::NODE_LEASE_RENEW,
            node.name = %self.template.name,
        );
        match lease.renew(&uid).instrument(span).await {
            Ok(Renewal::Renewed) => self.lease_renewed(),
            Ok(Renewal::Missing) => {
                bump(&self.stats.lease_failures);
                info!(node = %self.template.name, "the lease is gone; checking the node before re-creating it");
                state.resync_needed(Cause::Lease);
            }
            Ok(Renewal::OwnedByOther { owner_uid }) => {
                bump(&self.stats.lease_failures);
                info!(
                    node = %self.template.name,
                    node.uid = %uid,
                    lease.owner_uid = owner_uid.as_deref().unwrap_or(""),
                    "the lease is owned by another node UID; checking the node"
                );
                state.resync_needed(Cause::Lease);
            }
            Err(e) => {
                bump(&self.stats.lease_failures);
                warn!(node = %self.template.name, error = %e, "renewing the lease failed");
            }
        }
    }

    fn lease_renewed(&self) {
        bump(&self.stats.lease_renewals);
        stamp_now(&self.stats.lease_last_renewal);
    }

    async fn ping(&self, before: &Health) -> Health {
        let result = tokio::time::timeout(self.config.ping_timeout, self.provider.ping()).await;
        let error = match result {
            Ok(Ok(())) => return Health::Healthy,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("timed out after {:?}", self.config.ping_timeout),
        };
        let count = match before {
            Health::Healthy => 1,
            Health::Failing { count, .. } => count.saturating_add(1),
        };
        Health::Failing { count, error }
    }

    /// Creates the Node, or brings an existing one up to date with our metadata
    /// (retrying on conflicts). The status is written separately.
    async fn register(&self, nodes: &Api<Node>, state: &mut State) -> Result<(), kube::Error> {
        let name = state.template.name.clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match nodes.get_opt(&name).await? {
                None => {
                    let mut node = state.template.to_node();
                    ownership::apply(&mut node, &ownership::desired(&state.template));
                    if let Some(status) = node.status.as_mut() {
                        status.conditions =
                            Some(state.conditions(None, self.config.ping_failure_threshold));
                    }
                    nodes
                        .create(&PostParams::default(), &node)
                        .await
                        .inspect(|_| {
                            info!(node = %name, "registered node");
                        })
                }
                Some(current) => {
                    // Ours set, ours no longer wanted removed, others' kept (see
                    // `ownership`), with the resourceVersion as precondition so a
                    // concurrent change is not lost.
                    let patch =
                        ownership::merge_patch(&current, &ownership::desired(&state.template));
                    nodes
                        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                        .await
                        .inspect(|_| info!(node = %name, "node already registered; updated labels, annotations and taints"))
                }
            };
            match result {
                Ok(node) => {
                    state.current = Some(node);
                    bump(&self.stats.registrations);
                    return Ok(());
                }
                Err(e) if is_conflict(&e) && attempt < 5 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn write_status(&self, nodes: &Api<Node>, state: &mut State) {
        let span = tracing::debug_span!(
            crate::trace_fields::NODE_STATUS_UPDATE,
            node.name = %self.template.name,
        );
        self.write_status_inner(nodes, state).instrument(span).await;
    }

    async fn write_status_inner(&self, nodes: &Api<Node>, state: &mut State) {
        let conditions =
            state.conditions(state.current.as_ref(), self.config.ping_failure_threshold);
        let mut status = serde_json::to_value(state.template.status()).unwrap_or_default();
        status["conditions"] = serde_json::to_value(&conditions).unwrap_or_default();
        let patch = json!({"status": status});
        match nodes
            .patch_status(
                &state.template.name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            Ok(node) => {
                bump(&self.stats.status_updates);
                stamp_now(&self.stats.status_last_update);
                state.current = Some(node);
            }
            Err(e) if is_not_found(&e) => {
                bump(&self.stats.status_failures);
                state.resync_needed(Cause::Node);
            }
            Err(e) => {
                bump(&self.stats.status_failures);
                warn!(node = %state.template.name, error = %e, "writing node status failed");
            }
        }
    }
}

fn bump(c: &std::sync::atomic::AtomicU64) {
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn is_ready(health: &Health, threshold: u32) -> bool {
    match health {
        Health::Healthy => true,
        Health::Failing { count, .. } => *count < threshold,
    }
}

struct State {
    template: NodeTemplate,
    health: Health,
    current: Option<Node>,
    /// The Node (and Lease) must be checked against the API server: there was a sign
    /// that the Node was deleted or replaced.
    resync: Option<resync::Pending>,
}

impl State {
    fn uid(&self) -> String {
        self.current
            .as_ref()
            .and_then(|n| n.metadata.uid.clone())
            .unwrap_or_default()
    }

    /// Notes a sign that the Node or its Lease changed under us.
    fn resync_needed(&mut self, cause: Cause) {
        let pending = self
            .resync
            .get_or_insert_with(|| resync::Pending::new(cause));
        pending.add(cause);
    }

    /// Our conditions: Ready from the ping health, plus the pressure conditions, with
    /// heartbeat now and transition times kept while the status does not change.
    fn conditions(&self, current: Option<&Node>, threshold: u32) -> Vec<NodeCondition> {
        let now = Time(Timestamp::now());
        let existing: BTreeMap<String, NodeCondition> = current
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.type_.clone(), c))
            .collect();
        let (ready, reason, message) = if is_ready(&self.health, threshold) {
            ("True", "KubeletReady", "kubelet is ready.".to_owned())
        } else {
            let detail = match &self.health {
                Health::Failing { count, error } => {
                    format!("provider ping failed {count} times in a row: {error}")
                }
                Health::Healthy => String::new(),
            };
            ("False", PROVIDER_PING_FAILED, detail)
        };
        let mut wanted = vec![("Ready", ready, reason, message)];
        for (type_, reason, message) in [
            (
                "MemoryPressure",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            (
                "DiskPressure",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            (
                "PIDPressure",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            (
                "NetworkUnavailable",
                "RouteCreated",
                "RouteController created a route",
            ),
        ] {
            wanted.push((type_, "False", reason, message.to_owned()));
        }
        wanted
            .into_iter()
            .map(|(type_, status, reason, message)| {
                let transition = existing
                    .get(type_)
                    .filter(|c| c.status == status)
                    .and_then(|c| c.last_transition_time.clone())
                    .unwrap_or_else(|| now.clone());
                NodeCondition {
                    type_: type_.to_owned(),
                    status: status.to_owned(),
                    reason: Some(reason.to_owned()),
                    message: Some(message),
                    last_heartbeat_time: Some(now.clone()),
                    last_transition_time: Some(transition),
                }
            })
            .collect()
    }

    /// Folds a node pushed by the provider into the template (capacity, allocatable,
    /// addresses, labels, annotations).
    fn merge_pushed(&mut self, node: Node) {
        if let Some(status) = node.status {
            if let Some(cap) = status.capacity {
                self.template.capacity = cap.into_iter().map(|(k, v)| (k, v.0)).collect();
            }
            if let Some(alloc) = status.allocatable {
                self.template.allocatable = alloc.into_iter().map(|(k, v)| (k, v.0)).collect();
            }
            if let Some(ip) = status
                .addresses
                .iter()
                .flatten()
                .find(|a| a.type_ == "InternalIP")
            {
                self.template.internal_ip = Some(ip.address.clone());
            }
        }
        if let Some(labels) = node.metadata.labels {
            self.template.labels.extend(labels);
        }
        if let Some(annotations) = node.metadata.annotations {
            self.template.annotations.extend(annotations);
        }
    }
}
