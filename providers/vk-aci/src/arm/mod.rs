//! A thin typed client of the Azure Resource Manager REST API for
//! `Microsoft.ContainerInstance/containerGroups`.
//!
//! * [`types`]: the documented JSON shapes.
//! * [`ArmClient`]: get, list, create-or-update and delete with their long-running
//!   operations (`Azure-AsyncOperation` or `Location` polled, honouring `Retry-After`),
//!   container logs, exec, regional usage; bearer tokens from [`crate::auth`].
//! * [`ArmError`]: failures naming the operation, with ARM's error code.
//!
//! ```no_run
//! use std::sync::Arc;
//! use vk_aci::arm::{ArmClient, ArmClientConfig};
//! use vk_aci::auth::{Credential, TokenProvider};
//! use vk_aci::config::AuthConfig;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Credentials from AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET...
//! let auth = Credential::from_config(&AuthConfig::default())?;
//! let tokens = Arc::new(TokenProvider::new(auth, "https://management.azure.com", None)?);
//! let arm = ArmClient::new(
//!     ArmClientConfig::new("https://management.azure.com", "sub-id", "my-rg", "2023-05-01"),
//!     tokens,
//! )?;
//! for group in arm.list().await? {
//!     println!("{:?} {:?}", group.name, group.properties.provisioning_state);
//! }
//! # Ok(()) }
//! ```
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
