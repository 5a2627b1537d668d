//! [`ProcessProvider`]: the pod lifecycle on top of [`crate::supervisor`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use vk_core::{NodeProvider, PodLifecycleHandler, PodNotifier, PodStatusSink};
use vk_errdefs::{Error, Result};

use crate::config::ProcessConfig;
use crate::incluster::{ApiServer, TokenSource};
use crate::instance::Launcher;
use crate::layout::{PodDir, pods_dir};
use crate::lifecycle::Backoff;
use crate::read_cache::ReadCache;
use crate::shim::{read_json, write_json};
use crate::supervisor::{Context, PodRuntime, Publisher, run_pod};
use crate::volumes::Materialiser;
use crate::{launch, limits};
use vk_core::env::EnvSource;

type Key = (String, String);

/// Forwards status changes to the core once it has connected a sink.
#[derive(Default)]
struct SinkPublisher {
    sink: Mutex<Option<PodStatusSink>>,
}

impl Publisher for SinkPublisher {
    fn publish(&self, pod: Pod) {
        tracing::debug!(
            pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default()),
            phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default(),
            "status published"
        );
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(sink) = sink {
            sink.notify(pod);
        }
    }
}

/// Runs pods as local processes. See the crate docs for what it does and how.
pub struct ProcessProvider {
    node_name: String,
    config: ProcessConfig,
    host_ip: String,
    source: Arc<dyn EnvSource>,
    tokens: Option<Arc<dyn TokenSource>>,
    api_server: Option<ApiServer>,
    publisher: Arc<SinkPublisher>,
    launcher: Arc<Launcher>,
    backoff: Backoff,
    pods: Mutex<HashMap<Key, Arc<PodRuntime>>>,
    pub(crate) usage: Mutex<crate::stats::Samples>,
    started_at: k8s_openapi::jiff::Timestamp,
    events: vk_core::events::EventSink,
}

/// Reason of the Warning event recorded once per pod whose CPU/memory limits cannot be
/// enforced on this machine.
pub const LIMITS_NOT_ENFORCED: &str = "ResourceLimitsNotEnforced";

impl std::fmt::Debug for ProcessProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessProvider")
            .field("node_name", &self.node_name)
            .field("state_dir", &self.config.state_dir)
            .finish_non_exhaustive()
    }
}

