//! The in-memory provider.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, Pod,
    PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use vk_core::compact::Compact;
use vk_core::{NodeProvider, PodLifecycleHandler, PodNotifier, PodStatusSink};
use vk_errdefs::{Error, Result};

use crate::config::Faults;
use crate::ips::IpPool;
use crate::state::StateFileError;

/// Faults that tests switch on and off at run time (on top of the configured ones).
#[derive(Debug, Default)]
pub struct FaultSwitches {
    create: Mutex<Option<String>>,
    ping: Mutex<Option<String>>,
}

/// Counts of calls the provider received (tests assert on them).
#[derive(Debug, Default)]
pub struct CallCounts {
    /// `create_pod` calls (including failed ones).
    pub create: AtomicU64,
    /// `update_pod` calls.
    pub update: AtomicU64,
    /// `delete_pod` calls.
    pub delete: AtomicU64,
}

/// An in-memory provider: pods run at once and stop at once.
///
/// ```
/// use vk_core::PodLifecycleHandler;
/// # tokio_test_block(async {
/// let mock = vk_mock::MockProvider::new("node-1", Default::default());
/// assert!(mock.get_pods().await.unwrap().is_empty());
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub struct MockProvider {
    node_name: String,
    /// Pods as the core sent them, with their status; JSON-encoded to keep memory low
    /// with thousands of pods (see `vk_core::compact`), each with its UID beside it.
    pods: Mutex<HashMap<(String, String), Held>>,
    /// Pod IPs by UID (rebuilt from the state file on start).
    ips: Mutex<IpPool>,
    sink: Mutex<Option<PodStatusSink>>,
    faults: Faults,
    switches: FaultSwitches,
    calls: CallCounts,
    state_file: Option<PathBuf>,
    log_lines: Vec<String>,
    /// Set when pods changed since the state file was last written.
    dirty: std::sync::atomic::AtomicBool,
    host_ip: Mutex<Option<String>>,
    started_at: Timestamp,
}

impl std::fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockProvider")
            .field("node_name", &self.node_name)
            .field("pods", &self.lock_pods().len())
            .finish_non_exhaustive()
    }
}

impl MockProvider {
    /// A provider for node `node_name` with `faults` injected.
    pub fn new(node_name: impl Into<String>, faults: Faults) -> Self {
        Self {
            node_name: node_name.into(),
            pods: Mutex::new(HashMap::new()),
            ips: Mutex::new(IpPool::default()),
            sink: Mutex::new(None),
            faults,
            switches: FaultSwitches::default(),
            calls: CallCounts::default(),
            state_file: None,
            log_lines: crate::config::MockConfig::default().log_lines,
            dirty: std::sync::atomic::AtomicBool::new(false),
            host_ip: Mutex::new(None),
            started_at: Timestamp::now(),
        }
    }

    /// Keeps pods in `path` across restarts, loading what it holds now (one JSON pod
    /// per line, read one line at a time). The pods keep their IPs, and no new pod gets
    /// an IP a stored pod holds.
    ///
    /// # Errors
    ///
    /// A path whose directory is missing or not writable, or a file that is not
    /// readable state.
    pub fn with_state_file(mut self, path: PathBuf) -> std::result::Result<Self, StateFileError> {
        crate::state::check_path(&path)?;
        let pods = crate::state::load(&path)?;
        {
            let mut ips = self.lock_ips();
            let mut map = self.lock_pods();
            for pod in pods {
                let uid = pod.metadata.uid.as_deref().unwrap_or_default();
                let ip = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
                if let Some(ip) = ip
                    && !ips.restore(uid, ip)
                {
                    tracing::warn!(pod = ?key_of(&pod), %ip, "the state file gives this IP to more than one pod");
                }
                map.insert(key_of(&pod), Held::new(&pod));
            }
        }
        self.state_file = Some(path);
        Ok(self)
    }

