//! [`KubeProvider`]: the pod lifecycle of a home node whose pods run remotely.
//!
//! # Flow
//!
//! * `create_pod`: map the namespace (creating it remotely when the mapping says so),
//!   copy the pod's ConfigMaps and Secrets ([`crate::deps`]), create the remote pod
//!   ([`crate::translate::to_remote`]). A remote pod that already exists for the same
//!   home UID counts as created (a retried or repeated create never duplicates).
//! * Status: one watch on the remote pods labelled with this node
//!   ([`crate::pods::watch`]); every change is mapped back
//!   ([`crate::translate::to_home`]) and pushed through the [`PodStatusSink`].
//! * `delete_pod`: delete the remote pod(s) of the home pod's UID with the same grace
//!   period (and a UID precondition); when the remote pod is gone its last status,
//!   with every container terminated, is pushed, and the core removes the home pod.
//! * A remote pod deleted or evicted by someone else: an eviction first shows as a
//!   Failed phase with the remote reason (`Evicted`), pushed like any status; when the
//!   remote pod disappears while its home pod still exists (same UID, not being
//!   deleted), the home pod is reported lost ([`PodStatusSink::notify_gone`]: the core
//!   marks it Failed). It is **not** re-created: the home controller (Deployment,
//!   Job...) replaces it as it would a pod of a failed node, whatever the
//!   restartPolicy — restarting containers is the remote kubelet's job, and a deleted
//!   remote pod was deleted on purpose.
//! * Restart: the core lists the remote pods ([`PodLifecycleHandler::visit_pods`],
//!   after the watch's first complete list) and adopts those whose home UID matches;
//!   remote pods of home pods that no longer exist (or exist with another UID) are
//!   deleted by the core's dangling-pod clean-up through `delete_pod`, exact by UID.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, Namespace, Pod, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client};
use tokio_util::sync::{CancellationToken, DropGuard};
use vk_core::kube_errors::{from_kube, is_not_found};
use vk_core::{
    NodeProvider, NodeStatusSink, PodLifecycleHandler, PodNotifier, PodRef, PodStatusSink,
    ResourceAccess,
};
use vk_errdefs::{Error, Result};

use crate::config::{KubeProviderConfig, NamespaceMapping};
use crate::deps::Dependencies;
use crate::pods::{PodEvents, RemotePods};
use crate::translate::{self, HomeRef};
use crate::{capacity, naming};

/// How long pod listing waits for the remote watch's first complete list.
const SYNC_PATIENCE: Duration = Duration::from_secs(30);

/// The shared state of one home node.
pub(crate) struct Inner {
    pub(crate) node: String,
    pub(crate) config: KubeProviderConfig,
    pub(crate) remote: Client,
    pub(crate) home: ResourceAccess,
    pub(crate) pods: Arc<RemotePods>,
    deps: Dependencies,
    sink: OnceLock<PodStatusSink>,
    /// Home UIDs whose deletion this provider asked for.
    deleting: Mutex<HashSet<String>>,
    /// Remote namespaces known to exist.
    namespaces: Mutex<HashSet<String>>,
    /// Wakes the dependency collection (a remote pod went away).
    collect: tokio::sync::Notify,
    stop: CancellationToken,
}

/// A virtual node whose pods run in another Kubernetes cluster; see the
/// [module documentation](self).
///
/// ```no_run
/// # async fn demo(home: vk_core::ResourceAccess) -> Result<(), Box<dyn std::error::Error>> {
/// let config = vk_kube::KubeProviderConfig {
///     kubeconfig: Some("/etc/vk-kube/remote.kubeconfig".into()),
///     ..Default::default()
/// };
/// let remote = vk_kube::remote::client(&config).await?;
/// let provider = vk_kube::KubeProvider::start("burst-node", config, remote, home);
/// # drop(provider);
/// # Ok(()) }
/// ```
pub struct KubeProvider {
    pub(crate) inner: Arc<Inner>,
    _stop: DropGuard,
}

