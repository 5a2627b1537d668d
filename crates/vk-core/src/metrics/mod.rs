//! Prometheus self-metrics of the controllers, as prometheus-client collectors read at
//! scrape time from the counters and histograms the controllers keep (a few relaxed
//! atomic adds per event, no allocation, no lock on the pod path).
//!
//! Names carry the `vk_` prefix and follow Prometheus conventions (`_total` counters,
//! `_seconds`/`_bytes` units). Labels are bounded: verb, resource, status code, node
//! name, operation, result, error kind, phase — never pod names. Histograms carry no
//! `node` label (a process may run a thousand nodes): they sum every node of the
//! process. Buckets: [`histogram::BUCKETS`].
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `vk_api_requests_total` | counter | `verb`, `resource`, `code` (0 = transport error) |
//! | `vk_api_request_duration_seconds` | histogram | `verb`, `resource` (until response headers; watches until they open) |
//! | `vk_pod_sync_duration_seconds` | histogram | `operation` (create/update/delete/status/none), `result` (ok/requeue/retry) |
//! | `vk_provider_call_duration_seconds` | histogram | `operation` (create_pod/update_pod/delete_pod/get_pod_status/get_pods) |
//! | `vk_provider_call_errors_total` | counter | `operation`, `kind` (not_found, invalid_input, already_exists, conflict, unavailable, not_implemented, forbidden, unknown) |
//! | `vk_pod_provider_calls_total` | counter | `node`, `operation` (create/update/delete; successful calls) |
//! | `vk_pod_queue_retries_total` | counter | `node` (syncs that failed and were requeued with backoff) |
//! | `vk_pod_status_writes_total` | counter | `node` |
//! | `vk_pod_api_deletes_total` | counter | `node` |
//! | `vk_pod_adopted_total`, `vk_pod_dangling_deleted_total` | counter | `node` |
//! | `vk_pods` | gauge | `node`, `phase` (Pending/Running/Succeeded/Failed/Unknown, as the API reports it) |
//! | `vk_pods_tracked`, `vk_pod_queue_depth`, `vk_pod_queue_delayed` | gauge | `node` |
//! | `vk_node_lease_renewals_total` | counter | `node`, `result` (success/error) |
//! | `vk_node_lease_last_renewal_timestamp_seconds` | gauge | `node` (Unix time of the last success) |
//! | `vk_node_status_updates_total` | counter | `node`, `result` (success/error) |
//! | `vk_node_status_last_update_timestamp_seconds` | gauge | `node` (Unix time of the last success) |
//! | `vk_node_registrations_total` | counter | `node` |
//! | `vk_node_ready` | gauge | `node` (1 when registered and synced) |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_threads`, `process_start_time_seconds` | counter/gauge | none ([`process::ProcessCollector`]) |
//!
//! Histograms and error counters appear once they have an observation; the timestamp
//! gauges once there was a success. `provider_call` metrics count every call, also
//! those the controller treats as success (`not_found` from `delete_pod`,
//! `already_exists` from `create_pod`) and dangling-pod deletes.

pub mod histogram;
pub mod process;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use self::histogram::HistogramSnapshot;
use crate::client::ApiStats;
use crate::node::NodeControllerStats;
use crate::pod::observe::{ERROR_KINDS, Phase, PodMetrics, ProviderOp, SyncOperation, SyncResult};
use crate::pod::{PodControllerStats, PodGauges};
use crate::runtime::VirtualNode;

pub use self::process::ProcessCollector;

/// Exposes [`ApiStats`] as `vk_api_requests_total`, `vk_api_retries_total`,
/// `vk_api_client_rate_limit` and `vk_api_request_duration_seconds`.
#[derive(Debug, Clone)]
pub struct ApiCollector(pub ApiStats);

