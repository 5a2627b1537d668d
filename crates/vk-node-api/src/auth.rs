//! Authentication and authorization of kubelet API callers, as a kubelet does them:
//!
//! * **authentication**: a client certificate verified by TLS against the client CA
//!   (user = CN, groups = O); else a bearer token checked with a `TokenReview` when the
//!   token webhook is enabled; else `system:anonymous` when anonymous access is enabled;
//!   else 401;
//! * **authorization**: `AlwaysAllow`, or a `SubjectAccessReview` on the node with the
//!   kubelet's mapping of paths to subresources (`/stats/*` → `nodes/stats`,
//!   `/metrics/*` → `nodes/metrics`, `/logs/*` → `nodes/log`, `/spec/*` → `nodes/spec`,
//!   everything else — exec, attach, port-forward, containerLogs, pods — `nodes/proxy`)
//!   and of HTTP methods to verbs; a denial is 403.
//!
//! Webhook answers are cached as the kubelet caches them (authentication 2 min;
//! authorization 5 min when allowed, 30 s when denied).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rustls::pki_types::CertificateDer;

use crate::error::ApiError;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct User {
    /// User name.
    pub name: String,
    /// UID, when known.
    pub uid: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes (from token reviews).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// The anonymous user.
    pub fn anonymous() -> Self {
        Self {
            name: "system:anonymous".into(),
            uid: None,
            groups: vec!["system:unauthenticated".into()],
            extra: BTreeMap::new(),
        }
    }
}

/// The verified certificate chain of the TLS peer (a request extension).
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Vec<CertificateDer<'static>>);

/// How requests are authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzMode {
    /// Every authenticated request is allowed.
    AlwaysAllow,
    /// SubjectAccessReview against the API server.
    Webhook,
}

/// Authentication/authorization settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Let requests without credentials through as `system:anonymous`.
    pub anonymous: bool,
    /// Check bearer tokens with TokenReview.
    pub token_webhook: bool,
    /// Authorization mode.
    pub authorization: AuthzMode,
}

impl Default for AuthConfig {
    /// Secure defaults: no anonymous access, token webhook on, webhook authorization.
    fn default() -> Self {
        Self {
            anonymous: false,
            token_webhook: true,
            authorization: AuthzMode::Webhook,
        }
    }
}

/// The request attributes an authorization decision is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// `get`, `create`, `update`, `patch`, `delete`.
    pub verb: &'static str,
    /// `proxy`, `log`, `stats`, `metrics` or `spec` (of `nodes`).
    pub subresource: &'static str,
}

/// The kubelet's mapping from method and path to verb and `nodes` subresource.
pub fn attributes(method: &http::Method, path: &str) -> Attributes {
    let verb = match *method {
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "get",
    };
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    let subresource = if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else if under("/spec") {
        "spec"
    } else {
        "proxy"
    };
    Attributes { verb, subresource }
}

/// The user named by a (verified) client certificate: CN and O values.
pub fn user_from_certificate(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(User {
        name,
        uid: None,
        groups,
        extra: BTreeMap::new(),
    })
}

struct Cached<T> {
    value: T,
    until: Instant,
}

/// Authenticates and authorizes requests for one node.
pub struct Authenticator {
    config: AuthConfig,
    node: String,
    client: Option<Client>,
    tokens: Mutex<HashMap<String, Cached<Option<User>>>>,
    decisions: Mutex<HashMap<(User, Attributes), Cached<bool>>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.config)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

const TOKEN_TTL: Duration = Duration::from_secs(120);
const ALLOW_TTL: Duration = Duration::from_secs(300);
const DENY_TTL: Duration = Duration::from_secs(30);

