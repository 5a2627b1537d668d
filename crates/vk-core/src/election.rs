//! Leader election per virtual node: several replicas of one provider deployment
//! agree, through a `coordination.k8s.io` Lease, on the one process that drives a node.
//!
//! This Lease is **not** the node's heartbeat Lease in `kube-node-lease` (which the node
//! controller renews once it drives the node, see [`crate::node`]): it is a separate
//! election record, usually in the replicas' own namespace and named after the node.
//!
//! # Flow
//!
//! 1. **Acquire.** Every `retry_period` (plus up to 20 % jitter) a candidate reads the
//!    Lease. It takes it when nobody holds it (no Lease, or an empty
//!    `holderIdentity` after a release), or when the holder has not renewed it for
//!    `leaseDurationSeconds`, as measured on the candidate's **own** monotonic clock
//!    from the moment it first saw the current record — never by comparing the
//!    record's `renewTime` with its wall clock, so clock skew between machines does not
//!    shorten a lease. Writes are updates with the read `resourceVersion`: of two
//!    candidates racing, the API server lets exactly one win (409 for the other).
//! 2. **Lead.** The holder renews every `retry_period`. When it has not managed to renew
//!    for `renew_deadline` since its last successful renewal, or finds another holder,
//!    it has lost: the work is cancelled at once.
//! 3. **Release.** When the work ends (graceful shutdown), the holder clears
//!    `holderIdentity` (with a lease duration of 1 s) so a standby takes over at its next
//!    retry instead of waiting for the lease to run out.
//!
//! # Guarantees and caveats
//!
//! - Fencing: the holder measures its deadline from the moment it *sent* its last
//!   successful renewal; a standby measures the lease duration from the moment it
//!   *received* that record, which is later. With `renew_deadline < lease_duration`, the
//!   old holder stops (cancels its work) at least `lease_duration - renew_deadline`
//!   before anyone else may take over; [`LeaderElector::run`] waits at most that long for
//!   the work to end before it returns [`Term::Lost`]. This assumes the machines' clocks
//!   run at the same rate (not that they agree on the time).
//! - Work that ignores its cancellation token for longer than that margin can overlap
//!   with the next leader; callers that cannot stop promptly should exit the process.
//! - `leaseTransitions` counts changes of holder; `acquireTime` is when the current
//!   holder took the Lease; both are kept on renewal.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), vk_core::election::ElectionError> {
//! use vk_core::election::{ElectionConfig, LeaderElector, Term};
//! let elector = LeaderElector::new(
//!     client,
//!     "virtual-kubelet",
//!     "vk-1",
//!     vk_core::election::default_identity(),
//!     ElectionConfig::default(),
//! )?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! match elector.run(shutdown, |leading| async move { leading.cancelled().await }).await {
//!     Term::NotElected => println!("shut down while standing by"),
//!     Term::Finished(()) => println!("led, then released the lease"),
//!     Term::Lost => println!("lost the lease: stop writing and exit"),
//! }
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::kube_errors::is_conflict;

/// How many writes [`LeaderElector::release`] tries when the Lease changed under it.
pub const RELEASE_ATTEMPTS: usize = 3;

/// Timings of an election, as kube-controller-manager's `--leader-elect-*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionConfig {
    /// How long a standby waits, after it last saw the record change, before it takes
    /// the Lease over (`leaseDurationSeconds`; whole seconds, at least 1 s).
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before it gives up leading. Must be
    /// shorter than `lease_duration`: the difference is the time the old holder has to
    /// stop before a standby may start.
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew. Must be shorter than
    /// `renew_deadline`.
    pub retry_period: Duration,
}

