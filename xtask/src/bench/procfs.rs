//! CPU time and memory of a process, read through [`vk_core::procfs`].

use vk_core::procfs::{Process, Stat, Status, Units};

/// CPU seconds (user + system) and memory of a process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ProcSample {
    /// utime + stime, in seconds.
    pub cpu_seconds: f64,
    /// Current resident set size (VmRSS), bytes.
    pub rss_bytes: u64,
    /// Peak resident set size (VmHWM), bytes.
    pub peak_rss_bytes: u64,
}

impl ProcSample {
    /// The sample in `stat` and `status`, times converted with `units`.
    fn new(stat: &Stat, status: &Status, units: Units) -> Self {
        Self {
            cpu_seconds: units.seconds(stat.cpu_ticks()),
            rss_bytes: status.vm_rss_bytes.unwrap_or(0),
            peak_rss_bytes: status.vm_hwm_bytes.unwrap_or(0),
        }
    }
}

/// Reads a sample of process `pid`; `None` if it is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let process = Process::new(i32::try_from(pid).ok()?);
    let stat = process.stat().ok()?;
    let status = process.status().ok()?;
    Some(ProcSample::new(&stat, &status, Units::host()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_in_seconds_of_the_given_clock_tick_and_memory_from_status() {
        let stat = vk_core::procfs::parse_stat(
            "42 (vk mock) S 1 42 42 0 -1 4194304 500 0 0 0 250 50 0 0 20 0 8 0 123 0 0",
        )
        .expect("stat");
        let status = vk_core::procfs::parse_status(
            "Name:\tvk-mock\nVmHWM:\t   30000 kB\nVmRSS:\t   20000 kB\n",
        );
        let units = |ticks_per_second| Units {
            ticks_per_second,
            page_size: 4096,
        };
        let s = ProcSample::new(&stat, &status, units(100));
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.rss_bytes, 20000 * 1024);
        assert_eq!(s.peak_rss_bytes, 30000 * 1024);
        assert_eq!(
            ProcSample::new(&stat, &status, units(1000)).cpu_seconds,
            0.3
        );
    }

    #[test]
    fn reads_our_own_process() {
        let s = sample(std::process::id()).expect("self");
        assert!(s.rss_bytes > 0 && s.peak_rss_bytes >= s.rss_bytes);
    }
}
