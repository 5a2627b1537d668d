//! Processes as vk-process sees them, on top of [`vk_core::procfs`]: identity (PID +
//! start time, which together never repeat), liveness, process trees and their CPU and
//! memory usage.

use std::collections::HashMap;

use vk_core::procfs::{Process, Units};

pub use vk_core::procfs::Stat;

/// The stat of a live process, or `None` when there is no such process.
pub fn stat(pid: i32) -> Option<Stat> {
    Process::new(pid).stat().ok()
}

/// Whether process `pid` is the one that started at `start_ticks` and has not exited
/// (zombies count as exited).
pub fn is_alive(pid: i32, start_ticks: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_ticks == start_ticks && s.state != 'Z' && s.state != 'X')
}

/// Every process on the host.
pub fn all() -> Vec<Stat> {
    vk_core::procfs::pids()
        .unwrap_or_default()
        .into_iter()
        .filter_map(stat)
        .collect()
}

/// The processes of `root`'s tree: `root`, its descendants, and every process of the
/// process group `root` leads.
pub fn tree(processes: &[Stat], root: i32) -> Vec<Stat> {
    let mut children: HashMap<i32, Vec<&Stat>> = HashMap::new();
    for p in processes {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut out: Vec<Stat> = Vec::new();
    let mut stack: Vec<&Stat> = processes
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

/// Sums the usage of `processes`, converted with `units` (the host's are
/// [`Units::host`]).
pub fn usage(processes: &[Stat], units: Units) -> Usage {
    let ticks: u64 = processes.iter().map(Stat::cpu_ticks).sum();
    let pages: u64 = processes.iter().map(|p| p.rss_pages).sum();
    Usage {
        cpu_nanos: units.nanos(ticks),
        rss_bytes: units.bytes(pages),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32, pgrp: i32, ticks: u64) -> Stat {
        Stat {
            pid,
            state: 'S',
            ppid,
            pgrp,
            utime: ticks,
            stime: 0,
            num_threads: 1,
            start_ticks: 1,
            vsize: 4096,
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
        let units = Units {
            ticks_per_second: 100,
            page_size: 4096,
        };
        let u = usage(&tree(&all, 10), units);
        assert_eq!(u.cpu_nanos, 40_000_000);
        assert_eq!(u.rss_bytes, 4 * 4096);
    }

    #[test]
    fn this_process_is_alive_with_its_start_time() {
        let me = i32::try_from(std::process::id()).expect("pid");
        let s = stat(me).expect("own stat");
        assert!(is_alive(me, s.start_ticks));
        assert!(!is_alive(me, s.start_ticks + 1));
        assert!(stat(-1).is_none());
    }
}
