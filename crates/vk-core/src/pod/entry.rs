//! The controller's per-pod state ([`Entry`]) and the named transitions that change it.
//!
//! Every change to an entry goes through one of the methods below; the fields are private
//! to this module. The workers decide what to do from a [`Snapshot`], act (provider call,
//! API write), and then apply the matching transition, through a [`Transition`] guarded by
//! the pod's UID (see [`Entry::apply_for`]) when the result belongs to one pod's sync.
//!
//! # The provider's copy
//!
//! [`InProvider`] is what the controller believes about the provider's copy of the pod the
//! entry describes (its UID):
//!
//! ```text
//!            spec_sent(fp) / adopted(fp)        delete_requested
//!   Absent ─────────────────────────► Created{fp} ───────────────► Deleting
//!                                       │    ▲                         │
//!                                       │    └─ spec_sent(fp')         │
//!                         provider_gone │    (update)                  │
//!                                       ▼                              │
//!                                      Gone ◄──────────────────────────┘
//!                                            removed_with_grace_zero
//!                                            (from any state)
//!
//!   any state ── observed_in_api with a new UID ──► Absent
//!                (a Created or Deleting copy becomes the stale provider pod)
//! ```
//!
//! Beside that state an entry carries:
//!
//! * `api` / `last_known`: the latest API object (`None` once the API no longer has
//!   it) and the last one seen (kept to tell the provider what to delete);
//! * `stale_provider_pod`: an older pod of the same name the provider still runs, to be
//!   deleted before the new one is created;
//! * `provider_status` and `provider_lost`: the provider's latest report on the pod;
//! * `last_patch`: the fingerprint of the last status patch written;
//! * `api_deleted`: the final grace-0 delete went out; only the watch's Delete remains.
//!
//! # Events and transitions
//!
//! | Event                                       | Transition                           | Changes                                                          |
//! |---------------------------------------------|--------------------------------------|------------------------------------------------------------------|
//! | watch: a pod of a new name                  | [`Entry::new`]                       | `Absent`, in the API, phase counted                              |
//! | watch: the pod again, same UID              | [`Entry::observed_in_api`]           | `api`, `last_known`, phase                                       |
//! | watch: same name, new UID                   | [`Entry::observed_in_api`]           | a `Created`/`Deleting` copy becomes stale; `Absent`; flags reset |
//! | watch: Delete, or missing from a relist     | [`Entry::removed_from_api`]          | `api = None` (`last_known` kept)                                 |
//! | notifier or poll: a status for this pod     | [`Entry::provider_reported`]         | `provider_status`; `provider_lost = false`                       |
//! | notifier `pod_gone`, or missing from a poll | [`Entry::provider_lost_it`]          | `provider_lost = true`                                           |
//! | start-up: the provider has this pod         | [`Entry::adopted`]                   | `Created{fp}`; `provider_status`                                 |
//! | start-up: the provider has an older pod     | [`Entry::stale_copy_found`]          | `stale_provider_pod`                                             |
//! | sync: the stale copy was deleted            | [`Entry::stale_pod_removed`]         | `stale_provider_pod = None`                                      |
//! | sync: `create_pod`/`update_pod` succeeded   | [`Transition::SpecSent`]             | `Created{fp}`                                                    |
//! | sync: `delete_pod` succeeded                | [`Transition::DeleteRequested`]      | `Deleting`                                                       |
//! | sync: `delete_pod` answered NotFound        | [`Transition::ProviderGone`]         | `Gone`                                                           |
//! | sync: a status patch was written            | [`Transition::StatusWritten`]        | `last_patch`                                                     |
//! | sync: removed from the API with grace 0     | [`Transition::RemovedWithGraceZero`] | `Gone`; `api_deleted`                                            |
//! | sync: gone from the API and the provider    | [`Entry::forget`]                    | entry dropped, phase uncounted                                   |
//!
//! While an entry exists its phase is counted in [`PodMetrics`]; [`Entry::new`],
//! [`Entry::observed_in_api`] and [`Entry::forget`] keep that count, and are called
//! under the entries lock so it stays consistent with the entries.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodStatus};

use super::observe::{Phase, PodMetrics};
use crate::compact::Compact;

/// What the controller knows about the provider's copy of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InProvider {
    /// Not created (yet).
    Absent,
    /// Created or adopted, with the fingerprint of the spec last sent.
    Created {
        /// [`spec_fingerprint`](super::spec::spec_fingerprint) of the spec last sent.
        fingerprint: u64,
    },
    /// `delete_pod` was called; waiting for the provider to report it stopped.
    Deleting,
    /// The provider no longer has it.
    Gone,
}

