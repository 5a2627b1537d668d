//! `/stats/summary` and `/metrics/resource` from `/proc`: each container's CPU time and
//! resident memory summed over its process tree (its main process, descendants and
//! process group), pods as the sum of their containers, the node from `/proc/stat`
//! and `/proc/meminfo` (all read through [`vk_core::procfs`]).

use std::collections::HashMap;
use std::time::Instant;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use vk_core::procfs::Units;
use vk_core::stats::{
    ContainerStats, CpuStats, MemoryStats, NodeStats, PodReference, PodStats, StatsProvider,
    Summary,
};

use crate::procfs;
use crate::provider::SharedProvider;

/// Earlier CPU readings, to turn cumulative CPU time into a current rate.
#[derive(Debug, Default)]
pub struct Samples {
    previous: HashMap<String, (Instant, u64)>,
}

impl Samples {
    /// The CPU rate in nanocores of `key` now at `cpu_nanos` cumulative, if there is an
    /// earlier reading.
    pub fn rate(&mut self, key: String, cpu_nanos: u64, at: Instant) -> Option<u64> {
        let rate = self.previous.get(&key).and_then(|(t, prev)| {
            let elapsed = at.duration_since(*t).as_nanos();
            (elapsed > 0).then(|| {
                u64::try_from(u128::from(cpu_nanos.saturating_sub(*prev)) * 1_000_000_000 / elapsed)
                    .unwrap_or(u64::MAX)
            })
        });
        self.previous.insert(key, (at, cpu_nanos));
        rate
    }
}

fn cpu(time: &Time, nanos: u64, rate: Option<u64>) -> CpuStats {
    CpuStats {
        time: Some(time.clone()),
        usage_nano_cores: rate,
        usage_core_nano_seconds: Some(nanos),
    }
}

fn memory(time: &Time, bytes: u64) -> MemoryStats {
    MemoryStats {
        time: Some(time.clone()),
        usage_bytes: Some(bytes),
        working_set_bytes: Some(bytes),
        rss_bytes: Some(bytes),
        ..Default::default()
    }
}

#[async_trait]
impl StatsProvider for SharedProvider {
    async fn stats_summary(&self) -> vk_errdefs::Result<Summary> {
        let now = Time(Timestamp::now());
        let at = Instant::now();
        let units = Units::host();
        let all = procfs::all();
        let mut samples = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let mut pods = Vec::new();
        for rt in self.runtimes() {
            let pod = rt.pod();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let status = rt.status();
            let mut containers = Vec::new();
            let (mut pod_cpu, mut pod_mem) = (0u64, 0u64);
            for (name, pid) in rt.running() {
                let usage = procfs::usage(&procfs::tree(&all, pid.pid), units);
                pod_cpu += usage.cpu_nanos;
                pod_mem += usage.rss_bytes;
                let rate = samples.rate(format!("{uid}/{name}"), usage.cpu_nanos, at);
                let started = rt
                    .container_status(&name)
                    .and_then(|s| s.state?.running?.started_at);
                containers.push(ContainerStats {
                    name,
                    start_time: started,
                    cpu: Some(cpu(&now, usage.cpu_nanos, rate)),
                    memory: Some(memory(&now, usage.rss_bytes)),
                    ..Default::default()
                });
            }
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            let pod_rate = samples.rate(uid.clone(), pod_cpu, at);
            pods.push(PodStats {
                pod_ref: PodReference {
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                    uid,
                },
                start_time: status.start_time,
                containers,
                cpu: Some(cpu(&now, pod_cpu, pod_rate)),
                memory: Some(memory(&now, pod_mem)),
                ..Default::default()
            });
        }
        let node_cpu = vk_core::procfs::kernel_stat()
            .ok()
            .and_then(|k| k.busy_cpu_ticks)
            .map(|t| units.nanos(t));
        let node_rate = node_cpu.and_then(|c| samples.rate(String::new(), c, at));
        let node_mem = vk_core::procfs::meminfo().ok().and_then(|m| m.used_bytes());
        Ok(Summary {
            node: NodeStats {
                node_name: self.node_name().to_owned(),
                start_time: Some(Time(self.started_at())),
                cpu: node_cpu.map(|c| cpu(&now, c, node_rate)),
                memory: node_mem.map(|m| memory(&now, m)),
                ..Default::default()
            },
            pods,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_two_readings() {
        let mut s = Samples::default();
        let t0 = Instant::now();
        assert_eq!(s.rate("k".into(), 0, t0), None);
        let t1 = t0 + std::time::Duration::from_secs(2);
        assert_eq!(s.rate("k".into(), 1_000_000_000, t1), Some(500_000_000));
    }
}
