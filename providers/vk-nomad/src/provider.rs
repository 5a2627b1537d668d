//! [`NomadProvider`]: the pod lifecycle on Nomad jobs.
//!
//! # Flow
//!
//! * **create**: the pod is mapped ([`crate::mapping`]) and registered as a job —
//!   unless a job of that ID already carries the pod's UID in its meta (a restart of
//!   vk-nomad, or a create retried after a lost answer): that job is adopted as is.
//!   A pod that cannot be mapped is not registered: it gets a `ProviderFailed` Warning
//!   event and a Failed status, once.
//! * **status**: [`NomadProvider::run_watch`] reads every allocation of the namespace
//!   once (a full reconcile), then follows Nomad's event stream from that index
//!   (`/v1/event/stream`, topics `Allocation` and `Job`): each allocation event updates
//!   a cache of allocations by job and the status of that job's pod is recomputed
//!   ([`crate::status`]) and pushed to the core ([`PodNotifier`]) — no call per pod. An
//!   agent that refuses the stream (event broker disabled, a token without the
//!   policy) is followed with blocking queries on `/v1/allocations` (`index`,
//!   `X-Nomad-Index`) instead, as is one configured with `watch = "blocking_queries"`.
//!   When the stream or a query fails, the loop backs off (0.5 s doubling to 30 s,
//!   jittered) and starts again with a full reconcile.
//! * **lost pods**: a `JobDeregistered` event (or, with blocking queries, allocations
//!   that vanish) for a pod nobody deleted, whose job Nomad no longer has, tells the
//!   core the pod is gone (it marks it Failed).
//! * **delete**: the job is stopped (its tasks get `KillTimeout`, the pod's grace
//!   period); once its allocations are terminal the final status is pushed and the job
//!   is purged.
//! * **restart**: [`NomadProvider::recover`] lists the jobs whose meta names this
//!   node and takes their pods back from the meta.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use vk_core::events::{EventSink, pod_ref, reasons};
use vk_core::{NodeProvider, PodLifecycleHandler, PodNotifier, PodStatusSink};
use vk_errdefs::{Error, Result};

use crate::api::NomadClient;
use crate::api::types::{Allocation, EventBatch, Job};
use crate::config::{Connection, NomadConfig, Watch};
use crate::error::NomadError;
use crate::mapping::{self, MappingContext};
use crate::status;

type Key = (String, String);

/// How long the event stream may stay silent (Nomad heartbeats every 10 s).
const EVENT_STREAM_IDLE: Duration = Duration::from_secs(45);

/// What the provider knows about one pod.
#[derive(Debug, Clone)]
struct Record {
    /// The pod as the core gave it (status stripped).
    pod: Pod,
    /// Its job's ID.
    job_id: String,
    /// The job as registered (to tell real changes on update).
    job: Option<Job>,
    /// The latest status.
    status: PodStatus,
    /// Delete was asked: the job is stopped, and is purged once its tasks ended.
    deleting: bool,
    /// Whether Nomad showed allocations for the job at some point.
    seen_allocations: bool,
    /// The purge is under way (the watch and a delete may both see the end).
    purging: bool,
}

/// Calls counted for tests and metrics.
#[derive(Debug, Default)]
pub struct Calls {
    /// Jobs registered.
    pub registrations: std::sync::atomic::AtomicU64,
    /// Jobs adopted instead of registered.
    pub adoptions: std::sync::atomic::AtomicU64,
}

/// A virtual node's pods as Nomad jobs. Build it with [`NomadProvider::new`], call
/// [`recover`](Self::recover) at start, and hand it to the core as pod handler and
/// node provider; its watch loop starts when the core asks for notifications.
pub struct NomadProvider {
    node_name: String,
    config: NomadConfig,
    connection: Connection,
    client: NomadClient,
    host_ip: Option<String>,
    events: EventSink,
    records: Mutex<HashMap<Key, Record>>,
    sink: Mutex<Option<PodStatusSink>>,
    recovered: AtomicBool,
    watching: AtomicBool,
    calls: Calls,
    /// The address every allocation gets, when there is one (host networking on a
    /// single eligible client node); refreshed by the watch loop.
    single_address: Mutex<(Option<IpAddr>, Option<std::time::Instant>)>,
    /// The allocations last seen, by job ID (kept current by the event stream).
    allocs: Mutex<HashMap<String, HashMap<String, Allocation>>>,
}