    /// Sets the lines `kubectl logs` shows for every container.
    pub fn with_log_lines(mut self, lines: Vec<String>) -> Self {
        self.log_lines = lines;
        self
    }

    /// The lines `kubectl logs` shows for every container.
    pub fn log_lines(&self) -> &[String] {
        &self.log_lines
    }

    /// The node this provider serves.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// When this provider instance started.
    pub fn started_at(&self) -> Time {
        Time(self.started_at)
    }

    /// The pods whose phase is Running.
    pub fn running_pods(&self) -> Vec<Pod> {
        let encoded = self.encoded();
        encoded
            .iter()
            .map(Compact::decode)
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .collect()
    }

    /// The IP reported as `hostIP`.
    pub fn set_host_ip(&self, ip: Option<String>) {
        *self.host_ip.lock().unwrap_or_else(|e| e.into_inner()) = ip;
    }

    /// Makes `create_pod` fail with `message` (`Some`) or succeed again (`None`).
    pub fn fail_creates(&self, message: Option<&str>) {
        *self
            .switches
            .create
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = message.map(str::to_owned);
    }

    /// Makes `ping` fail with `message` (`Some`) or succeed again (`None`).
    pub fn fail_pings(&self, message: Option<&str>) {
        *self.switches.ping.lock().unwrap_or_else(|e| e.into_inner()) = message.map(str::to_owned);
    }

    /// What the provider was asked to do.
    pub fn calls(&self) -> &CallCounts {
        &self.calls
    }

