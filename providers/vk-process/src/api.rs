//! The kubelet API on real processes: logs, exec, attach and port-forward.
//!
//! * **logs** read the instance's CRI log file (see [`crate::logfmt`]): every option is
//!   honoured, `--previous` reads the previous instance's file (kept until the next
//!   restart), `-f` follows the file until the instance ends or the client leaves.
//! * **exec** runs the command with the container's environment and working directory;
//!   with `-t` on a real pseudo-terminal (as the controlling terminal, through
//!   `setsid -c`), resized on the client's resize events.
//! * **attach** streams the container's output from now on and writes the client's
//!   input to the container's stdin FIFO (`stdin: true` containers).
//! * **port-forward** connects to `127.0.0.1:<port>`: processes share the host network.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Container, ContainerStatus};
use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vk_core::capabilities::{
    ByteStream, ContainerAttach, ContainerExec, ContainerLogs, Duplex, ExecIo, LogOptions, Output,
    PortForward,
};
use vk_core::logs::{self, FollowConfig, LineStream, LogLine, Stamp};
use vk_errdefs::{Error, Result};

use crate::layout::PodDir;
use crate::logfmt;
use crate::provider::SharedProvider;
use crate::shim::{ExitRecord, read_json};
use crate::supervisor::PodRuntime;

impl SharedProvider {
    fn container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<(std::sync::Arc<PodRuntime>, Container, ContainerStatus)> {
        let rt = self.runtime(namespace, pod).ok_or_else(|| {
            Error::not_found(format!("pod {namespace}/{pod} is not running on this node"))
        })?;
        let spec = rt
            .pod()
            .spec
            .into_iter()
            .flat_map(|s| {
                s.containers
                    .into_iter()
                    .chain(s.init_containers.into_iter().flatten())
            })
            .find(|c| c.name == container)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "container {container:?} is not valid for pod {namespace}/{pod}"
                ))
            })?;
        let status = rt
            .container_status(container)
            .ok_or_else(|| Error::not_found(format!("container {container:?} has no status")))?;
        Ok((rt, spec, status))
    }
}

/// The instance whose log a request reads: `(instance, still running)`.
fn log_instance(status: &ContainerStatus, previous: bool) -> Result<(u32, bool)> {
    let restarts = u32::try_from(status.restart_count).unwrap_or(0);
    let state = status.state.clone().unwrap_or_default();
    let has_last = status
        .last_state
        .as_ref()
        .is_some_and(|l| l.terminated.is_some());
    if state.waiting.is_some() {
        if !has_last {
            return Err(Error::invalid_input(format!(
                "container {:?} is waiting to start: {}",
                status.name,
                state.waiting.and_then(|w| w.reason).unwrap_or_default()
            )));
        }
        // Waiting in back-off: instance `restarts` is the last one that exited, as on a
        // kubelet `logs` shows it and `logs --previous` the one before it.
        if !previous {
            return Ok((restarts, false));
        }
    }
    if previous {
        return match restarts.checked_sub(1) {
            Some(p) => Ok((p, false)),
            None => Err(Error::invalid_input(format!(
                "previous terminated container {:?} not found",
                status.name
            ))),
        };
    }
    Ok((restarts, state.running.is_some()))
}

/// The CRI records appended to the log `path` after `offset`, as (stream name, line),
/// as they are written, until the instance's `exit` record appears and the file has no
/// more data (rotation and truncation followed by the kit's file follower). The one
/// source behind `logs -f` and attach; malformed records are skipped.
fn follow_records(
    path: PathBuf,
    exit: PathBuf,
    offset: u64,
) -> impl futures::Stream<Item = std::io::Result<(String, LogLine)>> + Send {
    use futures::StreamExt as _;
    let chunks = logs::follow_file(path, offset, move || exit.exists(), FollowConfig::default());
    let raw = logs::split_lines(Box::pin(chunks), Stamp::Fixed(None));
    raw.filter_map(|line| {
        std::future::ready(match line {
            Ok(line) => logfmt::decode_line(&line.text)
                .map(|rec| Ok((rec.stream.to_owned(), rec.to_log_line()))),
            Err(e) => Some(Err(e)),
        })
    })
}

#[async_trait]
impl ContainerLogs for SharedProvider {
    async fn container_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        options: &LogOptions,
    ) -> Result<ByteStream> {
        let (rt, _, status) = self.container(namespace, pod, container)?;
        let (instance, running) = log_instance(&status, options.previous)?;
        let dir: &PodDir = rt.dir();
        let path = dir.log(container, instance);
        let content = tokio::fs::read(&path).await.unwrap_or_default();
        let head = logfmt::decode_all(&content);
        let follow = running.then(|| {
            let records = follow_records(path, dir.exit(container, instance), content.len() as u64);
            let lines: LineStream = Box::pin(futures::StreamExt::map(records, |r| {
                r.map(|(_, line)| line)
            }));
            lines
        });
        Ok(logs::log_stream(head, follow, options, Timestamp::now()))
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or(status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

async fn pump(mut from: impl tokio::io::AsyncRead + Unpin, mut to: Output) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

fn io_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::unavailable(format!("{what}: {e}"))
}

/// A pseudo-terminal pair: the controller (ours) and the path of the terminal side.
fn open_pty() -> std::io::Result<(std::fs::File, std::fs::File)> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&controller)?;
    unlockpt(&controller)?;
    let name = ptsname(&controller, Vec::new())?;
    let terminal =
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(std::ffi::OsStr::new(
                std::str::from_utf8(name.as_bytes()).unwrap_or_default(),
            ))?;
    Ok((std::fs::File::from(controller), terminal))
}