impl std::fmt::Debug for NomadProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NomadProvider")
            .field("node_name", &self.node_name)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl NomadProvider {
    /// A provider for node `node_name` talking to Nomad as `config` (and the
    /// `NOMAD_*` environment) says.
    pub fn new(
        node_name: impl Into<String>,
        config: NomadConfig,
    ) -> std::result::Result<Self, NomadError> {
        let connection = config.connection()?;
        Self::with_connection(node_name, config, connection)
    }

    /// A provider with explicit connection settings (tests; no environment).
    pub fn with_connection(
        node_name: impl Into<String>,
        config: NomadConfig,
        connection: Connection,
    ) -> std::result::Result<Self, NomadError> {
        let client = NomadClient::new(&connection)?;
        Ok(Self {
            node_name: node_name.into(),
            config,
            connection,
            client,
            host_ip: None,
            events: EventSink::disabled(),
            records: Mutex::new(HashMap::new()),
            sink: Mutex::new(None),
            recovered: AtomicBool::new(false),
            watching: AtomicBool::new(false),
            calls: Calls::default(),
            single_address: Mutex::new((None, None)),
            allocs: Mutex::new(HashMap::new()),
        })
    }

    /// Records Warning events for pods that cannot be mapped through `events`.
    pub fn with_events(mut self, events: EventSink) -> Self {
        self.events = events;
        self
    }

    /// The node's IP, reported as the pods' `hostIP`.
    pub fn with_host_ip(mut self, host_ip: Option<String>) -> Self {
        self.host_ip = host_ip;
        self
    }

    /// The Nomad client.
    pub fn client(&self) -> &NomadClient {
        &self.client
    }

    /// Registration and adoption counts.
    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self, pod: Pod) {
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(sink) = sink {
            sink.notify(pod);
        }
    }

    fn notify_gone(&self, namespace: &str, name: &str) {
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(sink) = sink {
            sink.notify_gone(namespace, name);
        }
    }

    fn mapping_context(&self) -> MappingContext<'_> {
        MappingContext {
            config: &self.config,
            namespace: &self.connection.namespace,
            region: self.connection.region.as_deref(),
            node_name: &self.node_name,
        }
    }

    /// Takes back the pods of this node's jobs (their meta names the node); returns
    /// how many. Jobs left stopped by a delete in progress are finished off by the
    /// watch loop.
    pub async fn recover(&self) -> std::result::Result<usize, NomadError> {
        let jobs = self.client.list_jobs(&self.config.job_prefix).await?;
        let mut adopted = 0;
        for stub in jobs {
            let meta = match stub.meta {
                Some(meta) => meta,
                // An agent that ignores `meta=true`: read the job itself.
                None => match self.client.read_job(&stub.id).await? {
                    Some(job) => job.meta.unwrap_or_default(),
                    None => continue,
                },
            };
            if meta.get(mapping::META_NODE).map(String::as_str) != Some(self.node_name.as_str()) {
                continue;
            }
            let Some(pod) = mapping::pod_from_meta(&meta) else {
                tracing::warn!(job = %stub.id, "job names this node but carries no readable pod; left alone");
                continue;
            };
            let key = key_of(&pod);
            let status = status::pod_status(&pod, &[], self.host_ip.as_deref());
            self.lock().entry(key).or_insert(Record {
                pod,
                job_id: stub.id.clone(),
                job: None,
                status,
                deleting: stub.stop,
                seen_allocations: false,
                purging: false,
            });
            adopted += 1;
        }
        self.recovered.store(true, Ordering::Relaxed);
        if adopted > 0 {
            // Adopted pods start from their real status, not "scheduling".
            let allocs = self.client.allocations(None).await?;
            self.reconcile(allocs.value).await;
        }
        Ok(adopted)
    }

    /// Refreshes the address every host-network allocation gets (see
    /// [`pod_ip_hint`](PodLifecycleHandler::pod_ip_hint)), at most once a minute.
    pub async fn refresh_single_address(&self) {
        let fresh = self
            .single_address
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .is_some_and(|at| at.elapsed() < Duration::from_secs(60));
        if fresh || self.config.network_mode != "host" {
            return;
        }
        let Ok(nodes) = self.client.nodes().await else {
            return;
        };
        let eligible: Vec<_> = nodes
            .iter()
            .filter(|n| n.status == "ready" && n.scheduling_eligibility == "eligible" && !n.drain)
            .filter(|n| {
                self.config
                    .node_pool
                    .as_ref()
                    .is_none_or(|p| &n.node_pool == p)
            })
            .collect();
        let address = match eligible.as_slice() {
            [only] => only.address.parse::<IpAddr>().ok(),
            _ => None,
        };
        *self
            .single_address
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = (address, Some(std::time::Instant::now()));
    }

    /// Follows the namespace's allocations until the process ends; see the [module
    /// docs](self). Started by [`start_watch`].
    pub async fn run_watch(self: Arc<Self>) {
        let mut failures: u32 = 0;
        let mut use_events = self.config.watch == Watch::Events;
        loop {
            if failures > 0 {
                let wait = backoff(failures);
                tokio::time::sleep(wait).await;
            }
            if !self.recovered.load(Ordering::Relaxed)
                && let Err(e) = self.recover().await
            {
                tracing::warn!(error = %e, "recovering this node's jobs from Nomad");
            }
            self.refresh_single_address().await;
            // A full reconcile first (and after every reconnect).
            let answer = match self.client.allocations(None).await {
                Ok(answer) => answer,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, "reading Nomad allocations");
                    continue;
                }
            };
            if failures > 0 {
                tracing::info!("Nomad reachable again; status reconciled");
            }
            failures = 0;
            self.reconcile(answer.value).await;
            let result = if use_events {
                self.follow_events(answer.index.saturating_add(1)).await
            } else {
                self.follow_blocking(answer.index.max(1)).await
            };
            match result {
                Err(e) if use_events && refuses_events(&e) => {
                    tracing::warn!(error = %e, "the event stream is not available; following allocations with blocking queries");
                    use_events = false;
                }
                Err(e) => {
                    failures = 1;
                    tracing::warn!(error = %e, "following Nomad; reconnecting");
                }
                Ok(()) => {
                    failures = 1;
                    tracing::info!("the Nomad event stream ended; reconnecting");
                }
            }
        }
    }

    /// Blocking queries on the namespace's allocations from `index`, until one fails.
    async fn follow_blocking(&self, mut index: u64) -> std::result::Result<(), NomadError> {
        loop {
            let answer = self.client.allocations(Some(index)).await?;
            // An index that goes backwards (a restored snapshot, another server)
            // means: start over.
            if answer.index < index {
                return Ok(());
            }
            index = answer.index.max(1);
            self.reconcile(answer.value).await;
            self.refresh_single_address().await;
        }
    }

    /// The event stream from `index`, until it ends or fails.
    async fn follow_events(&self, index: u64) -> std::result::Result<(), NomadError> {
        use futures::StreamExt as _;
        let mut stream = self.client.event_stream(index).await?;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            // Nomad sends a `{}` heartbeat every 10 s: silence means a dead connection.
            let chunk = match tokio::time::timeout(EVENT_STREAM_IDLE, stream.next()).await {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(_)) | None) => return Ok(()),
                Err(_) => {
                    tracing::warn!(
                        "no event or heartbeat from Nomad for {EVENT_STREAM_IDLE:?}; reconnecting"
                    );
                    return Ok(());
                }
            };
            buf.extend_from_slice(&chunk);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<EventBatch>(line) {
                    Ok(batch) => self.apply_events(batch).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "an event stream line is not an event batch; skipped")
                    }
                }
            }
        }
    }

    /// Applies a batch of events: allocations update the cache, then the pods of the
    /// jobs touched are refreshed; a deregistered job that is gone is a lost pod.
    async fn apply_events(&self, batch: EventBatch) {
        let mut touched: Vec<String> = Vec::new();
        let mut deregistered: Vec<String> = Vec::new();
        for event in batch.events.unwrap_or_default() {
            match (
                event.topic.as_str(),
                event.payload.allocation,
                event.payload.job,
            ) {
                ("Allocation", Some(alloc), _) => {
                    let job = alloc.job_id.clone();
                    self.cache()
                        .entry(job.clone())
                        .or_default()
                        .insert(alloc.id.clone(), alloc);
                    touched.push(job);
                }
                ("Job", _, job) => {
                    let id = job.map_or(event.key, |j| j.id);
                    if event.event_type == "JobDeregistered" {
                        deregistered.push(id.clone());
                    }
                    touched.push(id);
                }
                _ => {}
            }
        }
        touched.sort();
        touched.dedup();
        let mine: Vec<(Key, Record)> = self
            .lock()
            .iter()
            .filter(|(_, r)| touched.contains(&r.job_id))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        for (key, record) in mine {
            if deregistered.contains(&record.job_id)
                && !record.deleting
                && let Ok(None) = self.client.read_job(&record.job_id).await
            {
                tracing::warn!(job = %record.job_id, "the pod's job was purged from Nomad");
                self.lock().remove(&key);
                self.cache().remove(&record.job_id);
                self.notify_gone(&key.0, &key.1);
                continue;
            }
            let allocs: Vec<Allocation> = self
                .cache()
                .get(&record.job_id)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            self.refresh(&key, record, allocs).await;
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Allocation>>> {
        self.allocs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Recomputes every known pod's status from `allocs` (all of the namespace's).
    async fn reconcile(&self, allocs: Vec<Allocation>) {
        let mut by_job: HashMap<String, Vec<Allocation>> = HashMap::new();
        let mut cache: HashMap<String, HashMap<String, Allocation>> = HashMap::new();
        for alloc in allocs {
            cache
                .entry(alloc.job_id.clone())
                .or_default()
                .insert(alloc.id.clone(), alloc.clone());
            by_job.entry(alloc.job_id.clone()).or_default().push(alloc);
        }
        *self.cache() = cache;
        let snapshot: Vec<(Key, Record)> = self
            .lock()
            .iter()
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        for (key, record) in snapshot {
            let allocs = by_job.remove(&record.job_id).unwrap_or_default();
            self.refresh(&key, record, allocs).await;
        }
    }

    async fn refresh(&self, key: &Key, record: Record, mut allocs: Vec<Allocation>) {
        if record.status.reason.as_deref() == Some(reasons::PROVIDER_FAILED)
            && record.job.is_none()
            && !record.deleting
        {
            return; // never registered: nothing in Nomad to follow
        }
        // List stubs carry no NetworkStatus: read the running allocation for its address.
        if let Some(current) = status::current_allocation(&allocs)
            && current.client_status == "running"
            && status::pod_ip(current).is_none()
            && let Ok(full) = self.client.allocation(&current.id).await
        {
            let id = full.id.clone();
            if let Some(slot) = allocs.iter_mut().find(|a| a.id == id) {
                let task_states = slot.task_states.take();
                *slot = Allocation {
                    task_states: full.task_states.clone().or(task_states),
                    ..full
                };
            }
        }
        let all_done = allocs.iter().all(status::is_terminal);
        if record.deleting && all_done {
            // Push the final status, then purge.
            let final_status = status::pod_status(&record.pod, &allocs, self.host_ip.as_deref());
            let mut pod = record.pod.clone();
            pod.status = Some(final_status);
            let claimed = self.lock().get_mut(key).is_some_and(|r| {
                let first = r.job_id == record.job_id && !r.purging;
                r.purging = true;
                first
            });
            if !claimed {
                return;
            }
            if let Err(e) = self.client.stop_job(&record.job_id, true).await {
                tracing::warn!(job = %record.job_id, error = %e, "purging a stopped job");
                if let Some(r) = self.lock().get_mut(key) {
                    r.purging = false;
                }
                return;
            }
            self.lock().remove(key);
            tracing::info!(job = %record.job_id, "job purged after its tasks stopped");
            self.notify(pod);
            return;
        }
        if allocs.is_empty() && record.seen_allocations && !record.deleting {
            // Allocations gone although nobody deleted the pod: is the job gone too?
            if let Ok(None) = self.client.read_job(&record.job_id).await {
                tracing::warn!(job = %record.job_id, "the pod's job disappeared from Nomad");
                self.lock().remove(key);
                self.notify_gone(&key.0, &key.1);
                return;
            }
        }
        let new_status = status::pod_status(&record.pod, &allocs, self.host_ip.as_deref());
        let changed = {
            let mut records = self.lock();
            let Some(current) = records.get_mut(key) else {
                return;
            };
            if current.job_id != record.job_id {
                return;
            }
            current.seen_allocations |= !allocs.is_empty();
            let changed = !same_status(&current.status, &new_status);
            if changed {
                current.status = new_status.clone();
            }
            changed.then(|| current.pod.clone())
        };
        if let Some(mut pod) = changed {
            pod.status = Some(new_status);
            self.notify(pod);
        }
    }

    /// Reads one job's allocations now and refreshes its pod (after create/delete).
    async fn refresh_now(&self, key: &Key) {
        let Some(record) = self.lock().get(key).cloned() else {
            return;
        };
        match self.client.job_allocations(&record.job_id).await {
            Ok(allocs) => {
                self.cache().insert(
                    record.job_id.clone(),
                    allocs.iter().map(|a| (a.id.clone(), a.clone())).collect(),
                );
                self.refresh(key, record, allocs).await
            }
            Err(e) => {
                tracing::debug!(job = %record.job_id, error = %e, "reading a job's allocations")
            }
        }
    }

    /// The ID of the allocation running `container` of pod `namespace/name`.
    pub(crate) async fn allocation_of(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Result<String> {
        let job_id = self
            .lock()
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|r| r.job_id.clone())
            .ok_or_else(|| {
                Error::not_found(format!("pod {namespace}/{name} is not on this node"))
            })?;
        let allocs = self.client.job_allocations(&job_id).await?;
        let alloc = status::current_allocation(&allocs).ok_or_else(|| {
            Error::not_found(format!(
                "pod {namespace}/{name} has no Nomad allocation yet"
            ))
        })?;
        if !alloc
            .task_states
            .as_ref()
            .is_some_and(|t| t.contains_key(container))
        {
            return Err(Error::not_found(format!(
                "container {container} of pod {namespace}/{name} has not started in Nomad"
            )));
        }
        Ok(alloc.id.clone())
    }

    fn fail_mapping(&self, pod: &Pod, error: &NomadError) {
        let message = error.to_string();
        self.events.record(
            pod_ref(pod),
            true,
            reasons::PROVIDER_FAILED,
            "Create",
            message.clone(),
        );
        let mut status = status::pod_status(pod, &[], self.host_ip.as_deref());
        status.phase = Some("Failed".to_owned());
        status.reason = Some(reasons::PROVIDER_FAILED.to_owned());
        status.message = Some(message);
        status.conditions = None;
        let key = key_of(pod);
        let mut stored = pod.clone();
        stored.status = None;
        self.lock().insert(
            key,
            Record {
                pod: stored,
                job_id: mapping::job_id(
                    &self.config.job_prefix,
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    pod.metadata.name.as_deref().unwrap_or_default(),
                ),
                job: None,
                status: status.clone(),
                deleting: false,
                seen_allocations: false,
                purging: false,
            },
        );
        let mut pod = pod.clone();
        pod.status = Some(status);
        self.notify(pod);
    }
}

fn key_of(pod: &Pod) -> Key {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Statuses equal up to what the core compares anyway.
fn same_status(a: &PodStatus, b: &PodStatus) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// Exponential backoff with jitter: 0.5 s doubling up to 30 s.
fn backoff(failures: u32) -> Duration {
    use rand::Rng as _;
    let ceiling = Duration::from_millis(500)
        .saturating_mul(1 << failures.saturating_sub(1).min(6))
        .min(Duration::from_secs(30));
    let ms = u64::try_from(ceiling.as_millis()).unwrap_or(30_000);
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}

/// Whether the agent refuses the event stream for good (disabled broker: 404/501, a
/// token without the topics' policy: 403, an old agent: 400).
fn refuses_events(e: &NomadError) -> bool {
    match e {
        NomadError::PermissionDenied { .. } => true,
        NomadError::Api { source, .. } => source
            .status()
            .is_some_and(|s| matches!(s.as_u16(), 400 | 404 | 501)),
        _ => false,
    }
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

#[async_trait]
impl PodLifecycleHandler for NomadProvider {
    async fn create_pod(&self, pod: &Pod) -> Result<()> {
        let job = match mapping::job_for(pod, &self.mapping_context()) {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(error = %e, "pod cannot be mapped to a Nomad job");
                self.fail_mapping(pod, &e);
                return Ok(());
            }
        };
        let existing = self.client.read_job(&job.id).await?;
        let adopt = existing.as_ref().is_some_and(|j| {
            !j.stop && j.meta.as_ref().and_then(|m| m.get(mapping::META_UID)) == Some(&uid_of(pod))
        });
        if adopt {
            self.calls.adoptions.fetch_add(1, Ordering::Relaxed);
            tracing::info!(job = %job.id, "adopted the pod's existing job");
        } else {
            self.client.register_job(&job).await?;
            self.calls.registrations.fetch_add(1, Ordering::Relaxed);
            tracing::info!(job = %job.id, "registered job");
        }
        let key = key_of(pod);
        let mut stored = pod.clone();
        stored.status = None;
        let status = status::pod_status(pod, &[], self.host_ip.as_deref());
        self.lock().insert(
            key.clone(),
            Record {
                pod: stored,
                job_id: job.id.clone(),
                job: Some(job),
                status,
                deleting: false,
                seen_allocations: false,
                purging: false,
            },
        );
        self.refresh_now(&key).await;
        Ok(())
    }

    async fn update_pod(&self, pod: &Pod) -> Result<()> {
        let key = key_of(pod);
        let Some(record) = self.lock().get(&key).cloned() else {
            return Err(Error::not_found(format!(
                "pod {}/{} is not on this node",
                key.0, key.1
            )));
        };
        if record.job.is_none()
            && !record.deleting
            && record.status.reason.as_deref() == Some(reasons::PROVIDER_FAILED)
        {
            return Ok(());
        }
        let job = mapping::job_for(pod, &self.mapping_context())?;
        let groups_changed = record
            .job
            .as_ref()
            .is_none_or(|old| old.task_groups != job.task_groups);
        if groups_changed {
            self.client.register_job(&job).await?;
            self.calls.registrations.fetch_add(1, Ordering::Relaxed);
            tracing::info!(job = %job.id, "re-registered job after a spec change");
        }
        let mut stored = pod.clone();
        stored.status = None;
        if let Some(current) = self.lock().get_mut(&key) {
            current.pod = stored;
            current.job = Some(job);
        }
        Ok(())
    }

    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        let key = key_of(pod);
        let job_id = match self.lock().get(&key) {
            Some(record) => record.job_id.clone(),
            None => mapping::job_id(&self.config.job_prefix, &key.0, &key.1),
        };
        let never_registered = self.lock().get(&key).is_some_and(|r| {
            r.job.is_none() && r.status.reason.as_deref() == Some(reasons::PROVIDER_FAILED)
        });
        if never_registered {
            self.lock().remove(&key);
            return Ok(());
        }
        // Only a job carrying this pod's UID is ours to stop.
        match self.client.read_job(&job_id).await? {
            Some(job)
                if job
                    .meta
                    .as_ref()
                    .and_then(|m| m.get(mapping::META_UID))
                    .map(String::as_str)
                    == pod.metadata.uid.as_deref() =>
            {
                self.client.stop_job(&job_id, false).await?;
                tracing::info!(job = %job_id, "stopped job; purged once its tasks end");
            }
            _ => {
                self.lock().remove(&key);
                return Err(Error::not_found(format!(
                    "no Nomad job for pod {}/{}",
                    key.0, key.1
                )));
            }
        }
        if let Some(record) = self.lock().get_mut(&key) {
            record.deleting = true;
        } else {
            let mut stored = pod.clone();
            stored.status = None;
            self.lock().insert(
                key.clone(),
                Record {
                    status: pod.status.clone().unwrap_or_default(),
                    pod: stored,
                    job_id,
                    job: None,
                    deleting: true,
                    seen_allocations: false,
                    purging: false,
                },
            );
        }
        self.refresh_now(&key).await;
        Ok(())
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Ok(self
            .lock()
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|r| {
                let mut pod = r.pod.clone();
                pod.status = Some(r.status.clone());
                pod
            }))
    }

    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        Ok(self
            .lock()
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|r| r.status.clone()))
    }

    async fn get_pods(&self) -> Result<Vec<Pod>> {
        Ok(self
            .lock()
            .values()
            .map(|r| {
                let mut pod = r.pod.clone();
                pod.status = Some(r.status.clone());
                pod
            })
            .collect())
    }

    fn pod_notifier(&self) -> Option<&dyn PodNotifier> {
        Some(self)
    }

    fn capabilities(self: Arc<Self>) -> vk_core::capabilities::Capabilities {
        vk_core::capabilities::Capabilities::none()
            .with_logs(self.clone())
            .with_exec(self)
    }

    /// The pod's IP before it runs (for `status.podIP` env references): known only
    /// when every allocation gets the same address — host networking on a cluster
    /// with one eligible client node. Otherwise `None` and such references stay empty.
    fn pod_ip_hint(&self, _pod: &Pod) -> Option<IpAddr> {
        self.single_address
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
    }
}

