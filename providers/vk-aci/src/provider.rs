//! [`AciProvider`]: the pod lifecycle on container groups, the status poller, logs,
//! exec and the node's health.
//!
//! ## Flow
//!
//! * `create_pod` maps the pod ([`crate::mapping`]), `PUT`s its group and returns once
//!   ARM accepted it; the long-running operation is followed in the background, and a
//!   failure (quota, bad image...) turns the pod `Failed`/`ProviderFailed` with a
//!   Warning event. `update_pod` sends a `PUT` only when the group's body changed (the
//!   [`TAG_SPEC_HASH`](crate::mapping::TAG_SPEC_HASH) tag), so adoption after a restart
//!   sends nothing.
//! * `delete_pod` starts the `DELETE`; when it completes the pod is reported gone.
//! * One poller lists the resource group's groups every interval (**one** call for all
//!   pods, never one per pod) and pushes changed statuses through the [`PodNotifier`];
//!   it slows down when ARM's `x-ms-ratelimit-remaining-subscription-reads` runs low
//!   and backs off on errors.
//! * ARM is eventually consistent: a group just created may be missing from a list, and
//!   one being deleted may still be in it. A pod is reported lost only when its group
//!   has been missing from lists for [`LOST_AFTER`] past its creation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;
use vk_core::bridge::bridge;
use vk_core::capabilities::{
    ByteStream, Capabilities, ContainerExec, ContainerLogs, ExecIo, LogOptions,
};
use vk_core::events::{EventSink, pod_ref};
use vk_core::http::{HttpClient, HttpClientConfig};
use vk_core::logs::{LogLine, lines_from_timestamped_text, log_stream};
use vk_core::{NodeProvider, PodLifecycleHandler, PodNotifier, PodStatusSink, ResourceAccess};
use vk_errdefs::{Error, ErrorKind, Result};

use crate::arm::types::{ContainerGroup, TerminalSize};
use crate::arm::{ArmClient, Operation};
use crate::auth::Secret;
use crate::exec::{AciExecFraming, command_line, split_websocket_uri};
use crate::logs::FollowCursor;
use crate::mapping::{
    MappingContext, PROVIDER_FAILED, VolumeData, group_name, group_status, group_to_pod, owner,
    pod_to_group,
};

/// How long a created group may be missing from lists before its pod is lost.
pub const LOST_AFTER: Duration = Duration::from_secs(60);

/// Remaining ARM reads below which the poller slows down.
pub const LOW_READS: i64 = 1000;

type PodKey = (String, String);

/// How a list call ended: `None` when it succeeded, else the error's kind and message.
type ListOutcome = Option<(ErrorKind, String)>;

fn key_of(pod: &Pod) -> PodKey {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// What the provider knows of one pod.
#[derive(Debug, Clone)]
struct Entry {
    /// The pod as received (or rebuilt at adoption), without status.
    pod: Pod,
    /// Its group's name.
    group: String,
    /// The spec hash of the body last sent (or found).
    spec_hash: Option<String>,
    /// When the group was last `PUT` (or adopted).
    since: Instant,
    /// The status last computed.
    status: Option<PodStatus>,
    /// A failed provisioning operation (code, message).
    failed: Option<String>,
    /// Deleting: ignore lists that still show it.
    deleting: bool,
    /// ACI events already forwarded (name, last timestamp, count).
    seen_events: HashSet<String>,
    /// Whether a list has shown the group.
    seen: bool,
    /// Lists in a row that did not show it.
    misses: u32,
}

/// The provider's settings besides the ARM client.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Mapping settings (node name, region, network...).
    pub mapping: MappingContext,
    /// Poller interval.
    pub poll_interval: Duration,
    /// Poll interval of followed logs.
    pub log_follow_interval: Duration,
    /// Extra CAs for the exec WebSocket (same as ARM's).
    pub ca_pem: Option<Vec<u8>>,
}

/// The vk-aci provider. Clone-free: share it in an `Arc`.
pub struct AciProvider {
    shared: Arc<Shared>,
}

