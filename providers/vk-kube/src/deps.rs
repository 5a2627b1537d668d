//! ConfigMaps and Secrets that remote pods use, copied from home.
//!
//! # Flow
//!
//! * Before a remote pod is created, every ConfigMap and Secret it references (volumes,
//!   projected volumes, image pull secrets; environment references are already
//!   resolved into plain values by the core) is read at home and written remotely as
//!   [`dependency_name`](crate::naming::dependency_name) in the pod's remote namespace,
//!   by server-side apply (field manager [`FIELD_MANAGER`]). A home object that does not
//!   exist is not copied (the remote kubelet then waits for it, as a kubelet does; an
//!   `optional` volume stays optional); the next refresh copies it once it exists.
//! * Every refresh ([`Dependencies::refresh`]) re-reads the objects the remote pods
//!   reference (the list is recorded on each remote pod) and re-applies those whose home
//!   `resourceVersion` changed — so an update at home reaches the copy within one
//!   refresh period; keys removed at home are removed from the copy.
//! * Copies no remote pod references any more are deleted
//!   ([`Dependencies::collect_garbage`], run after each refresh and when a remote pod
//!   goes away). Creates and the collection exclude each other (a lock), so a copy
//!   made for a pod being created is never collected before the pod exists.
//!
//! Copies carry the node's labels ([`owner_labels`]) and
//! the home namespace, name and resourceVersion as annotations. Objects vk-kube did not
//! create are never touched: a copy's name is derived from the home namespace and name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::{RwLock, RwLockReadGuard};
use vk_core::ResourceAccess;
use vk_core::kube_errors::{from_kube, is_not_found};
use vk_errdefs::Result;

use crate::naming;
use crate::translate::{Dependency, DependencyKind, HomeRef, owner_labels, recorded_dependencies};

/// The server-side apply field manager of copies.
pub const FIELD_MANAGER: &str = "vk-kube";

/// Identifies a remote copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct CopyKey {
    kind: DependencyKind,
    remote_namespace: String,
    name: String,
}

/// The copies of one home node's dependencies.
pub struct Dependencies {
    remote: Client,
    home: ResourceAccess,
    node: String,
    /// Held (shared) by creates from copying to the pod's creation; held exclusively by
    /// the garbage collection.
    creating: RwLock<()>,
    /// The home resourceVersion each copy was last written from.
    written: Mutex<HashMap<CopyKey, String>>,
}

