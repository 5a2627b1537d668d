//! [`NomadClient`]: the typed calls vk-nomad makes, over [`vk_core::http`].

use std::time::Duration;

use http::Method;
use vk_core::capabilities::ByteStream;
use vk_core::http::{
    HttpClient, HttpClientConfig, HttpError, RequestBuilder, RetryPolicy, WebSocket,
};

use super::types::{Allocation, Job, JobListStub, JobWriteResponse, NodeListStub, RegisterRequest};
use crate::config::Connection;
use crate::error::NomadError;

/// The header carrying the ACL token.
pub const TOKEN_HEADER: &str = "X-Nomad-Token";
/// The header carrying a blocking query's index.
pub const INDEX_HEADER: &str = "X-Nomad-Index";

/// A client of one Nomad region and namespace; cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), vk_nomad::NomadError> {
/// let connection = vk_nomad::NomadConfig::default().connection()?;
/// let nomad = vk_nomad::api::NomadClient::new(&connection)?;
/// println!("leader: {}", nomad.leader().await?);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct NomadClient {
    http: HttpClient,
    health: HttpClient,
    namespace: String,
    region: Option<String>,
    blocking_wait: Duration,
}

/// A blocking query's answer: the value and the `X-Nomad-Index` to wait on next.
#[derive(Debug, Clone)]
pub struct Indexed<T> {
    /// The answer.
    pub value: T,
    /// The index of the state the answer reflects.
    pub index: u64,
}

/// Which log stream of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogType {
    /// The task's stdout.
    Stdout,
    /// The task's stderr.
    Stderr,
}

impl LogType {
    fn as_str(self) -> &'static str {
        match self {
            LogType::Stdout => "stdout",
            LogType::Stderr => "stderr",
        }
    }
}

impl NomadClient {
    /// Builds the client: base URL, token header (sensitive), TLS material.
    pub fn new(connection: &Connection) -> Result<Self, NomadError> {
        let read = |what: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| NomadError::ReadFile {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        let mut config = HttpClientConfig::new(connection.address.clone())
            .user_agent(concat!("vk-nomad/", env!("CARGO_PKG_VERSION")))
            .request_timeout(Some(connection.request_timeout))
            // A 429/5xx storm (the agent's connection limiter, a leader election)
            // is ridden out with backoff before a call fails.
            .retry(RetryPolicy {
                max_attempts: 6,
                ..RetryPolicy::default()
            })
            .insecure_skip_verify(connection.skip_verify);
        if let Some(token) = &connection.token {
            config = config.sensitive_header(TOKEN_HEADER, token.expose());
        }
        if let Some(ca) = &connection.ca_cert {
            config = config.ca_pem(read("CA certificate", ca)?);
        }
        if let Some((cert, key)) = &connection.client_identity {
            config = config
                .client_identity_pem(read("client certificate", cert)?, read("client key", key)?);
        }
        // Health checks answer within the core's ping timeout: one attempt, short.
        let health = config
            .clone()
            .retry(RetryPolicy::never())
            .connect_timeout(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(4)));
        let http = HttpClient::new(config).map_err(|e| NomadError::Client(Box::new(e)))?;
        let health = HttpClient::new(health).map_err(|e| NomadError::Client(Box::new(e)))?;
        Ok(Self {
            http,
            health,
            namespace: connection.namespace.clone(),
            region: connection.region.clone(),
            blocking_wait: connection.blocking_wait,
        })
    }

