//! Events recorded on pods and nodes, with upstream virtual-kubelet's reasons.
//!
//! Publishing never blocks a controller: events go through a bounded channel to one
//! background task that publishes them with kube-runtime's [`Recorder`] (which also
//! aggregates repeats into series). If the channel is full, events are dropped with a
//! log line rather than slowing pod sync down.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

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

/// A handle to the background event publisher; cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: Option<mpsc::Sender<(ObjectReference, Event)>>,
}

impl EventSink {
    /// Starts a publisher reporting as `virtual-kubelet` from instance `node_name`.
    /// Must be called inside a Tokio runtime; the task ends when every sink is dropped.
    pub fn start(client: Client, node_name: &str) -> Self {
        let (tx, mut rx) = mpsc::channel::<(ObjectReference, Event)>(QUEUE);
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "virtual-kubelet".into(),
                instance: Some(node_name.to_owned()),
            },
        );
        tokio::spawn(async move {
            while let Some((reference, event)) = rx.recv().await {
                if let Err(e) = recorder.publish(&event, &reference).await {
                    tracing::debug!(reason = %event.reason, error = %e, "publishing event failed");
                }
            }
        });
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
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if tx.try_send((object, event)).is_err() {
            tracing::warn!(reason, "event queue full; dropping event");
        }
    }
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
