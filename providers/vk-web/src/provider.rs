//! [`WebProvider`]: every provider call forwarded to the bridge.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus,
};
use k8s_openapi::jiff::Timestamp;
use vk_core::capabilities::{
    ByteStream, Capabilities, ContainerAttach, ContainerExec, ContainerLogs, Duplex, ExecIo,
    LogOptions, PortForward,
};
use vk_core::stats::{StatsProvider, Summary};
use vk_core::{NodeProvider, NodeStatusSink, PodLifecycleHandler, PodNotifier, PodStatusSink};
use vk_errdefs::{ErrorKind, Result};

use crate::client::BridgeClient;
use crate::config::{ProtocolChoice, WebConfig};
use crate::error::WebError;
use crate::v2::{self, BridgeCapabilities, ChannelFraming, SessionQuery, feature};

/// The protocol a bridge speaks, as found out from `GET /v2/capabilities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// The original web provider's routes only.
    V1,
    /// v2, with the features the bridge advertised.
    V2(BridgeCapabilities),
}

impl Protocol {
    /// Whether the bridge serves the v2 `feature`.
    pub fn has(&self, feature: &str) -> bool {
        match self {
            Protocol::V1 => false,
            Protocol::V2(caps) => caps.has(feature),
        }
    }
}

/// A virtual node's provider that forwards every call to a bridge over HTTP.
///
/// Pod calls use the v1 routes (see [`crate::client`]); logs, exec, attach,
/// port-forward, stats, status push and ping use v2 when the bridge advertises it.
/// Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), vk_errdefs::Error> {
/// use vk_core::PodLifecycleHandler;
/// let provider = vk_web::WebProvider::new("node-1", vk_web::WebConfig::new("http://127.0.0.1:8000"))?;
/// let pods = provider.get_pods().await?;
/// # let _ = pods; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct WebProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) bridge: BridgeClient,
    pub(crate) node_name: String,
    protocol: Mutex<Option<Protocol>>,
    /// The pod status sink, once the controller gave it (used to report a created
    /// pod's first status at once when the bridge has no watch).
    sink: Mutex<Option<PodStatusSink>>,
}

impl WebProvider {
    /// A provider for node `node_name` talking to the bridge `config` describes.
    pub fn new(node_name: impl Into<String>, config: WebConfig) -> Result<Self, WebError> {
        let bridge = BridgeClient::new(&config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                bridge,
                node_name: node_name.into(),
                protocol: Mutex::new(None),
                sink: Mutex::new(None),
            }),
        })
    }

    /// The bridge client.
    pub fn bridge(&self) -> &BridgeClient {
        &self.inner.bridge
    }

    /// The protocol of the bridge: asked once (`GET /v2/capabilities`) and remembered;
    /// an unreachable bridge is an error and asked again next time.
    pub async fn protocol(&self) -> Result<Protocol, WebError> {
        self.inner.protocol().await
    }
}

impl Inner {
    pub(crate) async fn protocol(&self) -> Result<Protocol, WebError> {
        if let Some(known) = self.protocol.lock().ok().and_then(|p| p.clone()) {
            return Ok(known);
        }
        self.refresh_protocol().await
    }

    /// Asks the bridge again (after a reconnection: it may have been replaced).
    pub(crate) async fn refresh_protocol(&self) -> Result<Protocol, WebError> {
        let choice = self.bridge.config.protocol;
        let found = if choice == ProtocolChoice::V1 {
            Protocol::V1
        } else {
            match self.bridge.capabilities().await? {
                Some(caps) if caps.version >= v2::PROTOCOL_VERSION => Protocol::V2(caps),
                _ if choice == ProtocolChoice::V2 => {
                    return Err(WebError::Unsupported {
                        call: "negotiate the protocol".into(),
                        reason: "protocol = \"v2\" is configured but the bridge does not \
                                 advertise v2 at GET /v2/capabilities"
                            .into(),
                    });
                }
                _ => Protocol::V1,
            }
        };
        if let Ok(mut slot) = self.protocol.lock() {
            if slot.as_ref() != Some(&found) {
                tracing::info!(protocol = ?found, "bridge protocol");
            }
            *slot = Some(found.clone());
        }
        Ok(found)
    }

    /// The protocol, requiring the v2 `feature` for `call`.
    async fn require(&self, feature: &str, call: impl FnOnce() -> String) -> Result<(), WebError> {
        let protocol = self.protocol().await?;
        if protocol.has(feature) {
            Ok(())
        } else {
            Err(WebError::Unsupported {
                call: call(),
                reason: match protocol {
                    Protocol::V1 => "a v1 bridge".to_string(),
                    Protocol::V2(_) => format!("the bridge does not advertise `{feature}`"),
                },
            })
        }
    }

