//! Optional provider capabilities behind the kubelet API: container logs, exec, attach,
//! port-forward and statistics.
//!
//! A provider offers a capability by implementing its trait and returning itself from
//! the matching accessor of [`PodLifecycleHandler`](crate::PodLifecycleHandler)
//! (`container_logs()`, `exec()`, ...). The kubelet API answers `501 Not Implemented`
//! for capabilities a provider does not offer.
//!
//! Streams are plain Tokio byte streams; the kubelet API does the protocol work (SPDY,
//! WebSocket channels, exit-code statuses), so a provider only moves bytes.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use vk_errdefs::Result;

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
