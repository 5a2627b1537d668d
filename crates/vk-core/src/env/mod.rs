//! Environment and downward-API resolution: turns every container's `env` and `envFrom`
//! into plain `name`/`value` pairs before the pod reaches the provider, with the
//! kubelet's semantics and upstream virtual-kubelet's event reasons.
//!
//! # Semantics
//!
//! For each container (init, regular and ephemeral), in this order:
//! 1. `envFrom` sources (ConfigMaps and Secrets, with `prefix`); keys that are not valid
//!    variable names are skipped with an `InvalidEnvironmentVariableNames` event;
//! 2. `env` entries in order: `value` (with `$(VAR)` expansion against everything
//!    defined before it and the service variables), or `valueFrom` a ConfigMap key,
//!    Secret key, `fieldRef` or `resourceFieldRef`; later definitions override earlier
//!    ones;
//! 3. service link variables (the pod's namespace's services when
//!    `enableServiceLinks` is not false, plus the master service), unless already defined.
//!
//! The result keeps the order in which names were first defined, then the service
//! variables sorted by name, so the provider always sees the same list for the same pod.
//!
//! A missing **optional** ConfigMap/Secret (or key) is skipped with a Warning event
//! (`OptionalConfigMapNotFound`, `OptionalSecretKeyNotFound`...); a missing
//! **mandatory** one fails resolution with an event (`MandatoryConfigMapNotFound`...),
//! and the pod does not reach the provider until it exists.
//!
//! Beyond upstream, `fieldRef` supports `status.podIP`, `status.podIPs` and
//! `status.hostIP`, and `resourceFieldRef` is supported (limits fall back to the node's
//! allocatable, as on a kubelet).
//!
//! Objects are read through [`EnvSource`], once per resolution; nothing is cached across
//! pods, so memory does not grow with the number of ConfigMaps and Secrets in the cluster.

mod expansion;
mod services;

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, Pod,
    ResourceFieldSelector, Secret, SecretKeySelector, Service,
};

pub use expansion::expand;
pub use services::{MASTER_SERVICE_NAME, MASTER_SERVICE_NAMESPACE, service_env, services_for_pod};

use crate::quantity::Quantity;

/// Event reasons, named as upstream virtual-kubelet (and the kubelet) name them.
pub mod reasons {
    /// An optional ConfigMap referenced by the pod does not exist.
    pub const OPTIONAL_CONFIG_MAP_NOT_FOUND: &str = "OptionalConfigMapNotFound";
    /// A key of an optional ConfigMap reference does not exist.
    pub const OPTIONAL_CONFIG_MAP_KEY_NOT_FOUND: &str = "OptionalConfigMapKeyNotFound";
    /// Reading an optional ConfigMap failed.
    pub const FAILED_TO_READ_OPTIONAL_CONFIG_MAP: &str = "FailedToReadOptionalConfigMap";
    /// An optional Secret referenced by the pod does not exist.
    pub const OPTIONAL_SECRET_NOT_FOUND: &str = "OptionalSecretNotFound";
    /// A key of an optional Secret reference does not exist.
    pub const OPTIONAL_SECRET_KEY_NOT_FOUND: &str = "OptionalSecretKeyNotFound";
    /// Reading an optional Secret failed.
    pub const FAILED_TO_READ_OPTIONAL_SECRET: &str = "FailedToReadOptionalSecret";
    /// A mandatory ConfigMap referenced by the pod does not exist.
    pub const MANDATORY_CONFIG_MAP_NOT_FOUND: &str = "MandatoryConfigMapNotFound";
    /// A key of a mandatory ConfigMap reference does not exist.
    pub const MANDATORY_CONFIG_MAP_KEY_NOT_FOUND: &str = "MandatoryConfigMapKeyNotFound";
    /// Reading a mandatory ConfigMap failed.
    pub const FAILED_TO_READ_MANDATORY_CONFIG_MAP: &str = "FailedToReadMandatoryConfigMap";
    /// A mandatory Secret referenced by the pod does not exist.
    pub const MANDATORY_SECRET_NOT_FOUND: &str = "MandatorySecretNotFound";
    /// A key of a mandatory Secret reference does not exist.
    pub const MANDATORY_SECRET_KEY_NOT_FOUND: &str = "MandatorySecretKeyNotFound";
    /// Reading a mandatory Secret failed.
    pub const FAILED_TO_READ_MANDATORY_SECRET: &str = "FailedToReadMandatorySecret";
    /// `envFrom` keys that are not valid variable names were skipped.
    pub const INVALID_ENVIRONMENT_VARIABLE_NAMES: &str = "InvalidEnvironmentVariableNames";
}