/// What an exec runs: the command with the container's environment and directory.
struct ExecCommand {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
}

impl ExecCommand {
    /// A command that dies with the session (`kill_on_drop`) running `program args`
    /// (or `prefix program args`).
    fn command(&self, prefix: &[&str]) -> tokio::process::Command {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut cmd = tokio::process::Command::new(first);
                cmd.args(rest).arg(&self.program);
                cmd
            }
            None => tokio::process::Command::new(&self.program),
        };
        cmd.args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .kill_on_drop(true);
        cmd
    }

    /// Runs on a new pseudo-terminal as its controlling terminal (`setsid -c`), resized
    /// on the client's resize events; the terminal carries stdin and stdout.
    async fn run_with_tty(&self, mut io: ExecIo) -> Result<i32> {
        let (controller, terminal) =
            open_pty().map_err(|e| io_error("opening a pseudo-terminal", e))?;
        if let Some(rx) = io.resize.as_mut()
            && let Ok(Some(size)) =
                tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
        {
            let _ = set_size(&controller, size);
        }
        let clone = |f: &std::fs::File| f.try_clone().map(Stdio::from);
        let stdio = (clone(&terminal), clone(&terminal), clone(&terminal));
        let (Ok(i), Ok(o), Ok(e)) = stdio else {
            return Err(Error::unavailable("duplicating the terminal failed"));
        };
        let mut child = self
            .command(&["setsid", "-w", "-c"])
            .stdin(i)
            .stdout(o)
            .stderr(e)
            .spawn()
            .map_err(|e| io_error(&format!("starting {:?}", self.program), e))?;
        drop(terminal);
        let duplicate = |f: &std::fs::File| {
            f.try_clone()
                .map_err(|e| io_error("duplicating the pty", e))
        };
        let reader = duplicate(&controller)?;
        let sizer = duplicate(&controller)?;
        let mut writer = tokio::fs::File::from_std(controller);
        let input = io.stdin.take().map(|mut stdin| {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut stdin, &mut writer).await;
            })
        });
        let resizes = io.resize.take().map(|mut rx| {
            tokio::spawn(async move {
                while let Some(size) = rx.recv().await {
                    let _ = set_size(&sizer, size);
                }
            })
        });
        let output = io
            .stdout
            .take()
            .map(|out| tokio::spawn(pump(tokio::fs::File::from_std(reader), out)));
        let status = child
            .wait()
            .await
            .map_err(|e| io_error("waiting for the command", e))?;
        if let Some(o) = output {
            let _ = tokio::time::timeout(Duration::from_secs(2), o).await;
        }
        for t in [input, resizes].into_iter().flatten() {
            t.abort();
        }
        Ok(exit_code(status))
    }

    /// Runs with pipes for the streams the client asked for (`/dev/null` for the rest).
    async fn run_with_pipes(&self, mut io: ExecIo) -> Result<i32> {
        let pipe_if = |wanted: bool| {
            if wanted {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        let mut child = self
            .command(&[])
            .stdin(pipe_if(io.stdin.is_some()))
            .stdout(pipe_if(io.stdout.is_some()))
            .stderr(pipe_if(io.stderr.is_some()))
            .spawn()
            .map_err(|e| io_error(&format!("starting {:?}", self.program), e))?;
        let input = match (io.stdin.take(), child.stdin.take()) {
            (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from, &mut to).await;
                let _ = to.shutdown().await;
            })),
            _ => None,
        };
        let mut outputs = Vec::new();
        if let (Some(out), Some(pipe)) = (io.stdout.take(), child.stdout.take()) {
            outputs.push(tokio::spawn(pump(pipe, out)));
        }
        if let (Some(out), Some(pipe)) = (io.stderr.take(), child.stderr.take()) {
            outputs.push(tokio::spawn(pump(pipe, out)));
        }
        let status = child
            .wait()
            .await
            .map_err(|e| io_error("waiting for the command", e))?;
        for o in outputs {
            let _ = tokio::time::timeout(Duration::from_secs(2), o).await;
        }
        if let Some(i) = input {
            i.abort();
        }
        Ok(exit_code(status))
    }
}

