//! A thin typed client of the Azure Resource Manager REST API for
//! `Microsoft.ContainerInstance/containerGroups`.
//!
//! * [`types`]: the documented JSON shapes.
//! * [`ArmClient`]: get, list, create-or-update and delete with their long-running
//!   operations (`Azure-AsyncOperation` or `Location` polled, honouring `Retry-After`),
//!   container logs, exec, regional usage; bearer tokens from [`crate::auth`].
//! * [`ArmError`]: failures naming the operation, with ARM's error code.
//!
//! Throttling: a `429` is retried after its `Retry-After` by `vk_core::http`; the
//! `x-ms-ratelimit-remaining-subscription-reads/writes` headers are kept
//! ([`ArmClient::rate_limit`]) so callers can slow down before ARM throttles.

mod client;
mod error;
pub mod types;

pub use client::{
    AZURE_ASYNC_OPERATION, ArmClient, ArmClientConfig, Operation, RATELIMIT_REMAINING_READS,
    RATELIMIT_REMAINING_WRITES, RateLimit,
};
pub use error::ArmError;
