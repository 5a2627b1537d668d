//! The kubelet API server when the process runs out of file descriptors (its own test
//! binary: it lowers the process's soft `RLIMIT_NOFILE`). While `accept` fails with
//! `EMFILE`, connections already open are still served; once descriptors are freed,
//! the queued connections are accepted and new requests answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use vk_core::PodLifecycleHandler;
use vk_errdefs::Result;
use vk_node_api::auth::{AuthConfig, Authenticator, AuthzMode};
use vk_node_api::connections::ConnectionLimit;
use vk_node_api::node_api::{NodeApi, StreamingConfig};
use vk_node_api::router::router;
use vk_node_api::server::{ServeOptions, serve_plain};

const LIMIT: Duration = Duration::from_secs(60);

struct NoPods;

#[async_trait]
impl PodLifecycleHandler for NoPods {
    async fn create_pod(&self, _pod: &Pod) -> Result<()> {
        Ok(())
    }
    async fn update_pod(&self, _pod: &Pod) -> Result<()> {
        Ok(())
    }
    async fn delete_pod(&self, _pod: &Pod) -> Result<()> {
        Ok(())
    }
    async fn get_pod(&self, _namespace: &str, _name: &str) -> Result<Option<Pod>> {
        Ok(None)
    }
    async fn get_pod_status(&self, _namespace: &str, _name: &str) -> Result<Option<PodStatus>> {
        Ok(None)
    }
    async fn get_pods(&self) -> Result<Vec<Pod>> {
        Ok(Vec::new())
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Body>;

async fn client(addr: SocketAddr) -> std::io::Result<Sender> {
    let tcp = TcpStream::connect(addr).await?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(send)
}

async fn healthz(send: &mut Sender) -> StatusCode {
    let req = Request::get("/healthz")
        .header(header::HOST, "localhost")
        .body(Body::empty())
        .expect("request");
    tokio::time::timeout(LIMIT, send.send_request(req))
        .await
        .expect("healthz timed out")
        .expect("healthz")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_server_keeps_serving_and_recovers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let api = Arc::new(NodeApi::new(
        "n",
        Arc::new(NoPods),
        Authenticator::new(
            AuthConfig {
                anonymous: true,
                token_webhook: false,
                authorization: AuthzMode::AlwaysAllow,
            },
            "n",
            None,
        ),
        StreamingConfig::default(),
    ));
    let connections = ConnectionLimit::new("test", 100_000);
    let options = ServeOptions {
        header_read_timeout: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(3600),
        connections: connections.clone(),
        ..Default::default()
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(serve_plain(
        listener,
        router(api),
        options,
        shutdown.clone(),
    ));
    let mut kept = client(addr).await.expect("connect");
    assert_eq!(healthz(&mut kept).await, StatusCode::OK);

    // Leave room for about 40 more descriptors.
    let initial = getrlimit(Resource::Nofile);
    let open = vk_core::procfs::Process::current()
        .open_fds()
        .expect("/proc/self/fd");
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open + 40),
            maximum: initial.maximum,
        },
    )
    .expect("lower the soft limit");

    // Connect until the process is out of descriptors: the connections the server has
    // not accepted yet wait in the listen queue while its accept fails.
    let mut flood = Vec::new();
    let exhausted = loop {
        match TcpStream::connect(addr).await {
            Ok(tcp) => flood.push(tcp),
            Err(e) => break e,
        }
        assert!(flood.len() < 10_000, "never ran out of descriptors");
    };
    assert!(
        vk_node_api::accept::out_of_descriptors(&exhausted),
        "{exhausted}"
    );
    let held = connections.open();

    // Connections already open are still served.
    assert_eq!(healthz(&mut kept).await, StatusCode::OK);

    // Free descriptors: the server accepts what waited and answers new connections.
    drop(flood);
    setrlimit(Resource::Nofile, initial).expect("restore the soft limit");
    let mut fresh = client(addr).await.expect("connect after recovery");
    assert_eq!(healthz(&mut fresh).await, StatusCode::OK);
    eprintln!(
        "fd exhaustion: soft limit {} descriptors, {} connections held by the server when accept failed with {exhausted}; recovered",
        open + 40,
        held
    );
    shutdown.cancel();
}
