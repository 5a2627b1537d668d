//! What the pod controller measures: sync durations by operation and result, provider
//! call durations and errors, and pods by phase (see [`crate::metrics`] for the exposed
//! names and [`crate::trace_fields`] for the span conventions).

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tracing::Instrument as _;

use crate::metrics::histogram::{DurationHistogram, HistogramSnapshot};
use crate::trace_fields::{self, operation, result};

/// What a pod sync did, in increasing significance (the most significant of a sync is
/// reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SyncOperation {
    /// Nothing needed doing.
    None = 0,
    /// Only the status was written.
    Status = 1,
    /// The spec was updated in the provider.
    Update = 2,
    /// The pod was created in the provider.
    Create = 3,
    /// The pod was deleted from the provider and/or the API.
    Delete = 4,
}

impl SyncOperation {
    /// Every operation, in label order.
    pub const ALL: [SyncOperation; 5] = [
        SyncOperation::Create,
        SyncOperation::Update,
        SyncOperation::Delete,
        SyncOperation::Status,
        SyncOperation::None,
    ];

    /// The `vk.operation` value / `operation` label.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOperation::None => operation::NONE,
            SyncOperation::Status => operation::STATUS,
            SyncOperation::Update => operation::UPDATE,
            SyncOperation::Create => operation::CREATE,
            SyncOperation::Delete => operation::DELETE,
        }
    }
}

/// How a pod sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncResult {
    /// Done until something changes.
    Ok = 0,
    /// Looked at again after a deadline.
    Requeue = 1,
    /// Failed, retried with backoff.
    Retry = 2,
}

impl SyncResult {
    /// Every result, in label order.
    pub const ALL: [SyncResult; 3] = [SyncResult::Ok, SyncResult::Requeue, SyncResult::Retry];

    /// The `vk.result` value / `result` label.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncResult::Ok => result::OK,
            SyncResult::Requeue => result::REQUEUE,
            SyncResult::Retry => result::RETRY,
        }
    }
}

/// A provider operation the controller measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderOp {
    /// `create_pod`.
    CreatePod = 0,
    /// `update_pod`.
    UpdatePod = 1,
    /// `delete_pod`.
    DeletePod = 2,
    /// `get_pod_status`.
    GetPodStatus = 3,
    /// `get_pods` (status polling).
    GetPods = 4,
}

impl ProviderOp {
    /// Every operation, in label order.
    pub const ALL: [ProviderOp; 5] = [
        ProviderOp::CreatePod,
        ProviderOp::UpdatePod,
        ProviderOp::DeletePod,
        ProviderOp::GetPodStatus,
        ProviderOp::GetPods,
    ];

    /// The `operation` label: the trait method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderOp::CreatePod => "create_pod",
            ProviderOp::UpdatePod => "update_pod",
            ProviderOp::DeletePod => "delete_pod",
            ProviderOp::GetPodStatus => "get_pod_status",
            ProviderOp::GetPods => "get_pods",
        }
    }
}

/// The `kind` labels of provider errors, in the order of their counters.
pub const ERROR_KINDS: [&str; 8] = [
    "not_found",
    "invalid_input",
    "already_exists",
    "conflict",
    "unavailable",
    "not_implemented",
    "forbidden",
    "unknown",
];

fn kind_slot(kind: &str) -> usize {
    ERROR_KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(ERROR_KINDS.len() - 1)
}

/// A pod's phase as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `Pending`.
    Pending = 0,
    /// `Running`.
    Running = 1,
    /// `Succeeded`.
    Succeeded = 2,
    /// `Failed`.
    Failed = 3,
    /// `Unknown`, or no phase.
    Unknown = 4,
}

impl Phase {
    /// Every phase, in label order.
    pub const ALL: [Phase; 5] = [
        Phase::Pending,
        Phase::Running,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Unknown,
    ];