fn key_of(pod: &Pod) -> Key {
    (
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

impl ProcessProvider {
    /// A provider for node `node_name` running `shim` (the `vk-process` binary) for
    /// each container, reading ConfigMaps and Secrets from `source` (reads of the same
    /// object within a second are shared, see [`ReadCache`]). Pods are reported with
    /// `host_ip` as their IP (processes share the host's network).
    pub fn new(
        node_name: impl Into<String>,
        config: ProcessConfig,
        shim: std::path::PathBuf,
        source: Arc<dyn EnvSource>,
        host_ip: impl Into<String>,
    ) -> Self {
        let launcher = Launcher {
            shim,
            images: config.images.clone(),
            cgroup_parent: config.cgroup_parent.clone(),
        };
        Self {
            node_name: node_name.into(),
            host_ip: host_ip.into(),
            source: Arc::new(ReadCache::new(source)),
            tokens: None,
            api_server: None,
            publisher: Arc::new(SinkPublisher::default()),
            launcher: Arc::new(launcher),
            backoff: Backoff::default(),
            pods: Mutex::new(HashMap::new()),
            usage: Mutex::new(crate::stats::Samples::default()),
            started_at: k8s_openapi::jiff::Timestamp::now(),
            events: vk_core::events::EventSink::disabled(),
            config,
        }
    }

    /// Records this provider's Kubernetes events (e.g. limits not enforced) through
    /// `events` (by default they are only logged).
    pub fn with_events(mut self, events: vk_core::events::EventSink) -> Self {
        self.events = events;
        self
    }

    /// Issues ServiceAccount tokens for projected `serviceAccountToken` volume sources
    /// through `tokens` (by default those sources are left out). See
    /// [`crate::incluster`].
    pub fn with_tokens(mut self, tokens: Arc<dyn TokenSource>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Gives pods `api_server` as `KUBERNETES_SERVICE_HOST`/`PORT` instead of the
    /// `kubernetes` Service's ClusterIP, which host processes cannot reach. See
    /// [`crate::incluster`].
    pub fn with_api_server(mut self, api_server: ApiServer) -> Self {
        self.api_server = Some(api_server);
        self
    }

    /// The pod as vk-process keeps and runs it: without status, and with the API
    /// server address of [`ProcessProvider::with_api_server`].
    fn prepared(&self, pod: &Pod) -> Pod {
        let mut stored = pod.clone();
        stored.status = None;
        if let Some(api_server) = &self.api_server {
            api_server.apply(&mut stored);
        }
        stored
    }

    /// Uses `backoff` for crash loops instead of the kubelet's (tests use short ones).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The node this provider serves.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// When this provider instance started.
    pub fn started_at(&self) -> k8s_openapi::jiff::Timestamp {
        self.started_at
    }

    fn context(&self) -> Context {
        Context {
            launcher: self.launcher.clone(),
            source: self.source.clone(),
            tokens: self.tokens.clone(),
            publisher: self.publisher.clone(),
            volume_refresh: self.config.volume_refresh(),
            backoff: self.backoff,
        }
    }

    fn lock_pods(&self) -> MutexGuard<'_, HashMap<Key, Arc<PodRuntime>>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The runtime of pod `namespace/name`.
    pub fn runtime(&self, namespace: &str, name: &str) -> Option<Arc<PodRuntime>> {
        self.lock_pods()
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every pod runtime.
    pub fn runtimes(&self) -> Vec<Arc<PodRuntime>> {
        self.lock_pods().values().cloned().collect()
    }

    /// Adopts the pods an earlier provider process left in the state directory: their
    /// still-running processes keep running (same PIDs) and are supervised again.
    /// Call once, before the provider is handed to the core. Returns how many pods.
    pub fn recover(self: &Arc<Self>) -> usize {
        let Ok(entries) = std::fs::read_dir(pods_dir(&self.config.state_dir)) else {
            return 0;
        };
        let mut n = 0;
        for entry in entries.flatten() {
            let dir = PodDir::at(entry.path());
            let Some(pod) = read_json::<Pod>(&dir.pod_json()) else {
                tracing::warn!(dir = %entry.path().display(), "no readable pod.json; removing");
                let _ = std::fs::remove_dir_all(entry.path());
                continue;
            };
            let status = read_json::<PodStatus>(&dir.status_json());
            let rt = Arc::new(PodRuntime::new(pod.clone(), dir, status, &self.host_ip));
            self.lock_pods().insert(key_of(&pod), rt.clone());
            self.spawn(rt);
            n += 1;
        }
        n
    }

    fn spawn(self: &Arc<Self>, rt: Arc<PodRuntime>) {
        tokio::spawn(run_pod(self.context(), rt.clone()));
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            rt.finished().await;
            let pod = rt.pod();
            if let Some(me) = me.upgrade() {
                let mut pods = me.lock_pods();
                if pods.get(&key_of(&pod)).is_some_and(|r| Arc::ptr_eq(r, &rt)) {
                    pods.remove(&key_of(&pod));
                }
            }
            let _ = std::fs::remove_dir_all(rt.dir().path());
            if let Some(uid) = &pod.metadata.uid {
                let _ =
                    std::fs::remove_dir_all(std::path::Path::new("/dev/shm/vk-process").join(uid));
            }
        });
    }

    /// Creates a pod (what [`PodLifecycleHandler::create_pod`] does, on an `Arc`).
    async fn create(self: &Arc<Self>, pod: &Pod) -> Result<()> {
        let key = key_of(pod);
        tracing::debug!(pod = %format!("{}/{}", key.0, key.1), "create: received");
        if let Some(existing) = self.lock_pods().get(&key) {
            return if existing.pod().metadata.uid == pod.metadata.uid {
                Ok(())
            } else {
                Err(Error::unavailable(format!(
                    "an earlier pod {}/{} is still stopping",
                    key.0, key.1
                )))
            };
        }
        for c in launch::all_containers(pod) {
            launch::argv(c, &self.config.images)?;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dir = PodDir::new(&self.config.state_dir, &key.0, &key.1, &uid);
        std::fs::create_dir_all(dir.root()).map_err(|e| {
            Error::wrap(
                vk_errdefs::ErrorKind::Unavailable,
                format!("creating {}: {e}", dir.root().display()),
                e,
            )
        })?;
        let stored = self.prepared(pod);
        let materialised = Materialiser {
            pod: &stored,
            dir: &dir,
            source: self.source.as_ref(),
            tokens: self.tokens.as_deref(),
        }
        .create()
        .await;
        if let Err(e) = materialised {
            let _ = std::fs::remove_dir_all(dir.path());
            return Err(e.into());
        }
        tracing::debug!(pod = %format!("{}/{}", key.0, key.1), "create: volumes ready");
        write_json(&dir.pod_json(), &stored).map_err(|e| {
            Error::wrap(
                vk_errdefs::ErrorKind::Unavailable,
                format!("writing {}: {e}", dir.pod_json().display()),
                e,
            )
        })?;
        if launch::all_containers(pod)
            .iter()
            .any(|c| limits::has_limits(c))
            && let Err(why) = limits::check_parent(self.config.cgroup_parent.as_deref())
        {
            tracing::warn!(pod = %format!("{}/{}", key.0, key.1), "resource limits are not enforced: {why}");
            self.events.record(
                vk_core::events::pod_ref(pod),
                true,
                LIMITS_NOT_ENFORCED,
                "Create",
                format!("CPU and memory limits of this pod are not enforced: {why}"),
            );
        }
        let rt = Arc::new(PodRuntime::new(stored, dir, None, &self.host_ip));
        self.lock_pods().insert(key, rt.clone());
        self.spawn(rt);
        Ok(())
    }
}

/// The provider as the core holds it: an `Arc`, because pods run in tasks that outlive
/// each call.
#[derive(Debug, Clone)]
pub struct SharedProvider(pub Arc<ProcessProvider>);

impl std::ops::Deref for SharedProvider {
    type Target = ProcessProvider;
    fn deref(&self) -> &ProcessProvider {
        &self.0
    }
}

#[async_trait]
impl PodLifecycleHandler for SharedProvider {
    async fn create_pod(&self, pod: &Pod) -> Result<()> {
        self.0.create(pod).await
    }

    async fn update_pod(&self, pod: &Pod) -> Result<()> {
        let Some(rt) = self.runtime(&key_of(pod).0, &key_of(pod).1) else {
            return Err(Error::not_found("vk-process: no such pod"));
        };
        rt.set_pod(self.prepared(pod));
        Ok(())
    }

    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        let (ns, name) = key_of(pod);
        let Some(rt) = self.runtime(&ns, &name) else {
            return Err(Error::not_found("vk-process: no such pod"));
        };
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or(pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds))
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(30);
        rt.request_stop(Duration::from_secs(grace));
        Ok(())
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Ok(self.runtime(namespace, name).map(|rt| rt.pod_with_status()))
    }

    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        Ok(self.runtime(namespace, name).map(|rt| rt.status()))
    }

    async fn get_pods(&self) -> Result<Vec<Pod>> {
        Ok(self
            .runtimes()
            .iter()
            .map(|rt| rt.pod_with_status())
            .collect())
    }

    fn pod_notifier(&self) -> Option<&dyn PodNotifier> {
        Some(self)
    }

    fn capabilities(self: Arc<Self>) -> vk_core::capabilities::Capabilities {
        vk_core::capabilities::Capabilities::all(self)
    }

    fn pod_ip_hint(&self, _pod: &Pod) -> Option<std::net::IpAddr> {
        self.host_ip.parse().ok()
    }
}

impl PodNotifier for SharedProvider {
    fn notify_pods(&self, sink: PodStatusSink) {
        *self
            .publisher
            .sink
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(sink);
        for rt in self.runtimes() {
            self.publisher.publish(rt.pod_with_status());
        }
    }
}

#[async_trait]
impl NodeProvider for SharedProvider {
    async fn ping(&self) -> Result<()> {
        std::fs::create_dir_all(&self.config.state_dir).map_err(|e| {
            Error::wrap(
                vk_errdefs::ErrorKind::Unavailable,
                format!(
                    "state dir {} is not writable: {e}",
                    self.config.state_dir.display()
                ),
                e,
            )
        })
    }
}