impl std::fmt::Debug for KubeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeProvider")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl KubeProvider {
    /// Starts the provider of home node `node`: the remote pod watch and the
    /// dependency refresh run until the provider is dropped. Must be called inside a
    /// Tokio runtime.
    pub fn start(
        node: impl Into<String>,
        config: KubeProviderConfig,
        remote: Client,
        home: ResourceAccess,
    ) -> Self {
        let node = node.into();
        let stop = CancellationToken::new();
        let inner = Arc::new(Inner {
            deps: Dependencies::new(remote.clone(), home.clone(), node.clone()),
            node: node.clone(),
            config,
            remote: remote.clone(),
            home,
            pods: Arc::new(RemotePods::default()),
            sink: OnceLock::new(),
            deleting: Mutex::new(HashSet::new()),
            namespaces: Mutex::new(HashSet::new()),
            collect: tokio::sync::Notify::new(),
            stop: stop.clone(),
        });
        let selector = format!("{}={}", naming::NODE_LABEL, naming::node_label_value(&node));
        let events: Arc<dyn PodEvents> = Arc::new(Events(Arc::downgrade(&inner)));
        tokio::spawn(crate::pods::watch(
            Api::all(remote),
            selector,
            inner.pods.clone(),
            events,
            stop.clone(),
        ));
        tokio::spawn(maintain_dependencies(Arc::downgrade(&inner), stop.clone()));
        Self {
            inner,
            _stop: stop.drop_guard(),
        }
    }

    /// The remote pods of this node (the watch's view).
    pub fn remote_pods(&self) -> Vec<Arc<Pod>> {
        self.inner.pods.all()
    }

    /// The remote namespace of home namespace `namespace`.
    pub fn remote_namespace(&self, namespace: &str) -> String {
        self.inner.remote_namespace(namespace)
    }
}

impl Inner {
    pub(crate) fn remote_namespace(&self, namespace: &str) -> String {
        match &self.config.namespace {
            NamespaceMapping::Same => namespace.to_owned(),
            NamespaceMapping::Fixed { name } => name.clone(),
            NamespaceMapping::Prefix { prefix } => naming::prefixed_namespace(prefix, namespace),
        }
    }

    fn lock_deleting(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.deleting.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn ensure_namespace(&self, namespace: &str) -> Result<()> {
        if !self.config.namespace.creates_namespaces()
            || self
                .namespaces
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(namespace)
        {
            return Ok(());
        }
        let api = Api::<Namespace>::all(self.remote.clone());
        let exists = api
            .get_opt(namespace)
            .await
            .map_err(|e| from_kube(&format!("reading remote namespace {namespace}"), e))?
            .is_some();
        if !exists {
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(namespace.to_owned()),
                    labels: Some([(naming::MANAGED_LABEL.to_owned(), "true".to_owned())].into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match api.create(&PostParams::default(), &ns).await {
                Ok(_) => tracing::info!(namespace, "created remote namespace"),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    return Err(from_kube(
                        &format!("creating remote namespace {namespace}"),
                        e,
                    ));
                }
            }
        }
        self.namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(namespace.to_owned());
        Ok(())
    }

    /// The remote pod running `namespace/name` now (the live one first).
    pub(crate) fn current_remote(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods.for_home(namespace, name).into_iter().next()
    }

    fn notify(&self, pod: Pod) {
        if let Some(sink) = self.sink.get() {
            sink.notify(pod);
        }
    }

    /// A remote pod went away: report the deletion's end, or a lost pod.
    async fn remote_pod_gone(&self, pod: Arc<Pod>) {
        self.collect.notify_one();
        let Some(home) = HomeRef::of_remote(&pod) else {
            return;
        };
        if self.lock_deleting().remove(&home.uid) {
            if let Some(view) = translate::to_home(&pod) {
                self.notify(terminated(view));
            }
            return;
        }
        // The watch's re-list may miss a pod created meanwhile: confirm it is gone.
        if let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) {
            match Api::<Pod>::namespaced(self.remote.clone(), ns)
                .get_opt(name)
                .await
            {
                Ok(Some(live)) if live.metadata.uid == pod.metadata.uid => {
                    self.pods.apply(live);
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "checking a vanished remote pod failed");
                    return;
                }
            }
        }
        let live = match self.home.pod(&home.namespace, &home.name).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(namespace = %home.namespace, pod = %home.name, error = %e, "reading the home pod of a vanished remote pod failed");
                return;
            }
        };
        let Some(live) = live else { return };
        if live.metadata.uid.as_deref() != Some(home.uid.as_str()) {
            return;
        }
        if live.metadata.deletion_timestamp.is_some() {
            if let Some(view) = translate::to_home(&pod) {
                self.notify(terminated(view));
            }
            return;
        }
        if !self.pods.for_home_uid(&home.uid).is_empty() {
            return;
        }
        tracing::warn!(namespace = %home.namespace, pod = %home.name, "the remote pod was deleted behind the provider's back; reporting the pod lost");
        if let Some(sink) = self.sink.get() {
            sink.notify_gone(&home.namespace, &home.name);
        }
    }
}

