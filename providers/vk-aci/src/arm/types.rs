//! The JSON shapes of `Microsoft.ContainerInstance` (azure-rest-api-specs,
//! `specification/containerinstance/resource-manager/Microsoft.ContainerInstance/stable/2023-05-01/containerInstance.json`,
//! `definitions`), the ARM error body and the asynchronous-operation status body
//! (learn.microsoft.com, "Track asynchronous Azure operations").
//!
//! Answers are read leniently (unknown fields ignored, absent ones defaulted: other
//! api-versions add fields); requests omit empty optional fields. Types carrying
//! secrets (secure environment values, registry passwords, storage keys, secret
//! volumes, the exec password) redact them in `Debug`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

/// Reads an explicit `null` as the field's default: answers from other api-versions
/// (and other implementations) send `"events": null`, `"environmentVariables": null`...
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A container group (`ContainerGroup`: `Resource` + `ContainerGroupProperties`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerGroup {
    /// Resource ID (answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name (answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resource type (answers only).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Region.
    #[serde(deserialize_with = "nullable")]
    pub location: String,
    /// Tags.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub tags: BTreeMap<String, String>,
    /// Availability zones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub zones: Vec<String>,
    /// Properties.
    #[serde(deserialize_with = "nullable")]
    pub properties: ContainerGroupProperties,
}

/// `ContainerGroupProperties.properties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerGroupProperties {
    /// `Pending`, `Creating`, `Succeeded`, `Failed`, `Canceled`... (answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// Containers.
    #[serde(deserialize_with = "nullable")]
    pub containers: Vec<Container>,
    /// Init containers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub init_containers: Vec<InitContainer>,
    /// Registry credentials.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub image_registry_credentials: Vec<ImageRegistryCredential>,
    /// `Always`, `OnFailure` or `Never`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    /// The group's IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<IpAddress>,
    /// `Linux` or `Windows`.
    #[serde(deserialize_with = "nullable")]
    pub os_type: String,
    /// Volumes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub volumes: Vec<Volume>,
    /// The group's instance view (answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_view: Option<GroupInstanceView>,
    /// VNet subnets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub subnet_ids: Vec<SubnetId>,
    /// DNS configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<DnsConfiguration>,
    /// `Standard`, `Dedicated`, `Confidential`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
}

/// `Container`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Container {
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Properties.
    #[serde(deserialize_with = "nullable")]
    pub properties: ContainerProperties,
}

/// `ContainerProperties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerProperties {
    /// Image.
    #[serde(deserialize_with = "nullable")]
    pub image: String,
    /// Command in exec form (entrypoint and arguments together).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub command: Vec<String>,
    /// Exposed ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub ports: Vec<ContainerPort>,
    /// Environment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub environment_variables: Vec<EnvironmentVariable>,
    /// Instance view (answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_view: Option<ContainerInstanceView>,
    /// Resources.
    #[serde(deserialize_with = "nullable")]
    pub resources: ResourceRequirements,
    /// Volume mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Liveness probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<ContainerProbe>,
    /// Readiness probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<ContainerProbe>,
}

/// `InitContainerDefinition`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InitContainer {
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Properties.
    #[serde(deserialize_with = "nullable")]
    pub properties: InitContainerProperties,
}

/// `InitContainerPropertiesDefinition`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InitContainerProperties {
    /// Image.
    #[serde(deserialize_with = "nullable")]
    pub image: String,
    /// Command in exec form.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub command: Vec<String>,
    /// Environment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub environment_variables: Vec<EnvironmentVariable>,
    /// Instance view (answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_view: Option<ContainerInstanceView>,
    /// Volume mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub volume_mounts: Vec<VolumeMount>,
}

/// A container's instance view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerInstanceView {
    /// Restarts so far.
    pub restart_count: Option<i32>,
    /// Current state.
    pub current_state: Option<ContainerState>,
    /// Previous state.
    pub previous_state: Option<ContainerState>,
    /// Events.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub events: Vec<Event>,
}

