//! `portForward`: SPDY/3.1 (`portforward.k8s.io`), directly or tunnelled in a WebSocket
//! (`SPDY/3.1+portforward.k8s.io`, kubectl ≥ 1.31). The client opens a pair of streams
//! per connection — an error stream and a data stream with the same `requestID` and
//! `port` headers; the data stream is handed to the provider, and a failure is written
//! as text on the error stream.
//!
//! A WebSocket offering a *channel* protocol instead (`v4.channel.k8s.io`, ... as
//! client-go's and kube-rs's WebSocket port-forward do) gets the kubelet's channel
//! port-forward ([`channels`]): the ports come from the `ports` query parameter.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use vk_core::capabilities::PortForward;

use crate::error::ApiError;
use crate::node_api::NodeApi;
use crate::upgrade::{self, PORT_FORWARD_PROTOCOL};
use crate::{spdy, ws};

pub mod channels;

/// The target pod, from the path.
#[derive(Debug, serde::Deserialize)]
pub struct Target {
    namespace: String,
    pod: String,
    #[serde(default)]
    uid: Option<String>,
}

/// `/portForward/{namespace}/{pod}` and `/portForward/{namespace}/{pod}/{uid}`.
pub async fn port_forward(
    State(api): State<Arc<NodeApi>>,
    Path(Target {
        namespace,
        pod,
        uid,
    }): Path<Target>,
    req: Request,
) -> Response {
    respond(api, namespace, pod, uid, req).await
}

async fn respond(
    api: Arc<NodeApi>,
    namespace: String,
    pod: String,
    uid: Option<String>,
    req: Request,
) -> Response {
    match start(api, namespace, pod, uid, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn start(
    api: Arc<NodeApi>,
    namespace: String,
    pod: String,
    uid: Option<String>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let forwarder = api.port_forward()?;
    api.check_pod(&namespace, &pod, uid.as_deref()).await?;
    let headers = req.headers().clone();
    if ws::is_websocket_upgrade(&headers) {
        if ws::negotiate_port_forward_tunnel(&headers).is_none()
            && !ws::offered_protocols(&headers).is_empty()
            && let Some(protocol) = ws::negotiate(&headers)
        {
            let ports = channels::ports(req.uri().query().unwrap_or_default())
                .map_err(ApiError::BadRequest)?;
            let response = ws::switching_protocols_response(&headers, protocol.as_str())
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let on = upgrade::on_upgrade(&mut req)?;
            tracing::info!(transport = "websocket", %pod, ?ports, "port-forward session");
            tokio::spawn(async move {
                if let Some(io) = upgrade::upgraded(on).await {
                    let conn = ws::ChannelConn::server(io, protocol).await;
                    channels::session(forwarder, namespace, pod, ports, conn).await;
                }
            });
            return Ok(upgrade::into_axum(response));
        }
        let Some(protocol) = ws::negotiate_port_forward_tunnel(&headers) else {
            return Err(ApiError::BadRequest(format!(
                "unable to upgrade: port-forward over WebSocket needs the {} sub-protocol (offered {:?})",
                ws::PORT_FORWARD_TUNNEL_PROTOCOL,
                ws::offered_protocols(&headers)
            )));
        };
        let response = ws::switching_protocols_response(&headers, protocol)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let on = upgrade::on_upgrade(&mut req)?;
        tracing::info!(transport = "websocket+spdy", %pod, "port-forward session");
        tokio::spawn(async move {
            if let Some(io) = upgrade::upgraded(on).await {
                let tunnel = ws::ByteTunnel::server(io).await;
                session(api, forwarder, namespace, pod, tunnel).await;
            }
        });
        return Ok(upgrade::into_axum(response));
    }
    if !upgrade::is_spdy_upgrade(&headers) {
        return Err(ApiError::BadRequest(
            "unable to upgrade: missing upgrade headers in request".into(),
        ));
    }
    let protocol = upgrade::negotiate(&headers, &[PORT_FORWARD_PROTOCOL])?;
    let on = upgrade::on_upgrade(&mut req)?;
    tracing::info!(transport = "spdy", %pod, "port-forward session");
    tokio::spawn(async move {
        if let Some(io) = upgrade::upgraded(on).await {
            session(api, forwarder, namespace, pod, io).await;
        }
    });
    Ok(upgrade::spdy_switching_protocols(
        protocol.or(Some(PORT_FORWARD_PROTOCOL)),
    ))
}

/// One half of a request's stream pair, waiting for the other.
#[derive(Default)]
struct Pair {
    error: Option<spdy::StreamWriter>,
    data: Option<(spdy::StreamReader, spdy::StreamWriter)>,
    port: Option<String>,
}

/// Serves stream pairs on one SPDY session until the client closes it.
async fn session<T>(
    api: Arc<NodeApi>,
    forwarder: Arc<dyn PortForward>,
    namespace: String,
    pod: String,
    io: T,
) where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let config = spdy::SessionConfig {
        idle_timeout: Some(api.streaming().idle_timeout),
        ..Default::default()
    };
    let (session, mut incoming) = spdy::serve(io, config);
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    while let Some(stream) = incoming.accept().await {
        let headers = stream.headers();
        let kind = headers.get("streamtype").unwrap_or_default().to_owned();
        let port = headers.get("port").map(str::to_owned);
        // Clients older than requestID pair streams by id: error = n, data = n + 2.
        let request = headers
            .get("requestid")
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let id = stream.id();
                if kind == "data" {
                    id.saturating_sub(2)
                } else {
                    id
                }
                .to_string()
            });
        if stream.reply().await.is_err() {
            break;
        }
        let (reader, writer) = stream.split();
        let pair = pairs.entry(request.clone()).or_default();
        if pair.port.is_none() {
            pair.port = port;
        }
        match kind.as_str() {
            "error" => pair.error = Some(writer),
            "data" => pair.data = Some((reader, writer)),
            other => {
                tracing::debug!(stream_type = other, "unexpected port-forward stream type");
                continue;
            }
        }
        if pair.error.is_some()
            && pair.data.is_some()
            && let Some(Pair {
                error: Some(error),
                data: Some(data),
                port,
            }) = pairs.remove(&request)
        {
            let forwarder = Arc::clone(&forwarder);
            let (namespace, pod) = (namespace.clone(), pod.clone());
            tokio::spawn(
                async move { forward(forwarder, namespace, pod, port, data, error).await },
            );
        }
    }
    session.close().await;
}

async fn forward(
    forwarder: Arc<dyn PortForward>,
    namespace: String,
    pod: String,
    port: Option<String>,
    (reader, writer): (spdy::StreamReader, spdy::StreamWriter),
    mut error: spdy::StreamWriter,
) {
    let result = match port.as_deref().map(str::parse::<u16>) {
        Some(Ok(p)) if p > 0 => forwarder
            .port_forward(
                &namespace,
                &pod,
                p,
                Box::new(tokio::io::join(reader, writer)),
            )
            .await
            .map_err(|e| e.to_string()),
        _ => Err(format!(
            "invalid port {:?}: a port number between 1 and 65535 is required",
            port_text(&port)
        )),
    };
    if let Err(message) = result {
        tracing::debug!(%pod, %message, "port-forward failed");
        let _ = error
            .write_all(
                format!(
                    "error forwarding port {:?} to pod {namespace}/{pod}: {message}",
                    port_text(&port)
                )
                .as_bytes(),
            )
            .await;
    }
    let _ = error.shutdown().await;
}

fn port_text(port: &Option<String>) -> String {
    port.clone().unwrap_or_default()
}