struct Shared {
    arm: ArmClient,
    settings: ProviderSettings,
    resources: Option<ResourceAccess>,
    events: EventSink,
    pods: Mutex<HashMap<PodKey, Entry>>,
    sink: Mutex<Option<PodStatusSink>>,
    poller: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// When the last list call ended, and its failure if it failed.
    last_list: Mutex<Option<(Instant, ListOutcome)>>,
}

impl Drop for AciProvider {
    fn drop(&mut self) {
        if let Some(task) = self.shared.lock_poller().take() {
            task.abort();
        }
    }
}

impl AciProvider {
    /// A provider creating groups through `arm`. `resources` reads the Secrets and
    /// ConfigMaps of volumes and pull secrets (none: such pods fail to map); `events`
    /// records warnings on pods.
    pub fn new(
        arm: ArmClient,
        settings: ProviderSettings,
        resources: Option<ResourceAccess>,
        events: EventSink,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                arm,
                settings,
                resources,
                events,
                pods: Mutex::new(HashMap::new()),
                sink: Mutex::new(None),
                poller: Mutex::new(None),
                last_list: Mutex::new(None),
            }),
        }
    }

    /// The ARM client.
    pub fn arm(&self) -> &ArmClient {
        &self.shared.arm
    }

    /// Lists the groups once and pushes status changes (what the poller does each
    /// interval).
    pub async fn poll_once(&self) -> Result<()> {
        self.shared.poll_once().await
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<PodKey, Entry>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_poller(&self) -> MutexGuard<'_, Option<tokio::task::JoinHandle<()>>> {
        self.poller.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sink(&self) -> Option<PodStatusSink> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn node(&self) -> &str {
        &self.settings.mapping.node_name
    }

    fn pod_with_status(entry: &Entry) -> Pod {
        let mut pod = entry.pod.clone();
        pod.status = entry.status.clone();
        pod
    }

    fn notify(&self, pod: Pod) {
        if let Some(sink) = self.sink() {
            sink.notify(pod);
        }
    }

    fn notify_gone(&self, key: &PodKey) {
        if let Some(sink) = self.sink() {
            sink.notify_gone(&key.0, &key.1);
        }
    }

    fn warn(&self, pod: &Pod, reason: &str, message: impl Into<String>) {
        self.events
            .record(pod_ref(pod), true, reason, "Sync", message);
    }

    async fn volume_data(&self, pod: &Pod) -> Result<VolumeData> {
        let (secrets, config_maps) = VolumeData::references(pod);
        let mut data = VolumeData::default();
        if secrets.is_empty() && config_maps.is_empty() {
            return Ok(data);
        }
        let Some(resources) = &self.resources else {
            return Ok(data);
        };
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        for name in secrets {
            if let Some(s) = resources.secret(&namespace, &name).await? {
                data.secrets.insert(name, s);
            }
        }
        for name in config_maps {
            if let Some(c) = resources.config_map(&namespace, &name).await? {
                data.config_maps.insert(name, c);
            }
        }
        Ok(data)
    }

    /// Maps and `PUT`s `pod`'s group unless an identical body is already there.
    async fn apply(self: &Arc<Self>, pod: &Pod) -> Result<()> {
        let key = key_of(pod);
        let data = self.volume_data(pod).await?;
        let mapped = pod_to_group(pod, &self.settings.mapping, &data).map_err(|e| {
            let kind = if e.missing_reference {
                ErrorKind::Unavailable
            } else {
                ErrorKind::InvalidInput
            };
            Error::new(kind, e.to_string())
        })?;
        let hash = mapped
            .group
            .tags
            .get(crate::mapping::TAG_SPEC_HASH)
            .cloned();
        let unchanged = {
            let mut pods = self.lock();
            match pods.get_mut(&key) {
                Some(entry)
                    if entry.spec_hash.is_some()
                        && entry.spec_hash == hash
                        && entry.pod.metadata.uid == pod.metadata.uid
                        && !entry.deleting =>
                {
                    entry.pod = strip_status(pod);
                    true
                }
                _ => false,
            }
        };
        if unchanged {
            return Ok(());
        }
        for w in &mapped.warnings {
            self.warn(pod, w.reason, w.message.clone());
        }
        let started = self
            .arm
            .begin_create_or_update(&mapped.name, &mapped.group)
            .await;
        let (first, operation) = match started {
            Ok(v) => v,
            Err(e) => {
                if e.is_quota() {
                    self.warn(pod, "QuotaExceeded", e.to_string());
                }
                return Err(e.into());
            }
        };
        let status = group_status(
            &named(first, &mapped.name),
            &pod.spec.clone().unwrap_or_default(),
            pod.metadata.creation_timestamp.as_ref(),
        );
        let entry = Entry {
            pod: strip_status(pod),
            group: mapped.name.clone(),
            spec_hash: hash,
            since: Instant::now(),
            status: Some(status),
            failed: None,
            deleting: false,
            seen_events: HashSet::new(),
            seen: false,
            misses: 0,
        };
        let snapshot = Self::pod_with_status(&entry);
        self.lock().insert(key.clone(), entry);
        self.notify(snapshot);
        if operation != Operation::Done {
            let shared = Arc::clone(self);
            let uid = pod.metadata.uid.clone();
            tokio::spawn(async move { shared.follow_operation(key, uid, operation).await });
        }
        Ok(())
    }

    /// Waits for a `PUT`'s operation; a failure fails the pod.
    async fn follow_operation(&self, key: PodKey, uid: Option<String>, operation: Operation) {
        let Err(e) = self.arm.wait(&operation).await else {
            return;
        };
        let message = if e.is_quota() {
            format!("Azure quota exceeded: {e}")
        } else {
            e.to_string()
        };
        let snapshot = {
            let mut pods = self.lock();
            let Some(entry) = pods.get_mut(&key).filter(|en| en.pod.metadata.uid == uid) else {
                return;
            };
            entry.failed = Some(message.clone());
            let mut status = entry.status.clone().unwrap_or_default();
            status.phase = Some("Failed".into());
            status.reason = Some(PROVIDER_FAILED.into());
            status.message = Some(message.clone());
            entry.status = Some(status);
            Self::pod_with_status(entry)
        };
        let reason = if e.is_quota() {
            "QuotaExceeded"
        } else {
            PROVIDER_FAILED
        };
        self.warn(&snapshot, reason, message);
        self.notify(snapshot);
    }

    /// One list call; statuses of known pods refreshed and pushed when changed; groups
    /// of this node not known yet are adopted.
    async fn poll_once(&self) -> Result<()> {
        let listed = self.arm.list().await.map_err(Error::from);
        *self.last_list.lock().unwrap_or_else(|e| e.into_inner()) = Some((
            Instant::now(),
            listed
                .as_ref()
                .err()
                .map(|e| (e.kind(), e.message().to_string())),
        ));
        let groups = listed?;
        let mut by_name: HashMap<String, ContainerGroup> = HashMap::new();
        for mut g in groups {
            // `name` is documented as always present; fall back on the ID's last part.
            let name = g.name.clone().or_else(|| {
                g.id.as_deref()
                    .and_then(|id| id.rsplit('/').next())
                    .map(str::to_string)
            });
            if let Some(name) = name {
                g.name = Some(name.clone());
                by_name.insert(name, g);
            }
        }
        let mut changed = Vec::new();
        let mut gone = Vec::new();
        let mut events = Vec::new();
        {
            let mut pods = self.lock();
            let now = Instant::now();
            for (key, entry) in pods.iter_mut() {
                if entry.deleting {
                    continue;
                }
                match by_name.remove(&entry.group) {
                    Some(group) => {
                        let tags = owner(&group.tags, self.node());
                        let same_pod = tags
                            .as_ref()
                            .is_some_and(|t| t.uid.is_none() || t.uid == entry.pod.metadata.uid);
                        if !same_pod {
                            continue;
                        }
                        let mut status = group_status(
                            &group,
                            &entry.pod.spec.clone().unwrap_or_default(),
                            entry.pod.metadata.creation_timestamp.as_ref(),
                        );
                        if let Some(message) = &entry.failed {
                            status.phase = Some("Failed".into());
                            status.reason = Some(PROVIDER_FAILED.into());
                            status.message = Some(message.clone());
                        }
                        for event in new_events(&group, &mut entry.seen_events) {
                            events.push((entry.pod.clone(), event));
                        }
                        entry.seen = true;
                        entry.misses = 0;
                        if status_differs(entry.status.as_ref(), &status) {
                            entry.status = Some(status);
                            changed.push(Self::pod_with_status(entry));
                        }
                    }
                    None => {
                        // Seen before and missing from two lists in a row, or never
                        // seen for LOST_AFTER: gone (a group just created may lag).
                        entry.misses += 1;
                        let lost = if entry.seen {
                            entry.misses >= 2
                        } else {
                            now.duration_since(entry.since) >= LOST_AFTER
                        };
                        if lost {
                            gone.push(key.clone());
                        }
                    }
                }
            }
            for key in &gone {
                pods.remove(key);
            }
            // Groups of this node the provider does not know (created before a restart,
            // or behind its back): adopt them.
            for group in by_name.into_values() {
                let Some(tags) = owner(&group.tags, self.node()) else {
                    continue;
                };
                // A group on its way out (deleted by us, or by someone else) is not
                // adopted: lists show it until the deletion completes.
                if group.properties.provisioning_state.as_deref() == Some("Deleting") {
                    continue;
                }
                let key = (tags.namespace.clone(), tags.name.clone());
                if pods.contains_key(&key) {
                    continue;
                }
                let pod = group_to_pod(&group, &tags);
                pods.insert(
                    key,
                    Entry {
                        pod: strip_status(&pod),
                        group: group.name.clone().unwrap_or_default(),
                        spec_hash: tags.spec_hash.clone(),
                        since: now,
                        status: pod.status.clone(),
                        failed: None,
                        deleting: false,
                        seen_events: HashSet::new(),
                        seen: true,
                        misses: 0,
                    },
                );
                changed.push(pod);
            }
        }
        for (pod, (warning, reason, message)) in events {
            self.events
                .record(pod_ref(&pod), warning, &reason, "Observe", message);
        }
        for pod in changed {
            self.notify(pod);
        }
        for key in gone {
            tracing::warn!(namespace = %key.0, pod = %key.1, "container group vanished");
            self.notify_gone(&key);
        }
        Ok(())
    }

    fn start_poller(self: &Arc<Self>) {
        let mut slot = self.lock_poller();
        if slot.is_some() {
            return;
        }
        let weak = Arc::downgrade(self);
        let base = self.settings.poll_interval;
        *slot = Some(tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let Some(shared) = weak.upgrade() else { return };
                let result = shared.poll_once().await;
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "listing container groups failed");
                }
                failures = if result.is_ok() {
                    0
                } else {
                    failures.saturating_add(1)
                };
                let reads = shared.arm.rate_limit().remaining_reads;
                let wait = next_poll_wait(base, reads, failures);
                if wait > base && failures == 0 {
                    tracing::info!(
                        remaining_reads = reads,
                        "ARM reads running low; polling slower"
                    );
                }
                drop(shared);
                tokio::time::sleep(wait).await;
            }
        }));
    }

    fn entry(&self, namespace: &str, name: &str) -> Option<Entry> {
        self.lock()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}

