//! Pod → container group.
//!
//! | pod | container group |
//! |---|---|
//! | containers, initContainers | `containers`, `initContainers` (name, image) |
//! | `command` + `args` | `command` (ACI has one exec-form list: the two are joined; `args` without `command` replace the image's entrypoint, with a warning) |
//! | resources | `resources` ([`super::resources`]) |
//! | env (resolved by the core) | `environmentVariables`: values from Secrets as `secureValue`, others as `value` |
//! | ports | container `ports`; the union goes to the group's `ipAddress` |
//! | — | `ipAddress.type` `Public` (only when a port is exposed) or `Private` (always, with `subnetIds` from the config) |
//! | restartPolicy | `restartPolicy` |
//! | liveness/readiness probes (exec, httpGet) | `livenessProbe`/`readinessProbe` (tcpSocket is not supported by ACI: dropped with a warning) |
//! | volumes emptyDir / secret / configMap / azureFile / projected (secrets, configMaps) | `emptyDir` / `secret` / `secret` / `azureFile` / `secret` volumes; others dropped with a warning |
//! | imagePullSecrets (`kubernetes.io/dockerconfigjson`, `.dockercfg`) | `imageRegistryCredentials` |
//! | dnsConfig (or `ClusterFirst` with a configured cluster DNS) | `dnsConfig` |
//! | — | `osType`, `location`, `tags` (config tags + [`super::names`] owner tags) |

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container as KubeContainer, Pod, Probe, Secret, Volume as KubeVolume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{
    TAG_NAMESPACE, TAG_NODE, TAG_POD, TAG_POD_CREATED, TAG_POD_UID, TAG_SPEC_HASH, group_name,
};
use super::resources::{GPU_SKU_ANNOTATION, Rounded, map_resources};
use crate::arm::types::{
    AzureFileVolume, Container, ContainerExecProbe, ContainerGroup, ContainerGroupProperties,
    ContainerHttpGet, ContainerPort, ContainerProbe, ContainerProperties, DnsConfiguration,
    EnvironmentVariable, HttpHeader, ImageRegistryCredential, InitContainer,
    InitContainerProperties, IpAddress, Port, SubnetId, Volume, VolumeMount,
};
use crate::config::IpAddressType;

/// What the mapping needs besides the pod.
#[derive(Debug, Clone)]
pub struct MappingContext {
    /// The node's name (owner tag, group name).
    pub node_name: String,
    /// Region.
    pub region: String,
    /// `Linux` or `Windows`.
    pub os_type: String,
    /// Public or private IPs.
    pub ip_address_type: IpAddressType,
    /// Subnets for private IPs.
    pub subnet_ids: Vec<String>,
    /// Tags for every group.
    pub tags: BTreeMap<String, String>,
    /// GPU SKU when the pod does not name one.
    pub default_gpu_sku: String,
    /// Cluster DNS server for `ClusterFirst` pods.
    pub cluster_dns: Option<String>,
    /// Cluster domain (`cluster.local`).
    pub cluster_domain: String,
}

/// The Secrets and ConfigMaps the pod's volumes and pull secrets reference, read by
/// the provider before mapping (absent ones are simply missing).
#[derive(Debug, Clone, Default)]
pub struct VolumeData {
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
    /// ConfigMaps by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
}

impl VolumeData {
    /// The Secret and ConfigMap names `pod` references through volumes and image
    /// pull secrets.
    pub fn references(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut secrets = BTreeSet::new();
        let mut config_maps = BTreeSet::new();
        let Some(spec) = &pod.spec else {
            return (secrets, config_maps);
        };
        for s in spec.image_pull_secrets.iter().flatten() {
            secrets.insert(s.name.clone());
        }
        for v in spec.volumes.iter().flatten() {
            if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
                secrets.insert(s);
            }
            if let Some(c) = &v.config_map {
                config_maps.insert(c.name.clone());
            }
            if let Some(a) = &v.azure_file {
                secrets.insert(a.secret_name.clone());
            }
            for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                if let Some(s) = &source.secret {
                    secrets.insert(s.name.clone());
                }
                if let Some(c) = &source.config_map {
                    config_maps.insert(c.name.clone());
                }
            }
        }
        (secrets, config_maps)
    }
}

/// Something the mapping changed or dropped, for a Warning event on the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingWarning {
    /// Event reason.
    pub reason: &'static str,
    /// Event message.
    pub message: String,
}

