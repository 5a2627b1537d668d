//! The node controller against an in-memory API server (Nodes and Leases only), in
//! paused time: how fast a deleted Node, a deleted Lease or a replaced Node is put
//! back, and that no Lease is ever created for a Node UID that is gone.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::Method;
use kube::Client;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::fake_api::status;
use crate::provider::NaiveNodeProvider;

const NODE: &str = "vk-test";

/// How often [`Fake::until`] looks (in paused time): the precision of its measure.
const POLL: Duration = Duration::from_millis(10);

/// The API server's state, and what was asked of it.
#[derive(Default)]
struct Cluster {
    nodes: BTreeMap<String, Value>,
    leases: BTreeMap<String, Value>,
    seq: u64,
    /// Owner UIDs of Leases created while no Node had that UID (finding 3 of issue 17).
    orphan_lease_creates: Vec<String>,
    node_creates: u32,
    /// Node creates still to refuse with a 500.
    failing_node_creates: u32,
    /// Lease writes that carried managedFields (the API server keeps its own when a
    /// write has none).
    lease_writes_with_managed_fields: u32,
    /// Lease merge patches (renewals).
    lease_patches: u32,
}

/// What the API server records of a write's field managers (as in its responses).
fn managed_fields() -> Value {
    json!([{"manager": "vk", "operation": "Update", "apiVersion": "coordination.k8s.io/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:holderIdentity": {}, "f:renewTime": {}}}}])
}

/// RFC 7386 merge patch (enough for the strategic status patch too: our lists replace).
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn lease_owner(lease: &Value) -> Option<String> {
    lease["metadata"]["ownerReferences"][0]["uid"]
        .as_str()
        .map(str::to_owned)
}