/// Where resolution reads ConfigMaps, Secrets and Services from.
/// [`ResourceAccess`](crate::ResourceAccess) implements it with API reads.
#[async_trait]
pub trait EnvSource: Send + Sync {
    /// A ConfigMap, or `None` if it does not exist.
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> vk_errdefs::Result<Option<ConfigMap>>;
    /// A Secret, or `None` if it does not exist.
    async fn secret(&self, namespace: &str, name: &str) -> vk_errdefs::Result<Option<Secret>>;
    /// The Services of a namespace.
    async fn services(&self, namespace: &str) -> vk_errdefs::Result<Vec<Service>>;
}

/// Node-side facts the downward API needs.
#[derive(Debug, Clone, Default)]
pub struct EnvContext {
    /// The node's IP (`status.hostIP`).
    pub host_ip: Option<String>,
    /// The pod's IP when known before creation (`status.podIP`); the pod's own
    /// `status.podIP` wins when set.
    pub pod_ip: Option<String>,
    /// The node's allocatable resources, used by `resourceFieldRef` for limits the
    /// container does not set.
    pub node_allocatable: BTreeMap<String, Quantity>,
    /// Keep the origin of values resolved from a Secret (`env[].valueFrom.secretKeyRef`
    /// and `envFrom[].secretRef`): such a variable then has both its resolved `value`
    /// and a `valueFrom.secretKeyRef` naming the Secret and key, so a backend can store
    /// it as a secret (Azure's `secureValue`). Off by default: providers see plain
    /// `name`/`value` pairs. Set from
    /// [`PodLifecycleHandler::keep_secret_env_refs`](crate::PodLifecycleHandler::keep_secret_env_refs).
    pub keep_secret_refs: bool,
}

/// An event to record on the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEvent {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// One of [`reasons`].
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

/// Why resolution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EnvError {
    /// The event reason describing the failure.
    pub reason: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
    /// Whether this is a read failure (retryable) rather than missing data.
    pub transient: bool,
}

/// Successful resolution.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The pod with plain env lists and no `envFrom`.
    pub pod: Pod,
    /// Events to record (skipped optional references, invalid names).
    pub events: Vec<EnvEvent>,
}

/// Failed resolution: the error and the events recorded so far (including one for the
/// failure itself).
#[derive(Debug, Clone)]
pub struct Failed {
    /// What failed.
    pub error: EnvError,
    /// Events to record.
    pub events: Vec<EnvEvent>,
}

/// Resolves every container's environment; see the module documentation.
pub async fn resolve(
    pod: &Pod,
    ctx: &EnvContext,
    source: &dyn EnvSource,
) -> Result<Resolved, Failed> {
    let mut resolver = Resolver {
        pod,
        ctx,
        source,
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        config_maps: HashMap::new(),
        secrets: HashMap::new(),
        services: None,
        events: Vec::new(),
    };
    let mut out = pod.clone();
    let result = resolver.resolve_all(&mut out).await;
    match result {
        Ok(()) => Ok(Resolved {
            pod: out,
            events: resolver.events,
        }),
        Err(error) => {
            resolver.events.push(EnvEvent {
                warning: true,
                reason: error.reason,
                message: error.message.clone(),
            });
            Err(Failed {
                error,
                events: resolver.events,
            })
        }
    }
}

/// Whether `name` is a valid environment variable name (Kubernetes 1.20 rules:
/// `[-._a-zA-Z][-._a-zA-Z0-9]*`).
pub fn is_valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || "-._".contains(c) => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

struct Resolver<'a> {
    pod: &'a Pod,
    ctx: &'a EnvContext,
    source: &'a dyn EnvSource,
    namespace: String,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
    services: Option<Vec<(String, String)>>,
    events: Vec<EnvEvent>,
}

