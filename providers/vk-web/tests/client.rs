//! The v1 client and the provider against an in-test HTTP server (axum) standing in for
//! a bridge: exact routes, status mapping, Retry-After, malformed answers, timeouts,
//! secrets, node health.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use vk_core::capabilities::{ContainerExec, ContainerLogs, ExecIo, LogOptions};
use vk_core::{NodeProvider, PodLifecycleHandler};
use vk_errdefs::ErrorKind;
use vk_web::config::{ProtocolChoice, Secret};
use vk_web::{WebConfig, WebProvider};

/// One request the server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

/// What the server answers.
struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    delay: Option<Duration>,
}

impl Reply {
    fn json(value: serde_json::Value) -> Self {
        Self::raw(StatusCode::OK, value.to_string())
    }
    fn raw(status: StatusCode, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: None,
        }
    }
}

type Responder = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

#[derive(Clone)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
    respond: Arc<Responder>,
}

async fn handle(
    State(server): State<Server>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method,
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body,
    };
    let count = {
        let mut all = server.seen.lock().expect("lock");
        all.push(seen.clone());
        all.iter().filter(|s| s.path == seen.path).count()
    };
    let reply = (server.respond)(&seen, count);
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = (reply.status, reply.body).into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

/// Starts a bridge stand-in answering with `respond(request, nth request on its path)`.
async fn serve(
    respond: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = Server {
        seen: seen.clone(),
        respond: Arc::new(respond),
    };
    let app = axum::Router::new().fallback(handle).with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn config(endpoint: &str) -> WebConfig {
    let mut config = WebConfig::new(endpoint);
    config.protocol = ProtocolChoice::V1;
    config
}

fn provider(config: WebConfig) -> WebProvider {
    WebProvider::new("web-node", config).expect("provider")
}

fn pod(namespace: &str, name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": namespace, "name": name, "uid": "u-1"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .expect("pod")
}

fn pod_json(namespace: &str, name: &str, phase: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": phase}
    })
}

#[tokio::test]
async fn every_v1_route_is_called_exactly_as_upstream() {
    let (url, seen) = serve(|req, _| match req.path.as_str() {
        "/getPod" => Reply::json(pod_json("ns", "a", "Running")),
        "/getPodStatus" => {
            Reply::json(serde_json::json!({"phase": "Running", "podIP": "10.0.0.9"}))
        }
        "/getPods" => Reply::json(serde_json::json!([pod_json("ns", "a", "Running")])),
        "/getContainerLogs" => Reply::raw(StatusCode::OK, "one\ntwo\nthree\n"),
        "/capacity" => {
            Reply::json(serde_json::json!({"cpu": "8", "memory": "16Gi", "pods": "200"}))
        }
        "/nodeConditions" => Reply::json(serde_json::json!([{"type": "Ready", "status": "True"}])),
        "/nodeAddresses" => {
            Reply::json(serde_json::json!([{"type": "InternalIP", "address": "127.0.0.1"}]))
        }
        _ => Reply::raw(StatusCode::OK, ""),
    })
    .await;
    let p = provider(config(&url));
    let a = pod("ns", "a");
    p.create_pod(&a).await.expect("create");
    p.update_pod(&a).await.expect("update");
    p.delete_pod(&a).await.expect("delete");
    let got = p.get_pod("ns", "a").await.expect("get").expect("present");
    assert_eq!(got.metadata.name.as_deref(), Some("a"));
    let status = p
        .get_pod_status("ns", "a")
        .await
        .expect("status")
        .expect("present");
    assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.9"));
    assert_eq!(p.get_pods().await.expect("list").len(), 1);
    let bridge = p.bridge();
    let logs = bridge
        .container_logs("ns", "a", "c", Some(2))
        .await
        .expect("logs");
    assert_eq!(&logs[..], b"one\ntwo\nthree\n");
    assert_eq!(
        bridge.capacity().await.expect("capacity")["memory"].0,
        "16Gi"
    );
    assert_eq!(bridge.node_conditions().await.expect("conditions").len(), 1);
    assert_eq!(
        bridge.node_addresses().await.expect("addresses")[0].address,
        "127.0.0.1"
    );

    let seen = seen.lock().expect("lock").clone();
    let calls: Vec<(String, String, String)> = seen
        .iter()
        .map(|s| (s.method.to_string(), s.path.clone(), s.query.clone()))
        .collect();
    let expect = |m: &str, p: &str, q: &str| (m.to_owned(), p.to_owned(), q.to_owned());
    assert_eq!(
        calls,
        vec![
            expect("POST", "/createPod", ""),
            expect("PUT", "/updatePod", ""),
            expect("DELETE", "/deletePod", ""),
            expect("GET", "/getPod", "namespace=ns&name=a"),
            expect("GET", "/getPodStatus", "namespace=ns&name=a"),
            expect("GET", "/getPods", ""),
            expect(
                "GET",
                "/getContainerLogs",
                "namespace=ns&podName=a&containerName=c&tail=2"
            ),
            expect("GET", "/capacity", ""),
            expect("GET", "/nodeConditions", ""),
            expect("GET", "/nodeAddresses", ""),
        ]
    );
    for body_call in &seen[..3] {
        let sent: Pod = serde_json::from_slice(&body_call.body).expect("the pod as JSON body");
        assert_eq!(sent.metadata.name.as_deref(), Some("a"));
        assert_eq!(
            body_call.headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
    }
}

#[tokio::test]
async fn not_found_is_absence_and_statuses_map_onto_kinds() {
    let (url, _) = serve(|req, _| match req.path.as_str() {
        "/getPod" | "/getPodStatus" | "/deletePod" => {
            Reply::raw(StatusCode::NOT_FOUND, "no such pod")
        }
        "/createPod" => Reply::raw(StatusCode::CONFLICT, "exists"),
        "/updatePod" => Reply::raw(StatusCode::CONFLICT, "version mismatch"),
        "/getPods" => Reply::raw(StatusCode::BAD_REQUEST, "bad"),
        _ => Reply::raw(StatusCode::INTERNAL_SERVER_ERROR, "boom"),
    })
    .await;
    let p = provider(config(&url));
    let a = pod("ns", "a");
    assert!(p.get_pod("ns", "a").await.expect("get").is_none());
    assert!(p.get_pod_status("ns", "a").await.expect("status").is_none());
    assert_eq!(
        p.delete_pod(&a).await.expect_err("gone").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        p.create_pod(&a).await.expect_err("exists").kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        p.update_pod(&a).await.expect_err("conflict").kind(),
        ErrorKind::Conflict
    );
    let err = p.get_pods().await.expect_err("400");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("/getPods") && err.to_string().contains("400"),
        "{err}"
    );
    let err = p.bridge().capacity().await.expect_err("500");
    assert!(
        err.to_string().contains("500") && err.to_string().contains("boom"),
        "{err}"
    );
}