/// The result of mapping a pod.
#[derive(Debug, Clone)]
pub struct MappedGroup {
    /// The group's name.
    pub name: String,
    /// The group to `PUT`.
    pub group: ContainerGroup,
    /// Warnings to record.
    pub warnings: Vec<MappingWarning>,
}

/// A pod that cannot become a container group.
#[derive(Debug, thiserror::Error)]
#[error("mapping pod {pod} to a container group: {reason}")]
pub struct MappingError {
    /// `namespace/name`.
    pub pod: String,
    /// Why.
    pub reason: String,
    /// Whether waiting may help (a referenced Secret does not exist yet).
    pub missing_reference: bool,
}

/// Maps `pod` (env already resolved by the core) to its container group.
pub fn pod_to_group(
    pod: &Pod,
    ctx: &MappingContext,
    data: &VolumeData,
) -> Result<MappedGroup, MappingError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let fail = |reason: String, missing_reference: bool| MappingError {
        pod: format!("{namespace}/{pod_name}"),
        reason,
        missing_reference,
    };
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| fail("the pod has no spec".into(), false))?;
    let mut warnings = Vec::new();
    let gpu_sku = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(GPU_SKU_ANNOTATION))
        .cloned()
        .unwrap_or_else(|| ctx.default_gpu_sku.clone());

    let (volumes, mountable) = map_volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        data,
        &mut warnings,
    )
    .map_err(|(reason, missing)| fail(reason, missing))?;

    let mut rounded: Vec<Rounded> = Vec::new();
    let mut group_ports = BTreeSet::new();
    let mut containers = Vec::new();
    for c in &spec.containers {
        let resources = map_resources(&c.name, c.resources.as_ref(), &gpu_sku, &mut rounded)
            .map_err(|e| fail(e, false))?;
        let ports: Vec<ContainerPort> = c
            .ports
            .iter()
            .flatten()
            .map(|p| ContainerPort {
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                port: p.container_port,
            })
            .collect();
        for p in &ports {
            group_ports.insert((p.port, p.protocol.clone().unwrap_or_default()));
        }
        containers.push(Container {
            name: c.name.clone(),
            properties: ContainerProperties {
                image: image_of(c).map_err(|e| fail(e, false))?,
                command: command_of(c, &mut warnings),
                ports,
                environment_variables: env_of(c),
                instance_view: None,
                resources,
                volume_mounts: mounts_of(c, &mountable, &mut warnings),
                liveness_probe: c
                    .liveness_probe
                    .as_ref()
                    .and_then(|p| probe_of(&c.name, "liveness", p, c, &mut warnings)),
                readiness_probe: c
                    .readiness_probe
                    .as_ref()
                    .and_then(|p| probe_of(&c.name, "readiness", p, c, &mut warnings)),
            },
        });
    }
    let init_containers = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            Ok(InitContainer {
                name: c.name.clone(),
                properties: InitContainerProperties {
                    image: image_of(c)?,
                    command: command_of(c, &mut warnings),
                    environment_variables: env_of(c),
                    instance_view: None,
                    volume_mounts: mounts_of(c, &mountable, &mut warnings),
                },
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| fail(e, false))?;
    for r in rounded {
        warnings.push(MappingWarning {
            reason: "ResourcesRounded",
            message: format!(
                "{}: {} rounded up to {} (ACI granularity: 0.01 core, 0.1 GB)",
                r.what, r.asked, r.sent
            ),
        });
    }

    let ports: Vec<Port> = group_ports
        .into_iter()
        .map(|(port, protocol)| Port {
            protocol: Some(protocol),
            port,
        })
        .collect();
    let (ip_address, subnet_ids) = match ctx.ip_address_type {
        IpAddressType::Private => (
            Some(IpAddress {
                ports,
                ip_type: "Private".into(),
                ..IpAddress::default()
            }),
            ctx.subnet_ids
                .iter()
                .map(|id| SubnetId {
                    id: id.clone(),
                    name: None,
                })
                .collect(),
        ),
        IpAddressType::Public if !ports.is_empty() => (
            Some(IpAddress {
                ports,
                ip_type: "Public".into(),
                ..IpAddress::default()
            }),
            Vec::new(),
        ),
        IpAddressType::Public => (None, Vec::new()),
    };

    let image_registry_credentials = registry_credentials(pod, data, &mut warnings);
    let restart_policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let mut group = ContainerGroup {
        location: ctx.region.clone(),
        tags: BTreeMap::new(),
        properties: ContainerGroupProperties {
            containers,
            init_containers,
            image_registry_credentials,
            restart_policy: Some(restart_policy),
            ip_address,
            os_type: ctx.os_type.clone(),
            volumes,
            subnet_ids,
            dns_config: dns_of(pod, ctx),
            ..ContainerGroupProperties::default()
        },
        ..ContainerGroup::default()
    };
    let hash = spec_hash(&group);
    let mut tags = ctx.tags.clone();
    tags.insert(TAG_NODE.into(), ctx.node_name.clone());
    tags.insert(TAG_NAMESPACE.into(), namespace.clone());
    tags.insert(TAG_POD.into(), pod_name.clone());
    if let Some(uid) = &pod.metadata.uid {
        tags.insert(TAG_POD_UID.into(), uid.clone());
    }
    if let Some(created) = &pod.metadata.creation_timestamp {
        tags.insert(TAG_POD_CREATED.into(), created.0.to_string());
    }
    tags.insert(TAG_SPEC_HASH.into(), hash);
    group.tags = tags;
    Ok(MappedGroup {
        name: group_name(&ctx.node_name, &namespace, &pod_name),
        group,
        warnings,
    })
}