impl InProvider {
    /// Whether the provider may still run the pod (created and not known to be gone).
    pub(super) fn may_run(self) -> bool {
        matches!(self, InProvider::Created { .. } | InProvider::Deleting)
    }
}

/// Whether two UIDs name the same pod, leniently: an unknown UID on either side matches
/// (a provider that does not keep UIDs is matched by name).
pub(super) fn same_pod(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Per-pod state. Pods and statuses are kept JSON-encoded ([`Compact`]): thousands of
/// them as k8s-openapi structs would take three times the memory.
///
/// `Clone` is cheap (the encodings are shared); it exists to copy an entry under the
/// lock and decode it outside ([`Snapshot::decode`]).
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Latest API object (`None` once the API no longer has it).
    api: Option<Compact<Pod>>,
    /// Last API object seen (kept after deletion to tell the provider).
    last_known: Compact<Pod>,
    /// UID of `last_known`.
    uid: Option<String>,
    /// Phase of `last_known` (counted in [`PodMetrics`] while the entry exists).
    phase: Phase,
    /// The provider's copy of the pod with `uid`.
    provider: InProvider,
    /// An older pod of the same name (different UID) the provider still runs.
    stale_provider_pod: Option<Compact<Pod>>,
    /// Latest status the provider reported.
    provider_status: Option<Compact<PodStatus>>,
    /// The provider lost the pod without being asked to delete it.
    provider_lost: bool,
    /// Fingerprint of the last status patch sent, to avoid repeating it before the
    /// watch echoes it back.
    last_patch: Option<u64>,
    /// The final (grace 0) API delete was issued; only the watch's Delete is awaited.
    api_deleted: bool,
}

/// A change a sync makes to an entry after acting on one pod, applied with
/// [`Entry::apply_for`] only while the entry still describes that pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    /// `create_pod` or `update_pod` succeeded with the spec of this fingerprint.
    SpecSent {
        /// [`spec_fingerprint`](super::spec::spec_fingerprint) of the spec sent.
        fingerprint: u64,
    },
    /// `delete_pod` succeeded: the provider is stopping the pod.
    DeleteRequested,
    /// `delete_pod` answered NotFound: the provider does not have the pod.
    ProviderGone,
    /// A status patch with this fingerprint was written.
    StatusWritten {
        /// Hash of the patch's JSON.
        fingerprint: u64,
    },
    /// The API object was removed with grace 0 (or was already gone or replaced).
    RemovedWithGraceZero,
}

impl Entry {
    /// The entry of a pod seen for the first time; counts its phase in `metrics`.
    pub(super) fn new(pod: &Pod, metrics: &PodMetrics) -> Self {
        let phase = Phase::of(pod);
        let encoded = Compact::new(pod);
        metrics.move_phase(None, Some(phase));
        Self {
            api: Some(encoded.clone()),
            last_known: encoded,
            uid: pod.metadata.uid.clone(),
            phase,
            provider: InProvider::Absent,
            stale_provider_pod: None,
            provider_status: None,
            provider_lost: false,
            last_patch: None,
            api_deleted: false,
        }
    }

    /// The watch delivered `pod` (added or modified) for this entry's name. A pod with
    /// another UID replaces the one the entry described: its provider copy, if the
    /// provider may still run it, becomes the stale provider pod (deleted before the new
    /// one is created), and everything known about the old pod is reset. Moves the
    /// phase count in `metrics`.
    pub(super) fn observed_in_api(&mut self, pod: &Pod, metrics: &PodMetrics) {
        let uid = pod.metadata.uid.as_ref();
        if self.uid.as_ref() != uid {
            if self.provider.may_run() {
                self.stale_provider_pod = Some(self.last_known.clone());
            }
            self.provider = InProvider::Absent;
            self.provider_status = None;
            self.provider_lost = false;
            self.last_patch = None;
            self.api_deleted = false;
            self.uid = uid.cloned();
        }
        let encoded = Compact::new(pod);
        self.api = Some(encoded.clone());
        self.last_known = encoded;
        let phase = Phase::of(pod);
        metrics.move_phase(Some(self.phase), Some(phase));
        self.phase = phase;
    }

    /// The API no longer has the pod (watch Delete, or missing from a relist). The last
    /// object seen is kept: the provider is told to delete that.
    pub(super) fn removed_from_api(&mut self) {
        self.api = None;
    }

