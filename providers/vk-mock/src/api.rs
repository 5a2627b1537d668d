//! The mock's answers to the kubelet API: logs, exec, attach and port-forward, all
//! in-process so every path of the API is testable without real containers.
//!
//! * **logs**: the configured lines, timestamped from the container's start, honouring
//!   every option; `follow` adds a line per second until the client goes away;
//!   `previous` is an error (a mock container never restarts), as on a kubelet.
//! * **exec** runs built-in commands: `echo ARGS`, `cat` (stdin to stdout), `exit N`,
//!   `sleep N`, `stty size`, `sh -c 'ONE_OF_THOSE'`; `sh` alone is a tiny interactive
//!   shell (with a TTY it echoes input and answers `stty size` from resize events);
//!   anything else exits 127 with a message on stderr.
//! * **attach** connects to a main process that echoes its stdin (or, without stdin,
//!   prints the log lines and waits for the client to detach).
//! * **port-forward** connects to an echo server: every byte sent comes back.

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vk_core::capabilities::{
    ByteStream, ContainerAttach, ContainerExec, ContainerLogs, Duplex, ExecIo, LogOptions, Output,
    PortForward, TermSize,
};
use vk_core::logs::{self, LogLine};
use vk_errdefs::{Error, Result};

use crate::provider::MockProvider;

impl MockProvider {
    fn container_start(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<(Pod, Timestamp)> {
        let p = self.pod(namespace, pod).ok_or_else(|| {
            Error::not_found(format!("pod {namespace}/{pod} is not running on this node"))
        })?;
        let known = p
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .any(|c| c.name == container);
        if !known {
            return Err(Error::not_found(format!(
                "container {container:?} is not valid for pod {namespace}/{pod}"
            )));
        }
        let started = p
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
            .unwrap_or_else(Timestamp::now);
        Ok((p, started))
    }
}

#[async_trait]
impl ContainerLogs for MockProvider {
    async fn container_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        options: &LogOptions,
    ) -> Result<ByteStream> {
        let (_, started) = self.container_start(namespace, pod, container)?;
        if options.previous {
            return Err(Error::invalid_input(format!(
                "previous terminated container {container:?} in pod {pod:?} not found"
            )));
        }
        // The configured lines, one millisecond apart from the container's start.
        let head: Vec<LogLine> = self
            .log_lines()
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let offset = SignedDuration::from_millis(i64::try_from(i).unwrap_or(0));
                let time = started.checked_add(offset).unwrap_or(started);
                LogLine::new(Some(time), text.clone())
            })
            .collect();
        // Following adds a line a second until the client goes away.
        let live = futures::stream::unfold(1u64, |n| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let line = LogLine::new(Some(Timestamp::now()), format!("mock follow line {n}"));
            Some((Ok(line), n + 1))
        });
        Ok(logs::log_stream(
            head,
            Some(Box::pin(live)),
            options,
            Timestamp::now(),
        ))
    }
}

/// Splits a `sh -c` script into words, honouring single and double quotes.
pub(crate) fn words(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in script.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(current);
    }
    out
}

/// The result of a built-in command that does not need stdin.
enum Builtin {
    /// Output and exit code.
    Done {
        stdout: String,
        stderr: String,
        code: i32,
    },
    /// `cat`: copy stdin to stdout.
    Cat,
    /// `sleep`.
    Sleep(Duration),
    /// `sh` with no script: the interactive shell.
    Shell,
}

