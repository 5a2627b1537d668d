//! Node status from the bridge: capacity and addresses read every
//! `node_status_interval` and pushed to the core when they change; the bridge's Ready
//! condition gates the node's (`GET /nodeConditions` is the ping of v1 bridges).

use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use vk_core::NodeStatusSink;

use crate::client::BridgeClient;
use crate::error::WebError;
use crate::provider::{Inner, pause};

/// How soon a failed read is tried again (when shorter than the interval).
const RETRY: Duration = Duration::from_secs(2);

/// `GET /nodeConditions`: healthy unless the bridge's `Ready` condition is not `True`
/// (no Ready condition at all counts as healthy: the bridge answered).
pub(crate) async fn ready_from_conditions(bridge: &BridgeClient) -> Result<(), WebError> {
    let conditions = bridge.node_conditions().await?;
    match conditions.into_iter().find(|c| c.type_ == "Ready") {
        Some(ready) if ready.status != "True" => Err(WebError::NotReady {
            status: ready.status,
            reason: ready.reason.unwrap_or_default(),
            message: ready.message.unwrap_or_default(),
        }),
        _ => Ok(()),
    }
}

/// What was last pushed.
#[derive(PartialEq)]
struct Pushed {
    capacity: BTreeMap<String, Quantity>,
    addresses: Vec<NodeAddress>,
}

/// The node status loop: runs while the provider exists.
pub(crate) async fn run(inner: Weak<Inner>, sink: NodeStatusSink) {
    let mut last: Option<Pushed> = None;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let interval = strong.bridge.config.node_status_interval;
        let wait = match read(&strong.bridge).await {
            Ok(now) => {
                if last.as_ref() != Some(&now) {
                    sink.notify(node_of(&now));
                    last = Some(now);
                }
                interval
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the node status from the bridge failed");
                interval.min(RETRY)
            }
        };
        drop(strong);
        if !pause(&inner, wait).await {
            return;
        }
    }
}

async fn read(bridge: &BridgeClient) -> Result<Pushed, WebError> {
    Ok(Pushed {
        capacity: bridge.capacity().await?,
        addresses: bridge.node_addresses().await?,
    })
}

fn node_of(pushed: &Pushed) -> Node {
    let mut status = NodeStatus::default();
    if !pushed.capacity.is_empty() {
        status.capacity = Some(pushed.capacity.clone());
        status.allocatable = Some(pushed.capacity.clone());
    }
    if !pushed.addresses.is_empty() {
        status.addresses = Some(pushed.addresses.clone());
    }
    Node {
        status: Some(status),
        ..Node::default()
    }
}
