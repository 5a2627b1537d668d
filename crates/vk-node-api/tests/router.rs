//! The kubelet API router driven in-process (`tower::ServiceExt::oneshot`) against two
//! fake providers: one without any optional capability, one with logs, exec, attach,
//! port-forward and statistics. One test also runs a real WebSocket exec session over
//! an in-memory pipe, since `oneshot` cannot upgrade a connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use bytes::Bytes;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use tokio::io::AsyncWriteExt as _;
use tower::ServiceExt as _;
use vk_core::capabilities::{
    ByteStream, Capabilities, ContainerAttach, ContainerExec, ContainerLogs, Duplex, ExecIo,
    LogOptions, PortForward,
};
use vk_core::stats::{
    ContainerStats, CpuStats, MemoryStats, NodeStats, PodReference, PodStats, StatsProvider,
    Summary,
};
use vk_core::{PodLifecycleHandler, SharedPodHandler};
use vk_errdefs::{Error, Result};
use vk_node_api::auth::{AuthConfig, Authenticator, AuthzMode, PeerCertificates};
use vk_node_api::node_api::{NodeApi, StreamingConfig};
use vk_node_api::router::router;

const NODE: &str = "vk-test";
const WEB_UID: &str = "0b6f3a52-uid-web";

// ----------------------------------------------------------------------------------
// Fake providers
// ----------------------------------------------------------------------------------

fn pod(name: &str, uid: &str, phase: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
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
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

fn pods() -> Vec<Pod> {
    vec![
        pod("web", WEB_UID, "Running"),
        pod("batch", "uid-batch", "Succeeded"),
        pod("queued", "uid-queued", "Pending"),
    ]
}

fn find(pods: &[Pod], namespace: &str, name: &str) -> Option<Pod> {
    pods.iter()
        .find(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && p.metadata.name.as_deref() == Some(name)
        })
        .cloned()
}

/// A provider offering no optional capability.
struct Bare {
    pods: Vec<Pod>,
}

#[async_trait]
impl PodLifecycleHandler for Bare {
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
        Ok(find(&self.pods, namespace, name))
    }
    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        Ok(find(&self.pods, namespace, name).and_then(|p| p.status))
    }
    async fn get_pods(&self) -> Result<Vec<Pod>> {
        Ok(self.pods.clone())
    }
}

/// What a log request asked the provider for.
#[derive(Debug, Clone, PartialEq)]
struct LogCall {
    namespace: String,
    pod: String,
    container: String,
    options: LogOptions,
}

/// A provider offering logs, exec (`echo`, `false`), attach, port-forward (echo) and
/// statistics. Container `app` of pod `default/web` exists; container `broken` answers
/// logs with InvalidInput; anything else is NotFound.
struct Full {
    pods: Vec<Pod>,
    log_calls: Mutex<Vec<LogCall>>,
}

impl Full {
    fn new() -> Self {
        Self {
            pods: pods(),
            log_calls: Mutex::new(Vec::new()),
        }
    }

    fn calls(&self) -> Vec<LogCall> {
        self.log_calls.lock().expect("lock").clone()
    }

    fn check(&self, namespace: &str, pod: &str, container: &str) -> Result<()> {
        if find(&self.pods, namespace, pod).is_none() {
            return Err(Error::not_found(format!(
                "pod {namespace}/{pod} is not running on this node"
            )));
        }
        if container != "app" {
            return Err(Error::not_found(format!(
                "container {container:?} is not valid for pod {namespace}/{pod}"
            )));
        }
        Ok(())
    }
}

const LOG_CHUNKS: [&str; 3] = ["line 1\n", "line 2\n", "line 3\n"];

#[async_trait]
impl PodLifecycleHandler for Full {
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
        Ok(find(&self.pods, namespace, name))
    }
    async fn get_pod_status(&self, namespace: &str, name: &str) -> Result<Option<PodStatus>> {
        Ok(find(&self.pods, namespace, name).and_then(|p| p.status))
    }
    async fn get_pods(&self) -> Result<Vec<Pod>> {
        Ok(self.pods.clone())
    }
    fn capabilities(self: Arc<Self>) -> Capabilities {
        Capabilities::all(self)
    }
}

