//! Read-only access to cluster objects for providers and for env resolution.
//!
//! Providers never talk to the API server themselves; they get a [`ResourceAccess`]
//! and read what a pod references. ConfigMaps and Secrets are read on demand (one GET
//! per reference per resolution) instead of being mirrored cluster-wide, so memory does
//! not grow with the number of them in the cluster. Services, needed for every pod's
//! service-link variables, come from a shared watch cache when one is running.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, Service, ServiceAccount};
use kube::api::{ListParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

use crate::env::EnvSource;
use crate::kube_errors::from_kube;

/// Read-only view of the cluster objects a provider may need; cheap to clone.
#[derive(Clone)]
pub struct ResourceAccess {
    client: Client,
    node_name: String,
    services: Arc<OnceLock<Store<Service>>>,
}

impl std::fmt::Debug for ResourceAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceAccess")
            .field("node_name", &self.node_name)
            .field("service_cache", &self.services.get().is_some())
            .finish()
    }
}

impl ResourceAccess {
    /// Access through `client` on behalf of node `node_name`. Services are listed on
    /// demand until [`ResourceAccess::install_service_cache`] provides a cache.
    pub fn new(client: Client, node_name: impl Into<String>) -> Self {
        Self {
            client,
            node_name: node_name.into(),
            services: Arc::new(OnceLock::new()),
        }
    }

    /// Uses a (shared, watch-fed) Service cache instead of listing, from now on, in this
    /// value and every clone of it. Only the first call has an effect.
    pub fn install_service_cache(&self, store: Store<Service>) {
        let _ = self.services.set(store);
    }

    /// The node this access is for.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// A ConfigMap, or `None` when it does not exist.
    pub async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> vk_errdefs::Result<Option<ConfigMap>> {
        Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| from_kube(&format!("reading configmap {namespace}/{name}"), e))
    }

    /// A Secret, or `None` when it does not exist.
    pub async fn secret(&self, namespace: &str, name: &str) -> vk_errdefs::Result<Option<Secret>> {
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| from_kube(&format!("reading secret {namespace}/{name}"), e))
    }

    /// A Service, or `None` when it does not exist.
    pub async fn service(
        &self,
        namespace: &str,
        name: &str,
    ) -> vk_errdefs::Result<Option<Service>> {
        if let Some(store) = self.ready_cache() {
            return Ok(store
                .get(&ObjectRef::new(name).within(namespace))
                .map(|s| (*s).clone()));
        }
        Api::<Service>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| from_kube(&format!("reading service {namespace}/{name}"), e))
    }

    /// The Services of `namespace`.
    pub async fn services(&self, namespace: &str) -> vk_errdefs::Result<Vec<Service>> {
        if let Some(store) = self.ready_cache() {
            return Ok(store
                .state_filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
                .iter()
                .map(|s| (**s).clone())
                .collect());
        }
        Api::<Service>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| from_kube(&format!("listing services in {namespace}"), e))
    }

    /// This node's Node object, or `None` if it is not registered (yet).
    pub async fn node(&self) -> vk_errdefs::Result<Option<Node>> {
        Api::<Node>::all(self.client.clone())
            .get_opt(&self.node_name)
            .await
            .map_err(|e| from_kube(&format!("reading node {}", self.node_name), e))
    }

    /// A pod bound to this node, as the API has it (for example to read its spec in a
    /// kubelet API handler). Pods bound to other nodes are reported as absent.
    pub async fn pod(&self, namespace: &str, name: &str) -> vk_errdefs::Result<Option<Pod>> {
        let pod = Api::<Pod>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| from_kube(&format!("reading pod {namespace}/{name}"), e))?;
        Ok(pod.filter(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(self.node_name.as_str())
        }))
    }

    /// A token for ServiceAccount `namespace/service_account` through the TokenRequest
    /// API (`serviceaccounts/token`, `create`), as the kubelet requests one for a pod's
    /// projected `serviceAccountToken` volume source: `request` carries the audiences,
    /// the expiry and the object the token is bound to; the answer carries the token
    /// and when it expires. (The only write here: the caller needs that permission.)
    pub async fn request_token(
        &self,
        namespace: &str,
        service_account: &str,
        request: &TokenRequest,
    ) -> vk_errdefs::Result<TokenRequest> {
        Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
            .create_token_request(service_account, &PostParams::default(), request)
            .await
            .map_err(|e| {
                from_kube(
                    &format!("requesting a token for serviceaccount {namespace}/{service_account}"),
                    e,
                )
            })
    }

    fn ready_cache(&self) -> Option<&Store<Service>> {
        use futures::FutureExt as _;
        self.services
            .get()
            .filter(|s| matches!(s.wait_until_ready().now_or_never(), Some(Ok(()))))
    }
}

#[async_trait]
impl EnvSource for ResourceAccess {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> vk_errdefs::Result<Option<ConfigMap>> {
        ResourceAccess::config_map(self, namespace, name).await
    }
    async fn secret(&self, namespace: &str, name: &str) -> vk_errdefs::Result<Option<Secret>> {
        ResourceAccess::secret(self, namespace, name).await
    }
    async fn services(&self, namespace: &str) -> vk_errdefs::Result<Vec<Service>> {
        ResourceAccess::services(self, namespace).await
    }
}
