//! Span and field conventions of the controllers: the names `vk-trace`, log queries and
//! trace back-ends can rely on.
//!
//! # Spans
//!
//! | span | level | fields | what it covers |
//! |---|---|---|---|
//! | [`POD_SYNC`] (`pod.sync`) | INFO | [`POD_NAMESPACE`], [`POD_NAME`], [`POD_UID`], [`NODE_NAME`], [`OPERATION`], [`RESULT`] | one level-triggered sync of one pod key by a worker |
//! | [`PROVIDER_CREATE_POD`] (`provider.create_pod`) | INFO | pod and node fields, [`ERROR_KIND`] | `PodLifecycleHandler::create_pod` |
//! | [`PROVIDER_UPDATE_POD`] (`provider.update_pod`) | INFO | same | `update_pod` |
//! | [`PROVIDER_DELETE_POD`] (`provider.delete_pod`) | INFO | same | `delete_pod` (also for dangling pods, outside a `pod.sync`) |
//! | [`PROVIDER_GET_POD_STATUS`] (`provider.get_pod_status`) | INFO | same | `get_pod_status` while a delete is pending without a notifier |
//! | [`PROVIDER_GET_PODS`] (`provider.get_pods`) | INFO | [`NODE_NAME`], [`ERROR_KIND`] | the status poll of providers without a notifier |
//! | [`NODE_STATUS_UPDATE`] (`node.status_update`) | DEBUG | [`NODE_NAME`] | one Node status patch |
//! | [`NODE_LEASE_RENEW`] (`node.lease_renew`) | DEBUG | [`NODE_NAME`] | one Lease renewal |
//!
//! Provider spans inside a sync are children of its `pod.sync` span; API requests and
//! events logged during a sync carry its fields.
//!
//! # Fields
//!
//! * `pod.uid` is recorded as soon as the sync has read the pod (empty for a key whose
//!   pod is no longer tracked).
//! * `vk.operation` is what the sync did, one of [`operation`]'s values; when one sync
//!   does several things the most significant wins (delete > create > update > status).
//! * `vk.result` is one of [`result`]'s values.
//! * `error.kind` is recorded when a provider call returns an error: the snake_case
//!   name of its [`vk_errdefs::ErrorKind`] ([`error_kind`]). `not_found` from
//!   `delete_pod`/`get_pod_status` and `already_exists` from `create_pod` are recorded
//!   too, although the controller treats them as success.
//!
//! Metric label values use the same strings (see [`crate::metrics`]).

/// Span of one pod sync.
pub const POD_SYNC: &str = "pod.sync";
/// Span of a `create_pod` call.
pub const PROVIDER_CREATE_POD: &str = "provider.create_pod";
/// Span of an `update_pod` call.
pub const PROVIDER_UPDATE_POD: &str = "provider.update_pod";
/// Span of a `delete_pod` call.
pub const PROVIDER_DELETE_POD: &str = "provider.delete_pod";
/// Span of a `get_pod_status` call.
pub const PROVIDER_GET_POD_STATUS: &str = "provider.get_pod_status";
/// Span of a `get_pods` call (status polling).
pub const PROVIDER_GET_PODS: &str = "provider.get_pods";
/// Span of a Node status write.
pub const NODE_STATUS_UPDATE: &str = "node.status_update";
/// Span of a Lease renewal.
pub const NODE_LEASE_RENEW: &str = "node.lease_renew";

/// The pod's namespace.
pub const POD_NAMESPACE: &str = "pod.namespace";
/// The pod's name.
pub const POD_NAME: &str = "pod.name";
/// The pod's UID.
pub const POD_UID: &str = "pod.uid";
/// The virtual node's name.
pub const NODE_NAME: &str = "node.name";
/// What a pod sync did ([`operation`]).
pub const OPERATION: &str = "vk.operation";
/// How a pod sync ended ([`result`]).
pub const RESULT: &str = "vk.result";
/// The [`vk_errdefs::ErrorKind`] of a failed provider call ([`error_kind`]).
pub const ERROR_KIND: &str = "error.kind";

/// Values of [`OPERATION`] (and of the `operation` label of `vk_pod_sync_duration_seconds`).
pub mod operation {
    /// The pod was created in the provider.
    pub const CREATE: &str = "create";
    /// The pod's spec was updated in the provider.
    pub const UPDATE: &str = "update";
    /// The pod was deleted from the provider and/or the API.
    pub const DELETE: &str = "delete";
    /// Only the pod's status was written.
    pub const STATUS: &str = "status";
    /// Nothing needed doing.
    pub const NONE: &str = "none";
}

/// Values of [`RESULT`] (and of the `result` label of `vk_pod_sync_duration_seconds`).
pub mod result {
    /// Done until something changes.
    pub const OK: &str = "ok";
    /// Done for now; looked at again after a deadline (grace period, poll).
    pub const REQUEUE: &str = "requeue";
    /// Failed; retried with backoff.
    pub const RETRY: &str = "retry";
}

/// The snake_case name of `kind` (`not_found`, `invalid_input`, ...), used as the
/// [`ERROR_KIND`] field and the `kind` metric label. Kinds added to the non-exhaustive
/// enum later read `unknown` until named here.
pub fn error_kind(kind: vk_errdefs::ErrorKind) -> &'static str {
    use vk_errdefs::ErrorKind as K;
    match kind {
        K::NotFound => "not_found",
        K::InvalidInput => "invalid_input",
        K::AlreadyExists => "already_exists",
        K::Conflict => "conflict",
        K::Unavailable => "unavailable",
        K::NotImplemented => "not_implemented",
        K::Forbidden => "forbidden",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use vk_errdefs::ErrorKind;

    #[test]
    fn error_kinds_are_snake_case() {
        assert_eq!(super::error_kind(ErrorKind::NotFound), "not_found");
        assert_eq!(
            super::error_kind(ErrorKind::NotImplemented),
            "not_implemented"
        );
        assert_eq!(super::error_kind(ErrorKind::Unknown), "unknown");
    }
}
