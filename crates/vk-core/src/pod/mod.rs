//! The pod controller: keeps the provider in step with the pods bound to a node, and the
//! API in step with the provider's view of them.
//!
//! # Flow
//!
//! * A watch on the pods bound to the node (`spec.nodeName=<node>`, through kube-runtime's
//!   watcher) feeds [`FeedEvent`]s. Each event updates the controller's per-pod entry and
//!   queues the pod's key; N workers process keys from a deduplicating
//!   [`WorkQueue`], never the same key twice at once.
//! * Processing is **level-triggered**: a worker looks at the latest API object and the
//!   latest provider status and does what is missing: create (with the environment
//!   resolved) or update in the provider when the relevant spec changed, write status,
//!   or drive deletion.
//! * The per-pod state and its named transitions (the state machine of the provider's
//!   copy, and which event moves it) are in `entry.rs`: a worker takes a snapshot of the
//!   entry, decides, calls the provider or the API, then applies a transition guarded by
//!   the pod's UID.
//! * Provider status arrives through a [`PodNotifier`](crate::PodNotifier) or, for
//!   providers without one, from one periodic `get_pods` call (not a timer per pod).
//!
//! # Guarantees
//!
//! * **No duplicate creates after a restart**: before processing anything the controller
//!   asks the provider for its pods and adopts those the API still has (updating them if
//!   images, labels, annotations, tolerations or activeDeadlineSeconds changed meanwhile).
//! * **Graceful delete**: on `deletionTimestamp` the provider's `delete_pod` is called;
//!   the API object is removed (grace 0, **UID precondition**) as soon as the provider
//!   reports the pod terminated or gone, or when the grace period ends, whichever is first.
//!   A force delete reaches the provider too.
//! * **Dangling pods** (in the provider, not in the API) are deleted at start-up and
//!   periodically; a pod is only deleted after a live GET confirms the API does not have
//!   it, so a pod the API still has is never deleted.
//! * **Failures** set reason `ProviderFailed` on the pod with a Warning event and are
//!   retried with per-pod exponential backoff that never gives up.
//! * Pods already Succeeded/Failed when first seen are left untouched.
//!
//! # Caveats
//!
//! Status is written with strategic merge patches (see [`status`]); a provider that
//! reports timestamps with sub-second precision is compared at second precision, as the
//! API stores them.

mod cleanup;
mod entry;
pub mod observe;
#[cfg(test)]
mod span_tests;
pub mod spec;
pub mod status;
mod sync;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use self::entry::Entry;
use self::observe::{PodMetrics, SyncResult};
use crate::compact::Compact;
use crate::events::EventSink;
use crate::provider::{PodStatusReceiver, PodStatusSink, SharedPodHandler};
use crate::quantity::Quantity;
use crate::queue::{Backoff, WorkQueue};
use crate::resources::ResourceAccess;

/// Tuning of the pod controller.
#[derive(Debug, Clone)]
pub struct PodControllerConfig {
    /// Concurrent workers (`--pod-sync-workers`). Default 32: a worker mostly waits for
    /// one API round trip, and 32 keep up with what the API server accepts (upstream's
    /// 10 caps throughput at about 10 / round-trip time).
    pub workers: usize,
    /// How often provider status is polled when the provider has no notifier. Default 5 s.
    pub status_poll_interval: Duration,
    /// How often dangling provider pods are looked for. Default 1 min.
    pub dangling_check_interval: Duration,
    /// First retry delay after a failure. Default 1 s.
    pub backoff_base: Duration,
    /// Longest retry delay. Default 1 min (retries never stop).
    pub backoff_max: Duration,
    /// Record Normal events for successful provider operations (ProviderCreateSuccess...),
    /// as upstream does. Default true; turn off to save one API write per operation.
    pub success_events: bool,
}

impl Default for PodControllerConfig {
    fn default() -> Self {
        Self {
            workers: 32,
            status_poll_interval: Duration::from_secs(5),
            dangling_check_interval: Duration::from_secs(60),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            success_events: true,
        }
    }
}

