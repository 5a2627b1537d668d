//! Fake but kubelet-shaped statistics: every running container uses a steady 10
//! millicores and 16 MiB, so cumulative CPU grows with uptime and `kubectl top` shows
//! plausible, predictable numbers.

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use vk_core::stats::{
    ContainerStats, CpuStats, MemoryStats, NodeStats, PodReference, PodStats, StatsProvider,
    Summary,
};

use crate::provider::MockProvider;

/// CPU each container uses, in nanocores (10 millicores).
pub const CONTAINER_NANO_CORES: u64 = 10_000_000;
/// Working set of each container, in bytes (16 MiB).
pub const CONTAINER_WORKING_SET: u64 = 16 << 20;

fn cpu(now: &Time, nano_cores: u64, since: Option<&Time>) -> CpuStats {
    let uptime_ns = since
        .map(|s| now.0.duration_since(s.0).as_nanos().max(0))
        .unwrap_or(0);
    let cumulative = u64::try_from(uptime_ns).unwrap_or(u64::MAX) / 1_000_000_000 * nano_cores
        + (u64::try_from(uptime_ns).unwrap_or(0) % 1_000_000_000) * nano_cores / 1_000_000_000;
    CpuStats {
        time: Some(now.clone()),
        usage_nano_cores: Some(nano_cores),
        usage_core_nano_seconds: Some(cumulative),
    }
}

fn memory(now: &Time, bytes: u64) -> MemoryStats {
    MemoryStats {
        time: Some(now.clone()),
        usage_bytes: Some(bytes),
        working_set_bytes: Some(bytes),
        rss_bytes: Some(bytes),
        ..Default::default()
    }
}

#[async_trait]
impl StatsProvider for MockProvider {
    async fn stats_summary(&self) -> vk_errdefs::Result<Summary> {
        let now = Time(Timestamp::now());
        let mut pods = Vec::new();
        let (mut node_cpu, mut node_cpu_total, mut node_mem) = (0u64, 0u64, 0u64);
        for pod in self.running_pods() {
            let status = pod.status.clone().unwrap_or_default();
            let start = status.start_time.clone();
            let mut containers = Vec::new();
            for c in status.container_statuses.iter().flatten() {
                let started = c
                    .state
                    .as_ref()
                    .and_then(|s| s.running.as_ref())
                    .and_then(|r| r.started_at.clone());
                let Some(started) = started else { continue };
                containers.push(ContainerStats {
                    name: c.name.clone(),
                    start_time: Some(started.clone()),
                    cpu: Some(cpu(&now, CONTAINER_NANO_CORES, Some(&started))),
                    memory: Some(memory(&now, CONTAINER_WORKING_SET)),
                    ..Default::default()
                });
            }
            let n = containers.len() as u64;
            let pod_cpu_total: u64 = containers
                .iter()
                .filter_map(|c| c.cpu.as_ref()?.usage_core_nano_seconds)
                .sum();
            node_cpu += n * CONTAINER_NANO_CORES;
            node_cpu_total += pod_cpu_total;
            node_mem += n * CONTAINER_WORKING_SET;
            pods.push(PodStats {
                pod_ref: PodReference {
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                    uid: pod.metadata.uid.clone().unwrap_or_default(),
                },
                start_time: start,
                cpu: Some(CpuStats {
                    time: Some(now.clone()),
                    usage_nano_cores: Some(n * CONTAINER_NANO_CORES),
                    usage_core_nano_seconds: Some(pod_cpu_total),
                }),
                memory: Some(memory(&now, n * CONTAINER_WORKING_SET)),
                containers,
                ..Default::default()
            });
        }
        Ok(Summary {
            node: NodeStats {
                node_name: self.node_name().to_owned(),
                start_time: Some(self.started_at()),
                cpu: Some(CpuStats {
                    time: Some(now.clone()),
                    usage_nano_cores: Some(node_cpu),
                    usage_core_nano_seconds: Some(node_cpu_total),
                }),
                memory: Some(memory(&now, node_mem)),
                ..Default::default()
            },
            pods,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vk_core::PodLifecycleHandler as _;

    #[tokio::test]
    async fn running_pods_have_kubelet_shaped_stats_and_metrics() {
        let mock = MockProvider::new("n", Default::default());
        let pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}
        }))
        .expect("pod");
        mock.create_pod(&pod).await.expect("create");
        let summary = mock.stats_summary().await.expect("stats");
        assert_eq!(summary.node.node_name, "n");
        assert_eq!(summary.pods.len(), 1);
        let p = &summary.pods[0];
        assert_eq!(p.pod_ref.namespace, "ns");
        assert_eq!(p.containers.len(), 2);
        assert_eq!(
            p.memory.as_ref().and_then(|m| m.working_set_bytes),
            Some(2 * CONTAINER_WORKING_SET)
        );
        assert_eq!(
            summary.node.cpu.as_ref().and_then(|c| c.usage_nano_cores),
            Some(2 * CONTAINER_NANO_CORES)
        );
        let text = vk_core::stats::resource_metrics(&summary);
        assert!(text.contains(
            "container_memory_working_set_bytes{container=\"a\",namespace=\"ns\",pod=\"web\"} 16777216"
        ));
        assert!(
            text.contains("pod_memory_working_set_bytes{namespace=\"ns\",pod=\"web\"} 33554432")
        );
    }

    #[test]
    fn cumulative_cpu_grows_with_uptime() {
        let start = Time(Timestamp::from_second(1000).expect("ts"));
        let now = Time(Timestamp::from_second(1010).expect("ts"));
        let c = cpu(&now, CONTAINER_NANO_CORES, Some(&start));
        assert_eq!(c.usage_core_nano_seconds, Some(10 * CONTAINER_NANO_CORES));
    }
}
