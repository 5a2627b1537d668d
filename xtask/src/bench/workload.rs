//! Creating and deleting pods at a fixed concurrency, and observing them through a watch.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;

/// A minimal pod bound to `node`, tolerating the provider taint.
pub fn bench_pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"vk-bench": "true"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
            "containers": [{"name": "c", "image": "bench"}]
        }
    }))
    .unwrap_or_default()
}

#[derive(Default)]
struct Seen {
    running_at: HashMap<String, Instant>,
    live: HashSet<String>,
}

/// Watches the pods of a namespace: when each first became Running, and how many exist.
pub struct Observer {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Starts watching `namespace`; returns once the initial list is in.
    pub async fn start(client: Client, namespace: &str) -> anyhow::Result<Self> {
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut ready = Some(ready_tx);
                let mut stream = watcher(api, watcher::Config::default()).boxed();
                while let Some(event) = stream.next().await {
                    let now = Instant::now();
                    let Ok(event) = event else { continue };
                    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                    match event {
                        watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                            let name = p.metadata.name.clone().unwrap_or_default();
                            let running = p.status.as_ref().and_then(|s| s.phase.as_deref())
                                == Some("Running");
                            if running {
                                s.running_at.entry(name.clone()).or_insert(now);
                            }
                            s.live.insert(name);
                        }
                        watcher::Event::Delete(p) => {
                            s.live.remove(&p.metadata.name.clone().unwrap_or_default());
                        }
                        watcher::Event::InitDone => {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send(());
                            }
                        }
                        watcher::Event::Init => s.live.clear(),
                    }
                }
            })
        };
        let _ = ready_rx.await;
        Ok(Self { seen, task })
    }

    fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// When `name` was first seen Running.
    pub fn running_at(&self, name: &str) -> Option<Instant> {
        self.with(|s| s.running_at.get(name).copied())
    }

    /// Pods seen Running so far (among `names`).
    pub fn running_count(&self, names: &[String]) -> usize {
        self.with(|s| {
            names
                .iter()
                .filter(|n| s.running_at.contains_key(*n))
                .count()
        })
    }

    /// Pods that exist.
    pub fn live(&self) -> usize {
        self.with(|s| s.live.len())
    }

    /// Waits until every pod in `names` was seen Running, printing progress.
    pub async fn wait_running(
        &self,
        label: &str,
        names: &[String],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut last = Instant::now();
        loop {
            let n = self.running_count(names);
            if n == names.len() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "{label}: only {n}/{} pods Running after {timeout:?}",
                    names.len()
                );
            }
            if last.elapsed() > Duration::from_secs(5) {
                eprintln!(
                    "    {label}: {n}/{} Running ({:.0}s)",
                    names.len(),
                    start.elapsed().as_secs_f64()
                );
                last = Instant::now();
            }
            tokio::time::sleep(poll_interval(names.len())).await;
        }
    }

    /// Waits until no pod exists, printing progress.
    pub async fn wait_empty(&self, label: &str, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut last = Instant::now();
        loop {
            let n = self.live();
            if n == 0 {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("{label}: {n} pods still exist after {timeout:?}");
            }
            if last.elapsed() > Duration::from_secs(5) {
                eprintln!(
                    "    {label}: {n} pods left ({:.0}s)",
                    start.elapsed().as_secs_f64()
                );
                last = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Creates `pods` at `concurrency`; with `mark_running`, also patches each one's status
/// to Running right after creating it (the ideal, zero-cost kubelet of the ceiling).
/// Returns when each create was sent.
pub async fn create_all(
    client: &Client,
    namespace: &str,
    pods: Vec<Pod>,
    concurrency: usize,
    mark_running: bool,
) -> anyhow::Result<HashMap<String, Instant>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let progress = Progress::new("creating", pods.len());
    futures::stream::iter(pods.into_iter().enumerate().map(Ok::<_, anyhow::Error>))
        .try_for_each_concurrent(concurrency, |(i, pod)| {
            let api = api.clone();
            let sent = Arc::clone(&sent);
            let progress = &progress;
            async move {
                let _tick = TickOnDrop(progress);
                let name = pod.metadata.name.clone().unwrap_or_default();
                let t = Instant::now();
                sent.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.clone(), t);
                api.create(&PostParams::default(), &pod).await?;
                if mark_running {
                    let ip = format!("10.250.{}.{}", (i / 250) % 250, i % 250 + 1);
                    let status = json!({"status": {
                        "phase": "Running",
                        "podIP": ip,
                        "hostIP": "127.0.0.1",
                        "conditions": [{"type": "Ready", "status": "True"}]
                    }});
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                        .await?;
                }
                Ok(())
            }
        })
        .await?;
    let map = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(map)
}

/// The names of every pod `api` lists, read as metadata in pages of 1,000 (a namespace
/// may hold 100,000 pods: one list of whole pods would be hundreds of MB).
async fn pod_names(api: &Api<Pod>) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(1000);
    loop {
        let page = api.list_metadata(&params).await?;
        names.extend(page.items.into_iter().filter_map(|p| p.metadata.name));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(names),
        }
    }
}