impl Default for ElectionConfig {
    /// kube-controller-manager's defaults: 15 s, 10 s, 2 s.
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl ElectionConfig {
    /// Checks `retry_period < renew_deadline < lease_duration` and a lease duration of
    /// whole seconds (at least one).
    pub fn validate(&self) -> Result<(), ElectionError> {
        let invalid = |reason: String| Err(ElectionError::InvalidConfig { reason });
        if self.lease_duration < Duration::from_secs(1) || self.lease_duration.subsec_nanos() != 0 {
            return invalid(format!(
                "the lease duration ({:?}) must be a whole number of seconds, at least 1s",
                self.lease_duration
            ));
        }
        if self.lease_duration.as_secs() > i32::MAX as u64 {
            return invalid(format!(
                "the lease duration ({:?}) is too long",
                self.lease_duration
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return invalid(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?}), \
                 or a standby could take over while the leader still writes",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return invalid(format!(
                "the retry period ({:?}) must be positive and shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }

    /// The time a leader that lost the Lease has to stop before another may start.
    pub fn fencing_margin(&self) -> Duration {
        self.lease_duration.saturating_sub(self.renew_deadline)
    }
}

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// The timings are inconsistent ([`ElectionConfig::validate`]).
    #[error("leader election: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// Reading the election Lease failed.
    #[error("reading election lease {namespace}/{name}: {source}")]
    Read {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Creating the election Lease failed.
    #[error("creating election lease {namespace}/{name}: {source}")]
    Create {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Updating (taking, renewing) the election Lease failed.
    #[error("updating election lease {namespace}/{name}: {source}")]
    Update {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Releasing the election Lease failed.
    #[error("releasing election lease {namespace}/{name}: {source}")]
    Release {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// How [`LeaderElector::run`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Term<T> {
    /// Shutdown came before this candidate was elected; the work never ran.
    NotElected,
    /// The work ran and ended (on shutdown or by itself) with this value; the Lease was
    /// released.
    Finished(T),
    /// The Lease was lost while leading; the work was cancelled. The caller must not
    /// write anything more on the elected object's behalf (exiting is safest).
    Lost,
}

/// An identity for this process: the host name (a pod's name in Kubernetes) and a
/// random suffix, so that a restarted process never mistakes its predecessor's lease
/// for its own.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "virtual-kubelet".to_owned());
    unique_identity(&host)
}

/// `base` with a random suffix of this process: `base_1a2b3c4d`. Two replicas given the
/// same base (a shared config file, a copied flag) still hold distinct identities, so
/// neither mistakes the other's renewals for its own — which would let both lead.
///
/// ```
/// let a = vk_core::election::unique_identity("vk");
/// let b = vk_core::election::unique_identity("vk");
/// assert!(a.starts_with("vk_") && a.len() == "vk_".len() + 8);
/// assert_ne!(a, b);
/// ```
pub fn unique_identity(base: &str) -> String {
    format!("{base}_{:08x}", rand::random::<u32>())
}

/// The last election record seen, and when (on the local monotonic clock).
struct Observed {
    lease: Lease,
    at: Instant,
}

/// One candidate for one election Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    config: ElectionConfig,
    observed: Option<Observed>,
    /// When the last successful write of ours was sent.
    renewed_at: Option<Instant>,
    leading: watch::Sender<bool>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// A candidate named `identity` for the Lease `namespace/name`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: impl Into<String>,
        config: ElectionConfig,
    ) -> Result<Self, ElectionError> {
        config.validate()?;
        Ok(Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.into(),
            config,
            observed: None,
            renewed_at: None,
            leading: watch::Sender::new(false),
        })
    }

    /// This candidate's identity (`holderIdentity` while it leads).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether this candidate leads now; follows every change.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// Waits until elected, then runs `work` with a token that is cancelled when
    /// `shutdown` is or when the Lease is lost, renewing the Lease meanwhile (also while
    /// the work winds down after `shutdown`). Releases the Lease when the work ends.
    pub async fn run<T, F, Fut>(mut self, shutdown: CancellationToken, work: F) -> Term<T>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = T>,
    {
        if !self.acquire(&shutdown).await {
            return Term::NotElected;
        }
        let leading = shutdown.child_token();
        let work = work(leading.clone());
        tokio::pin!(work);
        let finished = tokio::select! {
            value = &mut work => Some(value),
            () = self.keep() => None,
        };
        match finished {
            Some(value) => {
                if let Err(e) = self.release().await {
                    warn!(error = %e, "the lease will expire instead");
                }
                Term::Finished(value)
            }
            None => {
                leading.cancel();
                let margin = self.config.fencing_margin();
                if tokio::time::timeout(margin, work).await.is_err() {
                    warn!(lease = %self.name, ?margin, "the work did not stop within the fencing margin");
                }
                Term::Lost
            }
        }
    }

    /// Tries until this candidate holds the Lease (`true`) or `shutdown` (`false`).
    pub async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
        let mut waiting_for = None;
        loop {
            if shutdown.is_cancelled() {
                return false;
            }
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Holding) => {
                    info!(lease = %format!("{}/{}", self.namespace, self.name), identity = %self.identity, "elected leader");
                    self.leading.send_replace(true);
                    return true;
                }
                Ok(Attempt::HeldBy(holder)) => {
                    if waiting_for.as_ref() != Some(&holder) {
                        info!(lease = %format!("{}/{}", self.namespace, self.name), %holder, "standing by: the lease is held");
                        waiting_for = Some(holder);
                    }
                }
                Err(e) => warn!(error = %e, "leader election attempt failed; retrying"),
            }
            let pause = self
                .config
                .retry_period
                .mul_f64(1.0 + 0.2 * rand::random::<f64>());
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Renews every `retry_period`; returns once the Lease is lost: not renewed within
    /// `renew_deadline` of the last renewal, or held by another.
    pub async fn keep(&mut self) {
        while let Some(renewed_at) = self.renewed_at {
            let deadline = renewed_at + self.config.renew_deadline;
            let retry_period = self.config.retry_period;
            let renewal = async {
                loop {
                    tokio::time::sleep(retry_period).await;
                    match self.try_acquire_or_renew().await {
                        Ok(Attempt::Holding) => return true,
                        Ok(Attempt::HeldBy(holder)) => {
                            warn!(lease = %self.name, %holder, "the lease was taken over");
                            return false;
                        }
                        Err(e) => warn!(error = %e, "renewing the leader lease failed; retrying"),
                    }
                }
            };
            match tokio::time::timeout_at(deadline, renewal).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(_) => {
                    warn!(lease = %self.name, renew_deadline = ?self.config.renew_deadline, "could not renew the leader lease in time");
                    break;
                }
            }
        }
        self.renewed_at = None;
        self.leading.send_replace(false);
        warn!(lease = %format!("{}/{}", self.namespace, self.name), identity = %self.identity, "lost leadership");
    }

    /// Gives the Lease up if this candidate holds it: clears `holderIdentity` so that a
    /// standby takes over at its next attempt.
    ///
    /// The write is an update with the last `resourceVersion` this candidate saw. That
    /// can be stale while the Lease is still its own: a renewal in flight when the work
    /// ended was dropped after the API server applied it, or another client (`kubectl
    /// annotate`) touched the Lease. On such a conflict it reads the Lease again and
    /// releases that version if it still holds it (up to [`RELEASE_ATTEMPTS`] writes);
    /// giving up on the first conflict would leave the standby waiting out a whole
    /// lease duration for nothing.
    pub async fn release(&mut self) -> Result<(), ElectionError> {
        self.leading.send_replace(false);
        self.renewed_at = None;
        for _ in 0..RELEASE_ATTEMPTS {
            let Some(observed) = &self.observed else {
                return Ok(());
            };
            let spec = observed.lease.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return Ok(());
            }
            let now = MicroTime(Timestamp::now());
            let mut lease = observed.lease.clone();
            lease.spec = Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: spec.lease_transitions,
                ..Default::default()
            });
            match self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                Ok(released) => {
                    info!(lease = %format!("{}/{}", self.namespace, self.name), "released the leader lease");
                    self.observed = Some(Observed {
                        lease: released,
                        at: Instant::now(),
                    });
                    return Ok(());
                }
                // Changed since it was last seen: read it again; the next turn releases
                // it if it is still ours.
                Err(e) if is_conflict(&e) => {
                    let current = self
                        .api
                        .get_opt(&self.name)
                        .await
                        .map_err(|source| self.release_error(source))?;
                    self.observed = current.map(|lease| Observed {
                        lease,
                        at: Instant::now(),
                    });
                }
                Err(source) => return Err(self.release_error(source)),
            }
        }
        warn!(lease = %format!("{}/{}", self.namespace, self.name), attempts = RELEASE_ATTEMPTS, "the leader lease kept changing under the release; it will expire instead");
        Ok(())
    }

    fn release_error(&self, source: kube::Error) -> ElectionError {
        ElectionError::Release {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    /// One round: take or renew the Lease if allowed.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, ElectionError> {
        let sent = Instant::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| ElectionError::Read {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                source,
            })?;
        let Some(current) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.next_record(None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => Ok(self.took(created, sent)),
                Err(e) if is_conflict(&e) => Ok(Attempt::HeldBy("(created concurrently)".into())),
                Err(source) => Err(ElectionError::Create {
                    namespace: self.namespace.clone(),
                    name: self.name.clone(),
                    source,
                }),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.lease.spec != current.spec);
        if changed {
            self.observed = Some(Observed {
                lease: current.clone(),
                at: Instant::now(),
            });
        }
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if !holder.is_empty() && holder != self.identity {
            let duration = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
            );
            let seen = self.observed.as_ref().map_or(sent, |o| o.at);
            if Instant::now() < seen + duration {
                return Ok(Attempt::HeldBy(holder));
            }
            info!(lease = %self.name, %holder, ?duration, "the holder stopped renewing the lease; taking it over");
        }
        let mut next = current;
        next.spec = Some(self.next_record(Some(&spec)));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(updated) => Ok(self.took(updated, sent)),
            // Our own record changed under us (another client touched the Lease between
            // the read and the write): not a takeover. Retried after the next read,
            // which shows who holds it, within the renew deadline.
            Err(source) if is_conflict(&source) && holder == self.identity => {
                Err(ElectionError::Update {
                    namespace: self.namespace.clone(),
                    name: self.name.clone(),
                    source,
                })
            }
            Err(e) if is_conflict(&e) => Ok(Attempt::HeldBy(if holder.is_empty() {
                "(taken concurrently)".into()
            } else {
                holder
            })),
            Err(source) => Err(ElectionError::Update {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                source,
            }),
        }
    }

    /// Records a successful write of ours, sent at `sent`.
    fn took(&mut self, lease: Lease, sent: Instant) -> Attempt {
        self.observed = Some(Observed {
            lease,
            at: Instant::now(),
        });
        self.renewed_at = Some(sent);
        Attempt::Holding
    }

    /// The record this candidate writes over `previous`: a renewal keeps `acquireTime`
    /// and `leaseTransitions`; a take-over sets the first and counts the second up.
    fn next_record(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let (acquire_time, transitions) = match previous {
            Some(p) if p.holder_identity.as_deref() == Some(self.identity.as_str()) => (
                p.acquire_time.clone().unwrap_or_else(|| now.clone()),
                p.lease_transitions.unwrap_or(0),
            ),
            Some(p) => (
                now.clone(),
                p.lease_transitions.unwrap_or(0).saturating_add(1),
            ),
            None => (now.clone(), 0),
        };
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquire_time),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }
}

/// The result of one round.
#[derive(Debug)]
enum Attempt {
    /// This candidate holds the Lease (took or renewed it).
    Holding,
    /// Another holds it and it has not expired.
    HeldBy(String),
}

#[cfg(test)]
mod tests;
