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
//! authorization 5 min when allowed, 30 s when denied), in bounded caches.
//!
//! Bearer tokens come from anyone who can reach the port, so their checks are bounded
//! ([`TokenLimits`]): a token longer than the limit is refused (401) without a review;
//! answers are cached by token digest ([`crate::token_cache`]), rejections only
//! briefly; and new reviews are rate-limited per process (a [`TokenBucket`], see
//! [`shared_review_limiter`]): over the limit a request is answered 429 with
//! `Retry-After` at once, nothing queues.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rustls::pki_types::CertificateDer;

use crate::error::ApiError;
use crate::rate_limit::{LogThrottle, TokenBucket};
use crate::token_cache::{self, TokenCache, TokenCacheConfig};
use crate::ttl_cache::TtlCache;

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

/// Limits of bearer-token authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLimits {
    /// Longer tokens are refused (401) without a `TokenReview`. Service-account
    /// tokens are about 1 KiB; OIDC tokens carrying many groups a few KiB.
    pub max_token_bytes: usize,
    /// Bounds and lifetimes of the review cache.
    pub cache: TokenCacheConfig,
}

impl Default for TokenLimits {
    /// 16 KiB tokens, the default cache.
    fn default() -> Self {
        Self {
            max_token_bytes: 16 * 1024,
            cache: TokenCacheConfig::default(),
        }
    }
}

/// `TokenReview`s a process starts per second, and at once, by default.
pub const TOKEN_REVIEWS_PER_SECOND: f64 = 10.0;
/// See [`TOKEN_REVIEWS_PER_SECOND`].
pub const TOKEN_REVIEW_BURST: u32 = 50;

static REVIEWS: LazyLock<Arc<TokenBucket>> = LazyLock::new(|| {
    Arc::new(TokenBucket::new(
        TOKEN_REVIEWS_PER_SECOND,
        TOKEN_REVIEW_BURST,
    ))
});

/// The process-wide limit on new `TokenReview`s ([`TOKEN_REVIEWS_PER_SECOND`], burst
/// [`TOKEN_REVIEW_BURST`]) that every [`Authenticator`] uses unless given another with
/// [`Authenticator::with_review_limiter`]: with `--nodes N` the nodes share it.
pub fn shared_review_limiter() -> Arc<TokenBucket> {
    Arc::clone(&REVIEWS)
}

/// How many authorization decisions are remembered.
const MAX_DECISIONS: usize = 4096;

/// Authenticates and authorizes requests for one node.
pub struct Authenticator {
    config: AuthConfig,
    node: String,
    client: Option<Client>,
    token_limits: TokenLimits,
    tokens: Mutex<TokenCache>,
    reviews: Arc<TokenBucket>,
    throttled: LogThrottle,
    decisions: Mutex<TtlCache<(User, Attributes), bool>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.config)
            .field("node", &self.node)
            .field("token_limits", &self.token_limits)
            .finish_non_exhaustive()
    }
}

const ALLOW_TTL: Duration = Duration::from_secs(300);
const DENY_TTL: Duration = Duration::from_secs(30);

impl Authenticator {
    /// An authenticator for node `node`; `client` is needed for the webhooks.
    /// Token checks use the default [`TokenLimits`] and the
    /// [`shared_review_limiter`].
    pub fn new(config: AuthConfig, node: impl Into<String>, client: Option<Client>) -> Self {
        let token_limits = TokenLimits::default();
        Self {
            config,
            node: node.into(),
            client,
            tokens: Mutex::new(TokenCache::new(token_limits.cache.clone())),
            token_limits,
            reviews: shared_review_limiter(),
            throttled: LogThrottle::new(Duration::from_secs(10)),
            decisions: Mutex::new(TtlCache::new(MAX_DECISIONS)),
        }
    }

    /// Uses `limits` for bearer tokens (the cache starts empty).
    pub fn with_token_limits(mut self, limits: TokenLimits) -> Self {
        self.tokens = Mutex::new(TokenCache::new(limits.cache.clone()));
        self.token_limits = limits;
        self
    }

