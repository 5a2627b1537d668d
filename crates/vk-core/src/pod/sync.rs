//! Processing one pod key: the level-triggered reconcile step.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use tracing::{debug, info, warn};

use super::entry::{InProvider, Snapshot, Transition};
use super::observe::{self, CallTarget, ProviderOp, SyncOperation};
use super::spec::spec_fingerprint;
use super::status::{
    is_terminal_phase, not_found_patch, phase, provider_failed_patch, reports_terminated,
    status_patch,
};
use super::{PodKey, Shared, bump};
use crate::env::{self, EnvContext};
use crate::events::{pod_ref, reasons};
use crate::kube_errors::{is_conflict, is_not_found};

/// What to do with the key after processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Nothing left to do until something changes.
    Done,
    /// Look again after this long (waiting for a deadline, not a failure).
    RequeueAfter(Duration),
    /// Failed: retry with backoff.
    Retry,
}

impl Shared {
    /// The entry of `key`, copied under the lock and decoded outside it.
    fn snapshot(&self, key: &PodKey) -> Option<Snapshot> {
        let entry = self.lock_entries().get(key)?.clone();
        Some(Snapshot::decode(entry))
    }

    /// Applies `transition` to the entry of `key` if it still describes the pod with
    /// `uid` ([`Entry::apply_for`](super::entry::Entry::apply_for)): the result of a
    /// sync of a pod that was since replaced by another of the same name is dropped.
    fn transition(&self, key: &PodKey, uid: Option<&str>, transition: Transition) {
        if let Some(entry) = self.lock_entries().get_mut(key) {
            entry.apply_for(uid, transition);
        }
    }