/// `ContainerState`: `state` is `Waiting`, `Running` or `Terminated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerState {
    /// The state.
    pub state: Option<String>,
    /// When it started (RFC 3339).
    pub start_time: Option<String>,
    /// Exit code (terminated containers).
    pub exit_code: Option<i32>,
    /// When it finished (RFC 3339).
    pub finish_time: Option<String>,
    /// Human-readable detail (`Completed`, `Error`, `CrashLoopBackOff`...).
    pub detail_status: Option<String>,
}

/// `Event`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Event {
    /// Occurrences.
    pub count: Option<i32>,
    /// First occurrence.
    pub first_timestamp: Option<String>,
    /// Last occurrence.
    pub last_timestamp: Option<String>,
    /// Name (`Pulling`, `Pulled`, `Started`, `Killing`, `FailedMount`...).
    pub name: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
}

/// `ResourceRequirements`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceRequirements {
    /// Requests.
    #[serde(deserialize_with = "nullable")]
    pub requests: ResourceRequests,
    /// Limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceLimits>,
}

/// `ResourceRequests`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceRequests {
    /// Memory in GB.
    #[serde(rename = "memoryInGB")]
    #[serde(deserialize_with = "nullable")]
    pub memory_in_gb: f64,
    /// CPU cores.
    #[serde(deserialize_with = "nullable")]
    pub cpu: f64,
    /// GPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuResource>,
}

/// `ResourceLimits`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceLimits {
    /// Memory in GB.
    #[serde(rename = "memoryInGB", skip_serializing_if = "Option::is_none")]
    pub memory_in_gb: Option<f64>,
    /// CPU cores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// GPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuResource>,
}

/// `GpuResource`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GpuResource {
    /// How many.
    #[serde(deserialize_with = "nullable")]
    pub count: i32,
    /// `K80`, `P100`, `V100`.
    #[serde(deserialize_with = "nullable")]
    pub sku: String,
}

/// `ContainerPort`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerPort {
    /// `TCP` or `UDP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port.
    #[serde(deserialize_with = "nullable")]
    pub port: i32,
}

/// `EnvironmentVariable`: a plain `value` or a `secureValue` (never returned by GET).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvironmentVariable {
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Plain value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Secure value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure_value: Option<String>,
}

impl std::fmt::Debug for EnvironmentVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvironmentVariable")
            .field("name", &self.name)
            .field("value", &self.value)
            .field(
                "secure_value",
                &self.secure_value.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `VolumeMount`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeMount {
    /// Volume name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Mount path.
    #[serde(deserialize_with = "nullable")]
    pub mount_path: String,
    /// Read-only.
    #[serde(skip_serializing_if = "is_false")]
    #[serde(deserialize_with = "nullable")]
    pub read_only: bool,
}

/// `Volume`: one of Azure Files, emptyDir, secret.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Volume {
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Azure Files share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure_file: Option<AzureFileVolume>,
    /// Empty directory (`{}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<serde_json::Map<String, serde_json::Value>>,
    /// Secret volume: file name → base64 content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("name", &self.name)
            .field("azure_file", &self.azure_file)
            .field("empty_dir", &self.empty_dir.is_some())
            .field(
                "secret_files",
                &self.secret.as_ref().map(|s| s.keys().collect::<Vec<_>>()),
            )
            .finish()
    }
}

/// `AzureFileVolume`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AzureFileVolume {
    /// Share.
    #[serde(deserialize_with = "nullable")]
    pub share_name: String,
    /// Read-only.
    #[serde(skip_serializing_if = "is_false")]
    #[serde(deserialize_with = "nullable")]
    pub read_only: bool,
    /// Storage account.
    #[serde(deserialize_with = "nullable")]
    pub storage_account_name: String,
    /// Storage account key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_account_key: Option<String>,
}