    /// The provider reported `status` for the pod with `uid` (`None`: a report matched
    /// by name only). A report about another pod of the same name is ignored. Returns
    /// whether it was taken.
    pub(super) fn provider_reported(
        &mut self,
        uid: Option<&str>,
        status: Compact<PodStatus>,
    ) -> bool {
        if !same_pod(uid, self.uid.as_deref()) {
            return false;
        }
        self.provider_status = Some(status);
        self.provider_lost = false;
        true
    }

    /// The provider no longer has the pod, though it was not asked to delete it.
    pub(super) fn provider_lost_it(&mut self) {
        self.provider_lost = true;
    }

    /// At start-up the provider already runs this pod: adopt it instead of creating it.
    /// `fingerprint` is that of the spec the copy matches (one that matches no spec
    /// forces an update); `status` is the copy's status.
    pub(super) fn adopted(&mut self, fingerprint: u64, status: Option<Compact<PodStatus>>) {
        self.provider = InProvider::Created { fingerprint };
        self.provider_status = status;
    }

    /// At start-up the provider runs an older pod of this name (another UID): it is to be
    /// deleted before this one is created.
    pub(super) fn stale_copy_found(&mut self, provider_pod: Compact<Pod>) {
        self.stale_provider_pod = Some(provider_pod);
    }

    /// The stale provider pod with `uid` was deleted (or was already gone). A stale copy
    /// recorded meanwhile (a third pod of the same name arrived during the delete and
    /// made the second one stale) is another pod and is kept, to be deleted next.
    pub(super) fn stale_pod_removed(&mut self, uid: Option<&str>) {
        if self
            .stale_provider_pod
            .as_ref()
            .is_some_and(|stale| stale.uid().as_deref() == uid)
        {
            self.stale_provider_pod = None;
        }
    }

    /// `create_pod` or `update_pod` succeeded with the spec of `fingerprint`.
    pub(super) fn spec_sent(&mut self, fingerprint: u64) {
        self.provider = InProvider::Created { fingerprint };
    }

    /// `delete_pod` succeeded: the provider is stopping the pod.
    pub(super) fn delete_requested(&mut self) {
        self.provider = InProvider::Deleting;
    }

    /// `delete_pod` answered NotFound: the provider does not have the pod.
    pub(super) fn provider_gone(&mut self) {
        self.provider = InProvider::Gone;
    }

    /// A status patch with `fingerprint` was written; the same patch is not sent again.
    pub(super) fn status_written(&mut self, fingerprint: u64) {
        self.last_patch = Some(fingerprint);
    }

    /// The pod was removed from the API with grace 0 (or the API no longer had it):
    /// nothing is left to do but wait for the watch's Delete.
    pub(super) fn removed_with_grace_zero(&mut self) {
        self.provider = InProvider::Gone;
        self.api_deleted = true;
    }

    /// Applies `transition`.
    fn apply(&mut self, transition: Transition) {
        match transition {
            Transition::SpecSent { fingerprint } => self.spec_sent(fingerprint),
            Transition::DeleteRequested => self.delete_requested(),
            Transition::ProviderGone => self.provider_gone(),
            Transition::StatusWritten { fingerprint } => self.status_written(fingerprint),
            Transition::RemovedWithGraceZero => self.removed_with_grace_zero(),
        }
    }

    /// Applies `transition` if the entry still describes the pod with `uid` (exactly:
    /// `None` only matches `None`), and returns whether it did. A sync acts on the pod
    /// it read; when a pod of the same name but another UID replaced it meanwhile, the
    /// result must not change the new pod's state.
    pub(super) fn apply_for(&mut self, uid: Option<&str>, transition: Transition) -> bool {
        if self.uid.as_deref() != uid {
            return false;
        }
        self.apply(transition);
        true
    }

    /// The entry is dropped: its phase is no longer counted in `metrics`.
    pub(super) fn forget(self, metrics: &PodMetrics) {
        metrics.move_phase(Some(self.phase), None);
    }

    /// Whether the API still has the pod.
    pub(super) fn in_api(&self) -> bool {
        self.api.is_some()
    }

    /// The latest API object, if the API still has the pod.
    pub(super) fn api(&self) -> Option<&Compact<Pod>> {
        self.api.as_ref()
    }

    /// The provider's copy of the pod.
    pub(super) fn provider(&self) -> InProvider {
        self.provider
    }

    /// The provider's latest status report.
    pub(super) fn provider_status(&self) -> Option<&Compact<PodStatus>> {
        self.provider_status.as_ref()
    }

    /// Whether the provider lost the pod.
    pub(super) fn provider_lost(&self) -> bool {
        self.provider_lost
    }
}