#[async_trait]
impl ContainerLogs for Full {
    async fn container_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        options: &LogOptions,
    ) -> Result<ByteStream> {
        self.log_calls.lock().expect("lock").push(LogCall {
            namespace: namespace.into(),
            pod: pod.into(),
            container: container.into(),
            options: options.clone(),
        });
        if container == "broken" {
            return Err(Error::invalid_input(
                "previous terminated container \"broken\" not found",
            ));
        }
        self.check(namespace, pod, container)?;
        let chunks = LOG_CHUNKS.map(|c| Ok(Bytes::from_static(c.as_bytes())));
        Ok(Box::pin(futures::stream::iter(chunks)))
    }
}

#[async_trait]
impl ContainerExec for Full {
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: Vec<String>,
        mut io: ExecIo,
    ) -> Result<i32> {
        self.check(namespace, pod, container)?;
        match command.split_first() {
            Some((cmd, args)) if cmd == "echo" => {
                if let Some(out) = io.stdout.as_mut() {
                    let line = format!("{}\n", args.join(" "));
                    out.write_all(line.as_bytes())
                        .await
                        .map_err(|e| Error::unknown(e.to_string()))?;
                    out.flush()
                        .await
                        .map_err(|e| Error::unknown(e.to_string()))?;
                }
                Ok(0)
            }
            Some((cmd, _)) if cmd == "false" => Ok(1),
            _ => Ok(127),
        }
    }
}

#[async_trait]
impl ContainerAttach for Full {
    async fn attach(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        mut io: ExecIo,
    ) -> Result<Option<i32>> {
        self.check(namespace, pod, container)?;
        if let (Some(input), Some(output)) = (io.stdin.as_mut(), io.stdout.as_mut()) {
            let _ = tokio::io::copy(input, output).await;
        }
        Ok(None)
    }
}

#[async_trait]
impl PortForward for Full {
    async fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        _port: u16,
        stream: Box<dyn Duplex>,
    ) -> Result<()> {
        self.check(namespace, pod, "app")?;
        let (mut r, mut w) = tokio::io::split(stream);
        let _ = tokio::io::copy(&mut r, &mut w).await;
        Ok(())
    }
}

