//! The node under test of most scenarios: a release vk-mock process (the bench's
//! [`Agent`]) serving one virtual node, a namespace of its own, and its pods.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use tokio::time::Instant;

use super::Env;
use super::probe::{Census, ProviderCounts};
use crate::bench::agent::Agent;
use crate::bench::scenarios::{delete_node_objects, drop_namespace, namespace};
use crate::bench::workload::{bench_pod, delete_all};

/// How the provider process is set up.
#[derive(Debug, Clone, Default)]
pub struct ProviderSetup {
    /// Keep its pods in a state file across restarts.
    pub state_file: bool,
    /// Fraction of create/update/delete calls that fail (vk-mock's `faults.error_rate`).
    pub error_rate: f64,
    /// Reach the API server with this kubeconfig instead of the admin one (e.g. through
    /// the proxy).
    pub kubeconfig: Option<PathBuf>,
    /// Log as JSON lines (for the log to be read back).
    pub json_logs: bool,
    /// Serve the kubelet API with the cluster's kubelet serving certificate (signed by
    /// the cluster CA, valid for 127.0.0.1) instead of a self-signed one, so that the
    /// suite can talk to [`Rig::kubelet_port`] as a verifying TLS client. Callers are
    /// verified against the cluster CA either way (the kubeconfig's).
    pub kubelet_tls: bool,
}

/// A virtual node served by a vk-mock process, with a namespace for its pods.
pub struct Rig {
    /// Admin client.
    pub client: Client,
    /// The node's name.
    pub node: String,
    /// The namespace of its pods.
    pub ns: String,
    /// The provider process.
    pub agent: Agent,
    /// The provider's log.
    pub log: PathBuf,
    /// The provider's state file, when it has one.
    pub state_file: Option<PathBuf>,
    /// The port of the node's kubelet API (TLS).
    pub kubelet_port: u16,
}

/// How many pods are created at once.
const CONCURRENCY: usize = 16;

/// The state file's line count: one line per pod the provider holds.
pub fn state_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0)
}

impl Rig {
    /// Starts the provider for node `vk-faults-<scenario>` and waits until it is ready.
    pub async fn start(env: &Env, scenario: &str, setup: &ProviderSetup) -> anyhow::Result<Self> {
        let node = format!("vk-faults-{scenario}");
        let ns = namespace(&env.client, &format!("faults-{scenario}")).await?;
        let log = env.out.join(format!("{scenario}-provider.log"));
        let _ = std::fs::remove_file(&log);
        let state_file = setup
            .state_file
            .then(|| env.out.join(format!("{scenario}-state.json")));
        if let Some(s) = &state_file {
            let _ = std::fs::remove_file(s);
        }
        let config = env.out.join(format!("{scenario}-mock.toml"));
        std::fs::write(&config, mock_config(setup, state_file.as_deref()))?;
        let kubeconfig = setup.kubeconfig.as_ref().unwrap_or(&env.kubeconfig);
        let kubelet_port = vk_testkit::free_port()?;
        let mut args: Vec<String> = [
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--nodename",
            &node,
            "--provider-config",
            &config.display().to_string(),
            "--listen-port",
            &kubelet_port.to_string(),
            "--no-success-events",
        ]
        .map(String::from)
        .to_vec();
        if setup.json_logs {
            args.extend(["--log-format".into(), "json".into()]);
        }
        if setup.kubelet_tls {
            let serving = env.cluster.layout().pki().kubelet_serving();
            args.extend([
                "--tls-cert-file".into(),
                serving.cert.display().to_string(),
                "--tls-private-key-file".into(),
                serving.key.display().to_string(),
            ]);
        }
        let mut agent = Agent::start(&env.binary, &args, &log)?;
        agent
            .wait_ready(Duration::from_secs(120))
            .await
            .with_context(|| format!("starting the provider of {node}"))?;
        Ok(Self {
            client: env.client.clone(),
            node,
            ns,
            agent,
            log,
            state_file,
            kubelet_port,
        })
    }

    /// The pods API of the namespace.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// The pods of the namespace now.
    pub async fn census(&self) -> anyhow::Result<Census> {
        Ok(Census::take(&self.client, &self.ns).await?)
    }

    /// The provider's counters now.
    pub async fn counts(&self) -> anyhow::Result<ProviderCounts> {
        ProviderCounts::read(self.agent.metrics_port).await
    }

