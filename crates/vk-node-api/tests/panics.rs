//! A provider whose exec or attach panics: the session must end with a failure status
//! on the error stream (kubectl then exits non-zero), never look like a success; and
//! running the call as a task of its own must keep cancelling it when the client goes
//! away. Real WebSocket sessions over an in-memory pipe, as in `router.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::io::{AsyncWriteExt as _, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt as _;
use vk_core::PodLifecycleHandler;
use vk_core::capabilities::{Capabilities, ContainerAttach, ContainerExec, ExecIo};
use vk_errdefs::Result;
use vk_node_api::auth::{AuthConfig, Authenticator, AuthzMode};
use vk_node_api::node_api::{NodeApi, StreamingConfig};
use vk_node_api::router::router;

const NODE: &str = "vk-test";
const LIMIT: Duration = Duration::from_secs(20);
const PANIC_MESSAGE: &str = "the handler exploded";

fn web() -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some("web".into()),
            uid: Some("uid-web".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
    }
}

/// Sends on its channel when dropped (the provider's call was cancelled).
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Exec `panic` panics after writing to stdout; exec `block` reports that it started
/// and runs until cancelled; exec `echo` prints its arguments. Attach panics.
struct Panicky {
    started: mpsc::UnboundedSender<()>,
    cancelled: Mutex<Option<oneshot::Sender<()>>>,
}

#[async_trait]
impl PodLifecycleHandler for Panicky {
    async fn create_pod(&self, _pod: &Pod) -> Result<()> {
        Ok(())
    }
    async fn update_pod(&self, _pod: &Pod) -> Result<()> {
        Ok(())
    }
    async fn delete_pod(&self, _pod: &Pod) -> Result<()> {
        Ok(())
    }
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Ok((namespace == "default" && name == "web").then(web))
    }
    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        Ok(self.get_pod(namespace, name).await?.and_then(|p| p.status))
    }
    async fn get_pods(&self) -> Result<Vec<Pod>> {
        Ok(vec![web()])
    }
    fn capabilities(self: Arc<Self>) -> Capabilities {
        Capabilities::none()
            .with_exec(self.clone())
            .with_attach(self)
    }
}

#[async_trait]
impl ContainerExec for Panicky {
    async fn exec(
        &self,
        _namespace: &str,
        _pod: &str,
        _container: &str,
        command: Vec<String>,
        mut io: ExecIo,
    ) -> Result<i32> {
        match command.first().map(String::as_str) {
            Some("panic") => {
                if let Some(out) = io.stdout.as_mut() {
                    let _ = out.write_all(b"about to fail\n").await;
                    let _ = out.flush().await;
                }
                panic!("{PANIC_MESSAGE}");
            }
            Some("block") => {
                let _guard = DropSignal(self.cancelled.lock().expect("lock").take());
                let _ = self.started.send(());
                std::future::pending::<()>().await;
                Ok(0)
            }
            _ => {
                if let Some(out) = io.stdout.as_mut() {
                    let line = format!("{}\n", command[1..].join(" "));
                    let _ = out.write_all(line.as_bytes()).await;
                    let _ = out.flush().await;
                }
                Ok(0)
            }
        }
    }
}

#[async_trait]
impl ContainerAttach for Panicky {
    async fn attach(
        &self,
        _namespace: &str,
        _pod: &str,
        _container: &str,
        _io: ExecIo,
    ) -> Result<Option<i32>> {
        panic!("{PANIC_MESSAGE}");
    }
}

struct Stub {
    app: Router,
    started: mpsc::UnboundedReceiver<()>,
    cancelled: oneshot::Receiver<()>,
}

fn stub() -> Stub {
    let (started_tx, started) = mpsc::unbounded_channel();
    let (cancelled_tx, cancelled) = oneshot::channel();
    let provider = Arc::new(Panicky {
        started: started_tx,
        cancelled: Mutex::new(Some(cancelled_tx)),
    });
    let auth = AuthConfig {
        anonymous: true,
        token_webhook: false,
        authorization: AuthzMode::AlwaysAllow,
    };
    let app = router(Arc::new(NodeApi::new(
        NODE,
        provider,
        Authenticator::new(auth, NODE, None),
        StreamingConfig::default(),
    )));
    Stub {
        app,
        started,
        cancelled,
    }
}

/// Opens a v5.channel.k8s.io WebSocket session for `uri` on `app` over an in-memory
/// pipe (the server runs as a task).
async fn connect(app: Router, uri: &str) -> WebSocketStream<DuplexStream> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            app.clone().oneshot(req.map(Body::new))
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(server_io), service)
            .with_upgrades()
            .await
    });
    let mut request = format!("ws://{NODE}{uri}")
        .into_client_request()
        .expect("client request");
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        "v5.channel.k8s.io".parse().expect("header"),
    );
    let (ws, response) =
        tokio::time::timeout(LIMIT, tokio_tungstenite::client_async(request, client_io))
            .await
            .expect("handshake timed out")
            .expect("handshake");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws
}

/// The binary messages received until the server closed the session.
async fn receive_all(mut ws: WebSocketStream<DuplexStream>) -> Vec<Vec<u8>> {
    let mut received = Vec::new();
    loop {
        let message = tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("receive timed out");
        match message {
            Some(Ok(Message::Binary(data))) => received.push(data.to_vec()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
    let _ = ws.close(None).await;
    received
}

/// The `Status` written on the error channel (3), which must be the last message.
fn final_status(received: &[Vec<u8>]) -> serde_json::Value {
    let last = received.last().expect("at least one message");
    assert_eq!(
        last.first(),
        Some(&3u8),
        "the session ends with a status on the error channel: {received:?}"
    );
    serde_json::from_slice(&last[1..]).expect("status JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_exec_ends_with_a_failure_status() {
    let s = stub();
    let ok = receive_all(
        connect(
            s.app.clone(),
            "/exec/default/web/app?command=echo&command=fine&output=1&error=1",
        )
        .await,
    )
    .await;
    assert_eq!(final_status(&ok)["status"], "Success", "the stub works");

    let got = receive_all(
        connect(
            s.app,
            "/exec/default/web/app?command=panic&output=1&error=1",
        )
        .await,
    )
    .await;
    assert!(
        got.iter().any(|m| m.as_slice() == b"\x01about to fail\n"),
        "output written before the panic reaches the client: {got:?}"
    );
    let status = final_status(&got);
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["reason"], "InternalError", "{status}");
    let message = status["message"].as_str().expect("a message");
    assert!(message.contains("panicked"), "{message}");
    assert!(
        !message.contains(PANIC_MESSAGE),
        "the panic's text stays in the node's log: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_attach_ends_with_a_failure_status() {
    let s = stub();
    let got = receive_all(connect(s.app, "/attach/default/web/app?output=1&error=1").await).await;
    let status = final_status(&got);
    assert_eq!(status["status"], "Failure", "{status}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("panicked")),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_still_cancels_the_call() {
    let mut s = stub();
    let ws = connect(s.app, "/exec/default/web/app?command=block&output=1").await;
    tokio::time::timeout(LIMIT, s.started.recv())
        .await
        .expect("the provider's exec started")
        .expect("started signal");
    drop(ws);
    tokio::time::timeout(LIMIT, s.cancelled)
        .await
        .expect("the provider's call was dropped after the client went away")
        .expect("cancel signal");
}
