//! Background processes that outlive the command that started them, tracked by PID files.
//!
//! A PID file holds `<pid> <start time>`; the start time (field 22 of `/proc/<pid>/stat`,
//! in clock ticks since boot) guards against PID reuse, so [`Daemon::stop`] only ever
//! signals the exact process that was started, and a PID file left by a run that was
//! killed is recognised as stale instead of trusted.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use vk_core::procfs::{Process, Stat};

use super::error::ClusterError;
use super::fsutil::{remove_all, write_atomic};

/// A component of the cluster run as a detached background process.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Short name (`etcd`, `kube-apiserver`...), also the stem of its PID and log files.
    pub name: &'static str,
    pidfile: PathBuf,
    log: PathBuf,
}

/// What a PID file says about its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonState {
    /// The recorded process is alive.
    Running {
        /// Its process id.
        pid: i32,
    },
    /// A PID file exists but its process is gone (or the PID now belongs to another).
    Stale {
        /// The recorded process id.
        pid: i32,
    },
    /// No PID file.
    Stopped,
}

impl Daemon {
    /// The daemon `name` with its PID file in `run_dir` and log in `log_dir`.
    pub fn new(name: &'static str, run_dir: &Path, log_dir: &Path) -> Self {
        Self {
            name,
            pidfile: run_dir.join(format!("{name}.pid")),
            log: log_dir.join(format!("{name}.log")),
        }
    }

    /// The log file that receives the process's stdout and stderr.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// What the PID file says.
    pub fn state(&self) -> DaemonState {
        let Ok(text) = std::fs::read_to_string(&self.pidfile) else {
            return DaemonState::Stopped;
        };
        let mut fields = text.split_whitespace();
        let pid = fields.next().and_then(|p| p.parse::<i32>().ok());
        let start = fields.next().and_then(|s| s.parse::<u64>().ok());
        match (pid, start) {
            (Some(pid), Some(start)) if process_start_time(pid) == Some(start) => {
                DaemonState::Running { pid }
            }
            (Some(pid), _) => DaemonState::Stale { pid },
            (None, _) => DaemonState::Stale { pid: 0 },
        }
    }

    /// Starts `program args...` in its own process group with stdin closed and output
    /// appended to the log, and records it in the PID file.
    pub fn start(&self, program: &Path, args: &[String]) -> Result<i32, ClusterError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| ClusterError::Io {
                operation: "open log",
                path: self.log.clone(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| ClusterError::Io {
            operation: "open log",
            path: self.log.clone(),
            source,
        })?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C or a test harness killing the group that
            // started the cluster must not take the cluster down with it.
            .process_group(0)
            .spawn()
            .map_err(|source| ClusterError::Spawn {
                component: self.name,
                program: program.to_owned(),
                source,
            })?;
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        let start = process_start_time(pid).unwrap_or(0);
        write_atomic(&self.pidfile, format!("{pid} {start}\n").as_bytes())?;
        Ok(pid)
    }

    /// True while the recorded process is alive.
    pub fn is_running(&self) -> bool {
        matches!(self.state(), DaemonState::Running { .. })
    }

    /// Stops the recorded process (SIGTERM, then SIGKILL after `grace`) and removes the
    /// PID file. A stale or missing PID file is simply removed.
    pub fn stop(&self, grace: Duration) -> Result<(), ClusterError> {
        if let DaemonState::Running { pid } = self.state() {
            let target = Pid::from_raw(pid);
            let _ = signal::kill(target, Signal::SIGTERM);
            if !wait_gone(pid, grace) {
                let _ = signal::kill(target, Signal::SIGKILL);
                if !wait_gone(pid, Duration::from_secs(5)) {
                    return Err(ClusterError::Stop {
                        component: self.name,
                        pid,
                        reason: "still alive 5 s after SIGKILL".to_owned(),
                    });
                }
            }
        }
        remove_all(&self.pidfile)
    }

    /// Kills the recorded process with SIGKILL at once (no chance to shut down cleanly,
    /// as in a crash), waits until it is gone, and removes the PID file.
    pub fn kill(&self) -> Result<(), ClusterError> {
        if let DaemonState::Running { pid } = self.state() {
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            if !wait_gone(pid, Duration::from_secs(5)) {
                return Err(ClusterError::Stop {
                    component: self.name,
                    pid,
                    reason: "still alive 5 s after SIGKILL".to_owned(),
                });
            }
        }
        remove_all(&self.pidfile)
    }
}

fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if process_start_time(pid).is_none() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The start time of a live (not zombie) process, from `/proc/<pid>/stat`.
pub(crate) fn process_start_time(pid: i32) -> Option<u64> {
    live_start_ticks(&Process::new(pid).stat().ok()?)
}

/// The start time (field 22, clock ticks after boot) of a process that is alive, or
/// `None` for a zombie or dead one: those keep their PID until reaped but are no longer
/// the process a PID file means.
fn live_start_ticks(stat: &Stat) -> Option<u64> {
    match stat.state {
        'Z' | 'X' | 'x' => None,
        _ => Some(stat.start_ticks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_live_processes_have_a_start_time() {
        let line = "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 \
                    1000 10 18446744073709551615";
        let stat = |line: &str| vk_core::procfs::parse_stat(line).expect("a stat line");
        assert_eq!(live_start_ticks(&stat(line)), Some(98765));
        for dead in [") Z ", ") X ", ") x "] {
            let line = line.replace(") S ", dead);
            assert_eq!(live_start_ticks(&stat(&line)), None, "state {dead}");
        }
    }

    #[test]
    fn own_process_is_alive() {
        let pid = i32::try_from(std::process::id()).expect("pid");
        assert!(process_start_time(pid).is_some());
    }

    #[test]
    fn start_state_stop_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let daemon = Daemon::new("sleeper", dir.path(), dir.path());
        assert_eq!(daemon.state(), DaemonState::Stopped);
        let pid = daemon
            .start(Path::new("/bin/sleep"), &["30".to_owned()])
            .expect("start");
        assert_eq!(daemon.state(), DaemonState::Running { pid });
        daemon.stop(Duration::from_secs(5)).expect("stop");
        assert_eq!(daemon.state(), DaemonState::Stopped);
    }

    #[test]
    fn kill_ends_the_process_and_forgets_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let daemon = Daemon::new("crasher", dir.path(), dir.path());
        let pid = daemon
            .start(Path::new("/bin/sleep"), &["30".to_owned()])
            .expect("start");
        assert_eq!(daemon.state(), DaemonState::Running { pid });
        daemon.kill().expect("kill");
        assert_eq!(daemon.state(), DaemonState::Stopped);
        assert_eq!(process_start_time(pid), None, "the process is gone");
    }

    #[test]
    fn a_pid_file_of_a_dead_process_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let daemon = Daemon::new("ghost", dir.path(), dir.path());
        // PID of our own process but a start time that does not match: a reused PID.
        let pid = std::process::id();
        std::fs::write(dir.path().join("ghost.pid"), format!("{pid} 1\n")).expect("write");
        assert!(matches!(daemon.state(), DaemonState::Stale { .. }));
        // Stopping a stale entry must not signal anything; it only cleans up.
        daemon.stop(Duration::from_secs(1)).expect("stop");
        assert_eq!(daemon.state(), DaemonState::Stopped);
    }
}