#[async_trait]
impl StatsProvider for Full {
    async fn stats_summary(&self) -> Result<Summary> {
        Ok(Summary {
            node: NodeStats {
                node_name: NODE.into(),
                cpu: Some(CpuStats {
                    time: None,
                    usage_nano_cores: Some(250_000_000),
                    usage_core_nano_seconds: Some(2_500_000_000),
                }),
                memory: Some(MemoryStats {
                    time: None,
                    working_set_bytes: Some(1 << 20),
                    ..Default::default()
                }),
                ..Default::default()
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "web".into(),
                    namespace: "default".into(),
                    uid: WEB_UID.into(),
                },
                containers: vec![ContainerStats {
                    name: "app".into(),
                    cpu: Some(CpuStats {
                        time: None,
                        usage_nano_cores: Some(1_000_000),
                        usage_core_nano_seconds: Some(500_000_000),
                    }),
                    memory: Some(MemoryStats {
                        time: None,
                        working_set_bytes: Some(4096),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
    }
}

// ----------------------------------------------------------------------------------
// Harness
// ----------------------------------------------------------------------------------

fn open_auth() -> AuthConfig {
    AuthConfig {
        anonymous: true,
        token_webhook: false,
        authorization: AuthzMode::AlwaysAllow,
    }
}

fn app_with(provider: SharedPodHandler, auth: AuthConfig) -> Router {
    router(Arc::new(NodeApi::new(
        NODE,
        provider,
        Authenticator::new(auth, NODE, None),
        StreamingConfig::default(),
    )))
}

fn bare() -> Router {
    app_with(Arc::new(Bare { pods: pods() }), open_auth())
}

fn full() -> (Router, Arc<Full>) {
    let provider = Arc::new(Full::new());
    (app_with(provider.clone(), open_auth()), provider)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[track_caller]
    fn expect(&self, status: StatusCode, body_contains: &str) {
        assert_eq!(self.status, status, "body: {:?}", self.body);
        assert!(
            self.body.contains(body_contains),
            "expected {body_contains:?} in the {} body {:?}",
            self.status,
            self.body
        );
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let response = app.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
    }
}

fn plain(method: Method, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request")
}

async fn get(app: &Router, uri: &str) -> Answer {
    send(app, plain(Method::GET, uri)).await
}

/// A SPDY/3.1 upgrade request offering `protocols` (in order).
fn spdy(method: Method, uri: &str, protocols: &[&str]) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1");
    for p in protocols {
        b = b.header("X-Stream-Protocol-Version", *p);
    }
    b.body(Body::empty()).expect("request")
}

const V4: &[&str] = &["v4.channel.k8s.io"];

// ----------------------------------------------------------------------------------
// 1. Routing
// ----------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_routes_are_404_and_healthz_is_ok() {
    let app = bare();
    for uri in [
        "/nope",
        "/containerLogs/default/web",
        "/exec/default",
        "/stats",
        "/metrics/cadvisor",
    ] {
        assert_eq!(get(&app, uri).await.status, StatusCode::NOT_FOUND, "{uri}");
    }
    let health = get(&app, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, "ok");
}

// ----------------------------------------------------------------------------------
// 2. Capabilities the provider does not have
// ----------------------------------------------------------------------------------

#[tokio::test]
async fn missing_capabilities_are_501() {
    let app = bare();
    get(&app, "/containerLogs/default/web/app").await.expect(
        StatusCode::NOT_IMPLEMENTED,
        "container logs are not supported",
    );
    get(&app, "/containerLogs/default/web/app?tailLines=3")
        .await
        .expect(
            StatusCode::NOT_IMPLEMENTED,
            "container logs are not supported",
        );
    for method in [Method::GET, Method::POST] {
        let exec = "/exec/default/web/app?command=echo&command=hi&output=1";
        send(&app, spdy(method.clone(), exec, V4))
            .await
            .expect(StatusCode::NOT_IMPLEMENTED, "exec is not supported");
        let exec_uid = format!("/exec/default/web/{WEB_UID}/app?command=date&output=1");
        send(&app, spdy(method.clone(), &exec_uid, V4))
            .await
            .expect(StatusCode::NOT_IMPLEMENTED, "exec is not supported");
        send(
            &app,
            spdy(method.clone(), "/attach/default/web/app?output=1", V4),
        )
        .await
        .expect(StatusCode::NOT_IMPLEMENTED, "attach is not supported");
        send(
            &app,
            spdy(
                method.clone(),
                "/portForward/default/web",
                &["portforward.k8s.io"],
            ),
        )
        .await
        .expect(StatusCode::NOT_IMPLEMENTED, "port-forward is not supported");
        send(
            &app,
            spdy(
                method,
                &format!("/portForward/default/web/{WEB_UID}"),
                &["portforward.k8s.io"],
            ),
        )
        .await
        .expect(StatusCode::NOT_IMPLEMENTED, "port-forward is not supported");
    }
    for uri in ["/stats/summary", "/stats/summary/", "/metrics/resource"] {
        get(&app, uri)
            .await
            .expect(StatusCode::NOT_IMPLEMENTED, "statistics are not supported");
    }
}

// ----------------------------------------------------------------------------------
// 3. Logs
// ----------------------------------------------------------------------------------

#[tokio::test]
async fn logs_stream_the_providers_bytes_as_plain_text() {
    let (app, provider) = full();
    let a = get(&app, "/containerLogs/default/web/app").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type(), "text/plain; charset=utf-8");
    assert_eq!(a.body, LOG_CHUNKS.concat());
    assert_eq!(
        provider.calls(),
        [LogCall {
            namespace: "default".into(),
            pod: "web".into(),
            container: "app".into(),
            options: LogOptions::default(),
        }]
    );
}

#[tokio::test]
async fn every_log_option_reaches_the_provider_parsed() {
    let (app, provider) = full();
    let a = get(
        &app,
        "/containerLogs/default/web/app?tailLines=2&follow=true&limitBytes=100&previous=1\
         &sinceSeconds=60&timestamps=true",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let since_time = "2026-01-02T03:04:05Z";
    let a = get(
        &app,
        &format!("/containerLogs/default/web/app?sinceTime={since_time}&follow=false"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // An offset with `+`, percent-encoded as clients do.
    let a = get(
        &app,
        "/containerLogs/default/web/app?sinceTime=2026-01-02T04%3A04%3A05%2B01%3A00",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    let calls: Vec<LogOptions> = provider.calls().into_iter().map(|c| c.options).collect();
    let expected_time: Timestamp = since_time.parse().expect("time");
    assert_eq!(
        calls,
        [
            LogOptions {
                follow: true,
                tail_lines: Some(2),
                limit_bytes: Some(100),
                previous: true,
                since_seconds: Some(60),
                since_time: None,
                timestamps: true,
            },
            LogOptions {
                since_time: Some(expected_time),
                ..Default::default()
            },
            LogOptions {
                since_time: Some(expected_time),
                ..Default::default()
            },
        ]
    );
}

#[tokio::test]
async fn a_repeated_log_option_keeps_its_first_value() {
    let (app, provider) = full();
    let a = get(
        &app,
        "/containerLogs/default/web/app?tailLines=1&tailLines=5&limitBytes=10&limitBytes=x",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let options = provider.calls().pop().expect("a call").options;
    assert_eq!(
        (options.tail_lines, options.limit_bytes),
        (Some(1), Some(10))
    );
}

#[tokio::test]
async fn invalid_log_options_are_400_naming_the_parameter() {
    let (app, provider) = full();
    let both = "/containerLogs/default/web/app?sinceSeconds=10&sinceTime=2026-01-02T03:04:05Z";
    get(&app, both)
        .await
        .expect(StatusCode::BAD_REQUEST, "sinceSeconds");
    let a = get(&app, both).await;
    assert!(a.body.contains("sinceTime"), "{}", a.body);
    assert_eq!(a.content_type(), "text/plain; charset=utf-8");

    for (query, name) in [
        ("tailLines=-1", "tailLines"),
        ("tailLines=ten", "tailLines"),
        ("tailLines=1.5", "tailLines"),
        ("limitBytes=-5", "limitBytes"),
        ("limitBytes=0", "limitBytes"),
        ("limitBytes=lots", "limitBytes"),
        ("sinceSeconds=-3", "sinceSeconds"),
        ("sinceSeconds=0", "sinceSeconds"),
        ("sinceSeconds=soon", "sinceSeconds"),
        ("sinceTime=yesterday", "sinceTime"),
        ("sinceTime=2026-13-45T99:00:00Z", "sinceTime"),
        ("follow=maybe", "follow"),
        ("previous=2", "previous"),
        ("timestamps=yes", "timestamps"),
    ] {
        let a = get(&app, &format!("/containerLogs/default/web/app?{query}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{query}: {}", a.body);
        assert!(a.body.contains(name), "{query}: {:?}", a.body);
    }
    assert!(
        provider.calls().is_empty(),
        "invalid requests never reach the provider"
    );
}

#[tokio::test]
async fn provider_errors_keep_their_status() {
    let (app, _) = full();
    get(&app, "/containerLogs/default/ghost/app")
        .await
        .expect(StatusCode::NOT_FOUND, "pod default/ghost is not running");
    get(&app, "/containerLogs/default/web/sidecar")
        .await
        .expect(StatusCode::NOT_FOUND, "container \"sidecar\" is not valid");
    let a = get(&app, "/containerLogs/default/web/broken").await;
    a.expect(
        StatusCode::BAD_REQUEST,
        "previous terminated container \"broken\" not found",
    );
    assert_eq!(a.content_type(), "text/plain; charset=utf-8");
}

// ----------------------------------------------------------------------------------
// 4. Exec and attach request checks
// ----------------------------------------------------------------------------------

#[tokio::test]
async fn exec_and_attach_without_upgrade_headers_are_400() {
    let (app, _) = full();
    for method in [Method::GET, Method::POST] {
        for uri in [
            "/exec/default/web/app?command=echo&output=1".to_owned(),
            format!("/exec/default/web/{WEB_UID}/app?command=echo&output=1"),
            "/attach/default/web/app?output=1".to_owned(),
            format!("/attach/default/web/{WEB_UID}/app?output=1"),
        ] {
            send(&app, plain(method.clone(), &uri))
                .await
                .expect(StatusCode::BAD_REQUEST, "missing upgrade headers");
        }
        send(&app, plain(method.clone(), "/portForward/default/web"))
            .await
            .expect(StatusCode::BAD_REQUEST, "missing upgrade headers");
        // Only half of the upgrade headers.
        let half = Request::builder()
            .method(method)
            .uri("/exec/default/web/app?command=echo&output=1")
            .header(header::UPGRADE, "SPDY/3.1")
            .body(Body::empty())
            .expect("request");
        send(&app, half)
            .await
            .expect(StatusCode::BAD_REQUEST, "missing upgrade headers");
    }
}

#[tokio::test]
async fn exec_and_attach_need_at_least_one_stream() {
    let (app, _) = full();
    for uri in [
        "/exec/default/web/app?command=echo",
        "/exec/default/web/app?command=echo&stdin=0&stdout=false&stderr=0",
        // A TTY has no separate stderr, so stderr alone with a TTY asks for nothing.
        "/exec/default/web/app?command=echo&tty=1&error=1",
        "/attach/default/web/app",
        "/attach/default/web/app?tty=true",
    ] {
        send(&app, spdy(Method::POST, uri, V4)).await.expect(
            StatusCode::BAD_REQUEST,
            "at least 1 of stdin, stdout, stderr",
        );
    }
    send(
        &app,
        spdy(
            Method::POST,
            "/exec/default/web/app?command=echo&output=2",
            V4,
        ),
    )
    .await
    .expect(StatusCode::BAD_REQUEST, "output");
}

#[tokio::test]
async fn an_unknown_spdy_protocol_is_403() {
    let (app, _) = full();
    let offered = &["v9.channel.k8s.io", "v10.channel.k8s.io"];
    for uri in [
        "/exec/default/web/app?command=echo&output=1",
        "/attach/default/web/app?output=1",
    ] {
        send(&app, spdy(Method::POST, uri, offered))
            .await
            .expect(StatusCode::FORBIDDEN, "unable to negotiate protocol");
    }
    send(
        &app,
        spdy(
            Method::POST,
            "/portForward/default/web",
            &["v4.channel.k8s.io"],
        ),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "unable to negotiate protocol");
}

#[tokio::test]
async fn a_pod_uid_that_does_not_match_is_404() {
    let (app, _) = full();
    for uri in [
        "/exec/default/web/not-the-uid/app?command=echo&output=1",
        "/attach/default/web/not-the-uid/app?output=1",
    ] {
        send(&app, spdy(Method::POST, uri, V4))
            .await
            .expect(StatusCode::NOT_FOUND, "with UID");
    }
    // A pod the provider does not run is 404 before any upgrade, with or without UID.
    for uri in [
        "/exec/default/ghost/some-uid/app?command=echo&output=1",
        "/exec/default/ghost/app?command=echo&output=1",
        "/attach/default/ghost/app?output=1",
    ] {
        send(&app, spdy(Method::POST, uri, V4))
            .await
            .expect(StatusCode::NOT_FOUND, "does not exist");
    }
    send(
        &app,
        spdy(
            Method::POST,
            "/portForward/default/ghost",
            &["portforward.k8s.io"],
        ),
    )
    .await
    .expect(StatusCode::NOT_FOUND, "does not exist");
    send(
        &app,
        spdy(
            Method::POST,
            "/portForward/default/web/not-the-uid",
            &["portforward.k8s.io"],
        ),
    )
    .await
    .expect(StatusCode::NOT_FOUND, "with UID not-the-uid not found");
    // The right UID passes the check; what stops the request then is that a request
    // handed to the router without a connection behind it cannot be upgraded.
    send(
        &app,
        spdy(
            Method::POST,
            &format!("/exec/default/web/{WEB_UID}/app?command=echo&output=1"),
            V4,
        ),
    )
    .await
    .expect(StatusCode::BAD_REQUEST, "cannot be upgraded");
}

#[tokio::test]
async fn exec_without_a_command_is_400() {
    let (app, _) = full();
    for uri in [
        "/exec/default/web/app?output=1",
        "/exec/default/web/app?output=1&commands=echo",
    ] {
        send(&app, spdy(Method::POST, uri, V4))
            .await
            .expect(StatusCode::BAD_REQUEST, "missing command");
    }
    // Attach takes no command.
    send(
        &app,
        spdy(Method::POST, "/attach/default/web/app?output=1", V4),
    )
    .await
    .expect(StatusCode::BAD_REQUEST, "cannot be upgraded");
}

// ----------------------------------------------------------------------------------
// 5. Pod lists
// ----------------------------------------------------------------------------------

fn names(list: &serde_json::Value) -> Vec<String> {
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().expect("pod name").to_owned())
        .collect()
}

#[tokio::test]
async fn pods_and_running_pods_are_pod_lists() {
    let app = bare();
    for uri in ["/pods", "/pods/"] {
        let a = get(&app, uri).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.content_type(), "application/json");
        let list = a.json();
        assert_eq!(names(&list), ["web", "batch", "queued"], "{uri}");
        assert_eq!(list["items"][0]["metadata"]["uid"], WEB_UID);
        assert_eq!(list["items"][0]["status"]["phase"], "Running");
        // Items are full Pods that deserialize back.
        let back: Vec<Pod> =
            serde_json::from_value(list["items"].clone()).expect("the items are Pods");
        assert_eq!(back, pods());
    }
    // The runtime's pods: every pod the provider has, not only those Running.
    for uri in ["/runningpods/", "/runningpods"] {
        let a = get(&app, uri).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.content_type(), "application/json");
        assert_eq!(names(&a.json()), ["web", "batch", "queued"], "{uri}");
    }
    let empty = app_with(Arc::new(Bare { pods: Vec::new() }), open_auth());
    let list = get(&empty, "/pods").await.json();
    assert_eq!(list["items"], serde_json::json!([]));
}

#[tokio::test]
async fn pods_lists_the_api_view_and_runningpods_the_providers() {
    // The API has bound `web` and `blocked` (waiting for a Secret, so never created in
    // the provider); the provider has `web`, `batch` and `queued`.
    let api_pods = vec![
        pod("blocked", "uid-blocked", "Pending"),
        pod("web", WEB_UID, "Running"),
    ];
    let listed = api_pods.clone();
    let app = router(Arc::new(
        NodeApi::new(
            NODE,
            Arc::new(Bare { pods: pods() }),
            Authenticator::new(open_auth(), NODE, None),
            StreamingConfig::default(),
        )
        .with_bound_pods(move || listed.clone()),
    ));
    for uri in ["/pods", "/pods/"] {
        let list = get(&app, uri).await.json();
        assert_eq!(names(&list), ["blocked", "web"], "{uri}");
        let back: Vec<Pod> = serde_json::from_value(list["items"].clone()).expect("Pods");
        assert_eq!(back, api_pods);
    }
    for uri in ["/runningpods/", "/runningpods"] {
        assert_eq!(
            names(&get(&app, uri).await.json()),
            ["web", "batch", "queued"],
            "{uri}"
        );
    }
}

// ----------------------------------------------------------------------------------
// 6. Statistics
// ----------------------------------------------------------------------------------

#[tokio::test]
async fn stats_summary_is_the_providers_summary_as_json() {
    let (app, provider) = full();
    let want = provider.stats_summary().await.expect("summary");
    for uri in ["/stats/summary", "/stats/summary/"] {
        let a = get(&app, uri).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.content_type(), "application/json");
        let v = a.json();
        assert_eq!(v["node"]["nodeName"], NODE);
        assert_eq!(v["node"]["cpu"]["usageNanoCores"], 250_000_000);
        assert_eq!(v["pods"][0]["podRef"]["uid"], WEB_UID);
        assert_eq!(
            v["pods"][0]["containers"][0]["memory"]["workingSetBytes"],
            4096
        );
        let back: Summary = serde_json::from_value(v).expect("a Summary");
        assert_eq!(back, want);
    }
}

#[tokio::test]
async fn resource_metrics_are_prometheus_text() {
    let (app, _) = full();
    let a = get(&app, "/metrics/resource").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type(), "text/plain; version=0.0.4; charset=utf-8");
    let lines: Vec<&str> = a.body.lines().collect();
    for want in [
        "# TYPE node_cpu_usage_seconds_total counter",
        "node_cpu_usage_seconds_total 2.5",
        "node_memory_working_set_bytes 1048576",
        "container_memory_working_set_bytes{container=\"app\",namespace=\"default\",pod=\"web\"} 4096",
        "container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"web\"} 0.5",
        "scrape_error 0",
    ] {
        assert!(lines.contains(&want), "{want:?} not in\n{}", a.body);
    }
}

// ----------------------------------------------------------------------------------
// 7. Authentication
// ----------------------------------------------------------------------------------

#[tokio::test]
async fn without_credentials_and_without_anonymous_it_is_401() {
    let strict = AuthConfig {
        anonymous: false,
        token_webhook: false,
        authorization: AuthzMode::AlwaysAllow,
    };
    let provider: SharedPodHandler = Arc::new(Full::new());
    for config in [strict.clone(), AuthConfig::default()] {
        let app = app_with(provider.clone(), config);
        for uri in [
            "/pods",
            "/healthz",
            "/no-such-route",
            "/containerLogs/default/web/app",
            "/stats/summary",
            "/metrics/resource",
        ] {
            let a = get(&app, uri).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{uri}: {}", a.body);
            assert_eq!(a.body, "Unauthorized\n");
        }
        send(
            &app,
            spdy(
                Method::POST,
                "/exec/default/web/app?command=echo&output=1",
                V4,
            ),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED, "Unauthorized");
    }

    // A bearer token is not a credential when the token webhook is off.
    let app = app_with(provider.clone(), strict.clone());
    let with_token = Request::builder()
        .uri("/pods")
        .header(header::AUTHORIZATION, "Bearer abc")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        send(&app, with_token).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A verified client certificate is.
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:kube-apiserver");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    let mut with_cert = plain(Method::GET, "/pods");
    with_cert
        .extensions_mut()
        .insert(PeerCertificates(vec![cert.der().clone()]));
    let a = send(&app, with_cert).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(names(&a.json()), ["web", "batch", "queued"]);
}

// ----------------------------------------------------------------------------------
// A real exec session over WebSocket (the provider's exec actually runs)
// ----------------------------------------------------------------------------------

const LIMIT: Duration = Duration::from_secs(20);

/// Runs `uri` as a v5.channel.k8s.io WebSocket exec against `app` over an in-memory
/// pipe; returns the binary messages the client received until the server closed.
async fn websocket_exec(app: Router, uri: &str) -> Vec<Vec<u8>> {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
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
    let (mut ws, response) =
        tokio::time::timeout(LIMIT, tokio_tungstenite::client_async(request, client_io))
            .await
            .expect("handshake timed out")
            .expect("handshake");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        response.headers()[header::SEC_WEBSOCKET_PROTOCOL],
        "v5.channel.k8s.io"
    );
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
    // Let the close handshake finish, then the connection ends.
    let _ = ws.close(None).await;
    drop(ws);
    let _ = tokio::time::timeout(LIMIT, server)
        .await
        .expect("server timed out");
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_exec_runs_the_providers_command() {
    let (app, _) = full();
    let got = websocket_exec(
        app.clone(),
        "/exec/default/web/app?command=echo&command=hello&command=there&output=1&error=1",
    )
    .await;
    let status = br#"{"metadata":{},"status":"Success"}"#;
    let mut error = vec![3u8];
    error.extend_from_slice(status);
    assert_eq!(got, [vec![1u8], b"\x01hello there\n".to_vec(), error]);

    let got = websocket_exec(
        app,
        &format!("/exec/default/web/{WEB_UID}/app?command=false&output=1"),
    )
    .await;
    assert_eq!(got.first().map(Vec::as_slice), Some(&[1u8][..]), "ready");
    let last = got.last().expect("a status");
    assert_eq!(last.first(), Some(&3u8), "on the error channel");
    let v: serde_json::Value = serde_json::from_slice(&last[1..]).expect("status JSON");
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["reason"], "NonZeroExitCode");
    assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(v["details"]["causes"][0]["message"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_channel_port_forward_announces_ports_and_relays_bytes() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let (app, _) = full();
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
    // As kube-rs asks: channel protocols, ports in the query with an encoded comma.
    let mut request = format!("ws://{NODE}/portForward/default/web?ports=8080%2C9090")
        .into_client_request()
        .expect("client request");
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        "v5.channel.k8s.io, v4.channel.k8s.io"
            .parse()
            .expect("header"),
    );
    let (mut ws, response) =
        tokio::time::timeout(LIMIT, tokio_tungstenite::client_async(request, client_io))
            .await
            .expect("handshake timed out")
            .expect("handshake");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut announced = Vec::new();
    for _ in 0..4 {
        announced.push(next_binary(&mut ws).await);
    }
    announced.sort();
    assert_eq!(
        announced,
        [
            vec![0, 0x90, 0x1f],
            vec![1, 0x90, 0x1f],
            vec![2, 0x82, 0x23],
            vec![3, 0x82, 0x23]
        ],
        "each port's two channels start with its number, little-endian"
    );
    futures::SinkExt::send(&mut ws, Message::binary(b"\x02ping".to_vec()))
        .await
        .expect("send");
    assert_eq!(
        next_binary(&mut ws).await,
        b"\x02ping",
        "the second port's bytes come back"
    );
}

/// The next binary message.
async fn next_binary<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("receive timed out");
        if let Some(Ok(Message::Binary(data))) = message {
            return data.to_vec();
        }
        assert!(
            matches!(message, Some(Ok(_))),
            "connection ended: {message:?}"
        );
    }
}
