//! One run of a container: start it through the shim, wait for its exit (whether the
//! provider started it or adopted it), and stop its process group.
//!
//! The node is told rather than checking: the shim says on its stdout when the
//! container has started, and the end of the shim (watched through a pidfd, see
//! [`crate::process_end`]) means the exit is recorded. Only instances whose records
//! predate the shim's own identity, or a kernel without pidfds, are polled.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use rustix::process::{Pid, Signal};
use tokio::io::AsyncBufReadExt as _;

use crate::error::ProcessError;
use crate::layout::PodDir;
use crate::process_end::ProcessEnd;
use crate::shim::{ExitRecord, PidRecord, RunSpec, SHIM_ARG, read_json, write_json};
use crate::{launch, logfmt, procfs};

/// How often the exit of an instance is checked for when it cannot be watched.
const POLL: Duration = Duration::from_millis(250);

/// How long a shim may take to start the container and say so.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything needed to start instances of containers.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The program to run as the shim (the `vk-process` binary).
    pub shim: std::path::PathBuf,
    /// Image → command prefix.
    pub images: std::collections::BTreeMap<String, Vec<String>>,
    /// The delegated cgroup v2 parent, when limits are enforced.
    pub cgroup_parent: Option<std::path::PathBuf>,
}

fn prepare(path: &Path, r: std::io::Result<()>) -> Result<(), ProcessError> {
    r.map_err(|source| ProcessError::Prepare {
        path: path.to_owned(),
        source,
    })
}

impl Launcher {
    /// Starts instance `instance` of `container`; returns its PID record, or how it
    /// ended when it could not start.
    pub async fn start(
        &self,
        pod: &Pod,
        dir: &PodDir,
        container: &Container,
        instance: u32,
        cgroup: Option<std::path::PathBuf>,
    ) -> Result<Result<PidRecord, ExitRecord>, ProcessError> {
        let name = &container.name;
        let cdir = dir.container(name);
        let cwd = launch::cwd(container, dir);
        prepare(&cwd, std::fs::create_dir_all(&cwd))?;
        let stdin_fifo = if container.stdin == Some(true) {
            let fifo = dir.stdin(name);
            if !fifo.exists() {
                prepare(
                    &fifo,
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &fifo,
                        rustix::fs::FileType::Fifo,
                        rustix::fs::Mode::from_raw_mode(0o600),
                        0,
                    )
                    .map_err(std::io::Error::from),
                )?;
            }
            Some(fifo)
        } else {
            None
        };
        let security = container.security_context.as_ref();
        let pod_security = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
        let uid = security
            .and_then(|s| s.run_as_user)
            .or(pod_security.and_then(|s| s.run_as_user))
            .and_then(|u| u32::try_from(u).ok());
        let gid = security
            .and_then(|s| s.run_as_group)
            .or(pod_security.and_then(|s| s.run_as_group))
            .and_then(|g| u32::try_from(g).ok());
        let spec = RunSpec {
            argv: launch::argv(container, &self.images)?,
            env: launch::env(pod, container, dir),
            cwd,
            log_file: dir.log(name, instance),
            pid_file: dir.pid(name, instance),
            exit_file: dir.exit(name, instance),
            stdin_fifo,
            uid,
            gid,
            cgroup,
        };
        for stale in [&spec.pid_file, &spec.exit_file, &spec.log_file] {
            let _ = std::fs::remove_file(stale);
        }
        let spec_path = dir.spec(name, instance);
        prepare(&cdir, write_json(&spec_path, &spec))?;
        let mut child = tokio::process::Command::new(&self.shim)
            .arg(SHIM_ARG)
            .arg(&spec_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                container: name.clone(),
                source,
            })?;
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        tracing::debug!(pod = pod_name, container = %name, "start: shim spawned");
        let told = child.stdout.take();
        // Reap the shim when it ends; its results are in files.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        // The shim's line, or the end of its stdout when it ended without starting.
        let heard = match told {
            Some(out) => {
                let mut line = Vec::new();
                let mut out = tokio::io::BufReader::new(out);
                tokio::time::timeout(START_TIMEOUT, out.read_until(b'\n', &mut line))
                    .await
                    .is_ok()
            }
            None => false,
        };
        if let Some(pid) = read_json::<PidRecord>(&spec.pid_file) {
            tracing::debug!(pod = pod_name, container = %name, "start: container started");
            return Ok(Ok(pid));
        }
        if let Some(exit) = read_json::<ExitRecord>(&spec.exit_file) {
            return Ok(Err(exit));
        }
        let why = if heard {
            "the shim ended without reporting the container's PID or exit"
        } else {
            "the shim did not report the container's PID"
        };
        Err(ProcessError::Spawn {
            container: name.clone(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, why),
        })
    }
}

