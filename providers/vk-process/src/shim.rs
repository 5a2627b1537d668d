//! The container shim: a small process (`vk-process __shim SPEC`) that runs one
//! container instance and outlives the provider.
//!
//! The provider never holds a container's pipes: it starts a shim in a process group
//! of its own, and the shim
//! 1. starts the container's command in a **new process group** (the container's
//!    group: deletion signals it as a whole), with the container's env, working
//!    directory, stdin (a FIFO for `stdin: true` containers, else `/dev/null`) and user;
//! 2. writes the container's PID and start time (and its own) to
//!    [`RunSpec::pid_file`], then says so with one line on its stdout ([`STARTED`]),
//!    which the node that started it reads instead of checking for the file;
//! 3. copies stdout and stderr line by line into [`RunSpec::log_file`] in the CRI
//!    log format (`<RFC 3339 time> <stream> <F|P> <text>`, see [`crate::logfmt`]);
//! 4. writes the exit code or signal to [`RunSpec::exit_file`] when the command ends
//!    (once its output is copied, or [`DRAIN`] after it ended when processes it left
//!    behind still hold its stdout or stderr open), and ends: the node is told of its
//!    end ([`crate::process_end`]) and then reads the file.
//!
//! Because the files are the interface, a restarted provider can adopt running
//! containers and still read their logs and exit codes.

use std::io::{BufRead as _, Write as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::logfmt;

/// The argument that switches the `vk-process` binary into shim mode.
pub const SHIM_ARG: &str = "__shim";

/// The line a shim writes on its stdout once [`RunSpec::pid_file`] is written. (A shim
/// that could not start the container writes nothing and ends, after writing
/// [`RunSpec::exit_file`].)
pub const STARTED: &[u8] = b"started\n";

/// How long a shim waits, after the container's main process ended, for the rest of its
/// output before it records the exit anyway (processes the container left behind may
/// keep its stdout or stderr open).
pub const DRAIN: Duration = Duration::from_secs(5);

/// What a shim runs; written as JSON next to the container's other files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The whole environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The CRI-format log of this instance.
    pub log_file: PathBuf,
    /// Where the container's [`PidRecord`] goes.
    pub pid_file: PathBuf,
    /// Where the [`ExitRecord`] goes.
    pub exit_file: PathBuf,
    /// A FIFO to use as stdin (`stdin: true`), else `/dev/null`.
    pub stdin_fifo: Option<PathBuf>,
    /// `runAsUser`, applied when the shim runs as root.
    pub uid: Option<u32>,
    /// `runAsGroup`, applied when the shim runs as root.
    pub gid: Option<u32>,
    /// A cgroup directory (cgroup v2) to move the container into, if limits apply.
    pub cgroup: Option<PathBuf>,
}

/// The identity of a running container process.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct PidRecord {
    /// PID (and process group ID) of the container's main process.
    pub pid: i32,
    /// Its start time in clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
    /// The shim running it, whose end means [`RunSpec::exit_file`] is written. Absent
    /// in records of shims older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shim: Option<ShimRecord>,
}

/// The identity of a shim process.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShimRecord {
    /// The shim's PID.
    pub pid: i32,
    /// Its start time in clock ticks after boot.
    pub start_ticks: u64,
}

impl ShimRecord {
    /// The identity of the calling process.
    fn own() -> Option<Self> {
        let pid = i32::try_from(std::process::id()).ok()?;
        let start_ticks = crate::procfs::stat(pid)?.start_ticks;
        Some(Self { pid, start_ticks })
    }
}

/// How a container instance ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitRecord {
    /// Exit code (128 + signal when killed by a signal, as a shell reports it).
    pub exit_code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Why it could not start, if it never did.
    pub message: Option<String>,
    /// When it ended (RFC 3339).
    pub finished_at: String,
}

/// Writes `value` as JSON to `path` atomically (temporary file + rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Reads JSON written by [`write_json`]; `None` when absent or unreadable.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The shim's `main`: runs the spec at `spec_path`; returns the process exit code.
pub fn run(spec_path: &Path) -> i32 {
    let Some(spec) = read_json::<RunSpec>(spec_path) else {
        eprintln!("vk-process shim: cannot read {}", spec_path.display());
        return 2;
    };
    let exit = supervise(&spec);
    if let Err(e) = write_json(&spec.exit_file, &exit) {
        eprintln!("vk-process shim: writing {}: {e}", spec.exit_file.display());
        return 1;
    }
    0
}

