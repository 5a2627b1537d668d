//! Pieces of an in-process v1 bridge (axum) shared by the tests that count what the
//! provider asks of it: pod keys, a running status, and the update and delete routes
//! over any store that holds the pods by key.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// A pod's `(namespace, name)`.
pub type Key = (String, String);

/// The pod IP every running pod of these bridges reports.
pub const POD_IP: &str = "10.9.0.1";

/// A bridge's state: at least its pods by key.
pub trait PodStore: Send + 'static {
    /// The stored pods (with their status).
    fn pods(&mut self) -> &mut BTreeMap<Key, serde_json::Value>;
}

/// The `(namespace, name)` of a pod sent by the provider.
pub fn key_of(pod: &serde_json::Value) -> Key {
    let field = |f: &str| pod["metadata"][f].as_str().unwrap_or_default().to_owned();
    (field("namespace"), field("name"))
}

/// `pod` with a Running status: every container running and ready, [`POD_IP`].
pub fn running(mut pod: serde_json::Value) -> serde_json::Value {
    let containers: Vec<serde_json::Value> = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            serde_json::json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": true,
                "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
        })
        .collect();
    pod["status"] = serde_json::json!({
        "phase": "Running", "podIP": POD_IP,
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
        "containerStatuses": containers,
    });
    pod
}

/// `PUT /updatePod`: replaces the spec, keeps the status; 404 for an unknown pod.
pub async fn update<S: PodStore>(State(s): State<Arc<Mutex<S>>>, body: Bytes) -> Response {
    let pod: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut store = s.lock().expect("lock");
    match store.pods().get_mut(&key_of(&pod)) {
        Some(old) => {
            let status = old["status"].clone();
            *old = pod;
            old["status"] = status;
            StatusCode::OK.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `DELETE /deletePod`: removes the pod; 404 for an unknown pod.
pub async fn remove<S: PodStore>(State(s): State<Arc<Mutex<S>>>, body: Bytes) -> Response {
    let pod: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match s.lock().expect("lock").pods().remove(&key_of(&pod)) {
        Some(_) => StatusCode::OK.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `router` with the node routes: a fixed capacity (4 CPUs, 100 pods), no conditions,
/// no addresses.
pub fn with_node_routes<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
) -> axum::Router<S> {
    router
        .route(
            "/capacity",
            get(|| async { axum::Json(serde_json::json!({"cpu": "4", "pods": "100"})) }),
        )
        .route(
            "/nodeConditions",
            get(|| async { axum::Json(serde_json::json!([])) }),
        )
        .route(
            "/nodeAddresses",
            get(|| async { axum::Json(serde_json::json!([])) }),
        )
}
