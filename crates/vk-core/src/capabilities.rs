//! Optional provider capabilities behind the kubelet API: container logs, exec, attach,
//! port-forward and statistics.
//!
//! A provider offers a capability by implementing its trait and declaring it in
//! [`PodLifecycleHandler::capabilities`](crate::PodLifecycleHandler::capabilities), once:
//! [`Capabilities::all`] for a provider that implements every one, or the builder
//! methods ([`Capabilities::with_logs`], ...) for a subset. The kubelet API resolves them
//! when the node starts and answers `501 Not Implemented` for the ones missing.
//!
//! Streams are plain Tokio byte streams; the kubelet API does the protocol work (SPDY,
//! WebSocket channels, exit-code statuses), so a provider only moves bytes.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use vk_errdefs::Result;

use crate::stats::StatsProvider;

/// The options of a log request, already validated (as the kubelet validates them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming new output (`kubectl logs -f`).
    pub follow: bool,
    /// Only the last N lines (`--tail`).
    pub tail_lines: Option<u64>,
    /// Stop after this many bytes (`--limit-bytes`).
    pub limit_bytes: Option<u64>,
    /// The previous (terminated) instance of the container (`--previous`).
    pub previous: bool,
    /// Only output newer than this many seconds (`--since`); never together with
    /// `since_time`.
    pub since_seconds: Option<u64>,
    /// Only output after this time (`--since-time`).
    pub since_time: Option<Timestamp>,
    /// Prefix each line with its RFC 3339 timestamp (`--timestamps`).
    pub timestamps: bool,
}

impl LogOptions {
    /// The earliest time of output to include, from `since_seconds` or `since_time`.
    pub fn since(&self, now: Timestamp) -> Option<Timestamp> {
        if let Some(t) = self.since_time {
            return Some(t);
        }
        let secs = i64::try_from(self.since_seconds?).ok()?;
        now.checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(secs))
            .ok()
    }
}

/// A stream of log bytes; it ends when the log ends (or, when following, when the
/// client goes away and the stream is dropped).
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Container logs.
#[async_trait]
pub trait ContainerLogs: Send + Sync {
    /// The logs of `container` in pod `namespace/pod`, honouring `options`. The kubelet
    /// API applies nothing itself: `tail_lines`, `limit_bytes`, `since_*` and
    /// `timestamps` are the provider's to honour (only it knows line times).
    async fn container_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        options: &LogOptions,
    ) -> Result<ByteStream>;
}

/// A terminal size (`kubectl exec -t` resize events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct TermSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Readable side of a session.
pub type Input = Box<dyn AsyncRead + Send + Unpin>;
/// Writable side of a session.
pub type Output = Box<dyn AsyncWrite + Send + Unpin>;

/// The I/O of an exec or attach session. Absent streams were not requested by the
/// client. With `tty`, stdout carries the terminal and there is no stderr.
pub struct ExecIo {
    /// Input from the client (EOF when the client closes stdin).
    pub stdin: Option<Input>,
    /// Output to the client.
    pub stdout: Option<Output>,
    /// Error output to the client.
    pub stderr: Option<Output>,
    /// Whether a terminal was requested.
    pub tty: bool,
    /// Terminal size changes, when `tty`.
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

impl std::fmt::Debug for ExecIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecIo")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("tty", &self.tty)
            .field("resize", &self.resize.is_some())
            .finish()
    }
}

/// Running a command in a container (`kubectl exec`).
#[async_trait]
pub trait ContainerExec: Send + Sync {
    /// Runs `command` in `container` with `io`; returns its exit code. Dropping the
    /// future (the client went away) must stop the command.
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: Vec<String>,
        io: ExecIo,
    ) -> Result<i32>;
}

/// Attaching to a container's main process (`kubectl attach`).
#[async_trait]
pub trait ContainerAttach: Send + Sync {
    /// Connects `io` to the container's process until the client detaches (stdin EOF
    /// or dropped future) or the process exits; returns its exit code when it exited.
    async fn attach(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        io: ExecIo,
    ) -> Result<Option<i32>>;
}

