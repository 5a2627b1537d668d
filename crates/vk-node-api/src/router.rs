//! The kubelet API routes and their handlers.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt as _;

use crate::auth::{PeerCertificates, attributes};
use crate::error::ApiError;
use crate::node_api::NodeApi;
use crate::options;

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
        node.name = %api.node(),
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
    let user = match api.auth().authenticate(peer.as_ref(), req.headers()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let attrs = attributes(req.method(), req.uri().path());
    if let Err(e) = api.auth().authorize(&user, &attrs).await {
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
    let logs = api.logs()?;
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

/// `GET /pods`: the pods bound to this node as the API server has them (see
/// [`NodeApi::bound_pods`]), as a kubelet lists its pod manager's pods.
async fn pods(State(api): State<Arc<NodeApi>>) -> Result<Response, ApiError> {
    Ok(pod_list(api.bound_pods().await?))
}

/// `GET /runningpods/`: every pod the provider has, whatever its phase — a kubelet lists
/// its container runtime's pods here.
async fn running_pods(State(api): State<Arc<NodeApi>>) -> Result<Response, ApiError> {
    Ok(pod_list(api.provider().get_pods().await?))
}

/// `GET /stats/summary`: the kubelet's `stats/v1alpha1` Summary.
async fn stats_summary(State(api): State<Arc<NodeApi>>) -> Result<Response, ApiError> {
    let stats = api.stats()?;
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
    let stats = api.stats()?;
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
