//! Startup, liveness and readiness probes (exec, httpGet, tcpSocket), with every timing
//! field: `initialDelaySeconds`, `periodSeconds` (default 10), `timeoutSeconds`
//! (default 1), `successThreshold` (default 1) and `failureThreshold` (default 3).
//!
//! Processes share the host network, so `httpGet` and `tcpSocket` go to `host` or
//! 127.0.0.1; exec probes run with the container's environment and working directory.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

/// Where probes run: the container's command context.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// The container (its ports resolve named probe ports).
    pub container: Container,
    /// Its environment.
    pub env: Vec<(String, String)>,
    /// Its working directory.
    pub cwd: std::path::PathBuf,
}

/// The timing of a probe with the API defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Before the first check.
    pub initial_delay: Duration,
    /// Between checks.
    pub period: Duration,
    /// Per check.
    pub timeout: Duration,
    /// Consecutive successes to count as success.
    pub success_threshold: u32,
    /// Consecutive failures to count as failure.
    pub failure_threshold: u32,
}

impl Timing {
    /// The timing of `probe`.
    pub fn of(probe: &Probe) -> Self {
        let secs = |v: Option<i32>, d: u64| {
            Duration::from_secs(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(d))
        };
        let count = |v: Option<i32>, d: u32| {
            v.and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(d)
        };
        Self {
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

fn port_of(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// Runs one check of `probe`; `true` on success.
pub async fn check(probe: &Probe, target: &ProbeTarget) -> bool {
    let timeout = Timing::of(probe).timeout;
    let attempt = async {
        if let Some(exec) = &probe.exec {
            let argv = exec.command.clone().unwrap_or_default();
            let Some((program, args)) = argv.split_first() else {
                return false;
            };
            let status = tokio::process::Command::new(program)
                .args(args)
                .env_clear()
                .envs(target.env.iter().map(|(k, v)| (k, v)))
                .current_dir(&target.cwd)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await;
            return status.is_ok_and(|s| s.success());
        }
        if let Some(tcp) = &probe.tcp_socket {
            let host = tcp.host.clone().unwrap_or_else(|| "127.0.0.1".into());
            let Some(port) = port_of(&tcp.port, &target.container) else {
                return false;
            };
            return tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .is_ok();
        }
        if let Some(http) = &probe.http_get {
            let host = http.host.clone().unwrap_or_else(|| "127.0.0.1".into());
            let Some(port) = port_of(&http.port, &target.container) else {
                return false;
            };
            let path = http.path.clone().unwrap_or_else(|| "/".into());
            let mut request = format!(
                "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.20\r\n"
            );
            for h in http.http_headers.iter().flatten() {
                request.push_str(&format!("{}: {}\r\n", h.name, h.value));
            }
            request.push_str("\r\n");
            let Ok(mut stream) = tokio::net::TcpStream::connect((host.as_str(), port)).await else {
                return false;
            };
            if stream.write_all(request.as_bytes()).await.is_err() {
                return false;
            }
            let mut head = vec![0u8; 64];
            let Ok(n) = stream.read(&mut head).await else {
                return false;
            };
            return http_status_ok(&head[..n]);
        }
        false
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(false)
}

/// Whether an HTTP response starts with a 2xx or 3xx status line.
///
/// ```
/// assert!(vk_process::probes::http_status_ok(b"HTTP/1.0 200 OK\r\n"));
/// assert!(vk_process::probes::http_status_ok(b"HTTP/1.1 302 Found\r\n"));
/// assert!(!vk_process::probes::http_status_ok(b"HTTP/1.1 500 Oops\r\n"));
/// ```
pub fn http_status_ok(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .is_some_and(|c| (200..400).contains(&c))
}

/// What the probes of one container instance report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeState {
    /// The startup probe succeeded (or there is none).
    pub started: bool,
    /// The readiness probe succeeds (or there is none and the container started).
    pub ready: bool,
    /// The liveness (or startup) probe failed `failureThreshold` times: restart.
    pub unhealthy: bool,
}

/// Runs `probe` every period, feeding consecutive results to `on_result(success)`
/// until it returns `false`.
async fn repeat(probe: &Probe, target: &ProbeTarget, mut on_result: impl FnMut(bool) -> bool) {
    let t = Timing::of(probe);
    tokio::time::sleep(t.initial_delay).await;
    loop {
        let ok = check(probe, target).await;
        if !on_result(ok) {
            return;
        }
        tokio::time::sleep(t.period).await;
    }
}

/// Runs the probes of one container instance, publishing [`ProbeState`] through
/// `state`, until the returned future is dropped (the instance ended) or liveness fails.
pub async fn run(target: ProbeTarget, state: watch::Sender<ProbeState>) {
    let c = target.container.clone();
    if let Some(startup) = &c.startup_probe {
        let t = Timing::of(startup);
        let (mut successes, mut failures) = (0u32, 0u32);
        let mut outcome = None;
        repeat(startup, &target, |ok| {
            if ok {
                successes += 1;
                failures = 0;
            } else {
                failures += 1;
                successes = 0;
            }
            if successes >= 1 {
                outcome = Some(true);
            } else if failures >= t.failure_threshold {
                outcome = Some(false);
            }
            outcome.is_none()
        })
        .await;
        if outcome != Some(true) {
            state.send_modify(|s| s.unhealthy = true);
            return;
        }
    }
    state.send_modify(|s| {
        s.started = true;
        s.ready = c.readiness_probe.is_none();
    });
    let readiness = async {
        let Some(probe) = &c.readiness_probe else {
            return;
        };
        let t = Timing::of(probe);
        let (mut successes, mut failures) = (0u32, 0u32);
        repeat(probe, &target, |ok| {
            if ok {
                successes += 1;
                failures = 0;
                if successes >= t.success_threshold {
                    state.send_if_modified(|s| !std::mem::replace(&mut s.ready, true));
                }
            } else {
                failures += 1;
                successes = 0;
                if failures >= t.failure_threshold {
                    state.send_if_modified(|s| std::mem::replace(&mut s.ready, false));
                }
            }
            true
        })
        .await;
    };
    let liveness = async {
        let Some(probe) = &c.liveness_probe else {
            return std::future::pending::<()>().await;
        };
        let t = Timing::of(probe);
        let mut failures = 0u32;
        repeat(probe, &target, |ok| {
            failures = if ok { 0 } else { failures + 1 };
            failures < t.failure_threshold
        })
        .await;
        state.send_modify(|s| s.unhealthy = true);
    };
    tokio::select! {
        () = async { readiness.await; std::future::pending::<()>().await } => {}
        () = liveness => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(c: Container) -> ProbeTarget {
        ProbeTarget {
            container: c,
            env: vec![],
            cwd: std::env::temp_dir(),
        }
    }

    #[test]
    fn timing_defaults_match_the_api() {
        let t = Timing::of(&Probe::default());
        assert_eq!(
            (
                t.period.as_secs(),
                t.timeout.as_secs(),
                t.success_threshold,
                t.failure_threshold
            ),
            (10, 1, 1, 3)
        );
    }

    #[tokio::test]
    async fn tcp_and_http_checks_hit_real_listeners() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.0 204 No Content\r\n\r\n").await;
            }
        });
        let c: Container = serde_json::from_value(
            serde_json::json!({"name": "c", "ports": [{"name": "web", "containerPort": port}]}),
        )
        .expect("c");
        let tcp: Probe = serde_json::from_value(serde_json::json!({"tcpSocket": {"port": "web"}}))
            .expect("probe");
        assert!(check(&tcp, &target(c.clone())).await);
        let http: Probe = serde_json::from_value(
            serde_json::json!({"httpGet": {"port": port, "path": "/healthz"}}),
        )
        .expect("probe");
        assert!(check(&http, &target(c.clone())).await);
        let closed: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": 1}})).expect("probe");
        assert!(!check(&closed, &target(c)).await);
    }

    #[tokio::test]
    async fn exec_checks_use_the_exit_code() {
        let ok: Probe =
            serde_json::from_value(serde_json::json!({"exec": {"command": ["true"]}})).expect("p");
        let bad: Probe =
            serde_json::from_value(serde_json::json!({"exec": {"command": ["false"]}})).expect("p");
        let mut t = target(Container::default());
        t.env.push(("PATH".into(), "/usr/bin:/bin".into()));
        assert!(check(&ok, &t).await);
        assert!(!check(&bad, &t).await);
    }
}
