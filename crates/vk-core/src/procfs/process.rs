//! One process's files: `/proc/<pid>/stat`, `status`, `limits` and `fd`.

use super::{ProcfsError, read_with};

/// A process's directory in `/proc`: the current process (`/proc/self`) or any PID.
///
/// ```no_run
/// use vk_core::procfs::Process;
///
/// let init = Process::new(1).stat()?;
/// assert_eq!(init.pid, 1);
/// let fds = Process::current().open_fds()?;
/// # Ok::<(), vk_core::procfs::ProcfsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    /// `None` for `/proc/self`.
    pid: Option<i32>,
}

impl Process {
    /// The current process, through `/proc/self`.
    pub fn current() -> Self {
        Self { pid: None }
    }

    /// Process `pid`.
    pub fn new(pid: i32) -> Self {
        Self { pid: Some(pid) }
    }

    fn path(self, file: &str) -> String {
        match self.pid {
            Some(pid) => format!("/proc/{pid}/{file}"),
            None => format!("/proc/self/{file}"),
        }
    }

    /// Reads `/proc/<pid>/stat`.
    pub fn stat(self) -> Result<Stat, ProcfsError> {
        read_with(self.path("stat"), parse_stat)
    }

    /// Reads `/proc/<pid>/status`.
    pub fn status(self) -> Result<Status, ProcfsError> {
        read_with(self.path("status"), |text| Some(parse_status(text)))
    }

    /// The soft limit of open file descriptors from `/proc/<pid>/limits`; `None` when
    /// unlimited.
    pub fn max_open_files(self) -> Result<Option<u64>, ProcfsError> {
        read_with(self.path("limits"), |text| Some(parse_max_open_files(text)))
    }

    /// How many file descriptors the process has open (entries of `/proc/<pid>/fd`).
    pub fn open_fds(self) -> Result<u64, ProcfsError> {
        let path = self.path("fd");
        match std::fs::read_dir(&path) {
            Ok(entries) => Ok(entries.count() as u64),
            Err(source) => Err(ProcfsError::Read { path, source }),
        }
    }
}

/// The fields of `/proc/<pid>/stat` the workspace uses (field numbers of proc(5)).
///
/// Times are in clock ticks and memory in pages: convert them with
/// [`Units`](super::Units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Process ID (field 1).
    pub pid: i32,
    /// State letter (field 3): `R` running, `S` sleeping, `Z` zombie, `X` dead, ...
    pub state: char,
    /// Parent PID (field 4).
    pub ppid: i32,
    /// Process group ID (field 5).
    pub pgrp: i32,
    /// CPU time in user mode, clock ticks (field 14).
    pub utime: u64,
    /// CPU time in kernel mode, clock ticks (field 15).
    pub stime: u64,
    /// Number of threads (field 20).
    pub num_threads: u64,
    /// Start time, clock ticks after boot (field 22). With the PID it identifies a
    /// process: a reused PID has a later start time.
    pub start_ticks: u64,
    /// Virtual memory size, bytes (field 23).
    pub vsize: u64,
    /// Resident set size, pages (field 24).
    pub rss_pages: u64,
}

impl Stat {
    /// User plus kernel CPU time, clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.utime.saturating_add(self.stime)
    }
}

/// Parses the text of `/proc/<pid>/stat`; `None` if it is not in that format.
///
/// The command name (field 2) is in parentheses and may itself contain spaces and
/// parentheses, so the fields after it are counted from the last `)`.
///
/// ```
/// let s = vk_core::procfs::parse_stat(
///     "42 (my (odd) cmd) S 1 42 42 0 -1 4194304 100 0 0 0 7 3 0 0 20 0 2 0 5000 8192000 25",
/// )
/// .expect("a stat line");
/// assert_eq!((s.pid, s.state, s.ppid, s.pgrp), (42, 'S', 1, 42));
/// assert_eq!((s.utime, s.stime, s.num_threads, s.start_ticks), (7, 3, 2, 5000));
/// assert_eq!((s.vsize, s.rss_pages), (8_192_000, 25));
/// ```
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (pid, _) = text.split_once('(')?;
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): field N is fields[N - 3].
    let field = |n: usize| fields.get(n - 3).copied();
    let num = |n: usize| field(n)?.parse::<u64>().ok();
    Some(Stat {
        pid: pid.trim().parse().ok()?,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        utime: num(14)?,
        stime: num(15)?,
        num_threads: num(20)?,
        start_ticks: num(22)?,
        vsize: num(23)?,
        rss_pages: num(24)?,
    })
}

