//! Start-up reconciliation with the provider, dangling-pod clean-up, and status polling
//! for providers without a notifier.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::entry::same_pod;
use super::observe::{self, CallTarget, ProviderOp};
use super::spec::{provider_copy_is_stale, spec_fingerprint};
use super::{PodKey, Shared, bump};
use crate::compact::Compact;
use crate::kube_errors::from_kube;
use crate::phase;
use crate::provider::PodRef;

/// Before any worker runs: adopt provider pods the API has, delete those it does not.
/// Returns false on shutdown. The provider's pods are visited one at a time, so a
/// backend with thousands of pods is never held in memory all at once.
pub(super) async fn initial_reconcile(shared: &Arc<Shared>, shutdown: &CancellationToken) -> bool {
    let mut delay = Duration::from_millis(500);
    let dangling = loop {
        let mut dangling = Vec::new();
        let mut adopted = 0u64;
        let mut visit = |provider_pod: Pod| {
            let key = PodKey::of(&provider_pod);
            let mut entries = shared.lock_entries();
            let Some(entry) = entries.get_mut(&key) else {
                dangling.push(provider_pod);
                return;
            };
            let Some(api) = entry.api().map(|c| c.decode()) else {
                dangling.push(provider_pod);
                return;
            };
            if !same_pod(
                provider_pod.metadata.uid.as_deref(),
                api.metadata.uid.as_deref(),
            ) {
                // An older pod of the same name: delete it, then create the new one.
                entry.stale_copy_found(Compact::new(&provider_pod));
                return;
            }
            // Adopt. A copy that is behind in a mutable field gets an update (the
            // fingerprint 0 never matches).
            let fingerprint = if provider_copy_is_stale(&api, &provider_pod) {
                0
            } else {
                spec_fingerprint(&api)
            };
            entry.adopted(fingerprint, provider_pod.status.as_ref().map(Compact::new));
            adopted += 1;
        };
        match shared.provider.visit_pods(&mut visit).await {
            Ok(()) => {
                shared
                    .stats
                    .adopted
                    .fetch_add(adopted, std::sync::atomic::Ordering::Relaxed);
                if adopted > 0 || !dangling.is_empty() {
                    info!(
                        adopted,
                        dangling = dangling.len(),
                        "reconciled with the provider's pods"
                    );
                }
                break dangling;
            }
            Err(e) => warn!(error = %e, "listing the provider's pods failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    };
    delete_dangling(shared, dangling).await;
    true
}

/// Deletes provider pods the API does not have, after confirming with a live GET.
async fn delete_dangling(shared: &Shared, candidates: Vec<Pod>) {
    for pod in candidates {
        delete_if_dangling(shared, &PodRef::of(&pod), Some(pod)).await;
    }
}

/// Deletes the provider pod `r` unless a live GET shows the API has it (bound to this
/// node, same UID). `pod` is the provider's copy when already at hand.
async fn delete_if_dangling(shared: &Shared, r: &PodRef, pod: Option<Pod>) {
    let key = PodKey {
        namespace: r.namespace.clone(),
        name: r.name.clone(),
    };
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &key.namespace);
    match api.get_opt(&key.name).await {
        Ok(Some(live)) => {
            let same = same_pod(live.metadata.uid.as_deref(), r.uid.as_deref());
            let ours = live.spec.as_ref().and_then(|s| s.node_name.as_deref())
                == Some(shared.node.node_name.as_str());
            if same && ours {
                // The API has it after all (our view was behind): keep it.
                return;
            }
        }
        Ok(None) => {}
        Err(e) => {
            warn!(pod = %key, error = %from_kube("checking a dangling pod", e), "not deleting");
            return;
        }
    }
    let pod = match pod {
        Some(p) => p,
        None => match shared.provider.get_pod(&key.namespace, &key.name).await {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                warn!(pod = %key, error = %e, "reading a dangling pod failed");
                return;
            }
        },
    };
    info!(pod = %key, "deleting dangling pod from the provider");
    let call = shared.provider.delete_pod(&pod);
    let target = CallTarget::pod(&pod, &shared.node.node_name);
    match observe::provider_call(&shared.metrics, ProviderOp::DeletePod, target, call).await {
        Ok(()) => bump(&shared.stats.dangling_deleted),
        Err(e) if vk_errdefs::is_not_found(&e) => {}
        Err(e) => warn!(pod = %key, error = %e, "deleting dangling pod failed"),
    }
}

/// Periodic work: dangling-pod clean-up, and status polling without a notifier.
pub(super) async fn periodic(shared: &Arc<Shared>, shutdown: &CancellationToken) {
    let polling = !shared
        .has_notifier
        .load(std::sync::atomic::Ordering::SeqCst);
    // At the node's phase, the first within one period (start-up already looked for
    // dangling pods): the nodes of a fleet sharing a slot are woken together.
    let node = &shared.node.node_name;
    let mut dangling_tick = phase::interval(node, shared.config.dangling_check_interval);
    let mut poll_tick = phase::interval(node, shared.config.status_poll_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = dangling_tick.tick() => check_dangling(shared).await,
            _ = poll_tick.tick(), if polling => poll_statuses(shared).await,
        }
    }
}

async fn check_dangling(shared: &Shared) {
    let refs = match shared.provider.get_pod_refs().await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "listing the provider's pods for clean-up failed");
            return;
        }
    };
    // Each ref's strings move into the lookup key and back (no copy per pod: a
    // 1,000-node fleet holding 100,000 pods checks them all every minute).
    let candidates: Vec<PodRef> = {
        let entries = shared.lock_entries();
        refs.into_iter()
            .filter_map(|r| {
                let key = PodKey {
                    namespace: r.namespace,
                    name: r.name,
                };
                let dangling = match entries.get(&key) {
                    None => true,
                    Some(e) => !e.in_api() && !e.provider().may_run(),
                };
                dangling.then_some(PodRef {
                    namespace: key.namespace,
                    name: key.name,
                    uid: r.uid,
                })
            })
            .collect()
    };
    for r in candidates {
        delete_if_dangling(shared, &r, None).await;
    }
}

/// One `get_pods` call for all pods: records changed statuses and pods the provider lost.
async fn poll_statuses(shared: &Shared) {
    let target = CallTarget {
        namespace: "",
        name: "",
        uid: "",
        node: &shared.node.node_name,
    };
    let call = shared.provider.get_pods();
    let pods =
        match observe::provider_call(&shared.metrics, ProviderOp::GetPods, target, call).await {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "polling the provider's pod statuses failed");
                return;
            }
        };
    let mut by_key: HashMap<PodKey, Pod> = pods.into_iter().map(|p| (PodKey::of(&p), p)).collect();
    let mut changed = Vec::new();
    {
        let mut entries = shared.lock_entries();
        for (key, entry) in entries.iter_mut() {
            if !entry.provider().may_run() {
                continue;
            }
            match by_key.remove(key) {
                Some(p) => {
                    let Some(status) = p.status.as_ref().map(Compact::new) else {
                        continue;
                    };
                    // Matched by name: the poll does not compare UIDs (`None`).
                    if entry.provider_status() != Some(&status) {
                        entry.provider_reported(None, status);
                        changed.push(key.clone());
                    }
                }
                None => {
                    if !entry.provider_lost() {
                        entry.provider_lost_it();
                        changed.push(key.clone());
                    }
                }
            }
        }
    }
    for key in changed {
        shared.enqueue(key);
    }
}
