//! The streams of an exec or attach session, gathered the same way from either transport.
//!
//! A client opens stdin/stdout/stderr/error/resize streams on one of two transports:
//! WebSocket channels ([`crate::ws`]: every channel exists at once, numbered) or SPDY/3.1
//! ([`crate::spdy`]: the client creates one stream per kind, named by its `streamType`
//! header, and may take its time). [`StreamTransport`] hides the difference:
//! [`StreamTransport::gather`] returns the [`SessionStreams`] the request asked for,
//! [`StreamTransport::gone`] resolves when the client goes away, and
//! [`StreamTransport::close`] ends the session once the outcome is written.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use vk_core::capabilities::{Input, Output};

use crate::idle::{Activity, IdleIo};
use crate::options::StreamOptions;
use crate::{spdy, upgrade, ws};

/// The streams of one session; absent ones were not requested (or, for `resize`, are not
/// supported by the negotiated protocol version).
#[derive(Default)]
pub struct SessionStreams {
    /// Client → command.
    pub stdin: Option<Input>,
    /// Command → client.
    pub stdout: Option<Output>,
    /// Command errors → client (never with a TTY).
    pub stderr: Option<Output>,
    /// The outcome (exit status) → client. Always requested by kubectl.
    pub error: Option<Output>,
    /// Terminal size changes, JSON `{"Width":..,"Height":..}` per message.
    pub resize: Option<Input>,
}

/// Which streams a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// `stdin=1`.
    pub stdin: bool,
    /// `stdout=1`.
    pub stdout: bool,
    /// `stderr=1`.
    pub stderr: bool,
    /// `tty=1` on a protocol version that carries resize events.
    pub resize: bool,
}

impl Wanted {
    /// The streams `opts` asks for; `resize_supported` tells whether the negotiated
    /// protocol version has a resize stream.
    pub fn new(opts: &StreamOptions, resize_supported: bool) -> Self {
        Self {
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
            resize: opts.tty && resize_supported,
        }
    }

    /// How many streams the client opens, counting the error stream.
    pub fn count(&self) -> usize {
        1 + usize::from(self.stdin)
            + usize::from(self.stdout)
            + usize::from(self.stderr)
            + usize::from(self.resize)
    }
}

/// A future that resolves when the client went away.
pub type Gone = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A transport that carries the streams of an exec/attach session.
pub trait StreamTransport: Send + Sized {
    /// Collects the streams in `wanted`, waiting at most `timeout` for the client to
    /// open them; `None` when it did not (the session is then closed).
    fn gather(
        &mut self,
        wanted: Wanted,
        timeout: Duration,
    ) -> impl Future<Output = Option<SessionStreams>> + Send;

    /// Resolves when the client went away (or the session idled out).
    fn gone(&self) -> Gone;

    /// Ends the session after everything written so far has been sent.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// WebSocket channels (`v5.channel.k8s.io` and older).
pub struct WebSocketTransport {
    conn: ws::ChannelConn,
    activity: Arc<Activity>,
    idle_timeout: Duration,
}

impl WebSocketTransport {
    /// Starts the channel protocol `protocol` on the upgraded connection `io`; a session
    /// without traffic for `idle_timeout` counts as gone.
    pub async fn start(
        io: upgrade::Upgraded,
        protocol: ws::ChannelProtocol,
        idle_timeout: Duration,
    ) -> Self {
        let activity = Activity::new();
        let conn = ws::ChannelConn::server(IdleIo::new(io, Arc::clone(&activity)), protocol).await;
        Self {
            conn,
            activity,
            idle_timeout,
        }
    }
}

impl StreamTransport for WebSocketTransport {
    async fn gather(&mut self, wanted: Wanted, _timeout: Duration) -> Option<SessionStreams> {
        // Every channel exists as soon as the connection does.
        let conn = &mut self.conn;
        let streams = SessionStreams {
            stdin: if wanted.stdin {
                conn.reader(ws::STDIN).map(|r| Box::new(r) as Input)
            } else {
                None
            },
            stdout: wanted
                .stdout
                .then(|| Box::new(conn.writer(ws::STDOUT)) as Output),
            stderr: wanted
                .stderr
                .then(|| Box::new(conn.writer(ws::STDERR)) as Output),
            error: Some(Box::new(conn.writer(ws::ERROR))),
            resize: if wanted.resize {
                conn.reader(ws::RESIZE).map(|r| Box::new(r) as Input)
            } else {
                None
            },
        };
        // The kubelet's "ready" signal; a client that already left is noticed by `gone`.
        let _ = conn.send_ready(wanted.stdout, wanted.stderr).await;
        Some(streams)
    }

    fn gone(&self) -> Gone {
        let closed = self.conn.closed();
        let activity = Arc::clone(&self.activity);
        let idle_timeout = self.idle_timeout;
        Box::pin(async move {
            tokio::select! {
                () = closed => {}
                () = activity.expired(idle_timeout) => {
                    tracing::info!(?idle_timeout, "closing an idle streaming session");
                }
            }
        })
    }

    async fn close(self) {
        self.conn.close().await;
    }
}

/// SPDY/3.1 streams named by their `streamType` header.
pub struct SpdyTransport {
    session: Arc<spdy::Session>,
    incoming: spdy::Incoming,
}

impl SpdyTransport {
    /// Starts a SPDY/3.1 server session on the upgraded connection `io`.
    pub fn start(io: upgrade::Upgraded, idle_timeout: Duration) -> Self {
        let config = spdy::SessionConfig {
            idle_timeout: Some(idle_timeout),
            ..Default::default()
        };
        let (session, incoming) = spdy::serve(io, config);
        Self {
            session: Arc::new(session),
            incoming,
        }
    }

    /// Accepts streams until every wanted one is open; `false` if the session ended.
    async fn accept_all(&mut self, wanted: Wanted, streams: &mut SessionStreams) -> bool {
        let mut received = 0;
        while received < wanted.count() {
            let Some(stream) = self.incoming.accept().await else {
                return false;
            };
            let kind = stream
                .headers()
                .get("streamtype")
                .unwrap_or_default()
                .to_owned();
            if stream.reply().await.is_err() {
                return false;
            }
            let (reader, writer) = stream.split();
            match kind.as_str() {
                "error" => streams.error = Some(Box::new(writer)),
                "stdin" => streams.stdin = Some(Box::new(reader)),
                "stdout" => streams.stdout = Some(Box::new(writer)),
                "stderr" => streams.stderr = Some(Box::new(writer)),
                "resize" => streams.resize = Some(Box::new(reader)),
                other => {
                    tracing::debug!(stream_type = other, "unexpected stream type; ignoring it");
                    continue;
                }
            }
            received += 1;
        }
        true
    }
}

impl StreamTransport for SpdyTransport {
    async fn gather(&mut self, wanted: Wanted, timeout: Duration) -> Option<SessionStreams> {
        let mut streams = SessionStreams::default();
        match tokio::time::timeout(timeout, self.accept_all(wanted, &mut streams)).await {
            Ok(true) => Some(streams),
            Ok(false) | Err(_) => None,
        }
    }

    fn gone(&self) -> Gone {
        let session = Arc::clone(&self.session);
        Box::pin(async move { session.closed().await })
    }

    async fn close(self) {
        // GOAWAY goes out after every frame already queued (the error stream's last
        // data and FIN included), so nothing written is lost.
        self.session.close().await;
    }
}
