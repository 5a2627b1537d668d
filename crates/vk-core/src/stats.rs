//! Node and pod statistics in the kubelet's `stats/v1alpha1` shape (what
//! `/stats/summary` returns), and their rendering as the kubelet's `/metrics/resource`
//! Prometheus text (what metrics-server and `kubectl top` read).
//!
//! A provider that can measure usage implements [`StatsProvider`]; the kubelet API serves
//! both endpoints from it. Field names and JSON keys follow the kubelet exactly; every
//! field is optional as in the kubelet's API.

use std::fmt::Write as _;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

/// `/stats/summary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The node.
    pub node: NodeStats,
    /// Every pod on the node.
    pub pods: Vec<PodStats>,
}

/// Node-level statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// Node name.
    pub node_name: String,
    /// When the node (agent) started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// CPU usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    /// Network usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    /// Root filesystem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
}

/// Identifies a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodReference {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID.
    pub uid: String,
}

/// Pod-level statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    /// The pod.
    pub pod_ref: PodReference,
    /// When the pod started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// Its containers.
    pub containers: Vec<ContainerStats>,
    /// CPU usage of the whole pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory usage of the whole pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    /// Network usage of the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    /// Ephemeral storage.
    #[serde(rename = "ephemeral-storage", skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<FsStats>,
}

/// Container-level statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    /// Container name.
    pub name: String,
    /// When the container started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// CPU usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    /// Root filesystem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<FsStats>,
    /// Logs filesystem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<FsStats>,
}

/// CPU usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    /// When sampled.
    pub time: Option<Time>,
    /// Current usage in nanocores (averaged over the sampling window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    /// Cumulative usage in core-nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

/// Memory usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    /// When sampled.
    pub time: Option<Time>,
    /// Available memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    /// Total usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    /// Working set (what eviction and `kubectl top` use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    /// Resident set size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// Page faults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    /// Major page faults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_page_faults: Option<u64>,
}

/// Network usage of the default interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStats {
    /// When sampled.
    pub time: Option<Time>,
    /// Interface name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Bytes received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_bytes: Option<u64>,
    /// Receive errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_errors: Option<u64>,
    /// Bytes sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_bytes: Option<u64>,
    /// Send errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_errors: Option<u64>,
}

/// Filesystem usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    /// When sampled.
    pub time: Option<Time>,
    /// Available bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    /// Capacity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    /// Used bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
}

/// A provider that can report usage.
#[async_trait]
pub trait StatsProvider: Send + Sync {
    /// The current summary for the node and its pods.
    async fn stats_summary(&self) -> vk_errdefs::Result<Summary>;
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

fn millis(t: &Option<Time>) -> Option<i64> {
    t.as_ref().map(|t| t.0.as_millisecond())
}

/// Escapes a Prometheus label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders `summary` as the kubelet's `/metrics/resource` exposition text.
///
/// ```
/// use vk_core::stats::{Summary, NodeStats, CpuStats};
/// let s = Summary {
///     node: NodeStats {
///         node_name: "n".into(),
///         cpu: Some(CpuStats { time: None, usage_nano_cores: None, usage_core_nano_seconds: Some(2_500_000_000) }),
///         ..Default::default()
///     },
///     pods: vec![],
/// };
/// assert!(vk_core::stats::resource_metrics(&s).contains("node_cpu_usage_seconds_total 2.5"));
/// ```
pub fn resource_metrics(summary: &Summary) -> String {
    let mut samples = ResourceSamples::default();
    samples.add_node(&summary.node);
    for pod in &summary.pods {
        samples.add_pod(pod);
    }
    samples.render()
}

/// One sample of a family: its rendered label set, value and timestamp (Unix ms).
type Sample = (String, f64, Option<i64>);

/// The samples of each `/metrics/resource` family, gathered from a [`Summary`].
#[derive(Default)]
struct ResourceSamples {
    container_cpu: Vec<Sample>,
    container_memory: Vec<Sample>,
    container_start: Vec<Sample>,
    node_cpu: Vec<Sample>,
    node_memory: Vec<Sample>,
    pod_cpu: Vec<Sample>,
    pod_memory: Vec<Sample>,
}

impl ResourceSamples {
    /// Adds the node's CPU and memory (unlabelled).
    fn add_node(&mut self, node: &NodeStats) {
        self.node_cpu.extend(cpu_sample(String::new(), &node.cpu));
        self.node_memory
            .extend(memory_sample(String::new(), &node.memory));
    }

    /// Adds a pod's CPU and memory, then each of its containers.
    fn add_pod(&mut self, pod: &PodStats) {
        let ns = escape(&pod.pod_ref.namespace);
        let name = escape(&pod.pod_ref.name);
        let pod_labels = format!("{{namespace=\"{ns}\",pod=\"{name}\"}}");
        self.pod_cpu
            .extend(cpu_sample(pod_labels.clone(), &pod.cpu));
        self.pod_memory
            .extend(memory_sample(pod_labels, &pod.memory));
        for c in &pod.containers {
            let labels = format!(
                "{{container=\"{}\",namespace=\"{ns}\",pod=\"{name}\"}}",
                escape(&c.name)
            );
            self.container_cpu
                .extend(cpu_sample(labels.clone(), &c.cpu));
            self.container_memory
                .extend(memory_sample(labels.clone(), &c.memory));
            if let Some(t) = &c.start_time {
                self.container_start
                    .push((labels, t.0.as_second() as f64, None));
            }
        }
    }

