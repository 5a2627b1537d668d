//! The plain-HTTP admin listener (`--metrics-addr`, default 127.0.0.1:10255): Prometheus
//! `/metrics`, `/healthz` (the process serves) and `/readyz` (every node registered and
//! its pods synced). The kubelet API itself stays on its TLS port.

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
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
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
