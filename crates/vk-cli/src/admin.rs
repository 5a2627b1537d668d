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

/// Binds `addr` (failing at once if it is taken) and serves until `shutdown`.
pub async fn bind(
    addr: SocketAddr,
    state: Arc<AdminState>,
    shutdown: CancellationToken,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(async move {
        let _ = axum::serve(listener, router(state))
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    })
}