    pub(super) async fn sync(&self, key: &PodKey) -> Outcome {
        let Some(snap) = self.snapshot(key) else {
            return Outcome::Done;
        };
        if let Some(uid) = snap.last_known.metadata.uid.as_deref() {
            tracing::Span::current().record(crate::trace_fields::POD_UID, uid);
        }
        if let Some(stale) = &snap.stale {
            match self.provider_delete(stale, false).await {
                Ok(_) => {
                    // Only that copy: another may have become stale during the delete.
                    if let Some(e) = self.lock_entries().get_mut(key) {
                        e.stale_pod_removed(stale.metadata.uid.as_deref());
                    }
                }
                Err(()) => return Outcome::Retry,
            }
        }
        match &snap.api {
            None => self.sync_removed(key, &snap).await,
            Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                self.sync_deleting(key, pod, &snap).await
            }
            Some(pod) => self.sync_present(key, pod, &snap).await,
        }
    }

    /// The API no longer has the pod (finished graceful delete, force delete, or gone
    /// during a relist): make sure the provider does not have it either.
    async fn sync_removed(&self, key: &PodKey, snap: &Snapshot) -> Outcome {
        if snap.provider.may_run() {
            let announce = matches!(snap.provider, InProvider::Created { .. });
            if self
                .provider_delete(&snap.last_known, announce)
                .await
                .is_err()
            {
                return Outcome::Retry;
            }
        }
        let mut entries = self.lock_entries();
        if entries.get(key).is_some_and(|e| !e.in_api())
            && let Some(gone) = entries.remove(key)
        {
            gone.forget(&self.metrics);
        }
        Outcome::Done
    }

    /// A pod that exists and is not being deleted: create/update in the provider and
    /// write its status.
    async fn sync_present(&self, key: &PodKey, pod: &Arc<Pod>, snap: &Snapshot) -> Outcome {
        if is_terminal_phase(phase(pod)) && matches!(snap.provider, InProvider::Absent) {
            // Finished before we saw it (or never ours to run): leave it untouched.
            return Outcome::Done;
        }
        let fingerprint = spec_fingerprint(pod);
        match snap.provider {
            InProvider::Absent => {
                if !self.create_or_update(key, pod, fingerprint, true).await {
                    return Outcome::Retry;
                }
            }
            InProvider::Created { fingerprint: sent } if sent != fingerprint => {
                if !self.create_or_update(key, pod, fingerprint, false).await {
                    return Outcome::Retry;
                }
            }
            InProvider::Gone | InProvider::Deleting | InProvider::Created { .. } => {}
        }
        if snap.provider_lost && !matches!(snap.provider, InProvider::Absent) {
            let now = Time(Timestamp::now());
            if let Some(patch) = not_found_patch(pod, now) {
                info!(pod = %key, "provider lost the pod; marking it Failed");
                if !self.patch_status(key, pod, patch, None).await {
                    return Outcome::Retry;
                }
            }
            return Outcome::Done;
        }
        if let Some(status) = &snap.provider_status
            && let Some(patch) = status_patch(pod, status, self.node.host_ip.as_deref())
            && !self.patch_status(key, pod, patch, snap.last_patch).await
        {
            return Outcome::Retry;
        }
        Outcome::Done
    }

    /// A pod with a deletionTimestamp.
    async fn sync_deleting(&self, key: &PodKey, pod: &Arc<Pod>, snap: &Snapshot) -> Outcome {
        if snap.api_deleted {
            // Already removed with grace 0; the watch's Delete event will follow.
            return Outcome::Done;
        }
        let mut state = snap.provider;
        let mut status = snap.provider_status.clone();
        if let InProvider::Created { .. } = state {
            let (next, transition) = match self.provider_delete(pod, true).await {
                Ok(true) => (InProvider::Deleting, Transition::DeleteRequested),
                Ok(false) => (InProvider::Gone, Transition::ProviderGone),
                Err(()) => return Outcome::Retry,
            };
            state = next;
            self.transition(key, pod.metadata.uid.as_deref(), transition);
        }
        let mut finished =
            matches!(state, InProvider::Absent | InProvider::Gone) || snap.provider_lost;
        if !finished && let Some(s) = &status {
            finished = reports_terminated(s);
        }
        if !finished && !self.has_notifier.load(std::sync::atomic::Ordering::SeqCst) {
            // No notifier: ask the provider directly.
            let call = self.provider.get_pod_status(&key.namespace, &key.name);
            let target = CallTarget::pod(pod, &self.node.node_name);
            match observe::provider_call(&self.metrics, ProviderOp::GetPodStatus, target, call)
                .await
            {
                Ok(None) => finished = true,
                Ok(Some(s)) => {
                    finished = reports_terminated(&s);
                    status = Some(s);
                }
                Err(e) if vk_errdefs::is_not_found(&e) => finished = true,
                Err(e) => debug!(pod = %key, error = %e, "reading status during delete failed"),
            }
        }
        if finished {
            // Write the final status (exit codes) once, then remove the API object.
            if let Some(s) = status
                .as_ref()
                .filter(|_| !matches!(state, InProvider::Absent))
                && let Some(patch) = status_patch(pod, s, self.node.host_ip.as_deref())
            {
                let _ = self.patch_status(key, pod, patch, snap.last_patch).await;
            }
            return if self.final_delete(key, pod).await {
                Outcome::Done
            } else {
                Outcome::Retry
            };
        }
        // Still stopping: come back when the grace period ends (or to poll).
        let deadline = pod
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(Timestamp::now);
        let left = deadline.duration_since(Timestamp::now());
        if left.is_negative() || left.is_zero() {
            info!(pod = %key, "grace period over; removing the pod");
            return if self.final_delete(key, pod).await {
                Outcome::Done
            } else {
                Outcome::Retry
            };
        }
        let left = Duration::try_from(left).unwrap_or(Duration::from_secs(1));
        let wait = if self.has_notifier.load(std::sync::atomic::Ordering::SeqCst) {
            left
        } else {
            left.min(self.config.status_poll_interval)
        };
        Outcome::RequeueAfter(wait + Duration::from_millis(10))
    }

    /// Resolves env and calls create_pod (`create`) or update_pod. Returns success.
    async fn create_or_update(
        &self,
        key: &PodKey,
        pod: &Arc<Pod>,
        fingerprint: u64,
        create: bool,
    ) -> bool {
        let ctx = EnvContext {
            host_ip: self.node.host_ip.clone(),
            pod_ip: self.provider.pod_ip_hint(pod).map(|ip| ip.to_string()),
            node_allocatable: self.node.allocatable.clone(),
            keep_secret_refs: self.provider.keep_secret_env_refs(),
        };
        let resolved = match env::resolve(pod, &ctx, &self.resources).await {
            Ok(r) => r,
            Err(failed) => {
                for ev in failed.events {
                    self.events.record(
                        pod_ref(pod),
                        ev.warning,
                        ev.reason,
                        "ResolveEnv",
                        ev.message,
                    );
                }
                self.mark_failed(key, pod, &failed.error.message).await;
                return false;
            }
        };
        for ev in resolved.events {
            self.events.record(
                pod_ref(pod),
                ev.warning,
                ev.reason,
                "ResolveEnv",
                ev.message,
            );
        }
        let target = CallTarget::pod(pod, &self.node.node_name);
        let result = if create {
            observe::note(SyncOperation::Create);
            let call = self.provider.create_pod(&resolved.pod);
            observe::provider_call(&self.metrics, ProviderOp::CreatePod, target, call).await
        } else {
            observe::note(SyncOperation::Update);
            let call = self.provider.update_pod(&resolved.pod);
            observe::provider_call(&self.metrics, ProviderOp::UpdatePod, target, call).await
        };
        match result {
            Ok(()) => {}
            Err(e) if create && vk_errdefs::is_already_exists(&e) => {}
            Err(e) => {
                let (reason, verb) = if create {
                    (reasons::PROVIDER_CREATE_FAILED, "Create")
                } else {
                    (reasons::PROVIDER_UPDATE_FAILED, "Update")
                };
                warn!(pod = %key, error = %e, "provider {verb} failed");
                self.events
                    .record(pod_ref(pod), true, reason, verb, e.to_string());
                self.mark_failed(key, pod, &e.to_string()).await;
                return false;
            }
        }
        if create {
            bump(&self.stats.creates);
            self.success_event(
                pod,
                reasons::PROVIDER_CREATE_SUCCESS,
                "Create pod in provider successfully",
            );
        } else {
            bump(&self.stats.updates);
            self.success_event(
                pod,
                reasons::PROVIDER_UPDATE_SUCCESS,
                "Update pod in provider successfully",
            );
        }
        self.transition(
            key,
            pod.metadata.uid.as_deref(),
            Transition::SpecSent { fingerprint },
        );
        true
    }

    fn success_event(&self, pod: &Pod, reason: &str, note: &str) {
        if self.config.success_events {
            let action = match reason {
                reasons::PROVIDER_CREATE_SUCCESS => "Create",
                reasons::PROVIDER_UPDATE_SUCCESS => "Update",
                _ => "Delete",
            };
            self.events
                .record(pod_ref(pod), false, reason, action, note);
        }
    }

    async fn mark_failed(&self, key: &PodKey, pod: &Arc<Pod>, message: &str) {
        if let Some(patch) = provider_failed_patch(pod, message) {
            let _ = self.patch_status(key, pod, patch, None).await;
        }
    }

    /// Calls the provider's `delete_pod`; `Ok(true)` when it had the pod, `Ok(false)` on
    /// NotFound (already gone). Failures are logged and recorded as a Warning event; with
    /// `announce`, success is recorded as a Normal event.
    async fn provider_delete(&self, pod: &Pod, announce: bool) -> Result<bool, ()> {
        observe::note(SyncOperation::Delete);
        let call = self.provider.delete_pod(pod);
        let target = CallTarget::pod(pod, &self.node.node_name);
        match observe::provider_call(&self.metrics, ProviderOp::DeletePod, target, call).await {
            Ok(()) => {
                bump(&self.stats.deletes);
                if announce {
                    self.success_event(
                        pod,
                        reasons::PROVIDER_DELETE_SUCCESS,
                        "Delete pod in provider successfully",
                    );
                }
                Ok(true)
            }
            Err(e) if vk_errdefs::is_not_found(&e) => {
                bump(&self.stats.deletes);
                Ok(false)
            }
            Err(e) => {
                warn!(pod = %PodKey::of(pod), error = %e, "provider delete failed");
                self.events.record(
                    pod_ref(pod),
                    true,
                    reasons::PROVIDER_DELETE_FAILED,
                    "Delete",
                    e.to_string(),
                );
                Err(())
            }
        }
    }

    /// Writes a status patch unless it is the one we sent last. Returns success.
    async fn patch_status(
        &self,
        key: &PodKey,
        pod: &Pod,
        patch: serde_json::Value,
        last: Option<u64>,
    ) -> bool {
        let text = patch.to_string();
        let mut h = DefaultHasher::new();
        text.hash(&mut h);
        let fp = h.finish();
        if last == Some(fp) {
            return true;
        }
        observe::note(SyncOperation::Status);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {
                bump(&self.stats.status_patches);
                self.transition(
                    key,
                    pod.metadata.uid.as_deref(),
                    Transition::StatusWritten { fingerprint: fp },
                );
                true
            }
            // The pod is gone or was replaced (UID mismatch): nothing to write.
            Err(e) if is_not_found(&e) || is_conflict(&e) => true,
            Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains("uid") => true,
            Err(e) => {
                warn!(pod = %key, error = %e, "writing pod status failed");
                false
            }
        }
    }

    /// Removes the pod from the API with grace 0, only if it is still the same pod.
    async fn final_delete(&self, key: &PodKey, pod: &Pod) -> bool {
        observe::note(SyncOperation::Delete);
        let uid = pod.metadata.uid.as_deref();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&key.name, &params).await {
            Ok(_) => {
                bump(&self.stats.api_deletes);
                self.transition(key, uid, Transition::RemovedWithGraceZero);
                true
            }
            Err(e) if is_not_found(&e) || is_conflict(&e) => {
                self.transition(key, uid, Transition::RemovedWithGraceZero);
                true
            }
            Err(e) => {
                warn!(pod = %key, error = %e, "deleting the pod from the API failed");
                false
            }
        }
    }
}