/// A SHA-256 (first 16 hex digits) of the group's body without tags, environment and
/// secret material: equal hashes mean an update has nothing to send.
///
/// * Environment: a pod's env cannot change after creation; what its resolution
///   yields can (a new Service adds link variables, a ConfigMap or Secret changes), and
///   a kubelet does not restart containers for that, so neither does vk-aci.
/// * Secrets: the hash is stored in a tag anyone with read access to the resource
///   group can see, next to the rest of the body (which `GET` returns); were secrets
///   hashed, a low-entropy one could be guessed offline. So registry passwords, storage
///   keys and secret volume contents are left out (only their names count).
pub fn spec_hash(group: &ContainerGroup) -> String {
    let mut body = group.clone();
    body.tags.clear();
    let props = &mut body.properties;
    for c in &mut props.containers {
        c.properties.environment_variables.clear();
    }
    for c in &mut props.init_containers {
        c.properties.environment_variables.clear();
    }
    for credential in &mut props.image_registry_credentials {
        credential.password = None;
    }
    for volume in &mut props.volumes {
        if let Some(file) = volume.azure_file.as_mut() {
            file.storage_account_key = None;
        }
        if let Some(files) = volume.secret.as_mut() {
            for content in files.values_mut() {
                content.clear();
            }
        }
    }
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &json);
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn image_of(c: &KubeContainer) -> Result<String, String> {
    c.image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| format!("container {} has no image", c.name))
}

fn command_of(c: &KubeContainer, warnings: &mut Vec<MappingWarning>) -> Vec<String> {
    let command = c.command.clone().unwrap_or_default();
    let args = c.args.clone().unwrap_or_default();
    if command.is_empty() && !args.is_empty() {
        warnings.push(MappingWarning {
            reason: "ArgsWithoutCommand",
            message: format!(
                "container {}: ACI has no separate arguments; args are run as the command, \
                 replacing the image's entrypoint",
                c.name
            ),
        });
    }
    command.into_iter().chain(args).collect()
}

fn env_of(c: &KubeContainer) -> Vec<EnvironmentVariable> {
    c.env
        .iter()
        .flatten()
        .map(|e| {
            let from_secret = e
                .value_from
                .as_ref()
                .is_some_and(|f| f.secret_key_ref.is_some());
            let value = e.value.clone().unwrap_or_default();
            if from_secret {
                EnvironmentVariable {
                    name: e.name.clone(),
                    value: None,
                    secure_value: Some(value),
                }
            } else {
                EnvironmentVariable {
                    name: e.name.clone(),
                    value: Some(value),
                    secure_value: None,
                }
            }
        })
        .collect()
}

fn mounts_of(
    c: &KubeContainer,
    mountable: &BTreeSet<String>,
    warnings: &mut Vec<MappingWarning>,
) -> Vec<VolumeMount> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        if !mountable.contains(&m.name) {
            continue; // the volume was dropped with a warning already
        }
        if m.sub_path.as_deref().is_some_and(|s| !s.is_empty()) {
            warnings.push(MappingWarning {
                reason: "UnsupportedVolumeMount",
                message: format!(
                    "container {}: subPath of volume {} is not supported by ACI; the whole \
                     volume is mounted at {}",
                    c.name, m.name, m.mount_path
                ),
            });
        }
        out.push(VolumeMount {
            name: m.name.clone(),
            mount_path: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false),
        });
    }
    out
}