/// The wait before the next list: `base`; four times that while ARM reports fewer
/// than [`LOW_READS`] remaining reads; doubling per consecutive failure (at most
/// two minutes).
pub fn next_poll_wait(base: Duration, remaining_reads: i64, failures: u32) -> Duration {
    if failures > 0 {
        return (base * 2u32.saturating_pow(failures.min(5))).min(Duration::from_secs(120));
    }
    if (0..LOW_READS).contains(&remaining_reads) {
        base * 4
    } else {
        base
    }
}

fn named(mut group: ContainerGroup, name: &str) -> ContainerGroup {
    if group.name.is_none() {
        group.name = Some(name.to_string());
    }
    group
}

fn strip_status(pod: &Pod) -> Pod {
    let mut pod = pod.clone();
    pod.status = None;
    pod
}

/// Whether two statuses differ beyond the conditions' transition times.
fn status_differs(old: Option<&PodStatus>, new: &PodStatus) -> bool {
    let Some(old) = old else { return true };
    let strip = |s: &PodStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
        }
        s
    };
    strip(old) != strip(new)
}

/// ACI events of the group not forwarded yet: (warning, reason, message).
fn new_events(group: &ContainerGroup, seen: &mut HashSet<String>) -> Vec<(bool, String, String)> {
    let group_events = group
        .properties
        .instance_view
        .iter()
        .flat_map(|v| v.events.iter());
    let container_events = group
        .properties
        .containers
        .iter()
        .filter_map(|c| c.properties.instance_view.as_ref())
        .flat_map(|v| v.events.iter());
    let mut out = Vec::new();
    for e in group_events.chain(container_events) {
        let id = format!(
            "{}|{}|{}|{}",
            e.name.as_deref().unwrap_or(""),
            e.last_timestamp.as_deref().unwrap_or(""),
            e.count.unwrap_or(0),
            e.message.as_deref().unwrap_or("")
        );
        if seen.insert(id) {
            out.push((
                e.event_type.as_deref() == Some("Warning"),
                e.name.clone().unwrap_or_else(|| "ACIEvent".into()),
                e.message.clone().unwrap_or_default(),
            ));
        }
    }
    out
}

