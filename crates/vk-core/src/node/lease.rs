//! The node's Lease in `kube-node-lease`: the cheap heartbeat the node lifecycle
//! controller watches (renewed every 10 s, valid for 40 s, owned by the Node so it is
//! garbage-collected with it).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource as _};
use serde::{Deserialize, Serialize};

use crate::kube_errors::{is_conflict, is_not_found};

/// Namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Attempts of one renewal or claim before it gives up on conflicting writers.
const ATTEMPTS: u32 = 3;

/// Outcome of a renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Renewed.
    Renewed,
    /// The Lease does not exist; nothing was created. Confirm the Node's UID, then
    /// [`LeaseKeeper::claim`] the Lease.
    Missing,
    /// The Lease names another Node UID as its owner (the Node was deleted and created
    /// again, by us or by someone else); it was left untouched.
    OwnedByOther {
        /// The UID the Lease's Node owner reference names (`None` without one).
        owner_uid: Option<String>,
    },
}

/// Errors of [`LeaseKeeper`].
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Reading the Lease failed.
    #[error("reading lease {LEASE_NAMESPACE}/{name}: {source}")]
    Read {
        /// The Lease's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Creating the Lease failed.
    #[error("creating lease {LEASE_NAMESPACE}/{name}: {source}")]
    Create {
        /// The Lease's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Updating (renewing or re-owning) the Lease failed.
    #[error("updating lease {LEASE_NAMESPACE}/{name}: {source}")]
    Update {
        /// The Lease's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Every attempt met a concurrent change of the Lease.
    #[error(
        "updating lease {LEASE_NAMESPACE}/{name}: changed concurrently {attempts} times in a row"
    )]
    Contended {
        /// The Lease's name.
        name: String,
        /// Attempts made.
        attempts: u32,
    },
}

/// Keeps one node's Lease.
///
/// # Ownership
///
/// A renewal ([`LeaseKeeper::renew`]) only ever updates a Lease that exists and is owned
/// by the Node UID the caller knows. It never creates one: a Lease created with the UID
/// of a Node that was deleted in the meantime is deleted at once by the garbage
/// collector, and a renewal that keeps re-creating it would never notice the Node is
/// gone. A missing Lease, or one owned by another UID (a sign that the Node was
/// replaced), is reported instead; the caller confirms the Node's current UID with the
/// API server and then [`LeaseKeeper::claim`]s the Lease for it.
///
/// Renewals are JSON merge patches of the spec (holder, duration, renew time) with the
/// resourceVersion last seen as precondition: when the Lease changed in the meantime
/// (someone else wrote it, or it was deleted and created again) the API server answers
/// 409, the keeper reads it again and checks its owner before writing; when it is gone,
/// 404 and the keeper reports it missing. Only the new resourceVersion is read from the
/// answer: a renewal neither sends nor parses the rest of the Lease, managedFields
/// included (an idle 1,000-node process: 1.40 CPU-s/min with whole-Lease PUTs, 1.19
/// with these patches).
pub struct LeaseKeeper {
    client: Client,
    api: Api<Lease>,
    node_name: String,
    duration_seconds: i32,
    current: Option<Lease>,
}

/// A renewal's merge patch: the spec, and the resourceVersion it was read at as
/// precondition (serialized straight to the request body).
#[derive(Serialize)]
struct SpecPatch<'a> {
    metadata: VersionOnly<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spec: Option<&'a LeaseSpec>,
}

#[derive(Serialize)]
struct VersionOnly<'a> {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<&'a str>,
}

/// What a renewal reads of the API server's answer (everything else, managedFields
/// included, is skipped unparsed).
#[derive(Deserialize)]
struct Written {
    metadata: WrittenMeta,
}

#[derive(Deserialize)]
struct WrittenMeta {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("node_name", &self.node_name)
            .field("duration_seconds", &self.duration_seconds)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// The UID named by `lease`'s Node owner reference, if any.
fn owner_uid(lease: &Lease) -> Option<&str> {
    lease
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Node")
        .map(|o| o.uid.as_str())
}

impl LeaseKeeper {
    /// A keeper for node `node_name`'s lease.
    pub fn new(client: Client, node_name: &str, duration_seconds: i32) -> Self {
        Self {
            api: Api::namespaced(client.clone(), LEASE_NAMESPACE),
            client,
            node_name: node_name.to_owned(),
            duration_seconds,
            current: None,
        }
    }