#[tokio::test]
async fn unavailable_answers_are_retried_after_retry_after() {
    let (url, seen) = serve(|req, nth| match (req.path.as_str(), nth) {
        ("/getPods", 1) => {
            let mut r = Reply::raw(StatusCode::SERVICE_UNAVAILABLE, "busy");
            r.headers.push(("retry-after", "1".into()));
            r
        }
        ("/createPod", 1) => {
            let mut r = Reply::raw(StatusCode::TOO_MANY_REQUESTS, "slow down");
            r.headers.push(("retry-after", "1".into()));
            r
        }
        ("/getPods", _) => Reply::json(serde_json::json!([])),
        _ => Reply::raw(StatusCode::OK, ""),
    })
    .await;
    let p = provider(config(&url));
    assert!(p.get_pods().await.expect("after the retry").is_empty());
    p.create_pod(&pod("ns", "a")).await.expect("429 retried");
    {
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.iter().filter(|s| s.path == "/getPods").count(), 2);
        assert_eq!(seen.iter().filter(|s| s.path == "/createPod").count(), 2);
    }

    // A POST answered 503 is not repeated by the client (it may have acted): the core's
    // per-pod backoff retries it. The kind says so.
    let (url, _) = serve(|_, _| Reply::raw(StatusCode::SERVICE_UNAVAILABLE, "down")).await;
    let mut c = config(&url);
    c.max_attempts = 1;
    let err = provider(c)
        .create_pod(&pod("ns", "a"))
        .await
        .expect_err("503");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn malformed_answers_name_the_route_and_the_field() {
    let (url, _) = serve(|req, _| match req.path.as_str() {
        "/getPod" => Reply::json(serde_json::json!({"metadata": {"name": 5}})),
        "/getPods" => Reply::raw(StatusCode::OK, "<html>not json</html>"),
        "/getPodStatus" => {
            Reply::json(serde_json::json!({"containerStatuses": [{"name": "c", "ready": "yes"}]}))
        }
        "/capacity" => Reply::json(serde_json::json!(["cpu"])),
        _ => Reply::raw(StatusCode::OK, ""),
    })
    .await;
    let p = provider(config(&url));
    let err = p.get_pod("ns", "a").await.expect_err("bad name");
    let text = err.to_string();
    assert!(
        text.contains("/getPod") && text.contains("metadata.name"),
        "{text}"
    );
    let text = p.get_pods().await.expect_err("html").to_string();
    assert!(text.contains("GET /getPods"), "{text}");
    let text = p
        .get_pod_status("ns", "a")
        .await
        .expect_err("ready")
        .to_string();
    assert!(
        text.contains("/getPodStatus") && text.contains("containerStatuses[0]"),
        "{text}"
    );
    let text = p.bridge().capacity().await.expect_err("array").to_string();
    assert!(text.contains("/capacity"), "{text}");
}