    fn sink(&self) -> Option<PodStatusSink> {
        self.sink.lock().ok().and_then(|s| s.clone())
    }

    fn watching(&self) -> bool {
        self.protocol
            .lock()
            .ok()
            .and_then(|p| p.clone())
            .is_some_and(|p| p.has(feature::WATCH))
    }
}

/// `AlreadyExists` for a create answered `409`.
fn create_error(err: WebError) -> vk_errdefs::Error {
    if err.status() == Some(409) {
        vk_errdefs::Error::wrap(ErrorKind::AlreadyExists, err.to_string(), err)
    } else {
        err.into()
    }
}

#[async_trait]
impl PodLifecycleHandler for WebProvider {
    async fn create_pod(&self, pod: &Pod) -> Result<()> {
        self.inner
            .bridge
            .create_pod(pod)
            .await
            .map_err(create_error)?;
        // Without a watch, the first status would wait for the next poll: read it now.
        if !self.inner.watching()
            && let Some(sink) = self.inner.sink()
        {
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            match self.inner.bridge.get_pod_status(&namespace, &name).await {
                Ok(Some(status)) => sink.notify(with_status(pod, status)),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "first status of a created pod"),
            }
        }
        Ok(())
    }

    async fn update_pod(&self, pod: &Pod) -> Result<()> {
        Ok(self.inner.bridge.update_pod(pod).await?)
    }

    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        self.inner.bridge.delete_pod(pod).await?;
        // Without a watch, nothing would tell the core when the pod has stopped.
        if !self.inner.watching()
            && let Some(sink) = self.inner.sink()
        {
            tokio::spawn(follow_deletion(
                Arc::downgrade(&self.inner),
                sink,
                pod.clone(),
            ));
        }
        Ok(())
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Ok(self.inner.bridge.get_pod(namespace, name).await?)
    }

    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        Ok(self.inner.bridge.get_pod_status(namespace, name).await?)
    }

    async fn get_pods(&self) -> Result<Vec<Pod>> {
        Ok(self.inner.bridge.get_pods().await?)
    }

    fn pod_notifier(&self) -> Option<&dyn PodNotifier> {
        Some(self)
    }

    fn capabilities(self: Arc<Self>) -> Capabilities {
        Capabilities::all(self)
    }

    /// The `podIP` a v2 bridge advertises in its capabilities.
    fn pod_ip_hint(&self, _pod: &Pod) -> Option<std::net::IpAddr> {
        match self.inner.protocol.lock().ok()?.as_ref()? {
            Protocol::V2(caps) => caps.pod_ip,
            Protocol::V1 => None,
        }
    }
}

/// After a delete on a bridge without watch: reads the pod's status until the bridge
/// reports it stopped (then passes that status on) or no longer has it (then reports
/// every container terminated), for at most the grace period and a minute.
async fn follow_deletion(inner: Weak<Inner>, sink: PodStatusSink, pod: Pod) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let grace = pod
        .metadata
        .deletion_grace_period_seconds
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(30);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(grace + 60);
    while tokio::time::Instant::now() < deadline {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let period = strong
            .bridge
            .config
            .status_poll_interval
            .min(Duration::from_secs(1));
        match strong.bridge.get_pod_status(&namespace, &name).await {
            Ok(None) => {
                sink.notify(with_status(&pod, all_terminated(&pod)));
                return;
            }
            Ok(Some(status)) if vk_core::pod::status::reports_terminated(&status) => {
                sink.notify(with_status(&pod, status));
                return;
            }
            Ok(Some(_)) => {}
            Err(e) => tracing::debug!(error = %e, "status of a pod being deleted"),
        }
        drop(strong);
        if !pause(&inner, period).await {
            return;
        }
    }
}

