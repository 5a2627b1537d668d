//! In-cluster configuration for pods run as host processes.
//!
//! A program in a pod finds the API server through `KUBERNETES_SERVICE_HOST` and
//! `KUBERNETES_SERVICE_PORT` and authenticates with the ServiceAccount credentials
//! mounted at `/var/run/secrets/kubernetes.io/serviceaccount`. On a vk-process node:
//!
//! * **The address**: the `kubernetes` Service's ClusterIP (what the core's service
//!   links put in those variables) is not routable from a host process, so
//!   [`ApiServer::apply`] replaces both variables with the API server this node itself
//!   uses (or `api_server` of the configuration).
//! * **The token**: a projected `serviceAccountToken` source (what the API server's
//!   ServiceAccount admission adds as the `kube-api-access-*` volume since Kubernetes
//!   1.21, next to the `kube-root-ca.crt` ConfigMap's `ca.crt` and the namespace from
//!   the downward API) is a token from the TokenRequest API for the pod's
//!   ServiceAccount, bound to the pod ([`token_request`]); it is requested again once
//!   80 % of its lifetime has passed, or after 24 hours, as the kubelet does
//!   ([`needs_refresh`]). Older clusters mount a token Secret, which is a plain secret
//!   volume.
//! * **The path**: there is no mount namespace; the volume lives in the pod directory
//!   and the mount path is a symlink under `VK_POD_ROOT` (see [`crate::volumes`]).
//!   Programs built on `vk-cli` read the ServiceAccount directory there; others read
//!   `$VK_POD_ROOT/var/run/secrets/kubernetes.io/serviceaccount`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccountTokenProjection};

/// Issues ServiceAccount tokens (the binary: [`vk_core::ResourceAccess`]).
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// Creates `request` for ServiceAccount `namespace/service_account`; the answer's
    /// status holds the token.
    async fn request_token(
        &self,
        namespace: &str,
        service_account: &str,
        request: &TokenRequest,
    ) -> vk_errdefs::Result<TokenRequest>;
}

#[async_trait]
impl TokenSource for vk_core::ResourceAccess {
    async fn request_token(
        &self,
        namespace: &str,
        service_account: &str,
        request: &TokenRequest,
    ) -> vk_errdefs::Result<TokenRequest> {
        vk_core::ResourceAccess::request_token(self, namespace, service_account, request).await
    }
}

/// The pod's ServiceAccount (`default` when the spec names none).
pub fn service_account(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
}

/// The TokenRequest for `projection` of `pod`: its audience (none: the API server's
/// own), its expiry (default one hour) and the pod as the bound object, so the token
/// stops working when the pod is deleted.
///
/// ```
/// use k8s_openapi::api::core::v1::{Pod, ServiceAccountTokenProjection};
/// let pod: Pod = serde_json::from_value(serde_json::json!(
///     {"metadata": {"name": "p", "uid": "u1"}, "spec": {"containers": []}})).unwrap();
/// let r = vk_process::incluster::token_request(&pod, &ServiceAccountTokenProjection {
///     path: "token".into(), audience: Some("vault".into()), expiration_seconds: Some(600) });
/// let spec = r.spec;
/// assert_eq!(spec.audiences, ["vault"]);
/// assert_eq!(spec.expiration_seconds, Some(600));
/// assert_eq!(spec.bound_object_ref.unwrap().uid.as_deref(), Some("u1"));
/// ```
pub fn token_request(pod: &Pod, projection: &ServiceAccountTokenProjection) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: projection
                .audience
                .iter()
                .filter(|a| !a.is_empty())
                .cloned()
                .collect(),
            expiration_seconds: Some(projection.expiration_seconds.unwrap_or(3600)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    }
}

/// Whether the JWT `token` must be replaced at `now`: once 80 % of its lifetime
/// (`iat` to `exp`) has passed or it is older than 24 hours; a token whose claims
/// cannot be read is always replaced.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use base64::Engine as _;
/// let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"iat":1000,"exp":2000}"#);
/// let token = format!("h.{claims}.s");
/// let at = |s| UNIX_EPOCH + Duration::from_secs(s);
/// assert!(!vk_process::incluster::needs_refresh(token.as_bytes(), at(1799)));
/// assert!(vk_process::incluster::needs_refresh(token.as_bytes(), at(1800)));
/// assert!(vk_process::incluster::needs_refresh(b"not a jwt", at(0)));
/// ```
pub fn needs_refresh(token: &[u8], now: SystemTime) -> bool {
    #[derive(serde::Deserialize)]
    struct Claims {
        iat: u64,
        exp: u64,
    }
    let claims = std::str::from_utf8(token)
        .ok()
        .and_then(|t| t.trim().split('.').nth(1))
        .and_then(|c| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c.trim_end_matches('='))
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<Claims>(&json).ok());
    let Some(Claims { iat, exp }) = claims else {
        return true;
    };
    let lifetime = exp.saturating_sub(iat);
    let refresh_after = (lifetime * 8 / 10).min(24 * 3600);
    let now = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    now >= iat.saturating_add(refresh_after)
}

