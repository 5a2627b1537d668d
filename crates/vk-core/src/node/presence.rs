//! Learning within milliseconds that a Node was deleted or replaced: one metadata-only
//! Node watch per process, routed to each node controller as a [`NodePresence`].
//!
//! # Why this matters
//!
//! kube-controller-manager's pod garbage collector deletes every pod bound to a node
//! that has been missing for its 40 s quarantine (it looks every 20 s). If an admin (or
//! a clean-up script, or a cluster autoscaler) deletes the Node object of a virtual
//! node, the node controller must have it back well within that window, or the pods
//! disappear from the API while the provider keeps running them. The Lease renewal
//! (every 10 s) and the status write (every minute) do notice a deleted Node, but late;
//! a watch delivers the deletion at once.
//!
//! # Decision: one watch per process, metadata only, selected as narrowly as possible
//!
//! [`Fleet`](crate::runtime::Fleet) runs up to thousands of nodes over one client, and
//! that client speaks HTTP/1.1: every watch holds a connection of its own and a watcher
//! in the API server. So:
//!
//! - **One watch for the whole fleet**, not one per node: 1,000 per-node watches would
//!   mean 1,000 connections from one process and 1,000 watchers in the API server; one
//!   watch costs one of each, whatever the fleet's size.
//! - **Selected as narrowly as the fleet allows** ([`watch_config`]): a single node
//!   watches `metadata.name=<node>`; a fleet watches the label every node of it carries
//!   (`type=virtual-kubelet` by default), so other nodes of the cluster (kubelets, whose
//!   status changes often) never reach us; without a shared label it watches all Nodes
//!   and drops the ones it does not route. Field selectors cannot express "one of these
//!   names", so a fleet sees the other virtual nodes of the cluster too; they are
//!   dropped on arrival.
//! - **Metadata only** (`PartialObjectMeta<Node>`): the controller needs a name and a
//!   UID, not the status; each event is a fraction of a full Node.
//!
//! Each status write of ours comes back as one event; for 1,000 nodes writing every
//! minute that is about 17 small events a second, dropped without waking a controller
//! unless the UID changed.
//!
//! The watch is the fast path, not the only one: if it is down (or a Node stops
//! matching its label selector), the controller still learns of a deletion from a
//! status write answered 404 or a Lease renewal finding the Lease gone or owned by
//! another UID (see [`LeaseKeeper`](super::LeaseKeeper)), within one renew interval.

use std::collections::{HashMap, HashSet};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::template::{NodeTemplate, keys};

/// What the Node watch last saw of one node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodePresence {
    /// Nothing seen yet.
    #[default]
    Unknown,
    /// The Node exists with this UID.
    Present {
        /// The Node's `metadata.uid`.
        uid: String,
    },
    /// The Node was deleted, or is not in the watch's listing (or no longer matches its
    /// selector). Every such observation notifies the controller, even when the last
    /// one was `Absent` too.
    Absent,
}

impl NodePresence {
    /// Whether this observation contradicts a Node we registered with `uid`: it is
    /// gone, or a Node of another UID took its name.
    pub fn contradicts(&self, uid: &str) -> bool {
        match self {
            Self::Unknown => false,
            Self::Present { uid: seen } => seen != uid,
            Self::Absent => true,
        }
    }
}

/// The watch configuration for a process running the nodes of `templates` (see the
/// [module docs](self) for the choice).
///
/// ```
/// use vk_core::node::{NodeTemplate, presence::watch_config};
/// let one = NodeTemplate::new("vk-1", "mock");
/// assert_eq!(watch_config([&one]).field_selector.as_deref(), Some("metadata.name=vk-1"));
/// let two = NodeTemplate::new("vk-2", "mock");
/// assert_eq!(watch_config([&one, &two]).label_selector.as_deref(), Some("type=virtual-kubelet"));
/// ```
pub fn watch_config<'a>(templates: impl IntoIterator<Item = &'a NodeTemplate>) -> watcher::Config {
    let templates: Vec<&NodeTemplate> = templates.into_iter().collect();
    let config = watcher::Config::default();
    match templates.as_slice() {
        [] => config,
        [one] => config.fields(&format!("metadata.name={}", one.name)),
        [first, rest @ ..] => match first.labels.get(keys::TYPE) {
            Some(value) if rest.iter().all(|t| t.labels.get(keys::TYPE) == Some(value)) => {
                config.labels(&format!("{}={value}", keys::TYPE))
            }
            _ => config,
        },
    }
}