/// The status of a pod the bridge removed: every container terminated.
fn all_terminated(pod: &Pod) -> PodStatus {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let statuses = containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 0,
                    reason: Some("Completed".into()),
                    message: Some("the bridge removed the pod".into()),
                    finished_at: Some(now.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    PodStatus {
        container_statuses: Some(statuses),
        ..pod.status.clone().unwrap_or_default()
    }
}

/// A pod carrying `status` with the identity of `pod`.
fn with_status(pod: &Pod, status: PodStatus) -> Pod {
    let mut out = Pod::default();
    out.metadata.namespace = pod.metadata.namespace.clone();
    out.metadata.name = pod.metadata.name.clone();
    out.metadata.uid = pod.metadata.uid.clone();
    out.status = Some(status);
    out
}

impl PodNotifier for WebProvider {
    fn notify_pods(&self, sink: PodStatusSink) {
        if let Ok(mut slot) = self.inner.sink.lock() {
            *slot = Some(sink.clone());
        }
        tokio::spawn(crate::status::run(Arc::downgrade(&self.inner), sink));
    }
}

#[async_trait]
impl NodeProvider for WebProvider {
    /// v2 bridges with `ping`: `GET /v2/ping`. Others: `GET /nodeConditions`, failing
    /// when the bridge reports its Ready condition False.
    async fn ping(&self) -> Result<()> {
        let endpoint = &self.inner.bridge.config.endpoint;
        let protocol = self
            .inner
            .protocol()
            .await
            .map_err(|e| vk_errdefs::Error::unavailable(format!("bridge {endpoint}: {e}")))?;
        let result = if protocol.has(feature::PING) {
            self.inner.bridge.ping_v2().await
        } else {
            crate::node::ready_from_conditions(&self.inner.bridge).await
        };
        result.map_err(|e| vk_errdefs::Error::unavailable(format!("bridge {endpoint}: {e}")))
    }

    fn notify_node_status(&self, sink: NodeStatusSink) {
        tokio::spawn(crate::node::run(Arc::downgrade(&self.inner), sink));
    }
}

#[async_trait]
impl ContainerLogs for WebProvider {
    async fn container_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        options: &LogOptions,
    ) -> Result<ByteStream> {
        let protocol = self.inner.protocol().await?;
        if protocol.has(feature::LOGS) {
            return Ok(self
                .inner
                .bridge
                .logs_v2(namespace, pod, container, options)
                .await?);
        }
        if options.previous {
            return Err(WebError::Unsupported {
                call: format!("read the previous logs of {namespace}/{pod}/{container}"),
                reason: "the v1 log route has no `previous`".into(),
            }
            .into());
        }
        let text = self
            .inner
            .bridge
            .container_logs(namespace, pod, container, options.tail_lines)
            .await?;
        let lines = vk_core::logs::lines_from_text(&text, None);
        let selected = vk_core::logs::select(lines, options, Timestamp::now());
        let body = Bytes::from(selected);
        Ok(Box::pin(futures::stream::once(async move { Ok(body) })))
    }
}

#[async_trait]
impl ContainerExec for WebProvider {
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: Vec<String>,
        io: ExecIo,
    ) -> Result<i32> {
        let call = || format!("exec in {namespace}/{pod}/{container}");
        self.inner.require(feature::EXEC, call).await?;
        let query = SessionQuery {
            namespace,
            pod,
            container,
            command: &command,
            stdin: io.stdin.is_some(),
            stdout: io.stdout.is_some(),
            stderr: io.stderr.is_some(),
            tty: io.tty,
        };
        let ws = self.inner.bridge.session(v2::EXEC, query).await?;
        match vk_core::bridge::bridge(ws, ChannelFraming, io).await? {
            Some(code) => Ok(code),
            None => Err(WebError::BadMessage {
                call: call(),
                route: v2::EXEC,
                reason: "the bridge closed the session without an exit status".into(),
            }
            .into()),
        }
    }
}

#[async_trait]
impl ContainerAttach for WebProvider {
    async fn attach(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        io: ExecIo,
    ) -> Result<Option<i32>> {
        let call = || format!("attach to {namespace}/{pod}/{container}");
        self.inner.require(feature::ATTACH, call).await?;
        let query = SessionQuery {
            namespace,
            pod,
            container,
            command: &[],
            stdin: io.stdin.is_some(),
            stdout: io.stdout.is_some(),
            stderr: io.stderr.is_some(),
            tty: io.tty,
        };
        let ws = self.inner.bridge.session(v2::ATTACH, query).await?;
        Ok(vk_core::bridge::bridge(ws, ChannelFraming, io).await?)
    }
}

#[async_trait]
impl PortForward for WebProvider {
    async fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        stream: Box<dyn Duplex>,
    ) -> Result<()> {
        let call = || format!("forward port {port} of {namespace}/{pod}");
        self.inner.require(feature::PORT_FORWARD, call).await?;
        let ws = self
            .inner
            .bridge
            .port_forward_socket(namespace, pod, port)
            .await?;
        Ok(v2::pump_port(ws, stream, call()).await?)
    }
}

#[async_trait]
impl StatsProvider for WebProvider {
    async fn stats_summary(&self) -> Result<Summary> {
        self.inner
            .require(feature::STATS, || "read the stats summary".into())
            .await?;
        let mut summary = self.inner.bridge.stats_summary().await?;
        if summary.node.node_name.is_empty() {
            summary.node.node_name = self.inner.node_name.clone();
        }
        Ok(summary)
    }
}

/// Waits `period`, or less once the provider is gone; `false` when it is gone.
pub(crate) async fn pause(inner: &Weak<Inner>, period: Duration) -> bool {
    tokio::time::sleep(period).await;
    inner.strong_count() > 0
}