/// Where the pods' in-cluster clients reach the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiServer {
    /// `KUBERNETES_SERVICE_HOST`: a host name or IP (IPv6 without brackets).
    pub host: String,
    /// `KUBERNETES_SERVICE_PORT`.
    pub port: u16,
}

impl ApiServer {
    /// Parses `https://host:port/`, `host:port` or `[v6]:port` (port default 443).
    ///
    /// ```
    /// use vk_process::incluster::ApiServer;
    /// let a = ApiServer::parse("https://127.0.0.1:6443/").unwrap();
    /// assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 6443));
    /// let b = ApiServer::parse("[::1]:8443").unwrap();
    /// assert_eq!((b.host.as_str(), b.port), ("::1", 8443));
    /// assert_eq!(ApiServer::parse("api.example").unwrap().port, 443);
    /// assert!(ApiServer::parse("h:port").is_none());
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .unwrap_or(text);
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return None;
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => 443,
                None => return None,
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, port.parse().ok()?),
                None => (authority, 443),
            }
        };
        Some(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// Points every container's `KUBERNETES_SERVICE_HOST`/`PORT` (and
    /// `KUBERNETES_SERVICE_PORT_HTTPS`, when present) at this address.
    pub fn apply(&self, pod: &mut Pod) {
        let Some(spec) = pod.spec.as_mut() else {
            return;
        };
        let port = self.port.to_string();
        let containers = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for c in containers {
            let env = c.env.get_or_insert_with(Vec::new);
            env.retain(|e| {
                !matches!(
                    e.name.as_str(),
                    "KUBERNETES_SERVICE_HOST" | "KUBERNETES_SERVICE_PORT"
                )
            });
            for e in env.iter_mut() {
                if e.name == "KUBERNETES_SERVICE_PORT_HTTPS" {
                    e.value = Some(port.clone());
                    e.value_from = None;
                }
            }
            for (name, value) in [
                ("KUBERNETES_SERVICE_HOST", &self.host),
                ("KUBERNETES_SERVICE_PORT", &port),
            ] {
                env.push(k8s_openapi::api::core::v1::EnvVar {
                    name: name.to_owned(),
                    value: Some(value.clone()),
                    value_from: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_replaces_the_cluster_ip_in_every_container() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {
                "initContainers": [{"name": "i"}],
                "containers": [{"name": "c", "env": [
                    {"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.1"},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": "443"},
                    {"name": "KUBERNETES_SERVICE_PORT_HTTPS", "value": "443"},
                    {"name": "A", "value": "1"}]}]
            }
        }))
        .expect("pod");
        ApiServer::parse("https://127.0.0.1:6443/")
            .expect("parse")
            .apply(&mut pod);
        let spec = pod.spec.expect("spec");
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let env: std::collections::BTreeMap<_, _> = c
                .env
                .iter()
                .flatten()
                .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or_default()))
                .collect();
            assert_eq!(env["KUBERNETES_SERVICE_HOST"], "127.0.0.1", "{}", c.name);
            assert_eq!(env["KUBERNETES_SERVICE_PORT"], "6443", "{}", c.name);
            if c.name == "c" {
                assert_eq!(env["KUBERNETES_SERVICE_PORT_HTTPS"], "6443");
                assert_eq!(env["A"], "1");
                assert_eq!(c.env.as_ref().map(Vec::len), Some(4));
            }
        }
    }

    #[test]
    fn refresh_after_24_hours_even_for_long_tokens() {
        let claims =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"iat":0,"exp":31536000}"#);
        let token = format!("h.{claims}.s");
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert!(!needs_refresh(token.as_bytes(), at(24 * 3600 - 1)));
        assert!(needs_refresh(token.as_bytes(), at(24 * 3600)));
    }
}
