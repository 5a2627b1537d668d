//! [`ArmClient`]: container groups in one resource group, over `vk_core::http`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use vk_core::http::{HttpClient, HttpClientConfig, HttpError, HttpResponse, RetryPolicy};

use super::error::ArmError;
use super::types::{
    AsyncOperation, CloudError, ContainerExecRequest, ContainerExecResponse, ContainerGroup,
    ContainerGroupList, Logs, TerminalSize, Usage, UsageList,
};
use crate::auth::TokenProvider;

/// The header naming the operation-status URL of a long-running operation.
pub const AZURE_ASYNC_OPERATION: &str = "azure-asyncoperation";

/// The shortest wait between two polls of an operation (a `Retry-After: 0` must not
/// become a busy loop).
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Remaining subscription reads before ARM throttles (per hour and principal).
pub const RATELIMIT_REMAINING_READS: &str = "x-ms-ratelimit-remaining-subscription-reads";

/// Remaining subscription writes before ARM throttles.
pub const RATELIMIT_REMAINING_WRITES: &str = "x-ms-ratelimit-remaining-subscription-writes";

/// Where and how the client talks to Resource Manager.
#[derive(Debug, Clone)]
pub struct ArmClientConfig {
    /// The ARM endpoint (`https://management.azure.com`).
    pub endpoint: String,
    /// Subscription ID.
    pub subscription_id: String,
    /// Resource group of the container groups.
    pub resource_group: String,
    /// `api-version` of `Microsoft.ContainerInstance`.
    pub api_version: String,
    /// Extra trusted CAs (PEM).
    pub ca_pem: Option<Vec<u8>>,
    /// Retries of single requests (429 with `Retry-After`, transient 5xx).
    pub retry: RetryPolicy,
    /// The wait between two polls of a long-running operation when the answer has no
    /// `Retry-After`.
    pub default_poll_interval: Duration,
    /// The longest a long-running operation is waited for.
    pub operation_timeout: Duration,
}

impl ArmClientConfig {
    /// A configuration with the default retry policy (six attempts, `Retry-After`
    /// up to a minute), a 5 s default poll interval and a 30 min operation timeout.
    pub fn new(
        endpoint: impl Into<String>,
        subscription_id: impl Into<String>,
        resource_group: impl Into<String>,
        api_version: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            subscription_id: subscription_id.into(),
            resource_group: resource_group.into(),
            api_version: api_version.into(),
            ca_pem: None,
            retry: RetryPolicy {
                max_attempts: 6,
                ..RetryPolicy::default()
            },
            default_poll_interval: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// What ARM said about its throttling budget in the last answers (`-1`: not seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// `x-ms-ratelimit-remaining-subscription-reads`.
    pub remaining_reads: i64,
    /// `x-ms-ratelimit-remaining-subscription-writes`.
    pub remaining_writes: i64,
}

/// A started long-running operation: how to learn when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// It already ended (`200`/`204` answers, or `201` with no status URL).
    Done,
    /// Poll this `Azure-AsyncOperation` URL (path and query on the ARM endpoint).
    AsyncOperation(String),
    /// Poll this `Location` URL until it stops answering `202`.
    Location(String),
}

/// A thin typed client of `Microsoft.ContainerInstance/containerGroups` in one
/// resource group. Cheap to clone.
///
/// Every request carries a bearer token from the [`TokenProvider`]; a `401` drops the
/// token and the request is sent once more with a fresh one. `429` and transient `5xx`
/// are retried by `vk_core::http` (honouring `Retry-After`).
#[derive(Debug, Clone)]
pub struct ArmClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: HttpClient,
    tokens: Arc<TokenProvider>,
    config: ArmClientConfig,
    remaining_reads: AtomicI64,
    remaining_writes: AtomicI64,
    requests: AtomicU64,
}

