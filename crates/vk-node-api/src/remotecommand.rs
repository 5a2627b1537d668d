//! `exec` and `attach`: the request is checked (capability, options, pod UID), upgraded
//! to SPDY/3.1 or WebSocket, the client's streams are gathered, the provider runs the
//! command with them, and the outcome goes back on the error stream — a JSON `Status`
//! (`NonZeroExitCode` with the `ExitCode` cause) from protocol v4 on, plain text before.
//! If the client goes away the provider's call is dropped (cancelled).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use vk_core::capabilities::{ExecIo, Input, Output};

use crate::error::ApiError;
use crate::idle::{Activity, IdleIo};
use crate::options::{self, StreamOptions};
use crate::resize::decode_resizes;
use crate::router::NodeApi;
use crate::status::Outcome;
use crate::upgrade::{self, REMOTE_COMMAND_PROTOCOLS};
use crate::{spdy, ws};

/// What the session runs.
#[derive(Debug, Clone)]
enum Action {
    Exec(Vec<String>),
    Attach,
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

/// Checks, before upgrading, that the provider runs the pod — and with a UID in the
/// path, that it is the pod with that UID — so the client gets a plain 404 as from a
/// kubelet rather than an error after the upgrade.
pub(crate) async fn check_pod(
    api: &NodeApi,
    namespace: &str,
    pod: &str,
    uid: Option<&str>,
) -> Result<(), ApiError> {
    let found = api.provider.get_pod(namespace, pod).await?;
    match (found, uid) {
        (None, _) => Err(ApiError::NotFound(format!(
            "pod {namespace}/{pod} does not exist on node {}",
            api.node
        ))),
        (Some(p), Some(uid)) if p.metadata.uid.as_deref() != Some(uid) => Err(ApiError::NotFound(
            format!("pod {namespace}/{pod} with UID {uid} not found"),
        )),
        (Some(_), _) => Ok(()),
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
        if api.provider.exec().is_none() {
            return Err(ApiError::NotImplemented(
                "exec is not supported by this provider".into(),
            ));
        }
        Action::Exec(options::command(req.uri().query())?)
    } else {
        if api.provider.attach().is_none() {
            return Err(ApiError::NotImplemented(
                "attach is not supported by this provider".into(),
            ));
        }
        Action::Attach
    };
    check_pod(&api, &target.namespace, &target.pod, target.uid.as_deref()).await?;

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
                websocket_session(api, target, action, opts, protocol, io).await;
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
            spdy_session(api, target, action, opts, version, io).await;
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

/// The streams of a session, gathered from whichever transport.
struct Streams {
    stdin: Option<Input>,
    stdout: Option<Output>,
    stderr: Option<Output>,
    error: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    resize: Option<Input>,
}

/// Runs the provider with `streams`, writes the outcome on the error stream. Returns
/// when the command ended or `gone` resolved (the client went away).
async fn run(
    api: &NodeApi,
    target: &Target,
    action: Action,
    tty: bool,
    json: bool,
    mut streams: Streams,
    gone: impl std::future::Future<Output = ()>,
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
    let call = async {
        match &action {
            Action::Exec(command) => match api.provider.exec() {
                Some(e) => e
                    .exec(
                        &target.namespace,
                        &target.pod,
                        &target.container,
                        command.clone(),
                        io,
                    )
                    .await
                    .map(Outcome::from_exit),
                None => Err(vk_errdefs::Error::not_implemented("exec")),
            },
            Action::Attach => match api.provider.attach() {
                Some(a) => a
                    .attach(&target.namespace, &target.pod, &target.container, io)
                    .await
                    .map(|code| code.map(Outcome::from_exit).unwrap_or(Outcome::Success)),
                None => Err(vk_errdefs::Error::not_implemented("attach")),
            },
        }
    };
    let outcome = tokio::select! {
        r = call => r.unwrap_or_else(|e| Outcome::Failed(e.to_string())),
        () = gone => {
            tracing::info!(pod = %target.pod, "client went away; the provider's call was cancelled");
            return;
        }
    };
    tracing::debug!(pod = %target.pod, ?outcome, "streaming session ended");
    if let (Some(mut error), Some(bytes)) = (streams.error.take(), outcome.error_stream_bytes(json))
    {
        let _ = error.write_all(&bytes).await;
        let _ = error.shutdown().await;
    } else if let Some(mut error) = streams.error.take() {
        let _ = error.shutdown().await;
    }
}

async fn websocket_session(
    api: Arc<NodeApi>,
    target: Target,
    action: Action,
    opts: StreamOptions,
    protocol: ws::ChannelProtocol,
    io: upgrade::Upgraded,
) {
    let activity = Activity::new();
    let mut conn = ws::ChannelConn::server(IdleIo::new(io, Arc::clone(&activity)), protocol).await;
    let streams = Streams {
        stdin: opts
            .stdin
            .then(|| conn.reader(ws::STDIN))
            .flatten()
            .map(|r| Box::new(r) as Input),
        stdout: opts
            .stdout
            .then(|| Box::new(conn.writer(ws::STDOUT)) as Output),
        stderr: opts
            .stderr
            .then(|| Box::new(conn.writer(ws::STDERR)) as Output),
        error: Some(Box::new(conn.writer(ws::ERROR))),
        resize: (opts.tty && protocol.supports_resize())
            .then(|| conn.reader(ws::RESIZE))
            .flatten()
            .map(|r| Box::new(r) as Input),
    };
    let _ = conn.send_ready(opts.stdout, opts.stderr).await;
    let closed = conn.closed();
    let idle_timeout = api.streaming.idle_timeout;
    let gone = async move {
        tokio::select! {
            () = closed => {}
            () = activity.expired(idle_timeout) => {
                tracing::info!(?idle_timeout, "closing an idle streaming session");
            }
        }
    };
    run(
        &api,
        &target,
        action,
        opts.tty,
        protocol.status_is_json(),
        streams,
        gone,
    )
    .await;
    conn.close().await;
}

async fn spdy_session(
    api: Arc<NodeApi>,
    target: Target,
    action: Action,
    opts: StreamOptions,
    version: &'static str,
    io: upgrade::Upgraded,
) {
    let config = spdy::SessionConfig {
        idle_timeout: Some(api.streaming.idle_timeout),
        ..Default::default()
    };
    let (session, mut incoming) = spdy::serve(io, config);
    let resize = opts.tty && supports_resize(version);
    let expected = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr)
        + usize::from(resize);
    let mut streams = Streams {
        stdin: None,
        stdout: None,
        stderr: None,
        error: None,
        resize: None,
    };
    let gather = async {
        let mut received = 0;
        while received < expected {
            let Some(stream) = incoming.accept().await else {
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
    };
    let gathered = tokio::time::timeout(api.streaming.stream_creation_timeout, gather).await;
    if !matches!(gathered, Ok(true)) {
        tracing::info!(pod = %target.pod, "timed out waiting for the client to create streams");
        session.close().await;
        return;
    }
    let gone = session.closed();
    run(
        &api,
        &target,
        action,
        opts.tty,
        json_status(version),
        streams,
        gone,
    )
    .await;
    // Give the error stream's last frames a moment to leave before closing.
    tokio::time::sleep(Duration::from_millis(10)).await;
    session.close().await;
}