#[tokio::test]
async fn slow_answers_time_out_per_call() {
    let (url, _) = serve(|req, _| {
        let mut r = match req.path.as_str() {
            "/getPods" => Reply::json(serde_json::json!([])),
            _ => Reply::json(pod_json("ns", "a", "Running")),
        };
        if req.path == "/getPod" {
            r.delay = Some(Duration::from_secs(30));
        }
        r
    })
    .await;
    let mut c = config(&url);
    c.timeouts.get = Some(Duration::from_millis(200));
    c.max_attempts = 2;
    let p = provider(c);
    let err = p.get_pod("ns", "a").await.expect_err("timeout");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("no response within"), "{err}");
    // Other calls keep their own (default) timeout.
    assert!(p.get_pods().await.expect("list").is_empty());
}

#[tokio::test]
async fn bearer_token_is_sent_and_never_shown() {
    let (url, seen) = serve(|_, _| Reply::json(serde_json::json!([]))).await;
    let mut c = config(&url);
    c.bearer_token = Some(Secret::new("hunter2-token"));
    let p = provider(c);
    p.get_pods().await.expect("list");
    let auth = seen.lock().expect("lock")[0]
        .headers
        .get("authorization")
        .cloned()
        .expect("authorization header");
    assert_eq!(auth, "Bearer hunter2-token");
    let shown = format!("{p:?} {:?}", p.bridge().config());
    assert!(!shown.contains("hunter2"), "{shown}");

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("token");
    std::fs::write(&file, "from-file\n").expect("write");
    let (url, seen) = serve(|_, _| Reply::json(serde_json::json!([]))).await;
    let mut c = config(&url);
    c.bearer_token_file = Some(file);
    provider(c).get_pods().await.expect("list");
    assert_eq!(
        seen.lock().expect("lock")[0]
            .headers
            .get("authorization")
            .expect("auth"),
        "Bearer from-file"
    );
}

#[tokio::test]
async fn v1_logs_apply_the_kubelet_options_and_refuse_huge_answers() {
    let (url, _) = serve(|req, _| match req.query.contains("podName=big") {
        true => Reply::raw(StatusCode::OK, vec![b'x'; 10 * 1024 * 1024]),
        false => Reply::raw(StatusCode::OK, "one\ntwo\nthree\n"),
    })
    .await;
    let p = provider(config(&url));
    let options = LogOptions {
        tail_lines: Some(2),
        limit_bytes: Some(6),
        ..Default::default()
    };
    let stream = p
        .container_logs("ns", "a", "c", &options)
        .await
        .expect("logs");
    let chunks: Vec<_> = futures::StreamExt::collect::<Vec<_>>(stream).await;
    let bytes: Vec<u8> = chunks
        .into_iter()
        .flat_map(|c| c.expect("chunk").to_vec())
        .collect();
    assert_eq!(bytes, b"two\nth");

    // 10 MB fits the default limit (16 MiB)...
    let stream = p
        .container_logs("ns", "big", "c", &LogOptions::default())
        .await
        .expect("10 MB");
    let total: usize = futures::StreamExt::collect::<Vec<_>>(stream)
        .await
        .into_iter()
        .map(|c| c.expect("chunk").len())
        .sum();
    assert_eq!(total, 10 * 1024 * 1024, "all 10 MB");
    // ... and a smaller limit refuses it with a clear error.
    let mut c = config(&url);
    c.max_log_bytes = 1024 * 1024;
    let err = provider(c)
        .container_logs("ns", "big", "c", &LogOptions::default())
        .await
        .err()
        .expect("too large");
    assert!(err.to_string().contains("exceeds 1048576 bytes"), "{err}");
    // v1 has no exec.
    let io = ExecIo {
        stdin: None,
        stdout: None,
        stderr: None,
        tty: false,
        resize: None,
    };
    let err = p
        .exec("ns", "a", "c", vec!["true".into()], io)
        .await
        .expect_err("v1");
    assert_eq!(err.kind(), ErrorKind::NotImplemented);
}

