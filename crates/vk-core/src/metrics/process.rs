//! The standard `process_*` metrics of the current process, read through
//! [`crate::procfs`] at scrape time (Linux; elsewhere the collector reports nothing).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::procfs::{self, Process, Stat, Units};

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
        let me = Process::current();
        let stat = me.stat().ok()?;
        let boot_time = procfs::kernel_stat()
            .ok()
            .and_then(|k| k.boot_time_seconds)
            .unwrap_or(0);
        Some(Self {
            open_fds: me.open_fds().ok(),
            max_fds: me.max_open_files().ok().flatten(),
            ..Self::from_stat(&stat, boot_time, Units::host())
        })
    }

    /// The stats in `stat`, converted with `units`; `boot_time` is `btime` of
    /// `/proc/stat`.
    fn from_stat(stat: &Stat, boot_time: u64, units: Units) -> Self {
        Self {
            cpu_seconds: units.seconds(stat.cpu_ticks()),
            resident_bytes: units.bytes(stat.rss_pages),
            virtual_bytes: stat.vsize,
            threads: stat.num_threads,
            start_time_seconds: boot_time as f64 + units.seconds(stat.start_ticks),
            open_fds: None,
            max_fds: None,
        }
    }
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

    #[test]
    fn converts_with_the_given_clock_tick_and_page_size() {
        // 250 + 50 ticks of CPU, started 123400 ticks after boot, 4321 resident pages.
        let stat = procfs::parse_stat(
            "4242 (vk mock (x)) S 1 4242 4242 0 -1 4194560 3074 0 0 0 250 50 0 0 20 0 7 0 \
             123400 1265168384 4321 18446744073709551615 1 1 0 0 0 0 0 4096 17 0 0 0 0",
        )
        .expect("parse");
        let hz100 = Units {
            ticks_per_second: 100,
            page_size: 4096,
        };
        let p = ProcessStats::from_stat(&stat, 1_700_000_000, hz100);
        assert_eq!(p.cpu_seconds, 3.0);
        assert_eq!(p.resident_bytes, 4321 * 4096);
        assert_eq!(p.virtual_bytes, 1_265_168_384);
        assert_eq!(p.threads, 7);
        assert_eq!(p.start_time_seconds, 1_700_001_234.0);
        // Not a hard-coded USER_HZ of 100 nor 4 KiB pages.
        let hz250 = Units {
            ticks_per_second: 250,
            page_size: 16384,
        };
        let p = ProcessStats::from_stat(&stat, 1_700_000_000, hz250);
        assert_eq!(p.cpu_seconds, 1.2);
        assert_eq!(p.resident_bytes, 4321 * 16384);
        assert!((p.start_time_seconds - 1_700_000_493.6).abs() < 1e-3);
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
