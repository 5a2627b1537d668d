//! The kubelet API routes and their handlers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt as _;
use vk_core::SharedPodHandler;

use crate::auth::{Authenticator, PeerCertificates, attributes};
use crate::error::ApiError;
use crate::options;

/// Timeouts of streaming sessions (exec, attach, port-forward).
#[derive(Debug, Clone, Copy)]
pub struct StreamingConfig {
    /// How long the client may take to open the streams it asked for (kubelet: 30 s).
    pub stream_creation_timeout: Duration,
    /// A session with no traffic for this long is closed (kubelet: 4 h).
    pub idle_timeout: Duration,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        Self {
            stream_creation_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(4 * 3600),
        }
    }
}

/// Everything the handlers of one node need.
pub struct NodeApi {
    /// The node's name.
    pub node: String,
    /// The provider.
    pub provider: SharedPodHandler,
    /// Authentication and authorization.
    pub auth: Authenticator,
    /// Streaming timeouts.
    pub streaming: StreamingConfig,
}

impl std::fmt::Debug for NodeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeApi")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The router of the kubelet API for `api`. Unknown routes are 404.
pub fn router(api: Arc<NodeApi>) -> Router {
    Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            get(crate::remotecommand::exec).post(crate::remotecommand::exec),
        )
        .route(
            "/exec/{namespace}/{pod}/{uid}/{container}",
            get(crate::remotecommand::exec).post(crate::remotecommand::exec),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(crate::remotecommand::attach).post(crate::remotecommand::attach),
        )
        .route(
            "/attach/{namespace}/{pod}/{uid}/{container}",
            get(crate::remotecommand::attach).post(crate::remotecommand::attach),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            get(crate::portforward::port_forward).post(crate::portforward::port_forward),
        )
        .route(
            "/portForward/{namespace}/{pod}/{uid}",
            get(crate::portforward::port_forward).post(crate::portforward::port_forward),
        )
        .route("/pods", get(pods))
        .route("/pods/", get(pods))
        .route("/runningpods/", get(running_pods))
        .route("/runningpods", get(running_pods))
        .route("/stats/summary", get(stats_summary))
        .route("/stats/summary/", get(stats_summary))
        .route("/metrics/resource", get(resource_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&api),
            authenticate,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&api),
            trace_request,
        ))
        .with_state(api)
}

/// One `kubelet_api.request` span per request, continuing the caller's trace when the
/// request carries W3C `traceparent`.
async fn trace_request(State(api): State<Arc<NodeApi>>, req: Request, next: Next) -> Response {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        "kubelet_api.request",
        http.method = %req.method(),
        http.path = %req.uri().path(),
        node.name = %api.node,
        http.status_code = tracing::field::Empty,
    );
    vk_trace::propagation::set_parent(&span, req.headers());
    let response = next.run(req).instrument(span.clone()).await;
    span.record("http.status_code", response.status().as_u16());
    response
}

/// Authenticates and authorizes every request before its handler runs.
async fn authenticate(State(api): State<Arc<NodeApi>>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<PeerCertificates>().cloned();
    let user = match api.auth.authenticate(peer.as_ref(), req.headers()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let attrs = attributes(req.method(), req.uri().path());
    if let Err(e) = api.auth.authorize(&user, &attrs).await {
        tracing::debug!(user = %user.name, verb = attrs.verb, subresource = attrs.subresource, "kubelet API request denied");
        return e.into_response();
    }
    next.run(req).await
}

/// `GET /containerLogs/{namespace}/{pod}/{container}`: the log as a chunked stream,
/// flushed as the provider produces it; a client that goes away drops the stream.
async fn container_logs(
    State(api): State<Arc<NodeApi>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let logs = api.provider.container_logs().ok_or_else(|| {
        ApiError::NotImplemented("container logs are not supported by this provider".into())
    })?;
    let options = options::log_options(&options::parse_query(query.as_deref()))?;
    let stream = logs
        .container_logs(&namespace, &pod, &container, &options)
        .await?;
    let body = Body::from_stream(stream.map(|r| r.map_err(axum::Error::new)));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response())
}

fn pod_list(items: Vec<k8s_openapi::api::core::v1::Pod>) -> Response {
    let doc = serde_json::json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": items,
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

/// `GET /pods`: the pods the provider runs for this node.
async fn pods(State(api): State<Arc<NodeApi>>) -> Result<Response, ApiError> {
    Ok(pod_list(api.provider.get_pods().await?))
}

/// `GET /runningpods/`: the provider's pods whose phase is Running.
async fn running_pods(State(api): State<Arc<NodeApi>>) -> Result<Response, ApiError> {
    let pods = api
        .provider
        .get_pods()
        .await?
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect();
    Ok(pod_list(pods))
}

/// `GET /stats/summary`: the kubelet's `stats/v1alpha1` Summary.
async fn stats_summary(State(api): State<Arc<NodeApi>>) -> Result<Response, ApiError> {
    let stats = api.provider.stats().ok_or_else(|| {
        ApiError::NotImplemented("statistics are not supported by this provider".into())
    })?;
    let summary = stats.stats_summary().await?;
    let body = serde_json::to_string(&summary).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// `GET /metrics/resource`: the kubelet's resource metrics in the Prometheus text
/// format (what metrics-server reads).
async fn resource_metrics(State(api): State<Arc<NodeApi>>) -> Result<Response, ApiError> {
    let stats = api.provider.stats().ok_or_else(|| {
        ApiError::NotImplemented("statistics are not supported by this provider".into())
    })?;
    let summary = stats.stats_summary().await?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        vk_core::stats::resource_metrics(&summary),
    )
        .into_response())
}
