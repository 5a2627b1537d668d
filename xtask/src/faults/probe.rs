//! Looking at the cluster and the provider from outside: the Node's Ready condition, its
//! Lease, the pods of a namespace, the provider's own counters; and waiting for one of
//! them to change, for at most a given time.
//!
//! Unlike `vk_testkit::wait::eventually`, which fails a test when its patience runs out,
//! waiting here answers `None`: a fault suite records what did not happen as a row that
//! is not met and goes on.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::time::Instant;
use vk_testkit::prometheus::Metrics;

/// How often waits look again.
const POLL: Duration = Duration::from_millis(200);

/// Polls `probe` until it yields a value; `None` once `limit` has passed since `since`.
pub async fn poll<T, F, Fut>(since: Instant, limit: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if since.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How long after `since` `probe` first said yes; `None` if it did not before `limit`.
pub async fn time_until<F, Fut>(since: Instant, limit: Duration, mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll(since, limit, || {
        let answer = probe();
        async move { answer.await.then(|| since.elapsed()) }
    })
    .await
}

/// The Node's Ready condition: its status (`True`, `False`, `Unknown`) and reason; `None`
/// when the Node (or the condition) is missing or cannot be read.
pub async fn ready_condition(client: &Client, node: &str) -> Option<(String, String)> {
    let n = Api::<Node>::all(client.clone())
        .get_opt(node)
        .await
        .ok()??;
    n.status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status, c.reason.unwrap_or_default()))
}

/// Whether the Node is Ready.
pub async fn is_ready(client: &Client, node: &str) -> bool {
    ready_condition(client, node)
        .await
        .is_some_and(|(status, _)| status == "True")
}

/// The Node's UID, if it exists.
pub async fn node_uid(client: &Client, node: &str) -> Option<String> {
    Api::<Node>::all(client.clone())
        .get_opt(node)
        .await
        .ok()??
        .metadata
        .uid
}

/// The node's Lease in `kube-node-lease`, if it exists.
pub async fn lease(client: &Client, node: &str) -> Option<Lease> {
    Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
        .get_opt(node)
        .await
        .ok()?
}

/// When the Lease was last renewed.
pub fn renew_time(lease: &Lease) -> Option<Timestamp> {
    lease.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)
}

/// Whether the node's Lease was renewed at or after `since` and the Node is Ready: the
/// node is back.
pub async fn renewed_and_ready(client: &Client, node: &str, since: Timestamp) -> bool {
    let renewed = lease(client, node)
        .await
        .and_then(|l| renew_time(&l))
        .is_some_and(|t| t >= since);
    renewed && is_ready(client, node).await
}

/// What [`NodeWatch`] saw.
#[derive(Debug, Clone, Default)]
pub struct NodeWatchReport {
    /// Every distinct Lease renewal time seen.
    pub renewals: Vec<Timestamp>,
    /// Looks at the Node (once a second).
    pub looks: u64,
    /// Looks that found it not Ready (or missing).
    pub not_ready: u64,
}

/// Looks at a node's Lease and Ready condition once a second in the background, to
/// tell whether renewals stayed on time and the node stayed Ready over a period.
pub struct NodeWatch {
    seen: std::sync::Arc<std::sync::Mutex<NodeWatchReport>>,
    task: tokio::task::JoinHandle<()>,
}

impl NodeWatch {
    /// Starts watching `node`.
    pub fn start(client: Client, node: String) -> Self {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(NodeWatchReport::default()));
        let task = tokio::spawn({
            let seen = std::sync::Arc::clone(&seen);
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let renewed = lease(&client, &node).await.and_then(|l| renew_time(&l));
                    let ready = is_ready(&client, &node).await;
                    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(t) = renewed
                        && !s.renewals.contains(&t)
                    {
                        s.renewals.push(t);
                    }
                    s.looks += 1;
                    if !ready {
                        s.not_ready += 1;
                    }
                }
            }
        });
        Self { seen, task }
    }

    /// What it saw so far.
    pub fn report(&self) -> NodeWatchReport {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for NodeWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One pod as the API server has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Its UID (a re-created pod has a new one).
    pub uid: String,
    /// `status.phase`.
    pub phase: String,
    /// Whether its deletion was requested.
    pub terminating: bool,
    /// `status.startTime` (set by the provider when it created the pod).
    pub start_time: Option<Timestamp>,
}

impl PodView {
    fn of(pod: &Pod) -> Self {
        let status = pod.status.as_ref();
        Self {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            start_time: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
        }
    }

    /// Running and not being deleted.
    pub fn running(&self) -> bool {
        self.phase == "Running" && !self.terminating
    }
}

/// The pods of a namespace, by name.
#[derive(Debug, Clone, Default)]
pub struct Census(pub BTreeMap<String, PodView>);

impl Census {
    /// Lists the pods of `namespace`.
    pub async fn take(client: &Client, namespace: &str) -> kube::Result<Self> {
        let pods = Api::<Pod>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await?;
        Ok(Self(
            pods.items
                .iter()
                .filter_map(|p| Some((p.metadata.name.clone()?, PodView::of(p))))
                .collect(),
        ))
    }

    /// How many pods exist.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// How many of `names` are Running.
    pub fn running(&self, names: &[String]) -> usize {
        names
            .iter()
            .filter(|n| self.0.get(*n).is_some_and(PodView::running))
            .count()
    }

