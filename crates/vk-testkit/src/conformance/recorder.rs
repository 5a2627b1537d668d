//! [`Recorder`]: the suite's [`Inspect`] for a provider that has no switches of its own.
//!
//! Most providers cannot count their calls or fail on demand, and should not grow such
//! switches for a test. `Recorder` wraps the real provider: it counts `create_pod` and
//! `delete_pod`, keeps the pods as the provider received them, fails creates or pings
//! when a check asks, and forwards everything else — every method of
//! [`PodLifecycleHandler`] and [`NodeProvider`], the optional ones too, so the wrapped
//! provider behaves exactly as it does in production. What only the backend can answer
//! (is the pod there? put one in behind the core's back; lose one) comes from a
//! [`Backend`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use vk_testkit::conformance::{Backend, Instance, Recorder, Target};
//! # use vk_testkit::conformance::block_on;
//! # struct MyProvider;
//! # #[async_trait::async_trait]
//! # impl vk_core::PodLifecycleHandler for MyProvider {
//! #   async fn create_pod(&self, _p: &k8s_openapi::api::core::v1::Pod) -> vk_errdefs::Result<()> { Ok(()) }
//! #   async fn update_pod(&self, _p: &k8s_openapi::api::core::v1::Pod) -> vk_errdefs::Result<()> { Ok(()) }
//! #   async fn delete_pod(&self, _p: &k8s_openapi::api::core::v1::Pod) -> vk_errdefs::Result<()> { Ok(()) }
//! #   async fn get_pod(&self, _n: &str, _m: &str) -> vk_errdefs::Result<Option<k8s_openapi::api::core::v1::Pod>> { Ok(None) }
//! #   async fn get_pod_status(&self, _n: &str, _m: &str) -> vk_errdefs::Result<Option<k8s_openapi::api::core::v1::PodStatus>> { Ok(None) }
//! #   async fn get_pods(&self) -> vk_errdefs::Result<Vec<k8s_openapi::api::core::v1::Pod>> { Ok(vec![]) }
//! # }
//! # #[async_trait::async_trait]
//! # impl vk_core::NodeProvider for MyProvider {
//! #   async fn ping(&self) -> vk_errdefs::Result<()> { Ok(()) }
//! # }
//!
//! /// The backend's own view: the defaults ask the provider itself.
//! struct Mine;
//! impl Backend<MyProvider> for Mine {}
//!
//! struct MyTarget;
//! impl Target for MyTarget {
//!     fn name(&self) -> &str {
//!         "mine"
//!     }
//!     fn instantiate(&self, _node: &str, _resources: vk_core::ResourceAccess) -> Instance {
//!         Recorder::new(Arc::new(MyProvider), Mine).instance()
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use vk_core::capabilities::Capabilities;
use vk_core::{NodeProvider, NodeStatusSink, PodLifecycleHandler, PodNotifier, PodRef};
use vk_errdefs::{Error, Result};

use super::{Inspect, Instance};

/// Runs an async provider or backend call from the suite's synchronous [`Inspect`]
/// methods (which run on a multi-threaded Tokio runtime, as the checks do).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// What only the provider's backend can tell or do, for the checks that look behind the
/// core's back. Each method gets the wrapped provider; the defaults use it.
pub trait Backend<P: PodLifecycleHandler>: Send + Sync + 'static {
    /// Whether the backend has the pod now. Default: the provider's `get_pod` finds it.
    fn has_pod(&self, provider: &P, namespace: &str, name: &str) -> bool {
        block_on(provider.get_pod(namespace, name))
            .ok()
            .flatten()
            .is_some()
    }

    /// Puts `pod` into the backend without the core knowing (a dangling pod). Default:
    /// the provider's own `create_pod`, which the [`Recorder`] does not count.
    fn insert_pod(&self, provider: &P, pod: Pod) {
        block_on(provider.create_pod(&pod)).expect("the provider creates the dangling pod");
    }

    /// Makes the backend lose the pod, as a crashed backend or an operator would.
    /// Default: panics — the suite's lost-pod check cannot run for this provider.
    fn lose_pod(&self, _provider: &P, namespace: &str, name: &str) {
        panic!(
            "this backend cannot lose pod {namespace}/{name} on demand; leave the lost-pod check out"
        );
    }
}

