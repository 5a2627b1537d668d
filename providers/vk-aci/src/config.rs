//! vk-aci's configuration (`--provider-config`, TOML or JSON by extension, overridden
//! by `VK_ACI_*` variables; loaded by [`vk_cli::load_provider_config`]). Credentials
//! also come from the `AZURE_*` variables Azure tools use (see [`crate::auth`]).
//!
//! ```toml
//! subscription_id = "00000000-0000-0000-0000-000000000000"
//! resource_group = "aks-virtual-nodes"
//! region = "westeurope"
//! # ip_address_type = "Private"
//! # subnet_ids = ["/subscriptions/.../virtualNetworks/vnet/subnets/aci"]
//! [tags]
//! team = "platform"
//! [capacity]
//! cpu = "100"
//! memory = "400Gi"
//! pods = "200"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use vk_cli::{InvalidValue, ProviderConfig};

/// The ARM api-version of `Microsoft.ContainerInstance` this crate is written against
/// (the latest stable one in the azure-rest-api-specs repository:
/// `specification/containerinstance/resource-manager/Microsoft.ContainerInstance/stable/2023-05-01`).
pub const DEFAULT_API_VERSION: &str = "2023-05-01";

/// The public cloud's Resource Manager endpoint.
pub const DEFAULT_ARM_ENDPOINT: &str = "https://management.azure.com";

/// The public cloud's Microsoft Entra authority host.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// Whether a container group gets a public IP address or one in a VNet subnet.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum IpAddressType {
    /// A public IP (ACI's `Public`).
    #[default]
    Public,
    /// A private IP in the configured subnets (ACI's `Private`).
    Private,
}

/// How the provider authenticates to Azure. Every field may be left empty and taken
/// from the `AZURE_*` environment variables (see [`crate::auth::Credential::from_config`]).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Directory (tenant) ID; else `AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// Application (client) ID; else `AZURE_CLIENT_ID`. With managed identity, the
    /// client ID of a user-assigned identity.
    pub client_id: Option<String>,
    /// Client secret; else `AZURE_CLIENT_SECRET`. Never logged.
    pub client_secret: Option<String>,
    /// PEM file holding the client certificate and its private key (PKCS#8 or PKCS#1
    /// RSA); else `AZURE_CLIENT_CERTIFICATE_PATH`.
    pub client_certificate_path: Option<PathBuf>,
    /// Federated token file of workload identity; else `AZURE_FEDERATED_TOKEN_FILE`.
    pub federated_token_file: Option<PathBuf>,
    /// Use the managed identity of the host (IMDS) when nothing else is configured.
    /// Default true, as Azure's default credential chain does.
    pub managed_identity: Option<bool>,
    /// The IMDS endpoint (tests point it elsewhere); default
    /// `http://169.254.169.254`.
    pub imds_endpoint: Option<String>,
    /// Authority host (sovereign clouds: `https://login.microsoftonline.us`...); else
    /// `AZURE_AUTHORITY_HOST`, else the public cloud's.
    pub authority_host: Option<String>,
    /// PEM bundle of extra CAs trusted for the token endpoints (tests, proxies).
    pub ca_file: Option<PathBuf>,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AciConfig {
    /// The subscription holding the container groups; else `AZURE_SUBSCRIPTION_ID`.
    pub subscription_id: String,
    /// The resource group the container groups are created in.
    pub resource_group: String,
    /// The Azure region (`location`) of the container groups.
    pub region: String,
    /// The ARM endpoint (sovereign clouds: `https://management.usgovcloudapi.net`).
    pub arm_endpoint: String,
    /// The api-version of `Microsoft.ContainerInstance` requests.
    pub api_version: String,
    /// Credentials.
    pub auth: AuthConfig,
    /// PEM bundle of extra CAs trusted for ARM (tests, proxies).
    pub ca_file: Option<PathBuf>,
    /// Public or private (VNet) IP addresses for the groups.
    pub ip_address_type: IpAddressType,
    /// Subnet resource IDs for private groups.
    pub subnet_ids: Vec<String>,
    /// OS type of the groups and the node (`Linux` or `Windows`).
    pub os_type: String,
    /// Tags added to every container group.
    pub tags: BTreeMap<String, String>,
    /// The node's capacity (`cpu`, `memory`, `pods`, `nvidia.com/gpu`); empty: from
    /// the region's quota (usage API), else defaults.
    pub capacity: BTreeMap<String, String>,
    /// The GPU SKU when a pod asks for `nvidia.com/gpu` without the
    /// `virtual-kubelet.io/gpu-type` annotation.
    pub default_gpu_sku: String,
    /// Seconds between two list calls of the status poller.
    pub status_poll_seconds: u64,
    /// Seconds between two polls of a log when following it.
    pub log_follow_poll_seconds: u64,
    /// Seconds between two polls of a long-running operation when ARM sends no
    /// `Retry-After`.
    pub operation_poll_seconds: u64,
    /// Cluster DNS server given to groups whose `dnsPolicy` is `ClusterFirst` (none:
    /// Azure's DNS).
    pub cluster_dns: Option<String>,
}

