//! The token cache and the token requests of each credential.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::time::Instant;
use vk_core::http::{HttpClient, HttpClientConfig, HttpError};

use super::credential::ResolvedAuth;
use super::{AuthError, Credential, Secret, client_assertion, form};

/// The api-version of the IMDS token endpoint.
const IMDS_API_VERSION: &str = "2018-02-01";

/// The longest a token is refreshed ahead of its expiry.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// An access token and when it expires.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The bearer token.
    pub token: Secret,
    /// When it expires (monotonic clock).
    pub expires_at: Instant,
    /// How long it was valid when issued.
    pub lifetime: Duration,
}

impl AccessToken {
    /// Whether it should be replaced at `now`: expired, or less than a fifth of its
    /// lifetime (at most five minutes) left.
    pub fn needs_refresh(&self, now: Instant) -> bool {
        let margin = (self.lifetime / 5).min(MAX_REFRESH_MARGIN);
        now + margin >= self.expires_at
    }
}

/// Tokens for one scope from one credential, cached and refreshed before expiry.
#[derive(Debug)]
pub struct TokenProvider {
    credential: Credential,
    authority_host: String,
    scope: String,
    resource: String,
    http: HttpClient,
    cache: tokio::sync::Mutex<Option<AccessToken>>,
    issued: AtomicU64,
}