/// How often [`Observer::wait_running`] counts `n` pods: every 20 ms, less often for
/// large counts (counting 100,000 names every 20 ms would cost the bench a core that
/// the API server needs). Latencies come from the watch, not from this poll.
fn poll_interval(n: usize) -> Duration {
    Duration::from_millis(20).max(Duration::from_micros(n as u64 * 2))
}

/// Deletes every pod of the namespace with `grace` seconds, at `concurrency`.
pub async fn delete_all(
    client: &Client,
    namespace: &str,
    grace: u32,
    concurrency: usize,
) -> anyhow::Result<usize> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let names = pod_names(&api).await?;
    let n = names.len();
    let params = DeleteParams {
        grace_period_seconds: Some(grace),
        ..Default::default()
    };
    let progress = Progress::new("deleting", n);
    futures::stream::iter(names.into_iter().map(Ok::<_, anyhow::Error>))
        .try_for_each_concurrent(concurrency, |name| {
            let api = api.clone();
            let params = params.clone();
            let progress = &progress;
            async move {
                let result = match api.delete(&name, &params).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => Err(e.into()),
                };
                progress.tick();
                result
            }
        })
        .await?;
    Ok(n)
}

/// Ticks its [`Progress`] when dropped, however the request ended.
struct TickOnDrop<'a>(&'a Progress);

impl Drop for TickOnDrop<'_> {
    fn drop(&mut self) {
        self.0.tick();
    }
}

/// Prints `<label>: done/total (seconds)` every 5 s while a batch of at least
/// [`Progress::MIN_TOTAL`] requests runs (100,000 creates or deletes take minutes).
struct Progress {
    label: &'static str,
    total: usize,
    done: std::sync::atomic::AtomicUsize,
    start: Instant,
    last: Mutex<Instant>,
}

impl Progress {
    /// Smaller batches finish before the first line would be printed.
    const MIN_TOTAL: usize = 5_000;

    fn new(label: &'static str, total: usize) -> Self {
        let now = Instant::now();
        Self {
            label,
            total,
            done: std::sync::atomic::AtomicUsize::new(0),
            start: now,
            last: Mutex::new(now),
        }
    }

    /// One more request finished.
    fn tick(&self) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if self.total < Self::MIN_TOTAL {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_secs(5) {
            *last = Instant::now();
            eprintln!(
                "    {}: {done}/{} ({:.0}s)",
                self.label,
                self.total,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}

/// Latencies from `sent` to the first Running observation.
pub fn latencies(observer: &Observer, sent: &HashMap<String, Instant>) -> Vec<Duration> {
    sent.iter()
        .filter_map(|(name, t)| {
            observer
                .running_at(name)
                .map(|r| r.saturating_duration_since(*t))
        })
        .collect()
}

/// Pods per second from the first create to the last Running.
pub fn throughput(observer: &Observer, sent: &HashMap<String, Instant>) -> f64 {
    let first = sent.values().min().copied();
    let last = sent.keys().filter_map(|n| observer.running_at(n)).max();
    match (first, last) {
        (Some(a), Some(b)) if b > a => sent.len() as f64 / b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::{Progress, TickOnDrop};
    use std::sync::atomic::Ordering;

    #[test]
    fn progress_counts_every_finished_request_however_it_ended() {
        let progress = Progress::new("creating", 3);
        progress.tick();
        {
            let _ok = TickOnDrop(&progress);
        }
        fn failing(progress: &Progress) -> Result<(), ()> {
            let _tick = TickOnDrop(progress);
            Err(())
        }
        assert!(failing(&progress).is_err());
        assert_eq!(progress.done.load(Ordering::Relaxed), 3);
    }
}