/// `view` with every container terminated and a terminal phase (Succeeded when every
/// container exited 0), as pushed once the remote pod is gone.
fn terminated(mut view: Pod) -> Pod {
    let mut status = view.status.take().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut all_zero = true;
    for c in status.container_statuses.iter_mut().flatten() {
        let done = c.state.as_ref().and_then(|s| s.terminated.as_ref());
        match done {
            Some(t) => all_zero &= t.exit_code == 0,
            None => {
                let started = c
                    .state
                    .as_ref()
                    .and_then(|s| s.running.as_ref())
                    .and_then(|r| r.started_at.clone());
                c.state = Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 0,
                        reason: Some("Completed".into()),
                        message: Some("the remote pod was deleted".into()),
                        started_at: started,
                        finished_at: Some(now.clone()),
                        container_id: c.container_id.clone(),
                        signal: None,
                    }),
                    ..Default::default()
                });
            }
        }
        c.ready = false;
        c.started = Some(false);
    }
    let phase = status.phase.as_deref();
    if !matches!(phase, Some("Succeeded" | "Failed")) {
        status.phase = Some(if all_zero { "Succeeded" } else { "Failed" }.into());
    }
    for cond in status.conditions.iter_mut().flatten() {
        if cond.type_ == "Ready" || cond.type_ == "ContainersReady" {
            cond.status = "False".into();
            cond.reason = Some("PodCompleted".into());
        }
    }
    view.status = Some(status);
    view
}

/// Forwards the watch's reports to the provider (without keeping it alive).
struct Events(std::sync::Weak<Inner>);

impl PodEvents for Events {
    fn applied(&self, pod: &Arc<Pod>) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        if let Some(view) = translate::to_home(pod) {
            inner.notify(view);
        }
    }

    fn deleted(&self, pod: &Arc<Pod>) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let pod = pod.clone();
        tokio::spawn(async move { inner.remote_pod_gone(pod).await });
    }
}

/// Refreshes copies periodically and collects unreferenced ones (also when woken).
async fn maintain_dependencies(inner: std::sync::Weak<Inner>, stop: CancellationToken) {
    let period = match inner.upgrade() {
        Some(i) => i.config.dependency_refresh(),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let woken = {
            let Some(i) = inner.upgrade() else { return };
            let collect = async move { i.collect.notified().await };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => false,
                _ = collect => true,
            }
        };
        let Some(i) = inner.upgrade() else { return };
        if !i.pods.is_synced() {
            continue;
        }
        if !woken {
            let pods = i.pods.all();
            match i.deps.refresh(&pods).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(copies = n, "updated copied configmaps/secrets"),
                Err(e) => tracing::warn!(error = %e, "refreshing copied configmaps/secrets failed"),
            }
        }
        match i.deps.collect_garbage().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(copies = n, "deleted unreferenced copies"),
            Err(e) => tracing::warn!(error = %e, "collecting unreferenced copies failed"),
        }
    }
}

