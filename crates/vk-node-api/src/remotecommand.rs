//! `exec` and `attach`: the request is checked (capability, options, pod UID), upgraded
//! to SPDY/3.1 or WebSocket, the client's streams are gathered (see [`crate::streams`]),
//! the provider runs the command with them, and the outcome goes back on the error
//! stream — a JSON `Status` (`NonZeroExitCode` with the `ExitCode` cause) from protocol v4
//! on, plain text before. The provider's call runs as a task of its own: if it panics,
//! the session ends with a failure `Status` (`InternalError`), never a success; if the
//! client goes away, the task is aborted (the call is cancelled).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use vk_core::capabilities::{ContainerAttach, ContainerExec, ExecIo};

use crate::error::ApiError;
use crate::node_api::NodeApi;
use crate::options;
use crate::resize::decode_resizes;
use crate::status::Outcome;
use crate::streams::{
    Gone, SessionStreams, SpdyTransport, StreamTransport, Wanted, WebSocketTransport,
};
use crate::upgrade::{self, REMOTE_COMMAND_PROTOCOLS};
use crate::ws;

/// What the session runs, with the capability that runs it (resolved once, before the
/// upgrade).
#[derive(Clone)]
enum Action {
    Exec(Arc<dyn ContainerExec>, Vec<String>),
    Attach(Arc<dyn ContainerAttach>),
}

/// The target container, from the path (`{uid}` only in the `.../{uid}/{container}`
/// form).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Target {
    namespace: String,
    pod: String,
    #[serde(default)]
    uid: Option<String>,
    container: String,
}

/// `/exec/{namespace}/{pod}/{container}` and `/exec/{namespace}/{pod}/{uid}/{container}`.
pub async fn exec(
    State(api): State<Arc<NodeApi>>,
    Path(target): Path<Target>,
    req: Request,
) -> Response {
    respond(api, target, true, req).await
}

/// `/attach/{namespace}/{pod}/{container}` and
/// `/attach/{namespace}/{pod}/{uid}/{container}`.
pub async fn attach(
    State(api): State<Arc<NodeApi>>,
    Path(target): Path<Target>,
    req: Request,
) -> Response {
    respond(api, target, false, req).await
}

async fn respond(api: Arc<NodeApi>, target: Target, is_exec: bool, req: Request) -> Response {
    match start(api, target, is_exec, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn start(
    api: Arc<NodeApi>,
    target: Target,
    is_exec: bool,
    mut req: Request,
) -> Result<Response, ApiError> {
    let query = options::parse_query(req.uri().query());
    let opts = options::stream_options(&query)?;
    let action = if is_exec {
        Action::Exec(api.exec()?, options::command(req.uri().query())?)
    } else {
        Action::Attach(api.attach()?)
    };
    api.check_pod(&target.namespace, &target.pod, target.uid.as_deref())
        .await?;

    let headers = req.headers().clone();
    if ws::is_websocket_upgrade(&headers) {
        let protocol = ws::negotiate(&headers).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unable to upgrade: none of the offered WebSocket protocols {:?} is supported",
                ws::offered_protocols(&headers)
            ))
        })?;
        let response = ws::switching_protocols_response(&headers, protocol.as_str())
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let on = upgrade::on_upgrade(&mut req)?;
        tracing::info!(protocol = protocol.as_str(), transport = "websocket", pod = %target.pod, "streaming session");
        tokio::spawn(async move {
            if let Some(io) = upgrade::upgraded(on).await {
                let idle = api.streaming().idle_timeout;
                let transport = WebSocketTransport::start(io, protocol, idle).await;
                let wanted = Wanted::new(&opts, protocol.supports_resize());
                session(
                    &api,
                    &target,
                    action,
                    opts.tty,
                    protocol.status_is_json(),
                    wanted,
                    transport,
                )
                .await;
            }
        });
        return Ok(upgrade::into_axum(response));
    }
    if !upgrade::is_spdy_upgrade(&headers) {
        return Err(ApiError::BadRequest(
            "unable to upgrade: missing upgrade headers in request".into(),
        ));
    }
    let protocol = upgrade::negotiate(&headers, &REMOTE_COMMAND_PROTOCOLS)?;
    let on = upgrade::on_upgrade(&mut req)?;
    let version = protocol.unwrap_or("channel.k8s.io");
    tracing::info!(protocol = version, transport = "spdy", pod = %target.pod, "streaming session");
    tokio::spawn(async move {
        if let Some(io) = upgrade::upgraded(on).await {
            let transport = SpdyTransport::start(io, api.streaming().idle_timeout);
            let wanted = Wanted::new(&opts, supports_resize(version));
            session(
                &api,
                &target,
                action,
                opts.tty,
                json_status(version),
                wanted,
                transport,
            )
            .await;
        }
    });
    Ok(upgrade::spdy_switching_protocols(protocol))
}

