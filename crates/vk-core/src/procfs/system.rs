//! Host-wide files: `/proc/stat`, `/proc/meminfo` and the list of processes.

use super::process::kib_line;
use super::{ProcfsError, read_with};

/// The fields of `/proc/stat` the workspace uses; `None` where the file has no such
/// line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStat {
    /// When the host booted, seconds since the Unix epoch (`btime`).
    pub boot_time_seconds: Option<u64>,
    /// CPU time all CPUs spent busy, clock ticks: the `cpu` line's user, nice, system,
    /// irq, softirq and steal (everything but idle and iowait).
    pub busy_cpu_ticks: Option<u64>,
}

/// Parses the text of `/proc/stat`.
///
/// ```
/// let k = vk_core::procfs::parse_kernel_stat(
///     "cpu  100 0 50 1000 7 0 0 0 0 0\ncpu0 100 0 50 1000 7 0 0 0 0 0\nbtime 1700000000\n",
/// );
/// assert_eq!(k.busy_cpu_ticks, Some(150));
/// assert_eq!(k.boot_time_seconds, Some(1_700_000_000));
/// ```
pub fn parse_kernel_stat(text: &str) -> KernelStat {
    let boot_time_seconds = text
        .lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok());
    let busy_cpu_ticks = text.lines().find_map(|line| {
        let ticks: Vec<u64> = line
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal (guest time is in user).
        Some(
            ticks
                .iter()
                .take(8)
                .enumerate()
                .filter(|(i, _)| *i != 3 && *i != 4)
                .map(|(_, t)| *t)
                .fold(0u64, u64::saturating_add),
        )
    });
    KernelStat {
        boot_time_seconds,
        busy_cpu_ticks,
    }
}

/// Reads `/proc/stat`.
pub fn kernel_stat() -> Result<KernelStat, ProcfsError> {
    read_with("/proc/stat".to_owned(), |text| {
        Some(parse_kernel_stat(text))
    })
}

/// The fields of `/proc/meminfo` the workspace uses, in bytes; `None` where the file
/// has no such line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// Usable RAM (`MemTotal`).
    pub total_bytes: Option<u64>,
    /// Memory available to start new programs without swapping (`MemAvailable`).
    pub available_bytes: Option<u64>,
}

impl MemInfo {
    /// Memory in use: total minus available.
    pub fn used_bytes(&self) -> Option<u64> {
        Some(self.total_bytes?.saturating_sub(self.available_bytes?))
    }
}

/// Parses the text of `/proc/meminfo`.
///
/// ```
/// let m = vk_core::procfs::parse_meminfo(
///     "MemTotal:       1000 kB\nMemFree:          10 kB\nMemAvailable:    400 kB\n",
/// );
/// assert_eq!(m.total_bytes, Some(1000 * 1024));
/// assert_eq!(m.used_bytes(), Some(600 * 1024));
/// ```
pub fn parse_meminfo(text: &str) -> MemInfo {
    MemInfo {
        total_bytes: kib_line(text, "MemTotal"),
        available_bytes: kib_line(text, "MemAvailable"),
    }
}

/// Reads `/proc/meminfo`.
pub fn meminfo() -> Result<MemInfo, ProcfsError> {
    read_with("/proc/meminfo".to_owned(), |text| Some(parse_meminfo(text)))
}

/// The PIDs of every process visible in `/proc`, in no particular order.
pub fn pids() -> Result<Vec<i32>, ProcfsError> {
    let entries = std::fs::read_dir("/proc").map_err(|source| ProcfsError::Read {
        path: "/proc".to_owned(),
        source,
    })?;
    Ok(entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_stat_sums_the_busy_cpu_columns() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let k = parse_kernel_stat(
            "cpu  100 1 50 1000 7 2 3 4 90 9\ncpu0 1 1 1 1 1 1 1 1 1 1\n\
             intr 12345\nbtime 1700000000\nprocesses 5\n",
        );
        assert_eq!(k.busy_cpu_ticks, Some(160));
        assert_eq!(k.boot_time_seconds, Some(1_700_000_000));
        assert_eq!(parse_kernel_stat("cpu0 1 2 3\n"), KernelStat::default());
    }

    #[test]
    fn meminfo_needs_both_lines_for_used_memory() {
        let m = parse_meminfo("MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 400 kB\n");
        assert_eq!(m.used_bytes(), Some(600 * 1024));
        let old_kernel = parse_meminfo("MemTotal: 1000 kB\nMemFree: 10 kB\n");
        assert_eq!(old_kernel.total_bytes, Some(1000 * 1024));
        assert_eq!(old_kernel.used_bytes(), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_host_reads_plausibly() {
        let me = i32::try_from(std::process::id()).expect("pid");
        assert!(pids().expect("/proc").contains(&me));
        let k = kernel_stat().expect("/proc/stat");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let boot = k.boot_time_seconds.expect("btime");
        assert!(boot > 0 && boot <= now);
        assert!(k.busy_cpu_ticks.expect("cpu line") > 0);
        let m = meminfo().expect("/proc/meminfo");
        let used = m.used_bytes().expect("MemTotal and MemAvailable");
        assert!(used > 0 && used < m.total_bytes.expect("MemTotal"));
    }
}