/// A provider wrapped with call counting and fault switches; see the [module
/// docs](self).
pub struct Recorder<P> {
    inner: Arc<P>,
    backend: Box<dyn Backend<P>>,
    received: Mutex<HashMap<(String, String), Pod>>,
    creates: AtomicU64,
    deletes: AtomicU64,
    fail_creates: Mutex<Option<String>>,
    fail_pings: Mutex<Option<String>>,
}

fn key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<P: PodLifecycleHandler + NodeProvider> Recorder<P> {
    /// Wraps `inner`; `backend` answers what only the backend knows.
    pub fn new(inner: Arc<P>, backend: impl Backend<P>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            backend: Box::new(backend),
            received: Mutex::default(),
            creates: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            fail_creates: Mutex::new(None),
            fail_pings: Mutex::new(None),
        })
    }

    /// The wrapped provider.
    pub fn inner(&self) -> &Arc<P> {
        &self.inner
    }

    /// The suite's instance: pods and node hooks through the recorder, and its
    /// [`Inspect`].
    pub fn instance(self: Arc<Self>) -> Instance {
        Instance {
            pods: self.clone(),
            node: Some(self.clone()),
            inspect: Some(self),
        }
    }

    fn record(&self, pod: &Pod) {
        locked(&self.received).insert(key(pod), pod.clone());
    }
}

#[async_trait]
impl<P: PodLifecycleHandler + NodeProvider> PodLifecycleHandler for Recorder<P> {
    async fn create_pod(&self, pod: &Pod) -> Result<()> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        let failure = locked(&self.fail_creates).clone();
        if let Some(message) = failure {
            return Err(Error::unavailable(message));
        }
        self.record(pod);
        self.inner.create_pod(pod).await
    }
    async fn update_pod(&self, pod: &Pod) -> Result<()> {
        self.record(pod);
        self.inner.update_pod(pod).await
    }
    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete_pod(pod).await
    }
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        self.inner.get_pod(namespace, name).await
    }
    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        self.inner.get_pod_status(namespace, name).await
    }
    async fn get_pods(&self) -> Result<Vec<Pod>> {
        self.inner.get_pods().await
    }
    async fn visit_pods(&self, visit: &mut (dyn FnMut(Pod) + Send)) -> Result<()> {
        self.inner.visit_pods(visit).await
    }
    async fn get_pod_refs(&self) -> Result<Vec<PodRef>> {
        self.inner.get_pod_refs().await
    }
    fn pod_notifier(&self) -> Option<&dyn PodNotifier> {
        self.inner.pod_notifier()
    }
    fn capabilities(self: Arc<Self>) -> Capabilities {
        Arc::clone(&self.inner).capabilities()
    }
    fn keep_secret_env_refs(&self) -> bool {
        self.inner.keep_secret_env_refs()
    }
    fn pod_ip_hint(&self, pod: &Pod) -> Option<std::net::IpAddr> {
        self.inner.pod_ip_hint(pod)
    }
}

#[async_trait]
impl<P: PodLifecycleHandler + NodeProvider> NodeProvider for Recorder<P> {
    async fn ping(&self) -> Result<()> {
        let failure = locked(&self.fail_pings).clone();
        match failure {
            Some(message) => Err(Error::unavailable(message)),
            None => self.inner.ping().await,
        }
    }
    fn notify_node_status(&self, sink: NodeStatusSink) {
        self.inner.notify_node_status(sink);
    }
}