impl Cluster {
    fn stamp(&mut self, object: &mut Value, create: bool) {
        self.seq += 1;
        if create {
            object["metadata"]["uid"] = json!(format!("uid-{}", self.seq));
            object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        object["metadata"]["resourceVersion"] = json!(self.seq.to_string());
    }

    fn node_uid(&self) -> Option<String> {
        self.nodes
            .get(NODE)?
            .pointer("/metadata/uid")?
            .as_str()
            .map(str::to_owned)
    }

    fn lease_owner(&self) -> Option<String> {
        self.leases.get(NODE).and_then(lease_owner)
    }

    fn node_uid_exists(&self, uid: &str) -> bool {
        self.nodes
            .values()
            .any(|n| n["metadata"]["uid"].as_str() == Some(uid))
    }

    /// What the garbage collector does: delete Leases whose owner Node is gone.
    fn collect_garbage(&mut self) {
        let nodes: Vec<String> = self
            .nodes
            .values()
            .filter_map(|n| n["metadata"]["uid"].as_str().map(str::to_owned))
            .collect();
        self.leases
            .retain(|_, l| lease_owner(l).is_none_or(|o| nodes.contains(&o)));
    }

    fn handle(&mut self, method: &Method, path: &str, body: &[u8]) -> (u16, Value) {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::POST, ["api", "v1", "nodes"]) => {
                if self.failing_node_creates > 0 {
                    self.failing_node_creates -= 1;
                    return status(500, "InternalError", "injected");
                }
                self.node_creates += 1;
                self.create(true, body)
            }
            (m, ["api", "v1", "nodes", name]) => self.node(m, name, None, body),
            (m, ["api", "v1", "nodes", name, "status"]) => self.node(m, name, Some("status"), body),
            (&Method::POST, [.., "namespaces", "kube-node-lease", "leases"]) => {
                let owner = lease_owner(&body).unwrap_or_default();
                if !self.node_uid_exists(&owner) {
                    self.orphan_lease_creates.push(owner);
                }
                let mut body = body;
                body["metadata"]["managedFields"] = managed_fields();
                self.create(false, body)
            }
            (m, [.., "namespaces", "kube-node-lease", "leases", name]) => self.lease(m, name, body),
            _ => status(405, "MethodNotAllowed", path),
        }
    }

    fn create(&mut self, node: bool, mut object: Value) -> (u16, Value) {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let map = if node { &self.nodes } else { &self.leases };
        if map.contains_key(&name) {
            return status(409, "AlreadyExists", &name);
        }
        self.stamp(&mut object, true);
        let map = if node {
            &mut self.nodes
        } else {
            &mut self.leases
        };
        map.insert(name, object.clone());
        (201, object)
    }

    fn node(&mut self, m: &Method, name: &str, sub: Option<&str>, patch: Value) -> (u16, Value) {
        let Some(mut node) = self.nodes.get(name).cloned() else {
            return status(404, "NotFound", name);
        };
        match *m {
            Method::GET => (200, node),
            Method::PATCH => {
                let precondition = patch["metadata"]["resourceVersion"].as_str();
                if precondition
                    .is_some_and(|rv| Some(rv) != node["metadata"]["resourceVersion"].as_str())
                {
                    return status(409, "Conflict", name);
                }
                match sub {
                    Some("status") => merge(&mut node["status"], &patch["status"]),
                    _ => merge(&mut node, &patch),
                }
                self.stamp(&mut node, false);
                self.nodes.insert(name.to_owned(), node.clone());
                (200, node)
            }
            _ => status(405, "MethodNotAllowed", name),
        }
    }

    fn lease(&mut self, m: &Method, name: &str, mut body: Value) -> (u16, Value) {
        let existing = self.leases.get(name).cloned();
        match (m, existing) {
            (&Method::GET, Some(l)) => (200, l),
            (&Method::PUT, Some(l)) => {
                let same = |f: &str| body["metadata"][f] == l["metadata"][f];
                if !same("resourceVersion") || !same("uid") {
                    return status(409, "Conflict", name);
                }
                // As the API server: a write without managedFields keeps the live ones.
                if body["metadata"]["managedFields"].is_null() {
                    body["metadata"]["managedFields"] = l["metadata"]["managedFields"].clone();
                } else {
                    self.lease_writes_with_managed_fields += 1;
                }
                self.stamp(&mut body, false);
                self.leases.insert(name.to_owned(), body.clone());
                (200, body)
            }
            // A merge patch, its resourceVersion a precondition (as the API server).
            (&Method::PATCH, Some(mut l)) => {
                let rv = &body["metadata"]["resourceVersion"];
                if !rv.is_null() && *rv != l["metadata"]["resourceVersion"] {
                    return status(409, "Conflict", name);
                }
                if !body["metadata"]["managedFields"].is_null() {
                    self.lease_writes_with_managed_fields += 1;
                }
                self.lease_patches += 1;
                merge(&mut l, &body);
                self.stamp(&mut l, false);
                self.leases.insert(name.to_owned(), l.clone());
                (200, l)
            }
            // As the API server: a PUT naming a UID of a Lease that is gone fails the
            // UID precondition.
            (&Method::PUT, None) if body["metadata"]["uid"].is_string() => {
                status(409, "Conflict", "Precondition failed: UID in precondition")
            }
            _ => status(404, "NotFound", name),
        }
    }
}

#[derive(Clone)]
struct Fake(Arc<Mutex<Cluster>>);

impl Fake {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Cluster::default())))
    }

    fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.0.lock().expect("cluster lock")
    }

    fn client(&self) -> Client {
        let fake = self.clone();
        crate::fake_api::client(move |method, path, body| fake.lock().handle(method, path, body))
    }

    /// Waits (in paused time) until `done` holds; returns the time it took.
    async fn until(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Cluster) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            if done(&self.lock()) {
                return start.elapsed();
            }
            assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
            tokio::time::sleep(POLL).await;
        }
    }
}

