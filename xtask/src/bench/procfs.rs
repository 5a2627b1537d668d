//! CPU time and memory of a process, from /proc.

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

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
fn ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|t| t as f64)
        .unwrap_or(100.0)
}

/// Reads a sample of process `pid`; `None` if it is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(parse(&stat, &status, ticks_per_second()))
}

fn parse(stat: &str, status: &str, ticks: f64) -> ProcSample {
    let fields: Vec<&str> = stat
        .rfind(')')
        .map(|i| stat[i + 1..].split_whitespace().collect())
        .unwrap_or_default();
    // After the command name: field 3 is index 0; utime = field 14, stime = field 15.
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let cpu_seconds = (num(14 - 3) + num(15 - 3)) as f64 / ticks;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    ProcSample {
        cpu_seconds,
        rss_bytes: kb("VmRSS:"),
        peak_rss_bytes: kb("VmHWM:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_memory() {
        let stat = "42 (vk mock) S 1 42 42 0 -1 4194304 500 0 0 0 250 50 0 0 20 0 8 0 123 0 0";
        let status = "Name:\tvk-mock\nVmHWM:\t   30000 kB\nVmRSS:\t   20000 kB\n";
        let s = parse(stat, status, 100.0);
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.rss_bytes, 20000 * 1024);
        assert_eq!(s.peak_rss_bytes, 30000 * 1024);
    }

    #[test]
    fn reads_our_own_process() {
        let s = sample(std::process::id()).expect("self");
        assert!(s.rss_bytes > 0 && s.peak_rss_bytes >= s.rss_bytes);
    }
}