/// An entry decoded, for one sync to decide from.
#[derive(Debug)]
pub(super) struct Snapshot {
    /// Latest API object (`None` once the API no longer has it).
    pub(super) api: Option<Arc<Pod>>,
    /// Last API object seen (the same allocation as `api` when that is present).
    pub(super) last_known: Arc<Pod>,
    /// The provider's copy.
    pub(super) provider: InProvider,
    /// An older pod of the same name the provider still runs.
    pub(super) stale: Option<Arc<Pod>>,
    /// Latest status the provider reported.
    pub(super) provider_status: Option<PodStatus>,
    /// The provider lost the pod.
    pub(super) provider_lost: bool,
    /// Fingerprint of the last status patch written.
    pub(super) last_patch: Option<u64>,
    /// The final API delete was issued.
    pub(super) api_deleted: bool,
}

impl Snapshot {
    /// Decodes `entry`, a copy taken under the lock (decoding is done outside it).
    pub(super) fn decode(entry: Entry) -> Self {
        let api = entry.api.map(|c| Arc::new(c.decode()));
        let last_known = match &api {
            Some(p) => Arc::clone(p),
            None => Arc::new(entry.last_known.decode()),
        };
        Self {
            api,
            last_known,
            provider: entry.provider,
            stale: entry.stale_provider_pod.map(|c| Arc::new(c.decode())),
            provider_status: entry.provider_status.map(|c| c.decode()),
            provider_lost: entry.provider_lost,
            last_patch: entry.last_patch,
            api_deleted: entry.api_deleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::tests::pod;

    fn status(phase: &str) -> Compact<PodStatus> {
        Compact::new(&PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        })
    }

    /// An entry for `a`/`u1` with every flag set and the provider in `provider`.
    fn busy_entry(provider: InProvider, m: &PodMetrics) -> Entry {
        let mut e = Entry::new(&pod("a", "u1", "Running"), m);
        e.provider = provider;
        e.provider_status = Some(status("Running"));
        e.provider_lost = true;
        e.last_patch = Some(7);
        e.api_deleted = true;
        e
    }

    fn uid_of(p: &Compact<Pod>) -> Option<String> {
        p.decode().metadata.uid
    }

    #[test]
    fn a_new_uid_makes_a_copy_the_provider_may_run_stale_and_resets_the_rest() {
        for provider in [InProvider::Created { fingerprint: 3 }, InProvider::Deleting] {
            let m = PodMetrics::default();
            let mut e = busy_entry(provider, &m);
            e.observed_in_api(&pod("a", "u2", "Pending"), &m);
            assert_eq!(
                e.stale_provider_pod.as_ref().and_then(uid_of).as_deref(),
                Some("u1"),
                "{provider:?}"
            );
            assert_eq!(e.provider, InProvider::Absent);
            assert_eq!(e.uid.as_deref(), Some("u2"));
            assert!(e.provider_status.is_none());
            assert!(!e.provider_lost);
            assert_eq!(e.last_patch, None);
            assert!(!e.api_deleted);
            assert_eq!(uid_of(&e.last_known).as_deref(), Some("u2"));
            assert_eq!(
                (m.pods_in(Phase::Running), m.pods_in(Phase::Pending)),
                (0, 1)
            );
        }
    }

    #[test]
    fn a_new_uid_leaves_no_stale_copy_when_the_provider_cannot_have_one() {
        for provider in [InProvider::Absent, InProvider::Gone] {
            let m = PodMetrics::default();
            let mut e = busy_entry(provider, &m);
            e.observed_in_api(&pod("a", "u2", "Pending"), &m);
            assert!(e.stale_provider_pod.is_none(), "{provider:?}");
            assert_eq!(e.provider, InProvider::Absent);
        }
    }

    #[test]
    fn the_same_uid_again_only_updates_the_object_and_phase() {
        let m = PodMetrics::default();
        let mut e = busy_entry(InProvider::Created { fingerprint: 3 }, &m);
        e.observed_in_api(&pod("a", "u1", "Succeeded"), &m);
        assert_eq!(e.provider, InProvider::Created { fingerprint: 3 });
        assert!(e.provider_status.is_some() && e.provider_lost && e.api_deleted);
        assert_eq!(e.last_patch, Some(7));
        assert!(e.stale_provider_pod.is_none());
        assert_eq!(e.phase, Phase::Succeeded);
        assert_eq!(
            (m.pods_in(Phase::Running), m.pods_in(Phase::Succeeded)),
            (0, 1)
        );
        e.forget(&m);
        assert_eq!(m.pods_in(Phase::Succeeded), 0);
    }

    #[test]
    fn removed_from_api_keeps_the_last_known_object() {
        let m = PodMetrics::default();
        let mut e = Entry::new(&pod("a", "u1", "Running"), &m);
        e.removed_from_api();
        assert!(!e.in_api());
        assert_eq!(uid_of(&e.last_known).as_deref(), Some("u1"));
        let snap = Snapshot::decode(e.clone());
        assert!(snap.api.is_none());
        assert_eq!(snap.last_known.metadata.uid.as_deref(), Some("u1"));
        // Still counted until forgotten.
        assert_eq!(m.pods_in(Phase::Running), 1);
    }

    #[test]
    fn a_status_report_about_another_uid_is_ignored() {
        let m = PodMetrics::default();
        let mut e = Entry::new(&pod("a", "u2", "Running"), &m);
        e.provider_lost_it();
        assert!(!e.provider_reported(Some("u1"), status("Failed")));
        assert!(e.provider_status.is_none());
        assert!(e.provider_lost);
        assert!(e.provider_reported(Some("u2"), status("Running")));
        assert_eq!(e.provider_status, Some(status("Running")));
        assert!(!e.provider_lost);
        // A report without UID is matched by name.
        assert!(e.provider_reported(None, status("Succeeded")));
        assert_eq!(e.provider_status, Some(status("Succeeded")));
    }

    #[test]
    fn the_uid_guard_drops_a_transition_for_a_replaced_pod() {
        let m = PodMetrics::default();
        let mut e = Entry::new(&pod("a", "u1", "Running"), &m);
        e.observed_in_api(&pod("a", "u2", "Pending"), &m);
        let late = Transition::SpecSent { fingerprint: 9 };
        assert!(!e.apply_for(Some("u1"), late));
        assert_eq!(e.provider, InProvider::Absent);
        assert!(!e.apply_for(None, Transition::RemovedWithGraceZero));
        assert!(!e.api_deleted);
        assert!(e.apply_for(Some("u2"), late));
        assert_eq!(e.provider, InProvider::Created { fingerprint: 9 });
    }

    #[test]
    fn sync_transitions_move_the_provider_copy_along_the_documented_states() {
        let m = PodMetrics::default();
        let mut e = Entry::new(&pod("a", "u1", "Running"), &m);
        let steps = [
            (
                Transition::SpecSent { fingerprint: 1 },
                InProvider::Created { fingerprint: 1 },
            ),
            (
                Transition::SpecSent { fingerprint: 2 },
                InProvider::Created { fingerprint: 2 },
            ),
            (Transition::DeleteRequested, InProvider::Deleting),
            (Transition::ProviderGone, InProvider::Gone),
        ];
        for (t, want) in steps {
            e.apply(t);
            assert_eq!(e.provider, want, "after {t:?}");
        }
        assert!(!e.api_deleted);
        e.apply(Transition::StatusWritten { fingerprint: 5 });
        assert_eq!(e.last_patch, Some(5));
        e.spec_sent(3);
        e.apply(Transition::RemovedWithGraceZero);
        assert_eq!(e.provider, InProvider::Gone);
        assert!(e.api_deleted);
    }

    #[test]
    fn adoption_records_the_copy_and_its_status_and_a_stale_copy_waits_for_removal() {
        let m = PodMetrics::default();
        let mut e = Entry::new(&pod("a", "u2", "Running"), &m);
        e.adopted(4, Some(status("Running")));
        assert_eq!(e.provider, InProvider::Created { fingerprint: 4 });
        assert_eq!(e.provider_status, Some(status("Running")));
        e.adopted(4, None);
        assert!(e.provider_status.is_none());
        e.stale_copy_found(Compact::new(&pod("a", "u1", "Running")));
        let snap = Snapshot::decode(e.clone());
        assert_eq!(
            snap.stale.and_then(|p| p.metadata.uid.clone()).as_deref(),
            Some("u1")
        );
        // A removal reported for another pod leaves this stale copy in place.
        e.stale_pod_removed(Some("u0"));
        assert!(e.stale_provider_pod.is_some());
        e.stale_pod_removed(Some("u1"));
        assert!(e.stale_provider_pod.is_none());
    }

    #[test]
    fn only_created_or_deleting_copies_may_run() {
        assert!(InProvider::Created { fingerprint: 0 }.may_run());
        assert!(InProvider::Deleting.may_run());
        assert!(!InProvider::Absent.may_run());
        assert!(!InProvider::Gone.may_run());
    }
}