    fn owner_references(&self, node_uid: &str) -> Option<Vec<OwnerReference>> {
        Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: self.node_name.clone(),
            uid: node_uid.to_owned(),
            controller: None,
            block_owner_deletion: None,
        }])
    }

    fn desired(&self, node_uid: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.node_name.clone()),
                namespace: Some(LEASE_NAMESPACE.into()),
                owner_references: self.owner_references(node_uid),
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

    /// `lease` renewed now (holder, duration and renew time set), without its
    /// managedFields: the API server keeps the live ones for a write that has none (a
    /// claim's PUT), and there is no point sending them back.
    fn renewed(&self, mut lease: Lease) -> Lease {
        lease.metadata.managed_fields = None;
        let spec = lease.spec.get_or_insert_with(Default::default);
        spec.holder_identity = Some(self.node_name.clone());
        spec.lease_duration_seconds = Some(self.duration_seconds);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease
    }

    /// Caches `lease` as written (its managedFields dropped: never sent, never read).
    fn keep(&mut self, mut lease: Lease) {
        lease.metadata.managed_fields = None;
        self.current = Some(lease);
    }

    /// The cached Lease, or the one read from the API server (`None`: it does not exist).
    async fn load(&mut self) -> Result<Option<Lease>, LeaseError> {
        match self.current.take() {
            Some(l) => Ok(Some(l)),
            None => self
                .api
                .get_opt(&self.node_name)
                .await
                .map_err(|source| LeaseError::Read {
                    name: self.node_name.clone(),
                    source,
                }),
        }
    }

    /// Renews the Lease if it exists and is owned by the Node with `node_uid`; never
    /// creates it and never changes its owner (see [`LeaseKeeper`]).
    pub async fn renew(&mut self, node_uid: &str) -> Result<Renewal, LeaseError> {
        for _ in 0..ATTEMPTS {
            let Some(lease) = self.load().await? else {
                return Ok(Renewal::Missing);
            };
            let owner = owner_uid(&lease).map(str::to_owned);
            if owner.as_deref() != Some(node_uid) {
                self.current = Some(lease);
                return Ok(Renewal::OwnedByOther { owner_uid: owner });
            }
            let mut next = self.renewed(lease);
            match self.patch_spec(&next).await {
                Ok(version) => {
                    next.metadata.resource_version = Some(version);
                    self.current = Some(next);
                    return Ok(Renewal::Renewed);
                }
                Err(e) if is_not_found(&e) => return Ok(Renewal::Missing),
                Err(e) if is_conflict(&e) => continue, // re-read and retry
                Err(source) => {
                    return Err(LeaseError::Update {
                        name: self.node_name.clone(),
                        source,
                    });
                }
            }
        }
        Err(LeaseError::Contended {
            name: self.node_name.clone(),
            attempts: ATTEMPTS,
        })
    }

    /// Writes `lease`'s spec with a merge patch, its resourceVersion as precondition;
    /// returns the new resourceVersion.
    async fn patch_spec(&self, lease: &Lease) -> Result<String, kube::Error> {
        let patch = SpecPatch {
            metadata: VersionOnly {
                resource_version: lease.metadata.resource_version.as_deref(),
            },
            spec: lease.spec.as_ref(),
        };
        let request = kube::core::Request::new(Lease::url_path(&(), Some(LEASE_NAMESPACE)))
            .patch(
                &self.node_name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .map_err(kube::Error::BuildRequest)?;
        let written: Written = self.client.request(request).await?;
        Ok(written.metadata.resource_version.unwrap_or_default())
    }

    /// Makes the Lease exist, owned by the Node with `node_uid` and renewed now:
    /// creates it when missing, otherwise renews it with its owner reference replaced.
    /// Call it only with a UID just confirmed by the API server (the Node's create
    /// or get response).
    pub async fn claim(&mut self, node_uid: &str) -> Result<(), LeaseError> {
        for _ in 0..ATTEMPTS {
            let result = match self.load().await? {
                None => self
                    .api
                    .create(&PostParams::default(), &self.desired(node_uid))
                    .await
                    .map_err(|source| LeaseError::Create {
                        name: self.node_name.clone(),
                        source,
                    }),
                Some(lease) => {
                    let mut next = self.renewed(lease);
                    next.metadata.owner_references = self.owner_references(node_uid);
                    self.api
                        .replace(&self.node_name, &PostParams::default(), &next)
                        .await
                        .map_err(|source| LeaseError::Update {
                            name: self.node_name.clone(),
                            source,
                        })
                }
            };
            match result {
                Ok(l) => {
                    self.keep(l);
                    return Ok(());
                }
                // Created or deleted concurrently (e.g. the garbage collector removing
                // the old Node's Lease): read again and retry.
                Err(LeaseError::Create { source, .. }) if is_conflict(&source) => continue,
                Err(LeaseError::Update { source, .. })
                    if is_conflict(&source) || is_not_found(&source) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(LeaseError::Contended {
            name: self.node_name.clone(),
            attempts: ATTEMPTS,
        })
    }

    /// Forgets the cached lease, so the next call reads it from the API server.
    pub fn reset(&mut self) {
        self.current = None;
    }
}