/// A status with every container terminated (a lost or deleted pod's last word).
pub fn terminated_status(status: Option<&PodStatus>, reason: &str) -> PodStatus {
    let mut status = status.cloned().unwrap_or_default();
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
    for c in status.container_statuses.iter_mut().flatten() {
        if c.state.as_ref().is_some_and(|s| s.terminated.is_some()) {
            continue;
        }
        c.ready = false;
        c.state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 0,
                reason: Some(reason.to_string()),
                finished_at: Some(now.clone()),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        });
    }
    status
}

#[async_trait]
impl PodLifecycleHandler for AciProvider {
    async fn create_pod(&self, pod: &Pod) -> Result<()> {
        self.shared.apply(pod).await
    }

    async fn update_pod(&self, pod: &Pod) -> Result<()> {
        self.shared.apply(pod).await
    }

    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        let key = key_of(pod);
        let group = {
            let mut pods = self.shared.lock();
            match pods.get_mut(&key) {
                Some(entry) => {
                    entry.deleting = true;
                    entry.group.clone()
                }
                None => group_name(self.shared.node(), &key.0, &key.1),
            }
        };
        let operation = match self.shared.arm.begin_delete(&group).await {
            Ok(Some(operation)) => operation,
            Ok(None) => {
                self.shared.lock().remove(&key);
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("container group {group} does not exist"),
                ));
            }
            Err(e) => {
                if let Some(entry) = self.shared.lock().get_mut(&key) {
                    entry.deleting = false;
                }
                return Err(e.into());
            }
        };
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            let result = shared.arm.wait(&operation).await;
            if let Err(e) = &result {
                tracing::warn!(group = %group, error = %e, "deleting the container group failed");
                if let Some(entry) = shared.lock().get_mut(&key) {
                    entry.deleting = false;
                }
                return;
            }
            let last = shared.lock().remove(&key);
            if let Some(entry) = last {
                let mut pod = entry.pod.clone();
                pod.status = Some(terminated_status(entry.status.as_ref(), "Deleted"));
                shared.notify(pod);
            }
            shared.notify_gone(&key);
        });
        Ok(())
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Ok(self
            .shared
            .entry(namespace, name)
            .map(|e| Shared::pod_with_status(&e)))
    }

    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        Ok(self.shared.entry(namespace, name).and_then(|e| e.status))
    }

    /// Lists the resource group (adopting this node's groups) and returns its pods.
    async fn get_pods(&self) -> Result<Vec<Pod>> {
        self.shared.poll_once().await?;
        let pods = self.shared.lock();
        Ok(pods
            .values()
            .filter(|e| !e.deleting)
            .map(Shared::pod_with_status)
            .collect())
    }

    fn pod_notifier(&self) -> Option<&dyn PodNotifier> {
        Some(self)
    }

    fn capabilities(self: Arc<Self>) -> Capabilities {
        Capabilities::none().with_logs(self.clone()).with_exec(self)
    }

    fn keep_secret_env_refs(&self) -> bool {
        true
    }
}