    /// The namespace jobs live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The underlying HTTP client (for its counters).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut request = self
            .http
            .request(method, path)
            .query("namespace", self.namespace.clone());
        if let Some(region) = &self.region {
            request = request.query("region", region.clone());
        }
        request
    }

    fn fail(
        &self,
        operation: &'static str,
        capability: &'static str,
        source: HttpError,
    ) -> NomadError {
        let source = Box::new(source);
        if source.status().is_some_and(|s| s.as_u16() == 403) {
            NomadError::PermissionDenied {
                operation,
                capability,
                namespace: self.namespace.clone(),
                source,
            }
        } else {
            NomadError::Api { operation, source }
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: RequestBuilder,
        operation: &'static str,
        capability: &'static str,
    ) -> Result<T, NomadError> {
        let response = request
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| self.fail(operation, capability, e))?;
        response
            .json()
            .await
            .map_err(|e| self.fail(operation, capability, e))
    }

    /// `GET /v1/status/leader`: the leader's RPC address, empty when there is none.
    pub async fn leader(&self) -> Result<String, NomadError> {
        let mut request = self.health.get("/v1/status/leader");
        if let Some(region) = &self.region {
            request = request.query("region", region.clone());
        }
        self.json(request, "reading the Nomad leader", "(none)")
            .await
    }

    /// `POST /v1/jobs`: registers (creates or replaces) `job`.
    pub async fn register_job(&self, job: &Job) -> Result<JobWriteResponse, NomadError> {
        // Registering the same job twice is harmless: safe to retry on 502/503/504.
        let request = self
            .request(Method::POST, "/v1/jobs")
            .idempotent(true)
            .json(&RegisterRequest { job });
        self.json(request, "registering a job", "namespace:submit-job")
            .await
    }

    /// `GET /v1/job/:job_id`: the job, `None` if Nomad has none by that ID.
    pub async fn read_job(&self, id: &str) -> Result<Option<Job>, NomadError> {
        let request = self.request(Method::GET, &format!("/v1/job/{}", escape(id)));
        match self
            .json(request, "reading a job", "namespace:read-job")
            .await
        {
            Ok(job) => Ok(Some(job)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/jobs?prefix=..&meta=true`: the jobs whose ID starts with `prefix`,
    /// following `X-Nomad-NextToken` pages.
    pub async fn list_jobs(&self, prefix: &str) -> Result<Vec<JobListStub>, NomadError> {
        let mut all = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut request = self
                .request(Method::GET, "/v1/jobs")
                .query("prefix", prefix.to_owned())
                .query("meta", "true");
            if let Some(token) = &next {
                request = request.query("next_token", token.clone());
            }
            let response = request
                .header("Accept", "application/json")
                .send()
                .await
                .map_err(|e| self.fail("listing jobs", "namespace:list-jobs", e))?;
            next = response
                .headers()
                .get("X-Nomad-NextToken")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            let page: Vec<JobListStub> = response
                .json()
                .await
                .map_err(|e| self.fail("listing jobs", "namespace:list-jobs", e))?;
            all.extend(page);
            if next.is_none() {
                return Ok(all);
            }
        }
    }

    /// `DELETE /v1/job/:job_id[?purge=true]`: stops the job (its tasks get their kill
    /// timeout), and with `purge` removes it. `Ok(false)` if there was no such job.
    pub async fn stop_job(&self, id: &str, purge: bool) -> Result<bool, NomadError> {
        let mut request = self.request(Method::DELETE, &format!("/v1/job/{}", escape(id)));
        if purge {
            request = request.query("purge", "true");
        }
        match self
            .json::<JobWriteResponse>(request, "stopping a job", "namespace:submit-job")
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/job/:job_id/allocations`: the job's allocations (empty if no job).
    pub async fn job_allocations(&self, id: &str) -> Result<Vec<Allocation>, NomadError> {
        let request = self.request(Method::GET, &format!("/v1/job/{}/allocations", escape(id)));
        match self
            .json(request, "listing a job's allocations", "namespace:read-job")
            .await
        {
            Ok(allocs) => Ok(allocs),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/allocation/:alloc_id`: one allocation in full (with `NetworkStatus`).
    pub async fn allocation(&self, id: &str) -> Result<Allocation, NomadError> {
        let request = self.request(Method::GET, &format!("/v1/allocation/{}", escape(id)));
        self.json(request, "reading an allocation", "namespace:read-job")
            .await
    }

    /// `GET /v1/allocations?resources=true&index=..&wait=..`: every allocation of the
    /// namespace; with `index` a blocking query that answers once the state is past
    /// `index` (or after the wait).
    pub async fn allocations(
        &self,
        index: Option<u64>,
    ) -> Result<Indexed<Vec<Allocation>>, NomadError> {
        let mut request = self
            .request(Method::GET, "/v1/allocations")
            .query("resources", "true");
        if let Some(index) = index {
            let wait = self.blocking_wait;
            request = request
                .query("index", index.to_string())
                .query("wait", format!("{}s", wait.as_secs()))
                // Nomad adds up to wait/16 of jitter.
                .timeout(Some(wait + wait / 16 + Duration::from_secs(15)));
        }
        let response = request
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| self.fail("watching allocations", "namespace:read-job", e))?;
        let index = response
            .headers()
            .get(INDEX_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let value = response
            .json()
            .await
            .map_err(|e| self.fail("watching allocations", "namespace:read-job", e))?;
        Ok(Indexed { value, index })
    }

    /// `GET /v1/event/stream?topic=Allocation&topic=Job&index=..`: the namespace's
    /// allocation and job events from `index` on, as newline-delimited JSON
    /// ([`EventBatch`](super::types::EventBatch) per line, `{}` heartbeats), for as
    /// long as the connection lasts.
    pub async fn event_stream(&self, index: u64) -> Result<ByteStream, NomadError> {
        let response = self
            .request(Method::GET, "/v1/event/stream")
            .query("topic", "Allocation")
            .query("topic", "Job")
            .query("index", index.to_string())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| self.fail("following the event stream", "namespace:read-job", e))?;
        Ok(response.into_stream())
    }

    /// `GET /v1/nodes?resources=true`: the client nodes.
    pub async fn nodes(&self) -> Result<Vec<NodeListStub>, NomadError> {
        let mut request = self.http.get("/v1/nodes").query("resources", "true");
        if let Some(region) = &self.region {
            request = request.query("region", region.clone());
        }
        self.json(request, "listing client nodes", "node:read")
            .await
    }

    /// `GET /v1/client/fs/logs/:alloc_id?plain=true`: a task's log as plain bytes, from
    /// `offset` bytes after the `origin` (`start` or `end`), following new output with
    /// `follow`.
    pub async fn logs(
        &self,
        alloc_id: &str,
        task: &str,
        log_type: LogType,
        follow: bool,
        origin: &str,
        offset: u64,
    ) -> Result<ByteStream, NomadError> {
        let request = self
            .request(
                Method::GET,
                &format!("/v1/client/fs/logs/{}", escape(alloc_id)),
            )
            .query("task", task.to_owned())
            .query("type", log_type.as_str())
            .query("follow", follow.to_string())
            .query("origin", origin.to_owned())
            .query("offset", offset.to_string())
            .query("plain", "true")
            .timeout(if follow {
                None
            } else {
                Some(Duration::from_secs(60))
            });
        let response = request
            .send()
            .await
            .map_err(|e| self.fail("streaming task logs", "namespace:read-logs", e))?;
        Ok(response.into_stream())
    }

    /// Opens `/v1/client/allocation/:alloc_id/exec` for `command` in `task`.
    pub async fn exec(
        &self,
        alloc_id: &str,
        task: &str,
        command: &[String],
        tty: bool,
    ) -> Result<WebSocket, NomadError> {
        let command = serde_json::to_string(command).unwrap_or_else(|_| "[]".to_owned());
        self.request(
            Method::GET,
            &format!("/v1/client/allocation/{}/exec", escape(alloc_id)),
        )
        .query("task", task.to_owned())
        .query("tty", tty.to_string())
        .query("command", command)
        .websocket(&[])
        .await
        .map_err(|e| self.fail("opening an exec session", "namespace:alloc-exec", e))
    }
}

/// Percent-encodes what a path segment cannot hold as is.
fn escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(super::escape("default_web-1.x"), "default_web-1.x");
        assert_eq!(super::escape("a/b c"), "a%2Fb%20c");
    }
}