fn probe_of(
    container: &str,
    kind: &str,
    probe: &Probe,
    c: &KubeContainer,
    warnings: &mut Vec<MappingWarning>,
) -> Option<ContainerProbe> {
    let mut out = ContainerProbe {
        initial_delay_seconds: probe.initial_delay_seconds,
        period_seconds: probe.period_seconds,
        failure_threshold: probe.failure_threshold,
        success_threshold: probe.success_threshold,
        timeout_seconds: probe.timeout_seconds,
        ..ContainerProbe::default()
    };
    if let Some(exec) = &probe.exec {
        out.exec = Some(ContainerExecProbe {
            command: exec.command.clone().unwrap_or_default(),
        });
    } else if let Some(http) = &probe.http_get {
        let port = match &http.port {
            IntOrString::Int(p) => Some(*p),
            IntOrString::String(name) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port),
        };
        let Some(port) = port else {
            warnings.push(MappingWarning {
                reason: "UnsupportedProbe",
                message: format!(
                    "container {container}: {kind} probe names an unknown port; dropped"
                ),
            });
            return None;
        };
        out.http_get = Some(ContainerHttpGet {
            path: http.path.clone(),
            port,
            scheme: http.scheme.as_ref().map(|s| s.to_ascii_lowercase()),
            http_headers: http
                .http_headers
                .iter()
                .flatten()
                .map(|h| HttpHeader {
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
                .collect(),
        });
    } else {
        warnings.push(MappingWarning {
            reason: "UnsupportedProbe",
            message: format!(
                "container {container}: ACI supports exec and httpGet {kind} probes only; dropped"
            ),
        });
        return None;
    }
    Some(out)
}

type VolumeResult = Result<(Vec<Volume>, BTreeSet<String>), (String, bool)>;

fn map_volumes(
    volumes: &[KubeVolume],
    data: &VolumeData,
    warnings: &mut Vec<MappingWarning>,
) -> VolumeResult {
    let mut out = Vec::new();
    let mut mountable = BTreeSet::new();
    for v in volumes {
        let mapped = if v.empty_dir.is_some() {
            Some(Volume {
                name: v.name.clone(),
                empty_dir: Some(serde_json::Map::new()),
                ..Volume::default()
            })
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            match data.secrets.get(&name) {
                Some(secret) => Some(secret_volume(&v.name, files_of_secret(secret))),
                None if s.optional.unwrap_or(false) => {
                    Some(secret_volume(&v.name, BTreeMap::new()))
                }
                None => {
                    return Err((
                        format!("secret {name} of volume {} not found", v.name),
                        true,
                    ));
                }
            }
        } else if let Some(c) = &v.config_map {
            match data.config_maps.get(&c.name) {
                Some(cm) => Some(secret_volume(&v.name, files_of_config_map(cm))),
                None if c.optional.unwrap_or(false) => {
                    Some(secret_volume(&v.name, BTreeMap::new()))
                }
                None => {
                    return Err((
                        format!("configmap {} of volume {} not found", c.name, v.name),
                        true,
                    ));
                }
            }
        } else if let Some(a) = &v.azure_file {
            let secret = data.secrets.get(&a.secret_name).ok_or_else(|| {
                (
                    format!(
                        "secret {} of Azure Files volume {} not found",
                        a.secret_name, v.name
                    ),
                    true,
                )
            })?;
            let field = |key: &str| {
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            };
            Some(Volume {
                name: v.name.clone(),
                azure_file: Some(AzureFileVolume {
                    share_name: a.share_name.clone(),
                    read_only: a.read_only.unwrap_or(false),
                    storage_account_name: field("azurestorageaccountname").unwrap_or_default(),
                    storage_account_key: field("azurestorageaccountkey"),
                }),
                ..Volume::default()
            })
        } else if let Some(p) = &v.projected {
            let mut files = BTreeMap::new();
            let mut skipped = Vec::new();
            for source in p.sources.iter().flatten() {
                if let Some(s) = &source.secret {
                    if let Some(secret) = data.secrets.get(&s.name) {
                        files.extend(files_of_secret(secret));
                    }
                } else if let Some(c) = &source.config_map {
                    if let Some(cm) = data.config_maps.get(&c.name) {
                        files.extend(files_of_config_map(cm));
                    }
                } else {
                    skipped.push(if source.service_account_token.is_some() {
                        "serviceAccountToken"
                    } else {
                        "downwardAPI"
                    });
                }
            }
            if !skipped.is_empty() {
                warnings.push(MappingWarning {
                    reason: "UnsupportedVolume",
                    message: format!(
                        "projected volume {}: {} sources are not supported by ACI and were left out",
                        v.name,
                        skipped.join(", ")
                    ),
                });
            }
            Some(secret_volume(&v.name, files))
        } else {
            warnings.push(MappingWarning {
                reason: "UnsupportedVolume",
                message: format!(
                    "volume {}: ACI supports emptyDir, secret, configMap, azureFile and projected \
                     volumes; dropped with its mounts",
                    v.name
                ),
            });
            None
        };
        if let Some(volume) = mapped {
            mountable.insert(volume.name.clone());
            out.push(volume);
        }
    }
    Ok((out, mountable))
}

fn secret_volume(name: &str, files: BTreeMap<String, String>) -> Volume {
    Volume {
        name: name.to_string(),
        secret: Some(files),
        ..Volume::default()
    }
}

/// File name → base64 content of a Secret.
fn files_of_secret(secret: &Secret) -> BTreeMap<String, String> {
    let mut files: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), STANDARD.encode(&v.0)))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        files.insert(k.clone(), STANDARD.encode(v));
    }
    files
}