impl PodNotifier for AciProvider {
    fn notify_pods(&self, sink: PodStatusSink) {
        *self.shared.sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
        self.shared.start_poller();
    }
}

#[async_trait]
impl NodeProvider for AciProvider {
    /// Ready only while ARM answers the provider's list call for the resource group:
    /// the poller's last answer when it is recent (three intervals, at least 30 s), so
    /// the health check costs no request of its own; else one list call now.
    async fn ping(&self) -> Result<()> {
        let fresh_for = (self.shared.settings.poll_interval * 3).max(Duration::from_secs(30));
        let last = self
            .shared
            .last_list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < fresh_for)
            .map(|(_, failure)| failure.clone());
        match last {
            Some(None) => Ok(()),
            Some(Some((kind, message))) => Err(Error::new(kind, message)),
            None => self.shared.poll_once().await,
        }
    }
}

#[async_trait]
impl ContainerLogs for AciProvider {
    async fn container_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        options: &LogOptions,
    ) -> Result<ByteStream> {
        if options.previous {
            return Err(Error::new(
                ErrorKind::NotFound,
                "ACI keeps only the current container instance's log (no --previous)",
            ));
        }
        let entry = self.shared.entry(namespace, pod).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("pod {namespace}/{pod} not found"),
            )
        })?;
        let text = self
            .shared
            .arm
            .logs(&entry.group, container, options.tail_lines, true)
            .await?;
        let head = lines_from_timestamped_text(text.as_bytes());
        let follow = options.follow.then(|| {
            let cursor = FollowCursor::after(&head);
            follow_stream(
                Arc::clone(&self.shared),
                (namespace.to_string(), pod.to_string()),
                entry.group.clone(),
                container.to_string(),
                cursor,
            )
        });
        Ok(log_stream(head, follow, options, Timestamp::now()))
    }
}