#[async_trait]
impl ContainerExec for SharedProvider {
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: Vec<String>,
        io: ExecIo,
    ) -> Result<i32> {
        let (rt, spec, _) = self.container(namespace, pod, container)?;
        let Some((program, args)) = command.split_first() else {
            return Err(Error::invalid_input("exec needs a command"));
        };
        let exec = ExecCommand {
            program: program.clone(),
            args: args.to_vec(),
            env: crate::launch::env(&rt.pod(), &spec, rt.dir()),
            cwd: crate::launch::cwd(&spec, rt.dir()),
        };
        if io.tty {
            exec.run_with_tty(io).await
        } else {
            exec.run_with_pipes(io).await
        }
    }
}

fn set_size(pty: &std::fs::File, size: vk_core::capabilities::TermSize) -> std::io::Result<()> {
    rustix::termios::tcsetwinsize(
        pty,
        rustix::termios::Winsize {
            ws_row: size.height,
            ws_col: size.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .map_err(Into::into)
}

#[async_trait]
impl ContainerAttach for SharedProvider {
    async fn attach(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        mut io: ExecIo,
    ) -> Result<Option<i32>> {
        let (rt, spec, status) = self.container(namespace, pod, container)?;
        if status.state.as_ref().is_none_or(|s| s.running.is_none()) {
            return Err(Error::invalid_input(format!(
                "container {container:?} is not running"
            )));
        }
        let instance = u32::try_from(status.restart_count).unwrap_or(0);
        let dir = rt.dir().clone();
        let log = dir.log(container, instance);
        let exit = dir.exit(container, instance);
        let offset = tokio::fs::metadata(&log).await.map_or(0, |m| m.len());
        let input = async {
            match (io.stdin.take(), spec.stdin == Some(true)) {
                (Some(mut from), true) => {
                    let fifo = tokio::fs::OpenOptions::new()
                        .write(true)
                        .open(dir.stdin(container))
                        .await;
                    if let Ok(mut to) = fifo {
                        let _ = tokio::io::copy(&mut from, &mut to).await;
                    }
                }
                (Some(mut from), false) => {
                    let _ = tokio::io::copy(&mut from, &mut tokio::io::sink()).await;
                }
                (None, _) => {}
            }
            // The end of the client's stdin does not end the session: as on a kubelet,
            // it lasts until the container exits or the client goes away.
            std::future::pending::<()>().await
        };
        let output = async {
            let mut stdout = io.stdout.take();
            let mut stderr = io.stderr.take();
            let mut records = Box::pin(follow_records(log, exit.clone(), offset));
            while let Some(Ok((stream, line))) = futures::StreamExt::next(&mut records).await {
                let mut bytes = line.text.to_vec();
                if line.complete {
                    bytes.push(b'\n');
                }
                let target = if stream == "stderr" && !io.tty {
                    stderr.as_mut()
                } else {
                    stdout.as_mut()
                };
                if let Some(t) = target
                    && (t.write_all(&bytes).await.is_err() || t.flush().await.is_err())
                {
                    return;
                }
            }
        };
        tokio::select! {
            () = input => Ok(None),
            () = output => Ok(read_json::<ExitRecord>(&exit).map(|e| e.exit_code)),
        }
    }
}

#[async_trait]
impl PortForward for SharedProvider {
    async fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        mut stream: Box<dyn Duplex>,
    ) -> Result<()> {
        if self.runtime(namespace, pod).is_none() {
            return Err(Error::not_found(format!(
                "pod {namespace}/{pod} is not running on this node"
            )));
        }
        let mut upstream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| io_error(&format!("connecting to 127.0.0.1:{port}"), e))?;
        let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(v: serde_json::Value) -> ContainerStatus {
        let mut base = serde_json::json!({"name": "c", "image": "", "imageID": "", "ready": false});
        if let (Some(b), Some(extra)) = (base.as_object_mut(), v.as_object()) {
            b.extend(extra.clone());
        }
        serde_json::from_value(base).expect("status")
    }

    #[test]
    fn log_instances_follow_restarts() {
        let running = status(serde_json::json!({"restartCount": 2, "state": {"running": {}}}));
        assert_eq!(log_instance(&running, false).expect("current"), (2, true));
        assert_eq!(log_instance(&running, true).expect("previous"), (1, false));
        let first = status(serde_json::json!({"restartCount": 0, "state": {"running": {}}}));
        assert!(log_instance(&first, true).is_err());
        let backoff = status(
            serde_json::json!({"restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 2}}}),
        );
        assert_eq!(log_instance(&backoff, false).expect("current"), (1, false));
        assert_eq!(log_instance(&backoff, true).expect("previous"), (0, false));
        let first_backoff = status(
            serde_json::json!({"restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 2}}}),
        );
        assert_eq!(
            log_instance(&first_backoff, false).expect("current"),
            (0, false)
        );
        assert!(
            log_instance(&first_backoff, true).is_err(),
            "no instance before the first"
        );
        let creating = status(
            serde_json::json!({"restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}),
        );
        assert!(log_instance(&creating, false).is_err());
    }
}