/// The fields of `/proc/<pid>/status` the workspace uses; `None` where the file has
/// no such line (kernel threads have no memory lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// Resident set size now (`VmRSS`), bytes.
    pub vm_rss_bytes: Option<u64>,
    /// Peak resident set size (`VmHWM`, the high-water mark), bytes.
    pub vm_hwm_bytes: Option<u64>,
}

/// Parses the text of `/proc/<pid>/status`.
///
/// ```
/// let s = vk_core::procfs::parse_status("Name:\tsh\nVmHWM:\t  3000 kB\nVmRSS:\t  2000 kB\n");
/// assert_eq!(s.vm_rss_bytes, Some(2000 * 1024));
/// assert_eq!(s.vm_hwm_bytes, Some(3000 * 1024));
/// ```
pub fn parse_status(text: &str) -> Status {
    Status {
        vm_rss_bytes: kib_line(text, "VmRSS"),
        vm_hwm_bytes: kib_line(text, "VmHWM"),
    }
}

/// The value of a `Key:   123 kB` line, in bytes.
pub(super) fn kib_line(text: &str, key: &str) -> Option<u64> {
    let kib = text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse::<u64>().ok()
    })?;
    Some(kib.saturating_mul(1024))
}

/// The soft limit of open file descriptors in the text of `/proc/<pid>/limits`;
/// `None` when it is `unlimited` or the line is missing.
///
/// ```
/// let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
///               Max open files            1024                 524288               files\n";
/// assert_eq!(vk_core::procfs::parse_max_open_files(limits), Some(1024));
/// ```
pub fn parse_max_open_files(text: &str) -> Option<u64> {
    let soft = text
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line's shape: negative tty, many trailing fields.
    const STAT: &str = "4242 (vk mock (x)) S 1 4242 4242 0 -1 4194560 3074 0 0 0 \
        250 50 0 0 20 0 7 0 123400 1265168384 4321 18446744073709551615 1 1 0 0 0 0 0 \
        4096 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0";

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let s = parse_stat(STAT).expect("parses");
        assert_eq!(
            s,
            Stat {
                pid: 4242,
                state: 'S',
                ppid: 1,
                pgrp: 4242,
                utime: 250,
                stime: 50,
                num_threads: 7,
                start_ticks: 123_400,
                vsize: 1_265_168_384,
                rss_pages: 4321,
            }
        );
        assert_eq!(s.cpu_ticks(), 300);
        // A name ending in ") R 9 9 9" must not shift the fields.
        let tricky = STAT.replace("(vk mock (x))", "(a) R 9 9 9 (b))");
        assert_eq!(parse_stat(&tricky), Some(s));
    }

    #[test]
    fn malformed_stat_lines_are_rejected() {
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("42 (cmd) S 1 42"), None, "too few fields");
        assert_eq!(parse_stat(&STAT.replace("4242 (", "x (")), None, "no pid");
    }

    #[test]
    fn status_lines_in_kib() {
        let s = parse_status("Name:\tvk-mock\nVmHWM:\t   30000 kB\nVmRSS:\t   20000 kB\n");
        assert_eq!(s.vm_rss_bytes, Some(20_000 * 1024));
        assert_eq!(s.vm_hwm_bytes, Some(30_000 * 1024));
        // A kernel thread has no memory lines.
        assert_eq!(
            parse_status("Name:\tkthreadd\nThreads:\t1\n"),
            Status::default()
        );
    }

    #[test]
    fn max_open_files_is_the_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
            Max processes             63412                63412                processes \n\
            Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        let unlimited = limits.replace("1024 ", "unlimited ");
        assert_eq!(parse_max_open_files(&unlimited), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_plausibly() {
        let me = Process::current();
        let stat = me.stat().expect("/proc/self/stat");
        assert_eq!(stat.pid, i32::try_from(std::process::id()).expect("pid"));
        let by_pid = Process::new(stat.pid).stat().expect("/proc/<pid>/stat");
        assert_eq!(by_pid.start_ticks, stat.start_ticks);
        assert!(stat.ppid > 0 && stat.num_threads >= 1);
        let rss_bytes = super::super::Units::host().bytes(stat.rss_pages);
        assert!(rss_bytes > 0 && stat.vsize >= rss_bytes);
        let status = me.status().expect("/proc/self/status");
        let rss = status.vm_rss_bytes.expect("VmRSS");
        assert!(rss > 0 && status.vm_hwm_bytes.expect("VmHWM") >= rss);
        // stdin, stdout and stderr at least (the test harness keeps them open).
        assert!(me.open_fds().expect("/proc/self/fd") >= 3);
        if let Some(max) = me.max_open_files().expect("/proc/self/limits") {
            assert!(max >= 3);
        }
        assert!(matches!(
            Process::new(-1).stat(),
            Err(ProcfsError::Read { path, .. }) if path == "/proc/-1/stat"
        ));
    }
}