impl<P: PodLifecycleHandler + NodeProvider> Inspect for Recorder<P> {
    fn received_pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        locked(&self.received)
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }
    fn create_calls(&self) -> u64 {
        self.creates.load(Ordering::SeqCst)
    }
    fn delete_calls(&self) -> u64 {
        self.deletes.load(Ordering::SeqCst)
    }
    fn fail_creates(&self, message: Option<&str>) {
        *locked(&self.fail_creates) = message.map(str::to_owned);
    }
    fn fail_pings(&self, message: Option<&str>) {
        *locked(&self.fail_pings) = message.map(str::to_owned);
    }
    fn insert_pod(&self, pod: Pod) {
        self.backend.insert_pod(&self.inner, pod);
    }
    fn lose_pod(&self, namespace: &str, name: &str) {
        self.backend.lose_pod(&self.inner, namespace, name);
    }
    fn has_pod(&self, namespace: &str, name: &str) -> bool {
        self.backend.has_pod(&self.inner, namespace, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider that remembers created pods and says whether it was asked to keep
    /// secret env refs (an optional method the recorder must forward).
    #[derive(Default)]
    struct Store(Mutex<HashMap<(String, String), Pod>>);

    #[async_trait]
    impl PodLifecycleHandler for Store {
        async fn create_pod(&self, pod: &Pod) -> Result<()> {
            locked(&self.0).insert(key(pod), pod.clone());
            Ok(())
        }
        async fn update_pod(&self, _pod: &Pod) -> Result<()> {
            Ok(())
        }
        async fn delete_pod(&self, pod: &Pod) -> Result<()> {
            locked(&self.0).remove(&key(pod));
            Ok(())
        }
        async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
            Ok(locked(&self.0)
                .get(&(namespace.into(), name.into()))
                .cloned())
        }
        async fn get_pod_status(&self, _n: &str, _m: &str) -> Result<Option<PodStatus>> {
            Ok(None)
        }
        async fn get_pods(&self) -> Result<Vec<Pod>> {
            Ok(locked(&self.0).values().cloned().collect())
        }
        fn keep_secret_env_refs(&self) -> bool {
            true
        }
    }

    #[async_trait]
    impl NodeProvider for Store {
        async fn ping(&self) -> Result<()> {
            Ok(())
        }
    }

    struct Defaults;
    impl Backend<Store> for Defaults {}

    fn pod(name: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.namespace = Some("ns".into());
        p.metadata.name = Some(name.into());
        p
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_records_fails_and_forwards() {
        let r = Recorder::new(Arc::new(Store::default()), Defaults);
        assert!(r.keep_secret_env_refs(), "optional methods are forwarded");

        r.create_pod(&pod("a")).await.expect("create");
        assert_eq!(r.create_calls(), 1);
        assert!(r.received_pod("ns", "a").is_some());
        assert!(r.has_pod("ns", "a"));

        r.fail_creates(Some("backend down"));
        let err = r.create_pod(&pod("b")).await.expect_err("fails on demand");
        assert!(err.to_string().contains("backend down"), "{err}");
        assert_eq!(r.create_calls(), 2, "failed creates count too");
        assert!(!r.has_pod("ns", "b"));
        r.fail_creates(None);

        r.fail_pings(Some("no"));
        assert!(r.ping().await.is_err());
        r.fail_pings(None);
        assert!(r.ping().await.is_ok());

        // Behind the core's back: reaches the backend, not the counters.
        r.insert_pod(pod("dangling"));
        assert!(r.has_pod("ns", "dangling"));
        assert!(r.received_pod("ns", "dangling").is_none());
        assert_eq!(r.create_calls(), 2);

        r.delete_pod(&pod("a")).await.expect("delete");
        assert_eq!(r.delete_calls(), 1);
        assert!(!r.has_pod("ns", "a"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[should_panic(expected = "cannot lose pod ns/a")]
    async fn losing_a_pod_without_backend_support_names_the_pod() {
        let r = Recorder::new(Arc::new(Store::default()), Defaults);
        r.lose_pod("ns", "a");
    }
}