    /// The phase of `pod`.
    pub fn of(pod: &Pod) -> Self {
        match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Pending") => Phase::Pending,
            Some("Running") => Phase::Running,
            Some("Succeeded") => Phase::Succeeded,
            Some("Failed") => Phase::Failed,
            _ => Phase::Unknown,
        }
    }

    /// The `phase` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Unknown => "Unknown",
        }
    }
}

/// Measurements of one node's pod controller. Cheap to record into: every observation
/// is a couple of relaxed atomic adds; nothing allocates.
#[derive(Debug, Default)]
pub struct PodMetrics {
    /// `[operation][result]`, indexed by the enums' discriminants.
    syncs: [[DurationHistogram; 3]; 5],
    provider_calls: [DurationHistogram; 5],
    /// `[operation][kind]`.
    provider_errors: [[AtomicU64; ERROR_KINDS.len()]; 5],
    phases: [AtomicI64; 5],
}

impl PodMetrics {
    pub(crate) fn observe_sync(&self, op: SyncOperation, res: SyncResult, elapsed: Duration) {
        self.syncs[op as usize][res as usize].observe(elapsed);
    }

    fn observe_call(&self, op: ProviderOp, started: Instant, error_kind: Option<&str>) {
        self.provider_calls[op as usize].observe(started.elapsed());
        if let Some(kind) = error_kind {
            self.provider_errors[op as usize][kind_slot(kind)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Moves one pod between phases: `from` `None` when it starts being tracked, `to`
    /// `None` when it stops. Called under the entries lock, so counts stay consistent
    /// with the entries.
    pub(crate) fn move_phase(&self, from: Option<Phase>, to: Option<Phase>) {
        if from == to {
            return;
        }
        if let Some(p) = from {
            self.phases[p as usize].fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(p) = to {
            self.phases[p as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tracked pods in `phase`.
    pub fn pods_in(&self, phase: Phase) -> i64 {
        self.phases[phase as usize].load(Ordering::Relaxed)
    }

    /// Adds this node's sync histogram for (`op`, `res`) to `into`.
    pub fn add_sync(&self, op: SyncOperation, res: SyncResult, into: &mut HistogramSnapshot) {
        into.add(&self.syncs[op as usize][res as usize]);
    }

    /// Adds this node's provider call histogram for `op` to `into`.
    pub fn add_provider_call(&self, op: ProviderOp, into: &mut HistogramSnapshot) {
        into.add(&self.provider_calls[op as usize]);
    }

    /// Provider calls of `op` that returned an error of `kind` (an [`ERROR_KINDS`] value).
    pub fn provider_errors(&self, op: ProviderOp, kind: &str) -> u64 {
        self.provider_errors[op as usize][kind_slot(kind)].load(Ordering::Relaxed)
    }
}

tokio::task_local! {
    /// The most significant operation of the sync running in this task.
    static SYNC_OPERATION: Cell<SyncOperation>;
}

/// Notes that the current sync did `op` (no-op outside a sync).
pub(super) fn note(op: SyncOperation) {
    let _ = SYNC_OPERATION.try_with(|c| c.set(c.get().max(op)));
}

/// Runs `sync` with operation tracking; returns its output and what it did.
pub(super) async fn tracking_operation<T>(sync: impl Future<Output = T>) -> (T, SyncOperation) {
    SYNC_OPERATION
        .scope(Cell::new(SyncOperation::None), async {
            let out = sync.await;
            (out, SYNC_OPERATION.with(Cell::get))
        })
        .await
}

/// Who a provider call is about, for its span.
#[derive(Debug, Clone, Copy)]
pub(super) struct CallTarget<'a> {
    pub(super) namespace: &'a str,
    pub(super) name: &'a str,
    pub(super) uid: &'a str,
    pub(super) node: &'a str,
}

impl<'a> CallTarget<'a> {
    pub(super) fn pod(pod: &'a Pod, node: &'a str) -> Self {
        Self {
            namespace: pod.metadata.namespace.as_deref().unwrap_or_default(),
            name: pod.metadata.name.as_deref().unwrap_or_default(),
            uid: pod.metadata.uid.as_deref().unwrap_or_default(),
            node,
        }
    }
}

macro_rules! call_span {
    ($name:expr, $t:expr) => {
        tracing::info_span!(
            $name,
            pod.namespace = $t.namespace,
            pod.name = $t.name,
            pod.uid = $t.uid,
            node.name = $t.node,
            error.kind = tracing::field::Empty,
        )
    };
}

/// Calls the provider inside its span (`provider.<op>`), measuring duration and errors.
pub(super) async fn provider_call<T>(
    metrics: &PodMetrics,
    op: ProviderOp,
    target: CallTarget<'_>,
    call: impl Future<Output = vk_errdefs::Result<T>>,
) -> vk_errdefs::Result<T> {
    let span = match op {
        ProviderOp::CreatePod => call_span!(trace_fields::PROVIDER_CREATE_POD, target),
        ProviderOp::UpdatePod => call_span!(trace_fields::PROVIDER_UPDATE_POD, target),
        ProviderOp::DeletePod => call_span!(trace_fields::PROVIDER_DELETE_POD, target),
        ProviderOp::GetPodStatus => call_span!(trace_fields::PROVIDER_GET_POD_STATUS, target),
        ProviderOp::GetPods => tracing::info_span!(
            trace_fields::PROVIDER_GET_PODS,
            node.name = target.node,
            error.kind = tracing::field::Empty,
        ),
    };
    let started = Instant::now();
    let out = call.instrument(span.clone()).await;
    let kind = out
        .as_ref()
        .err()
        .map(|e| trace_fields::error_kind(e.kind()));
    if let Some(kind) = kind {
        span.record(trace_fields::ERROR_KIND, kind);
    }
    metrics.observe_call(op, started, kind);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_moves_keep_counts() {
        let m = PodMetrics::default();
        m.move_phase(None, Some(Phase::Pending));
        m.move_phase(None, Some(Phase::Pending));
        m.move_phase(Some(Phase::Pending), Some(Phase::Running));
        m.move_phase(Some(Phase::Running), Some(Phase::Running));
        assert_eq!(m.pods_in(Phase::Pending), 1);
        assert_eq!(m.pods_in(Phase::Running), 1);
        m.move_phase(Some(Phase::Running), None);
        m.move_phase(Some(Phase::Pending), None);
        for p in Phase::ALL {
            assert_eq!(m.pods_in(p), 0, "{p:?}");
        }
    }

    #[tokio::test]
    async fn the_most_significant_operation_wins() {
        let ((), op) = tracking_operation(async {
            note(SyncOperation::Status);
            note(SyncOperation::Create);
            note(SyncOperation::Status);
        })
        .await;
        assert_eq!(op, SyncOperation::Create);
        let ((), op) = tracking_operation(async {}).await;
        assert_eq!(op, SyncOperation::None);
        note(SyncOperation::Delete); // outside a sync: ignored
    }

    #[tokio::test]
    async fn provider_calls_count_errors_by_kind() {
        let m = PodMetrics::default();
        let target = CallTarget {
            namespace: "ns",
            name: "p",
            uid: "u",
            node: "n",
        };
        let r: vk_errdefs::Result<()> = provider_call(&m, ProviderOp::DeletePod, target, async {
            Err(vk_errdefs::Error::unavailable("down"))
        })
        .await;
        assert!(r.is_err());
        provider_call(&m, ProviderOp::DeletePod, target, async { Ok(()) })
            .await
            .expect("ok");
        let mut h = HistogramSnapshot::default();
        m.add_provider_call(ProviderOp::DeletePod, &mut h);
        assert_eq!(h.count(), 2);
        assert_eq!(m.provider_errors(ProviderOp::DeletePod, "unavailable"), 1);
        assert_eq!(m.provider_errors(ProviderOp::DeletePod, "not_found"), 0);
    }
}