impl ArmClient {
    /// A client for `config`, authenticating with `tokens`.
    pub fn new(config: ArmClientConfig, tokens: Arc<TokenProvider>) -> Result<Self, ArmError> {
        let mut http_config = HttpClientConfig::new(config.endpoint.trim_end_matches('/'))
            .retry(config.retry.clone())
            .request_timeout(Some(Duration::from_secs(60)))
            .error_body_limit(8192);
        if let Some(pem) = &config.ca_pem {
            http_config = http_config.ca_pem(pem.clone());
        }
        let http = HttpClient::new(http_config).map_err(|source| ArmError::Http {
            operation: "build the ARM client",
            source: Box::new(source),
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                tokens,
                config,
                remaining_reads: AtomicI64::new(-1),
                remaining_writes: AtomicI64::new(-1),
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ArmClientConfig {
        &self.inner.config
    }

    /// The token source.
    pub fn tokens(&self) -> &Arc<TokenProvider> {
        &self.inner.tokens
    }

    /// Requests sent so far (each retry of the HTTP layer counts too, see
    /// [`HttpClient::counts`]); this counts logical requests.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The throttling budget ARM reported last.
    pub fn rate_limit(&self) -> RateLimit {
        RateLimit {
            remaining_reads: self.inner.remaining_reads.load(Ordering::Relaxed),
            remaining_writes: self.inner.remaining_writes.load(Ordering::Relaxed),
        }
    }

    fn groups_path(&self) -> String {
        let c = &self.inner.config;
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerInstance/containerGroups",
            c.subscription_id, c.resource_group
        )
    }

    fn group_path(&self, name: &str) -> String {
        format!("{}/{name}", self.groups_path())
    }

    /// Sends one logical request built by `build` with a bearer token; on `401` the
    /// token is dropped and the request sent once more.
    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&dyn erased::Body>,
        query: &[(&str, String)],
    ) -> Result<HttpResponse, ArmError> {
        let mut refreshed = false;
        loop {
            let token = self
                .inner
                .tokens
                .token()
                .await
                .map_err(|source| ArmError::Auth {
                    operation,
                    source: Box::new(source),
                })?;
            let mut request = self
                .inner
                .http
                .request(method.clone(), path)
                .sensitive_header("Authorization", format!("Bearer {}", token.expose()))
                .header("Accept", "application/json");
            if !path.contains("api-version=") {
                request = request.query("api-version", self.inner.config.api_version.clone());
            }
            for (name, value) in query {
                request = request.query(*name, value.clone());
            }
            if let Some(body) = body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(body.to_json());
            }
            self.inner.requests.fetch_add(1, Ordering::Relaxed);
            match request.send().await {
                Ok(response) => {
                    self.note_rate_limit(response.headers());
                    return Ok(response);
                }
                Err(HttpError::Status { status, .. })
                    if status == StatusCode::UNAUTHORIZED && !refreshed =>
                {
                    tracing::info!(
                        operation,
                        "Resource Manager refused the token; refreshing it"
                    );
                    self.inner.tokens.invalidate(&token).await;
                    refreshed = true;
                }
                Err(source) => return Err(ArmError::from_http(operation, source)),
            }
        }
    }

    fn note_rate_limit(&self, headers: &HeaderMap) {
        let read = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        if let Some(v) = read(RATELIMIT_REMAINING_READS) {
            self.inner.remaining_reads.store(v, Ordering::Relaxed);
        }
        if let Some(v) = read(RATELIMIT_REMAINING_WRITES) {
            self.inner.remaining_writes.store(v, Ordering::Relaxed);
        }
    }

    async fn json<T: DeserializeOwned>(
        operation: &'static str,
        response: HttpResponse,
    ) -> Result<T, ArmError> {
        response
            .json()
            .await
            .map_err(|source| ArmError::from_http(operation, source))
    }