impl std::fmt::Debug for AzureFileVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureFileVolume")
            .field("share_name", &self.share_name)
            .field("read_only", &self.read_only)
            .field("storage_account_name", &self.storage_account_name)
            .finish_non_exhaustive()
    }
}

/// `ContainerProbe`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerProbe {
    /// Command probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ContainerExecProbe>,
    /// HTTP probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<ContainerHttpGet>,
    /// Initial delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<i32>,
    /// Period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i32>,
    /// Failure threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i32>,
    /// Success threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i32>,
    /// Timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

/// `ContainerExec` (of a probe).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerExecProbe {
    /// Command.
    #[serde(deserialize_with = "nullable")]
    pub command: Vec<String>,
}

/// `ContainerHttpGet`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerHttpGet {
    /// Path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Port.
    #[serde(deserialize_with = "nullable")]
    pub port: i32,
    /// `http` or `https`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub http_headers: Vec<HttpHeader>,
}

/// `HttpHeader`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpHeader {
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Value.
    #[serde(deserialize_with = "nullable")]
    pub value: String,
}

/// `IpAddress`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IpAddress {
    /// Exposed ports.
    #[serde(deserialize_with = "nullable")]
    pub ports: Vec<Port>,
    /// `Public` or `Private`.
    #[serde(rename = "type")]
    #[serde(deserialize_with = "nullable")]
    pub ip_type: String,
    /// The address (answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// DNS name label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name_label: Option<String>,
    /// FQDN (answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
}

/// `Port` (of the group's IP).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Port {
    /// `TCP` or `UDP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port.
    #[serde(deserialize_with = "nullable")]
    pub port: i32,
}

/// `ImageRegistryCredential`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImageRegistryCredential {
    /// Registry host, no scheme.
    #[serde(deserialize_with = "nullable")]
    pub server: String,
    /// User name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for ImageRegistryCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageRegistryCredential")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `ContainerGroupSubnetId`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubnetId {
    /// Subnet resource ID.
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    /// Friendly name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `DnsConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DnsConfiguration {
    /// Name servers.
    #[serde(deserialize_with = "nullable")]
    pub name_servers: Vec<String>,
    /// Search domains, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_domains: Option<String>,
    /// Options, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

/// The group's instance view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupInstanceView {
    /// Events.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub events: Vec<Event>,
    /// `Pending`, `Running`, `Stopped`, `Succeeded`, `Failed`...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// `ContainerGroupListResult`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerGroupList {
    /// Groups.
    #[serde(deserialize_with = "nullable")]
    pub value: Vec<ContainerGroup>,
    /// Next page (absolute URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// `Logs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Logs {
    /// The log text.
    pub content: Option<String>,
}

/// `ContainerExecRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerExecRequest {
    /// The command (one string).
    #[serde(deserialize_with = "nullable")]
    pub command: String,
    /// Terminal size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_size: Option<TerminalSize>,
}

/// `ContainerExecRequest.terminalSize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TerminalSize {
    /// Rows.
    #[serde(deserialize_with = "nullable")]
    pub rows: i32,
    /// Columns.
    #[serde(deserialize_with = "nullable")]
    pub cols: i32,
}

/// `ContainerExecResponse`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerExecResponse {
    /// The WebSocket to connect to.
    #[serde(deserialize_with = "nullable")]
    pub web_socket_uri: String,
    /// The password to send as the first message.
    #[serde(deserialize_with = "nullable")]
    pub password: String,
}

impl std::fmt::Debug for ContainerExecResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerExecResponse")
            .field("web_socket_uri", &self.web_socket_uri)
            .finish_non_exhaustive()
    }
}

/// `UsageListResult`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageList {
    /// Usages.
    #[serde(deserialize_with = "nullable")]
    pub value: Vec<Usage>,
}

/// `Usage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Usage {
    /// Unit.
    pub unit: Option<String>,
    /// Current usage.
    pub current_value: Option<i64>,
    /// Limit.
    pub limit: Option<i64>,
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: UsageName,
}

