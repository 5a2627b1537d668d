//! The provider under test, run as a separate process so its CPU time and peak RSS can be
//! read from /proc; its admin listener gives readiness and its own API request counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::procfs::{self, ProcSample};

/// A running vk-mock process.
pub struct Agent {
    child: Option<Child>,
    /// Its admin port.
    pub metrics_port: u16,
    binary: PathBuf,
    args: Vec<String>,
    log: PathBuf,
}

/// API requests of the agent, as counted by its own client: (verb, resource) → count.
pub type ApiCounts = BTreeMap<(String, String), u64>;

impl Agent {
    /// Starts `binary` with `args` plus `--metrics-addr` on a free port; output goes to
    /// `log`.
    pub fn start(binary: &Path, args: &[String], log: &Path) -> anyhow::Result<Self> {
        let metrics_port = free_port()?;
        let mut agent = Self {
            child: None,
            metrics_port,
            binary: binary.to_owned(),
            args: args.to_vec(),
            log: log.to_owned(),
        };
        agent.spawn()?;
        Ok(agent)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .args([
                "--metrics-addr",
                &format!("127.0.0.1:{}", self.metrics_port),
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// CPU and memory now.
    pub fn sample(&self) -> ProcSample {
        procfs::sample(self.pid()).unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200; returns how long that took.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = http_get(self.metrics_port, "/readyz").await {
                return Ok(start.elapsed());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("the provider exited ({status}); see {}", self.log.display());
            }
            if start.elapsed() > timeout {
                bail!(
                    "the provider was not ready after {timeout:?}; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The agent's API request counts.
    pub async fn api_counts(&self) -> anyhow::Result<ApiCounts> {
        let (_, text) = http_get(self.metrics_port, "/metrics").await?;
        Ok(parse_api_counts(&text))
    }

    /// Stops the process with SIGTERM (SIGKILL after 30 s) and waits for it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops and starts the process again (same arguments and port).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.spawn()
    }

    /// Kills the process with SIGKILL (no clean shutdown, as in a crash), reaps it, and
    /// starts it again (same arguments and port).
    pub fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        self.spawn()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Sums `vk_api_requests_total` by (verb, resource).
pub fn parse_api_counts(text: &str) -> ApiCounts {
    let mut out = ApiCounts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("vk_api_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let value: u64 = value.trim().parse().unwrap_or(0);
        *out.entry((label("verb"), label("resource"))).or_insert(0) += value;
    }
    out
}

/// Differences of `after - before`, summed over entries matching `filter`.
pub fn delta(before: &ApiCounts, after: &ApiCounts, filter: impl Fn(&str, &str) -> bool) -> u64 {
    after
        .iter()
        .filter(|((v, r), _)| filter(v, r))
        .map(|(k, a)| a.saturating_sub(before.get(k).copied().unwrap_or(0)))
        .sum()
}

/// Whether a verb writes.
pub fn is_write(verb: &str) -> bool {
    matches!(verb, "create" | "update" | "patch" | "delete")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    Ok(vk_testkit::http::get(port, path).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_counters_and_deltas() {
        let before = parse_api_counts(
            "vk_api_requests_total{verb=\"patch\",resource=\"pods/status\",code=\"200\"} 3\n",
        );
        let after = parse_api_counts(
            "# TYPE vk_api_requests counter\n\
             vk_api_requests_total{verb=\"patch\",resource=\"pods/status\",code=\"200\"} 10\n\
             vk_api_requests_total{verb=\"patch\",resource=\"pods/status\",code=\"409\"} 1\n\
             vk_api_requests_total{verb=\"delete\",resource=\"pods\",code=\"200\"} 5\n\
             vk_api_requests_total{verb=\"update\",resource=\"leases\",code=\"200\"} 4\n",
        );
        assert_eq!(after[&("patch".into(), "pods/status".into())], 11);
        let pod_writes = delta(&before, &after, |v, r| is_write(v) && r.starts_with("pods"));
        assert_eq!(pod_writes, 8 + 5);
        assert_eq!(delta(&before, &after, |_, r| r == "leases"), 4);
    }
}