#[tokio::test]
async fn ping_follows_the_bridge_ready_condition_and_reachability() {
    let ready = Arc::new(Mutex::new(false));
    let flag = ready.clone();
    let (url, _) = serve(move |_, _| {
        let status = if *flag.lock().expect("lock") { "True" } else { "False" };
        Reply::json(serde_json::json!([{
            "type": "Ready", "status": status, "reason": "BackendDown", "message": "the cloud is gone"
        }]))
    })
    .await;
    let p = provider(config(&url));
    let err = p.ping().await.expect_err("not ready");
    assert!(
        err.to_string().contains("BackendDown") && err.to_string().contains("the cloud is gone"),
        "{err}"
    );
    *ready.lock().expect("lock") = true;
    p.ping().await.expect("ready");

    // Nobody listening.
    let port = vk_testkit::free_port().expect("port");
    let mut c = config(&format!("http://127.0.0.1:{port}"));
    c.max_attempts = 1;
    let err = provider(c).ping().await.expect_err("down");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[tokio::test]
async fn auto_negotiation_treats_a_404_capabilities_route_as_v1() {
    let (url, seen) = serve(|req, _| match req.path.as_str() {
        "/v2/capabilities" => Reply::raw(StatusCode::NOT_FOUND, "404 page not found"),
        _ => Reply::json(serde_json::json!({"version": 2, "features": ["watch"]})),
    })
    .await;
    let p = provider(WebConfig::new(&url));
    assert_eq!(p.protocol().await.expect("v1"), vk_web::Protocol::V1);
    // Remembered: asked once.
    assert_eq!(p.protocol().await.expect("v1"), vk_web::Protocol::V1);
    assert_eq!(seen.lock().expect("lock").len(), 1);

    let (url, _) =
        serve(|_, _| Reply::json(serde_json::json!({"version": 2, "features": ["watch", "logs"]})))
            .await;
    let p = provider(WebConfig::new(&url));
    let protocol = p.protocol().await.expect("v2");
    assert!(protocol.has("watch") && protocol.has("logs") && !protocol.has("exec"));

    // protocol = "v2" against a v1 bridge: a clear error.
    let (url, _) = serve(|_, _| Reply::raw(StatusCode::NOT_FOUND, "")).await;
    let mut c = WebConfig::new(&url);
    c.protocol = ProtocolChoice::V2;
    let err = provider(c).ping().await.expect_err("v1 bridge");
    assert!(err.to_string().contains("does not advertise v2"), "{err}");
}

#[tokio::test]
async fn v2_logs_pass_every_kubelet_option_and_stream() {
    let (url, seen) = serve(|req, _| match req.path.as_str() {
        "/v2/capabilities" => Reply::json(serde_json::json!({"version": 2, "features": ["logs"]})),
        _ => Reply::raw(StatusCode::OK, "2026-01-01T00:00:00Z a\n"),
    })
    .await;
    let p = provider(WebConfig::new(&url));
    let options = LogOptions {
        follow: true,
        tail_lines: Some(3),
        limit_bytes: Some(100),
        previous: true,
        since_seconds: Some(60),
        since_time: None,
        timestamps: true,
    };
    let stream = p
        .container_logs("ns", "a", "c", &options)
        .await
        .expect("logs");
    let body: Vec<u8> = futures::StreamExt::collect::<Vec<_>>(stream)
        .await
        .into_iter()
        .flat_map(|c| c.expect("chunk").to_vec())
        .collect();
    assert_eq!(body, b"2026-01-01T00:00:00Z a\n", "passed through as is");
    let since_time = LogOptions {
        since_time: Some("2026-01-01T00:00:00Z".parse().expect("time")),
        ..Default::default()
    };
    let _unread = p
        .container_logs("ns", "a", "c", &since_time)
        .await
        .expect("logs");
    let seen = seen.lock().expect("lock").clone();
    let queries: Vec<&str> = seen
        .iter()
        .filter(|s| s.path == "/v2/logs")
        .map(|s| s.query.as_str())
        .collect();
    assert_eq!(
        queries,
        [
            "namespace=ns&pod=a&container=c&follow=true&previous=true&timestamps=true\
             &tailLines=3&limitBytes=100&sinceSeconds=60",
            "namespace=ns&pod=a&container=c&sinceTime=2026-01-01T00%3A00%3A00Z",
        ]
    );
}

#[tokio::test]
async fn v2_stats_fill_in_the_node_name_and_ping_uses_its_route() {
    let (url, seen) = serve(|req, _| match req.path.as_str() {
        "/v2/capabilities" => {
            Reply::json(serde_json::json!({"version": 2, "features": ["stats", "ping"]}))
        }
        "/v2/stats/summary" => Reply::json(serde_json::json!({
            "node": {"nodeName": ""},
            "pods": [{"podRef": {"name": "a", "namespace": "ns", "uid": "u"}, "containers": []}]
        })),
        "/v2/ping" => Reply::json(serde_json::json!({"ok": true})),
        _ => Reply::raw(StatusCode::NOT_FOUND, ""),
    })
    .await;
    let p = provider(WebConfig::new(&url));
    let summary = vk_core::stats::StatsProvider::stats_summary(&p)
        .await
        .expect("stats");
    assert_eq!(summary.node.node_name, "web-node");
    assert_eq!(summary.pods[0].pod_ref.name, "a");
    p.ping().await.expect("ping");
    let paths: Vec<String> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(paths, ["/v2/capabilities", "/v2/stats/summary", "/v2/ping"]);
}