    /// The pod as the provider holds it (with the env it received).
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        let encoded = self
            .lock_pods()
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|held| held.pod.clone());
        encoded.map(|c| c.decode())
    }

    /// Removes a pod behind the core's back (as a backend that lost it would), and tells
    /// the core it is gone.
    pub fn lose_pod(&self, namespace: &str, name: &str) {
        let lost = self
            .lock_pods()
            .remove(&(namespace.to_owned(), name.to_owned()));
        if let Some(uid) = lost.and_then(|held| held.uid) {
            self.lock_ips().release(&uid);
        }
        self.persist();
        if let Some(sink) = self.sink() {
            sink.notify_gone(namespace, name);
        }
    }

    /// Adds a pod directly (as if created earlier), without the core knowing.
    pub fn insert_pod(&self, pod: Pod) {
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        if let (Some(uid), Some(ip)) = (pod.metadata.uid.as_deref(), ip) {
            self.lock_ips().restore(uid, ip);
        }
        self.lock_pods().insert(key_of(&pod), Held::new(&pod));
        self.persist();
    }

    fn lock_ips(&self) -> MutexGuard<'_, IpPool> {
        self.ips.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many pods hold (or have reserved) an IP; with [`MockProvider::pod_count`],
    /// shows that nothing is kept for deleted pods.
    pub fn ip_count(&self) -> usize {
        self.lock_ips().len()
    }

    /// How many pods the provider holds.
    pub fn pod_count(&self) -> usize {
        self.lock_pods().len()
    }

    fn lock_pods(&self) -> MutexGuard<'_, HashMap<(String, String), Held>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored encodings, copied out of the lock (shared bytes: cheap).
    fn encoded(&self) -> Vec<Compact<Pod>> {
        self.lock_pods()
            .values()
            .map(|held| held.pod.clone())
            .collect()
    }

    fn sink(&self) -> Option<PodStatusSink> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn inject(&self, operation: &str) -> Result<()> {
        if self.faults.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.faults.latency_ms)).await;
        }
        if self.faults.error_rate > 0.0 && rand::random::<f64>() < self.faults.error_rate {
            return Err(Error::unavailable(format!(
                "mock: injected {operation} failure"
            )));
        }
        Ok(())
    }

    /// The IP of the pod with `uid`, reserved for it if it has none yet.
    fn ip_for(&self, uid: &str) -> Result<Ipv4Addr> {
        let reserved = self.lock_ips().reserve(uid);
        reserved.ok_or_else(|| {
            Error::unavailable(format!(
                "mock: every pod IP is taken (pods hold all {} addresses of 10.244.0.0/16)",
                crate::ips::CAPACITY
            ))
        })
    }

    /// Notes that the state file is behind. Writing it is debounced (see
    /// [`MockProvider::start_state_writer`]): rewriting the whole file on every change
    /// would make bulk creates quadratic.
    fn persist(&self) {
        if self.state_file.is_some() {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Writes the state file now if pods changed since the last write.
    pub fn flush(&self) {
        let Some(path) = &self.state_file else { return };
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        // One JSON pod per line, written from the stored encodings without decoding
        // them into structs (10,000 decoded pods would need ~100 MB for a moment).
        let encoded = self.encoded();
        if let Err(e) = crate::state::write(path, encoded.iter().map(Compact::json)) {
            self.dirty.store(true, Ordering::Release);
            tracing::warn!(path = %path.display(), error = %e, "writing mock state failed");
        }
    }

    /// Starts a background thread that flushes the state file at most once per
    /// `interval` while the provider lives (the provider also flushes when dropped).
    pub fn start_state_writer(self: &Arc<Self>, interval: Duration) {
        if self.state_file.is_none() {
            return;
        }
        let weak = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("vk-mock-state".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(interval);
                    match weak.upgrade() {
                        Some(p) => p.flush(),
                        None => return,
                    }
                }
            });
    }

    fn running_status(&self, pod: &Pod, ip: Ipv4Addr) -> PodStatus {
        let now = Time(Timestamp::now());
        let condition = |type_: &str| PodCondition {
            type_: type_.to_owned(),
            status: "True".to_owned(),
            last_transition_time: Some(now.clone()),
            ..Default::default()
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let container_statuses = spec
            .containers
            .iter()
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                image_id: String::new(),
                container_id: Some(format!("mock://{uid}/{}", c.name)),
                ready: true,
                started: Some(true),
                restart_count: 0,
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(now.clone()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let init_statuses: Vec<ContainerStatus> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                image_id: String::new(),
                container_id: Some(format!("mock://{uid}/{}", c.name)),
                ready: true,
                restart_count: 0,
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 0,
                        reason: Some("Completed".into()),
                        started_at: Some(now.clone()),
                        finished_at: Some(now.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![
                condition("PodScheduled"),
                condition("Initialized"),
                condition("Ready"),
                condition("ContainersReady"),
            ]),
            host_ip: self
                .host_ip
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            pod_ip: Some(ip.to_string()),
            pod_ips: Some(vec![k8s_openapi::api::core::v1::PodIP {
                ip: ip.to_string(),
            }]),
            start_time: Some(now.clone()),
            container_statuses: Some(container_statuses),
            init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
            qos_class: pod.status.as_ref().and_then(|s| s.qos_class.clone()),
            ..Default::default()
        }
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A pod the mock holds: its deflated encoding, and its UID beside it. The core's
/// dangling-pod check asks every node for all its pods' UIDs once a minute; read from
/// the encoding, each meant inflating and parsing the whole pod — at 100,000 pods,
/// about half of an idle 1,000-node process's CPU.
struct Held {
    uid: Option<Box<str>>,
    pod: Compact<Pod>,
}

impl Held {
    fn new(pod: &Pod) -> Self {
        Self {
            uid: pod.metadata.uid.as_deref().map(Box::from),
            pod: Compact::new(pod),
        }
    }
}

fn key_of(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// The status of a pod the provider stopped: containers terminated with exit code 0.
fn stopped_status(mut status: PodStatus) -> PodStatus {
    let now = Time(Timestamp::now());
    status.phase = Some("Succeeded".into());
    status.reason = Some("ProviderPodDeleted".into());
    status.message = None;
    for c in status.container_statuses.iter_mut().flatten() {
        let started = c
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.clone());
        c.ready = false;
        c.started = Some(false);
        c.state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 0,
                reason: Some("Completed".into()),
                message: Some("container stopped by the mock provider".into()),
                started_at: started,
                finished_at: Some(now.clone()),
                container_id: c.container_id.clone(),
                signal: None,
            }),
            ..Default::default()
        });
    }
    for cond in status.conditions.iter_mut().flatten() {
        if cond.type_ == "Ready" || cond.type_ == "ContainersReady" {
            cond.status = "False".into();
            cond.reason = Some("PodCompleted".into());
            cond.last_transition_time = Some(now.clone());
        }
    }
    status
}

