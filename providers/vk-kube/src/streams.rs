//! `kubectl logs`, `exec`, `attach`, `port-forward` and stats on a home pod, relayed to
//! its remote pod through the remote API server (kube's WebSocket client).
//!
//! * Logs: every kubelet log option is passed on to the remote `pods/log` (which
//!   applies them, `follow` included); the bytes are streamed through.
//! * Exec and attach: the remote `pods/exec` / `pods/attach` WebSocket; stdin, stdout,
//!   stderr, TTY and resize events are copied both ways; the remote exit code (from the
//!   final `Status`) is returned.
//! * Port-forward: the remote `pods/portforward` WebSocket, one per connection.
//! * Stats: `/stats/summary` of each remote node running this node's pods, read through
//!   the remote API server's node proxy; the node totals are the sum over those nodes'
//!   pods of ours, and each pod is reported under its home namespace, name and UID.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{AttachParams, AttachedProcess, LogParams, TerminalSize};
use tokio::io::AsyncWriteExt as _;
use vk_core::capabilities::{
    ByteStream, Capabilities, ContainerAttach, ContainerExec, ContainerLogs, Duplex, ExecIo,
    LogOptions, PortForward,
};
use vk_core::kube_errors::from_kube;
use vk_core::stats::{StatsProvider, Summary};
use vk_errdefs::{Error, Result};

use crate::provider::KubeProvider;
use crate::translate::HomeRef;

/// Every capability, served by `provider`.
pub fn capabilities(provider: &Arc<KubeProvider>) -> Capabilities {
    Capabilities::all(provider.clone())
}

impl KubeProvider {
    /// The remote API and name of home pod `namespace/name`.
    fn remote_target(&self, namespace: &str, name: &str) -> Result<(Api<Pod>, String)> {
        let pod = self
            .inner
            .current_remote(namespace, name)
            .ok_or_else(|| Error::not_found(format!("no remote pod for {namespace}/{name}")))?;
        let remote_ns = pod.metadata.namespace.clone().unwrap_or_default();
        let remote_name = pod.metadata.name.clone().unwrap_or_default();
        Ok((
            Api::namespaced(self.inner.remote.clone(), &remote_ns),
            remote_name,
        ))
    }
}

/// The kubelet log options as the remote API's.
pub fn log_params(container: &str, options: &LogOptions) -> LogParams {
    LogParams {
        container: Some(container.to_owned()),
        follow: options.follow,
        limit_bytes: options.limit_bytes.and_then(|b| i64::try_from(b).ok()),
        pretty: false,
        previous: options.previous,
        since_seconds: options.since_seconds.and_then(|s| i64::try_from(s).ok()),
        since_time: options.since_time,
        tail_lines: options.tail_lines.and_then(|t| i64::try_from(t).ok()),
        timestamps: options.timestamps,
    }
}

#[async_trait]
impl ContainerLogs for KubeProvider {
    async fn container_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        options: &LogOptions,
    ) -> Result<ByteStream> {
        use futures::AsyncReadExt as _;
        let (api, name) = self.remote_target(namespace, pod)?;
        let reader = api
            .log_stream(&name, &log_params(container, options))
            .await
            .map_err(|e| from_kube(&format!("reading the logs of remote pod {name}"), e))?;
        let reader = Box::pin(reader);
        let stream = futures::stream::unfold(reader, |mut reader| async move {
            let mut buf = vec![0u8; 16 * 1024];
            match reader.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), reader))
                }
                Err(e) => Some((Err(e), reader)),
            }
        });
        Ok(Box::pin(stream))
    }
}

/// The exit code in a remote command's final status: 0 on success, the
/// `ExitCode` cause of a `NonZeroExitCode` failure, else 1 for other failures.
pub fn exit_code(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> i32 {
    if status.status.as_deref() == Some("Success") {
        return 0;
    }
    status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.parse().ok())
        .unwrap_or(1)
}

fn attach_params(container: &str, io: &ExecIo) -> AttachParams {
    AttachParams {
        container: Some(container.to_owned()),
        stdin: io.stdin.is_some(),
        stdout: io.stdout.is_some(),
        stderr: io.stderr.is_some() && !io.tty,
        tty: io.tty,
        ..Default::default()
    }
}

/// Copies `io` to and from the remote session until its output ends; returns the exit
/// code from the final status, if one came.
async fn relay(mut remote: AttachedProcess, io: ExecIo) -> Option<i32> {
    use futures::SinkExt as _;
    let status = remote.take_status();
    let mut background = tokio::task::JoinSet::new();
    if let (Some(mut input), Some(mut writer)) = (io.stdin, remote.stdin()) {
        background.spawn(async move {
            let _ = tokio::io::copy(&mut input, &mut writer).await;
            let _ = writer.shutdown().await;
        });
    }
    if let (Some(mut resize), Some(mut sender)) = (io.resize, remote.terminal_size()) {
        background.spawn(async move {
            while let Some(size) = resize.recv().await {
                let size = TerminalSize {
                    width: size.width,
                    height: size.height,
                };
                if sender.send(size).await.is_err() {
                    break;
                }
            }
        });
    }
    let (remote_stdout, remote_stderr) = (remote.stdout(), remote.stderr());
    let stdout = async {
        if let (Some(mut reader), Some(mut out)) = (remote_stdout, io.stdout) {
            let _ = tokio::io::copy(&mut reader, &mut out).await;
            let _ = out.flush().await;
        }
    };
    let stderr = async {
        if let (Some(mut reader), Some(mut out)) = (remote_stderr, io.stderr) {
            let _ = tokio::io::copy(&mut reader, &mut out).await;
            let _ = out.flush().await;
        }
    };
    tokio::join!(stdout, stderr);
    let code = match status {
        Some(s) => s.await.map(|s| exit_code(&s)),
        None => None,
    };
    background.abort_all();
    code
}

