//! `--leader-elect`: replicas of one deployment elect a leader per virtual node
//! ([`vk_core::election`]), and only the leader drives the node.
//!
//! Every replica builds its nodes (provider, controllers) at start, but a node is run —
//! registered, heartbeated, its pods watched, reconciled and synced, its kubelet API
//! served — only once this replica holds the node's election Lease
//! (`<lease namespace>/<node name>`). A standby writes nothing but its attempts on the
//! election Lease.
//!
//! **The kubelet API is served by the leader only.** The API server reaches a node's
//! kubelet API at the address and port in the Node's status, which the leader's node
//! controller writes when it takes the node over (its own `--node-ip`); a standby has
//! no pod controller state for the node (`/pods` would be empty) and must not act on
//! its pods (exec, attach). Its port is opened when it takes the node over (a port that
//! is taken then fails the process, as it would at start without election).
//!
//! On losing a Lease (not renewed within the renew deadline, or taken over) the node's
//! work is cancelled at once, the other nodes are shut down gracefully (their Leases
//! released) and the process exits with an error: a restarted process comes back as a
//! standby with a fresh identity. On SIGTERM every Lease is released after its node
//! stopped, so that a standby takes over within one retry period.

use std::sync::Arc;

use tracing::{error, info};
use vk_core::election::{ElectionConfig, LeaderElector, Term, default_identity};
use vk_core::runtime::VirtualNode;

use crate::kubelet_api::Endpoint;
use crate::{CliError, Resolved, Settings, run_nodes};

/// One candidate per node, all with this process's identity, for the Leases named after
/// the nodes in `--leader-elect-lease-namespace` (default: the client's namespace).
pub(crate) fn electors(
    client: &kube::Client,
    settings: &Settings,
    config: ElectionConfig,
    names: &[String],
) -> Result<Vec<LeaderElector>, CliError> {
    let namespace = if settings.leader_elect_lease_namespace.is_empty() {
        client.default_namespace().to_owned()
    } else {
        settings.leader_elect_lease_namespace.clone()
    };
    // An explicit identity is a prefix: every process adds its own random suffix, so
    // replicas sharing one configuration never share an identity (both would lead).
    let identity = if settings.leader_elect_identity.is_empty() {
        default_identity()
    } else {
        vk_core::election::unique_identity(&settings.leader_elect_identity)
    };
    info!(%namespace, %identity, lease_duration = ?config.lease_duration,
          renew_deadline = ?config.renew_deadline, retry_period = ?config.retry_period,
          "leader election per node");
    names
        .iter()
        .map(|name| {
            LeaderElector::new(client.clone(), &namespace, name, identity.clone(), config)
                .map_err(CliError::from)
        })
        .collect()
}

/// Runs each node while this process leads it, until `shutdown`, a lost Lease or a
/// node that fails to start; returns the first error.
pub(crate) async fn run_elected(
    electors: Vec<LeaderElector>,
    nodes: &Arc<Vec<VirtualNode>>,
    endpoints: Vec<Option<Endpoint>>,
    resolved: &Resolved,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<(), CliError> {
    let runs = electors
        .into_iter()
        .zip(nodes.iter())
        .zip(endpoints)
        .map(|((elector, node), endpoint)| {
            let shutdown = shutdown.clone();
            async move {
                let name = node.name().to_owned();
                let names = [name.clone()];
                let term = elector
                    .run(shutdown.clone(), |leading| {
                        let names = &names;
                        async move {
                            info!(node = %names[0], "leading: starting the node");
                            if let Some(endpoint) = endpoint {
                                tokio::spawn(endpoint.bind().await?.serve(leading.clone()));
                            }
                            run_nodes(std::slice::from_ref(node), names, resolved, &leading).await
                        }
                    })
                    .await;
                match term {
                    Term::NotElected | Term::Finished(Ok(())) => Ok(()),
                    Term::Finished(Err(e)) => {
                        shutdown.cancel();
                        Err(e)
                    }
                    Term::Lost => {
                        error!(node = %name, "lost the leader lease: stopping every node and exiting");
                        shutdown.cancel();
                        Err(CliError::LeadershipLost { node: name })
                    }
                }
            }
        });
    let results = futures::future::join_all(runs).await;
    results.into_iter().collect()
}