/// A token endpoint's answer: Entra's `expires_in` is a number, IMDS's a string.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenProvider {
    /// Tokens for Resource Manager at `arm_endpoint` (scope `{arm_endpoint}/.default`,
    /// IMDS resource `{arm_endpoint}/`). `ca_pem` adds trusted CAs for the token
    /// endpoints.
    pub fn new(
        resolved: ResolvedAuth,
        arm_endpoint: &str,
        ca_pem: Option<Vec<u8>>,
    ) -> Result<Self, AuthError> {
        let base = match &resolved.credential {
            Credential::ManagedIdentity { endpoint, .. } => endpoint.clone(),
            _ => resolved.authority_host.clone(),
        };
        let mut config = HttpClientConfig::new(base)
            .request_timeout(Some(Duration::from_secs(30)))
            .error_body_limit(4096);
        if let Some(pem) = ca_pem {
            config = config.ca_pem(pem);
        }
        let http = HttpClient::new(config)?;
        let arm = arm_endpoint.trim_end_matches('/');
        Ok(Self {
            credential: resolved.credential,
            authority_host: resolved.authority_host,
            scope: format!("{arm}/.default"),
            resource: format!("{arm}/"),
            http,
            cache: tokio::sync::Mutex::new(None),
            issued: AtomicU64::new(0),
        })
    }

    /// The credential in use.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// How many tokens were fetched so far (not cache hits).
    pub fn tokens_fetched(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// A valid bearer token: the cached one, or a new one when it is near expiry.
    /// Concurrent callers wait for one refresh.
    pub async fn token(&self) -> Result<Secret, AuthError> {
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.as_ref()
            && !token.needs_refresh(Instant::now())
        {
            return Ok(token.token.clone());
        }
        let fresh = self.fetch().await?;
        self.issued.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            credential = self.credential.kind(),
            lifetime_s = fresh.lifetime.as_secs(),
            "obtained an access token"
        );
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    /// Forgets `refused` (a token Resource Manager answered 401 to), so the next
    /// [`token`](Self::token) fetches a new one. A newer token is kept.
    pub async fn invalidate(&self, refused: &Secret) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|t| &t.token == refused) {
            *cache = None;
        }
    }

    async fn fetch(&self) -> Result<AccessToken, AuthError> {
        let started = Instant::now();
        let answer = match &self.credential {
            Credential::ManagedIdentity { client_id, .. } => {
                let mut request = self
                    .http
                    .get("/metadata/identity/oauth2/token")
                    .query("api-version", IMDS_API_VERSION)
                    .query("resource", &self.resource)
                    .header("Metadata", "true");
                if let Some(id) = client_id {
                    request = request.query("client_id", id);
                }
                self.answer(request.send().await, "/metadata/identity/oauth2/token")
                    .await?
            }
            Credential::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => {
                let body = form::encode(&[
                    ("client_id", client_id),
                    ("scope", &self.scope),
                    ("client_secret", secret.expose()),
                    ("grant_type", "client_credentials"),
                ]);
                self.post_form(tenant_id, body).await?
            }
            Credential::ClientCertificate {
                tenant_id,
                client_id,
                key,
            } => {
                let audience = self.token_url(tenant_id);
                let assertion = client_assertion(key, client_id, &audience, SystemTime::now())?;
                self.post_assertion(tenant_id, client_id, &assertion)
                    .await?
            }
            Credential::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => {
                let assertion = tokio::fs::read_to_string(token_file)
                    .await
                    .map_err(|source| AuthError::ReadFile {
                        path: token_file.display().to_string(),
                        source,
                    })?;
                self.post_assertion(tenant_id, client_id, assertion.trim())
                    .await?
            }
        };
        let lifetime = answer
            .expires_in
            .as_ref()
            .and_then(|v| match v {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(300));
        Ok(AccessToken {
            token: Secret::new(answer.access_token),
            expires_at: started + lifetime,
            lifetime,
        })
    }

    fn token_path(tenant_id: &str) -> String {
        format!("/{tenant_id}/oauth2/v2.0/token")
    }

    fn token_url(&self, tenant_id: &str) -> String {
        format!("{}{}", self.authority_host, Self::token_path(tenant_id))
    }

    async fn post_assertion(
        &self,
        tenant_id: &str,
        client_id: &str,
        assertion: &str,
    ) -> Result<TokenAnswer, AuthError> {
        let body = form::encode(&[
            ("client_id", client_id),
            ("scope", &self.scope),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("grant_type", "client_credentials"),
        ]);
        self.post_form(tenant_id, body).await
    }

    async fn post_form(&self, tenant_id: &str, body: String) -> Result<TokenAnswer, AuthError> {
        let path = Self::token_path(tenant_id);
        let sent = self
            .http
            .post(&path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body)
            // A token request has no side effect: retrying it is safe.
            .idempotent(true)
            .send()
            .await;
        self.answer(sent, &path).await
    }

    async fn answer(
        &self,
        sent: Result<vk_core::http::HttpResponse, HttpError>,
        path: &str,
    ) -> Result<TokenAnswer, AuthError> {
        match sent {
            Ok(response) => Ok(response.json().await?),
            Err(HttpError::Status { status, body, .. }) => {
                let parsed: Option<OAuthError> = serde_json::from_str(&body).ok();
                let (code, description) = match parsed {
                    Some(e) if !e.error.is_empty() => (e.error, e.error_description),
                    _ => (status.to_string(), String::new()),
                };
                Err(AuthError::Refused {
                    endpoint: format!("{}{path}", self.http.base_url()),
                    code,
                    description,
                })
            }
            Err(other) => Err(AuthError::Request(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refresh_is_due_a_fifth_of_the_lifetime_before_expiry() {
        let now = Instant::now();
        let token = AccessToken {
            token: Secret::new("t"),
            expires_at: now + Duration::from_secs(100),
            lifetime: Duration::from_secs(100),
        };
        assert!(!token.needs_refresh(now));
        assert!(!token.needs_refresh(now + Duration::from_secs(79)));
        assert!(token.needs_refresh(now + Duration::from_secs(80)));
        let long = AccessToken {
            lifetime: Duration::from_secs(3600),
            expires_at: now + Duration::from_secs(3600),
            ..token
        };
        // Capped at five minutes ahead.
        assert!(!long.needs_refresh(now + Duration::from_secs(3299)));
        assert!(long.needs_refresh(now + Duration::from_secs(3300)));
    }
}
