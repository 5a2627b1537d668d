//! The watch loop: a full reconcile, then Nomad's event stream (or blocking queries),
//! reconnecting with backoff; see the [provider docs](crate::provider).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::PodStatus;
use vk_core::events::reasons;

use crate::api::types::{Allocation, EventBatch};
use crate::config::Watch;
use crate::error::NomadError;
use crate::provider::{Key, NomadProvider, Record};
use crate::status;

/// How long the event stream may stay silent (Nomad heartbeats every 10 s).
const EVENT_STREAM_IDLE: Duration = Duration::from_secs(45);

impl NomadProvider {
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
    pub(crate) async fn reconcile(&self, allocs: Vec<Allocation>) {
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
    pub(crate) async fn refresh_now(&self, key: &Key) {
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

/// Starts the watch loop of `provider` (once; later calls do nothing). The binary and
/// the tests call it after building the provider: the core's
/// [`vk_core::PodNotifier::notify_pods`] only hands over the sink.
pub fn start_watch(provider: &Arc<NomadProvider>) {
    if provider.watching.swap(true, Ordering::Relaxed) {
        return;
    }
    tokio::spawn(provider.clone().run_watch());
}