/// A change to the pods bound to the node, as delivered by the pod watch.
///
/// Pods are boxed: a channel of events allocates its slots 32 at a time, and an
/// unboxed `Pod` (about 2 KB inline) made each node's feed cost 70 KB before it
/// carried anything — 70 MB for a fleet of 1,000 nodes.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// A pod was added or modified.
    Apply(Box<Pod>),
    /// A pod was removed from the API.
    Delete(Box<Pod>),
    /// A (re)list starts; pods not seen before [`FeedEvent::InitDone`] are gone.
    InitStart,
    /// A pod of the (re)list.
    InitApply(Box<Pod>),
    /// The (re)list is complete.
    InitDone,
}

/// Identifies a pod: namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl PodKey {
    /// The key of `pod`.
    pub fn of(pod: &Pod) -> Self {
        Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Counters of what the controller did, for tests and metrics.
#[derive(Debug, Default)]
pub struct PodControllerStats {
    /// `create_pod` calls that succeeded.
    pub creates: AtomicU64,
    /// `update_pod` calls that succeeded.
    pub updates: AtomicU64,
    /// `delete_pod` calls that succeeded (including NotFound).
    pub deletes: AtomicU64,
    /// Pods adopted from the provider at start-up.
    pub adopted: AtomicU64,
    /// Dangling provider pods deleted.
    pub dangling_deleted: AtomicU64,
    /// Status patches written.
    pub status_patches: AtomicU64,
    /// Final API deletions (grace 0) issued.
    pub api_deletes: AtomicU64,
    /// Syncs that failed and were queued for a retry with backoff.
    pub failures: AtomicU64,
}

impl PodControllerStats {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Reads the pod controller's queue depth and tracked-pod count.
#[derive(Clone)]
pub struct PodGauges {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PodGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodGauges").finish_non_exhaustive()
    }
}

impl PodGauges {
    /// Keys waiting in the work queue (not counting delayed retries).
    pub fn queue_depth(&self) -> usize {
        self.shared.queue.len()
    }
    /// Keys waiting for a delayed retry or deadline.
    pub fn delayed(&self) -> usize {
        self.shared.queue.delayed_len()
    }
    /// Pods tracked.
    pub fn tracked(&self) -> usize {
        self.shared.lock_entries().len()
    }
    /// Whether the first pod list has been reconciled.
    pub fn synced(&self) -> bool {
        self.shared.is_synced()
    }

    /// Whether the controller has synced and has nothing to do: no key queued, being
    /// processed or waiting for a retry. Once true, every pod known at start-up has been
    /// synced at least once (the initial keys are queued before `synced` turns true),
    /// so a test can assert that something did *not* happen in those syncs.
    pub fn idle(&self) -> bool {
        self.shared.is_synced() && self.shared.queue.is_idle()
    }
}

/// Reads the pods bound to the node as the API server last showed them (the pod watch's
/// view), including pods the provider never created — e.g. ones waiting for a missing
/// Secret. This is what a kubelet's `/pods` endpoint lists. Cheap to clone.
///
/// ```no_run
/// # fn demo(node: &vk_core::runtime::VirtualNode) {
/// let lister = node.pods().lister();
/// for pod in lister.list() {
///     println!("{:?}", pod.metadata.name);
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct PodLister {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PodLister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodLister").finish_non_exhaustive()
    }
}

impl PodLister {
    /// The pods the API has bound to the node, ordered by namespace and name. The
    /// entries are copied under the lock (shared bytes) and decoded outside it.
    pub fn list(&self) -> Vec<Pod> {
        let mut encoded: Vec<(PodKey, Compact<Pod>)> = self
            .shared
            .lock_entries()
            .iter()
            .filter_map(|(key, entry)| entry.api().map(|pod| (key.clone(), pod.clone())))
            .collect();
        encoded.sort_by(|a, b| a.0.cmp(&b.0));
        encoded.into_iter().map(|(_, pod)| pod.decode()).collect()
    }
}