    /// How many of the pods in `before` are gone or were replaced (another UID).
    pub fn lost_since(&self, before: &Census) -> usize {
        before
            .0
            .iter()
            .filter(|(name, was)| self.0.get(*name).is_none_or(|now| now.uid != was.uid))
            .count()
    }
}

/// The provider's metrics, from its admin listener.
pub async fn provider_metrics(port: u16) -> anyhow::Result<Metrics> {
    let (code, text) = vk_testkit::http::get(port, "/metrics").await?;
    anyhow::ensure!(code == 200, "GET /metrics answered {code}");
    Ok(Metrics::parse(&text)?)
}

/// Counters of the provider process read from its metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ProviderCounts {
    /// Successful provider creates.
    pub creates: u64,
    /// Successful provider deletes.
    pub deletes: u64,
    /// Failed provider creates.
    pub create_errors: u64,
    /// Failed provider deletes.
    pub delete_errors: u64,
    /// Provider pods adopted at start-up.
    pub adopted: u64,
    /// Provider pods deleted as dangling (no pod in the API).
    pub dangling_deleted: u64,
    /// Pods the pod controller tracks.
    pub tracked: u64,
    /// Keys queued or waiting for a retry.
    pub queued: u64,
}

impl ProviderCounts {
    /// The counts in `m`.
    pub fn of(m: &Metrics) -> Self {
        let n = |name: &str, with: &[(&str, &str)]| m.sum(name, with) as u64;
        Self {
            creates: n("vk_pod_provider_calls_total", &[("operation", "create")]),
            deletes: n("vk_pod_provider_calls_total", &[("operation", "delete")]),
            create_errors: n(
                "vk_provider_call_errors_total",
                &[("operation", "create_pod")],
            ),
            delete_errors: n(
                "vk_provider_call_errors_total",
                &[("operation", "delete_pod")],
            ),
            adopted: n("vk_pod_adopted_total", &[]),
            dangling_deleted: n("vk_pod_dangling_deleted_total", &[]),
            tracked: n("vk_pods_tracked", &[]),
            queued: n("vk_pod_queue_depth", &[]) + n("vk_pod_queue_delayed", &[]),
        }
    }

    /// Reads them from the provider's admin listener on `port`.
    pub async fn read(port: u16) -> anyhow::Result<Self> {
        Ok(Self::of(&provider_metrics(port).await?))
    }
}

/// The open file descriptors of process `pid` that are sockets, and the others (files,
/// pipes, eventfds...); zeros when it is gone.
pub fn fd_kinds(pid: u32) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (0, 0);
    };
    let (mut sockets, mut others) = (0, 0);
    for entry in entries.flatten() {
        match std::fs::read_link(entry.path()) {
            Ok(target) if target.to_string_lossy().starts_with("socket:") => sockets += 1,
            Ok(_) => others += 1,
            // Closed between the listing and the read.
            Err(_) => {}
        }
    }
    (sockets, others)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(uid: &str, phase: &str) -> PodView {
        PodView {
            uid: uid.into(),
            phase: phase.into(),
            terminating: false,
            start_time: None,
        }
    }

    #[test]
    fn census_counts_running_and_lost_pods() {
        let before = Census(
            [("a", "1"), ("b", "2"), ("c", "3")]
                .into_iter()
                .map(|(n, u)| (n.to_owned(), view(u, "Running")))
                .collect(),
        );
        let mut now = before.clone();
        now.0.remove("a"); // gone
        now.0.insert("b".into(), view("2b", "Running")); // re-created
        now.0.insert(
            "c".into(),
            PodView {
                terminating: true,
                ..view("3", "Running")
            },
        );
        assert_eq!(now.lost_since(&before), 2);
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(before.running(&names), 3);
        assert_eq!(now.running(&names), 1, "c is being deleted");
    }

    #[test]
    fn provider_counts_from_metrics() {
        let m = Metrics::parse(
            "vk_pod_provider_calls_total{node=\"n\",operation=\"create\"} 300\n\
             vk_pod_provider_calls_total{node=\"n\",operation=\"delete\"} 7\n\
             vk_provider_call_errors_total{operation=\"create_pod\",kind=\"unavailable\"} 61\n\
             vk_pod_adopted_total{node=\"n\"} 1000\n\
             vk_pods_tracked{node=\"n\"} 1000\n\
             vk_pod_queue_depth{node=\"n\"} 2\n\
             vk_pod_queue_delayed{node=\"n\"} 1\n",
        )
        .expect("metrics");
        let c = ProviderCounts::of(&m);
        assert_eq!(
            (c.creates, c.deletes, c.create_errors, c.delete_errors),
            (300, 7, 61, 0)
        );
        assert_eq!((c.adopted, c.tracked, c.queued), (1000, 1000, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn time_until_measures_from_since_and_gives_up() {
        let since = Instant::now();
        let ready_at = Instant::now() + Duration::from_secs(3);
        let t = time_until(since, Duration::from_secs(10), || async move {
            Instant::now() >= ready_at
        })
        .await;
        assert!(t.is_some_and(|t| t >= Duration::from_secs(3)), "{t:?}");
        let never = time_until(Instant::now(), Duration::from_secs(2), || async { false }).await;
        assert_eq!(never, None);
    }
}