struct Running {
    fake: Fake,
    presence: watch::Sender<NodePresence>,
    stats: Arc<NodeControllerStats>,
    config: NodeControllerConfig,
    shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a controller for [`NODE`] and waits until it registered the Node and its
/// Lease.
async fn start() -> Running {
    let fake = Fake::new();
    let mut template = NodeTemplate::new(NODE, "mock");
    template.capacity.insert("pods".into(), "110".into());
    template.internal_ip = Some("127.0.0.1".into());
    template.kubelet_port = 10333;
    template
        .annotations
        .insert("example.com/a".into(), "1".into());
    let config = NodeControllerConfig::default();
    let controller = NodeController::new(
        fake.client(),
        template,
        Arc::new(NaiveNodeProvider),
        config.clone(),
    );
    let (presence, rx) = watch::channel(NodePresence::Unknown);
    let stats = controller.stats();
    let shutdown = CancellationToken::new();
    let mut registered = controller.registered();
    let token = shutdown.clone();
    tokio::spawn(async move { controller.run(rx, token).await });
    registered
        .wait_for(|r| *r)
        .await
        .expect("the controller registers");
    let running = Running {
        fake,
        presence,
        stats,
        config,
        shutdown,
    };
    let uid = running.fake.lock().node_uid().expect("node created");
    assert_eq!(running.fake.lock().lease_owner(), Some(uid.clone()));
    running.presence.send_replace(NodePresence::Present { uid });
    running
}

/// The Node carries everything the controller owns.
fn assert_complete(node: &Value) {
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["type"], "virtual-kubelet", "{node}");
    assert_eq!(labels["kubernetes.io/hostname"], NODE);
    assert_eq!(node["metadata"]["annotations"]["example.com/a"], "1");
    assert_eq!(node["spec"]["taints"][0]["key"], keys::PROVIDER_TAINT);
    let status = &node["status"];
    assert_eq!(status["capacity"]["pods"], "110");
    assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10333);
    assert_eq!(status["addresses"][0]["address"], "127.0.0.1");
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .expect("a Ready condition");
    assert_eq!(ready["status"], "True");
}

#[tokio::test(start_paused = true)]
async fn a_node_deleted_under_the_watch_is_back_with_its_lease_long_before_the_next_renewal() {
    let r = start().await;
    let old = r.fake.lock().node_uid().expect("uid");
    let statuses_before = r.stats.status_updates.load(Ordering::Relaxed);
    r.fake.lock().nodes.remove(NODE);
    r.fake.lock().collect_garbage();
    r.presence.send_replace(NodePresence::Absent);
    let took = r
        .fake
        .until(
            "node re-created, lease owned by it",
            Duration::from_secs(5),
            |c| {
                let uid = c.node_uid();
                uid.is_some() && uid != Some(old.clone()) && c.lease_owner() == uid
            },
        )
        .await;
    assert!(
        took < r.config.lease_renew_interval,
        "re-created by the watch event, not by the renewal: {took:?}"
    );
    let stats = Arc::clone(&r.stats);
    r.fake
        .until(
            "status written to the new Node",
            Duration::from_secs(1),
            |_| stats.status_updates.load(Ordering::Relaxed) > statuses_before,
        )
        .await;
    assert_complete(&r.fake.lock().nodes[NODE]);
    assert_eq!(r.stats.recreations.load(Ordering::Relaxed), 1);
    assert!(r.fake.lock().orphan_lease_creates.is_empty());
}