/// The interval of `sleep SECONDS`: a non-negative number of seconds that fits a
/// [`Duration`] (`None` for anything else, including `1e300`, `inf` and `nan`).
fn sleep_interval(arg: &str) -> Option<Duration> {
    let secs = arg.parse::<f64>().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

fn builtin(argv: &[String], size: Option<TermSize>) -> Builtin {
    let done = |stdout: String, stderr: String, code| Builtin::Done {
        stdout,
        stderr,
        code,
    };
    match argv.first().map(String::as_str) {
        Some("echo") => done(format!("{}\n", argv[1..].join(" ")), String::new(), 0),
        Some("cat") if argv.len() == 1 => Builtin::Cat,
        Some("true") => done(String::new(), String::new(), 0),
        Some("false") => done(String::new(), String::new(), 1),
        Some("exit") => match argv.get(1).map(|c| c.parse::<i32>()) {
            None => done(String::new(), String::new(), 0),
            Some(Ok(code)) => done(String::new(), String::new(), code.rem_euclid(256)),
            Some(Err(_)) => done(String::new(), "exit: numeric argument required\n".into(), 2),
        },
        Some("sleep") => match argv.get(1).and_then(|s| sleep_interval(s)) {
            Some(d) => Builtin::Sleep(d),
            None => done(String::new(), "sleep: invalid time interval\n".into(), 1),
        },
        Some("stty") if argv.get(1).map(String::as_str) == Some("size") => match size {
            Some(s) => done(format!("{} {}\n", s.height, s.width), String::new(), 0),
            None => done(
                String::new(),
                "stty: 'standard input': Inappropriate ioctl for device\n".into(),
                1,
            ),
        },
        Some("sh") | Some("bash") | Some("/bin/sh") | Some("/bin/bash") => {
            match argv.get(1).map(String::as_str) {
                Some("-c") => match argv.get(2) {
                    Some(script) => {
                        let inner = words(script);
                        if inner.is_empty() {
                            done(String::new(), String::new(), 0)
                        } else {
                            builtin(&inner, size)
                        }
                    }
                    None => done(
                        String::new(),
                        "sh: -c: option requires an argument\n".into(),
                        2,
                    ),
                },
                None => Builtin::Shell,
                Some(other) => done(
                    String::new(),
                    format!("sh: {other}: No such file or directory\n"),
                    127,
                ),
            }
        }
        Some(other) => done(
            String::new(),
            format!("mock: {other}: command not found\n"),
            127,
        ),
        None => done(String::new(), String::new(), 0),
    }
}

async fn write(out: &mut Option<Output>, bytes: &[u8]) {
    if let Some(w) = out.as_mut() {
        let _ = w.write_all(bytes).await;
        let _ = w.flush().await;
    }
}

/// Runs `argv` against `io`; returns the exit code.
async fn run(argv: Vec<String>, mut io: ExecIo) -> i32 {
    let mut size: Option<TermSize> = None;
    if let Some(rx) = io.resize.as_mut() {
        // kubectl announces the terminal's size right after opening the streams: wait
        // for it (a client that never sends one gets no size after a second).
        if let Ok(Some(s)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            size = Some(s);
        }
        while let Ok(s) = rx.try_recv() {
            size = Some(s);
        }
    }
    match builtin(&argv, size) {
        Builtin::Done {
            stdout,
            stderr,
            code,
        } => {
            let (mut out, mut err) = (io.stdout.take(), io.stderr.take());
            if io.tty {
                write(
                    &mut out,
                    format!("{stdout}{stderr}").replace('\n', "\r\n").as_bytes(),
                )
                .await;
            } else {
                write(&mut out, stdout.as_bytes()).await;
                write(&mut err, stderr.as_bytes()).await;
            }
            code
        }
        Builtin::Sleep(d) => {
            tokio::time::sleep(d).await;
            0
        }
        Builtin::Cat => {
            if let (Some(mut input), Some(mut output)) = (io.stdin.take(), io.stdout.take()) {
                let _ = tokio::io::copy(&mut input, &mut output).await;
                let _ = output.flush().await;
            }
            0
        }
        Builtin::Shell => shell(io, size).await,
    }
}

/// A line-oriented shell over the builtins. With a TTY it behaves like a terminal's
/// line discipline: input is echoed, Enter ends a line, Ctrl-D on an empty line exits.
async fn shell(mut io: ExecIo, mut size: Option<TermSize>) -> i32 {
    let Some(mut input) = io.stdin.take() else {
        return 0;
    };
    let mut out = io.stdout.take();
    let mut err = io.stderr.take();
    let tty = io.tty;
    let nl = if tty { "\r\n" } else { "\n" };
    if tty {
        write(&mut out, b"$ ").await;
    }
    let mut line = String::new();
    let mut buf = [0u8; 1024];
    let mut last_code = 0;
    loop {
        if let Some(rx) = io.resize.as_mut() {
            while let Ok(s) = rx.try_recv() {
                size = Some(s);
            }
        }
        let n = match input.read(&mut buf).await {
            Ok(0) | Err(_) => return last_code,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            match b {
                0x04 if line.is_empty() => return last_code, // Ctrl-D
                b'\r' | b'\n' => {
                    if tty {
                        write(&mut out, nl.as_bytes()).await;
                    }
                    let argv = words(&std::mem::take(&mut line));
                    if argv.first().map(String::as_str) == Some("exit") {
                        return match builtin(&argv, size) {
                            Builtin::Done { code, .. } => code,
                            _ => 0,
                        };
                    }
                    if !argv.is_empty() {
                        last_code = match builtin(&argv, size) {
                            Builtin::Done {
                                stdout,
                                stderr,
                                code,
                            } => {
                                if tty {
                                    let text = format!("{stdout}{stderr}").replace('\n', "\r\n");
                                    write(&mut out, text.as_bytes()).await;
                                } else {
                                    write(&mut out, stdout.as_bytes()).await;
                                    write(&mut err, stderr.as_bytes()).await;
                                }
                                code
                            }
                            Builtin::Sleep(d) => {
                                tokio::time::sleep(d).await;
                                0
                            }
                            Builtin::Cat | Builtin::Shell => {
                                write(&mut err, b"mock sh: nested cat/sh is not supported\n").await;
                                1
                            }
                        };
                    }
                    if tty {
                        write(&mut out, b"$ ").await;
                    }
                }
                0x7f | 0x08 => {
                    if line.pop().is_some() && tty {
                        write(&mut out, b"\x08 \x08").await;
                    }
                }
                b => {
                    line.push(char::from(b));
                    if tty {
                        write(&mut out, &[b]).await;
                    }
                }
            }
        }
    }
}

#[async_trait]
impl ContainerExec for MockProvider {
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: Vec<String>,
        io: ExecIo,
    ) -> Result<i32> {
        self.container_start(namespace, pod, container)?;
        Ok(run(command, io).await)
    }
}