impl std::fmt::Debug for Dependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependencies")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Dependencies {
    /// Copies for home node `node`, reading home objects through `home` and writing to
    /// `remote`.
    pub fn new(remote: Client, home: ResourceAccess, node: impl Into<String>) -> Self {
        Self {
            remote,
            home,
            node: node.into(),
            creating: RwLock::new(()),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps the garbage collection away until the guard is dropped: take it before
    /// copying a new pod's dependencies and drop it once the pod is created.
    pub async fn hold(&self) -> RwLockReadGuard<'_, ()> {
        self.creating.read().await
    }

    /// Copies (or updates) `deps` of a pod in home namespace `home_namespace` into
    /// `remote_namespace`; returns how many were written.
    pub async fn sync(
        &self,
        home_namespace: &str,
        remote_namespace: &str,
        deps: &BTreeSet<Dependency>,
    ) -> Result<usize> {
        let mut written = 0;
        for dep in deps {
            if self.sync_one(home_namespace, remote_namespace, dep).await? {
                written += 1;
            }
        }
        Ok(written)
    }

    async fn sync_one(
        &self,
        home_namespace: &str,
        remote_namespace: &str,
        dep: &Dependency,
    ) -> Result<bool> {
        let key = CopyKey {
            kind: dep.kind,
            remote_namespace: remote_namespace.to_owned(),
            name: naming::dependency_name(home_namespace, &dep.name),
        };
        let meta = |home_meta: &ObjectMeta| {
            let version = home_meta.resource_version.clone().unwrap_or_default();
            let meta = ObjectMeta {
                name: Some(key.name.clone()),
                namespace: Some(remote_namespace.to_owned()),
                labels: Some(owner_labels(&self.node)),
                annotations: Some(BTreeMap::from([
                    (
                        naming::HOME_NAMESPACE_ANNOTATION.to_owned(),
                        home_namespace.to_owned(),
                    ),
                    (naming::HOME_NAME_ANNOTATION.to_owned(), dep.name.clone()),
                    (naming::HOME_VERSION_ANNOTATION.to_owned(), version.clone()),
                ])),
                ..Default::default()
            };
            (meta, version)
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let version = match dep.kind {
            DependencyKind::ConfigMap => {
                let Some(home) = self.home.config_map(home_namespace, &dep.name).await? else {
                    return Ok(false);
                };
                let (metadata, version) = meta(&home.metadata);
                if self.already_written(&key, &version) {
                    return Ok(false);
                }
                let copy = ConfigMap {
                    metadata,
                    data: home.data,
                    binary_data: home.binary_data,
                    immutable: None,
                };
                Api::<ConfigMap>::namespaced(self.remote.clone(), remote_namespace)
                    .patch(&key.name, &params, &Patch::Apply(&copy))
                    .await
                    .map_err(|e| from_kube(&format!("copying configmap {}", dep.name), e))?;
                version
            }
            DependencyKind::Secret => {
                let Some(home) = self.home.secret(home_namespace, &dep.name).await? else {
                    return Ok(false);
                };
                let (metadata, version) = meta(&home.metadata);
                if self.already_written(&key, &version) {
                    return Ok(false);
                }
                let copy = Secret {
                    metadata,
                    data: home.data,
                    type_: home.type_,
                    ..Default::default()
                };
                Api::<Secret>::namespaced(self.remote.clone(), remote_namespace)
                    .patch(&key.name, &params, &Patch::Apply(&copy))
                    .await
                    .map_err(|e| from_kube(&format!("copying secret {}", dep.name), e))?;
                version
            }
        };
        self.lock_written().insert(key, version);
        Ok(true)
    }

    fn lock_written(&self) -> std::sync::MutexGuard<'_, HashMap<CopyKey, String>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn already_written(&self, key: &CopyKey, version: &str) -> bool {
        !version.is_empty() && self.lock_written().get(key).is_some_and(|v| v == version)
    }

    /// Re-copies what `pods` (remote pods) reference where the home object changed.
    pub async fn refresh(&self, pods: &[std::sync::Arc<Pod>]) -> Result<usize> {
        let mut wanted: BTreeSet<(String, String, Dependency)> = BTreeSet::new();
        for pod in pods {
            let (Some(home), Some(remote_namespace)) =
                (HomeRef::of_remote(pod), pod.metadata.namespace.clone())
            else {
                continue;
            };
            for dep in recorded_dependencies(pod) {
                wanted.insert((home.namespace.clone(), remote_namespace.clone(), dep));
            }
        }
        let mut written = 0;
        let mut first_error = None;
        for (home_namespace, remote_namespace, dep) in &wanted {
            match self.sync_one(home_namespace, remote_namespace, dep).await {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(dependency = %dep.name, namespace = %home_namespace, error = %e, "refreshing a copy failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if written == 0 => Err(e),
            _ => Ok(written),
        }
    }

    /// Deletes the copies no remote pod of this node references (listing the pods
    /// live, not from a cache).
    pub async fn collect_garbage(&self) -> Result<usize> {
        let _exclusive = self.creating.write().await;
        let selector = format!(
            "{}={},{}=true",
            naming::NODE_LABEL,
            naming::node_label_value(&self.node),
            naming::MANAGED_LABEL
        );
        let lp = ListParams::default().labels(&selector);
        let config_maps = Api::<ConfigMap>::all(self.remote.clone())
            .list_metadata(&lp)
            .await
            .map_err(|e| from_kube("listing copied configmaps", e))?;
        let secrets = Api::<Secret>::all(self.remote.clone())
            .list_metadata(&lp)
            .await
            .map_err(|e| from_kube("listing copied secrets", e))?;
        let pods = Api::<Pod>::all(self.remote.clone())
            .list(&lp)
            .await
            .map_err(|e| from_kube("listing remote pods", e))?;
        let mut referenced: BTreeSet<CopyKey> = BTreeSet::new();
        for pod in &pods.items {
            let (Some(home), Some(remote_namespace)) =
                (HomeRef::of_remote(pod), pod.metadata.namespace.clone())
            else {
                continue;
            };
            for dep in recorded_dependencies(pod) {
                referenced.insert(CopyKey {
                    kind: dep.kind,
                    remote_namespace: remote_namespace.clone(),
                    name: naming::dependency_name(&home.namespace, &dep.name),
                });
            }
        }
        let mut deleted = 0;
        let candidates = config_maps
            .items
            .iter()
            .map(|m| (DependencyKind::ConfigMap, &m.metadata))
            .chain(
                secrets
                    .items
                    .iter()
                    .map(|m| (DependencyKind::Secret, &m.metadata)),
            );
        for (kind, meta) in candidates {
            let key = CopyKey {
                kind,
                remote_namespace: meta.namespace.clone().unwrap_or_default(),
                name: meta.name.clone().unwrap_or_default(),
            };
            if referenced.contains(&key) {
                continue;
            }
            let dp = DeleteParams::default();
            let result = match kind {
                DependencyKind::ConfigMap => {
                    Api::<ConfigMap>::namespaced(self.remote.clone(), &key.remote_namespace)
                        .delete(&key.name, &dp)
                        .await
                        .map(|_| ())
                }
                DependencyKind::Secret => {
                    Api::<Secret>::namespaced(self.remote.clone(), &key.remote_namespace)
                        .delete(&key.name, &dp)
                        .await
                        .map(|_| ())
                }
            };
            match result {
                Ok(()) => deleted += 1,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(from_kube(&format!("deleting copy {}", key.name), e)),
            }
            self.lock_written().remove(&key);
        }
        Ok(deleted)
    }
}