#[async_trait]
impl PodLifecycleHandler for KubeProvider {
    async fn create_pod(&self, pod: &Pod) -> Result<()> {
        let inner = &self.inner;
        let home_namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let remote_namespace = inner.remote_namespace(&home_namespace);
        inner.ensure_namespace(&remote_namespace).await?;
        let mut plan = translate::to_remote(pod, &inner.node, &remote_namespace, &inner.config);
        // The pod as the API has it: its IP fieldRefs are left to the remote kubelet.
        let name = pod.metadata.name.clone().unwrap_or_default();
        match inner.home.pod(&home_namespace, &name).await {
            Ok(Some(original)) => {
                if let (Some(remote), Some(original)) = (plan.pod.spec.as_mut(), &original.spec) {
                    translate::restore_remote_field_refs(remote, original);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(pod = %name, error = %e, "reading the home pod's original environment failed; IP variables keep their home values")
            }
        }
        let _hold = inner.deps.hold().await;
        inner
            .deps
            .sync(&home_namespace, &remote_namespace, &plan.dependencies)
            .await?;
        let api = Api::<Pod>::namespaced(inner.remote.clone(), &remote_namespace);
        match api.create(&PostParams::default(), &plan.pod).await {
            Ok(created) => {
                inner.pods.insert_if_absent(created);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let name = plan.pod.metadata.name.clone().unwrap_or_default();
                let existing = api
                    .get_opt(&name)
                    .await
                    .map_err(|e| from_kube(&format!("reading remote pod {name}"), e))?;
                match existing.as_ref().and_then(HomeRef::of_remote) {
                    Some(home) if home.uid == uid => Ok(()),
                    _ => Err(Error::already_exists(format!(
                        "remote pod {remote_namespace}/{name} exists and belongs to another pod"
                    ))),
                }
            }
            Err(e) => Err(from_kube(
                &format!("creating remote pod in {remote_namespace}"),
                e,
            )),
        }
    }

    async fn update_pod(&self, pod: &Pod) -> Result<()> {
        let inner = &self.inner;
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let Some(current) = inner.pods.for_home_uid(&uid).into_iter().next() else {
            return Err(Error::not_found(format!(
                "no remote pod for {namespace}/{name}"
            )));
        };
        let (labels, annotations) = translate::remote_metadata(pod, &inner.node);
        // Keys that are no longer wanted are removed (null in a merge patch); vk-kube's
        // own are kept.
        let removed = |now: &Option<std::collections::BTreeMap<String, String>>,
                       wanted: &std::collections::BTreeMap<String, String>| {
            let mut out = serde_json::Map::new();
            for (k, v) in wanted {
                out.insert(k.clone(), v.clone().into());
            }
            for k in now.iter().flatten().map(|(k, _)| k) {
                if !wanted.contains_key(k) && !translate::is_own_key(k) {
                    out.insert(k.clone(), serde_json::Value::Null);
                }
            }
            out
        };
        let containers: Vec<serde_json::Value> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(|c| serde_json::json!({"name": c.name, "image": c.image}))
            .collect();
        let patch = serde_json::json!({
            "metadata": {
                "labels": removed(&current.metadata.labels, &labels),
                "annotations": removed(&current.metadata.annotations, &annotations),
            },
            "spec": {
                "activeDeadlineSeconds": pod.spec.as_ref().and_then(|s| s.active_deadline_seconds),
                "containers": containers,
            }
        });
        let remote_ns = current.metadata.namespace.clone().unwrap_or_default();
        let remote_name = current.metadata.name.clone().unwrap_or_default();
        let patched = Api::<Pod>::namespaced(inner.remote.clone(), &remote_ns)
            .patch(
                &remote_name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
            .map_err(|e| from_kube(&format!("updating remote pod {remote_name}"), e))?;
        inner.pods.apply(patched);
        Ok(())
    }

    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        let inner = &self.inner;
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .and_then(|g| u32::try_from(g).ok());
        let mut targets: Vec<(String, String, Option<String>)> = inner
            .pods
            .for_home_uid(&uid)
            .iter()
            .map(|p| {
                (
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default(),
                    p.metadata.uid.clone(),
                )
            })
            .collect();
        if targets.is_empty() {
            // Not seen (yet): its name is derived from the home UID, so deleting by name
            // is still exact.
            targets.push((
                inner.remote_namespace(&namespace),
                naming::remote_pod_name(&namespace, &name, &uid),
                None,
            ));
        }
        inner.lock_deleting().insert(uid.clone());
        let mut deleted = 0;
        for (remote_ns, remote_name, remote_uid) in targets {
            let dp = DeleteParams {
                grace_period_seconds: grace,
                preconditions: remote_uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match Api::<Pod>::namespaced(inner.remote.clone(), &remote_ns)
                .delete(&remote_name, &dp)
                .await
            {
                Ok(_) => deleted += 1,
                Err(e) if is_not_found(&e) => {
                    if let Some(gone) = remote_uid.and_then(|u| inner.pods.remove(&u)) {
                        inner.lock_deleting().insert(uid.clone());
                        inner.remote_pod_gone(gone).await;
                    }
                }
                Err(e) => {
                    return Err(from_kube(
                        &format!("deleting remote pod {remote_ns}/{remote_name}"),
                        e,
                    ));
                }
            }
        }
        if deleted == 0 {
            inner.lock_deleting().remove(&uid);
            return Err(Error::not_found(format!(
                "no remote pod for {namespace}/{name}"
            )));
        }
        Ok(())
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Ok(self
            .inner
            .current_remote(namespace, name)
            .and_then(|p| translate::to_home(&p)))
    }

    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        Ok(self.get_pod(namespace, name).await?.and_then(|p| p.status))
    }

    async fn get_pods(&self) -> Result<Vec<Pod>> {
        if !self.inner.pods.wait_synced(SYNC_PATIENCE).await {
            return Err(Error::unavailable(
                "the remote pods have not been listed yet (is the remote cluster reachable?)",
            ));
        }
        Ok(self
            .inner
            .pods
            .all()
            .iter()
            .filter_map(|p| translate::to_home(p))
            .collect())
    }

    async fn get_pod_refs(&self) -> Result<Vec<PodRef>> {
        Ok(self.get_pods().await?.iter().map(PodRef::of).collect())
    }

    fn pod_notifier(&self) -> Option<&dyn PodNotifier> {
        Some(self)
    }

    fn capabilities(self: Arc<Self>) -> vk_core::capabilities::Capabilities {
        crate::streams::capabilities(&self)
    }
}

impl PodNotifier for KubeProvider {
    fn notify_pods(&self, sink: PodStatusSink) {
        let _ = self.inner.sink.set(sink.clone());
        for pod in self.inner.pods.all() {
            if let Some(view) = translate::to_home(&pod) {
                sink.notify(view);
            }
        }
    }
}

#[async_trait]
impl NodeProvider for KubeProvider {
    /// Healthy when the remote API server answers `/version` within
    /// `ping_timeout_seconds`; otherwise the home node turns NotReady (reason
    /// `ProviderPingFailed`, this error as the message) until it answers again.
    async fn ping(&self) -> Result<()> {
        let inner = &self.inner;
        let cluster = &inner.config.cluster_name;
        match tokio::time::timeout(
            inner.config.ping_timeout(),
            inner.remote.apiserver_version(),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::unavailable(format!(
                "remote cluster {cluster} unreachable: {e}"
            ))),
            Err(_) => Err(Error::unavailable(format!(
                "remote cluster {cluster} did not answer within {:?}",
                inner.config.ping_timeout()
            ))),
        }
    }