/// Waits until instance `instance` of `container` (running as `pid`) has ended and
/// returns how. Works for adopted instances too: it watches the shim (or, for records
/// without the shim's identity, checks the files and `/proc`).
pub async fn wait_exit(dir: &PodDir, container: &str, instance: u32, pid: PidRecord) -> ExitRecord {
    let exit_file = dir.exit(container, instance);
    if let Some(shim) = pid.shim {
        let told = match ProcessEnd::watch(shim.pid, shim.start_ticks) {
            Ok(Some(end)) => end.ended().await.map_err(std::io::Error::other),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        match told {
            // A shim writes the exit record before it ends.
            Ok(()) => return read_json::<ExitRecord>(&exit_file).unwrap_or_else(unrecorded),
            Err(e) => tracing::debug!(error = %e, "cannot watch the shim; polling for the exit"),
        }
    }
    poll_exit(&exit_file, pid).await
}

/// How an instance whose shim ended without recording its exit is reported.
fn unrecorded() -> ExitRecord {
    ExitRecord {
        exit_code: 137,
        signal: Some(9),
        message: Some("the container's shim ended without recording an exit code".into()),
        finished_at: logfmt::now_rfc3339(),
    }
}

/// [`wait_exit`] by checking the exit file and `/proc` every [`POLL`].
async fn poll_exit(exit_file: &Path, pid: PidRecord) -> ExitRecord {
    let mut gone_polls = 0u32;
    loop {
        if let Some(exit) = read_json::<ExitRecord>(exit_file) {
            return exit;
        }
        if !procfs::is_alive(pid.pid, pid.start_ticks) {
            gone_polls += 1;
            // The shim writes the exit record right after the process ends; if it does
            // not within a few seconds, it was killed too.
            if gone_polls > 20 {
                return unrecorded();
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Sends `signal` to process group `pgid`; a group that no longer exists is not an error.
pub fn signal_group(pgid: i32, signal: Signal) -> Result<(), ProcessError> {
    let Some(pid) = Pid::from_raw(pgid) else {
        return Ok(());
    };
    match rustix::process::kill_process_group(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(ProcessError::Signal {
            pgid,
            source: e.into(),
        }),
    }
}

/// Stops an instance: SIGTERM to its process group, SIGKILL after `grace`, then
/// SIGKILL to anything left in the group. Returns how it ended.
pub async fn stop(
    dir: &PodDir,
    container: &str,
    instance: u32,
    pid: PidRecord,
    grace: Duration,
) -> ExitRecord {
    if let Err(e) = signal_group(pid.pid, Signal::TERM) {
        tracing::warn!(error = %e, "SIGTERM failed");
    }
    let waited = tokio::time::timeout(grace, wait_exit(dir, container, instance, pid)).await;
    let exit = match waited {
        Ok(exit) => exit,
        Err(_) => {
            if let Err(e) = signal_group(pid.pid, Signal::KILL) {
                tracing::warn!(error = %e, "SIGKILL failed");
            }
            wait_exit(dir, container, instance, pid).await
        }
    };
    // Children that outlived the main process in its group.
    if !procfs::group_members(pid.pid).is_empty() {
        let _ = signal_group(pid.pid, Signal::KILL);
    }
    exit
}