impl Default for AciConfig {
    fn default() -> Self {
        Self {
            subscription_id: String::new(),
            resource_group: String::new(),
            region: String::new(),
            arm_endpoint: DEFAULT_ARM_ENDPOINT.into(),
            api_version: DEFAULT_API_VERSION.into(),
            auth: AuthConfig::default(),
            ca_file: None,
            ip_address_type: IpAddressType::Public,
            subnet_ids: Vec::new(),
            os_type: "Linux".into(),
            tags: BTreeMap::new(),
            capacity: BTreeMap::new(),
            default_gpu_sku: "V100".into(),
            status_poll_seconds: 5,
            log_follow_poll_seconds: 2,
            operation_poll_seconds: 5,
            cluster_dns: None,
        }
    }
}

impl AciConfig {
    /// The status poller's interval.
    pub fn status_poll_interval(&self) -> Duration {
        Duration::from_secs(self.status_poll_seconds.max(1))
    }

    /// The subscription, from the config or `AZURE_SUBSCRIPTION_ID`.
    pub fn subscription(&self) -> String {
        if self.subscription_id.is_empty() {
            std::env::var("AZURE_SUBSCRIPTION_ID").unwrap_or_default()
        } else {
            self.subscription_id.clone()
        }
    }
}

fn invalid(key: &str, message: &str) -> InvalidValue {
    InvalidValue {
        key: key.into(),
        reason: message.into(),
    }
}

impl ProviderConfig for AciConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        if self.subscription().is_empty() {
            return Err(invalid(
                "subscription_id",
                "required (or set AZURE_SUBSCRIPTION_ID)",
            ));
        }
        if self.resource_group.is_empty() {
            return Err(invalid("resource_group", "required"));
        }
        if self.region.is_empty() {
            return Err(invalid("region", "required (the groups' location)"));
        }
        if self.ip_address_type == IpAddressType::Private && self.subnet_ids.is_empty() {
            return Err(invalid(
                "subnet_ids",
                "private IP addresses need at least one subnet resource ID",
            ));
        }
        if !matches!(self.os_type.as_str(), "Linux" | "Windows") {
            return Err(invalid("os_type", "must be Linux or Windows"));
        }
        if self.api_version.is_empty() {
            return Err(invalid("api_version", "must not be empty"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> AciConfig {
        AciConfig {
            subscription_id: "sub".into(),
            resource_group: "rg".into(),
            region: "westeurope".into(),
            ..AciConfig::default()
        }
    }

    #[test]
    fn private_ips_need_a_subnet() {
        let mut config = valid();
        assert!(config.validate().is_ok());
        config.ip_address_type = IpAddressType::Private;
        assert_eq!(config.validate().expect_err("no subnet").key, "subnet_ids");
    }

    #[test]
    fn toml_with_nested_auth_parses() {
        let config: AciConfig = toml_parse(
            r#"
            subscription_id = "s"
            resource_group = "rg"
            region = "eastus"
            api_version = "2024-10-01-preview"
            [auth]
            tenant_id = "t"
            client_id = "c"
            authority_host = "https://login.microsoftonline.us"
            "#,
        );
        assert_eq!(config.api_version, "2024-10-01-preview");
        assert_eq!(config.auth.tenant_id.as_deref(), Some("t"));
        assert_eq!(config.arm_endpoint, DEFAULT_ARM_ENDPOINT);
    }

    fn toml_parse(text: &str) -> AciConfig {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("aci.toml");
        std::fs::write(&path, text).expect("write");
        vk_cli::load_provider_config(Some(&path), "VK_ACI_TEST_UNUSED_").expect("loads")
    }
}