/// Polls the log and yields lines not seen yet, until the pod is gone.
fn follow_stream(
    shared: Arc<Shared>,
    key: PodKey,
    group: String,
    container: String,
    cursor: FollowCursor,
) -> vk_core::logs::LineStream {
    let interval = shared.settings.log_follow_interval;
    let state = (shared, key, group, container, cursor, Vec::<LogLine>::new());
    Box::pin(
        futures::stream::unfold(state, move |mut st| async move {
            loop {
                if let Some(line) = (!st.5.is_empty()).then(|| st.5.remove(0)) {
                    return Some((Ok(line), st));
                }
                tokio::time::sleep(interval).await;
                let (shared, key, group, container, cursor, queue) = &mut st;
                shared.entry(&key.0, &key.1)?;
                match shared.arm.logs(group, container, None, true).await {
                    Ok(text) => {
                        queue
                            .extend(cursor.new_lines(lines_from_timestamped_text(text.as_bytes())));
                    }
                    Err(e) => tracing::debug!(error = %e, "polling a followed log failed"),
                }
            }
        })
        .fuse(),
    )
}

#[async_trait]
impl ContainerExec for AciProvider {
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: Vec<String>,
        io: ExecIo,
    ) -> Result<i32> {
        let entry = self.shared.entry(namespace, pod).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("pod {namespace}/{pod} not found"),
            )
        })?;
        // ACI fixes the terminal size at the start: take the client's first size if it
        // has already arrived, else 80x24.
        let mut io = io;
        let first = io.resize.as_mut().and_then(|r| r.try_recv().ok());
        let size = io.tty.then(|| match first {
            Some(s) => TerminalSize {
                rows: i32::from(s.height),
                cols: i32::from(s.width),
            },
            None => TerminalSize { rows: 24, cols: 80 },
        });
        let session = self
            .shared
            .arm
            .exec(&entry.group, container, &command_line(&command), size)
            .await?;
        let (base, path) = split_websocket_uri(&session.web_socket_uri).ok_or_else(|| {
            Error::new(
                ErrorKind::Unknown,
                "ACI answered an exec WebSocket URI that is not ws:// or wss://",
            )
        })?;
        let mut config = HttpClientConfig::new(base);
        if let Some(pem) = &self.shared.settings.ca_pem {
            config = config.ca_pem(pem.clone());
        }
        let client = HttpClient::new(config)?;
        let ws = client.get(&path).websocket(&[]).await?;
        let framing = AciExecFraming::new(Secret::new(session.password));
        let code = bridge(ws, framing, io).await?;
        Ok(code.unwrap_or(0))
    }
}