    /// `GET` one container group; `None` when it does not exist (`404`).
    pub async fn get(&self, name: &str) -> Result<Option<ContainerGroup>, ArmError> {
        const OP: &str = "get container group";
        match self
            .send(OP, Method::GET, &self.group_path(name), None, &[])
            .await
        {
            Ok(response) => Ok(Some(Self::json(OP, response).await?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every container group of the resource group (following `nextLink`).
    pub async fn list(&self) -> Result<Vec<ContainerGroup>, ArmError> {
        const OP: &str = "list container groups";
        let mut groups = Vec::new();
        let mut path = self.groups_path();
        loop {
            let response = self.send(OP, Method::GET, &path, None, &[]).await?;
            let page: ContainerGroupList = Self::json(OP, response).await?;
            groups.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                Some(next) => path = self.same_host_path(OP, &next)?,
                None => return Ok(groups),
            }
        }
    }

    /// Starts `PUT` of container group `name`; returns ARM's first answer and how to
    /// follow the operation. A `409` (another operation on the group in progress) is
    /// an error of kind `Conflict`.
    pub async fn begin_create_or_update(
        &self,
        name: &str,
        group: &ContainerGroup,
    ) -> Result<(ContainerGroup, Operation), ArmError> {
        const OP: &str = "create or update container group";
        let response = self
            .send(
                OP,
                Method::PUT,
                &self.group_path(name),
                Some(group as &dyn erased::Body),
                &[],
            )
            .await?;
        let operation = self.operation_of(OP, response.status(), response.headers())?;
        // The answer should be the group; an empty one is read as the group sent.
        let first: Option<ContainerGroup> = Self::json(OP, response).await?;
        Ok((first.unwrap_or_else(|| group.clone()), operation))
    }

    /// `PUT` container group `name` and wait for the long-running operation to end;
    /// returns the group as `GET` shows it then.
    pub async fn create_or_update(
        &self,
        name: &str,
        group: &ContainerGroup,
    ) -> Result<ContainerGroup, ArmError> {
        let (first, operation) = self.begin_create_or_update(name, group).await?;
        self.wait(&operation).await?;
        if operation == Operation::Done {
            return Ok(first);
        }
        // GET may lag the operation's end (eventual consistency): retry a few times.
        for _ in 0..5 {
            if let Some(group) = self.get(name).await? {
                return Ok(group);
            }
            tokio::time::sleep(self.inner.config.default_poll_interval).await;
        }
        Err(ArmError::OperationFailed {
            operation: "create or update container group",
            code: "ResourceNotFound".into(),
            message: format!("container group {name} is not visible after its creation succeeded"),
        })
    }

    /// Starts `DELETE` of container group `name`. `Ok(None)` when it did not exist
    /// (`204` or `404`).
    pub async fn begin_delete(&self, name: &str) -> Result<Option<Operation>, ArmError> {
        const OP: &str = "delete container group";
        match self
            .send(OP, Method::DELETE, &self.group_path(name), None, &[])
            .await
        {
            Ok(response) if response.status() == StatusCode::NO_CONTENT => Ok(None),
            Ok(response) => Ok(Some(self.operation_of(
                OP,
                response.status(),
                response.headers(),
            )?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE` container group `name` and wait for it to be gone; false when it did
    /// not exist.
    pub async fn delete(&self, name: &str) -> Result<bool, ArmError> {
        match self.begin_delete(name).await? {
            None => Ok(false),
            Some(operation) => {
                self.wait(&operation).await?;
                Ok(true)
            }
        }
    }

    /// The log of `container` in group `group`: the last `tail` lines, with ACI's
    /// timestamps when `timestamps`.
    pub async fn logs(
        &self,
        group: &str,
        container: &str,
        tail: Option<u64>,
        timestamps: bool,
    ) -> Result<String, ArmError> {
        const OP: &str = "list container logs";
        let mut query = Vec::new();
        if let Some(tail) = tail {
            query.push(("tail", tail.to_string()));
        }
        if timestamps {
            query.push(("timestamps", "true".to_string()));
        }
        let path = format!("{}/containers/{container}/logs", self.group_path(group));
        let response = self.send(OP, Method::GET, &path, None, &query).await?;
        let logs: Logs = Self::json(OP, response).await?;
        Ok(logs.content.unwrap_or_default())
    }

    /// Starts `command` in `container` of group `group`: the WebSocket to connect to
    /// and the password to send first.
    pub async fn exec(
        &self,
        group: &str,
        container: &str,
        command: &str,
        terminal_size: Option<TerminalSize>,
    ) -> Result<ContainerExecResponse, ArmError> {
        const OP: &str = "execute command";
        let request = ContainerExecRequest {
            command: command.to_string(),
            terminal_size,
        };
        let path = format!("{}/containers/{container}/exec", self.group_path(group));
        let response = self
            .send(
                OP,
                Method::POST,
                &path,
                Some(&request as &dyn erased::Body),
                &[],
            )
            .await?;
        Self::json(OP, response).await
    }

    /// The usage and quota of container instances in `region` (`Location_ListUsage`).
    pub async fn usage(&self, region: &str) -> Result<Vec<Usage>, ArmError> {
        const OP: &str = "list usage";
        let path = format!(
            "/subscriptions/{}/providers/Microsoft.ContainerInstance/locations/{region}/usages",
            self.inner.config.subscription_id
        );
        let response = self.send(OP, Method::GET, &path, None, &[]).await?;
        let list: UsageList = Self::json(OP, response).await?;
        Ok(list.value)
    }

    /// A cheap authenticated read proving ARM and the credential work: `GET` of the
    /// resource group itself (Resource Groups - Get, api-version 2021-04-01), which
    /// does not grow with the number of container groups.
    pub async fn health(&self) -> Result<(), ArmError> {
        const OP: &str = "read the resource group";
        let c = &self.inner.config;
        let path = format!(
            "/subscriptions/{}/resourcegroups/{}?api-version=2021-04-01",
            c.subscription_id, c.resource_group
        );
        self.send(OP, Method::GET, &path, None, &[])
            .await
            .map(|_| ())
    }

    fn operation_of(
        &self,
        operation: &'static str,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<Operation, ArmError> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        };
        if let Some(url) = header(AZURE_ASYNC_OPERATION) {
            return Ok(Operation::AsyncOperation(
                self.same_host_path(operation, url)?,
            ));
        }
        if (status == StatusCode::ACCEPTED || status == StatusCode::CREATED)
            && let Some(url) = header("location")
        {
            return Ok(Operation::Location(self.same_host_path(operation, url)?));
        }
        Ok(Operation::Done)
    }

    /// The path and query of `url` (an operation or next-page URL ARM sent), to be
    /// requested on the configured ARM endpoint: the bearer token only ever goes
    /// there. ARM's URLs are on that endpoint anyway; one naming another host (a proxy,
    /// `localhost` for `127.0.0.1`) is followed on the configured endpoint, with a
    /// debug event. A URL that is not `http(s)://host/path` is refused.
    fn same_host_path(&self, operation: &'static str, url: &str) -> Result<String, ArmError> {
        let refuse = || ArmError::ForeignUrl {
            operation,
            url: url.split('?').next().unwrap_or(url).to_string(),
        };
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(refuse)?;
        let slash = rest.find('/').ok_or_else(refuse)?;
        let (host, path) = rest.split_at(slash);
        let base = self.inner.http.base_url();
        if !base.ends_with(host) {
            tracing::debug!(
                operation,
                host,
                "following an ARM URL on the configured endpoint"
            );
        }
        Ok(path.to_string())
    }

    /// Waits for `operation` to end; an operation that failed or was canceled is
    /// [`ArmError::OperationFailed`].
    pub async fn wait(&self, operation: &Operation) -> Result<(), ArmError> {
        const OP: &str = "poll a long-running operation";
        let deadline = tokio::time::Instant::now() + self.inner.config.operation_timeout;
        let mut delay = self.inner.config.default_poll_interval;
        loop {
            let path = match operation {
                Operation::Done => return Ok(()),
                Operation::AsyncOperation(p) | Operation::Location(p) => p,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(ArmError::OperationFailed {
                    operation: OP,
                    code: "Timeout".into(),
                    message: "the operation did not end in time".into(),
                });
            }
            tokio::time::sleep(delay).await;
            let response = self.send(OP, Method::GET, path, None, &[]).await?;
            delay = retry_after(response.headers())
                .unwrap_or(self.inner.config.default_poll_interval)
                .max(MIN_POLL_INTERVAL);
            match operation {
                Operation::AsyncOperation(_) => {
                    let status: AsyncOperation = Self::json(OP, response).await?;
                    match status.status.as_str() {
                        "Succeeded" => return Ok(()),
                        "Failed" | "Canceled" => {
                            let error = status.error.unwrap_or_default();
                            return Err(ArmError::OperationFailed {
                                operation: OP,
                                code: if error.code.is_empty() {
                                    status.status
                                } else {
                                    error.code
                                },
                                message: error.message,
                            });
                        }
                        _ => {}
                    }
                }
                Operation::Location(_) => {
                    if response.status() != StatusCode::ACCEPTED {
                        return Ok(());
                    }
                }
                Operation::Done => return Ok(()),
            }
        }
    }
}

/// The `Retry-After` of an answer, in whole seconds (capped at a minute).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(60)))
}

/// Decodes an ARM error body from an error excerpt.
pub(crate) fn cloud_error(body: &str) -> Option<CloudError> {
    serde_json::from_str::<CloudError>(body)
        .ok()
        .filter(|e| !e.error.code.is_empty())
}

/// Request bodies, type-erased.
mod erased {
    /// A JSON request body.
    pub trait Body: Sync {
        /// The body as JSON bytes.
        fn to_json(&self) -> Vec<u8>;
    }

    impl<T: super::Serialize + Sync> Body for T {
        fn to_json(&self) -> Vec<u8> {
            // Our request types always serialize (no maps with non-string keys).
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Credential, Secret};

    fn client() -> ArmClient {
        let resolved = crate::auth::credential_for_tests(Credential::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            secret: Secret::new("s"),
        });
        let tokens =
            TokenProvider::new(resolved, "https://management.azure.com", None).expect("tokens");
        ArmClient::new(
            ArmClientConfig::new("https://management.azure.com", "sub", "rg", "2023-05-01"),
            Arc::new(tokens),
        )
        .expect("client")
    }

    #[test]
    fn operation_urls_are_followed_on_the_configured_endpoint_only() {
        let arm = client();
        let url = "https://management.azure.com/subscriptions/sub/providers/Microsoft.ContainerInstance/locations/westeurope/operations/op1?api-version=2023-05-01";
        let path = arm.same_host_path("poll", url).expect("followed");
        assert_eq!(
            path,
            "/subscriptions/sub/providers/Microsoft.ContainerInstance/locations/westeurope/operations/op1?api-version=2023-05-01"
        );
        // Another host: the path is followed on the configured endpoint, never there.
        assert_eq!(
            arm.same_host_path("poll", "http://localhost:1234/ops/1?x=1")
                .expect("rebased"),
            "/ops/1?x=1"
        );
        assert!(arm.same_host_path("poll", "ftp://x/y").is_err());
        assert!(
            arm.same_host_path("poll", "https://host-without-path")
                .is_err()
        );
    }

    #[test]
    fn operations_are_read_from_the_documented_headers() {
        let arm = client();
        let mut headers = HeaderMap::new();
        assert_eq!(
            arm.operation_of("put", StatusCode::OK, &headers)
                .expect("ok"),
            Operation::Done
        );
        headers.insert(
            "location",
            "https://management.azure.com/loc/1".parse().expect("h"),
        );
        assert_eq!(
            arm.operation_of("delete", StatusCode::ACCEPTED, &headers)
                .expect("ok"),
            Operation::Location("/loc/1".into())
        );
        headers.insert(
            AZURE_ASYNC_OPERATION,
            "https://management.azure.com/async/1".parse().expect("h"),
        );
        assert_eq!(
            arm.operation_of("put", StatusCode::CREATED, &headers)
                .expect("ok"),
            Operation::AsyncOperation("/async/1".into()),
            "Azure-AsyncOperation wins over Location"
        );
    }
}