/// Node facts pod sync needs.
#[derive(Debug, Clone, Default)]
pub struct PodNodeInfo {
    /// The node's name.
    pub node_name: String,
    /// The node's InternalIP, used as `hostIP`.
    pub host_ip: Option<String>,
    /// The node's allocatable resources (for `resourceFieldRef` defaults).
    pub allocatable: BTreeMap<String, Quantity>,
}

/// The pod controller of one node. Create it with [`PodController::new`], then
/// [`PodController::run`] it with the node's pod feed.
pub struct PodController {
    shared: Arc<Shared>,
}

struct Shared {
    node: PodNodeInfo,
    client: Client,
    provider: SharedPodHandler,
    resources: ResourceAccess,
    events: EventSink,
    queue: WorkQueue<PodKey>,
    backoff: Backoff<PodKey>,
    entries: Mutex<HashMap<PodKey, Entry>>,
    config: PodControllerConfig,
    has_notifier: AtomicBool,
    synced: watch::Sender<bool>,
    stats: Arc<PodControllerStats>,
    metrics: Arc<PodMetrics>,
    relist_seen: Mutex<Option<HashSet<PodKey>>>,
}

impl PodController {
    /// A controller syncing pods of `node` into `provider`.
    pub fn new(
        client: Client,
        node: PodNodeInfo,
        provider: SharedPodHandler,
        resources: ResourceAccess,
        events: EventSink,
        config: PodControllerConfig,
    ) -> Self {
        let backoff = Backoff::new(config.backoff_base, config.backoff_max);
        Self {
            shared: Arc::new(Shared {
                node,
                client,
                provider,
                resources,
                events,
                queue: WorkQueue::new(),
                backoff,
                entries: Mutex::new(HashMap::new()),
                config,
                has_notifier: AtomicBool::new(false),
                synced: watch::Sender::new(false),
                stats: Arc::new(PodControllerStats::default()),
                metrics: Arc::new(PodMetrics::default()),
                relist_seen: Mutex::new(None),
            }),
        }
    }

    /// Counters of what the controller did.
    pub fn stats(&self) -> Arc<PodControllerStats> {
        Arc::clone(&self.shared.stats)
    }

    /// Sync and provider-call measurements and pods by phase (for metrics).
    pub fn metrics(&self) -> Arc<PodMetrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// A cheap handle reading the queue depth and tracked pods (for metrics).
    pub fn gauges(&self) -> PodGauges {
        PodGauges {
            shared: Arc::clone(&self.shared),
        }
    }

    /// A cheap handle listing the pods bound to the node as the API has them (what a
    /// kubelet's `/pods` serves).
    pub fn lister(&self) -> PodLister {
        PodLister {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Becomes `true` once the first list of pods is processed and the provider's pods
    /// are reconciled with it.
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.shared.synced.subscribe()
    }

    /// Keys waiting in the work queue.
    pub fn queue_depth(&self) -> usize {
        self.shared.queue.len()
    }

    /// Pods the controller tracks.
    pub fn tracked_pods(&self) -> usize {
        self.shared.lock_entries().len()
    }

    /// Runs until `shutdown` is cancelled or the feed ends.
    pub async fn run(&self, mut feed: mpsc::Receiver<FeedEvent>, shutdown: CancellationToken) {
        let shared = Arc::clone(&self.shared);
        if let Some(notifier) = shared.provider.pod_notifier() {
            let weak = Arc::downgrade(&shared);
            let weak: std::sync::Weak<dyn PodStatusReceiver> = weak;
            notifier.notify_pods(PodStatusSink::new(weak));
            shared.has_notifier.store(true, Ordering::SeqCst);
        }

        // 1. The first complete list of API pods.
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                event = feed.recv() => match event {
                    None => return,
                    Some(FeedEvent::InitDone) => {
                        shared.apply_feed(FeedEvent::InitDone);
                        break;
                    }
                    Some(e) => shared.apply_feed(e),
                }
            }
        }
        // 2. Reconcile with the provider's pods before any worker acts.
        if !cleanup::initial_reconcile(&shared, &shutdown).await {
            return;
        }
        // Queue every pod before announcing `synced`, so that "synced and idle" means
        // each of them has been processed (see `PodGauges::idle`).
        let keys: Vec<PodKey> = shared.lock_entries().keys().cloned().collect();
        for key in keys {
            shared.queue.add(key);
        }
        shared.synced.send_replace(true);

