//! Bad bridges on the real control plane: a v1 bridge (in this test process, axum)
//! answering 500s, answering after the call's timeout, or answering JSON that is not a
//! pod. Each failure is reported (event, pod status) and retried, and no pod is lost or
//! created twice in the bridge.

mod v1_bridge;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use k8s_openapi::api::core::v1::Pod;
use v1_bridge::{PodStore, key_of, remove, running, update};
use vk_core::ResourceAccess;
use vk_testkit::conformance::{Harness, Instance, Target};
use vk_testkit::wait::eventually;
use vk_web::config::ProtocolChoice;
use vk_web::{WebConfig, WebProvider};

/// What the bridge does wrong, switched by the tests.
#[derive(Default)]
struct Faults {
    /// Answer this many `createPod` calls with 500 (and do nothing).
    create_500s: u32,
    /// Store the pod, then answer `createPod` only after this long.
    create_delay: Option<Duration>,
    /// Answer `getPods` and `getPodStatus` with JSON of the wrong shape.
    malformed_reads: bool,
}

#[derive(Default)]
struct Store {
    pods: BTreeMap<(String, String), serde_json::Value>,
    faults: Faults,
    create_calls: u32,
    stored: u32,
}

type Shared = Arc<Mutex<Store>>;

impl PodStore for Store {
    fn pods(&mut self) -> &mut BTreeMap<v1_bridge::Key, serde_json::Value> {
        &mut self.pods
    }
}

async fn create(State(s): State<Shared>, body: Bytes) -> Response {
    let pod: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let delay = {
        let mut store = s.lock().expect("lock");
        store.create_calls += 1;
        if store.faults.create_500s > 0 {
            store.faults.create_500s -= 1;
            return (StatusCode::INTERNAL_SERVER_ERROR, "backend exploded").into_response();
        }
        let key = key_of(&pod);
        if store.pods.contains_key(&key) {
            return (StatusCode::CONFLICT, "exists").into_response();
        }
        store.pods.insert(key, running(pod));
        store.stored += 1;
        store.faults.create_delay.take()
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    StatusCode::CREATED.into_response()
}

async fn one(
    State(s): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
    status_only: bool,
) -> Response {
    let store = s.lock().expect("lock");
    if store.faults.malformed_reads {
        return axum::Json(serde_json::json!({"phase": ["not", "a", "phase"]})).into_response();
    }
    let key = (
        q.get("namespace").cloned().unwrap_or_default(),
        q.get("name").cloned().unwrap_or_default(),
    );
    match store.pods.get(&key) {
        Some(pod) if status_only => axum::Json(pod["status"].clone()).into_response(),
        Some(pod) => axum::Json(pod.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn list(State(s): State<Shared>) -> Response {
    let store = s.lock().expect("lock");
    if store.faults.malformed_reads {
        return axum::Json(serde_json::json!([{"metadata": {"name": 7}}])).into_response();
    }
    axum::Json(store.pods.values().cloned().collect::<Vec<_>>()).into_response()
}

fn bridge(store: Shared) -> axum::Router {
    v1_bridge::with_node_routes(axum::Router::new())
        .route("/createPod", post(create))
        .route("/updatePod", put(update::<Store>))
        .route("/deletePod", delete(remove::<Store>))
        .route(
            "/getPod",
            get(|s: State<Shared>, q: Query<BTreeMap<String, String>>| one(s, q, false)),
        )
        .route(
            "/getPodStatus",
            get(|s: State<Shared>, q: Query<BTreeMap<String, String>>| one(s, q, true)),
        )
        .route("/getPods", get(list))
        .with_state(store)
}

struct Faulty {
    store: Shared,
}

impl Target for Faulty {
    fn name(&self) -> &str {
        "web"
    }

    fn instantiate(&self, node_name: &str, _resources: ResourceAccess) -> Instance {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = bridge(self.store.clone());
        tokio::spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await
        });
        let mut config = WebConfig::new(url);
        config.protocol = ProtocolChoice::V1;
        config.status_poll_interval = Duration::from_millis(500);
        config.timeouts.create = Some(Duration::from_millis(500));
        config.max_attempts = 1;
        let provider = Arc::new(WebProvider::new(node_name, config).expect("provider"));
        Instance {
            pods: provider.clone(),
            node: Some(provider),
            inspect: None,
        }
    }
}

fn faulty() -> Faulty {
    Faulty {
        store: Arc::default(),
    }
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_reported_and_retried_and_the_pod_runs_once() {
    let target = faulty();
    target.store.lock().expect("lock").faults.create_500s = 3;
    let h = Harness::start(&target, "web-500").await;
    h.create_pod(&h.pod("flaky", serde_json::json!({}))).await;
    let event = h.wait_event("flaky", "ProviderCreateFailed").await;
    let note = event.message.unwrap_or_default();
    assert!(
        note.contains("500") && note.contains("backend exploded") && note.contains("/createPod"),
        "the event names the route and the bridge's answer: {note}"
    );
    let pod = h.wait_running("flaky").await;
    assert_eq!(
        pod.status.and_then(|s| s.pod_ip).as_deref(),
        Some(v1_bridge::POD_IP)
    );
    let store = target.store.lock().expect("lock");
    assert!(store.create_calls >= 4, "{} creates", store.create_calls);
    assert_eq!((store.stored, store.pods.len()), (1, 1), "created once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answered_after_the_timeout_is_not_duplicated() {
    let target = faulty();
    target.store.lock().expect("lock").faults.create_delay = Some(Duration::from_secs(5));
    let h = Harness::start(&target, "web-slow").await;
    h.create_pod(&h.pod("slow", serde_json::json!({}))).await;
    let event = h.wait_event("slow", "ProviderCreateFailed").await;
    let note = event.message.unwrap_or_default();
    assert!(note.contains("no response within"), "{note}");
    // The retry finds the pod in the bridge (409): success, not a second pod.
    h.wait_running("slow").await;
    let store = target.store.lock().expect("lock");
    assert!(store.create_calls >= 2, "{} creates", store.create_calls);
    assert_eq!((store.stored, store.pods.len()), (1, 1), "created once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_reads_lose_no_pod_and_status_resumes() {
    let target = faulty();
    let h = Harness::start(&target, "web-bad-json").await;
    h.create_pod(&h.pod("first", serde_json::json!({}))).await;
    h.wait_running("first").await;
    target.store.lock().expect("lock").faults.malformed_reads = true;
    h.create_pod(&h.pod("second", serde_json::json!({}))).await;
    // Created in the bridge; its status cannot be read yet.
    eventually("the second pod in the bridge", || {
        let n = target.store.lock().expect("lock").pods.len();
        async move { (n == 2).then_some(()) }
    })
    .await;
    let second = h.pods().get("second").await.expect("second");
    assert_ne!(phase(&second), Some("Running"));
    // The dangling-pod check cannot list the bridge: it deletes nothing.
    let first = h.pods().get("first").await.expect("first");
    assert_eq!(phase(&first), Some("Running"));
    target.store.lock().expect("lock").faults.malformed_reads = false;
    h.wait_running("second").await;
    let store = target.store.lock().expect("lock");
    assert_eq!((store.stored, store.pods.len()), (2, 2));
}