#[async_trait]
impl PodLifecycleHandler for MockProvider {
    async fn create_pod(&self, pod: &Pod) -> Result<()> {
        self.calls.create.fetch_add(1, Ordering::Relaxed);
        self.inject("create").await?;
        if let Some(message) = self
            .switches
            .create
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(Error::unavailable(message));
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ip = self.ip_for(&uid)?;
        let mut stored = pod.clone();
        stored.status = Some(self.running_status(pod, ip));
        self.lock_ips().confirm(&uid);
        let replaced = self.lock_pods().insert(key_of(pod), Held::new(&stored));
        if let Some(old_uid) = replaced.and_then(|held| held.uid)
            && *old_uid != *uid
        {
            self.lock_ips().release(&old_uid);
        }
        self.persist();
        if let Some(sink) = self.sink() {
            sink.notify(stored);
        }
        Ok(())
    }

    async fn update_pod(&self, pod: &Pod) -> Result<()> {
        self.calls.update.fetch_add(1, Ordering::Relaxed);
        self.inject("update").await?;
        let updated = {
            let mut pods = self.lock_pods();
            let Some(existing) = pods.get_mut(&key_of(pod)) else {
                return Err(Error::not_found("mock: no such pod"));
            };
            let mut updated = pod.clone();
            updated.status = existing.pod.decode().status;
            *existing = Held::new(&updated);
            updated
        };
        self.persist();
        if let Some(sink) = self.sink() {
            sink.notify(updated);
        }
        Ok(())
    }

    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        self.calls.delete.fetch_add(1, Ordering::Relaxed);
        self.inject("delete").await?;
        let removed = self.lock_pods().remove(&key_of(pod));
        {
            // The stored pod's IP, and any reserved for the pod asked about (its
            // creation may never have succeeded).
            let mut ips = self.lock_ips();
            let uids = [
                removed.as_ref().and_then(|held| held.uid.as_deref()),
                pod.metadata.uid.as_deref(),
            ];
            for uid in uids.into_iter().flatten() {
                ips.release(uid);
            }
        }
        let Some(mut removed) = removed.map(|held| held.pod.decode()) else {
            return Err(Error::not_found("mock: no such pod"));
        };
        self.persist();
        removed.status = Some(stopped_status(removed.status.unwrap_or_default()));
        if let Some(sink) = self.sink() {
            sink.notify(removed);
        }
        Ok(())
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Ok(self.pod(namespace, name))
    }

    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        Ok(self.pod(namespace, name).and_then(|p| p.status))
    }

    async fn get_pods(&self) -> Result<Vec<Pod>> {
        let encoded = self.encoded();
        Ok(encoded.iter().map(Compact::decode).collect())
    }

    async fn visit_pods(&self, visit: &mut (dyn FnMut(Pod) + Send)) -> Result<()> {
        let encoded = self.encoded();
        for c in encoded {
            visit(c.decode());
        }
        Ok(())
    }

    async fn get_pod_refs(&self) -> Result<Vec<vk_core::PodRef>> {
        let pods = self.lock_pods();
        Ok(pods
            .iter()
            .map(|((namespace, name), held)| vk_core::PodRef {
                namespace: namespace.clone(),
                name: name.clone(),
                uid: held.uid.as_deref().map(str::to_owned),
            })
            .collect())
    }

    fn pod_notifier(&self) -> Option<&dyn PodNotifier> {
        Some(self)
    }

    fn capabilities(self: Arc<Self>) -> vk_core::capabilities::Capabilities {
        vk_core::capabilities::Capabilities::all(self)
    }

    fn pod_ip_hint(&self, pod: &Pod) -> Option<IpAddr> {
        pod.metadata
            .uid
            .as_deref()
            .and_then(|uid| self.ip_for(uid).ok())
            .map(IpAddr::V4)
    }
}