        // 3. The dispatcher, the delay timer, periodic tasks, and the feed.
        let mut tasks = tokio::task::JoinSet::new();
        {
            let s = Arc::clone(&shared);
            tasks.spawn(async move { s.dispatch().await });
        }
        {
            let s = Arc::clone(&shared);
            tasks.spawn(async move { s.queue.run_timer().await });
        }
        {
            let s = Arc::clone(&shared);
            let stop = shutdown.clone();
            tasks.spawn(async move { cleanup::periodic(&s, &stop).await });
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = feed.recv() => match event {
                    None => break,
                    Some(e) => shared.apply_feed(e),
                }
            }
        }
        shared.queue.shut_down();
        while tasks.join_next().await.is_some() {}
    }
}

impl Shared {
    fn lock_entries(&self) -> MutexGuard<'_, HashMap<PodKey, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Folds a watch event into the entries and queues the pod.
    fn apply_feed(&self, event: FeedEvent) {
        match event {
            FeedEvent::InitStart => {
                *self.relist_seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(HashSet::new());
            }
            FeedEvent::InitApply(pod) => {
                let key = PodKey::of(&pod);
                if let Some(seen) = self
                    .relist_seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                {
                    seen.insert(key);
                }
                self.upsert(*pod);
            }
            FeedEvent::Apply(pod) => self.upsert(*pod),
            FeedEvent::Delete(pod) => {
                let key = PodKey::of(&pod);
                if let Some(entry) = self.lock_entries().get_mut(&key) {
                    entry.removed_from_api();
                }
                self.enqueue(key);
            }
            FeedEvent::InitDone => {
                let seen = self
                    .relist_seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .unwrap_or_default();
                let mut gone = Vec::new();
                for (key, entry) in self.lock_entries().iter_mut() {
                    if entry.in_api() && !seen.contains(key) {
                        entry.removed_from_api();
                        gone.push(key.clone());
                    }
                }
                for key in gone {
                    self.enqueue(key);
                }
            }
        }
    }

    fn upsert(&self, mut pod: Pod) {
        // managedFields can be larger than the rest of the pod and we never read them.
        pod.metadata.managed_fields = None;
        let key = PodKey::of(&pod);
        {
            let mut entries = self.lock_entries();
            match entries.get_mut(&key) {
                Some(entry) => entry.observed_in_api(&pod, &self.metrics),
                None => {
                    tracing::debug!(pod = %key, "pod seen");
                    entries.insert(key.clone(), Entry::new(&pod, &self.metrics));
                }
            }
        }
        self.enqueue(key);
    }

    fn enqueue(&self, key: PodKey) {
        if self.is_synced() {
            self.queue.add(key);
        }
    }

    /// Queues `key` ahead of the keys queued by [`Shared::enqueue`]: for the provider's
    /// reports, whose sync is mostly one status write. Queued behind the creates of a
    /// burst, a pod's Running status would wait for all of them.
    fn enqueue_report(&self, key: PodKey) {
        if self.is_synced() {
            self.queue.add_urgent(key);
        }
    }

