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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use vk_core::events::{EventSink, pod_ref, reasons};
use vk_core::{PodLifecycleHandler, PodNotifier, PodStatusSink};
use vk_errdefs::{Error, Result};

use crate::api::NomadClient;
use crate::api::types::{Allocation, Job};
use crate::config::{Connection, NomadConfig};
use crate::error::NomadError;
use crate::mapping::{self, MappingContext};
use crate::status;

pub(crate) type Key = (String, String);

/// What the provider knows about one pod.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The pod as the core gave it (status stripped).
    pub(crate) pod: Pod,
    /// Its job's ID.
    pub(crate) job_id: String,
    /// The job as registered (to tell real changes on update).
    pub(crate) job: Option<Job>,
    /// The latest status.
    pub(crate) status: PodStatus,
    /// Delete was asked: the job is stopped, and is purged once its tasks ended.
    pub(crate) deleting: bool,
    /// Whether Nomad showed allocations for the job at some point.
    pub(crate) seen_allocations: bool,
    /// The purge is under way (the watch and a delete may both see the end).
    pub(crate) purging: bool,
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
    pub(crate) node_name: String,
    pub(crate) config: NomadConfig,
    pub(crate) connection: Connection,
    pub(crate) client: NomadClient,
    pub(crate) host_ip: Option<String>,
    pub(crate) events: EventSink,
    pub(crate) records: Mutex<HashMap<Key, Record>>,
    pub(crate) sink: Mutex<Option<PodStatusSink>>,
    pub(crate) recovered: AtomicBool,
    pub(crate) watching: AtomicBool,
    pub(crate) calls: Calls,
    /// The address every allocation gets, when there is one (host networking on a
    /// single eligible client node); refreshed by the watch loop.
    pub(crate) single_address: Mutex<(Option<IpAddr>, Option<std::time::Instant>)>,
    /// The allocations last seen, by job ID (kept current by the event stream).
    pub(crate) allocs: Mutex<HashMap<String, HashMap<String, Allocation>>>,
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

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn notify(&self, pod: Pod) {
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(sink) = sink {
            sink.notify(pod);
        }
    }

    pub(crate) fn notify_gone(&self, namespace: &str, name: &str) {
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

pub(crate) fn key_of(pod: &Pod) -> Key {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
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

pub use crate::node::cluster_capacity;
pub use crate::watch::start_watch;