impl PodNotifier for NomadProvider {
    fn notify_pods(&self, sink: PodStatusSink) {
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }
}

/// Starts the watch loop of `provider` (once; later calls do nothing). The binary and
/// the tests call it after building the provider: the core's
/// [`PodNotifier::notify_pods`] only hands over the sink.
pub fn start_watch(provider: &Arc<NomadProvider>) {
    if provider.watching.swap(true, Ordering::Relaxed) {
        return;
    }
    tokio::spawn(provider.clone().run_watch());
}

#[async_trait]
impl NodeProvider for NomadProvider {
    /// Ready while Nomad answers and has a leader (`/v1/status/leader`).
    async fn ping(&self) -> Result<()> {
        let leader = self.client.leader().await?;
        if leader.is_empty() {
            return Err(Error::unavailable(
                "the Nomad cluster has no leader (/v1/status/leader is empty)",
            ));
        }
        Ok(())
    }
}

/// The node capacity from the Nomad cluster's ready, eligible, non-draining client
/// nodes: their CPU (MHz ÷ `cpu_mhz_per_core`) and memory (MB) less what they
/// reserve, 110 pods per node; then the configured overrides.
pub async fn cluster_capacity(
    client: &NomadClient,
    config: &NomadConfig,
) -> std::result::Result<BTreeMap<String, String>, NomadError> {
    let nodes = client.nodes().await?;
    let mut mhz: u64 = 0;
    let mut mb: u64 = 0;
    let mut count: u64 = 0;
    for node in nodes
        .iter()
        .filter(|n| n.status == "ready" && n.scheduling_eligibility == "eligible" && !n.drain)
    {
        if let Some(pool) = &config.node_pool
            && &node.node_pool != pool
        {
            continue;
        }
        count += 1;
        let res = node.node_resources.clone().unwrap_or_default();
        let reserved = node.reserved_resources.clone().unwrap_or_default();
        mhz += res
            .cpu
            .map_or(0, |c| c.cpu_shares)
            .saturating_sub(reserved.cpu.map_or(0, |c| c.cpu_shares));
        mb += res
            .memory
            .map_or(0, |m| m.memory_mb)
            .saturating_sub(reserved.memory.map_or(0, |m| m.memory_mb));
    }
    let millicores = mhz * 1000 / u64::from(config.cpu_mhz_per_core.max(1));
    let mut capacity = BTreeMap::from([
        ("cpu".to_owned(), format!("{millicores}m")),
        ("memory".to_owned(), format!("{mb}Mi")),
        ("pods".to_owned(), (count * 110).max(110).to_string()),
    ]);
    capacity.extend(config.capacity.clone());
    Ok(capacity)
}
