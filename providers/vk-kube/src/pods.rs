//! The remote pods of one home node, as one label-selected watch sees them.
//!
//! [`RemotePods`] holds the latest version of every remote pod carrying the node's
//! [`NODE_LABEL`](crate::naming::NODE_LABEL); [`watch`] feeds it from a kube-runtime
//! watcher (re-listing after errors with back-off) and reports each change to a
//! [`PodEvents`] handler: applied, or deleted — including pods that vanished while
//! the watch was broken, found by comparing a re-list with what was known.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;

use crate::translate::HomeRef;

/// Remote pods by remote UID.
#[derive(Debug)]
pub struct RemotePods {
    pods: Mutex<HashMap<String, Arc<Pod>>>,
    synced: tokio::sync::watch::Sender<bool>,
}

impl Default for RemotePods {
    fn default() -> Self {
        Self {
            pods: Mutex::new(HashMap::new()),
            synced: tokio::sync::watch::Sender::new(false),
        }
    }
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl RemotePods {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Pod>>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the latest version of `pod`.
    pub fn apply(&self, pod: Pod) -> Arc<Pod> {
        let pod = Arc::new(pod);
        self.lock().insert(uid_of(&pod), pod.clone());
        pod
    }

    /// Records `pod` unless a version of it is already known (a create's answer must not
    /// replace what the watch already delivered).
    pub fn insert_if_absent(&self, pod: Pod) {
        self.lock()
            .entry(uid_of(&pod))
            .or_insert_with(|| Arc::new(pod));
    }

    /// Forgets the pod with remote UID `uid`.
    pub fn remove(&self, uid: &str) -> Option<Arc<Pod>> {
        self.lock().remove(uid)
    }

    /// Every known remote pod.
    pub fn all(&self) -> Vec<Arc<Pod>> {
        self.lock().values().cloned().collect()
    }

    /// The remote pods running home pod `namespace/name` (normally one; two while a
    /// predecessor of the same name terminates), those not being deleted first.
    pub fn for_home(&self, namespace: &str, name: &str) -> Vec<Arc<Pod>> {
        let mut found: Vec<Arc<Pod>> = self
            .lock()
            .values()
            .filter(|p| {
                HomeRef::of_remote(p).is_some_and(|h| h.namespace == namespace && h.name == name)
            })
            .cloned()
            .collect();
        found.sort_by_key(|p| p.metadata.deletion_timestamp.is_some());
        found
    }

    /// The remote pods running the home pod with UID `uid`.
    pub fn for_home_uid(&self, uid: &str) -> Vec<Arc<Pod>> {
        self.lock()
            .values()
            .filter(|p| HomeRef::of_remote(p).is_some_and(|h| h.uid == uid))
            .cloned()
            .collect()
    }

    /// Whether the first complete list has been received.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first complete list has been received, at most `patience`.
    pub async fn wait_synced(&self, patience: Duration) -> bool {
        let mut rx = self.synced.subscribe();
        tokio::time::timeout(patience, rx.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn mark_synced(&self) {
        self.synced.send_replace(true);
    }
}

/// What the watch reports.
pub trait PodEvents: Send + Sync {
    /// `pod` was created or changed.
    fn applied(&self, pod: &Arc<Pod>);
    /// `pod` (its last known version) is gone from the remote cluster.
    fn deleted(&self, pod: &Arc<Pod>);
}

/// Watches the remote pods selected by `selector` into `pods`, reporting changes to
/// `events`, until `stop` is cancelled.
pub async fn watch(
    api: Api<Pod>,
    selector: String,
    pods: Arc<RemotePods>,
    events: Arc<dyn PodEvents>,
    stop: CancellationToken,
) {
    let config = watcher::Config::default().labels(&selector);
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut listed: HashSet<String> = HashSet::new();
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = stream.next() => e,
        };
        let Some(event) = event else { return };
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(pod)) => {
                listed.insert(uid_of(&pod));
                let pod = pods.apply(pod);
                events.applied(&pod);
            }
            Ok(Event::InitDone) => {
                let vanished: Vec<Arc<Pod>> = pods
                    .all()
                    .into_iter()
                    .filter(|p| !listed.contains(&uid_of(p)))
                    .collect();
                for pod in vanished {
                    pods.remove(&uid_of(&pod));
                    events.deleted(&pod);
                }
                listed.clear();
                pods.mark_synced();
            }
            Ok(Event::Apply(pod)) => {
                let pod = pods.apply(pod);
                events.applied(&pod);
            }
            Ok(Event::Delete(pod)) => {
                let last = pods.remove(&uid_of(&pod)).unwrap_or_else(|| Arc::new(pod));
                events.deleted(&last);
            }
            Err(e) => tracing::warn!(error = %e, "watching the remote pods failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KubeProviderConfig;
    use serde_json::json;

    fn remote(ns: &str, name: &str, uid: &str, remote_uid: &str, deleting: bool) -> Pod {
        let home: Pod = serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name, "uid": uid},
            "spec": {"containers": [{"name": "c"}]}
        }))
        .expect("pod");
        let mut pod =
            crate::translate::to_remote(&home, "vk", ns, &KubeProviderConfig::default()).pod;
        pod.metadata.uid = Some(remote_uid.into());
        if deleting {
            pod.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ));
        }
        pod
    }

    #[test]
    fn lookups_by_home_identity() {
        let pods = RemotePods::default();
        pods.apply(remote("a", "web", "old", "r1", true));
        pods.apply(remote("a", "web", "new", "r2", false));
        pods.apply(remote("b", "web", "other", "r3", false));
        let found = pods.for_home("a", "web");
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].metadata.uid.as_deref(),
            Some("r2"),
            "the live one first"
        );
        assert_eq!(pods.for_home_uid("old").len(), 1);
        assert!(pods.for_home("c", "web").is_empty());
        pods.insert_if_absent(remote("b", "web", "changed", "r3", false));
        assert_eq!(pods.for_home_uid("other").len(), 1, "not replaced");
        assert!(pods.remove("r3").is_some());
        assert!(pods.for_home("b", "web").is_empty());
    }

    #[tokio::test]
    async fn sync_is_awaited() {
        let pods = RemotePods::default();
        assert!(!pods.wait_synced(Duration::from_millis(1)).await);
        pods.mark_synced();
        assert!(pods.is_synced());
        assert!(pods.wait_synced(Duration::from_millis(1)).await);
    }
}
