//! Reading processes from `/proc`: identity (PID + start time, which together never
//! repeat), liveness, process trees and their CPU and memory usage.

use std::collections::HashMap;

/// One line of `/proc/<pid>/stat`, the fields vk-process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Process ID.
    pub pid: i32,
    /// State letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Parent PID.
    pub ppid: i32,
    /// Process group.
    pub pgrp: i32,
    /// User-mode CPU time in clock ticks.
    pub utime: u64,
    /// Kernel-mode CPU time in clock ticks.
    pub stime: u64,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

/// Parses a `/proc/<pid>/stat` line (the command name may contain spaces and
/// parentheses, so fields are counted from the last `)`).
///
/// ```
/// let s = vk_process::procfs::parse_stat(
///     "42 (my (odd) cmd) S 1 42 42 0 -1 4194304 100 0 0 0 7 3 0 0 20 0 1 0 5000 1000 25",
/// ).expect("parses");
/// assert_eq!((s.pid, s.ppid, s.pgrp, s.utime, s.stime, s.start_ticks, s.rss_pages),
///            (42, 1, 42, 7, 3, 5000, 25));
/// ```
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line[..open].trim().parse().ok()?;
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    let field = |n: usize| rest.get(n - 3).copied();
    let num = |n: usize| field(n).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        pid,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        utime: num(14)?,
        stime: num(15)?,
        start_ticks: num(22)?,
        rss_pages: num(24)?,
    })
}

/// The stat of a live process, or `None` when there is no such process.
pub fn stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Whether process `pid` is the one that started at `start_ticks` and has not exited
/// (zombies count as exited).
pub fn is_alive(pid: i32, start_ticks: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_ticks == start_ticks && s.state != 'Z' && s.state != 'X')
}

/// Every process on the host.
pub fn all() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// The processes of `root`'s tree: `root`, its descendants, and every process of the
/// process group `root` leads.
pub fn tree(processes: &[ProcStat], root: i32) -> Vec<ProcStat> {
    let mut children: HashMap<i32, Vec<&ProcStat>> = HashMap::new();
    for p in processes {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut out: Vec<ProcStat> = Vec::new();
    let mut stack: Vec<&ProcStat> = processes
        .iter()
        .filter(|p| p.pid == root || p.pgrp == root)
        .collect();
    while let Some(p) = stack.pop() {
        if out.iter().any(|o| o.pid == p.pid) {
            continue;
        }
        out.push(*p);
        stack.extend(children.get(&p.pid).into_iter().flatten());
    }
    out
}

/// PIDs of the processes in process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    all()
        .into_iter()
        .filter(|p| p.pgrp == pgid && p.state != 'Z')
        .map(|p| p.pid)
        .collect()
}

/// CPU and memory used by a set of processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Cumulative CPU time, in nanoseconds.
    pub cpu_nanos: u64,
    /// Resident memory, in bytes (the working set vk-process reports).
    pub rss_bytes: u64,
}

/// Sums the usage of `processes`, given the clock tick rate and page size.
pub fn usage(processes: &[ProcStat], ticks_per_second: u64, page_size: u64) -> Usage {
    let ticks: u64 = processes.iter().map(|p| p.utime + p.stime).sum();
    let pages: u64 = processes.iter().map(|p| p.rss_pages).sum();
    Usage {
        cpu_nanos: ticks.saturating_mul(1_000_000_000) / ticks_per_second.max(1),
        rss_bytes: pages.saturating_mul(page_size),
    }
}

/// The host's clock ticks per second and page size.
pub fn host_units() -> (u64, u64) {
    (
        rustix::param::clock_ticks_per_second(),
        rustix::param::page_size() as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32, pgrp: i32, ticks: u64) -> ProcStat {
        ProcStat {
            pid,
            state: 'S',
            ppid,
            pgrp,
            utime: ticks,
            stime: 0,
            start_ticks: 1,
            rss_pages: 1,
        }
    }

    #[test]
    fn trees_follow_parents_and_the_group() {
        let all = vec![
            p(1, 0, 1, 0),
            p(10, 1, 10, 1),
            p(11, 10, 10, 1),
            p(12, 11, 99, 1),
            p(13, 1, 10, 1),
            p(20, 1, 20, 5),
        ];
        let mut pids: Vec<i32> = tree(&all, 10).iter().map(|p| p.pid).collect();
        pids.sort_unstable();
        assert_eq!(pids, vec![10, 11, 12, 13]);
        let u = usage(&tree(&all, 10), 100, 4096);
        assert_eq!(u.cpu_nanos, 40_000_000);
        assert_eq!(u.rss_bytes, 4 * 4096);
    }

    #[test]
    fn this_process_is_alive_with_its_start_time() {
        let me = i32::try_from(std::process::id()).expect("pid");
        let s = stat(me).expect("own stat");
        assert!(is_alive(me, s.start_ticks));
        assert!(!is_alive(me, s.start_ticks + 1));
        assert!(parse_stat("garbage").is_none());
    }
}