/// A bidirectional byte stream.
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// Forwarding a connection to a port of a pod (`kubectl port-forward`).
#[async_trait]
pub trait PortForward: Send + Sync {
    /// Connects `stream` to `port` of pod `namespace/pod` and copies bytes both ways
    /// until either side closes.
    async fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        stream: Box<dyn Duplex>,
    ) -> Result<()>;
}

/// The kubelet-API capabilities a provider offers, declared in one place.
///
/// Returned by [`PodLifecycleHandler::capabilities`](crate::PodLifecycleHandler::capabilities);
/// each field is `None` for a capability the provider lacks (the kubelet API then answers
/// `501 Not Implemented`).
///
/// ```
/// # use std::sync::Arc;
/// # use async_trait::async_trait;
/// # use vk_core::capabilities::{ByteStream, Capabilities, ContainerLogs, LogOptions};
/// struct LogsOnly;
///
/// #[async_trait]
/// impl ContainerLogs for LogsOnly {
///     async fn container_logs(&self, _ns: &str, _pod: &str, _c: &str, _o: &LogOptions)
///         -> vk_errdefs::Result<ByteStream> {
///         Ok(Box::pin(futures::stream::empty()))
///     }
/// }
///
/// let caps = Capabilities::none().with_logs(Arc::new(LogsOnly));
/// assert!(caps.logs.is_some() && caps.exec.is_none());
/// assert_eq!(caps.names(), ["logs"]);
/// ```
#[derive(Clone, Default)]
pub struct Capabilities {
    /// `kubectl logs`.
    pub logs: Option<Arc<dyn ContainerLogs>>,
    /// `kubectl exec`.
    pub exec: Option<Arc<dyn ContainerExec>>,
    /// `kubectl attach`.
    pub attach: Option<Arc<dyn ContainerAttach>>,
    /// `kubectl port-forward`.
    pub port_forward: Option<Arc<dyn PortForward>>,
    /// `/stats/summary` and `/metrics/resource` (`kubectl top`, metrics-server).
    pub stats: Option<Arc<dyn StatsProvider>>,
}

impl Capabilities {
    /// No capability: every streaming and stats route answers 501.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every capability, served by `provider`.
    pub fn all<P>(provider: Arc<P>) -> Self
    where
        P: ContainerLogs + ContainerExec + ContainerAttach + PortForward + StatsProvider + 'static,
    {
        Self {
            logs: Some(provider.clone()),
            exec: Some(provider.clone()),
            attach: Some(provider.clone()),
            port_forward: Some(provider.clone()),
            stats: Some(provider),
        }
    }

    /// Adds container logs.
    pub fn with_logs(mut self, logs: Arc<dyn ContainerLogs>) -> Self {
        self.logs = Some(logs);
        self
    }

    /// Adds exec.
    pub fn with_exec(mut self, exec: Arc<dyn ContainerExec>) -> Self {
        self.exec = Some(exec);
        self
    }

    /// Adds attach.
    pub fn with_attach(mut self, attach: Arc<dyn ContainerAttach>) -> Self {
        self.attach = Some(attach);
        self
    }

    /// Adds port-forward.
    pub fn with_port_forward(mut self, port_forward: Arc<dyn PortForward>) -> Self {
        self.port_forward = Some(port_forward);
        self
    }

    /// Adds statistics.
    pub fn with_stats(mut self, stats: Arc<dyn StatsProvider>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The names of the capabilities present (`logs`, `exec`, `attach`, `port-forward`,
    /// `stats`), for start-up logs.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("logs", self.logs.is_some()),
            ("exec", self.exec.is_some()),
            ("attach", self.attach.is_some()),
            ("port-forward", self.port_forward.is_some()),
            ("stats", self.stats.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect()
    }
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}
