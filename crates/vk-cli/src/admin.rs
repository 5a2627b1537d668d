//! The plain-HTTP admin listener (`--metrics-addr`, default 127.0.0.1:10255): Prometheus
//! `/metrics`, `/healthz` (the process serves) and `/readyz` (every node registered and
//! its pods synced), and `/debug/log-filter` (`GET` the active log filter, `PUT` a new
//! one in `RUST_LOG` syntax as the request body; it applies at once). The kubelet API
//! itself stays on its TLS port.
//!
//! ```text
//! curl -X PUT --data 'info,vk_core=debug' http://127.0.0.1:10255/debug/log-filter
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// What the handlers read.
pub struct AdminState {
    /// Every collector of the process.
    pub registry: Registry,
    /// Whether the process is ready.
    pub ready: Box<dyn Fn() -> bool + Send + Sync>,
    /// The log filter to show and change (`None`: logging was set up elsewhere).
    pub log_filter: Option<vk_trace::FilterHandle>,
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/debug/log-filter", get(get_filter).put(put_filter))
        .with_state(state)
}

/// The standard `process_*` metrics of this process
/// ([`vk_core::metrics::ProcessCollector`]): `/metrics` serves them after
/// [`AdminState::registry`], so that registry must not hold the collector too.
static PROCESS: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(|| {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(vk_core::metrics::ProcessCollector));
    registry
});

/// The exposition text of `registry` followed by the process metrics.
fn exposition(registry: &Registry) -> Result<String, std::fmt::Error> {
    use prometheus_client::encoding::text::{encode_eof, encode_registry};
    let mut text = String::new();
    encode_registry(&mut text, registry)?;
    encode_registry(&mut text, &PROCESS)?;
    encode_eof(&mut text)?;
    Ok(text)
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    match exposition(&state.registry) {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("encoding metrics failed: {e}"),
        ),
    }
}

async fn get_filter(State(state): State<Arc<AdminState>>) -> (StatusCode, String) {
    match &state.log_filter {
        Some(f) => (StatusCode::OK, format!("{}\n", f.current())),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the log filter is not managed by this process\n".into(),
        ),
    }
}

async fn put_filter(State(state): State<Arc<AdminState>>, body: String) -> (StatusCode, String) {
    let Some(f) = &state.log_filter else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the log filter is not managed by this process\n".into(),
        );
    };
    if body.trim().is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "send the new filter as the request body, e.g. info,vk_core=debug\n".into(),
        );
    }
    match f.set(&body) {
        Ok(()) => (StatusCode::OK, format!("{}\n", f.current())),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

async fn readyz(State(state): State<Arc<AdminState>>) -> (StatusCode, &'static str) {
    if (state.ready)() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: node registration or pod sync pending",
        )
    }
}

/// The share of the open-file limit the admin listener may hold as connections (at
/// most [`MAX_ADMIN_CONNECTIONS`]).
const ADMIN_FD_SHARE: f64 = 0.125;
/// The most connections the admin listener holds at once.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;

/// The admin listener's connection limits: the kubelet API's header-read and
/// keep-alive idle timeouts, and a cap of its own (so a flood on the kubelet port
/// cannot take `/healthz` down with it) sized from the open-file limit.
pub fn serve_options() -> vk_node_api::server::ServeOptions {
    let max = vk_node_api::fd_limit::connection_budget(
        crate::kubelet_api::open_file_limit(),
        ADMIN_FD_SHARE,
        MAX_ADMIN_CONNECTIONS,
    );
    vk_node_api::server::ServeOptions {
        name: "admin",
        connections: vk_node_api::connections::ConnectionLimit::new("admin", max),
        ..Default::default()
    }
}

/// Binds `addr` (failing at once if it is taken) and serves with [`serve_options`]
/// until `shutdown` (connections still open then are not waited for).
pub async fn bind(
    addr: SocketAddr,
    state: Arc<AdminState>,
    shutdown: CancellationToken,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(serve(listener, state, serve_options(), shutdown))
}

/// Serves the admin router on `listener` with `options` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    options: vk_node_api::server::ServeOptions,
    shutdown: CancellationToken,
) {
    vk_node_api::server::serve_plain(listener, router(state), options, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn state() -> Arc<AdminState> {
        Arc::new(AdminState {
            registry: Registry::default(),
            ready: Box::new(|| true),
            log_filter: None,
        })
    }

    /// Reads until the server closes the connection; what it sent.
    async fn read_to_close(conn: &mut tokio::net::TcpStream) -> String {
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), conn.read_to_end(&mut got))
            .await
            .expect("the server closes the connection")
            .expect("read");
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test]
    async fn silent_and_idle_connections_are_closed_and_healthz_still_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let options = vk_node_api::server::ServeOptions {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            ..serve_options()
        };
        let server = tokio::spawn(serve(listener, state(), options, shutdown.clone()));

        // Connected, never a byte: closed without an answer.
        let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // One request, then silence: answered, then closed.
        let mut kept = tokio::net::TcpStream::connect(addr).await.expect("connect");
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        assert_eq!(read_to_close(&mut silent).await, "");
        let answer = read_to_close(&mut kept).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");

        shutdown.cancel();
        server.await.expect("server");
    }

    #[test]
    fn the_admin_cap_is_its_own_and_small() {
        let options = serve_options();
        assert_eq!(options.name, "admin");
        assert!(options.connections.max() <= MAX_ADMIN_CONNECTIONS);
        assert!(options.connections.max() >= 4);
        assert_eq!(options.header_read_timeout, Duration::from_secs(30));
        assert_eq!(options.idle_timeout, Duration::from_secs(90));
    }
}