    /// The exposition text: every family in the kubelet's order, then `scrape_error 0`.
    fn render(self) -> String {
        let families = [
            (
                "container_cpu_usage_seconds_total",
                "counter",
                "Cumulative cpu time consumed by the container in core-seconds",
                self.container_cpu,
            ),
            (
                "container_memory_working_set_bytes",
                "gauge",
                "Current working set of the container in bytes",
                self.container_memory,
            ),
            (
                "container_start_time_seconds",
                "gauge",
                "Start time of the container since unix epoch in seconds",
                self.container_start,
            ),
            (
                "node_cpu_usage_seconds_total",
                "counter",
                "Cumulative cpu time consumed by the node in core-seconds",
                self.node_cpu,
            ),
            (
                "node_memory_working_set_bytes",
                "gauge",
                "Current working set of the node in bytes",
                self.node_memory,
            ),
            (
                "pod_cpu_usage_seconds_total",
                "counter",
                "Cumulative cpu time consumed by the pod in core-seconds",
                self.pod_cpu,
            ),
            (
                "pod_memory_working_set_bytes",
                "gauge",
                "Current working set of the pod in bytes",
                self.pod_memory,
            ),
            (
                "scrape_error",
                "gauge",
                "1 if there was an error while getting container metrics, 0 otherwise",
                vec![(String::new(), 0.0, None)],
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, samples) in families {
            write_family(&mut out, name, kind, help, &samples);
        }
        out
    }
}

/// The cumulative CPU sample of `cpu`, if it reports one.
fn cpu_sample(labels: String, cpu: &Option<CpuStats>) -> Option<Sample> {
    let c = cpu.as_ref()?;
    let v = c.usage_core_nano_seconds?;
    Some((labels, seconds(v), millis(&c.time)))
}

/// The working-set sample of `memory`, if it reports one.
fn memory_sample(labels: String, memory: &Option<MemoryStats>) -> Option<Sample> {
    let m = memory.as_ref()?;
    let v = m.working_set_bytes?;
    Some((labels, v as f64, millis(&m.time)))
}

/// Appends one family (HELP, TYPE, then its samples) to `out`.
fn write_family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[Sample]) {
    let _ = writeln!(out, "# HELP {name} [ALPHA] {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value, ts) in samples {
        let _ = match ts {
            Some(ts) => writeln!(out, "{name}{labels} {value} {ts}"),
            None => writeln!(out, "{name}{labels} {value}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn sample() -> Summary {
        let t = Some(Time(Timestamp::from_second(1_700_000_000).expect("ts")));
        Summary {
            node: NodeStats {
                node_name: "vk".into(),
                cpu: Some(CpuStats {
                    time: t.clone(),
                    usage_nano_cores: Some(5_000_000),
                    usage_core_nano_seconds: Some(12_000_000_000),
                }),
                memory: Some(MemoryStats {
                    time: t.clone(),
                    working_set_bytes: Some(1024),
                    ..Default::default()
                }),
                ..Default::default()
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "web".into(),
                    namespace: "ns".into(),
                    uid: "u".into(),
                },
                containers: vec![ContainerStats {
                    name: "c".into(),
                    start_time: t.clone(),
                    cpu: Some(CpuStats {
                        time: t.clone(),
                        usage_nano_cores: Some(1),
                        usage_core_nano_seconds: Some(500_000_000),
                    }),
                    memory: Some(MemoryStats {
                        time: t.clone(),
                        working_set_bytes: Some(2048),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn summary_json_uses_the_kubelet_keys() {
        let v = serde_json::to_value(sample()).expect("json");
        assert_eq!(v["node"]["nodeName"], "vk");
        assert_eq!(v["node"]["cpu"]["usageNanoCores"], 5_000_000);
        assert_eq!(v["node"]["cpu"]["usageCoreNanoSeconds"], 12_000_000_000u64);
        assert_eq!(v["node"]["memory"]["workingSetBytes"], 1024);
        assert_eq!(v["pods"][0]["podRef"]["namespace"], "ns");
        assert_eq!(
            v["pods"][0]["containers"][0]["memory"]["workingSetBytes"],
            2048
        );
        assert_eq!(v["node"]["cpu"]["time"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn resource_metrics_match_the_kubelet_exposition() {
        let text = resource_metrics(&sample());
        assert!(text.contains("# TYPE node_cpu_usage_seconds_total counter"));
        assert!(text.contains("node_cpu_usage_seconds_total 12 1700000000000\n"));
        assert!(text.contains("node_memory_working_set_bytes 1024 1700000000000\n"));
        assert!(text.contains(
            "container_cpu_usage_seconds_total{container=\"c\",namespace=\"ns\",pod=\"web\"} 0.5 1700000000000\n"
        ));
        assert!(text.contains(
            "container_memory_working_set_bytes{container=\"c\",namespace=\"ns\",pod=\"web\"} 2048 1700000000000\n"
        ));
        assert!(text.contains("scrape_error 0\n"));
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