    fn notify_node_status(&self, sink: NodeStatusSink) {
        tokio::spawn(push_capacity(
            Arc::downgrade(&self.inner),
            sink,
            self.inner.stop.clone(),
        ));
    }
}

/// Pushes the remote capacity to the home node every `capacity_refresh_seconds` when
/// it changed.
async fn push_capacity(
    inner: std::sync::Weak<Inner>,
    sink: NodeStatusSink,
    stop: CancellationToken,
) {
    let period = match inner.upgrade() {
        Some(i) => i.config.capacity_refresh(),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(i) = inner.upgrade() else { return };
        match capacity::read(&i.remote).await {
            Ok(c) if last.as_ref() != Some(&c) => {
                let node = k8s_openapi::api::core::v1::Node {
                    status: Some(k8s_openapi::api::core::v1::NodeStatus {
                        capacity: Some(capacity::RemoteCapacity::api_quantities(&c.capacity)),
                        allocatable: Some(capacity::RemoteCapacity::api_quantities(&c.allocatable)),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                sink.notify(node);
                last = Some(c);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the remote capacity failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terminated_view_stops_every_container() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                     "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}},
                    {"name": "b", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                     "state": {"terminated": {"exitCode": 3}}}]}
        }))
        .expect("pod");
        let status = terminated(pod).status.expect("status");
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let a = &status.container_statuses.as_ref().expect("cs")[0];
        assert!(!a.ready);
        let t = a
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("terminated");
        assert_eq!(t.exit_code, 0);
        assert!(t.started_at.is_some());
        assert_eq!(status.conditions.expect("conds")[0].status, "False");
    }

    #[test]
    fn terminated_view_with_clean_exits_succeeds() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"running": {}}}]}
        }))
        .expect("pod");
        assert_eq!(
            terminated(pod).status.and_then(|s| s.phase).as_deref(),
            Some("Succeeded")
        );
    }
}