#[async_trait]
impl ContainerExec for KubeProvider {
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: Vec<String>,
        io: ExecIo,
    ) -> Result<i32> {
        let (api, name) = self.remote_target(namespace, pod)?;
        let remote = api
            .exec(&name, command, &attach_params(container, &io))
            .await
            .map_err(|e| from_kube(&format!("exec in remote pod {name}"), e))?;
        Ok(relay(remote, io).await.unwrap_or(0))
    }
}

#[async_trait]
impl ContainerAttach for KubeProvider {
    async fn attach(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        io: ExecIo,
    ) -> Result<Option<i32>> {
        let (api, name) = self.remote_target(namespace, pod)?;
        let remote = api
            .attach(&name, &attach_params(container, &io))
            .await
            .map_err(|e| from_kube(&format!("attaching to remote pod {name}"), e))?;
        Ok(relay(remote, io).await)
    }
}

#[async_trait]
impl PortForward for KubeProvider {
    async fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        mut stream: Box<dyn Duplex>,
    ) -> Result<()> {
        let (api, name) = self.remote_target(namespace, pod)?;
        let mut forwarder = api
            .portforward(&name, &[port])
            .await
            .map_err(|e| from_kube(&format!("port-forward to remote pod {name}"), e))?;
        let mut remote = forwarder.take_stream(port).ok_or_else(|| {
            Error::new(
                vk_errdefs::ErrorKind::Unknown,
                "the port-forward stream was already taken",
            )
        })?;
        let _ = tokio::io::copy_bidirectional(&mut stream, &mut remote).await;
        drop(remote);
        let _ = forwarder.join().await;
        Ok(())
    }
}

#[async_trait]
impl StatsProvider for KubeProvider {
    async fn stats_summary(&self) -> Result<Summary> {
        let pods = self.inner.pods.all();
        let nodes: BTreeSet<String> = pods
            .iter()
            .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
            .collect();
        let mut summary = Summary::default();
        summary.node.node_name = self.inner.node.clone();
        for node in nodes {
            let request = http::Request::get(format!("/api/v1/nodes/{node}/proxy/stats/summary"))
                .body(Vec::new())
                .map_err(|e| {
                    Error::invalid_input(format!("building a stats request for node {node}: {e}"))
                })?;
            let remote: Summary = match self.inner.remote.request(request).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(node = %node, error = %e, "reading a remote node's stats failed");
                    continue;
                }
            };
            merge_pod_stats(&mut summary, remote, &pods);
        }
        Ok(summary)
    }
}

/// Adds to `summary` the pods of `remote` (one remote node's summary) that are ours,
/// renamed to their home identity, and their usage to the node totals.
pub fn merge_pod_stats(summary: &mut Summary, remote: Summary, ours: &[Arc<Pod>]) {
    for mut stats in remote.pods {
        let Some(home) = ours
            .iter()
            .find(|p| {
                p.metadata.uid.as_deref() == Some(stats.pod_ref.uid.as_str())
                    || (p.metadata.namespace.as_deref() == Some(stats.pod_ref.namespace.as_str())
                        && p.metadata.name.as_deref() == Some(stats.pod_ref.name.as_str()))
            })
            .and_then(|p| HomeRef::of_remote(p))
        else {
            continue;
        };
        stats.pod_ref.namespace = home.namespace;
        stats.pod_ref.name = home.name;
        stats.pod_ref.uid = home.uid;
        if let Some(cpu) = &stats.cpu {
            let node_cpu = summary.node.cpu.get_or_insert_with(Default::default);
            node_cpu.time = node_cpu.time.clone().or_else(|| cpu.time.clone());
            node_cpu.usage_nano_cores =
                Some(node_cpu.usage_nano_cores.unwrap_or(0) + cpu.usage_nano_cores.unwrap_or(0));
            node_cpu.usage_core_nano_seconds = Some(
                node_cpu.usage_core_nano_seconds.unwrap_or(0)
                    + cpu.usage_core_nano_seconds.unwrap_or(0),
            );
        }
        if let Some(memory) = &stats.memory {
            let node_memory = summary.node.memory.get_or_insert_with(Default::default);
            node_memory.time = node_memory.time.clone().or_else(|| memory.time.clone());
            node_memory.working_set_bytes = Some(
                node_memory.working_set_bytes.unwrap_or(0) + memory.working_set_bytes.unwrap_or(0),
            );
            node_memory.usage_bytes =
                Some(node_memory.usage_bytes.unwrap_or(0) + memory.usage_bytes.unwrap_or(0));
        }
        summary.pods.push(stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_options_pass_through() {
        let options = LogOptions {
            follow: true,
            tail_lines: Some(5),
            limit_bytes: Some(100),
            previous: true,
            since_seconds: Some(60),
            since_time: None,
            timestamps: true,
        };
        let lp = log_params("c", &options);
        assert_eq!(lp.container.as_deref(), Some("c"));
        assert!(lp.follow && lp.previous && lp.timestamps);
        assert_eq!(
            (lp.tail_lines, lp.limit_bytes, lp.since_seconds),
            (Some(5), Some(100), Some(60))
        );
    }

    #[test]
    fn exit_codes_from_status() {
        let status = |v: serde_json::Value| {
            serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>(v)
                .expect("status")
        };
        assert_eq!(exit_code(&status(json!({"status": "Success"}))), 0);
        assert_eq!(
            exit_code(&status(
                json!({"status": "Failure", "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "42"}]}})
            )),
            42
        );
        assert_eq!(
            exit_code(&status(
                json!({"status": "Failure", "message": "container not found"})
            )),
            1
        );
    }
}
