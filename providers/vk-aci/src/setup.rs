//! Building a provider from an [`AciConfig`]: credentials, ARM client, node template.

use std::sync::Arc;
use std::time::Duration;

use vk_core::ResourceAccess;
use vk_core::events::EventSink;
use vk_core::node::NodeTemplate;

use crate::arm::{ArmClient, ArmClientConfig, ArmError};
use crate::auth::{AuthError, Credential, TokenProvider};
use crate::mapping::MappingContext;
use crate::provider::{ProviderSettings, capacity_from_usage, default_capacity};
use crate::{AciConfig, AciProvider};

/// Why a provider could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Reading a CA file failed.
    #[error("reading the CA file {path}: {source}")]
    ReadCa {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The credentials are unusable.
    #[error("setting up Azure credentials: {0}")]
    Auth(#[from] AuthError),
    /// The ARM client could not be built.
    #[error("setting up the Resource Manager client: {0}")]
    Arm(#[from] Box<ArmError>),
}

fn read_ca(path: &Option<std::path::PathBuf>) -> Result<Option<Vec<u8>>, SetupError> {
    path.as_ref()
        .map(|p| {
            std::fs::read(p).map_err(|source| SetupError::ReadCa {
                path: p.display().to_string(),
                source,
            })
        })
        .transpose()
}

/// The ARM client `config` describes, with its token provider.
pub fn arm_client(config: &AciConfig) -> Result<ArmClient, SetupError> {
    let resolved = Credential::from_config(&config.auth)?;
    tracing::info!(
        credential = resolved.credential.kind(),
        authority = %resolved.authority_host,
        "Azure credentials"
    );
    let tokens = TokenProvider::new(
        resolved,
        &config.arm_endpoint,
        read_ca(&config.auth.ca_file)?,
    )?;
    let mut arm = ArmClientConfig::new(
        config.arm_endpoint.clone(),
        config.subscription(),
        config.resource_group.clone(),
        config.api_version.clone(),
    );
    arm.ca_pem = read_ca(&config.ca_file)?;
    arm.default_poll_interval = Duration::from_secs(config.operation_poll_seconds.max(1));
    ArmClient::new(arm, Arc::new(tokens)).map_err(|e| SetupError::Arm(Box::new(e)))
}

/// The provider for node `node_name`.
pub fn provider(
    config: &AciConfig,
    arm: ArmClient,
    node_name: &str,
    cluster_domain: &str,
    resources: Option<ResourceAccess>,
    events: EventSink,
) -> Result<AciProvider, SetupError> {
    let settings = ProviderSettings {
        mapping: MappingContext {
            node_name: node_name.to_string(),
            region: config.region.clone(),
            os_type: config.os_type.clone(),
            ip_address_type: config.ip_address_type,
            subnet_ids: config.subnet_ids.clone(),
            tags: config.tags.clone(),
            default_gpu_sku: config.default_gpu_sku.clone(),
            cluster_dns: config.cluster_dns.clone(),
            cluster_domain: cluster_domain.to_string(),
        },
        poll_interval: config.status_poll_interval(),
        log_follow_interval: Duration::from_secs(config.log_follow_poll_seconds.max(1)),
        ca_pem: read_ca(&config.ca_file)?,
    };
    Ok(AciProvider::new(arm, settings, resources, events))
}

/// Fills the node template: capacity (config, else the region's free quota, else
/// large defaults), OS, and labels naming the region and resource group.
pub async fn fill_template(template: &mut NodeTemplate, config: &AciConfig, arm: &ArmClient) {
    template.capacity = if !config.capacity.is_empty() {
        config.capacity.clone()
    } else {
        match arm.usage(&config.region).await {
            Ok(usage) => capacity_from_usage(&usage).unwrap_or_else(default_capacity),
            Err(e) => {
                tracing::warn!(error = %e, "reading the region's usage failed; default capacity");
                default_capacity()
            }
        }
    };
    template.os = config.os_type.to_ascii_lowercase();
    template
        .labels
        .insert("kubernetes.io/os".into(), template.os.clone());
    template.labels.insert(
        "topology.kubernetes.io/region".into(),
        config.region.clone(),
    );
    template.labels.insert(
        "virtual-kubelet.io/aci-resource-group".into(),
        config.resource_group.clone(),
    );
}
