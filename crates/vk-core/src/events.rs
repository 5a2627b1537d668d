//! Events recorded on pods and nodes, with upstream virtual-kubelet's reasons.
//!
//! Publishing never blocks a controller: events go through a bounded channel to one
//! background task that publishes them as `events.k8s.io/v1` Events. If the channel is
//! full, events are dropped with a log line rather than slowing pod sync down.
//!
//! A repeat of an event (same object, type, reason and action) within six minutes of
//! the last one is counted in the same Event's `series` rather than creating another,
//! as upstream's recorder does. The open series are kept in a cache bounded by age and
//! by size ([`SERIES_TTL`], [`SERIES_LIMIT`]) and swept while the node is idle, so
//! that pod churn cannot make it grow.

mod series;

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

use series::{SeriesCache, SeriesKey};

/// Event reasons for provider operations (as upstream names them).
pub mod reasons {
    /// The provider created the pod.
    pub const PROVIDER_CREATE_SUCCESS: &str = "ProviderCreateSuccess";
    /// The provider failed to create the pod.
    pub const PROVIDER_CREATE_FAILED: &str = "ProviderCreateFailed";
    /// The provider updated the pod.
    pub const PROVIDER_UPDATE_SUCCESS: &str = "ProviderUpdateSuccess";
    /// The provider failed to update the pod.
    pub const PROVIDER_UPDATE_FAILED: &str = "ProviderUpdateFailed";
    /// The provider deleted the pod.
    pub const PROVIDER_DELETE_SUCCESS: &str = "ProviderDeleteSuccess";
    /// The provider failed to delete the pod.
    pub const PROVIDER_DELETE_FAILED: &str = "ProviderDeleteFailed";
    /// Pod status `reason` while the provider fails to run the pod.
    pub const PROVIDER_FAILED: &str = "ProviderFailed";
    /// Node condition reason while the provider's ping fails.
    pub const PROVIDER_PING_FAILED: &str = "ProviderPingFailed";
}

/// How many events may wait for publication before new ones are dropped.
const QUEUE: usize = 4096;

/// How long a series stays open after its last event (upstream's recorder: 6 min).
pub const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// How many open series are remembered (client-go's event cache holds 4096); past it
/// the least recently seen is forgotten, and its next repeat starts a new Event.
pub const SERIES_LIMIT: usize = 4096;

/// How often expired series are dropped while no event arrives.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The reporting controller of every event.
const CONTROLLER: &str = "virtual-kubelet";

/// An event waiting for publication.
#[derive(Debug)]
struct Pending {
    object: ObjectReference,
    warning: bool,
    reason: String,
    action: String,
    note: String,
}

/// A handle to the background event publisher; cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: Option<mpsc::Sender<Pending>>,
}

impl EventSink {
    /// Starts a publisher reporting as `virtual-kubelet` from instance `node_name`.
    /// Must be called inside a Tokio runtime; the task ends when every sink is dropped.
    pub fn start(client: Client, node_name: &str) -> Self {
        let (tx, rx) = mpsc::channel::<Pending>(QUEUE);
        let mut publisher = Publisher::new(client, node_name);
        tokio::spawn(async move { publisher.run(rx).await });
        Self { tx: Some(tx) }
    }

    /// A sink that drops everything (tests, or events disabled).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Records an event about `object`.
    pub fn record(
        &self,
        object: ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        let Some(tx) = &self.tx else {
            return;
        };
        let mut note = note.into();
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let pending = Pending {
            object,
            warning,
            reason: reason.to_owned(),
            action: action.to_owned(),
            note,
        };
        if tx.try_send(pending).is_err() {
            tracing::warn!(reason, "event queue full; dropping event");
        }
    }
}

/// Publishes events one at a time, folding repeats into series.
struct Publisher {
    client: Client,
    instance: String,
    series: SeriesCache,
}

impl Publisher {
    fn new(client: Client, instance: &str) -> Self {
        Self {
            client,
            instance: instance.to_owned(),
            series: SeriesCache::new(SERIES_TTL, SERIES_LIMIT),
        }
    }

    /// Publishes what arrives on `rx` until every sender is gone; drops expired series
    /// while idle.
    async fn run(&mut self, mut rx: mpsc::Receiver<Pending>) {
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(pending) => self.publish(pending).await,
                    None => return,
                },
                // Armed only while a series is open: an idle node's sink never wakes.
                _ = sweep.tick(), if !self.series.is_empty() => self.series.evict_expired(now()),
            }
        }
    }

    /// Patches the open series of `pending`, or creates a new Event.
    async fn publish(&mut self, pending: Pending) {
        let key = SeriesKey::new(
            &pending.object,
            pending.warning,
            &pending.reason,
            &pending.action,
        );
        let namespace = pending.object.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        if let Some((name, count)) = self.series.repeat(&key, now()) {
            let patch = serde_json::json!({
                "series": EventSeries {
                    count,
                    last_observed_time: MicroTime(Timestamp::now()),
                }
            });
            match events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return,
                Err(e) => {
                    // Gone (events expire in the API server) or refused: start anew.
                    tracing::debug!(reason = %pending.reason, error = %e, "patching event series failed");
                    self.series.close(&key);
                }
            }
        }
        let event = self.event(&pending);
        let name = event.metadata.name.clone().unwrap_or_default();
        match events.create(&PostParams::default(), &event).await {
            Ok(_) => self.series.open(key, name, now()),
            Err(e) => {
                tracing::debug!(reason = %pending.reason, error = %e, "publishing event failed");
            }
        }
    }

    /// A new Event for `pending`, named after its object and the time.
    fn event(&self, pending: &Pending) -> K8sEvent {
        let at = Timestamp::now();
        let object_name = pending.object.name.as_deref().unwrap_or(CONTROLLER);
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{object_name}.{:x}", at.as_nanosecond())),
                namespace: Some(
                    pending
                        .object
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".to_owned()),
                ),
                ..Default::default()
            },
            event_time: Some(MicroTime(at)),
            action: Some(pending.action.clone()),
            reason: Some(pending.reason.clone()),
            note: Some(pending.note.clone()),
            regarding: Some(pending.object.clone()),
            reporting_controller: Some(CONTROLLER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if pending.warning { "Warning" } else { "Normal" }.to_owned()),
            ..Default::default()
        }
    }
}