    /// Takes keys from the queue and processes each in its own task, at most
    /// `workers` at a time. Idle nodes hold no worker tasks at all, which matters when
    /// one process runs a thousand nodes (a parked sync future is ~10 KB).
    async fn dispatch(self: Arc<Self>) {
        let permits = Arc::new(tokio::sync::Semaphore::new(self.config.workers.max(1)));
        let mut running = tokio::task::JoinSet::new();
        // A key is taken only once a worker is free, so that it is the one first in line
        // then (an urgent key added meanwhile goes first).
        while let Ok(permit) = Arc::clone(&permits).acquire_owned().await {
            let Some(key) = self.queue.get().await else {
                break;
            };
            let this = Arc::clone(&self);
            running.spawn(async move {
                this.process(key).await;
                drop(permit);
            });
            // Reap finished tasks so the set does not grow.
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
    }

    /// One sync of `key` in its `pod.sync` span, measured, then requeued as it asks.
    async fn process(&self, key: PodKey) {
        let span = tracing::info_span!(
            crate::trace_fields::POD_SYNC,
            pod.namespace = %key.namespace,
            pod.name = %key.name,
            pod.uid = tracing::field::Empty,
            node.name = %self.node.node_name,
            vk.operation = tracing::field::Empty,
            vk.result = tracing::field::Empty,
        );
        let started = Instant::now();
        let (outcome, operation) = observe::tracking_operation(self.sync(&key))
            .instrument(span.clone())
            .await;
        let result = match outcome {
            sync::Outcome::Done => {
                self.backoff.forget(&key);
                SyncResult::Ok
            }
            sync::Outcome::RequeueAfter(after) => {
                self.backoff.forget(&key);
                self.queue.add_after(key.clone(), after);
                SyncResult::Requeue
            }
            sync::Outcome::Retry => {
                bump(&self.stats.failures);
                let delay = self.backoff.next_delay(&key);
                self.queue.add_after(key.clone(), delay);
                SyncResult::Retry
            }
        };
        let elapsed = started.elapsed();
        self.metrics.observe_sync(operation, result, elapsed);
        span.record(crate::trace_fields::OPERATION, operation.as_str());
        span.record(crate::trace_fields::RESULT, result.as_str());
        span.in_scope(|| tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "pod synced"));
        self.queue.done(&key);
    }
}

impl PodStatusReceiver for Shared {
    fn pod_status_changed(&self, pod: Pod) {
        let key = PodKey::of(&pod);
        let Some(status) = pod.status else { return };
        let known = match self.lock_entries().get_mut(&key) {
            Some(entry) => {
                entry.provider_reported(pod.metadata.uid.as_deref(), Compact::new(&status))
            }
            None => false,
        };
        if known {
            self.enqueue_report(key);
        }
    }

