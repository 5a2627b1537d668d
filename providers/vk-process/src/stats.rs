//! `/stats/summary` and `/metrics/resource` from `/proc`: each container's CPU time and
//! resident memory summed over its process tree (its main process, descendants and
//! process group), pods as the sum of their containers, the node from `/proc/stat`
//! and `/proc/meminfo`.

use std::collections::HashMap;
use std::time::Instant;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
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

/// Total non-idle CPU time of the host from /proc/stat's `cpu` line, in nanoseconds.
pub fn host_cpu_nanos(stat: &str, ticks_per_second: u64) -> Option<u64> {
    let fields: Vec<u64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, v)| v)
        .sum();
    Some(busy.saturating_mul(1_000_000_000) / ticks_per_second.max(1))
}

/// Used memory of the host (MemTotal − MemAvailable), in bytes.
pub fn host_memory_bytes(meminfo: &str) -> Option<u64> {
    let get = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some((get("MemTotal:")?.saturating_sub(get("MemAvailable:")?)) * 1024)
}

#[async_trait]
impl StatsProvider for SharedProvider {
    async fn stats_summary(&self) -> vk_errdefs::Result<Summary> {
        let now = Time(Timestamp::now());
        let at = Instant::now();
        let (ticks, page) = procfs::host_units();
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
                let usage = procfs::usage(&procfs::tree(&all, pid.pid), ticks, page);
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
        let node_cpu = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| host_cpu_nanos(&s, ticks));
        let node_rate = node_cpu.and_then(|c| samples.rate(String::new(), c, at));
        let node_mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| host_memory_bytes(&m));
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
    fn host_numbers_parse() {
        let stat = "cpu  100 0 50 1000 7 0 0 0 0 0\ncpu0 1 1 1 1\n";
        assert_eq!(host_cpu_nanos(stat, 100), Some(1_500_000_000));
        let mem = "MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 400 kB\n";
        assert_eq!(host_memory_bytes(mem), Some(600 * 1024));
    }

    #[test]
    fn rates_come_from_two_readings() {
        let mut s = Samples::default();
        let t0 = Instant::now();
        assert_eq!(s.rate("k".into(), 0, t0), None);
        let t1 = t0 + std::time::Duration::from_secs(2);
        assert_eq!(s.rate("k".into(), 1_000_000_000, t1), Some(500_000_000));
    }
}