/// `Usage.name`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UsageName {
    /// `ContainerGroups`, `StandardCores`, `StandardK80Cores`...
    pub value: Option<String>,
    /// Display name.
    pub localized_value: Option<String>,
}

/// `CloudError`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CloudError {
    /// The error.
    #[serde(deserialize_with = "nullable")]
    pub error: CloudErrorBody,
}

/// `CloudErrorBody`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CloudErrorBody {
    /// Code (`ResourceNotFound`, `ContainerGroupQuotaReached`...).
    #[serde(deserialize_with = "nullable")]
    pub code: String,
    /// Message.
    #[serde(deserialize_with = "nullable")]
    pub message: String,
    /// Target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Details.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub details: Vec<CloudErrorBody>,
}

/// The body of an `Azure-AsyncOperation` URL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AsyncOperation {
    /// `InProgress`, `Succeeded`, `Failed`, `Canceled` (others mean in progress).
    #[serde(deserialize_with = "nullable")]
    pub status: String,
    /// The failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<CloudErrorBody>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `stable/2021-10-01/examples/ContainerGroupsGet_Failed.json`, response body.
    const GET_FAILED: &str = include_str!("../../tests/fixtures/ContainerGroupsGet_Failed.json");

    #[test]
    fn documented_failed_group_decodes() {
        let group: ContainerGroup = serde_json::from_str(GET_FAILED).expect("decodes");
        assert_eq!(
            group.properties.provisioning_state.as_deref(),
            Some("Failed")
        );
        let view = group.properties.containers[0]
            .properties
            .instance_view
            .as_ref()
            .expect("view");
        assert_eq!(
            view.current_state.as_ref().and_then(|s| s.state.as_deref()),
            Some("Waiting")
        );
        assert_eq!(view.events[1].name.as_deref(), Some("Pulled"));
        let group_view = group.properties.instance_view.as_ref().expect("group view");
        assert_eq!(group_view.events[0].name.as_deref(), Some("FailedMount"));
        assert_eq!(
            group
                .properties
                .ip_address
                .as_ref()
                .and_then(|i| i.ip.as_deref()),
            Some("10.0.0.1")
        );
    }

    #[test]
    fn explicit_nulls_read_as_empty() {
        let group: ContainerGroup = serde_json::from_value(serde_json::json!({
            "name": "g", "location": null, "tags": null,
            "properties": {"osType": "Linux", "provisioningState": "Succeeded",
                "containers": [{"name": "c", "properties": {"image": "nginx",
                    "environmentVariables": null, "ports": null, "command": null,
                    "resources": {"requests": {"cpu": 1, "memoryInGB": null}},
                    "instanceView": {"events": null, "restartCount": null}}}],
                "volumes": null, "instanceView": {"events": null, "state": "Running"}}
        }))
        .expect("nulls are tolerated");
        let c = &group.properties.containers[0].properties;
        assert!(c.environment_variables.is_empty() && c.ports.is_empty());
        assert_eq!(c.resources.requests.memory_in_gb, 0.0);
        assert!(group.tags.is_empty() && group.location.is_empty());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let env = EnvironmentVariable {
            name: "TOKEN".into(),
            value: None,
            secure_value: Some("hunter2".into()),
        };
        let text = format!("{env:?}");
        assert!(
            !text.contains("hunter2") && text.contains("<redacted>"),
            "{text}"
        );
        let exec = ContainerExecResponse {
            web_socket_uri: "wss://x".into(),
            password: "pw-secret".into(),
        };
        assert!(!format!("{exec:?}").contains("pw-secret"));
    }

    #[test]
    fn requests_omit_empty_fields_and_use_documented_names() {
        let requests = ResourceRequests {
            memory_in_gb: 1.5,
            cpu: 1.0,
            gpu: None,
        };
        assert_eq!(
            serde_json::to_value(&requests).expect("json"),
            serde_json::json!({"memoryInGB": 1.5, "cpu": 1.0})
        );
    }
}