    fn pod_gone(&self, namespace: &str, name: &str) {
        let key = PodKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let known = match self.lock_entries().get_mut(&key) {
            Some(entry) => {
                entry.provider_lost_it();
                true
            }
            None => false,
        };
        if known {
            self.enqueue_report(key);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::Ordering;

    use async_trait::async_trait;
    use k8s_openapi::api::core::v1::{Pod, PodStatus};

    use super::observe::{Phase, ProviderOp, SyncOperation, SyncResult};
    use super::*;
    use crate::metrics::histogram::HistogramSnapshot;
    use crate::provider::PodLifecycleHandler;

    /// A client whose every request gets a 404 (the tests below make none that matter).
    pub(crate) fn offline_client() -> Client {
        let svc = tower::service_fn(|_req: http::Request<kube::client::Body>| async {
            http::Response::builder()
                .status(404)
                .body(kube::client::Body::from(Vec::new()))
        });
        Client::new(svc, "default")
    }

    /// A provider whose deletes fail with Unavailable.
    pub(crate) struct Failing;

    #[async_trait]
    impl PodLifecycleHandler for Failing {
        async fn create_pod(&self, _pod: &Pod) -> vk_errdefs::Result<()> {
            Ok(())
        }
        async fn update_pod(&self, _pod: &Pod) -> vk_errdefs::Result<()> {
            Ok(())
        }
        async fn delete_pod(&self, _pod: &Pod) -> vk_errdefs::Result<()> {
            Err(vk_errdefs::Error::unavailable("backend down"))
        }
        async fn get_pod(&self, _ns: &str, _name: &str) -> vk_errdefs::Result<Option<Pod>> {
            Ok(None)
        }
        async fn get_pod_status(
            &self,
            _ns: &str,
            _name: &str,
        ) -> vk_errdefs::Result<Option<PodStatus>> {
            Ok(None)
        }
        async fn get_pods(&self) -> vk_errdefs::Result<Vec<Pod>> {
            Ok(Vec::new())
        }
    }

    pub(crate) fn controller() -> PodController {
        let client = offline_client();
        PodController::new(
            client.clone(),
            PodNodeInfo {
                node_name: "n1".into(),
                ..Default::default()
            },
            Arc::new(Failing),
            ResourceAccess::new(client, "n1"),
            EventSink::disabled(),
            PodControllerConfig::default(),
        )
    }

    pub(crate) fn pod(name: &str, uid: &str, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "ns", "name": name, "uid": uid},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase},
        }))
        .expect("pod")
    }

    pub(crate) fn key(name: &str) -> PodKey {
        PodKey {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn syncs(m: &PodMetrics, op: SyncOperation, res: SyncResult) -> u64 {
        let mut h = HistogramSnapshot::default();
        m.add_sync(op, res, &mut h);
        h.count()
    }

    #[tokio::test]
    async fn pods_are_counted_by_phase_until_their_entry_goes() {
        let c = controller();
        let (s, m) = (&c.shared, c.metrics());
        s.apply_feed(FeedEvent::Apply(Box::new(pod("a", "u1", "Pending"))));
        s.apply_feed(FeedEvent::Apply(Box::new(pod("b", "u2", "Pending"))));
        s.apply_feed(FeedEvent::Apply(Box::new(pod("a", "u1", "Running"))));
        s.apply_feed(FeedEvent::Apply(Box::new(pod("a", "u1", "Running"))));
        assert_eq!(
            (m.pods_in(Phase::Pending), m.pods_in(Phase::Running)),
            (1, 1)
        );
        // Same name, new pod: the entry is reused, the phase moves.
        s.apply_feed(FeedEvent::Apply(Box::new(pod("a", "u3", "Pending"))));
        assert_eq!(
            (m.pods_in(Phase::Pending), m.pods_in(Phase::Running)),
            (2, 0)
        );
        // A relist without `b`: gone from the API, still tracked until synced.
        s.apply_feed(FeedEvent::InitStart);
        s.apply_feed(FeedEvent::InitApply(Box::new(pod("a", "u3", "Succeeded"))));
        s.apply_feed(FeedEvent::InitDone);
        assert_eq!(m.pods_in(Phase::Pending), 1);
        assert_eq!(m.pods_in(Phase::Succeeded), 1);
        // The sync of `b` (never in the provider) forgets it.
        s.process(key("b")).await;
        assert_eq!(m.pods_in(Phase::Pending), 0);
        assert_eq!(c.tracked_pods(), 1);
        s.apply_feed(FeedEvent::Delete(Box::new(pod("a", "u3", "Succeeded"))));
        s.process(key("a")).await;
        for p in Phase::ALL {
            assert_eq!(m.pods_in(p), 0, "{p:?}");
        }
        assert_eq!(c.tracked_pods(), 0);
        assert_eq!(syncs(&m, SyncOperation::None, SyncResult::Ok), 2);
    }

    #[tokio::test]
    async fn the_lister_shows_the_pods_the_api_has_bound_to_the_node() {
        let c = controller();
        let lister = c.lister();
        assert!(lister.list().is_empty());
        c.shared
            .apply_feed(FeedEvent::Apply(Box::new(pod("b", "u2", "Pending"))));
        c.shared
            .apply_feed(FeedEvent::Apply(Box::new(pod("a", "u1", "Running"))));
        let names = |l: &PodLister| -> Vec<String> {
            l.list()
                .into_iter()
                .map(|p| p.metadata.name.expect("name"))
                .collect()
        };
        // Never created in the provider (the provider here has nothing), still listed,
        // in key order and as last seen.
        assert_eq!(names(&lister), ["a", "b"]);
        assert_eq!(
            lister.list()[0]
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref()),
            Some("Running")
        );
        // Deleted from the API: no longer listed, though still tracked until synced.
        c.shared
            .apply_feed(FeedEvent::Delete(Box::new(pod("b", "u2", "Pending"))));
        assert_eq!(names(&lister), ["a"]);
        assert_eq!(c.tracked_pods(), 2);
    }

    /// The keys in the order a worker would take them.
    async fn drain(s: &Shared) -> Vec<String> {
        let mut order = Vec::new();
        while !s.queue.is_empty() {
            let k = s.queue.get().await.expect("key");
            s.queue.done(&k);
            order.push(k.name);
        }
        order
    }

    #[tokio::test]
    async fn a_provider_report_is_not_queued_behind_pending_creates() {
        let c = controller();
        let s = &c.shared;
        s.synced.send_replace(true);
        for (name, uid) in [("a", "u1"), ("b", "u2"), ("c", "u3"), ("d", "u4")] {
            s.apply_feed(FeedEvent::Apply(Box::new(pod(name, uid, "Pending"))));
        }
        // `c` runs (say its create was retried); its status is one write away.
        s.pod_status_changed(pod("c", "u3", "Running"));
        assert_eq!(drain(s).await, ["c", "a", "b", "d"]);
        // The same for a pod the provider lost.
        for (name, uid) in [("a", "u1"), ("b", "u2"), ("c", "u3")] {
            s.apply_feed(FeedEvent::Apply(Box::new(pod(name, uid, "Pending"))));
        }
        s.pod_gone("ns", "b");
        assert_eq!(drain(s).await, ["b", "a", "c"]);
    }

    #[tokio::test]
    async fn a_report_during_a_create_is_synced_before_the_creates_queued_meanwhile() {
        let c = controller();
        let s = &c.shared;
        s.synced.send_replace(true);
        s.apply_feed(FeedEvent::Apply(Box::new(pod("a", "u1", "Pending"))));
        let a = s.queue.get().await.expect("key");
        // While `a` is being created, a burst of pods arrives and the provider reports
        // `a` (its container started).
        for (name, uid) in [("b", "u2"), ("c", "u3"), ("d", "u4")] {
            s.apply_feed(FeedEvent::Apply(Box::new(pod(name, uid, "Pending"))));
        }
        s.pod_status_changed(pod("a", "u1", "Running"));
        s.queue.done(&a);
        assert_eq!(drain(s).await, ["a", "b", "c", "d"]);
    }

    #[tokio::test]
    async fn a_failed_provider_delete_is_measured_as_a_retried_delete() {
        let c = controller();
        let (s, m) = (&c.shared, c.metrics());
        s.apply_feed(FeedEvent::Apply(Box::new(pod("a", "u1", "Running"))));
        if let Some(e) = s.lock_entries().get_mut(&key("a")) {
            e.spec_sent(1);
        }
        s.apply_feed(FeedEvent::Delete(Box::new(pod("a", "u1", "Running"))));
        s.process(key("a")).await;
        assert_eq!(syncs(&m, SyncOperation::Delete, SyncResult::Retry), 1);
        assert_eq!(m.provider_errors(ProviderOp::DeletePod, "unavailable"), 1);
        let mut calls = HistogramSnapshot::default();
        m.add_provider_call(ProviderOp::DeletePod, &mut calls);
        assert_eq!(calls.count(), 1);
        assert_eq!(c.stats().failures.load(Ordering::Relaxed), 1);
        // Still tracked (the provider may still run it), still counted.
        assert_eq!(m.pods_in(Phase::Running), 1);
    }
}
