//! ConfigMaps and Secrets read once for every pod that needs them at about the same
//! time.
//!
//! Volumes are written from their sources when a pod is created and re-read every
//! `volume_refresh_seconds` (see [`crate::volumes`]). Most pods of a namespace mount the
//! same objects (the ServiceAccount token Secret of older clusters, a shared
//! ConfigMap), so a burst of creates, and the refreshes of the pods it started, would
//! read the same object once per pod. [`ReadCache`] shares one read among the callers
//! of the next [`FRESH_FOR`]: concurrent callers wait for the read in flight, later
//! ones reuse its answer. As the kubelet's TTL cache of ConfigMaps and Secrets does, a
//! pod may see an object as it was up to [`FRESH_FOR`] before; a failed read is not
//! kept (the next caller reads again).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use vk_core::env::EnvSource;

/// How long an answer is reused.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// An [`EnvSource`] that shares reads of ConfigMaps and Secrets (see the module docs);
/// Services are read through.
///
/// ```
/// # async fn demo(api: std::sync::Arc<dyn vk_core::env::EnvSource>) -> vk_errdefs::Result<()> {
/// use vk_core::env::EnvSource as _;
/// let cache = vk_process::read_cache::ReadCache::new(api);
/// let first = cache.secret("ns", "token").await?;
/// let again = cache.secret("ns", "token").await?; // within a second: not read again
/// assert_eq!(first, again);
/// # Ok(())
/// # }
/// ```
pub struct ReadCache {
    inner: Arc<dyn EnvSource>,
    config_maps: Reads<ConfigMap>,
    secrets: Reads<Secret>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache").finish_non_exhaustive()
    }
}

impl ReadCache {
    /// Shares the reads of `inner`.
    pub fn new(inner: Arc<dyn EnvSource>) -> Self {
        Self {
            inner,
            config_maps: Reads::default(),
            secrets: Reads::default(),
        }
    }
}

/// One read: its answer once there is one, and when it started.
struct Read<T> {
    started: Instant,
    answer: Arc<OnceCell<Option<T>>>,
}

/// The reads of one kind, by namespace and name.
struct Reads<T> {
    by_key: Mutex<HashMap<(String, String), Read<T>>>,
}

impl<T> Default for Reads<T> {
    fn default() -> Self {
        Self {
            by_key: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> Reads<T> {
    /// The answer for `namespace/name`: a read of the last [`FRESH_FOR`] (waiting for it
    /// if it is in flight), else `read()`'s.
    async fn get<F>(&self, namespace: &str, name: &str, read: F) -> vk_errdefs::Result<Option<T>>
    where
        F: Future<Output = vk_errdefs::Result<Option<T>>>,
    {
        let answer = {
            let mut by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            by_key.retain(|_, r| now.duration_since(r.started) < FRESH_FOR);
            by_key
                .entry((namespace.to_owned(), name.to_owned()))
                .or_insert_with(|| Read {
                    started: now,
                    answer: Arc::new(OnceCell::new()),
                })
                .answer
                .clone()
        };
        answer.get_or_try_init(|| read).await.cloned()
    }
}

#[async_trait]
impl EnvSource for ReadCache {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> vk_errdefs::Result<Option<ConfigMap>> {
        self.config_maps
            .get(namespace, name, self.inner.config_map(namespace, name))
            .await
    }

    async fn secret(&self, namespace: &str, name: &str) -> vk_errdefs::Result<Option<Secret>> {
        self.secrets
            .get(namespace, name, self.inner.secret(namespace, name))
            .await
    }

    async fn services(&self, namespace: &str) -> vk_errdefs::Result<Vec<Service>> {
        self.inner.services(namespace).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts Secret reads; answers `Some` with the read's number, or fails while
    /// `failing` is set.
    #[derive(Default)]
    struct Counting {
        reads: AtomicUsize,
        failing: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl EnvSource for Counting {
        async fn config_map(&self, _: &str, _: &str) -> vk_errdefs::Result<Option<ConfigMap>> {
            Ok(None)
        }
        async fn secret(&self, _: &str, name: &str) -> vk_errdefs::Result<Option<Secret>> {
            let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
            // Another task may join this read while it is in flight.
            tokio::task::yield_now().await;
            if self.failing.load(Ordering::SeqCst) {
                return Err(vk_errdefs::Error::unavailable("down"));
            }
            let mut s = Secret::default();
            s.metadata.name = Some(format!("{name}-{n}"));
            Ok(Some(s))
        }
        async fn services(&self, _: &str) -> vk_errdefs::Result<Vec<Service>> {
            Ok(Vec::new())
        }
    }

    fn name(s: &Option<Secret>) -> String {
        s.as_ref()
            .and_then(|s| s.metadata.name.clone())
            .unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn reads_of_the_same_object_are_shared_for_a_second() {
        let source = Arc::new(Counting::default());
        let cache = ReadCache::new(source.clone());
        let (a, b) = tokio::join!(cache.secret("ns", "tok"), cache.secret("ns", "tok"));
        assert_eq!(name(&a.expect("a")), "tok-1");
        assert_eq!(name(&b.expect("b")), "tok-1");
        tokio::time::advance(FRESH_FOR / 2).await;
        let c = cache.secret("ns", "tok").await.expect("c");
        assert_eq!(name(&c), "tok-1");
        // Another object, or another namespace, is another read.
        let other = cache.secret("ns2", "tok").await.expect("other");
        assert_eq!(name(&other), "tok-2");
        tokio::time::advance(FRESH_FOR / 2).await;
        let d = cache.secret("ns", "tok").await.expect("d");
        assert_eq!(name(&d), "tok-3", "a second later the object is read again");
        assert_eq!(source.reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_is_not_kept() {
        let source = Arc::new(Counting::default());
        source.failing.store(true, Ordering::SeqCst);
        let cache = ReadCache::new(source.clone());
        assert!(cache.secret("ns", "tok").await.is_err());
        source.failing.store(false, Ordering::SeqCst);
        let again = cache.secret("ns", "tok").await.expect("read again");
        assert_eq!(name(&again), "tok-2");
    }
}