impl PodNotifier for MockProvider {
    fn notify_pods(&self, sink: PodStatusSink) {
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }
}

#[async_trait]
impl NodeProvider for MockProvider {
    async fn ping(&self) -> Result<()> {
        match self
            .switches
            .ping
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some(message) => Err(Error::unavailable(message)),
            None => Ok(()),
        }
    }
}

/// A provider shared between the core (as pod handler and node provider) and a test.
pub type SharedMock = Arc<MockProvider>;

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"containers": [{"name": "c", "image": "img"}], "initContainers": [{"name": "i", "image": "img"}]}
        }))
        .expect("pod")
    }

    #[tokio::test]
    async fn pods_run_at_once_and_stop_on_delete() {
        let mock = MockProvider::new("n", Faults::default());
        let p = pod("a");
        let hint = mock.pod_ip_hint(&p).expect("hint");
        mock.create_pod(&p).await.expect("create");
        let status = mock
            .get_pod_status("ns", "a")
            .await
            .expect("status")
            .expect("present");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some(hint.to_string().as_str()));
        assert_eq!(status.container_statuses.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            status.init_container_statuses.as_ref().map(Vec::len),
            Some(1)
        );
        assert_eq!(mock.get_pods().await.expect("list").len(), 1);
        mock.delete_pod(&p).await.expect("delete");
        assert!(mock.get_pod("ns", "a").await.expect("get").is_none());
        let err = mock.delete_pod(&p).await.expect_err("second delete");
        assert!(vk_errdefs::is_not_found(&err));
    }

    /// The refs the dangling-pod check reads carry each pod's UID, the current one when a
    /// pod of the same name was created again under a new UID (and that of a pod loaded
    /// from outside the core).
    #[tokio::test]
    async fn pod_refs_carry_the_current_uids() {
        let mock = MockProvider::new("n", Faults::default());
        mock.create_pod(&pod("a")).await.expect("create a");
        let mut again = pod("a");
        again.metadata.uid = Some("uid-a2".into());
        mock.create_pod(&again).await.expect("create a again");
        mock.insert_pod(pod("b"));
        let mut refs: Vec<(String, Option<String>)> = mock
            .get_pod_refs()
            .await
            .expect("refs")
            .into_iter()
            .map(|r| (r.name, r.uid))
            .collect();
        refs.sort();
        assert_eq!(
            refs,
            [
                ("a".to_owned(), Some("uid-a2".to_owned())),
                ("b".to_owned(), Some("uid-b".to_owned()))
            ]
        );
        mock.delete_pod(&again).await.expect("delete");
        assert_eq!(mock.get_pod_refs().await.expect("refs").len(), 1);
    }

    #[tokio::test]
    async fn ips_are_distinct_and_stable_per_pod() {
        let mock = MockProvider::new("n", Faults::default());
        let a = mock.pod_ip_hint(&pod("a"));
        let b = mock.pod_ip_hint(&pod("b"));
        assert_ne!(a, b);
        assert_eq!(a, mock.pod_ip_hint(&pod("a")));
    }

    #[tokio::test]
    async fn switches_and_error_rate_inject_failures() {
        let mock = MockProvider::new(
            "n",
            Faults {
                error_rate: 1.0,
                latency_ms: 0,
            },
        );
        assert!(vk_errdefs::is_unavailable(
            &mock.create_pod(&pod("a")).await.expect_err("fails")
        ));
        let mock = MockProvider::new("n", Faults::default());
        mock.fail_creates(Some("backend down"));
        let e = mock.create_pod(&pod("a")).await.expect_err("fails");
        assert_eq!(e.to_string(), "backend down");
        mock.fail_creates(None);
        mock.create_pod(&pod("a")).await.expect("heals");
        mock.fail_pings(Some("unreachable"));
        assert!(mock.ping().await.is_err());
        mock.fail_pings(None);
        assert!(mock.ping().await.is_ok());
    }

    #[tokio::test]
    async fn state_file_keeps_pods_across_instances() {
        let path = std::env::temp_dir().join(format!("vk-mock-state-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let first = MockProvider::new("n", Faults::default())
            .with_state_file(path.clone())
            .expect("state");
        first.create_pod(&pod("a")).await.expect("create");
        first.flush();
        let second = MockProvider::new("n", Faults::default())
            .with_state_file(path.clone())
            .expect("state");
        assert!(second.get_pod("ns", "a").await.expect("get").is_some());
        let _ = std::fs::remove_file(&path);
    }

    fn pod_ip(pod: &Pod) -> String {
        pod.status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .expect("a pod IP")
    }

    #[tokio::test]
    async fn ips_stay_distinct_after_a_restart_from_the_state_file() {
        let path =
            std::env::temp_dir().join(format!("vk-mock-state-ips-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let first = MockProvider::new("n", Faults::default())
            .with_state_file(path.clone())
            .expect("state");
        for name in ["a", "b", "c"] {
            first.create_pod(&pod(name)).await.expect("create");
        }
        // The first two go: the file keeps only the pod with the highest IP so far.
        first.delete_pod(&pod("a")).await.expect("delete");
        first.delete_pod(&pod("b")).await.expect("delete");
        let kept = pod_ip(&first.pod("ns", "c").expect("c"));
        drop(first);

        let second = MockProvider::new("n", Faults::default())
            .with_state_file(path.clone())
            .expect("state");
        assert_eq!(second.ip_count(), 1, "the stored pod's IP is taken");
        assert_eq!(
            second.pod_ip_hint(&pod("c")).map(|ip| ip.to_string()),
            Some(kept),
            "a stored pod keeps its IP"
        );
        for name in ["d", "e", "f", "g"] {
            second.create_pod(&pod(name)).await.expect("create");
        }
        let ips: Vec<String> = second
            .get_pods()
            .await
            .expect("list")
            .iter()
            .map(pod_ip)
            .collect();
        let distinct: std::collections::HashSet<&String> = ips.iter().collect();
        assert_eq!(distinct.len(), 5, "an IP was handed out twice: {ips:?}");
        drop(second);
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn create_delete_cycles_leave_nothing_behind() {
        let mock = MockProvider::new("n", Faults::default());
        for cycle in 0..45 {
            let pods: Vec<Pod> = (0..100).map(|i| pod(&format!("p{cycle}-{i}"))).collect();
            for p in &pods {
                // As the core does: the IP hint first (for the environment), then create.
                mock.pod_ip_hint(p).expect("hint");
                mock.create_pod(p).await.expect("create");
            }
            // A pod whose creation failed, deleted before it ever ran.
            mock.fail_creates(Some("backend down"));
            let failed = pod(&format!("failed{cycle}"));
            mock.pod_ip_hint(&failed).expect("hint");
            mock.create_pod(&failed).await.expect_err("fails");
            mock.fail_creates(None);
            assert_eq!(mock.pod_count(), 100);
            for p in pods.iter().chain([&failed]) {
                let _ = mock.delete_pod(p).await;
            }
            assert_eq!((mock.pod_count(), mock.ip_count()), (0, 0), "cycle {cycle}");
        }
    }
}
