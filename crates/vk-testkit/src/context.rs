//! What an end-to-end test holds: a client for the real control plane, unique
//! namespaces, and clean-up that runs even when the test panics.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, ObjectMeta, PostParams};
use kube::discovery::ApiResource;
use kube::{Api, Client, Resource};
use rand::Rng as _;
use rand::distr::Alphanumeric;

use crate::cluster::{ClusterError, LocalCluster, UpOptions, client_from_kubeconfig};

/// Label put on every namespace a test creates, so leftovers are easy to find:
/// `kubectl get ns -l vk-testkit.io/test`.
pub const TEST_LABEL: &str = "vk-testkit.io/test";

/// Environment variable naming a kubeconfig to test against instead of the local cluster
/// (for running the conformance suite against another cluster). When it is set, the
/// local cluster is neither started nor used.
pub const KUBECONFIG_ENV: &str = "VK_TEST_KUBECONFIG";

/// Errors of the test helpers.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The local control plane could not be started.
    #[error("starting the local control plane failed: {0}")]
    StartCluster(String),
    /// The client could not be built.
    #[error(transparent)]
    Client(#[from] ClusterError),
    /// A namespace could not be created.
    #[error("creating namespace {name} failed: {source}")]
    CreateNamespace {
        /// The namespace.
        name: String,
        /// Cause.
        source: kube::Error,
    },
    /// An object could not be deleted.
    #[error("deleting {kind} {name} failed: {source}")]
    Delete {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// Cause.
        source: kube::Error,
    },
}

/// A name no other test run uses: `prefix-` and six random lowercase letters and digits,
/// valid as a namespace, Node or Pod name.
pub fn unique_name(prefix: &str) -> String {
    let suffix: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(6)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    format!("{prefix}-{suffix}")
}

static CLUSTER: tokio::sync::OnceCell<Result<PathBuf, String>> = tokio::sync::OnceCell::const_new();

/// The kubeconfig of the cluster tests run against, starting the local cluster once per
/// process if needed.
async fn kubeconfig() -> Result<PathBuf, ContextError> {
    if let Some(path) = std::env::var_os(KUBECONFIG_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let result = CLUSTER
        .get_or_init(|| async {
            let cluster = LocalCluster::from_env().map_err(|e| e.to_string())?;
            cluster
                .up(UpOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            Ok(cluster.layout().kubeconfig())
        })
        .await;
    result.clone().map_err(ContextError::StartCluster)
}

/// One object to delete when the context is dropped.
#[derive(Debug, Clone)]
struct Tracked {
    resource: ApiResource,
    namespace: Option<String>,
    name: String,
}

/// What an end-to-end test holds; see the crate documentation.
///
/// Objects registered with [`TestContext::delete_on_drop`] are deleted when the context
/// is dropped, also when the test panics.
pub struct TestContext {
    client: Client,
    kubeconfig: PathBuf,
    tracked: Mutex<Vec<Tracked>>,
}

impl TestContext {
    /// A context for the local cluster (started if it does not run) or, when
    /// `VK_TEST_KUBECONFIG` is set, for that cluster.
    pub async fn new() -> Result<Self, ContextError> {
        crate::install_crypto_provider();
        let kubeconfig = kubeconfig().await?;
        let client = client_from_kubeconfig(&kubeconfig).await?;
        Ok(Self {
            client,
            kubeconfig,
            tracked: Mutex::new(Vec::new()),
        })
    }

    /// A client authenticated as the cluster administrator.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The administrator kubeconfig (for `kubectl --kubeconfig` and for provider
    /// processes under test).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Creates a namespace named `prefix-xxxxxx`, labelled `TEST_LABEL`, deleted when
    /// the returned value is dropped.
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace, ContextError> {
        let name = unique_name(prefix);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_LABEL.to_owned(), "true".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|source| ContextError::CreateNamespace {
                name: name.clone(),
                source,
            })?;
        Ok(TestNamespace {
            client: self.client.clone(),
            kubeconfig: self.kubeconfig.clone(),
            name,
            deleted: false,
        })
    }

    /// Registers object `name` of kind `K` (in `namespace`, for namespaced kinds) to be
    /// deleted when this context is dropped. Objects already gone are fine.
    pub fn delete_on_drop<K>(&self, name: &str, namespace: Option<&str>)
    where
        K: Resource<DynamicType = ()>,
    {
        let tracked = Tracked {
            resource: ApiResource::erase::<K>(&()),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        };
        if let Ok(mut list) = self.tracked.lock() {
            list.push(tracked);
        }
    }
}

impl std::fmt::Debug for TestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestContext")
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        let tracked = self
            .tracked
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        if tracked.is_empty() {
            return;
        }
        cleanup_in_background(self.kubeconfig.clone(), tracked);
    }
}

/// A namespace created for one test; deleted (with everything in it) on drop.
pub struct TestNamespace {
    client: Client,
    kubeconfig: PathBuf,
    name: String,
    deleted: bool,
}

impl TestNamespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the namespace now (instead of on drop) and reports errors.
    pub async fn delete(mut self) -> Result<(), ContextError> {
        self.deleted = true;
        delete_object(
            &self.client,
            &Tracked {
                resource: ApiResource::erase::<Namespace>(&()),
                namespace: None,
                name: self.name.clone(),
            },
        )
        .await
    }
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let tracked = Tracked {
            resource: ApiResource::erase::<Namespace>(&()),
            namespace: None,
            name: self.name.clone(),
        };
        cleanup_in_background(self.kubeconfig.clone(), vec![tracked]);
    }
}

async fn delete_object(client: &Client, t: &Tracked) -> Result<(), ContextError> {
    let api: Api<DynamicObject> = match &t.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &t.resource),
        None => Api::all_with(client.clone(), &t.resource),
    };
    match api.delete(&t.name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(ContextError::Delete {
            kind: t.resource.kind.clone(),
            name: t.name.clone(),
            source,
        }),
    }
}

/// Deletes `items` from a separate thread with its own runtime and client, and waits for
/// it. Drop may run inside a single-threaded test runtime whose thread is blocked right
/// here, so the test's own client (whose connections live on that runtime) cannot be used.
fn cleanup_in_background(kubeconfig: PathBuf, items: Vec<Tracked>) {
    let worker = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let Ok(client) = client_from_kubeconfig(&kubeconfig).await else {
                return;
            };
            for item in items.iter().rev() {
                if let Err(e) = delete_object(&client, item).await {
                    eprintln!("vk-testkit clean-up: {e}");
                }
            }
        });
    });
    let _ = worker.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_valid_and_distinct() {
        let a = unique_name("smoke");
        let b = unique_name("smoke");
        assert_ne!(a, b);
        assert!(a.starts_with("smoke-"));
        assert_eq!(a.len(), "smoke-".len() + 6);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