    /// Creates pods `names` on the node, 16 at a time, each retried (every 500 ms, for
    /// up to `limit`) while the API server fails or is unreachable; a create that
    /// answers AlreadyExists went through earlier.
    pub async fn create_pods(&self, names: &[String], limit: Duration) -> anyhow::Result<()> {
        let api = self.pods();
        let deadline = Instant::now() + limit;
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(names)
            .map(|name| {
                let api = api.clone();
                let pod = bench_pod(name, &self.node);
                async move {
                    loop {
                        let error = match api.create(&PostParams::default(), &pod).await {
                            Ok(_) => return Ok(()),
                            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
                            Err(e) => e,
                        };
                        if Instant::now() >= deadline {
                            return Err(
                                anyhow::Error::new(error).context(format!("creating pod {name}"))
                            );
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Waits until every pod of `names` is Running, printing progress every 5 s; how
    /// long that took, or `None` after `limit`.
    pub async fn wait_running(
        &self,
        label: &str,
        names: &[String],
        limit: Duration,
    ) -> Option<Duration> {
        let start = Instant::now();
        let mut said = Instant::now();
        loop {
            let running = match self.census().await {
                Ok(c) => c.running(names),
                Err(_) => 0,
            };
            if running == names.len() {
                return Some(start.elapsed());
            }
            if start.elapsed() >= limit {
                eprintln!(
                    "    {label}: only {running}/{} Running after {limit:?}",
                    names.len()
                );
                return None;
            }
            if said.elapsed() >= Duration::from_secs(5) {
                eprintln!(
                    "    {label}: {running}/{} Running ({:.0} s)",
                    names.len(),
                    start.elapsed().as_secs_f64()
                );
                said = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Deletes every pod of the namespace (grace 1 s, as a user would) and waits until
    /// none is left; how long that took, or `None` after `limit`.
    pub async fn delete_pods(
        &self,
        label: &str,
        limit: Duration,
    ) -> anyhow::Result<Option<Duration>> {
        let start = Instant::now();
        delete_all(&self.client, &self.ns, 1, CONCURRENCY).await?;
        let mut said = Instant::now();
        loop {
            let left = self.census().await.map_or(usize::MAX, |c| c.len());
            if left == 0 {
                return Ok(Some(start.elapsed()));
            }
            if start.elapsed() >= limit {
                eprintln!("    {label}: {left} pods still exist after {limit:?}");
                return Ok(None);
            }
            if said.elapsed() >= Duration::from_secs(5) {
                eprintln!(
                    "    {label}: {left} pods left ({:.0} s)",
                    start.elapsed().as_secs_f64()
                );
                said = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until the provider's pod controller tracks `tracked` pods and has nothing
    /// queued (every pod synced); `false` after `limit`.
    pub async fn wait_idle(&self, tracked: u64, limit: Duration) -> bool {
        super::probe::time_until(Instant::now(), limit, || async move {
            self.counts()
                .await
                .is_ok_and(|c| c.tracked == tracked && c.queued == 0)
        })
        .await
        .is_some()
    }

    /// Stops the provider, force-deletes what is left of the pods, deletes the Node and
    /// the namespace, and removes the state file. Best effort: clean-up failures are
    /// printed, not returned.
    pub async fn teardown(mut self) {
        if let Err(e) = self.agent.stop() {
            eprintln!("    stopping the provider of {}: {e:#}", self.node);
        }
        let api = self.pods();
        if let Ok(census) = self.census().await {
            let now = DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            for name in census.0.keys() {
                let _ = api.delete(name, &now).await;
            }
        }
        delete_node_objects(&self.client, &self.node).await;
        drop_namespace(&self.client, &self.ns).await;
        if let Some(s) = &self.state_file {
            let _ = std::fs::remove_file(s);
        }
    }
}

/// vk-mock's configuration: room for every pod, and the faults of `setup`.
fn mock_config(setup: &ProviderSetup, state_file: Option<&Path>) -> String {
    let mut text = String::new();
    if let Some(s) = state_file {
        text.push_str(&format!("state_file = {:?}\n", s.display().to_string()));
    }
    text.push_str("[capacity]\ncpu = \"1000\"\nmemory = \"4Ti\"\npods = \"100000\"\n");
    if setup.error_rate > 0.0 {
        text.push_str(&format!("[faults]\nerror_rate = {}\n", setup.error_rate));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_config_carries_the_state_file_and_the_error_rate() {
        let plain = mock_config(&ProviderSetup::default(), None);
        assert!(
            !plain.contains("state_file") && !plain.contains("[faults]"),
            "{plain}"
        );
        let setup = ProviderSetup {
            error_rate: 0.2,
            ..Default::default()
        };
        let faulty = mock_config(&setup, Some(Path::new("/tmp/s.json")));
        // What vk-mock reads from it.
        let read: vk_mock::MockConfig = toml::from_str(&faulty).expect("vk-mock's format");
        assert_eq!(read.faults.error_rate, 0.2);
        assert_eq!(read.state_file.as_deref(), Some(Path::new("/tmp/s.json")));
        assert_eq!(read.capacity["pods"], "100000");
        let read: vk_mock::MockConfig = toml::from_str(&plain).expect("vk-mock's format");
        assert_eq!((read.faults.error_rate, read.state_file), (0.0, None));
    }

    #[test]
    fn state_lines_counts_pods() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("state.json");
        assert_eq!(state_lines(&p), 0, "no file yet");
        std::fs::write(&p, "{}\n{}\n\n").expect("write");
        assert_eq!(state_lines(&p), 2);
    }
}
