//! The provider contract for {{name}}: every required method of
//! `vk_core::PodLifecycleHandler` and `vk_core::NodeProvider`.
//!
//! This skeleton keeps pods in memory and reports them `Pending`; replace each `TODO`
//! with calls to your backend.

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use vk_errdefs::{Error, Result};

use crate::config::{{Type}}Config;

/// The {{name}} provider.
#[derive(Debug)]
pub struct {{Type}}Provider {
    config: {{Type}}Config,
    /// Pods by (namespace, name). TODO: the backend is the source of truth; keep only
    /// what you cannot ask it for.
    pods: Mutex<BTreeMap<(String, String), Pod>>,
}

impl {{Type}}Provider {
    /// A provider with `config`.
    pub fn new(config: {{Type}}Config) -> Self {
        Self { config, pods: Mutex::new(BTreeMap::new()) }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &{{Type}}Config {
        &self.config
    }

    fn pods(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<(String, String), Pod>>> {
        self.pods
            .lock()
            .map_err(|_| Error::unknown("the pod table lock is poisoned"))
    }
}

fn key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

#[async_trait::async_trait]
impl vk_core::PodLifecycleHandler for {{Type}}Provider {
    async fn create_pod(&self, pod: &Pod) -> Result<()> {
        // TODO: start the pod in the backend. Its env is already resolved by the core.
        let mut pod = pod.clone();
        pod.status = Some(PodStatus { phase: Some("Pending".into()), ..Default::default() });
        self.pods()?.insert(key(&pod), pod);
        Ok(())
    }

    async fn update_pod(&self, pod: &Pod) -> Result<()> {
        // TODO: apply what may change on a running pod (labels, annotations, images).
        let mut pods = self.pods()?;
        let stored = pods
            .get_mut(&key(pod))
            .ok_or_else(|| Error::not_found(format!("pod {:?}", key(pod))))?;
        stored.metadata = pod.metadata.clone();
        Ok(())
    }

    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        // TODO: stop the pod in the backend (honour the grace period).
        self.pods()?
            .remove(&key(pod))
            .map(|_| ())
            .ok_or_else(|| Error::not_found(format!("pod {:?}", key(pod))))
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Ok(self.pods()?.get(&(namespace.into(), name.into())).cloned())
    }

    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        // TODO: map the backend's state onto phase, conditions and container statuses.
        Ok(self
            .pods()?
            .get(&(namespace.into(), name.into()))
            .and_then(|p| p.status.clone()))
    }

    async fn get_pods(&self) -> Result<Vec<Pod>> {
        Ok(self.pods()?.values().cloned().collect())
    }
}

#[async_trait::async_trait]
impl vk_core::NodeProvider for {{Type}}Provider {
    async fn ping(&self) -> Result<()> {
        // TODO: a cheap call proving the backend is reachable; an error turns the node
        // NotReady (reason ProviderPingFailed) until it succeeds again.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vk_core::PodLifecycleHandler as _;

    fn pod(name: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("default".into());
        pod.metadata.name = Some(name.into());
        pod
    }

    #[tokio::test]
    async fn created_pods_are_listed_until_deleted() {
        let p = {{Type}}Provider::new({{Type}}Config::default());
        p.create_pod(&pod("a")).await.expect("create");
        assert_eq!(p.get_pods().await.expect("list").len(), 1);
        p.delete_pod(&pod("a")).await.expect("delete");
        assert!(p.get_pod("default", "a").await.expect("get").is_none());
        assert!(p.delete_pod(&pod("a")).await.is_err(), "a second delete is NotFound");
    }
}