/// Protocol facts by version name.
fn json_status(version: &str) -> bool {
    matches!(version, "v4.channel.k8s.io" | "v5.channel.k8s.io")
}

fn supports_resize(version: &str) -> bool {
    matches!(
        version,
        "v3.channel.k8s.io" | "v4.channel.k8s.io" | "v5.channel.k8s.io"
    )
}

/// One session on `transport`: gathers the streams, runs the action, writes the
/// outcome, closes.
async fn session<T: StreamTransport>(
    api: &NodeApi,
    target: &Target,
    action: Action,
    tty: bool,
    json: bool,
    wanted: Wanted,
    mut transport: T,
) {
    let Some(streams) = transport
        .gather(wanted, api.streaming().stream_creation_timeout)
        .await
    else {
        tracing::info!(pod = %target.pod, "timed out waiting for the client to create streams");
        transport.close().await;
        return;
    };
    run(target, action, tty, json, streams, transport.gone()).await;
    transport.close().await;
}

/// The provider's exec or attach, on owned values (it runs as a task of its own).
async fn call_provider(action: Action, target: Target, io: ExecIo) -> vk_errdefs::Result<Outcome> {
    let Target {
        namespace,
        pod,
        container,
        ..
    } = target;
    match action {
        Action::Exec(exec, command) => exec
            .exec(&namespace, &pod, &container, command, io)
            .await
            .map(Outcome::from_exit),
        Action::Attach(attach) => attach
            .attach(&namespace, &pod, &container, io)
            .await
            .map(|code| code.map(Outcome::from_exit).unwrap_or(Outcome::Success)),
    }
}

/// A spawned task that is aborted when this handle is dropped: the session owns the
/// provider's call, and a session that ends (or is dropped) first cancels it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The outcome of a provider call that panicked (or was aborted by a runtime shutting
/// down): a failure, never a success. The panic's message goes to the log only.
fn did_not_return(target: &Target, e: tokio::task::JoinError) -> Outcome {
    let what = if e.is_panic() {
        let message = panic_message(e.into_panic());
        tracing::error!(pod = %target.pod, container = %target.container, panic = %message, "the provider's streaming call panicked");
        "panicked"
    } else {
        tracing::warn!(pod = %target.pod, container = %target.container, "the provider's streaming call was cancelled");
        "was cancelled"
    };
    Outcome::Failed(format!(
        "the provider's call for container {:?} {what} (the node's log has the details)",
        target.container
    ))
}

/// The message a panic was raised with, when it has one.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload
            .downcast_ref::<&'static str>()
            .map(|m| (*m).to_owned())
            .unwrap_or_default(),
    }
}

/// Runs the action with `streams`, writes the outcome on the error stream. Returns
/// when the command ended or `gone` resolved (the client went away).
async fn run(
    target: &Target,
    action: Action,
    tty: bool,
    json: bool,
    mut streams: SessionStreams,
    gone: Gone,
) {
    let resize = streams.resize.take().map(|input| {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(decode_resizes(input, tx));
        rx
    });
    let io = ExecIo {
        stdin: streams.stdin.take(),
        stdout: streams.stdout.take(),
        stderr: streams.stderr.take(),
        tty,
        resize,
    };
    // The provider's call runs as a task of its own, so that a panic in it ends the
    // session with a failure (not with the streams just closing, which a client takes
    // for success); it is aborted if the client goes away first.
    let mut call = AbortOnDrop(tokio::spawn(call_provider(action, target.clone(), io)));
    let outcome = tokio::select! {
        joined = &mut call.0 => match joined {
            Ok(result) => result.unwrap_or_else(|e| Outcome::Failed(e.to_string())),
            Err(e) => did_not_return(target, e),
        },
        () = gone => {
            tracing::info!(pod = %target.pod, "client went away; the provider's call was cancelled");
            return;
        }
    };
    tracing::debug!(pod = %target.pod, ?outcome, "streaming session ended");
    if let Some(mut error) = streams.error.take() {
        if let Some(bytes) = outcome.error_stream_bytes(json) {
            let _ = error.write_all(&bytes).await;
        }
        let _ = error.shutdown().await;
    }
}