#[tokio::test(start_paused = true)]
async fn without_the_watch_the_renewal_notices_and_never_creates_a_lease_for_the_gone_node() {
    let r = start().await;
    let old = r.fake.lock().node_uid().expect("uid");
    // The Node goes; the garbage collector takes the Lease a moment later.
    r.fake.lock().nodes.remove(NODE);
    tokio::time::sleep(Duration::from_millis(100)).await;
    r.fake.lock().collect_garbage();
    let took = r
        .fake
        .until(
            "node re-created, lease owned by it",
            Duration::from_secs(30),
            |c| {
                let uid = c.node_uid();
                uid.is_some() && uid != Some(old.clone()) && c.lease_owner() == uid
            },
        )
        .await;
    assert!(
        took <= r.config.lease_renew_interval + POLL,
        "noticed by the first renewal: {took:?}"
    );
    assert_eq!(
        r.fake.lock().orphan_lease_creates,
        Vec::<String>::new(),
        "a Lease was created for a Node UID that no longer existed"
    );
    assert_complete(&r.fake.lock().nodes[NODE]);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_lease_alone_is_recreated_within_one_renewal_for_the_same_node() {
    let r = start().await;
    let uid = r.fake.lock().node_uid();
    r.fake.lock().leases.remove(NODE);
    let took = r
        .fake
        .until("lease re-created", Duration::from_secs(30), |c| {
            c.lease_owner().is_some()
        })
        .await;
    assert!(took <= r.config.lease_renew_interval + POLL, "{took:?}");
    let c = r.fake.lock();
    assert_eq!(c.lease_owner(), uid, "owned by the same Node");
    assert_eq!(c.node_uid(), uid, "the Node was left alone");
    assert_eq!(c.node_creates, 1);
    assert_eq!(r.stats.recreations.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_lease_owned_by_another_uid_is_claimed_once_the_node_is_confirmed() {
    let r = start().await;
    let uid = r.fake.lock().node_uid();
    {
        let mut c = r.fake.lock();
        let lease = c.leases.get_mut(NODE).expect("lease");
        lease["metadata"]["ownerReferences"][0]["uid"] = json!("uid-of-an-old-node");
        lease["metadata"]["resourceVersion"] = json!("999");
    }
    r.fake
        .until(
            "lease owned by the Node again",
            Duration::from_secs(30),
            |c| c.lease_owner() == uid,
        )
        .await;
    assert_eq!(r.fake.lock().node_creates, 1, "the Node was not re-created");
}

#[tokio::test(start_paused = true)]
async fn a_node_replaced_by_someone_else_is_adopted_not_recreated() {
    let r = start().await;
    let new_uid = {
        let mut c = r.fake.lock();
        c.nodes.remove(NODE);
        c.collect_garbage();
        let (code, node) = c.create(true, json!({"metadata": {"name": NODE}}));
        assert_eq!(code, 201);
        node["metadata"]["uid"].as_str().map(str::to_owned)
    };
    r.presence.send_replace(NodePresence::Present {
        uid: new_uid.clone().expect("uid"),
    });
    r.fake
        .until("lease owned by the new Node", Duration::from_secs(1), |c| {
            c.lease_owner() == new_uid
        })
        .await;
    r.fake
        .until(
            "our metadata and status on it",
            Duration::from_secs(1),
            |c| c.nodes[NODE]["status"]["conditions"].is_array(),
        )
        .await;
    let c = r.fake.lock();
    assert_eq!(c.node_uid(), new_uid, "adopted, not re-created");
    assert_eq!(c.node_creates, 1);
    assert_complete(&c.nodes[NODE]);
    assert_eq!(r.stats.recreations.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_recreation_is_retried_with_backoff() {
    let r = start().await;
    let old = r.fake.lock().node_uid();
    {
        let mut c = r.fake.lock();
        c.failing_node_creates = 2;
        c.nodes.remove(NODE);
        c.collect_garbage();
    }
    r.presence.send_replace(NodePresence::Absent);
    let took = r
        .fake
        .until("node re-created", Duration::from_secs(30), |c| {
            c.node_uid().is_some_and(|u| Some(u) != old)
        })
        .await;
    // Attempts at 0, 0.5 s and 1.5 s (the watch gave the signal; backoff paced the
    // retries, not the renewal).
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(r.fake.lock().failing_node_creates, 0);
    r.fake
        .until("lease owned by the new Node", Duration::from_secs(1), |c| {
            c.lease_owner() == c.node_uid()
        })
        .await;
}

/// Renewals come at the node's phase: the first within one interval of the claim, then
/// every interval. They are merge patches of the spec, never carrying managedFields,
/// and the Lease keeps its managedFields (the API server keeps the live ones).
#[tokio::test(start_paused = true)]
async fn renewals_come_within_an_interval_then_every_interval() {
    let r = start().await;
    let interval = r.config.lease_renew_interval;
    let stats = Arc::clone(&r.stats);
    let renewals = move || stats.lease_renewals.load(Ordering::Relaxed);
    let claimed = renewals();
    let took = r
        .fake
        .until("first renewal", interval * 2, |_| renewals() > claimed)
        .await;
    assert!(took <= interval + 2 * POLL, "first renewal after {took:?}");
    let first = renewals();
    let took = r
        .fake
        .until("second renewal", interval * 2, |_| renewals() > first)
        .await;
    assert!(
        took + POLL >= interval && took <= interval + 2 * POLL,
        "{took:?}"
    );
    let c = r.fake.lock();
    assert_eq!(c.lease_patches, 2, "two renewals, two patches");
    assert_eq!(c.lease_writes_with_managed_fields, 0);
    assert!(c.leases[NODE]["metadata"]["managedFields"].is_array());
}