fn failed_start(spec: &RunSpec, code: i32, message: String) -> ExitRecord {
    let log = Mutex::new(open_log(&spec.log_file).ok());
    append(&log, "stderr", message.as_bytes());
    ExitRecord {
        exit_code: code,
        signal: None,
        message: Some(message),
        finished_at: logfmt::now_rfc3339(),
    }
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn append(log: &Mutex<Option<std::fs::File>>, stream: &str, line: &[u8]) {
    let mut guard = log.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(file) = guard.as_mut() {
        let _ = file.write_all(&logfmt::encode_line(stream, line, true));
    }
}

fn supervise(spec: &RunSpec) -> ExitRecord {
    let Some((program, args)) = spec.argv.split_first() else {
        return failed_start(spec, 128, "empty command".to_owned());
    };
    let stdin = match &spec.stdin_fifo {
        Some(fifo) => match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(fifo)
        {
            Ok(f) => Stdio::from(f),
            Err(e) => return failed_start(spec, 128, format!("opening stdin {fifo:?}: {e}")),
        },
        None => Stdio::null(),
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if rustix::process::geteuid().is_root() {
        if let Some(gid) = spec.gid {
            cmd.gid(gid);
        }
        if let Some(uid) = spec.uid {
            cmd.uid(uid);
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            // 126: found but not runnable; 127: not found (as a shell reports them).
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return failed_start(spec, code, format!("starting {program:?}: {e}"));
        }
    };
    let pid = i32::try_from(child.id()).unwrap_or(0);
    if let Some(cgroup) = &spec.cgroup {
        let _ = std::fs::write(cgroup.join("cgroup.procs"), pid.to_string());
    }
    let start_ticks = crate::procfs::stat(pid).map_or(0, |s| s.start_ticks);
    let record = PidRecord {
        pid,
        start_ticks,
        shim: ShimRecord::own(),
    };
    let _ = write_json(&spec.pid_file, &record);
    // The node may not listen (stdout is then /dev/null or a closed pipe): best effort.
    let _ = std::io::stdout().write_all(STARTED);
    let _ = std::io::stdout().flush();
    let log = Arc::new(Mutex::new(open_log(&spec.log_file).ok()));
    let (copied, copiers_done) = std::sync::mpsc::channel();
    let mut copiers = 0;
    if let Some(out) = child.stdout.take() {
        copy_lines(out, "stdout", log.clone(), copied.clone());
        copiers += 1;
    }
    if let Some(err) = child.stderr.take() {
        copy_lines(err, "stderr", log.clone(), copied);
        copiers += 1;
    }
    let status = child.wait();
    let drained = std::time::Instant::now() + DRAIN;
    for _ in 0..copiers {
        let left = drained.saturating_duration_since(std::time::Instant::now());
        if copiers_done.recv_timeout(left).is_err() {
            break;
        }
    }
    match status {
        Ok(s) => ExitRecord {
            exit_code: s.code().or(s.signal().map(|sig| 128 + sig)).unwrap_or(255),
            signal: s.signal(),
            message: None,
            finished_at: logfmt::now_rfc3339(),
        },
        Err(e) => ExitRecord {
            exit_code: 255,
            signal: None,
            message: Some(format!("waiting for the container: {e}")),
            finished_at: logfmt::now_rfc3339(),
        },
    }
}

/// Copies `reader` into the log one line at a time, in a thread that sends on `done`
/// when `reader` is at its end; lines longer than 16 KiB are split into partial (`P`)
/// records as the CRI does.
fn copy_lines(
    reader: impl std::io::Read + Send + 'static,
    stream: &'static str,
    log: Arc<Mutex<Option<std::fs::File>>>,
    done: std::sync::mpsc::Sender<()>,
) {
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::with_capacity(16 * 1024, reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            let mut limited = (&mut reader).take(16 * 1024);
            match limited.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    let _ = done.send(());
                    return;
                }
                Ok(_) => {
                    let complete = line.last() == Some(&b'\n');
                    let text = if complete {
                        &line[..line.len() - 1]
                    } else {
                        &line[..]
                    };
                    let mut guard = log.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(file) = guard.as_mut() {
                        let _ = file.write_all(&logfmt::encode_line(stream, text, complete));
                    }
                }
            }
        }
    });
}

use std::io::Read as _;