/// File name → base64 content of a ConfigMap (ACI has no config volume: a secret
/// volume carries it).
fn files_of_config_map(cm: &ConfigMap) -> BTreeMap<String, String> {
    let mut files: BTreeMap<String, String> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), STANDARD.encode(v)))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        files.insert(k.clone(), STANDARD.encode(&v.0));
    }
    files
}

fn registry_credentials(
    pod: &Pod,
    data: &VolumeData,
    warnings: &mut Vec<MappingWarning>,
) -> Vec<ImageRegistryCredential> {
    let mut out = Vec::new();
    let names = pod
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten());
    for reference in names {
        let Some(secret) = data.secrets.get(&reference.name) else {
            warnings.push(MappingWarning {
                reason: "FailedToRetrieveImagePullSecret",
                message: format!(
                    "image pull secret {} not found; pulling without it",
                    reference.name
                ),
            });
            continue;
        };
        let data = secret.data.clone().unwrap_or_default();
        let (json, nested) = if let Some(d) = data.get(".dockerconfigjson") {
            (d.0.clone(), true)
        } else if let Some(d) = data.get(".dockercfg") {
            (d.0.clone(), false)
        } else {
            continue;
        };
        let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(&json) else {
            continue;
        };
        let auths = if nested { &parsed["auths"] } else { &parsed };
        let Some(auths) = auths.as_object() else {
            continue;
        };
        for (server, entry) in auths {
            let mut username = entry["username"].as_str().map(str::to_string);
            let mut password = entry["password"].as_str().map(str::to_string);
            if username.is_none()
                && let Some(auth) = entry["auth"].as_str()
                && let Ok(decoded) = STANDARD.decode(auth)
                && let Some((u, p)) = String::from_utf8_lossy(&decoded).split_once(':')
            {
                username = Some(u.to_string());
                password = Some(p.to_string());
            }
            let server = server
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            out.push(ImageRegistryCredential {
                server,
                username,
                password,
            });
        }
    }
    out
}

fn dns_of(pod: &Pod, ctx: &MappingContext) -> Option<DnsConfiguration> {
    let spec = pod.spec.as_ref()?;
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut config = match (&spec.dns_config, policy, &ctx.cluster_dns) {
        (_, "ClusterFirst" | "ClusterFirstWithHostNet", Some(dns)) => DnsConfiguration {
            name_servers: vec![dns.clone()],
            search_domains: Some(format!(
                "{namespace}.svc.{d} svc.{d} {d}",
                d = ctx.cluster_domain
            )),
            options: Some("ndots:5".into()),
        },
        (Some(_), _, _) => DnsConfiguration::default(),
        (None, _, _) => return None,
    };
    if let Some(extra) = &spec.dns_config {
        config
            .name_servers
            .extend(extra.nameservers.iter().flatten().cloned());
        let searches: Vec<String> = config
            .search_domains
            .iter()
            .flat_map(|s| s.split(' ').map(str::to_string))
            .chain(extra.searches.iter().flatten().cloned())
            .collect();
        config.search_domains = (!searches.is_empty()).then(|| searches.join(" "));
        let options: Vec<String> = config
            .options
            .iter()
            .flat_map(|s| s.split(' ').map(str::to_string))
            .chain(extra.options.iter().flatten().map(|o| match &o.value {
                Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            }))
            .collect();
        config.options = (!options.is_empty()).then(|| options.join(" "));
    }
    (!config.name_servers.is_empty()).then_some(config)
}

#[cfg(test)]
mod tests;