impl Collector for ApiCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "vk_api_requests",
            "Requests to the Kubernetes API server by verb, resource and HTTP status (0 = transport error)",
            None,
            MetricType::Counter,
        )?;
        for (key, count) in self.0.snapshot() {
            let code = key.code.to_string();
            let labels = [
                ("verb", key.verb),
                ("resource", key.resource.as_str()),
                ("code", code.as_str()),
            ];
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        ConstCounter::new(self.0.retries()).encode(encoder.encode_descriptor(
            "vk_api_retries",
            "Requests sent again after the API server answered 429, 503 or 504 (Retry-After honoured)",
            None,
            MetricType::Counter,
        )?)?;
        ConstGauge::new(self.0.rate_limit()).encode(encoder.encode_descriptor(
            "vk_api_client_rate_limit",
            "The client-side rate limit in force, in requests per second (0 = none; adaptive unless --kube-api-qps/--kube-api-burst are set)",
            None,
            MetricType::Gauge,
        )?)?;
        let mut family = encoder.encode_descriptor(
            "vk_api_request_duration_seconds",
            "Time until the API server's response headers arrived, by verb and resource",
            None,
            MetricType::Histogram,
        )?;
        for (verb, resource, h) in self.0.durations() {
            let labels = [("verb", verb), ("resource", resource.as_str())];
            h.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// One node's handles, as read by [`NodeCollector`].
#[derive(Debug, Clone)]
struct NodeHandles {
    name: String,
    pods: Arc<PodControllerStats>,
    metrics: Arc<PodMetrics>,
    gauges: PodGauges,
    node: Arc<NodeControllerStats>,
    registered: tokio::sync::watch::Receiver<bool>,
}

/// Exposes the controllers' counters and histograms of every node in a process.
#[derive(Debug, Clone, Default)]
pub struct NodeCollector {
    nodes: Vec<NodeHandles>,
}

impl NodeCollector {
    /// A collector over `nodes`.
    pub fn new(nodes: &[VirtualNode]) -> Self {
        Self {
            nodes: nodes
                .iter()
                .map(|n| NodeHandles {
                    name: n.name().to_owned(),
                    pods: n.pods().stats(),
                    metrics: n.pods().metrics(),
                    gauges: n.pods().gauges(),
                    node: n.node().stats(),
                    registered: n.node().registered(),
                })
                .collect(),
        }
    }

    /// The process-wide histograms and error counters (summed over nodes).
    fn encode_pod_metrics(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let metrics: Vec<&PodMetrics> = self.nodes.iter().map(|h| h.metrics.as_ref()).collect();
        let mut family = e.encode_descriptor(
            "vk_pod_sync_duration_seconds",
            "Pod syncs by what they did and how they ended",
            None,
            MetricType::Histogram,
        )?;
        for op in SyncOperation::ALL {
            for res in SyncResult::ALL {
                let mut h = HistogramSnapshot::default();
                for m in &metrics {
                    m.add_sync(op, res, &mut h);
                }
                if h.count() > 0 {
                    let labels = [("operation", op.as_str()), ("result", res.as_str())];
                    h.encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut family = e.encode_descriptor(
            "vk_provider_call_duration_seconds",
            "Provider calls by operation, successful or not",
            None,
            MetricType::Histogram,
        )?;
        for op in ProviderOp::ALL {
            let mut h = HistogramSnapshot::default();
            for m in &metrics {
                m.add_provider_call(op, &mut h);
            }
            if h.count() > 0 {
                h.encode(family.encode_family(&[("operation", op.as_str())])?)?;
            }
        }
        let mut family = e.encode_descriptor(
            "vk_provider_call_errors",
            "Provider calls that returned an error, by operation and error kind",
            None,
            MetricType::Counter,
        )?;
        for op in ProviderOp::ALL {
            for kind in ERROR_KINDS {
                let n: u64 = metrics.iter().map(|m| m.provider_errors(op, kind)).sum();
                if n > 0 {
                    let labels = [("operation", op.as_str()), ("kind", kind)];
                    ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A per-node pod counter: metric name, help, and how to read it.
type CounterField = (
    &'static str,
    &'static str,
    fn(&PodControllerStats) -> &AtomicU64,
);

fn counter_family<'a>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (Labels<'a>, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge_family<'a, N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (Labels<'a>, N)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for NodeCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.encode_pod_metrics(&mut e)?;
        self.encode_pod_counters(&mut e)?;
        self.encode_pod_gauges(&mut e)?;
        self.encode_node_metrics(&mut e)?;
        Ok(())
    }
}

/// The `node` label of one node's samples.
fn node_label(h: &NodeHandles) -> Labels<'_> {
    vec![("node", h.name.as_str())]
}

/// `usize` gauges as `i64`, saturating.
fn as_i64(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl NodeCollector {
    /// The per-node pod controller counters: provider calls by operation, retries,
    /// status writes, API deletes, adoptions and dangling deletes.
    fn encode_pod_counters(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        counter_family(
            e,
            "vk_pod_provider_calls",
            "Successful provider pod operations by node and operation",
            self.nodes.iter().flat_map(|h| {
                [
                    ("create", get(&h.pods.creates)),
                    ("update", get(&h.pods.updates)),
                    ("delete", get(&h.pods.deletes)),
                ]
                .into_iter()
                .map(move |(op, v)| (vec![("node", h.name.as_str()), ("operation", op)], v))
            }),
        )?;
        let simple: [CounterField; 5] = [
            (
                "vk_pod_queue_retries",
                "Pod syncs that failed and were requeued with backoff",
                |s| &s.failures,
            ),
            ("vk_pod_status_writes", "Pod status patches written", |s| {
                &s.status_patches
            }),
            (
                "vk_pod_api_deletes",
                "Pods removed from the API after termination (grace 0)",
                |s| &s.api_deletes,
            ),
            ("vk_pod_adopted", "Provider pods adopted at start-up", |s| {
                &s.adopted
            }),
            (
                "vk_pod_dangling_deleted",
                "Dangling provider pods deleted",
                |s| &s.dangling_deleted,
            ),
        ];
        for (name, help, field) in simple {
            counter_family(
                e,
                name,
                help,
                self.nodes
                    .iter()
                    .map(|h| (node_label(h), get(field(&h.pods)))),
            )?;
        }
        Ok(())
    }

    /// The per-node pod gauges: pods tracked, pods by phase, and the queue's depth and
    /// delayed keys.
    fn encode_pod_gauges(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let n = &self.nodes;
        gauge_family(
            e,
            "vk_pods_tracked",
            "Pods bound to the node that the controller tracks",
            n.iter()
                .map(|h| (node_label(h), as_i64(h.gauges.tracked()))),
        )?;
        gauge_family(
            e,
            "vk_pods",
            "Pods the controller tracks, by the phase the API reports",
            n.iter().flat_map(|h| {
                Phase::ALL.into_iter().map(move |p| {
                    (
                        vec![("node", h.name.as_str()), ("phase", p.as_str())],
                        h.metrics.pods_in(p),
                    )
                })
            }),
        )?;
        gauge_family(
            e,
            "vk_pod_queue_depth",
            "Pod keys waiting for a worker",
            n.iter()
                .map(|h| (node_label(h), as_i64(h.gauges.queue_depth()))),
        )?;
        gauge_family(
            e,
            "vk_pod_queue_delayed",
            "Pod keys waiting for a retry or a deadline",
            n.iter()
                .map(|h| (node_label(h), as_i64(h.gauges.delayed()))),
        )
    }

    /// The node controller's metrics: lease renewals and status writes (by result, with
    /// the time of the last success), registrations, and readiness.
    fn encode_node_metrics(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.result_counter(
            e,
            "vk_node_lease_renewals",
            "Lease renewals by result",
            |s| (get(&s.lease_renewals), get(&s.lease_failures)),
        )?;
        self.timestamp_gauge(
            e,
            "vk_node_lease_last_renewal_timestamp_seconds",
            "Unix time of the last successful Lease renewal",
            NodeControllerStats::last_lease_renewal,
        )?;
        self.result_counter(
            e,
            "vk_node_status_updates",
            "Node status writes by result",
            |s| (get(&s.status_updates), get(&s.status_failures)),
        )?;
        self.timestamp_gauge(
            e,
            "vk_node_status_last_update_timestamp_seconds",
            "Unix time of the last successful Node status write",
            NodeControllerStats::last_status_update,
        )?;
        counter_family(
            e,
            "vk_node_registrations",
            "Times the Node object was created or re-created",
            self.nodes
                .iter()
                .map(|h| (node_label(h), get(&h.node.registrations))),
        )?;
        gauge_family(
            e,
            "vk_node_ready",
            "1 when the node is registered and its pods are synced",
            self.nodes.iter().map(|h| {
                let ready = *h.registered.borrow() && h.gauges.synced();
                (node_label(h), i64::from(ready))
            }),
        )
    }

    /// A per-node counter by `result`, from `read`'s (success, error) counts.
    fn result_counter(
        &self,
        e: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        read: fn(&NodeControllerStats) -> (u64, u64),
    ) -> Result<(), std::fmt::Error> {
        counter_family(
            e,
            name,
            help,
            self.nodes.iter().flat_map(|h| {
                let (success, error) = read(&h.node);
                [("success", success), ("error", error)]
                    .into_iter()
                    .map(move |(r, v)| (vec![("node", h.name.as_str()), ("result", r)], v))
            }),
        )
    }

    /// A per-node Unix-time gauge from `read`, for the nodes that have one.
    fn timestamp_gauge(
        &self,
        e: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        read: fn(&NodeControllerStats) -> Option<f64>,
    ) -> Result<(), std::fmt::Error> {
        gauge_family(
            e,
            name,
            help,
            self.nodes
                .iter()
                .filter_map(|h| Some((node_label(h), read(&h.node)?))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RequestKey;

    #[test]
    fn api_requests_render_as_a_counter_family() {
        let stats = ApiStats::default();
        stats.record_for_test(RequestKey {
            verb: "patch",
            resource: "pods/status".into(),
            code: 200,
        });
        stats.record_for_test(RequestKey {
            verb: "patch",
            resource: "pods/status".into(),
            code: 200,
        });
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ApiCollector(stats)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains("# TYPE vk_api_requests counter"), "{text}");
        assert!(
            text.contains(
                "vk_api_requests_total{verb=\"patch\",resource=\"pods/status\",code=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE vk_api_request_duration_seconds histogram"),
            "{text}"
        );
        for line in [
            "vk_api_request_duration_seconds_count{verb=\"patch\",resource=\"pods/status\"} 2",
            "vk_api_request_duration_seconds_bucket{le=\"0.005\",verb=\"patch\",resource=\"pods/status\"} 2",
            "vk_api_request_duration_seconds_bucket{le=\"+Inf\",verb=\"patch\",resource=\"pods/status\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }

    fn encode(collector: NodeCollector) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(collector));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text
    }

    fn node(name: &str) -> VirtualNode {
        let client = crate::pod::tests::offline_client();
        VirtualNode::builder(client, crate::node::NodeTemplate::new(name, "test"))
            .pod_handler(std::sync::Arc::new(crate::pod::tests::Failing))
            .events(false)
            .build()
            .expect("node")
    }

    #[tokio::test]
    async fn node_metrics_sum_histograms_over_nodes_and_label_gauges_by_node() {
        let nodes = [node("n1"), node("n2")];
        for n in &nodes {
            let m = n.pods().metrics();
            let elapsed = std::time::Duration::from_millis(30);
            m.observe_sync(SyncOperation::Create, SyncResult::Ok, elapsed);
            m.move_phase(None, Some(Phase::Running));
        }
        nodes[0]
            .pods()
            .metrics()
            .move_phase(None, Some(Phase::Pending));
        nodes[0]
            .pods()
            .stats()
            .failures
            .fetch_add(3, Ordering::Relaxed);
        let stats = nodes[1].node().stats();
        stats
            .lease_last_renewal
            .store(1_700_000_000.5f64.to_bits(), Ordering::Relaxed);
        let text = encode(NodeCollector::new(&nodes));
        for line in [
            "# TYPE vk_pod_sync_duration_seconds histogram",
            "vk_pod_sync_duration_seconds_count{operation=\"create\",result=\"ok\"} 2",
            "vk_pod_sync_duration_seconds_bucket{le=\"0.025\",operation=\"create\",result=\"ok\"} 0",
            "vk_pod_sync_duration_seconds_bucket{le=\"+Inf\",operation=\"create\",result=\"ok\"} 2",
            "# TYPE vk_provider_call_duration_seconds histogram",
            "# TYPE vk_provider_call_errors counter",
            "# TYPE vk_pods gauge",
            "vk_pods{node=\"n1\",phase=\"Running\"} 1",
            "vk_pods{node=\"n1\",phase=\"Pending\"} 1",
            "vk_pods{node=\"n2\",phase=\"Running\"} 1",
            "vk_pods{node=\"n2\",phase=\"Pending\"} 0",
            "vk_pods{node=\"n2\",phase=\"Failed\"} 0",
            "# TYPE vk_pod_queue_retries counter",
            "vk_pod_queue_retries_total{node=\"n1\"} 3",
            "vk_pod_queue_retries_total{node=\"n2\"} 0",
            "# TYPE vk_node_lease_last_renewal_timestamp_seconds gauge",
            "vk_node_lease_last_renewal_timestamp_seconds{node=\"n2\"} 1700000000.5",
            "# TYPE vk_node_status_last_update_timestamp_seconds gauge",
            "vk_node_ready{node=\"n1\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        // Nothing observed, nothing shown; never-renewed nodes have no timestamp.
        assert!(!text.contains("result=\"retry\""), "{text}");
        assert!(
            !text.contains("vk_provider_call_duration_seconds_count"),
            "{text}"
        );
        assert!(!text.contains("timestamp_seconds{node=\"n1\"}"), "{text}");
        assert!(!text.contains("vk_pod_sync_failures"), "{text}");
        // Histograms carry no node label.
        assert!(
            text.lines()
                .filter(|l| l.starts_with("vk_pod_sync_duration_seconds"))
                .all(|l| !l.contains("node=")),
            "{text}"
        );
    }
}