/// The cache's clock (Tokio's, so that tests can pause it).
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// An object reference to a pod.
pub fn pod_ref(pod: &k8s_openapi::api::core::v1::Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: None,
        field_path: None,
    }
}

/// An object reference to a node (node events live in the `default` namespace).
pub fn node_ref(name: &str, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.to_owned()),
        namespace: None,
        uid,
        resource_version: None,
        field_path: None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http_body_util::BodyExt as _;

    use super::*;

    /// Requests the fake API server received: method, path and JSON body.
    type Calls = Arc<Mutex<Vec<(http::Method, String, serde_json::Value)>>>;

    /// A client whose API server accepts every request and notes it.
    fn recording_client() -> (Client, Calls) {
        let calls = Calls::default();
        let noted = calls.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let noted = noted.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.expect("request body").to_bytes();
                let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
                noted.lock().expect("calls").push((
                    parts.method,
                    parts.uri.path().to_owned(),
                    json,
                ));
                let answer = serde_json::json!({
                    "apiVersion": "events.k8s.io/v1",
                    "kind": "Event",
                    "metadata": {"name": "answer", "namespace": "ns"}
                });
                let response = http::Response::builder()
                    .status(201)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(answer.to_string().into_bytes()))
                    .expect("response");
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        (Client::new(service, "default"), calls)
    }

    fn pending(pod: &str, reason: &str) -> Pending {
        Pending {
            object: pod_ref(&k8s_openapi::api::core::v1::Pod {
                metadata: ObjectMeta {
                    name: Some(pod.to_owned()),
                    namespace: Some("ns".to_owned()),
                    uid: Some(format!("uid-{pod}")),
                    ..Default::default()
                },
                ..Default::default()
            }),
            warning: false,
            reason: reason.to_owned(),
            action: "Sync".to_owned(),
            note: format!("{reason} {pod}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeat_patches_the_series_of_the_first_event() {
        let (client, calls) = recording_client();
        let mut publisher = Publisher::new(client, "node-1");
        publisher
            .publish(pending("a", "ProviderCreateFailed"))
            .await;
        publisher
            .publish(pending("a", "ProviderCreateFailed"))
            .await;
        publisher
            .publish(pending("a", "ProviderCreateFailed"))
            .await;
        let calls = calls.lock().expect("calls").clone();
        assert_eq!(calls.len(), 3);
        let (method, path, created) = &calls[0];
        assert_eq!(*method, http::Method::POST);
        assert_eq!(path, "/apis/events.k8s.io/v1/namespaces/ns/events");
        assert_eq!(created["reason"], "ProviderCreateFailed");
        assert_eq!(created["reportingController"], "virtual-kubelet");
        assert_eq!(created["reportingInstance"], "node-1");
        assert_eq!(created["regarding"]["uid"], "uid-a");
        assert_eq!(created["type"], "Normal");
        let name = created["metadata"]["name"].as_str().expect("a name");
        assert!(name.starts_with("a."), "{name}");
        for (i, (method, path, patch)) in calls[1..].iter().enumerate() {
            assert_eq!(*method, http::Method::PATCH);
            assert_eq!(
                *path,
                format!("/apis/events.k8s.io/v1/namespaces/ns/events/{name}")
            );
            assert_eq!(patch["series"]["count"], i + 2);
        }
    }

    /// 45 cycles of 100 pods created and deleted (the two events the pod controller
    /// records for each), faster than the TTL: the open series never exceed the limit,
    /// and an idle node drops them all once the TTL is over.
    #[tokio::test(start_paused = true)]
    async fn pod_churn_leaves_the_series_cache_bounded_and_an_idle_one_empty() {
        let (client, calls) = recording_client();
        let mut publisher = Publisher::new(client, "node-1");
        let mut peak = 0;
        for cycle in 0..45 {
            for reason in [
                reasons::PROVIDER_CREATE_SUCCESS,
                reasons::PROVIDER_DELETE_SUCCESS,
            ] {
                for i in 0..100 {
                    publisher
                        .publish(pending(&format!("p{cycle}-{i}"), reason))
                        .await;
                    peak = peak.max(publisher.series.len());
                }
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(
            calls.lock().expect("calls").len(),
            9000,
            "every event published"
        );
        assert_eq!(peak, SERIES_LIMIT, "bounded by the limit, not by the churn");

        // Idle: the running publisher's sweep empties the cache within a TTL.
        let (tx, rx) = mpsc::channel(QUEUE);
        let idle = async move {
            tokio::time::sleep(SERIES_TTL + SWEEP_INTERVAL).await;
            drop(tx);
        };
        let ((), publisher) = tokio::join!(idle, async move {
            publisher.run(rx).await;
            publisher
        });
        assert_eq!(publisher.series.len(), 0);
    }
}