    /// Limits new `TokenReview`s with `limiter` instead of the process-wide one.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use vk_node_api::auth::{AuthConfig, Authenticator};
    /// use vk_node_api::rate_limit::TokenBucket;
    ///
    /// let auth = Authenticator::new(AuthConfig::default(), "my-node", None)
    ///     .with_review_limiter(Arc::new(TokenBucket::new(1.0, 5)));
    /// ```
    pub fn with_review_limiter(mut self, limiter: Arc<TokenBucket>) -> Self {
        self.reviews = limiter;
        self
    }

    /// How many accepted and rejected tokens the review cache holds.
    pub fn cached_tokens(&self) -> (usize, usize) {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).len()
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
        if token.len() > self.token_limits.max_token_bytes {
            tracing::debug!(
                bytes = token.len(),
                limit = self.token_limits.max_token_bytes,
                "bearer token refused: longer than the limit"
            );
            return Ok(None);
        }
        let key = token_cache::digest(token);
        if let Some(known) = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(known);
        }
        let Some(client) = &self.client else {
            return Err(ApiError::Internal(
                "token webhook enabled without a client".into(),
            ));
        };
        if let Err(retry_after) = self.reviews.try_acquire() {
            if let Some(held_back) = self.throttled.allow() {
                tracing::warn!(
                    node = %self.node,
                    held_back,
                    "kubelet API: too many new bearer tokens to review; answering 429"
                );
            }
            return Err(ApiError::TooManyRequests {
                message: "too many new bearer tokens to review; retry later".into(),
                retry_after,
            });
        }
        // `spec.token` became required (a plain String) in Kubernetes 1.36's API; this
        // crate builds against whichever version the binary selects.
        k8s_openapi::k8s_if_le_1_35! {
            let token = Some(token.to_owned());
        }
        k8s_openapi::k8s_if_ge_1_36! {
            let token = token.to_owned();
        }
        let review = TokenReview {
            metadata: ObjectMeta::default(),
            spec: TokenReviewSpec {
                token,
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
            .insert(key, user.clone());
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
            .get(&key);
        let allowed = match cached {
            Some(v) => v,
            None => {
                let v = self.review_access(user, attrs).await?;
                self.decisions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, v, if v { ALLOW_TTL } else { DENY_TTL });
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

    /// A fake API server answering `TokenReview`s: tokens starting with `good-` are
    /// accepted (the user is named after the token). Counts the reviews.
    fn review_server() -> (Client, Arc<std::sync::atomic::AtomicUsize>) {
        use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let reviews = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&reviews);
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let count = Arc::clone(&count);
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                let body = req.into_body().collect_bytes().await.expect("request body");
                let mut review: TokenReview = serde_json::from_slice(&body).expect("a review");
                let token = review.spec.token.clone().unwrap_or_default();
                let good = token.starts_with("good-");
                review.status = Some(TokenReviewStatus {
                    authenticated: Some(good),
                    user: good.then(|| UserInfo {
                        username: Some(token),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                let json = serde_json::to_vec(&review).expect("json");
                Ok::<_, std::convert::Infallible>(http::Response::new(kube::client::Body::from(
                    json,
                )))
            }
        });
        (Client::new(service, "default"), reviews)
    }

    fn bearer(token: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
        headers
    }

    fn token_auth(client: Client, limiter: TokenBucket) -> Authenticator {
        Authenticator::new(AuthConfig::default(), "n", Some(client))
            .with_review_limiter(Arc::new(limiter))
    }

    fn reviews(counter: &std::sync::atomic::AtomicUsize) -> usize {
        counter.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn tokens_over_the_length_limit_are_401_without_a_review() {
        let (client, counter) = review_server();
        let auth = token_auth(client, TokenBucket::new(100.0, 100));
        let long = format!("good-{}", "x".repeat(16 * 1024));
        let e = auth
            .authenticate(None, &bearer(&long))
            .await
            .expect_err("too long");
        assert_eq!(e.status(), 401);
        assert_eq!(reviews(&counter), 0);
        assert_eq!(auth.cached_tokens(), (0, 0));
        // Just under the limit it is reviewed (and here accepted).
        let fits = format!("good-{}", "x".repeat(16 * 1024 - 5));
        let user = auth.authenticate(None, &bearer(&fits)).await.expect("fits");
        assert_eq!(user.name, fits);
        assert_eq!(reviews(&counter), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn rejections_are_cached_for_ten_seconds_and_acceptances_for_two_minutes() {
        let (client, counter) = review_server();
        let auth = token_auth(client, TokenBucket::new(100.0, 100));
        for _ in 0..3 {
            let e = auth
                .authenticate(None, &bearer("bad"))
                .await
                .expect_err("401");
            assert_eq!(e.status(), 401);
            auth.authenticate(None, &bearer("good-1"))
                .await
                .expect("user");
        }
        assert_eq!(reviews(&counter), 2, "one review per token");
        assert_eq!(auth.cached_tokens(), (1, 1));
        tokio::time::advance(Duration::from_secs(10)).await;
        auth.authenticate(None, &bearer("bad"))
            .await
            .expect_err("401");
        auth.authenticate(None, &bearer("good-1"))
            .await
            .expect("user");
        assert_eq!(
            reviews(&counter),
            3,
            "the rejection expired, the user did not"
        );
        tokio::time::advance(Duration::from_secs(111)).await;
        auth.authenticate(None, &bearer("good-1"))
            .await
            .expect("user");
        assert_eq!(reviews(&counter), 4, "the user expired after 2 min");
    }

    #[tokio::test(start_paused = true)]
    async fn unique_tokens_never_grow_the_cache_past_its_bounds() {
        let (client, counter) = review_server();
        let auth =
            token_auth(client, TokenBucket::new(1e9, 1_000_000)).with_token_limits(TokenLimits {
                cache: TokenCacheConfig {
                    max_accepted: 4,
                    max_rejected: 8,
                    ..Default::default()
                },
                ..Default::default()
            });
        for i in 0..200 {
            let _ = auth.authenticate(None, &bearer(&format!("bad-{i}"))).await;
            let _ = auth.authenticate(None, &bearer(&format!("good-{i}"))).await;
            let (accepted, rejected) = auth.cached_tokens();
            assert!(accepted <= 4 && rejected <= 8, "{accepted} {rejected}");
        }
        assert_eq!(reviews(&counter), 400);
    }

    #[tokio::test(start_paused = true)]
    async fn new_tokens_over_the_review_rate_are_429_and_never_queue() {
        let (client, counter) = review_server();
        let auth = token_auth(client, TokenBucket::new(1.0, 2));
        auth.authenticate(None, &bearer("good-a")).await.expect("a");
        auth.authenticate(None, &bearer("bad-b"))
            .await
            .expect_err("401");
        let e = auth
            .authenticate(None, &bearer("good-c"))
            .await
            .expect_err("throttled");
        assert_eq!(e.status(), 429);
        assert!(
            matches!(e, ApiError::TooManyRequests { retry_after, .. } if retry_after == Duration::from_secs(1)),
            "{e:?}"
        );
        assert_eq!(reviews(&counter), 2);
        // Known tokens are answered from the cache meanwhile.
        auth.authenticate(None, &bearer("good-a"))
            .await
            .expect("cached");
        assert_eq!(
            auth.authenticate(None, &bearer("bad-b"))
                .await
                .expect_err("cached")
                .status(),
            401
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        auth.authenticate(None, &bearer("good-c")).await.expect("c");
        assert_eq!(reviews(&counter), 3);
    }

    #[test]
    fn authenticators_share_the_process_wide_review_limiter() {
        let a = Authenticator::new(AuthConfig::default(), "a", None);
        let b = Authenticator::new(AuthConfig::default(), "b", None);
        assert!(Arc::ptr_eq(&a.reviews, &b.reviews));
        assert!(Arc::ptr_eq(&a.reviews, &shared_review_limiter()));
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
