//! Putting the Node and its Lease back after a sign that the Node was deleted or
//! replaced: the Node watch reporting it gone (or under another UID), a status write
//! answered 404, a Lease renewal finding the Lease gone or owned by another UID.
//!
//! A resync reads the Node, then
//! - re-creates it when it is gone (labels, annotations, taints and the full status
//!   with our conditions, in the create itself),
//! - adopts it when another Node of the same name took its place (our labels,
//!   annotations and taints merged in, as at a restart),
//! - re-applies our metadata when it went missing from the same Node,
//!
//! then claims the Lease for the Node's current UID (when the Node changed or the
//! Lease was the sign) and writes the full status. A failed resync is retried with
//! backoff, from 0.5 s doubling up to one Lease renew interval. Pods are not touched:
//! the pod controller watches pods by `spec.nodeName`, not the Node.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio::time::Instant;
use tracing::{info, warn};

use super::lease::{LeaseError, LeaseKeeper};
use super::{NodeController, State, bump};

/// What made the controller doubt the Node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// The Node watch or a status write: the Node may be gone or replaced.
    Node,
    /// The Lease renewal: the Lease is gone or owned by another UID, so it must be
    /// claimed even if the Node turns out unchanged.
    Lease,
}

/// A resync waiting to happen.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    /// When the first sign arrived.
    since: Instant,
    /// The Lease must be claimed whatever the Node looks like.
    lease: bool,
}

impl Pending {
    pub(super) fn new(cause: Cause) -> Self {
        Self {
            since: Instant::now(),
            lease: cause == Cause::Lease,
        }
    }

    pub(super) fn add(&mut self, cause: Cause) {
        self.lease |= cause == Cause::Lease;
    }
}

/// Backoff between failed resyncs.
#[derive(Debug)]
pub(super) struct Retry {
    initial: Duration,
    max: Duration,
    delay: Duration,
    at: Option<Instant>,
}

impl Retry {
    /// Backoff from 0.5 s (or `max` if shorter), doubling up to `max`.
    pub(super) fn new(max: Duration) -> Self {
        let initial = Duration::from_millis(500).min(max);
        Self {
            initial,
            max,
            delay: initial,
            at: None,
        }
    }

    /// Completes when a retry is due; never without a failed attempt.
    pub(super) async fn wait(&self) {
        match self.at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// Whether an attempt may be made now.
    pub(super) fn due(&self) -> bool {
        self.at.is_none_or(|at| Instant::now() >= at)
    }

    /// Returns the delay until the next attempt.
    fn failed(&mut self) -> Duration {
        let delay = self.delay;
        self.at = Some(Instant::now() + delay);
        self.delay = (self.delay * 2).min(self.max);
        delay
    }

    fn succeeded(&mut self) {
        self.delay = self.initial;
        self.at = None;
    }
}

/// Errors of one resync attempt.
#[derive(Debug, thiserror::Error)]
enum ResyncError {
    /// Reading the Node failed.
    #[error("reading node {name}: {source}")]
    ReadNode {
        /// The Node's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Creating the Node, or merging our metadata into it, failed.
    #[error("registering node {name}: {source}")]
    Register {
        /// The Node's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Claiming the Lease for the Node failed.
    #[error(transparent)]
    ClaimLease(#[from] LeaseError),
}

impl NodeController {
    /// Resyncs the Node and its Lease (see the [module docs](self)) if a resync is
    /// pending; on failure, schedules a retry in `retry`.
    pub(super) async fn resync(
        &self,
        nodes: &Api<Node>,
        state: &mut State,
        lease: &mut LeaseKeeper,
        retry: &mut Retry,
    ) {
        let Some(pending) = state.resync.clone() else {
            return;
        };
        match self.try_resync(nodes, state, lease, &pending).await {
            Ok(changed) => {
                state.resync = None;
                retry.succeeded();
                if changed {
                    self.write_status(nodes, state).await;
                    info!(
                        node = %state.template.name,
                        node.uid = %state.uid(),
                        elapsed_ms = pending.since.elapsed().as_millis(),
                        "node is back: created or adopted, lease claimed, status written"
                    );
                }
            }
            Err(e) => {
                let delay = retry.failed();
                warn!(node = %state.template.name, error = %e, retry_in = ?delay, "restoring the node failed");
            }
        }
    }

    /// One attempt; returns whether the Node changed (re-created or adopted).
    async fn try_resync(
        &self,
        nodes: &Api<Node>,
        state: &mut State,
        lease: &mut LeaseKeeper,
        pending: &Pending,
    ) -> Result<bool, ResyncError> {
        let name = state.template.name.clone();
        let known = state.uid();
        let found = nodes
            .get_opt(&name)
            .await
            .map_err(|source| ResyncError::ReadNode {
                name: name.clone(),
                source,
            })?;
        let found_uid = found.as_ref().and_then(|n| n.metadata.uid.clone());
        let changed = found_uid.as_deref() != Some(known.as_str());
        let applied = found.as_ref().is_some_and(|n| {
            super::ownership::is_applied(n, &super::ownership::desired(&state.template))
        });
        match (&found_uid, changed) {
            (None, _) => {
                warn!(node = %name, node.uid = %known, "the node was deleted; re-creating it")
            }
            (Some(new), true) => warn!(
                node = %name,
                node.uid = %known,
                new_uid = %new,
                "the node was replaced by another Node of the same name; adopting it"
            ),
            (Some(_), false) if !applied => info!(
                node = %name,
                "our labels, annotations or taints are missing from the node; re-applying them"
            ),
            (Some(_), false) => {}
        }
        if changed || !applied {
            if changed {
                // A new Node: its conditions start with fresh transition times.
                state.current = None;
                lease.reset();
            }
            self.register(nodes, state)
                .await
                .map_err(|source| ResyncError::Register { name, source })?;
        } else {
            state.current = found;
        }
        if changed || pending.lease {
            lease.claim(&state.uid()).await?;
            self.lease_renewed();
        }
        if changed {
            bump(&self.stats.recreations);
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_up_to_the_cap_and_reset_after_success() {
        let mut r = Retry::new(Duration::from_secs(2));
        assert!(r.due(), "the first attempt is immediate");
        let delays: Vec<Duration> = (0..4).map(|_| r.failed()).collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 2000].map(Duration::from_millis).to_vec()
        );
        assert!(!r.due());
        let start = Instant::now();
        r.wait().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(r.due());
        r.succeeded();
        assert_eq!(r.failed(), Duration::from_millis(500));
    }

    #[test]
    fn a_lease_sign_is_kept_whatever_comes_after() {
        let mut p = Pending::new(Cause::Node);
        assert!(!p.lease);
        p.add(Cause::Lease);
        p.add(Cause::Node);
        assert!(p.lease);
    }
}
