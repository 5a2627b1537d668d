//! The standard `process_*` metrics of the current process, read from `/proc/self` at
//! scrape time (Linux; elsewhere the collector reports nothing).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of `/proc/<pid>/stat` times. Linux fixes `USER_HZ` at 100 in
/// its user-space ABI (Prometheus' own procfs reader assumes the same).
const USER_HZ: f64 = 100.0;

/// Exposes `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
/// `process_threads` and `process_start_time_seconds`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCollector;

/// What `/proc/self` says, as the metrics report it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
    /// Threads.
    pub threads: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Soft limit of file descriptors.
    pub max_fds: Option<u64>,
}

impl ProcessStats {
    /// Reads the current process; `None` where `/proc` is unavailable.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_boot_time(&s))
            .unwrap_or(0);
        let mut stats = parse(&stat, &status, boot_time)?;
        stats.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        stats.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| parse_max_fds(&l));
        Some(stats)
    }
}

/// Parses `/proc/self/stat` and `/proc/self/status`; `boot_time` is `btime` of
/// `/proc/stat`.
fn parse(stat: &str, status: &str, boot_time: u64) -> Option<ProcessStats> {
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state) of proc(5).
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = field(14)? + field(15)?;
    let start_ticks = field(22)?;
    let kb = |key: &str| {
        status.lines().find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix(':')?;
            v.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(ProcessStats {
        cpu_seconds: ticks as f64 / USER_HZ,
        resident_bytes: kb("VmRSS").unwrap_or(0) * 1024,
        virtual_bytes: kb("VmSize").unwrap_or(0) * 1024,
        threads: kb("Threads").or(field(20)).unwrap_or(0),
        start_time_seconds: boot_time as f64 + start_ticks as f64 / USER_HZ,
        open_fds: None,
        max_fds: None,
    })
}

fn parse_boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    // "unlimited" has no number: report nothing.
    soft.parse().ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(p) = ProcessStats::read() else {
            return Ok(());
        };
        ConstCounter::new(p.cpu_seconds).encode(e.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            MetricType::Counter,
        )?)?;
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let gauges: [(&str, &str, Option<i64>); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                Some(int(p.resident_bytes)),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                Some(int(p.virtual_bytes)),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                p.open_fds.map(int),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                p.max_fds.map(int),
            ),
            (
                "process_threads",
                "Number of OS threads",
                Some(int(p.threads)),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                ConstGauge::new(v).encode(e.encode_descriptor(
                    name,
                    help,
                    None,
                    MetricType::Gauge,
                )?)?;
            }
        }
        ConstGauge::new(p.start_time_seconds).encode(e.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (vk mock (x)) S 1 4242 4242 0 -1 4194560 3074 0 0 0 \
        250 50 0 0 20 0 7 0 123400 1265168384 4321 18446744073709551615 1 1 0 0 0 0 0 \
        4096 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0";
    const STATUS: &str = "Name:\tvk-mock\nVmSize:\t 1235520 kB\nVmRSS:\t   17284 kB\nThreads:\t7\n";

    #[test]
    fn parses_proc_stat_and_status() {
        let p = parse(STAT, STATUS, 1_700_000_000).expect("parse");
        assert_eq!(p.cpu_seconds, 3.0); // (250 + 50) ticks
        assert_eq!(p.resident_bytes, 17284 * 1024);
        assert_eq!(p.virtual_bytes, 1_235_520 * 1024);
        assert_eq!(p.threads, 7);
        assert_eq!(p.start_time_seconds, 1_700_001_234.0);
    }

    #[test]
    fn parses_limits_and_boot_time() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
            Max processes             63412                63412                processes \n\
            Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_collector_reports_this_process() {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            "# TYPE process_cpu_seconds counter",
            "process_cpu_seconds_total ",
            "# TYPE process_resident_memory_bytes gauge",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_threads ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        let p = ProcessStats::read().expect("/proc");
        assert!(p.resident_bytes > 0 && p.threads >= 1 && p.open_fds.unwrap_or(0) >= 3);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!(p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86_400.0 * 365.0);
    }
}