impl Authenticator {
    /// An authenticator for node `node`; `client` is needed for the webhooks.
    pub fn new(config: AuthConfig, node: impl Into<String>, client: Option<Client>) -> Self {
        Self {
            config,
            node: node.into(),
            client,
            tokens: Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// Who the caller is, or 401.
    pub async fn authenticate(
        &self,
        peer: Option<&PeerCertificates>,
        headers: &http::HeaderMap,
    ) -> Result<User, ApiError> {
        if let Some(user) = peer
            .and_then(|p| p.0.first())
            .and_then(|c| user_from_certificate(c.as_ref()))
        {
            return Ok(user);
        }
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if let (Some(token), true) = (token, self.config.token_webhook) {
            return match self.review_token(token).await? {
                Some(user) => Ok(user),
                None => Err(ApiError::Unauthorized),
            };
        }
        if self.config.anonymous {
            return Ok(User::anonymous());
        }
        Err(ApiError::Unauthorized)
    }

    async fn review_token(&self, token: &str) -> Result<Option<User>, ApiError> {
        if let Some(c) = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            && c.until > Instant::now()
        {
            return Ok(c.value.clone());
        }
        let Some(client) = &self.client else {
            return Err(ApiError::Internal(
                "token webhook enabled without a client".into(),
            ));
        };
        let review = TokenReview {
            metadata: ObjectMeta::default(),
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            status: None,
        };
        let answer = Api::<TokenReview>::all(client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ApiError::Internal(format!("TokenReview failed: {e}")))?;
        let status = answer.status.unwrap_or_default();
        let user = status
            .authenticated
            .unwrap_or(false)
            .then(|| status.user.unwrap_or_default())
            .map(|u| User {
                name: u.username.unwrap_or_default(),
                uid: u.uid,
                groups: u.groups.unwrap_or_default(),
                extra: u.extra.unwrap_or_default(),
            });
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                token.to_owned(),
                Cached {
                    value: user.clone(),
                    until: Instant::now() + TOKEN_TTL,
                },
            );
        Ok(user)
    }

    /// Whether `user` may do `attrs` on this node; 403 otherwise.
    pub async fn authorize(&self, user: &User, attrs: &Attributes) -> Result<(), ApiError> {
        if self.config.authorization == AuthzMode::AlwaysAllow {
            return Ok(());
        }
        let key = (user.clone(), attrs.clone());
        let cached = self
            .decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|c| c.until > Instant::now())
            .map(|c| c.value);
        let allowed = match cached {
            Some(v) => v,
            None => {
                let v = self.review_access(user, attrs).await?;
                self.decisions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        key,
                        Cached {
                            value: v,
                            until: Instant::now() + if v { ALLOW_TTL } else { DENY_TTL },
                        },
                    );
                v
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "Forbidden (user={}, verb={}, resource=nodes, subresource={})",
                user.name, attrs.verb, attrs.subresource
            )))
        }
    }

    async fn review_access(&self, user: &User, attrs: &Attributes) -> Result<bool, ApiError> {
        let Some(client) = &self.client else {
            return Err(ApiError::Internal(
                "webhook authorization without a client".into(),
            ));
        };
        let review = SubjectAccessReview {
            metadata: ObjectMeta::default(),
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: user.uid.clone(),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(attrs.verb.into()),
                    resource: Some("nodes".into()),
                    subresource: Some(attrs.subresource.into()),
                    name: Some(self.node.clone()),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            },
            status: None,
        };
        let answer = Api::<SubjectAccessReview>::all(client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ApiError::Internal(format!("SubjectAccessReview failed: {e}")))?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_path_and_verb_mapping() {
        let cases = [
            (http::Method::GET, "/stats/summary", "get", "stats"),
            (http::Method::GET, "/metrics/resource", "get", "metrics"),
            (http::Method::GET, "/metrics", "get", "metrics"),
            (http::Method::GET, "/logs/", "get", "log"),
            (http::Method::GET, "/spec/", "get", "spec"),
            (http::Method::POST, "/exec/ns/p/c", "create", "proxy"),
            (http::Method::GET, "/containerLogs/ns/p/c", "get", "proxy"),
            (http::Method::GET, "/pods", "get", "proxy"),
            (http::Method::GET, "/statsx", "get", "proxy"),
        ];
        for (m, path, verb, sub) in cases {
            assert_eq!(
                attributes(&m, path),
                Attributes {
                    verb,
                    subresource: sub
                },
                "{m} {path}"
            );
        }
    }

    #[test]
    fn certificate_subject_becomes_the_user() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        // (rcgen keeps one value per attribute type; kubectl-issued certificates may
        // carry several O values, each a group.)
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "ops");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let user = user_from_certificate(cert.der()).expect("user");
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, ["ops"]);
    }

    #[tokio::test]
    async fn without_credentials_it_is_401_unless_anonymous_is_enabled() {
        let strict = Authenticator::new(AuthConfig::default(), "n", None);
        let e = strict
            .authenticate(None, &http::HeaderMap::new())
            .await
            .expect_err("401");
        assert_eq!(e.status(), 401);
        let open = Authenticator::new(
            AuthConfig {
                anonymous: true,
                token_webhook: false,
                authorization: AuthzMode::AlwaysAllow,
            },
            "n",
            None,
        );
        let user = open
            .authenticate(None, &http::HeaderMap::new())
            .await
            .expect("anonymous");
        assert_eq!(user, User::anonymous());
        open.authorize(&user, &attributes(&http::Method::GET, "/pods"))
            .await
            .expect("allowed");
    }
}
