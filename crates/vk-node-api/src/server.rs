//! Serving the kubelet API over TLS (and the admin listener over plain HTTP): accept,
//! TLS handshake (client certificates handed to the request as [`PeerCertificates`]),
//! HTTP/1.1 with upgrades (SPDY and WebSocket need them).
//!
//! Anyone who can reach the port can open connections, so each one is bounded
//! ([`ServeOptions`]):
//!
//! * a cap on the connections held at once ([`ConnectionLimit`], shared by the
//!   listeners given the same one): over it a new connection is closed at once;
//! * a TLS handshake timeout, a header-read timeout and a keep-alive idle timeout
//!   (see [`crate::head_timer`]), and a size limit on request heads (431 beyond it);
//! * paths whose segments could name a file are refused (400, see
//!   [`crate::path_guard`]);
//! * when `accept` fails (out of file descriptors) the loop pauses instead of spinning
//!   ([`crate::accept`]).
//!
//! Upgraded sessions (exec, attach, port-forward) keep their connection's permit and
//! only their own streaming idle timeout.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse as _;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::accept::AcceptBackoff;
use crate::auth::PeerCertificates;
use crate::connections::{ConnectionLimit, ConnectionPermit};
use crate::head_timer::{HeadTimer, ReadCount};
use crate::path_guard::check_path;

/// The default cap on a listener's connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Limits of a listener's connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Name of the listener in the log.
    pub name: &'static str,
    /// How long a client may take to finish the TLS handshake (kubelet API only).
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request head: the first from the start
    /// of the connection, later ones from their first byte.
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may wait, silent, for its next request.
    pub idle_timeout: Duration,
    /// The largest request head (request line and headers) in bytes; larger is 431.
    pub max_header_bytes: usize,
    /// The connection cap (clones share it).
    pub connections: ConnectionLimit,
}

impl Default for ServeOptions {
    /// Handshake 10 s, header read 30 s, idle 90 s (a kubelet's keep-alive timeout),
    /// heads up to 64 KiB, a cap of [`DEFAULT_MAX_CONNECTIONS`] of its own.
    fn default() -> Self {
        Self {
            name: "kubelet API",
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            max_header_bytes: 64 * 1024,
            connections: ConnectionLimit::new("kubelet API", DEFAULT_MAX_CONNECTIONS),
        }
    }
}

/// Serves `router` on `listener` with `tls` and the default [`ServeOptions`] until
/// `shutdown`. Connections already open (e.g. a running `kubectl exec`) end when their
/// client ends them, a timeout closes them, or the process stops.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: CancellationToken,
) {
    serve_tls_with(listener, tls, router, ServeOptions::default(), shutdown).await;
}

/// [`serve_tls`] with `options`.
///
/// ```no_run
/// # async fn demo(listener: tokio::net::TcpListener, tls: std::sync::Arc<rustls::ServerConfig>, router: axum::Router) {
/// use std::time::Duration;
/// use vk_node_api::connections::ConnectionLimit;
/// use vk_node_api::server::{ServeOptions, serve_tls_with};
///
/// let options = ServeOptions {
///     header_read_timeout: Duration::from_secs(10),
///     connections: ConnectionLimit::new("kubelet API", 256),
///     ..Default::default()
/// };
/// serve_tls_with(listener, tls, router, options, Default::default()).await;
/// # }
/// ```
pub async fn serve_tls_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    options: ServeOptions,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    accept_loop(
        listener,
        options,
        shutdown,
        move |tcp, peer, permit, options| {
            let acceptor = acceptor.clone();
            let router = router.clone();
            async move {
                let handshake =
                    tokio::time::timeout(options.handshake_timeout, acceptor.accept(tcp));
                let stream = match handshake.await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let certs =
                    stream.get_ref().1.peer_certificates().map(|c| {
                        PeerCertificates(c.iter().map(|c| c.clone().into_owned()).collect())
                    });
                serve_connection(stream, peer, permit, certs, router, &options).await;
            }
        },
    )
    .await;
}

/// Serves `router` over plain HTTP on `listener` with `options` (its handshake timeout
/// unused) until `shutdown`: the admin listener.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: CancellationToken,
) {
    accept_loop(
        listener,
        options,
        shutdown,
        move |tcp, peer, permit, options| {
            let router = router.clone();
            async move {
                serve_connection(tcp, peer, permit, None, router, &options).await;
            }
        },
    )
    .await;
}

/// Accepts until `shutdown`, handing each connection within the cap to `serve` on its
/// own task.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    options: ServeOptions,
    shutdown: CancellationToken,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, ConnectionPermit, Arc<ServeOptions>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let options = Arc::new(options);
    let mut backoff = AcceptBackoff::new(options.name);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                let pause = backoff.failed(&e);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
        };
        backoff.accepted();
        let Some(permit) = options.connections.try_acquire() else {
            // Closed at once: the client sees the connection end.
            drop(tcp);
            continue;
        };
        tokio::spawn(serve(tcp, peer, permit, Arc::clone(&options)));
    }
}

/// Serves HTTP/1.1 (with upgrades) on one connection.
async fn serve_connection<T>(
    io: T,
    peer: SocketAddr,
    permit: ConnectionPermit,
    certs: Option<PeerCertificates>,
    router: Router,
    options: &ServeOptions,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let reads = ReadCount::new();
    let io = Served {
        inner: io,
        reads: Arc::clone(&reads),
        _permit: permit,
    };
    let service =
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let router = router.clone();
            let certs = certs.clone();
            async move {
                if let Err(e) = check_path(req.uri().path()) {
                    return Ok(e.into_response());
                }
                if let Some(c) = certs {
                    req.extensions_mut().insert(c);
                }
                router.oneshot(req.map(axum::body::Body::new)).await
            }
        });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(HeadTimer::new(
        reads,
        options.header_read_timeout,
        options.idle_timeout,
    ))
    .header_read_timeout(options.header_read_timeout)
    .max_header_size(options.max_header_bytes)
    .keep_alive(true);
    let result = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
    if let Err(e) = result {
        tracing::debug!(%peer, listener = options.name, error = %e, "connection ended with an error");
    }
}

/// A served connection: counts reads for the [`HeadTimer`] and holds the connection's
/// permit for as long as it lives (an upgraded session included).
struct Served<T> {
    inner: T,
    reads: Arc<ReadCount>,
    _permit: ConnectionPermit,
}

impl<T: AsyncRead + Unpin> AsyncRead for Served<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.reads.touch();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Served<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