#[async_trait]
impl ContainerAttach for MockProvider {
    async fn attach(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        mut io: ExecIo,
    ) -> Result<Option<i32>> {
        self.container_start(namespace, pod, container)?;
        match (io.stdin.take(), io.stdout.take()) {
            (Some(mut input), Some(mut output)) => {
                let _ = tokio::io::copy(&mut input, &mut output).await;
                let _ = output.flush().await;
            }
            (None, Some(mut output)) => {
                for l in self.log_lines() {
                    let _ = output.write_all(format!("{l}\n").as_bytes()).await;
                }
                let _ = output.flush().await;
                // Stay attached until the client goes away (the future is dropped).
                std::future::pending::<()>().await;
            }
            (Some(mut input), None) => {
                let _ = tokio::io::copy(&mut input, &mut tokio::io::sink()).await;
            }
            (None, None) => {}
        }
        Ok(None)
    }
}

#[async_trait]
impl PortForward for MockProvider {
    async fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        _port: u16,
        stream: Box<dyn Duplex>,
    ) -> Result<()> {
        if self.pod(namespace, pod).is_none() {
            return Err(Error::not_found(format!(
                "pod {namespace}/{pod} is not running on this node"
            )));
        }
        let (mut r, mut w) = tokio::io::split(stream);
        tokio::io::copy(&mut r, &mut w).await.map_err(Error::from)?;
        w.shutdown().await.map_err(Error::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_c_scripts_split_like_a_shell() {
        assert_eq!(words("exit 3"), ["exit", "3"]);
        assert_eq!(
            words("echo 'hello world' \"x y\"z"),
            ["echo", "hello world", "x yz"]
        );
        assert_eq!(words("   "), Vec::<String>::new());
    }

    #[test]
    fn builtins() {
        let done = |argv: &[&str]| match builtin(
            &argv.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            Some(TermSize {
                width: 80,
                height: 24,
            }),
        ) {
            Builtin::Done {
                stdout,
                stderr,
                code,
            } => (stdout, stderr, code),
            _ => (String::new(), "not done".into(), -1),
        };
        assert_eq!(
            done(&["echo", "hi", "there"]),
            ("hi there\n".into(), String::new(), 0)
        );
        assert_eq!(done(&["sh", "-c", "exit 3"]).2, 3);
        assert_eq!(done(&["sh", "-c", "echo 'a b'"]).0, "a b\n");
        assert_eq!(done(&["stty", "size"]).0, "24 80\n");
        let (_, err, code) = done(&["ls"]);
        assert_eq!(code, 127);
        assert!(err.contains("command not found"));
        assert_eq!(done(&["exit", "300"]).2, 44);
        for bad in ["1e300", "-1", "inf", "nan", "soon", "18446744073709551616"] {
            assert_eq!(
                done(&["sleep", bad]),
                (String::new(), "sleep: invalid time interval\n".into(), 1),
                "sleep {bad}"
            );
        }
        assert!(matches!(
            builtin(&["sleep".to_owned(), "0.5".to_owned()], None),
            Builtin::Sleep(d) if d == Duration::from_millis(500)
        ));
    }

    #[tokio::test]
    async fn exec_and_shell_over_pipes() {
        let (mut client_in, server_in) = tokio::io::duplex(1024);
        let (server_out, mut client_out) = tokio::io::duplex(1024);
        let io = ExecIo {
            stdin: Some(Box::new(server_in)),
            stdout: Some(Box::new(server_out)),
            stderr: None,
            tty: false,
            resize: None,
        };
        let task = tokio::spawn(run(vec!["sh".into()], io));
        client_in
            .write_all(b"echo one\nexit 4\n")
            .await
            .expect("write");
        let code = task.await.expect("task");
        assert_eq!(code, 4);
        let mut out = String::new();
        client_out.read_to_string(&mut out).await.expect("read");
        assert_eq!(out, "one\n");
    }
}
