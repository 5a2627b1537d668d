//! The bridge's HTTP client and the v1 routes: exactly those of the original web
//! provider.
//!
//! | call | route |
//! |---|---|
//! | create | `POST /createPod` (body: the v1.Pod JSON) |
//! | update | `PUT /updatePod` (body: the v1.Pod JSON) |
//! | delete | `DELETE /deletePod` (body: the v1.Pod JSON) |
//! | get | `GET /getPod?namespace=&name=` → v1.Pod JSON |
//! | status | `GET /getPodStatus?namespace=&name=` → v1.PodStatus JSON |
//! | list | `GET /getPods` → JSON array of v1.Pod |
//! | logs | `GET /getContainerLogs?namespace=&podName=&containerName=&tail=` → text |
//! | node | `GET /capacity` → ResourceList, `GET /nodeConditions` → []NodeCondition, `GET /nodeAddresses` → []NodeAddress |
//!
//! A `404` from `getPod`/`getPodStatus`/`deletePod` means the bridge does not have the
//! pod; other error statuses become [`WebError::Call`] with the kind of the status.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use http::Method;
use k8s_openapi::api::core::v1::{NodeAddress, NodeCondition, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::de::DeserializeOwned;
use vk_core::http::{HttpClient, HttpClientConfig, HttpError, HttpResponse, RetryPolicy};

use crate::config::{CallKind, WebConfig};
use crate::error::WebError;

/// `POST /createPod`.
pub const CREATE_POD: &str = "/createPod";
/// `PUT /updatePod`.
pub const UPDATE_POD: &str = "/updatePod";
/// `DELETE /deletePod`.
pub const DELETE_POD: &str = "/deletePod";
/// `GET /getPod`.
pub const GET_POD: &str = "/getPod";
/// `GET /getPodStatus`.
pub const GET_POD_STATUS: &str = "/getPodStatus";
/// `GET /getPods`.
pub const GET_PODS: &str = "/getPods";
/// `GET /getContainerLogs`.
pub const GET_CONTAINER_LOGS: &str = "/getContainerLogs";
/// `GET /capacity`.
pub const CAPACITY: &str = "/capacity";
/// `GET /nodeConditions`.
pub const NODE_CONDITIONS: &str = "/nodeConditions";
/// `GET /nodeAddresses`.
pub const NODE_ADDRESSES: &str = "/nodeAddresses";

/// A client for one bridge; cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), vk_web::WebError> {
/// let bridge = vk_web::BridgeClient::new(&vk_web::WebConfig::new("http://127.0.0.1:8000"))?;
/// let pods = bridge.get_pods().await?;
/// # let _ = pods; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct BridgeClient {
    pub(crate) http: HttpClient,
    pub(crate) config: WebConfig,
}

fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, WebError> {
    std::fs::read(path).map_err(|source| WebError::ReadFile {
        what,
        path: path.to_owned(),
        source,
    })
}

