//! The node's Lease in `kube-node-lease`: the cheap heartbeat the node lifecycle
//! controller watches (renewed every 10 s, valid for 40 s, owned by the Node so it is
//! garbage-collected with it).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::kube_errors::{is_conflict, is_not_found};

/// Namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Outcome of a renewal.
#[derive(Debug)]
pub enum Renewal {
    /// Renewed (or created).
    Renewed,
    /// The Lease is gone and its owner Node may be too (the caller should check).
    Missing,
}

/// Keeps one node's Lease.
#[derive(Debug)]
pub struct LeaseKeeper {
    api: Api<Lease>,
    node_name: String,
    duration_seconds: i32,
    current: Option<Lease>,
}

impl LeaseKeeper {
    /// A keeper for node `node_name`'s lease.
    pub fn new(client: Client, node_name: &str, duration_seconds: i32) -> Self {
        Self {
            api: Api::namespaced(client, LEASE_NAMESPACE),
            node_name: node_name.to_owned(),
            duration_seconds,
            current: None,
        }
    }

    fn desired(&self, node_uid: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.node_name.clone()),
                namespace: Some(LEASE_NAMESPACE.into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: self.node_name.clone(),
                    uid: node_uid.to_owned(),
                    controller: None,
                    block_owner_deletion: None,
                }]),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.node_name.clone()),
                lease_duration_seconds: Some(self.duration_seconds),
                renew_time: Some(MicroTime(Timestamp::now())),
                ..Default::default()
            }),
        }
    }

    /// Renews the lease (creating it when missing, with an owner reference to the Node
    /// with `node_uid`). A lease owned by an older Node of the same name is replaced.
    pub async fn renew(&mut self, node_uid: &str) -> Result<Renewal, kube::Error> {
        for _ in 0..3 {
            let lease = match self.current.take() {
                Some(l) => l,
                None => match self.api.get_opt(&self.node_name).await? {
                    Some(l) => l,
                    None => {
                        let created = match self
                            .api
                            .create(&PostParams::default(), &self.desired(node_uid))
                            .await
                        {
                            Ok(l) => l,
                            // The owner Node does not exist (any more).
                            Err(e) if is_not_found(&e) => return Ok(Renewal::Missing),
                            Err(e) if is_conflict(&e) => continue,
                            Err(e) => return Err(e),
                        };
                        self.current = Some(created);
                        return Ok(Renewal::Renewed);
                    }
                },
            };
            let owned_by_this_node = lease
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "Node" && o.uid == node_uid);
            let mut next = lease.clone();
            if !owned_by_this_node {
                next.metadata.owner_references = self.desired(node_uid).metadata.owner_references;
            }
            let spec = next.spec.get_or_insert_with(Default::default);
            spec.holder_identity = Some(self.node_name.clone());
            spec.lease_duration_seconds = Some(self.duration_seconds);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            match self
                .api
                .replace(&self.node_name, &PostParams::default(), &next)
                .await
            {
                Ok(l) => {
                    self.current = Some(l);
                    return Ok(Renewal::Renewed);
                }
                Err(e) if is_not_found(&e) => return Ok(Renewal::Missing),
                Err(e) if is_conflict(&e) => continue, // re-read and retry
                Err(e) => return Err(e),
            }
        }
        Ok(Renewal::Renewed)
    }

    /// Forgets the cached lease (after the node was re-created).
    pub fn reset(&mut self) {
        self.current = None;
    }
}