/// Ordered name → value map: keeps first-definition order, later values win.
#[derive(Default)]
struct EnvList {
    order: Vec<String>,
    values: HashMap<String, String>,
    /// Name → (Secret, key) for values that came from a Secret.
    secret_refs: HashMap<String, (String, String)>,
}

impl EnvList {
    fn set(&mut self, name: String, value: String) {
        self.secret_refs.remove(&name);
        if !self.values.contains_key(&name) {
            self.order.push(name.clone());
        }
        self.values.insert(name, value);
    }

    fn set_from_secret(&mut self, name: String, value: String, secret: &str, key: &str) {
        self.set(name.clone(), value);
        self.secret_refs
            .insert(name, (secret.to_owned(), key.to_owned()));
    }

    /// The `valueFrom` kept for `name` (see [`EnvContext::keep_secret_refs`]).
    fn value_from(&self, name: &str, keep: bool) -> Option<EnvVarSource> {
        let (secret, key) = self.secret_refs.get(name).filter(|_| keep)?;
        Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.clone(),
                key: key.clone(),
                optional: None,
            }),
            ..EnvVarSource::default()
        })
    }
}

enum Kind {
    ConfigMap,
    Secret,
}

impl Resolver<'_> {
    async fn resolve_all(&mut self, pod: &mut Pod) -> Result<(), EnvError> {
        let Some(spec) = pod.spec.as_mut() else {
            return Ok(());
        };
        let regular = spec
            .init_containers
            .iter_mut()
            .flatten()
            .chain(spec.containers.iter_mut());
        for container in regular {
            let snapshot = container.clone();
            container.env = self.container_env(&snapshot).await?;
            container.env_from = None;
        }
        for container in spec.ephemeral_containers.iter_mut().flatten() {
            // Ephemeral containers have no resources of their own; resourceFieldRef on
            // them resolves against the node's allocatable.
            let snapshot = Container {
                name: container.name.clone(),
                env: container.env.clone(),
                env_from: container.env_from.clone(),
                ..Default::default()
            };
            container.env = self.container_env(&snapshot).await?;
            container.env_from = None;
        }
        Ok(())
    }

    async fn container_env(
        &mut self,
        container: &Container,
    ) -> Result<Option<Vec<EnvVar>>, EnvError> {
        let services = self.service_vars().await?;
        let mut list = EnvList::default();
        for source in container.env_from.iter().flatten() {
            self.env_from(&container.name, source, &mut list).await?;
        }
        for var in container.env.iter().flatten() {
            let from_secret = var
                .value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
                .map(|r| (r.name.clone(), r.key.clone()));
            let value = if let Some(from) = &var.value_from {
                let resolved = if let Some(r) = &from.config_map_key_ref {
                    self.key_ref(
                        Kind::ConfigMap,
                        &r.name,
                        &r.key,
                        r.optional.unwrap_or(false),
                    )
                    .await?
                } else if let Some(r) = &from.secret_key_ref {
                    self.key_ref(Kind::Secret, &r.name, &r.key, r.optional.unwrap_or(false))
                        .await?
                } else if let Some(r) = &from.field_ref {
                    Some(self.field_ref(&var.name, r)?)
                } else if let Some(r) = &from.resource_field_ref {
                    Some(self.resource_field_ref(&var.name, container, r)?)
                } else {
                    Some(String::new())
                };
                match resolved {
                    Some(v) => v,
                    None => continue, // optional reference skipped
                }
            } else {
                let raw = var.value.as_deref().unwrap_or_default();
                expand(raw, |name| {
                    list.values.get(name).cloned().or_else(|| {
                        services
                            .iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.clone())
                    })
                })
            };
            match from_secret {
                Some((secret, key)) => list.set_from_secret(var.name.clone(), value, &secret, &key),
                None => list.set(var.name.clone(), value),
            }
        }
        let keep = self.ctx.keep_secret_refs;
        let mut out: Vec<EnvVar> = list
            .order
            .iter()
            .map(|name| EnvVar {
                name: name.clone(),
                value: list.values.get(name).cloned(),
                value_from: list.value_from(name, keep),
            })
            .collect();
        for (name, value) in services.iter() {
            if !list.values.contains_key(name) {
                out.push(EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    value_from: None,
                });
            }
        }
        Ok(if out.is_empty() { None } else { Some(out) })
    }

    async fn service_vars(&mut self) -> Result<Vec<(String, String)>, EnvError> {
        if let Some(vars) = &self.services {
            return Ok(vars.clone());
        }
        let links = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let read_err = |e: vk_errdefs::Error| EnvError {
            reason: "FailedToReadServices",
            message: format!("reading services for service links failed: {e}"),
            transient: true,
        };
        let own = if links {
            self.source
                .services(&self.namespace)
                .await
                .map_err(read_err)?
        } else {
            Vec::new()
        };
        let master_list = if self.namespace == MASTER_SERVICE_NAMESPACE && links {
            Vec::new()
        } else {
            self.source
                .services(MASTER_SERVICE_NAMESPACE)
                .await
                .map_err(read_err)?
        };
        let master = master_list
            .iter()
            .chain(own.iter())
            .find(|s| {
                s.metadata.name.as_deref() == Some(MASTER_SERVICE_NAME)
                    && s.metadata.namespace.as_deref() == Some(MASTER_SERVICE_NAMESPACE)
            })
            .cloned();
        let mut vars: Vec<(String, String)> = Vec::new();
        for svc in services_for_pod(&self.namespace, links, &own, master.as_ref()) {
            vars.extend(service_env(svc));
        }
        vars.sort();
        vars.dedup_by(|a, b| a.0 == b.0);
        self.services = Some(vars.clone());
        Ok(vars)
    }

    async fn env_from(
        &mut self,
        container: &str,
        source: &EnvFromSource,
        list: &mut EnvList,
    ) -> Result<(), EnvError> {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        let (kind, name, optional) = if let Some(r) = &source.config_map_ref {
            (
                Kind::ConfigMap,
                r.name.as_str(),
                r.optional.unwrap_or(false),
            )
        } else if let Some(r) = &source.secret_ref {
            (Kind::Secret, r.name.as_str(), r.optional.unwrap_or(false))
        } else {
            return Ok(());
        };
        let Some(data) = self.object_data(&kind, name, optional).await? else {
            return Ok(());
        };
        let mut invalid = Vec::new();
        for (key, value) in data {
            let var = format!("{prefix}{key}");
            if is_valid_env_name(&var) {
                match kind {
                    Kind::Secret => list.set_from_secret(var, value, name, &key),
                    Kind::ConfigMap => list.set(var, value),
                }
            } else {
                invalid.push(var);
            }
        }
        if !invalid.is_empty() {
            invalid.sort();
            let what = match kind {
                Kind::ConfigMap => "configMap",
                Kind::Secret => "secret",
            };
            self.events.push(EnvEvent {
                warning: true,
                reason: reasons::INVALID_ENVIRONMENT_VARIABLE_NAMES,
                message: format!(
                    "Keys [{}] from the EnvFrom {what} {}/{name} were skipped since they \
                     are considered invalid environment variable names (container {container}).",
                    invalid.join(", "),
                    self.namespace
                ),
            });
        }
        Ok(())
    }

    /// The key/value pairs of a ConfigMap or Secret (sorted by key), or `None` when an
    /// optional one is missing.
    async fn object_data(
        &mut self,
        kind: &Kind,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, String>>, EnvError> {
        match kind {
            Kind::ConfigMap => {
                let Some(cm) = self.config_map(name, optional).await? else {
                    return Ok(None);
                };
                Ok(Some(cm.data.unwrap_or_default()))
            }
            Kind::Secret => {
                let Some(secret) = self.secret(name, optional).await? else {
                    return Ok(None);
                };
                Ok(Some(
                    secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect(),
                ))
            }
        }
    }

    async fn key_ref(
        &mut self,
        kind: Kind,
        name: &str,
        key: &str,
        optional: bool,
    ) -> Result<Option<String>, EnvError> {
        let Some(data) = self.object_data(&kind, name, optional).await? else {
            return Ok(None);
        };
        if let Some(value) = data.get(key) {
            return Ok(Some(value.clone()));
        }
        let (what, opt_reason, mand_reason) = match kind {
            Kind::ConfigMap => (
                "configmap",
                reasons::OPTIONAL_CONFIG_MAP_KEY_NOT_FOUND,
                reasons::MANDATORY_CONFIG_MAP_KEY_NOT_FOUND,
            ),
            Kind::Secret => (
                "secret",
                reasons::OPTIONAL_SECRET_KEY_NOT_FOUND,
                reasons::MANDATORY_SECRET_KEY_NOT_FOUND,
            ),
        };
        let message = format!("key {key:?} not found in {what} {}/{name}", self.namespace);
        if optional {
            self.events.push(EnvEvent {
                warning: true,
                reason: opt_reason,
                message: format!("skipping optional env var: {message}"),
            });
            Ok(None)
        } else {
            Err(EnvError {
                reason: mand_reason,
                message: format!("{message}; add the key or mark the reference optional"),
                transient: false,
            })
        }
    }

    async fn config_map(
        &mut self,
        name: &str,
        optional: bool,
    ) -> Result<Option<ConfigMap>, EnvError> {
        if !self.config_maps.contains_key(name) {
            let fetched = self.source.config_map(&self.namespace, name).await;
            let value = self.check_fetch(
                fetched,
                "configmap",
                name,
                optional,
                [
                    reasons::OPTIONAL_CONFIG_MAP_NOT_FOUND,
                    reasons::MANDATORY_CONFIG_MAP_NOT_FOUND,
                    reasons::FAILED_TO_READ_OPTIONAL_CONFIG_MAP,
                    reasons::FAILED_TO_READ_MANDATORY_CONFIG_MAP,
                ],
            )?;
            self.config_maps.insert(name.to_owned(), value);
        }
        Ok(self.config_maps.get(name).cloned().flatten())
    }

    async fn secret(&mut self, name: &str, optional: bool) -> Result<Option<Secret>, EnvError> {
        if !self.secrets.contains_key(name) {
            let fetched = self.source.secret(&self.namespace, name).await;
            let value = self.check_fetch(
                fetched,
                "secret",
                name,
                optional,
                [
                    reasons::OPTIONAL_SECRET_NOT_FOUND,
                    reasons::MANDATORY_SECRET_NOT_FOUND,
                    reasons::FAILED_TO_READ_OPTIONAL_SECRET,
                    reasons::FAILED_TO_READ_MANDATORY_SECRET,
                ],
            )?;
            self.secrets.insert(name.to_owned(), value);
        }
        Ok(self.secrets.get(name).cloned().flatten())
    }

    /// Turns a fetch result into the object, an event (optional + missing) or an error.
    /// `reasons` = [optional not found, mandatory not found, optional read failed,
    /// mandatory read failed].
    fn check_fetch<T>(
        &mut self,
        fetched: vk_errdefs::Result<Option<T>>,
        what: &str,
        name: &str,
        optional: bool,
        reasons: [&'static str; 4],
    ) -> Result<Option<T>, EnvError> {
        let ns = &self.namespace;
        match fetched {
            Ok(Some(obj)) => Ok(Some(obj)),
            Ok(None) if optional => {
                self.events.push(EnvEvent {
                    warning: true,
                    reason: reasons[0],
                    message: format!("{what} {ns}/{name} not found; skipping optional reference"),
                });
                Ok(None)
            }
            Ok(None) => Err(EnvError {
                reason: reasons[1],
                message: format!(
                    "{what} {ns}/{name} not found; create it or mark the reference optional"
                ),
                transient: false,
            }),
            Err(e) => Err(EnvError {
                reason: if optional { reasons[2] } else { reasons[3] },
                message: format!("reading {what} {ns}/{name} failed: {e}"),
                transient: true,
            }),
        }
    }

    fn field_ref(&self, var: &str, selector: &ObjectFieldSelector) -> Result<String, EnvError> {
        let pod = self.pod;
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let path = selector.field_path.as_str();
        let bracketed = |prefix: &str| -> Option<String> {
            let rest = path
                .strip_prefix(prefix)?
                .strip_prefix("['")?
                .strip_suffix("']")?;
            Some(rest.to_owned())
        };
        let pod_ip = || {
            status
                .and_then(|s| s.pod_ip.clone())
                .filter(|ip| !ip.is_empty())
                .or_else(|| self.ctx.pod_ip.clone())
                .unwrap_or_default()
        };
        let value = match path {
            "metadata.name" => meta.name.clone().unwrap_or_default(),
            "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
            "metadata.uid" => meta.uid.clone().unwrap_or_default(),
            "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            "spec.serviceAccountName" => spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_default(),
            "status.hostIP" => status
                .and_then(|s| s.host_ip.clone())
                .filter(|ip| !ip.is_empty())
                .or_else(|| self.ctx.host_ip.clone())
                .unwrap_or_default(),
            "status.podIP" => pod_ip(),
            "status.podIPs" => {
                let ips: Vec<String> = status
                    .and_then(|s| s.pod_ips.as_ref())
                    .map(|ips| ips.iter().map(|p| p.ip.clone()).collect())
                    .unwrap_or_default();
                if ips.is_empty() {
                    pod_ip()
                } else {
                    ips.join(",")
                }
            }
            _ => {
                if let Some(key) = bracketed("metadata.labels") {
                    meta.labels
                        .as_ref()
                        .and_then(|l| l.get(&key).cloned())
                        .unwrap_or_default()
                } else if let Some(key) = bracketed("metadata.annotations") {
                    meta.annotations
                        .as_ref()
                        .and_then(|a| a.get(&key).cloned())
                        .unwrap_or_default()
                } else {
                    return Err(EnvError {
                        reason: "InvalidFieldRef",
                        message: format!(
                            "env {var}: unsupported fieldRef.fieldPath {path:?}; supported: \
                             metadata.name, metadata.namespace, metadata.uid, \
                             metadata.labels['<key>'], metadata.annotations['<key>'], \
                             spec.nodeName, spec.serviceAccountName, status.hostIP, \
                             status.podIP, status.podIPs"
                        ),
                        transient: false,
                    });
                }
            }
        };
        Ok(value)
    }

    fn resource_field_ref(
        &self,
        var: &str,
        current: &Container,
        selector: &ResourceFieldSelector,
    ) -> Result<String, EnvError> {
        let invalid = |message: String| EnvError {
            reason: "InvalidResourceFieldRef",
            message: format!("env {var}: {message}"),
            transient: false,
        };
        let container = match selector.container_name.as_deref().filter(|n| !n.is_empty()) {
            None => current,
            Some(name) if name == current.name => current,
            Some(name) => self
                .pod
                .spec
                .as_ref()
                .and_then(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                        .find(|c| c.name == name)
                })
                .ok_or_else(|| {
                    invalid(format!(
                        "resourceFieldRef.containerName {name:?} is not a container of this pod"
                    ))
                })?,
        };
        let (section, resource) = selector.resource.split_once('.').ok_or_else(|| {
            invalid(format!(
                "unsupported resourceFieldRef.resource {:?}",
                selector.resource
            ))
        })?;
        if !["cpu", "memory", "ephemeral-storage"].contains(&resource)
            || !["limits", "requests"].contains(&section)
        {
            return Err(invalid(format!(
                "unsupported resourceFieldRef.resource {:?}; use limits.cpu, limits.memory, \
                 limits.ephemeral-storage or the same under requests",
                selector.resource
            )));
        }
        let resources = container.resources.as_ref();
        let pick = |m: Option<
            &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >| { m.and_then(|m| m.get(resource)).map(|q| q.0.clone()) };
        let declared = match section {
            "limits" => pick(resources.and_then(|r| r.limits.as_ref())),
            _ => pick(resources.and_then(|r| r.requests.as_ref()))
                // A request defaults to the limit when only the limit is set.
                .or_else(|| pick(resources.and_then(|r| r.limits.as_ref()))),
        };
        let quantity = match declared {
            Some(text) => Quantity::parse(&text).map_err(|e| invalid(e.to_string()))?,
            None if section == "limits" => self
                .ctx
                .node_allocatable
                .get(resource)
                .copied()
                .unwrap_or(Quantity::from_units(0)),
            None => Quantity::from_units(0),
        };
        let divisor = match &selector.divisor {
            Some(d) => Quantity::parse(&d.0).map_err(|e| invalid(e.to_string()))?,
            None => Quantity::from_units(1),
        };
        let value = quantity
            .ceil_div(&divisor, resource == "cpu")
            .ok_or_else(|| invalid("resourceFieldRef.divisor must not be zero".to_owned()))?;
        Ok(value.to_string())
    }
}

#[cfg(test)]
mod tests;