impl BridgeClient {
    /// Builds the client: reads the token, CA and client certificate files named by
    /// `config`, and checks the endpoint.
    pub fn new(config: &WebConfig) -> Result<Self, WebError> {
        if config.endpoint.is_empty() {
            return Err(WebError::NoEndpoint);
        }
        let mut http = HttpClientConfig::new(config.endpoint.clone())
            .user_agent(concat!("vk-web/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeouts.connect)
            .request_timeout(Some(config.timeouts.default))
            .system_roots(config.system_roots)
            .insecure_skip_verify(config.insecure_skip_verify)
            .retry(RetryPolicy {
                max_attempts: config.max_attempts,
                ..RetryPolicy::default()
            });
        if let Some(token) = &config.bearer_token {
            http = http.bearer_token(token.expose());
        }
        if let Some(path) = &config.bearer_token_file {
            let token = read("bearer token", path)?;
            http = http.bearer_token(String::from_utf8_lossy(&token).trim_end());
        }
        if let Some(path) = &config.ca_file {
            http = http.ca_pem(read("CA", path)?);
        }
        if let (Some(cert), Some(key)) = (&config.client_cert_file, &config.client_key_file) {
            http = http
                .client_identity_pem(read("client certificate", cert)?, read("client key", key)?);
        }
        let http = HttpClient::new(http).map_err(|source| WebError::BuildClient {
            endpoint: config.endpoint.clone(),
            source: Box::new(source),
        })?;
        Ok(Self {
            http,
            config: config.clone(),
        })
    }

    /// The underlying HTTP client (for its counters).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The configuration the client was built from.
    pub fn config(&self) -> &WebConfig {
        &self.config
    }

    pub(crate) fn timeout(&self, kind: CallKind) -> Option<Duration> {
        Some(self.config.timeouts.of(kind))
    }

    /// Sends `method route` with `pod` as the JSON body; the answer's body is drained
    /// (for the connection's reuse) and ignored.
    async fn send_pod(
        &self,
        method: Method,
        route: &'static str,
        kind: CallKind,
        pod: &Pod,
        call: impl FnOnce() -> String,
    ) -> Result<(), WebError> {
        let answer = self
            .http
            .request(method, route)
            .json(pod)
            .timeout(self.timeout(kind))
            .send()
            .await;
        match answer {
            Ok(response) => {
                let _ = response.bytes().await;
                Ok(())
            }
            Err(source) => Err(WebError::call(call(), source)),
        }
    }

    /// `POST /createPod`.
    pub async fn create_pod(&self, pod: &Pod) -> Result<(), WebError> {
        self.send_pod(Method::POST, CREATE_POD, CallKind::Create, pod, || {
            format!("create pod {}", pod_key(pod))
        })
        .await
    }

    /// `PUT /updatePod`.
    pub async fn update_pod(&self, pod: &Pod) -> Result<(), WebError> {
        self.send_pod(Method::PUT, UPDATE_POD, CallKind::Update, pod, || {
            format!("update pod {}", pod_key(pod))
        })
        .await
    }

    /// `DELETE /deletePod` (the pod as body).
    pub async fn delete_pod(&self, pod: &Pod) -> Result<(), WebError> {
        self.send_pod(Method::DELETE, DELETE_POD, CallKind::Delete, pod, || {
            format!("delete pod {}", pod_key(pod))
        })
        .await
    }

    /// `GET /getPod?namespace=&name=`; `None` on 404 (or a `null` answer).
    pub async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>, WebError> {
        let call = || format!("get pod {namespace}/{name}");
        let request = self
            .http
            .get(GET_POD)
            .query("namespace", namespace)
            .query("name", name)
            .timeout(self.timeout(CallKind::Get));
        optional(json(request.send().await, call).await)
    }

    /// `GET /getPodStatus?namespace=&name=`; `None` on 404 (or a `null` answer).
    pub async fn get_pod_status(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PodStatus>, WebError> {
        let call = || format!("get the status of pod {namespace}/{name}");
        let request = self
            .http
            .get(GET_POD_STATUS)
            .query("namespace", namespace)
            .query("name", name)
            .timeout(self.timeout(CallKind::Get));
        optional(json(request.send().await, call).await)
    }

    /// `GET /getPods` (a `null` answer is no pods).
    pub async fn get_pods(&self) -> Result<Vec<Pod>, WebError> {
        let request = self
            .http
            .get(GET_PODS)
            .timeout(self.timeout(CallKind::List));
        let pods: Option<Vec<Pod>> = json(request.send().await, || "list pods".into()).await?;
        Ok(pods.unwrap_or_default())
    }

    /// `GET /getContainerLogs?namespace=&podName=&containerName=&tail=` (`tail` only when
    /// given); the text, refused beyond `max_log_bytes`.
    pub async fn container_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        tail: Option<u64>,
    ) -> Result<Bytes, WebError> {
        let call = || format!("read the logs of {namespace}/{pod}/{container}");
        let mut request = self
            .http
            .get(GET_CONTAINER_LOGS)
            .query("namespace", namespace)
            .query("podName", pod)
            .query("containerName", container)
            .timeout(self.timeout(CallKind::Logs));
        if let Some(tail) = tail {
            request = request.query("tail", tail.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|source| WebError::call(call(), source))?;
        let limit = self.config.max_log_bytes;
        let mut body = response.into_stream();
        let mut text = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                WebError::call(
                    call(),
                    HttpError::ReadBody {
                        method: Method::GET,
                        path: GET_CONTAINER_LOGS.into(),
                        reason: e.to_string(),
                    },
                )
            })?;
            if (text.len() + chunk.len()) as u64 > limit {
                return Err(WebError::LogTooLarge {
                    call: call(),
                    route: GET_CONTAINER_LOGS,
                    limit,
                });
            }
            text.extend_from_slice(&chunk);
        }
        Ok(text.freeze())
    }

    /// `GET /capacity`.
    pub async fn capacity(&self) -> Result<BTreeMap<String, Quantity>, WebError> {
        let request = self
            .http
            .get(CAPACITY)
            .timeout(self.timeout(CallKind::Node));
        let cap: Option<BTreeMap<String, Quantity>> =
            json(request.send().await, || "read the node capacity".into()).await?;
        Ok(cap.unwrap_or_default())
    }

    /// `GET /nodeConditions`.
    pub async fn node_conditions(&self) -> Result<Vec<NodeCondition>, WebError> {
        let request = self
            .http
            .get(NODE_CONDITIONS)
            .timeout(self.timeout(CallKind::Node));
        let conditions: Option<Vec<NodeCondition>> =
            json(request.send().await, || "read the node conditions".into()).await?;
        Ok(conditions.unwrap_or_default())
    }

    /// `GET /nodeAddresses`.
    pub async fn node_addresses(&self) -> Result<Vec<NodeAddress>, WebError> {
        let request = self
            .http
            .get(NODE_ADDRESSES)
            .timeout(self.timeout(CallKind::Node));
        let addresses: Option<Vec<NodeAddress>> =
            json(request.send().await, || "read the node addresses".into()).await?;
        Ok(addresses.unwrap_or_default())
    }
}

/// `namespace/name` of a pod, for messages.
pub(crate) fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Decodes a JSON answer, naming the call on failure.
pub(crate) async fn json<T: DeserializeOwned>(
    answer: Result<HttpResponse, HttpError>,
    call: impl FnOnce() -> String,
) -> Result<T, WebError> {
    match answer {
        Ok(response) => response.json().await,
        Err(e) => Err(e),
    }
    .map_err(|source| WebError::call(call(), source))
}

/// `404` (and `null`) as `None`.
fn optional<T>(result: Result<Option<T>, WebError>) -> Result<Option<T>, WebError> {
    match result {
        Err(e) if e.status() == Some(404) => Ok(None),
        other => other,
    }
}