/// Routes Node watch events to the presence channel of the node they are about.
#[derive(Debug)]
pub struct PresenceRouter {
    routes: HashMap<String, watch::Sender<NodePresence>>,
    /// Names seen since the last `Init` (a relist).
    listed: HashSet<String>,
}

impl PresenceRouter {
    /// A router over `routes` (node name → that node's presence channel).
    pub fn new(routes: HashMap<String, watch::Sender<NodePresence>>) -> Self {
        Self {
            routes,
            listed: HashSet::new(),
        }
    }

    /// Applies one watch event. A relist (`Init` … `InitDone`) that does not list a
    /// routed node reports it [`NodePresence::Absent`]: the deletion may have happened
    /// while the watch was down.
    pub fn apply(&mut self, event: watcher::Event<PartialObjectMeta<Node>>) {
        match event {
            watcher::Event::Init => self.listed.clear(),
            watcher::Event::InitApply(meta) => {
                if let Some(name) = meta.metadata.name.as_deref() {
                    self.listed.insert(name.to_owned());
                }
                self.present(&meta);
            }
            watcher::Event::InitDone => {
                for (name, tx) in &self.routes {
                    if !self.listed.contains(name) {
                        tx.send_replace(NodePresence::Absent);
                    }
                }
                self.listed.clear();
            }
            watcher::Event::Apply(meta) => self.present(&meta),
            watcher::Event::Delete(meta) => {
                if let Some(tx) = self.route(&meta) {
                    tx.send_replace(NodePresence::Absent);
                }
            }
        }
    }

    fn route(&self, meta: &PartialObjectMeta<Node>) -> Option<&watch::Sender<NodePresence>> {
        self.routes.get(meta.metadata.name.as_deref()?)
    }

    /// Reports the Node present; wakes the controller only when the UID changed.
    fn present(&self, meta: &PartialObjectMeta<Node>) {
        let Some(tx) = self.route(meta) else { return };
        let uid = meta.metadata.uid.clone().unwrap_or_default();
        tx.send_if_modified(|seen| match seen {
            NodePresence::Present { uid: known } if *known == uid => false,
            _ => {
                *seen = NodePresence::Present { uid };
                true
            }
        });
    }
}