/// The node capacity from the region's usage (`Location_ListUsage`): free cores as
/// `cpu`, free container groups as `pods`, 4 GiB of memory per free core; `None` when
/// the usage does not say.
pub fn capacity_from_usage(
    usages: &[crate::arm::types::Usage],
) -> Option<BTreeMap<String, String>> {
    let free = |name: &str| {
        usages
            .iter()
            .find(|u| u.name.value.as_deref() == Some(name))
            .and_then(|u| Some((u.limit? - u.current_value.unwrap_or(0)).max(0)))
    };
    let cores = free("StandardCores")?;
    let mut capacity = BTreeMap::new();
    capacity.insert("cpu".to_string(), cores.to_string());
    capacity.insert("memory".to_string(), format!("{}Gi", cores * 4));
    capacity.insert(
        "pods".to_string(),
        free("ContainerGroups").unwrap_or(cores).to_string(),
    );
    if let Some(gpus) = free("StandardV100Cores").or(free("StandardK80Cores")) {
        capacity.insert(
            crate::mapping::resources::GPU_RESOURCE.to_string(),
            gpus.to_string(),
        );
    }
    Some(capacity)
}

/// The default capacity when neither the config nor the usage API gives one (as
/// upstream's ACI provider: effectively unbounded, ACI enforces the quota).
pub fn default_capacity() -> BTreeMap<String, String> {
    [
        ("cpu", "10000"),
        ("memory", "4Ti"),
        ("pods", "5000"),
        (crate::mapping::resources::GPU_RESOURCE, "100"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl std::fmt::Debug for AciProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AciProvider")
            .field("node", &self.shared.node())
            .field("pods", &self.shared.lock().len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::types::{Usage, UsageName};

    fn usage(name: &str, current: i64, limit: i64) -> Usage {
        Usage {
            unit: Some("Count".into()),
            current_value: Some(current),
            limit: Some(limit),
            name: UsageName {
                value: Some(name.into()),
                localized_value: None,
            },
        }
    }

    #[test]
    fn capacity_is_the_free_part_of_the_regional_quota() {
        let capacity = capacity_from_usage(&[
            usage("ContainerGroups", 10, 100),
            usage("StandardCores", 4, 10),
        ])
        .expect("capacity");
        assert_eq!(capacity["cpu"], "6");
        assert_eq!(capacity["memory"], "24Gi");
        assert_eq!(capacity["pods"], "90");
        assert!(capacity_from_usage(&[usage("ContainerGroups", 0, 1)]).is_none());
    }

    #[test]
    fn polling_slows_down_when_reads_run_low_and_backs_off_on_failures() {
        let base = Duration::from_secs(5);
        assert_eq!(next_poll_wait(base, -1, 0), base, "no header seen");
        assert_eq!(next_poll_wait(base, 11999, 0), base);
        assert_eq!(next_poll_wait(base, 999, 0), base * 4);
        assert_eq!(next_poll_wait(base, 11999, 1), base * 2);
        assert_eq!(next_poll_wait(base, 11999, 3), base * 8);
        assert_eq!(next_poll_wait(base, 11999, 30), Duration::from_secs(120));
    }

    #[test]
    fn status_changes_ignore_condition_times() {
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
        let mut a = PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![k8s_openapi::api::core::v1::PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(now),
                ..Default::default()
            }]),
            ..PodStatus::default()
        };
        let mut b = a.clone();
        b.conditions.as_mut().expect("c")[0].last_transition_time = None;
        assert!(!status_differs(Some(&a), &b));
        a.phase = Some("Failed".into());
        assert!(status_differs(Some(&a), &b));
        assert!(status_differs(None, &b));
    }

    #[test]
    fn a_lost_pods_containers_end_terminated() {
        let status = PodStatus {
            container_statuses: Some(vec![k8s_openapi::api::core::v1::ContainerStatus {
                name: "c".into(),
                ready: true,
                ..Default::default()
            }]),
            ..PodStatus::default()
        };
        let done = terminated_status(Some(&status), "Deleted");
        let c = &done.container_statuses.expect("cs")[0];
        assert!(!c.ready);
        assert_eq!(
            c.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.reason.as_deref()),
            Some("Deleted")
        );
    }
}
