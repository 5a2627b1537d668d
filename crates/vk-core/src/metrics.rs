//! Prometheus self-metrics of the controllers, as prometheus-client collectors read at
//! scrape time from the counters the controllers keep anyway (no extra work per event).
//!
//! Names carry the `vk_` prefix; labels are bounded (verb, resource, status code, node
//! name, result), never pod names.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `vk_api_requests_total` | counter | `verb`, `resource`, `code` |
//! | `vk_pod_provider_calls_total` | counter | `node`, `operation` (create/update/delete) |
//! | `vk_pod_sync_failures_total` | counter | `node` |
//! | `vk_pod_status_writes_total` | counter | `node` |
//! | `vk_pod_api_deletes_total` | counter | `node` |
//! | `vk_pod_adopted_total`, `vk_pod_dangling_deleted_total` | counter | `node` |
//! | `vk_pods_tracked`, `vk_pod_queue_depth`, `vk_pod_queue_delayed` | gauge | `node` |
//! | `vk_node_lease_renewals_total` | counter | `node`, `result` |
//! | `vk_node_status_updates_total` | counter | `node`, `result` |
//! | `vk_node_registrations_total` | counter | `node` |
//! | `vk_node_ready` | gauge | `node` (1 when registered and synced) |

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::client::ApiStats;
use crate::node::NodeControllerStats;
use crate::pod::{PodControllerStats, PodGauges};
use crate::runtime::VirtualNode;

/// Exposes [`ApiStats`] as `vk_api_requests_total`.
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
        Ok(())
    }
}

/// One node's handles, as read by [`NodeCollector`].
#[derive(Debug, Clone)]
struct NodeHandles {
    name: String,
    pods: Arc<PodControllerStats>,
    gauges: PodGauges,
    node: Arc<NodeControllerStats>,
    registered: tokio::sync::watch::Receiver<bool>,
}

/// Exposes the controllers' counters of every node in a process.
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
                    gauges: n.pods().gauges(),
                    node: n.node().stats(),
                    registered: n.node().registered(),
                })
                .collect(),
        }
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

fn gauge_family<'a>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (Labels<'a>, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for NodeCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let n = &self.nodes;
        counter_family(
            &mut e,
            "vk_pod_provider_calls",
            "Successful provider pod operations by node and operation",
            n.iter().flat_map(|h| {
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
                "vk_pod_sync_failures",
                "Pod syncs that failed and were retried with backoff",
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
                &mut e,
                name,
                help,
                n.iter()
                    .map(|h| (vec![("node", h.name.as_str())], get(field(&h.pods)))),
            )?;
        }
        let as_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        gauge_family(
            &mut e,
            "vk_pods_tracked",
            "Pods bound to the node that the controller tracks",
            n.iter()
                .map(|h| (vec![("node", h.name.as_str())], as_i64(h.gauges.tracked()))),
        )?;
        gauge_family(
            &mut e,
            "vk_pod_queue_depth",
            "Pod keys waiting for a worker",
            n.iter().map(|h| {
                (
                    vec![("node", h.name.as_str())],
                    as_i64(h.gauges.queue_depth()),
                )
            }),
        )?;
        gauge_family(
            &mut e,
            "vk_pod_queue_delayed",
            "Pod keys waiting for a retry or a deadline",
            n.iter()
                .map(|h| (vec![("node", h.name.as_str())], as_i64(h.gauges.delayed()))),
        )?;
        counter_family(
            &mut e,
            "vk_node_lease_renewals",
            "Lease renewals by result",
            n.iter().flat_map(|h| {
                [
                    ("success", get(&h.node.lease_renewals)),
                    ("error", get(&h.node.lease_failures)),
                ]
                .into_iter()
                .map(move |(r, v)| (vec![("node", h.name.as_str()), ("result", r)], v))
            }),
        )?;
        counter_family(
            &mut e,
            "vk_node_status_updates",
            "Node status writes by result",
            n.iter().flat_map(|h| {
                [
                    ("success", get(&h.node.status_updates)),
                    ("error", get(&h.node.status_failures)),
                ]
                .into_iter()
                .map(move |(r, v)| (vec![("node", h.name.as_str()), ("result", r)], v))
            }),
        )?;
        counter_family(
            &mut e,
            "vk_node_registrations",
            "Times the Node object was created or re-created",
            n.iter()
                .map(|h| (vec![("node", h.name.as_str())], get(&h.node.registrations))),
        )?;
        gauge_family(
            &mut e,
            "vk_node_ready",
            "1 when the node is registered and its pods are synced",
            n.iter().map(|h| {
                let ready = *h.registered.borrow() && h.gauges.synced();
                (vec![("node", h.name.as_str())], i64::from(ready))
            }),
        )?;
        Ok(())
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
    }
}