/// Watches Nodes with `config` and routes what it sees to `routes` (node name → that
/// node's presence channel) until `shutdown`; restarts with backoff after errors.
pub async fn watch_presence(
    client: Client,
    config: watcher::Config,
    routes: HashMap<String, watch::Sender<NodePresence>>,
    shutdown: CancellationToken,
) {
    let api: Api<PartialObjectMeta<Node>> = Api::all(client);
    let stream = watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut router = PresenceRouter::new(routes);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = stream.next() => e,
        };
        match event {
            None => return,
            Some(Ok(event)) => router.apply(event),
            Some(Err(e)) => warn!(
                error = %e,
                "node watch failed; retrying with backoff (lease renewals still notice a deleted node)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;
    use kube::core::PartialObjectMetaExt as _;

    use super::*;

    fn meta(name: &str, uid: &str) -> PartialObjectMeta<Node> {
        ObjectMeta {
            name: Some(name.into()),
            uid: Some(uid.into()),
            ..Default::default()
        }
        .into_response_partial()
    }

    fn router(names: &[&str]) -> (PresenceRouter, Vec<watch::Receiver<NodePresence>>) {
        let mut routes = HashMap::new();
        let mut receivers = Vec::new();
        for name in names {
            let (tx, rx) = watch::channel(NodePresence::Unknown);
            routes.insert((*name).to_owned(), tx);
            receivers.push(rx);
        }
        (PresenceRouter::new(routes), receivers)
    }

    fn present(uid: &str) -> NodePresence {
        NodePresence::Present { uid: uid.into() }
    }

    #[test]
    fn a_deleted_node_is_reported_absent_and_its_successor_present() {
        let (mut r, mut rx) = router(&["a"]);
        r.apply(watcher::Event::Apply(meta("a", "u1")));
        assert!(rx[0].has_changed().expect("open"));
        assert_eq!(*rx[0].borrow_and_update(), present("u1"));
        r.apply(watcher::Event::Delete(meta("a", "u1")));
        assert!(rx[0].has_changed().expect("open"));
        assert_eq!(*rx[0].borrow_and_update(), NodePresence::Absent);
        r.apply(watcher::Event::Apply(meta("a", "u2")));
        assert_eq!(*rx[0].borrow_and_update(), present("u2"));
    }

    #[test]
    fn status_updates_of_the_same_node_do_not_wake_the_controller() {
        let (mut r, mut rx) = router(&["a"]);
        r.apply(watcher::Event::Apply(meta("a", "u1")));
        rx[0].borrow_and_update();
        r.apply(watcher::Event::Apply(meta("a", "u1")));
        r.apply(watcher::Event::Apply(meta("a", "u1")));
        assert!(!rx[0].has_changed().expect("open"));
    }

    #[test]
    fn every_absence_wakes_the_controller_even_twice_in_a_row() {
        let (mut r, mut rx) = router(&["a"]);
        r.apply(watcher::Event::Delete(meta("a", "u1")));
        rx[0].borrow_and_update();
        // The watch missed the successor's creation and deletion; a relist without the
        // node must still wake the controller.
        r.apply(watcher::Event::Init);
        r.apply(watcher::Event::InitDone);
        assert!(rx[0].has_changed().expect("open"));
        assert_eq!(*rx[0].borrow_and_update(), NodePresence::Absent);
    }

    #[test]
    fn a_relist_reports_unlisted_nodes_absent_and_listed_ones_present() {
        let (mut r, mut rx) = router(&["a", "b"]);
        r.apply(watcher::Event::Apply(meta("a", "u1")));
        r.apply(watcher::Event::Apply(meta("b", "u2")));
        for x in &mut rx {
            x.borrow_and_update();
        }
        r.apply(watcher::Event::Init);
        r.apply(watcher::Event::InitApply(meta("a", "u1")));
        r.apply(watcher::Event::InitApply(meta("other", "u9")));
        r.apply(watcher::Event::InitDone);
        assert!(!rx[0].has_changed().expect("open"), "a is unchanged");
        assert_eq!(*rx[1].borrow_and_update(), NodePresence::Absent);
        // The next relist starts from scratch.
        r.apply(watcher::Event::Init);
        r.apply(watcher::Event::InitApply(meta("b", "u3")));
        r.apply(watcher::Event::InitDone);
        assert_eq!(*rx[0].borrow_and_update(), NodePresence::Absent);
        assert_eq!(*rx[1].borrow_and_update(), present("u3"));
    }

    #[test]
    fn events_about_unrouted_nodes_are_dropped() {
        let (mut r, rx) = router(&["a"]);
        r.apply(watcher::Event::Apply(meta("kubelet-1", "k")));
        r.apply(watcher::Event::Delete(meta("kubelet-1", "k")));
        assert!(!rx[0].has_changed().expect("open"));
    }

    #[test]
    fn presence_contradicts_only_a_missing_or_replaced_node() {
        assert!(!NodePresence::Unknown.contradicts("u1"));
        assert!(!present("u1").contradicts("u1"));
        assert!(present("u2").contradicts("u1"));
        assert!(NodePresence::Absent.contradicts("u1"));
    }

    #[test]
    fn the_watch_is_as_narrow_as_the_fleet_allows() {
        let a = NodeTemplate::new("a", "mock");
        let b = NodeTemplate::new("b", "mock");
        let c = watch_config([&a]);
        assert_eq!(c.field_selector.as_deref(), Some("metadata.name=a"));
        assert_eq!(c.label_selector, None);
        let c = watch_config([&a, &b]);
        assert_eq!(c.label_selector.as_deref(), Some("type=virtual-kubelet"));
        assert_eq!(c.field_selector, None);
        let mut odd = NodeTemplate::new("c", "mock");
        odd.labels.remove(keys::TYPE);
        let c = watch_config([&a, &b, &odd]);
        assert_eq!((c.label_selector, c.field_selector), (None, None));
    }
}
